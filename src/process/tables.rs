//! The tables' state during a run: which chunks an earlier run finished
//! (kept), which are left to do (pending; failed ones are retried), the
//! journal of each finished chunk (`process.log`), and the table.json of
//! each table once all its chunks are done.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};

use super::claims;
use super::options::TableProcessSummary;
use super::output_chunk::same_header;
use super::output_dump::{self, output_description};
use crate::dump::{
    self, ChunkRecord, DumpDir, Growing, ProcessedChunk, TableDescription, TableEntry,
};

/// One table's state during a run.
pub(super) struct TableWork {
    pub entry: TableEntry,
    pub input: TableDescription,
    pub out_dir: PathBuf,
    /// The output header, once a chunk has set it.
    pub columns: Mutex<Option<Vec<String>>>,
    pub done: Mutex<BTreeMap<u32, ProcessedChunk>>,
    /// The output has a table.json (maybe an incomplete one, for a reader
    /// that follows the processing).
    pub described: AtomicBool,
}

/// A chunk of the input, as a worker gets it.
pub(super) struct InputChunk<'a> {
    pub table: &'a TableDescription,
    pub chunk: &'a ChunkRecord,
    /// The chunk's file.
    pub path: PathBuf,
}

impl InputChunk<'_> {
    /// The CSV bytes `table.json` records for the chunk: its reader holds the
    /// file to them (a chunk cut between two gzip members reads as valid).
    pub fn csv_bytes(&self) -> Option<u64> {
        self.chunk.written.as_ref().map(|w| w.csv_bytes)
    }
}

/// What earlier runs finished of a table.
#[derive(Debug, Default)]
struct Kept {
    /// The output header, if a chunk is kept.
    columns: Option<Vec<String>>,
    done: BTreeMap<u32, ProcessedChunk>,
}

impl TableWork {
    /// A table of the input, with what earlier runs finished of it in `out`.
    pub fn resume(
        input: &DumpDir,
        out: &DumpDir,
        entry: &TableEntry,
        follow: Option<&Growing>,
        cooperating: bool,
    ) -> Result<TableWork> {
        let desc = input.table_description(entry, follow)?;
        let out_dir = out.path(&entry.dir);
        dump::create_private_dir(&out_dir)?;
        // Temporary files of a killed run (cooperating runners may be
        // writing theirs now: theirs are in their claims' directories).
        if !cooperating {
            for e in fs::read_dir(&out_dir)?.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        output_dump::copy_definitions(input, out, entry)?;
        let described = out.read_table(entry)?;
        let described_now = described.is_some();
        let kept = match described.filter(|t| t.complete) {
            Some(finished) => kept_from_table(finished),
            None if cooperating => {
                let done = committed(&out_dir, &desc)?;
                Kept {
                    columns: done.values().next().map(|p| p.columns.clone()),
                    done,
                }
            }
            None => {
                let log = dump::read_json_lines(&out_dir.join(dump::PROCESS_LOG))?;
                kept_from_log(log, |p| {
                    let path = out_dir.join(&chunk_of(&desc, p.number)?.file);
                    Ok(dump::sha256_file(&path).ok().as_deref() == Some(p.stats.sha256.as_str()))
                })?
            }
        };
        Ok(TableWork {
            entry: entry.clone(),
            input: desc,
            out_dir,
            columns: Mutex::new(kept.columns),
            done: Mutex::new(kept.done),
            described: AtomicBool::new(described_now),
        })
    }

    /// `db.table`, for messages.
    pub fn label(&self) -> String {
        format!("{}.{}", self.input.db, self.input.table)
    }

    pub fn input_chunk<'a>(&'a self, input: &DumpDir, chunk: &'a ChunkRecord) -> InputChunk<'a> {
        InputChunk {
            table: &self.input,
            chunk,
            path: input.path(&self.entry.dir).join(&chunk.file),
        }
    }

    /// Cooperating runners: what every runner committed so far becomes
    /// what is done (a table's chunks must share one header).
    pub fn refresh_committed(&self) -> Result<()> {
        let all = committed(&self.out_dir, &self.input)?;
        let mut columns = self
            .columns
            .lock()
            .map_err(|_| anyhow!("a worker panicked"))?;
        for p in all.values() {
            same_header(&mut columns, &p.columns)
                .with_context(|| format!("chunk {:06} of {}", p.number, self.label()))?;
        }
        *self.done.lock().map_err(|_| anyhow!("a worker panicked"))? = all;
        Ok(())
    }

    /// Notes a chunk done (its record is elsewhere: a claim's commit).
    pub fn note_done(&self, done: ProcessedChunk) -> Result<()> {
        self.done
            .lock()
            .map_err(|_| anyhow!("a worker panicked"))?
            .insert(done.number, done);
        Ok(())
    }

    fn done_numbers(&self) -> BTreeSet<u32> {
        self.done
            .lock()
            .map(|d| d.keys().copied().collect())
            .unwrap_or_default()
    }

    fn kept_count(&self) -> u64 {
        self.done.lock().map(|d| d.len() as u64).unwrap_or(0)
    }
}

/// The chunks of a table committed by cooperating runners.
fn committed(
    out_dir: &std::path::Path,
    desc: &TableDescription,
) -> Result<BTreeMap<u32, ProcessedChunk>> {
    let numbers: Vec<u32> = desc.chunks.iter().map(|c| c.number).collect();
    claims::committed_chunks(out_dir, &numbers, |n| {
        dump::chunk_file_name(n, desc.compress)
    })
}

/// A complete output table.json: every chunk it lists as written is done.
fn kept_from_table(finished: TableDescription) -> Kept {
    let columns: Vec<String> = finished.columns.iter().map(|c| c.name.clone()).collect();
    let done = finished
        .chunks
        .into_iter()
        .filter_map(|c| {
            let stats = c.written?;
            Some((
                c.number,
                ProcessedChunk {
                    number: c.number,
                    columns: columns.clone(),
                    rows_in: 0,
                    stats,
                },
            ))
        })
        .collect();
    Kept {
        columns: Some(columns),
        done,
    }
}

/// The chunks `process.log` lists, each kept only if `intact` (its file is
/// still the one recorded); the others are processed again.
fn kept_from_log(
    log: Vec<ProcessedChunk>,
    mut intact: impl FnMut(&ProcessedChunk) -> Result<bool>,
) -> Result<Kept> {
    let mut kept = Kept::default();
    for p in log {
        // Kept only if the file is still the one recorded.
        if intact(&p)? {
            kept.columns.get_or_insert_with(|| p.columns.clone());
            kept.done.insert(p.number, p);
        }
    }
    Ok(kept)
}

/// `(table, chunk)` indexes of the chunks left to do, failed ones included.
pub(super) fn pending_chunks(tables: &[TableWork], follow: bool) -> Vec<(usize, usize)> {
    let numbers: Vec<Vec<u32>> = tables
        .iter()
        .map(|w| w.input.chunks.iter().map(|c| c.number).collect())
        .collect();
    let done: Vec<BTreeSet<u32>> = tables.iter().map(TableWork::done_numbers).collect();
    pending(&numbers, &done, follow)
}

/// The chunks (by their numbers, table by table) not done, in table order;
/// with a followed input, the first chunk of every table first.
fn pending(numbers: &[Vec<u32>], done: &[BTreeSet<u32>], follow: bool) -> Vec<(usize, usize)> {
    let pending: Vec<(usize, usize)> = numbers
        .iter()
        .zip(done)
        .enumerate()
        .flat_map(|(t, (numbers, done))| {
            numbers
                .iter()
                .enumerate()
                .filter(|(_, n)| !done.contains(n))
                .map(move |(i, _)| (t, i))
                .collect::<Vec<_>>()
        })
        .collect();
    match follow {
        true => dump::first_chunks_first(pending),
        false => pending,
    }
}

/// Chunks finished by earlier runs.
pub(super) fn kept_chunks(tables: &[TableWork]) -> u64 {
    tables.iter().map(TableWork::kept_count).sum()
}

/// The rows this run has to process, for the progress bar.
pub(super) fn rows_to_process(
    tables: &[TableWork],
    pending: &[(usize, usize)],
    follow: bool,
) -> u64 {
    if follow {
        // Not all written yet: what the export planned.
        tables.iter().map(|t| t.input.planned_rows).sum()
    } else {
        pending
            .iter()
            .filter_map(|&(t, c)| tables[t].input.chunks[c].written.as_ref().map(|w| w.rows))
            .sum()
    }
}

/// Journals a processed chunk in `process.log`, and tells a reader that
/// follows the output.
pub(super) fn record_done(
    out: &DumpDir,
    work: &TableWork,
    done: ProcessedChunk,
    growing: Option<&Growing>,
) -> Result<()> {
    dump::append_json_line(&work.out_dir.join(dump::PROCESS_LOG), &done)?;
    let mut all = work.done.lock().map_err(|_| anyhow!("a worker panicked"))?;
    all.insert(done.number, done);
    if let Some(growing) = growing {
        // The reader needs a table's columns before its first chunk: an
        // incomplete table.json (the complete one comes at the end).
        if !work.described.swap(true, Ordering::SeqCst) {
            let columns = all.values().next().map(|p| p.columns.clone());
            let mut desc = output_description(&work.input, &columns.unwrap_or_default(), &all);
            desc.complete = false;
            desc.planned_rows = work.input.planned_rows;
            out.write_table(&work.entry, &desc)?;
        }
        growing.changed();
    }
    Ok(())
}

/// Chunk `c` of a table of a dump being exported, once it is written.
pub(super) fn written_input(
    growing: &Growing,
    input: &DumpDir,
    work: &TableWork,
    c: usize,
) -> Result<ChunkRecord> {
    let number = work.input.chunks[c].number;
    growing.wait_for(
        || {
            format!(
                "chunk {number:06} of {}.{}",
                work.input.db, work.input.table
            )
        },
        || {
            Ok(input
                .written_chunks(&work.entry)?
                .and_then(|desc| desc.chunks.into_iter().find(|ch| ch.number == number))
                .filter(|ch| ch.written.is_some()))
        },
    )
}

fn chunk_of(desc: &TableDescription, number: u32) -> Result<&ChunkRecord> {
    desc.chunks
        .iter()
        .find(|c| c.number == number)
        .ok_or_else(|| anyhow!("chunk {number:06} is not in {}.{}", desc.db, desc.table))
}

/// Tables whose chunks are all done get their table.json (and lose their
/// journal) if `write`; gives every table's summary, and whether all are
/// done.
pub(super) fn finish_tables(
    out: &DumpDir,
    tables: &[TableWork],
    write: bool,
) -> Result<(Vec<TableProcessSummary>, bool)> {
    let mut summary_tables = Vec::new();
    let mut all_done = true;
    for work in tables {
        let done = work.done.lock().map_err(|_| anyhow!("a worker panicked"))?;
        let columns = work
            .columns
            .lock()
            .map_err(|_| anyhow!("a worker panicked"))?
            .clone();
        let complete = done.len() == work.input.chunks.len();
        all_done &= complete;
        if complete && write {
            let cols = columns.clone().unwrap_or_default();
            let desc = output_description(&work.input, &cols, &done);
            out.write_table(&work.entry, &desc)?;
            let _ = fs::remove_file(work.out_dir.join(dump::PROCESS_LOG));
        }
        summary_tables.push(TableProcessSummary {
            db: work.input.db.clone(),
            table: work.input.table.clone(),
            chunks: work.input.chunks.len(),
            done: done.len(),
            columns,
        });
    }
    Ok((summary_tables, all_done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::fixtures::{chunk, names, stats, table};

    fn processed(number: u32, columns: &[&str], sha256: &str) -> ProcessedChunk {
        ProcessedChunk {
            number,
            columns: names(columns),
            rows_in: 5,
            stats: stats(3, sha256),
        }
    }

    #[test]
    fn a_complete_output_table_keeps_every_written_chunk_with_its_columns() {
        let finished = table(
            &["id"],
            vec![
                chunk(1, Some(stats(3, "a"))),
                chunk(2, None),
                chunk(3, Some(stats(3, "c"))),
            ],
        );
        let kept = kept_from_table(finished);
        assert_eq!(kept.columns, Some(names(&["id"])));
        assert_eq!(kept.done.keys().copied().collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(kept.done[&3].columns, names(&["id"]));
        assert_eq!(kept.done[&3].stats, stats(3, "c"));
        assert_eq!(kept.done[&3].rows_in, 0);
    }

    #[test]
    fn the_journal_keeps_only_chunks_whose_file_is_intact() {
        let log = vec![
            processed(1, &["a"], "changed"),
            processed(2, &["b"], "same"),
            processed(3, &["c"], "same"),
        ];
        let kept = kept_from_log(log, |p| Ok(p.stats.sha256 == "same")).unwrap();
        assert_eq!(kept.done.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
        // The header is the first kept chunk's.
        assert_eq!(kept.columns, Some(names(&["b"])));
        let none = kept_from_log(vec![processed(1, &["a"], "x")], |_| Ok(false)).unwrap();
        assert!(none.done.is_empty() && none.columns.is_none());
        assert!(kept_from_log(vec![processed(9, &["a"], "x")], |_| Err(anyhow!("gone"))).is_err());
    }

    #[test]
    fn pending_chunks_are_those_not_done_and_a_followed_input_starts_every_table() {
        let numbers = vec![vec![1, 2, 3], vec![1, 2], vec![1]];
        let done = vec![BTreeSet::from([2]), BTreeSet::new(), BTreeSet::from([1])];
        assert_eq!(
            pending(&numbers, &done, false),
            vec![(0, 0), (0, 2), (1, 0), (1, 1)]
        );
        assert_eq!(
            pending(&numbers, &done, true),
            vec![(0, 0), (1, 0), (0, 2), (1, 1)]
        );
    }
}
