//! The load journal: what has been done to one target table, so a rerun after
//! any crash loads each chunk exactly once and undoes temporary changes.
//!
//! One JSON-lines file per (target server, target database, table), in the
//! table's directory of the dump: `load@<host:port>@<db>.jsonl`
//! ([`dump::journal_file_name`]). Every line is fsynced before the step it
//! announces is taken (or, for `Committed`, right after the commit it
//! records), so after `kill -9` the journal never claims less than what
//! happened, and says exactly which chunk may or may not have committed: the
//! one with `Committing` and no `Committed`. The loader settles that one by
//! counting the chunk's key range on the target.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::dump;

/// One step of a load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The target table was emptied (`--truncate`); never again on a rerun.
    Truncated,
    /// AUTO_INCREMENT is about to be removed from `column`; `definition` is the
    /// column's full definition with it, to restore.
    AutoincDropping {
        column: String,
        definition: String,
    },
    AutoincRestored {
        column: String,
    },
    /// Secondary indexes about to be dropped, as `ADD …` clauses to restore.
    IndexesDropping {
        indexes: Vec<String>,
    },
    IndexesRestored,
    /// The chunk's transaction is about to commit.
    Committing {
        chunk: u32,
    },
    Committed {
        chunk: u32,
        rows: u64,
        duplicates: u64,
    },
    /// Every chunk is in and every temporary change undone.
    Complete,
}

/// The state a journal file describes.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub truncated: bool,
    /// Set while AUTO_INCREMENT is (or may be) removed.
    pub autoinc_dropped: Option<(String, String)>,
    pub indexes_dropped: Option<Vec<String>>,
    pub committed: BTreeSet<u32>,
    /// `Committing` without `Committed`: may or may not be on the target.
    pub in_doubt: BTreeSet<u32>,
    pub complete: bool,
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    state: State,
}

/// The load journals in a table's directory: (endpoint, database, state).
pub fn journals_in(table_dir: &Path) -> Result<Vec<(String, String, State)>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(table_dir) else {
        return Ok(out);
    };
    for e in entries.flatten() {
        let Some((endpoint, db)) = dump::journal_target(&e.file_name().to_string_lossy()) else {
            continue;
        };
        let journal = Journal::open(table_dir, &endpoint, &db)?;
        out.push((endpoint, db, journal.state));
    }
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    Ok(out)
}

impl Journal {
    /// The journal of `table_dir` for a target, read if it exists.
    pub fn open(table_dir: &Path, endpoint: &str, target_db: &str) -> Result<Journal> {
        let path = table_dir.join(dump::journal_file_name(endpoint, target_db));
        let events: Vec<Event> = dump::read_json_lines(&path)?;
        let mut state = State::default();
        for e in events {
            apply(&mut state, e);
        }
        Ok(Journal { path, state })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Records an event durably, then applies it.
    pub fn record(&mut self, event: Event) -> Result<()> {
        dump::append_json_line(&self.path, &event)?;
        apply(&mut self.state, event);
        Ok(())
    }
}

fn apply(state: &mut State, event: Event) {
    match event {
        Event::Truncated => state.truncated = true,
        Event::AutoincDropping { column, definition } => {
            state.autoinc_dropped = Some((column, definition))
        }
        Event::AutoincRestored { .. } => state.autoinc_dropped = None,
        Event::IndexesDropping { indexes } => state.indexes_dropped = Some(indexes),
        Event::IndexesRestored => state.indexes_dropped = None,
        Event::Committing { chunk } => {
            state.in_doubt.insert(chunk);
        }
        Event::Committed { chunk, .. } => {
            state.in_doubt.remove(&chunk);
            state.committed.insert(chunk);
        }
        Event::Complete => state.complete = true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaying_the_journal_gives_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), "db1:3306", "shop").unwrap();
        j.record(Event::Truncated).unwrap();
        j.record(Event::AutoincDropping {
            column: "id".into(),
            definition: "`id` bigint NOT NULL AUTO_INCREMENT".into(),
        })
        .unwrap();
        j.record(Event::Committing { chunk: 1 }).unwrap();
        j.record(Event::Committed {
            chunk: 1,
            rows: 10,
            duplicates: 0,
        })
        .unwrap();
        j.record(Event::Committing { chunk: 2 }).unwrap();
        let again = Journal::open(dir.path(), "db1:3306", "shop").unwrap();
        let s = again.state();
        assert!(s.truncated);
        assert_eq!(s.committed.iter().copied().collect::<Vec<_>>(), [1]);
        assert_eq!(s.in_doubt.iter().copied().collect::<Vec<_>>(), [2]);
        assert_eq!(s.autoinc_dropped.as_ref().unwrap().0, "id");
        assert!(!s.complete);
        assert!(again.path().ends_with("load@db1%3A3306@shop.jsonl"));
    }
}
