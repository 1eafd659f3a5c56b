//! Resuming an export: a rerun must ask for the same export as the run that
//! started the dump, keeps every chunk recorded in `export.log` whose
//! checksum still matches, and exports the rest.

use anyhow::{bail, Result};

use crate::conn::ConnSpec;
use crate::dump::{
    ChunkRecord, ExportSettings, ExportedChunk, Manifest, TableDescription, TableWhere,
};
use crate::schema::SourceTable;

/// A rerun must ask for the same export as the run that started the dump.
pub(super) fn check_same_export(
    m: &Manifest,
    wanted: &ExportSettings,
    source: &ConnSpec,
) -> Result<()> {
    let dir_note = "rerun with the original options to resume it, or use a new --dir";
    let diffs = export_differences(m, wanted, &source.endpoint(), &source.user);
    if !diffs.is_empty() {
        bail!(
            "the dump in this directory was started with other options ({}); {dir_note}",
            diffs.join("; ")
        );
    }
    Ok(())
}

/// How a rerun (`wanted`, reading `user@endpoint`) differs from the run
/// that started the dump, one phrase per option; empty when it does not.
fn export_differences(
    m: &Manifest,
    wanted: &ExportSettings,
    endpoint: &str,
    user: &str,
) -> Vec<String> {
    let mut diffs = Vec::new();
    if m.export.table_patterns != wanted.table_patterns {
        diffs.push(format!(
            "--table was {:?}, now {:?}",
            m.export.table_patterns, wanted.table_patterns
        ));
    }
    if m.export.where_clause != wanted.where_clause {
        diffs.push(format!(
            "--where was {:?}, now {:?}",
            m.export.where_clause, wanted.where_clause
        ));
    }
    if m.export.table_where != wanted.table_where {
        let show = |f: &[TableWhere]| {
            f.iter()
                .map(|f| format!("{:?}", format!("{}.{}: {}", f.db, f.table, f.condition)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        diffs.push(format!(
            "the per-table --where were [{}], now [{}]",
            show(&m.export.table_where),
            show(&wanted.table_where)
        ));
    }
    if m.export.chunk_rows != wanted.chunk_rows {
        diffs.push(format!(
            "--chunk-rows was {:?}, now {:?}",
            m.export.chunk_rows, wanted.chunk_rows
        ));
    }
    if m.export.compress != wanted.compress || m.export.level != wanted.level {
        diffs.push(format!(
            "compression was {:?} level {}, now {:?} level {}",
            m.export.compress, m.export.level, wanted.compress, wanted.level
        ));
    }
    if m.source.endpoint != endpoint || m.source.user != user {
        diffs.push(format!(
            "the source was {}@{}, now {}@{}",
            m.source.user, m.source.endpoint, user, endpoint
        ));
    }
    diffs
}

/// A resumed table must still have the columns and key it was planned with:
/// its chunk bounds are values of that key.
pub(super) fn check_same_table(source: &SourceTable, planned: &TableDescription) -> Result<()> {
    let columns: Vec<_> = source.columns.iter().map(|c| &c.desc).collect();
    let planned_columns: Vec<_> = planned.columns.iter().collect();
    if columns != planned_columns || planned.key != source.key {
        bail!(
            "{} changed since this export started (columns or key differ); start a new export in a new --dir",
            source.table
        );
    }
    Ok(())
}

/// Why a chunk that `export.log` records as done is exported again.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Redo {
    /// The file's checksum is not the recorded one (the file name).
    ChecksumDiffers(String),
    /// The file cannot be read (the file name).
    Missing(String),
}

/// Keeps every chunk recorded as `done` whose file is intact: marks it
/// written with the recorded stats. `checksum` gives a chunk file's SHA-256,
/// `None` when it cannot be read. Returns the recorded chunks that are
/// exported again; records of chunks the plan does not hold are ignored.
pub(super) fn keep_intact_chunks(
    chunks: &mut [ChunkRecord],
    done: Vec<ExportedChunk>,
    checksum: impl Fn(&str) -> Option<String>,
) -> Vec<Redo> {
    let mut redo = Vec::new();
    for d in done {
        let Some(chunk) = chunks.iter_mut().find(|c| c.number == d.number) else {
            continue;
        };
        match checksum(&chunk.file) {
            Some(sum) if sum == d.stats.sha256 => chunk.written = Some(d.stats),
            Some(_) => redo.push(Redo::ChecksumDiffers(chunk.file.clone())),
            None => redo.push(Redo::Missing(chunk.file.clone())),
        }
    }
    redo
}

/// Indexes of the chunks still to export.
pub(super) fn pending_chunks(chunks: &[ChunkRecord]) -> Vec<usize> {
    chunks
        .iter()
        .enumerate()
        .filter(|(_, c)| c.written.is_none())
        .map(|(i, _)| i)
        .collect()
}

/// The consistency the manifest records for this run: a resumed export
/// (`chunks_kept` > 0) mixes the snapshots of several runs, so it says so,
/// naming the first run's and this one's.
pub(super) fn recorded_consistency(before: Option<&str>, chunks_kept: u64, now: &str) -> String {
    match before {
        Some(before) if chunks_kept > 0 => {
            let first = before.split(", resumed").next().unwrap_or(before);
            format!("{first}, resumed with {now}")
        }
        _ => now.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::{ChunkStats, Compress, SourceInfo};

    fn settings() -> ExportSettings {
        ExportSettings {
            table_patterns: vec!["shop.orders".into()],
            where_clause: None,
            table_where: Vec::new(),
            chunk_rows: Some(1000),
            compress: Compress::Gzip,
            level: 1,
        }
    }

    fn manifest() -> Manifest {
        let source = SourceInfo {
            endpoint: "db1:3306".into(),
            user: "app".into(),
            server_version: "10.11".into(),
            server_time_utc: String::new(),
        };
        Manifest::new(source, settings(), "2026-01-01T00:00:00Z".into())
    }

    #[test]
    fn a_rerun_with_the_same_options_matches() {
        assert!(export_differences(&manifest(), &settings(), "db1:3306", "app").is_empty());
    }

    #[test]
    fn every_changed_option_is_named() {
        let mut wanted = settings();
        wanted.table_patterns.push("shop.*".into());
        wanted.where_clause = Some("id > 5".into());
        wanted.chunk_rows = None;
        wanted.level = 6;
        let diffs = export_differences(&manifest(), &wanted, "db2:3306", "app");
        assert_eq!(
            diffs,
            vec![
                r#"--table was ["shop.orders"], now ["shop.orders", "shop.*"]"#,
                r#"--where was None, now Some("id > 5")"#,
                "--chunk-rows was Some(1000), now None",
                "compression was Gzip level 1, now Gzip level 6",
                "the source was app@db1:3306, now app@db2:3306",
            ]
        );
        let other_user = export_differences(&manifest(), &settings(), "db1:3306", "root");
        assert_eq!(
            other_user,
            vec!["the source was app@db1:3306, now root@db1:3306"]
        );
    }

    fn chunk(number: u32) -> ChunkRecord {
        ChunkRecord {
            number,
            file: format!("chunk-{number}"),
            lower: None,
            upper: None,
            written: None,
        }
    }

    fn done(number: u32, sha256: &str) -> ExportedChunk {
        ExportedChunk {
            number,
            stats: ChunkStats {
                rows: 10,
                bytes: 100,
                csv_bytes: 200,
                sha256: sha256.into(),
            },
        }
    }

    #[test]
    fn only_intact_recorded_chunks_are_kept() {
        let mut chunks = vec![chunk(1), chunk(2), chunk(3), chunk(4)];
        let log = vec![done(1, "a"), done(2, "b"), done(3, "c"), done(9, "z")];
        let on_disk = |file: &str| match file {
            "chunk-1" => Some("a".to_string()),
            "chunk-2" => Some("tampered".to_string()),
            _ => None,
        };
        let redo = keep_intact_chunks(&mut chunks, log, on_disk);
        assert_eq!(
            redo,
            vec![
                Redo::ChecksumDiffers("chunk-2".into()),
                Redo::Missing("chunk-3".into())
            ]
        );
        assert_eq!(chunks[0].written.as_ref().map(|s| s.rows), Some(10));
        assert_eq!(pending_chunks(&chunks), vec![1, 2, 3]);
    }

    #[test]
    fn a_resumed_export_names_both_snapshots() {
        assert_eq!(
            recorded_consistency(None, 0, "single-snapshot"),
            "single-snapshot"
        );
        // Nothing kept: this run's snapshot is the whole dump's.
        assert_eq!(
            recorded_consistency(Some("synchronized-snapshots"), 0, "single-snapshot"),
            "single-snapshot"
        );
        assert_eq!(
            recorded_consistency(Some("synchronized-snapshots"), 3, "single-snapshot"),
            "synchronized-snapshots, resumed with single-snapshot"
        );
        // A second resume names the first run's, not a chain.
        assert_eq!(
            recorded_consistency(
                Some("synchronized-snapshots, resumed with single-snapshot"),
                3,
                "per-connection-snapshots"
            ),
            "synchronized-snapshots, resumed with per-connection-snapshots"
        );
    }
}
