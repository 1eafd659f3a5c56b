//! Status: what is done in a dump directory, and what would continue it.
//!
//! Read from the files alone (no server): the manifest and `table.json`s for
//! the export, `export.log` while it runs, the outputs a processing recorded
//! in `outputs.jsonl`, and the load journals for every target.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::dump::{self, DumpDir, ExportedChunk, Manifest, OutputRecord};
use crate::journal;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub dir: PathBuf,
    pub exported_complete: bool,
    /// Set when the dump was made by `myspool process`.
    pub processed_from: Option<String>,
    pub tables: Vec<TableStatus>,
    /// Commands that would continue what is unfinished.
    pub next: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    pub db: String,
    pub table: String,
    pub chunks: usize,
    pub exported: usize,
    pub rows: u64,
    pub processed: Vec<OutputStatus>,
    pub loaded: Vec<LoadStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputStatus {
    pub out: String,
    pub exec: String,
    pub done: usize,
    /// Chunks whose command failed (their stderr is kept) and not yet redone.
    pub failed: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadStatus {
    /// `host:port` of the target.
    pub target: String,
    pub database: String,
    pub committed: usize,
    pub in_doubt: Vec<u32>,
    pub complete: bool,
    pub autoinc_removed: bool,
    pub indexes_dropped: bool,
}

pub fn status(dir: &Path) -> Result<Status> {
    let dump = DumpDir::new(dir);
    let manifest = dump.require_manifest()?;
    let outputs: Vec<OutputRecord> = dump::read_json_lines(&dir.join(dump::OUTPUTS_LOG))?;
    let mut tables = Vec::new();
    let mut next = Vec::new();
    let mut loads_unfinished: Vec<(String, String)> = Vec::new();
    let mut outputs_unfinished: Vec<&OutputRecord> = Vec::new();
    for entry in &manifest.tables {
        let table_dir = dump.path(&entry.dir);
        let desc = dump.read_table(entry)?;
        // A processed dump gets its table.json when the table is done; until
        // then its chunks are the input's, and its log says which are done.
        if let (Some(p), false) = (
            &manifest.processed,
            desc.as_ref().is_some_and(|d| d.complete),
        ) {
            let input = DumpDir::new(&p.from).read_table(entry)?;
            let done = dump.processed_chunks(entry).unwrap_or_default();
            let rows = input
                .iter()
                .flat_map(|d| d.chunks.iter())
                .filter(|c| done.contains(&c.number))
                .filter_map(|c| c.written.as_ref().map(|w| w.rows))
                .sum();
            tables.push(TableStatus {
                db: entry.db.clone(),
                table: entry.table.clone(),
                chunks: input.as_ref().map_or(0, |d| d.chunks.len()),
                exported: done.len(),
                rows,
                processed: Vec::new(),
                loaded: Vec::new(),
            });
            continue;
        }
        let chunks = desc.as_ref().map_or(0, |d| d.chunks.len());
        let (exported, rows) = match &desc {
            Some(d) if d.complete => (
                d.chunks.len(),
                d.chunks
                    .iter()
                    .filter_map(|c| c.written.as_ref())
                    .map(|w| w.rows)
                    .sum(),
            ),
            Some(_) => {
                let done: Vec<ExportedChunk> =
                    dump::read_json_lines(&table_dir.join(dump::EXPORT_LOG))?;
                (done.len(), done.iter().map(|d| d.stats.rows).sum())
            }
            None => (0, 0),
        };
        let mut processed = Vec::new();
        for o in &outputs {
            let out = DumpDir::new(&o.out);
            let done = out.processed_chunks(entry).unwrap_or_default();
            let out_table_dir = out.path(&entry.dir);
            let failed: Vec<u32> = desc
                .iter()
                .flat_map(|d| d.chunks.iter())
                .map(|c| c.number)
                .filter(|n| {
                    !done.contains(n) && out_table_dir.join(format!("{n:06}.stderr")).exists()
                })
                .collect();
            if done.len() < chunks && !outputs_unfinished.iter().any(|u| u.out == o.out) {
                outputs_unfinished.push(o);
            }
            processed.push(OutputStatus {
                out: o.out.clone(),
                exec: o.exec.clone(),
                done: done.len(),
                failed,
            });
        }
        let mut loaded = Vec::new();
        for (target, database, state) in journal::journals_in(&table_dir)? {
            if !state.complete && !loads_unfinished.contains(&(target.clone(), database.clone())) {
                loads_unfinished.push((target.clone(), database.clone()));
            }
            loaded.push(LoadStatus {
                target,
                database,
                committed: state.committed.len(),
                in_doubt: state.in_doubt.iter().copied().collect(),
                complete: state.complete,
                autoinc_removed: state.autoinc_dropped.is_some(),
                indexes_dropped: state.indexes_dropped.is_some(),
            });
        }
        tables.push(TableStatus {
            db: entry.db.clone(),
            table: entry.table.clone(),
            chunks,
            exported,
            rows,
            processed,
            loaded,
        });
    }
    let dir_arg = quote(&dir.display().to_string());
    if !manifest.complete {
        next.push(match &manifest.processed {
            Some(p) => format!(
                "myspool process --dir {} --out {dir_arg} --exec {}{}",
                quote(&p.from),
                quote(&p.exec),
                if p.format == "jsonl" {
                    " --format jsonl"
                } else {
                    ""
                }
            ),
            None => export_command(&manifest, &dir_arg),
        });
    }
    for o in outputs_unfinished {
        next.push(format!(
            "myspool process --dir {dir_arg} --out {} --exec {}{}",
            quote(&o.out),
            quote(&o.exec),
            if o.format == "jsonl" {
                " --format jsonl"
            } else {
                ""
            }
        ));
    }
    for (target, database) in loads_unfinished {
        next.push(format!(
            "myspool load --dir {dir_arg} --to mysql://USER@{target} --into {} (with the options of the interrupted load)",
            quote(&database)
        ));
    }
    Ok(Status {
        dir: dir.to_path_buf(),
        exported_complete: manifest.complete,
        processed_from: manifest.processed.as_ref().map(|p| p.from.clone()),
        tables,
        next,
    })
}

fn export_command(m: &Manifest, dir_arg: &str) -> String {
    let mut cmd = format!(
        "myspool export --from mysql://{}@{}",
        m.source.user, m.source.endpoint
    );
    for t in &m.export.table_patterns {
        cmd.push_str(&format!(" --table {}", quote(t)));
    }
    cmd.push_str(&format!(" --dir {dir_arg}"));
    if let Some(w) = &m.export.where_clause {
        cmd.push_str(&format!(" --where {}", quote(w)));
    }
    if let Some(n) = m.export.chunk_rows {
        cmd.push_str(&format!(" --chunk-rows {n}"));
    }
    match m.export.compress {
        dump::Compress::None => cmd.push_str(" --compress none"),
        dump::Compress::Gzip => cmd.push_str(&format!(" --level {}", m.export.level)),
    }
    cmd
}

/// Quotes for a POSIX shell when needed.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@=,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn shell_quoting() {
        assert_eq!(quote("shop.orders"), "shop.orders");
        assert_eq!(quote("shop.*"), "'shop.*'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }
}
