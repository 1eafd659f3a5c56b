//! The output dump as a whole: its directory and manifest (new, or this same
//! processing resumed), the definitions copied from the input, the output
//! tables' descriptions, and the note in the input of where it went.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::dialect::Encoding;
use crate::dump::{
    self, ColumnDescription, DumpDir, Manifest, OutputRecord, ProcessedChunk, ProcessedFrom,
    TableDescription, TableEntry,
};

/// The output directory, locked for this run (unless runners cooperate on
/// it).
pub(super) struct OutputDump {
    pub dir: DumpDir,
    pub manifest: Manifest,
    _lock: Option<File>,
}

impl OutputDump {
    /// The output directory: new, or this same processing resumed.
    /// Cooperating runners take no lock: their claims share the work.
    pub fn open(
        out: &Path,
        input: &Manifest,
        processed: &ProcessedFrom,
        cooperating: bool,
    ) -> Result<OutputDump> {
        let dir = DumpDir::new(out);
        match fs::metadata(out) {
            Ok(m) if !m.is_dir() => bail!("--out {} exists and is not a directory", out.display()),
            Ok(_) => {}
            Err(_) => dump::create_private_dir(out)?,
        }
        let lock = match cooperating {
            true => None,
            false => Some(dir.lock().context(
                "with --map (and in copy) one process at a time writes an output; several runners share one only with --exec",
            )?),
        };
        let manifest = match dir.read_manifest()? {
            Some(m) => {
                check_same_processing(&m, processed, out)?;
                m
            }
            None => {
                if !dir.is_empty()? {
                    // A runner started at the same moment may have written
                    // the manifest (and begun) since it was read.
                    if let Some(m) = dir.read_manifest()?.filter(|_| cooperating) {
                        check_same_processing(&m, processed, out)?;
                        return Ok(OutputDump {
                            dir,
                            manifest: m,
                            _lock: lock,
                        });
                    }
                    bail!(
                        "--out {} is not empty and holds no myspool manifest",
                        out.display()
                    );
                }
                let m = output_manifest(input, processed, dump::utc_now());
                dir.write_manifest(&m)?;
                m
            }
        };
        Ok(OutputDump {
            dir,
            manifest,
            _lock: lock,
        })
    }

    /// Marks the output complete (once: a rerun keeps the first finish time).
    pub fn complete(&mut self) -> Result<()> {
        if !self.manifest.complete {
            self.manifest.complete = true;
            self.manifest.finished_at = Some(dump::utc_now());
            self.dir.write_manifest(&self.manifest)?;
        }
        Ok(())
    }
}

/// An output directory that holds a manifest is resumed only by the same
/// processing of the same input.
fn check_same_processing(existing: &Manifest, processed: &ProcessedFrom, out: &Path) -> Result<()> {
    if existing.processed.as_ref() != Some(processed) {
        bail!(
            "{} holds another processing ({}); use a new --out, or rerun with the original --dir, --exec and --format",
            out.display(),
            existing
                .processed
                .as_ref()
                .map(|p| format!("of {} with {:?}, {}", p.from, p.exec, p.format))
                .unwrap_or_else(|| "an export".into())
        );
    }
    Ok(())
}

/// The manifest of a new output: the input's, marked as processed and not
/// complete yet.
fn output_manifest(input: &Manifest, processed: &ProcessedFrom, started_at: String) -> Manifest {
    let mut m: Manifest = input.clone();
    m.processed = Some(processed.clone());
    m.complete = false;
    m.started_at = started_at;
    m.finished_at = None;
    m
}

/// What an output whose processing is not complete lacks, for the error
/// of a command that needs it whole (`load`): the chunks not done, table by
/// table (at most a few named each).
pub fn missing_work(out: &DumpDir, manifest: &Manifest) -> String {
    let Some(p) = &manifest.processed else {
        return String::new();
    };
    let input = DumpDir::new(&p.from);
    let mut parts = Vec::new();
    let (mut done_all, mut total_all) = (0, 0);
    for entry in &manifest.tables {
        let numbers: Vec<u32> = match input.read_table(entry) {
            Ok(Some(d)) => d.chunks.iter().map(|c| c.number).collect(),
            _ => continue,
        };
        let done = out.processed_chunks(entry).unwrap_or_default();
        let missing: Vec<u32> = numbers
            .iter()
            .copied()
            .filter(|n| !done.contains(n))
            .collect();
        total_all += numbers.len();
        done_all += numbers.len() - missing.len();
        if !missing.is_empty() {
            parts.push(format!(
                "{}.{} chunks {}",
                entry.db,
                entry.table,
                few(&missing)
            ));
        }
    }
    format!(
        "{done_all} of {total_all} chunks done{}",
        if parts.is_empty() {
            String::new()
        } else {
            format!("; missing: {}", parts.join(", "))
        }
    )
}

/// Chunk numbers, the first few of them.
fn few(numbers: &[u32]) -> String {
    const SHOWN: usize = 5;
    let mut text: Vec<String> = numbers.iter().take(SHOWN).map(|n| n.to_string()).collect();
    if numbers.len() > SHOWN {
        text.push(format!("and {} more", numbers.len() - SHOWN));
    }
    text.join(", ")
}

/// Notes in the input dump where it was processed to (`outputs.jsonl`), so
/// `myspool status` can report on every output. Listed once.
pub(super) fn record_output(input: &DumpDir, out: &Path, processed: &ProcessedFrom) -> Result<()> {
    let path = input.root().join(dump::OUTPUTS_LOG);
    let out = fs::canonicalize(out)?.display().to_string();
    let known: Vec<OutputRecord> = dump::read_json_lines(&path)?;
    if known.iter().any(|k| k.out == out) {
        return Ok(());
    }
    dump::append_json_line(
        &path,
        &OutputRecord {
            out,
            exec: processed.exec.clone(),
            format: processed.format.clone(),
        },
    )
}

/// Copies a table's schema.sql and its database's database.sql and
/// objects.sql, once.
pub(super) fn copy_definitions(input: &DumpDir, out: &DumpDir, entry: &TableEntry) -> Result<()> {
    let out_dir = out.path(&entry.dir);
    // A processed table may not match its schema.sql any more; it is
    // kept as the source's definition, for reference.
    let schema = input.path(&entry.dir).join(dump::SCHEMA_FILE);
    if schema.exists() && !out_dir.join(dump::SCHEMA_FILE).exists() {
        dump::write_atomic(&out_dir.join(dump::SCHEMA_FILE), &fs::read(&schema)?)?;
    }
    let db_sql = input
        .path(&dump::safe_file_name(&entry.db))
        .join(dump::DATABASE_FILE);
    let out_db_sql = out
        .path(&dump::safe_file_name(&entry.db))
        .join(dump::DATABASE_FILE);
    if db_sql.exists() && !out_db_sql.exists() {
        dump::write_atomic(&out_db_sql, &fs::read(&db_sql)?)?;
    }
    let (objects, out_objects) = (input.objects_path(&entry.db), out.objects_path(&entry.db));
    if objects.exists() && !out_objects.exists() {
        dump::write_atomic(&out_objects, &fs::read(&objects)?)?;
    }
    Ok(())
}

/// The output table's description: the input's, with the new columns (those
/// that kept a name keep their description; new ones are text of unknown type).
pub(super) fn output_description(
    input: &TableDescription,
    columns: &[String],
    done: &BTreeMap<u32, ProcessedChunk>,
) -> TableDescription {
    let mut desc = input.clone();
    desc.columns = columns
        .iter()
        .map(|name| {
            input
                .columns
                .iter()
                .find(|c| &c.name == name)
                .cloned()
                .unwrap_or(ColumnDescription {
                    name: name.clone(),
                    column_type: "unknown".into(),
                    data_type: "unknown".into(),
                    nullable: true,
                    charset: None,
                    collation: None,
                    encoding: Encoding::Text,
                    invisible: false,
                })
        })
        .collect();
    // The output is compressed as the input was (copy --compress none keeps
    // its intermediate dumps uncompressed end to end).
    for chunk in &mut desc.chunks {
        chunk.file = dump::chunk_file_name(chunk.number, input.compress);
        chunk.written = done.get(&chunk.number).map(|d| d.stats.clone());
    }
    desc.planned_rows = done.values().map(|d| d.stats.rows).sum();
    desc.complete = true;
    desc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::{Compress, ExportSettings, SourceInfo};
    use crate::process::fixtures::{chunk, column, names, stats, table};

    fn manifest() -> Manifest {
        let mut m = Manifest::new(
            SourceInfo {
                endpoint: "db1:3306".into(),
                user: "app".into(),
                server_version: "11.4".into(),
                server_time_utc: "2026-01-01T00:00:00Z".into(),
            },
            ExportSettings {
                table_patterns: vec!["shop.*".into()],
                where_clause: None,
                table_where: Vec::new(),
                chunk_rows: None,
                compress: Compress::Gzip,
                level: 1,
            },
            "2026-01-01T00:00:00Z".into(),
        );
        m.complete = true;
        m.finished_at = Some("2026-01-01T01:00:00Z".into());
        m
    }

    fn processed(exec: &str) -> ProcessedFrom {
        ProcessedFrom {
            from: "/data/dump".into(),
            exec: exec.into(),
            format: "csv".into(),
        }
    }

    #[test]
    fn missing_chunks_are_named_a_few_at_a_time() {
        assert_eq!(few(&[3]), "3");
        assert_eq!(few(&[1, 2, 3, 4, 5, 6, 7]), "1, 2, 3, 4, 5, and 2 more");
    }

    #[test]
    fn a_new_output_is_the_input_marked_processed_and_not_complete() {
        let m = output_manifest(&manifest(), &processed("cat"), "now".into());
        assert_eq!(m.processed, Some(processed("cat")));
        assert!(!m.complete);
        assert_eq!(m.started_at, "now");
        assert_eq!(m.finished_at, None);
        assert_eq!(m.tables, manifest().tables);
    }

    #[test]
    fn only_the_same_processing_resumes_an_output() {
        let out = Path::new("/data/out");
        let same = output_manifest(&manifest(), &processed("cat"), "now".into());
        assert!(check_same_processing(&same, &processed("cat"), out).is_ok());
        let e = check_same_processing(&same, &processed("tac"), out).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/data/out holds another processing (of /data/dump with \"cat\", csv); use a new --out, or rerun with the original --dir, --exec and --format"
        );
        let e = check_same_processing(&manifest(), &processed("cat"), out).unwrap_err();
        assert!(e.to_string().contains("(an export)"), "{e}");
    }

    #[test]
    fn an_output_table_keeps_the_columns_it_still_has_and_counts_its_rows() {
        let mut input = table(
            &["id", "secret"],
            vec![
                chunk(1, Some(stats(99, "a"))),
                chunk(2, Some(stats(99, "b"))),
            ],
        );
        input.compress = Compress::None;
        let done = BTreeMap::from([(
            1,
            ProcessedChunk {
                number: 1,
                columns: names(&["id", "added"]),
                rows_in: 99,
                stats: stats(7, "c"),
            },
        )]);
        let desc = output_description(&input, &names(&["id", "added"]), &done);
        assert_eq!(desc.columns[0], column("id"));
        assert_eq!(desc.columns[1].name, "added");
        assert_eq!(desc.columns[1].column_type, "unknown");
        assert!(desc.columns[1].nullable);
        assert_eq!(
            desc.chunks[0].file,
            dump::chunk_file_name(1, Compress::None)
        );
        assert_eq!(desc.chunks[0].written, Some(stats(7, "c")));
        assert_eq!(desc.chunks[1].written, None);
        assert_eq!(desc.planned_rows, 7);
        assert!(desc.complete);
    }
}
