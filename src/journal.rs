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
//!
//! The journal also records what the target table was when it was loaded
//! into (`Identity`, the InnoDB table id) and when the load completed, so a
//! rerun can tell whether the target is still the table the journal speaks
//! of (`load::rerun`): a journal alone never proves rows are on the target.

use std::collections::{BTreeMap, BTreeSet};
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
    /// The chunk's transaction is about to commit, on this server session.
    Committing {
        chunk: u32,
        /// The session sending the COMMIT (absent in journals of older
        /// versions): a rerun waits for it to end before it counts the
        /// chunk's rows, since the server may still be committing for a
        /// client that is already dead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<ServerSession>,
    },
    Committed {
        chunk: u32,
        rows: u64,
        duplicates: u64,
    },
    /// Temporary changes are about to be undone (ALTERs that may rebuild
    /// the table and so give it a new InnoDB table id).
    Restoring,
    /// What the target table is now, once myspool's own changes to its
    /// definition are done: its InnoDB table id (a TRUNCATE, a DROP and
    /// CREATE, or a rebuild gives it a new one).
    Identity {
        table_id: u64,
    },
    /// `--restart`: what an earlier journal said was forgotten here (only
    /// its temporary changes still in force were carried over).
    Restarted {
        at: String,
    },
    /// `--swap`: the shadow table `table` is about to be created; from now
    /// on a table of that name is myspool's (a rerun refuses one it did
    /// not create).
    ShadowCreating {
        table: String,
    },
    /// `--swap`: the RENAME that puts the loaded shadow table in place of
    /// the target is about to run; `old` is the name the target table gets
    /// (none when there was no target table).
    Swapping {
        old: Option<String>,
    },
    /// The RENAME ran: the target is the loaded table.
    Swapped,
    /// The old table was dropped, or (`--keep-old`) kept under its name.
    OldSettled {
        dropped: bool,
    },
    /// Every chunk is in and every temporary change undone. `at` is absent
    /// in journals written before it was recorded.
    Complete {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
    },
}

/// A server session, as a later run can recognise it: its id is only
/// unique while the server runs, so the server's start time comes with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSession {
    pub id: u64,
    /// Which server: `@@hostname:@@port` (the nodes of a Galera cluster
    /// each number their own sessions).
    pub server: String,
    /// When the server started (UNIX seconds, from `Uptime`: ±1 s).
    pub server_started: i64,
}

/// The state a journal file describes.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub truncated: bool,
    /// Set while AUTO_INCREMENT is (or may be) removed.
    pub autoinc_dropped: Option<(String, String)>,
    pub indexes_dropped: Option<Vec<String>>,
    pub committed: BTreeSet<u32>,
    /// The rows the committed chunks left on the target at least: their
    /// rows less their duplicates (a duplicate kept or replaced a row
    /// rather than adding one).
    pub committed_rows: u64,
    /// `Committing` without `Committed`: may or may not be on the target.
    pub in_doubt: BTreeSet<u32>,
    /// The session that was committing each chunk in doubt, where known.
    pub committing_sessions: BTreeMap<u32, ServerSession>,
    /// The target's InnoDB table id as last recorded, unless myspool itself
    /// changed the table's definition since (or may have: a step announced
    /// and not yet confirmed), when it is unknown.
    pub table_id: Option<u64>,
    pub complete: bool,
    /// When the load completed, if recorded.
    pub completed_at: Option<String>,
    /// `--swap`: the shadow table myspool created (or was about to).
    pub shadow: Option<String>,
    /// `--swap`: how far the swap went, once it started.
    pub swap: Option<SwapState>,
}

/// How far a `--swap` went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwapState {
    /// The target table's name after the RENAME (none: there was none).
    pub old: Option<String>,
    /// The RENAME is known to have run.
    pub swapped: bool,
    /// The old table was dropped or kept: nothing left to do.
    pub settled: bool,
}

impl State {
    /// Whether the journal says rows (or a complete table) are on the
    /// target: only then can the target have lost something since.
    pub fn claims_rows(&self) -> bool {
        self.complete || !self.committed.is_empty()
    }

    /// Nothing left to do: complete, and with `--swap` swapped in and the
    /// old table settled.
    pub fn finished(&self) -> bool {
        self.complete && (self.shadow.is_none() || self.swap.as_ref().is_some_and(|s| s.settled))
    }

    /// The temporary changes still in force, as the events that announced
    /// them (what `--restart` carries over to the new journal).
    pub fn pending_changes(&self) -> Vec<Event> {
        let mut events = Vec::new();
        if let Some((column, definition)) = &self.autoinc_dropped {
            events.push(Event::AutoincDropping {
                column: column.clone(),
                definition: definition.clone(),
            });
        }
        if let Some(indexes) = &self.indexes_dropped {
            events.push(Event::IndexesDropping {
                indexes: indexes.clone(),
            });
        }
        // A shadow table not yet swapped in is still there, and still ours.
        if let Some(table) = &self.shadow {
            if !self.swap.as_ref().is_some_and(|s| s.swapped) {
                events.push(Event::ShadowCreating {
                    table: table.clone(),
                });
            }
        }
        events
    }
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

    /// `--restart`: replaces the journal (atomically: after a crash it is
    /// the old one or the new one) by one that remembers only `carried`, the
    /// temporary changes still in force on the target, so they are still
    /// undone. Without a journal there is nothing to forget.
    pub fn restart(&mut self, carried: Vec<Event>) -> Result<()> {
        if !self.path.exists() {
            return Ok(());
        }
        let mut events = vec![Event::Restarted {
            at: dump::utc_now(),
        }];
        events.extend(carried);
        let mut text = Vec::new();
        for e in &events {
            serde_json::to_writer(&mut text, e)?;
            text.push(b'\n');
        }
        dump::write_atomic(&self.path, &text)?;
        self.state = State::default();
        for e in events {
            apply(&mut self.state, e);
        }
        Ok(())
    }
}

fn apply(state: &mut State, event: Event) {
    // Each of myspool's own changes to the table's definition may give it a
    // new InnoDB table id (re-adding AUTO_INCREMENT rebuilds it), and the
    // announcing line is written before the ALTER: the recorded id is
    // unknown from then until the next `Identity`.
    match event {
        Event::Truncated => {
            state.truncated = true;
            state.table_id = None;
        }
        Event::AutoincDropping { column, definition } => {
            state.autoinc_dropped = Some((column, definition));
            state.table_id = None;
        }
        Event::AutoincRestored { .. } => {
            state.autoinc_dropped = None;
            state.table_id = None;
        }
        Event::IndexesDropping { indexes } => {
            state.indexes_dropped = Some(indexes);
            state.table_id = None;
        }
        Event::IndexesRestored => {
            state.indexes_dropped = None;
            state.table_id = None;
        }
        Event::Restoring => state.table_id = None,
        Event::Identity { table_id } => state.table_id = Some(table_id),
        Event::Restarted { .. } => {}
        Event::Committing { chunk, session } => {
            state.in_doubt.insert(chunk);
            if let Some(session) = session {
                state.committing_sessions.insert(chunk, session);
            }
        }
        Event::Committed {
            chunk,
            rows,
            duplicates,
        } => {
            state.in_doubt.remove(&chunk);
            state.committing_sessions.remove(&chunk);
            if state.committed.insert(chunk) {
                state.committed_rows += rows.saturating_sub(duplicates);
            }
        }
        Event::Complete { at } => {
            state.complete = true;
            state.completed_at = at;
        }
        Event::ShadowCreating { table } => {
            state.shadow = Some(table);
            state.table_id = None;
        }
        Event::Swapping { old } => {
            state.swap = Some(SwapState {
                old,
                ..SwapState::default()
            });
        }
        Event::Swapped => {
            if let Some(swap) = &mut state.swap {
                swap.swapped = true;
            }
        }
        Event::OldSettled { .. } => {
            if let Some(swap) = &mut state.swap {
                swap.settled = true;
            }
        }
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
        j.record(Event::Committing {
            chunk: 1,
            session: None,
        })
        .unwrap();
        j.record(Event::Committed {
            chunk: 1,
            rows: 10,
            duplicates: 0,
        })
        .unwrap();
        j.record(Event::Committing {
            chunk: 2,
            session: None,
        })
        .unwrap();
        let again = Journal::open(dir.path(), "db1:3306", "shop").unwrap();
        let s = again.state();
        assert!(s.truncated);
        assert_eq!(s.committed.iter().copied().collect::<Vec<_>>(), [1]);
        assert_eq!(s.in_doubt.iter().copied().collect::<Vec<_>>(), [2]);
        assert_eq!(s.autoinc_dropped.as_ref().unwrap().0, "id");
        assert!(!s.complete);
        assert!(again.path().ends_with("load@db1%3A3306@shop.jsonl"));
    }

    fn committed(chunk: u32, rows: u64, duplicates: u64) -> Event {
        Event::Committed {
            chunk,
            rows,
            duplicates,
        }
    }

    #[test]
    fn committed_rows_leave_out_duplicates_and_count_a_chunk_once() {
        let mut s = State::default();
        for e in [
            committed(1, 10, 0),
            committed(2, 10, 3),
            committed(2, 10, 0),
        ] {
            apply(&mut s, e);
        }
        assert_eq!(s.committed_rows, 17);
        assert!(s.claims_rows());
    }

    #[test]
    fn a_complete_line_without_a_date_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(dir.path(), "db1:3306", "shop").unwrap();
        std::fs::write(
            j.path(),
            "{\"event\":\"committed\",\"chunk\":1,\"rows\":5,\"duplicates\":0}\n{\"event\":\"complete\"}\n",
        )
        .unwrap();
        let s = Journal::open(dir.path(), "db1:3306", "shop").unwrap().state;
        assert!(s.complete);
        assert_eq!(s.completed_at, None);
        assert_eq!(s.committed_rows, 5);
    }

    #[test]
    fn the_table_id_is_unknown_from_any_change_of_ours_until_recorded_again() {
        let drop = Event::AutoincDropping {
            column: "id".into(),
            definition: "`id` int NOT NULL AUTO_INCREMENT".into(),
        };
        let changes = [
            Event::Truncated,
            drop,
            Event::IndexesDropping { indexes: vec![] },
            Event::Restoring,
            Event::IndexesRestored,
            Event::AutoincRestored {
                column: "id".into(),
            },
        ];
        for change in changes {
            let mut s = State::default();
            apply(&mut s, Event::Identity { table_id: 7 });
            assert_eq!(s.table_id, Some(7));
            apply(&mut s, change.clone());
            assert_eq!(s.table_id, None, "after {change:?}");
            apply(&mut s, Event::Identity { table_id: 8 });
            assert_eq!(s.table_id, Some(8));
        }
        // Loading chunks is not a change of definition.
        let mut s = State::default();
        apply(&mut s, Event::Identity { table_id: 7 });
        apply(
            &mut s,
            Event::Committing {
                chunk: 1,
                session: None,
            },
        );
        apply(&mut s, committed(1, 1, 0));
        assert_eq!(s.table_id, Some(7));
    }

    #[test]
    fn the_swap_is_followed_step_by_step() {
        let mut s = State::default();
        apply(
            &mut s,
            Event::ShadowCreating {
                table: "t_myspool_new".into(),
            },
        );
        assert_eq!(s.shadow.as_deref(), Some("t_myspool_new"));
        assert_eq!(s.swap, None);
        assert_eq!(
            s.pending_changes(),
            [Event::ShadowCreating {
                table: "t_myspool_new".into()
            }]
        );
        apply(
            &mut s,
            Event::Swapping {
                old: Some("t_old".into()),
            },
        );
        assert!(!s.swap.as_ref().unwrap().swapped);
        apply(&mut s, Event::Swapped);
        assert!(s.swap.as_ref().unwrap().swapped);
        // Swapped in, the shadow is the target now: nothing to carry over.
        assert!(s.pending_changes().is_empty());
        apply(&mut s, Event::Complete { at: None });
        assert!(!s.finished(), "loaded, not yet swapped in");
        apply(&mut s, Event::OldSettled { dropped: true });
        assert!(s.swap.as_ref().unwrap().settled);
        assert!(s.finished());
    }

    #[test]
    fn restart_forgets_all_but_the_changes_still_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), "db1:3306", "shop").unwrap();
        j.restart(Vec::new()).unwrap();
        assert!(!j.path().exists(), "no journal, nothing to forget");
        j.record(Event::Truncated).unwrap();
        j.record(Event::IndexesDropping {
            indexes: vec!["ADD KEY `k` (`v`)".into()],
        })
        .unwrap();
        j.record(Event::Identity { table_id: 3 }).unwrap();
        j.record(committed(1, 10, 0)).unwrap();
        j.record(Event::Complete { at: None }).unwrap();
        let carried = j.state().pending_changes();
        j.restart(carried).unwrap();
        for s in [
            j.state().clone(),
            Journal::open(dir.path(), "db1:3306", "shop").unwrap().state,
        ] {
            assert!(!s.complete && !s.truncated && !s.claims_rows());
            assert_eq!(s.committed_rows, 0);
            assert_eq!(s.table_id, None);
            assert_eq!(
                s.indexes_dropped.as_deref(),
                Some(&["ADD KEY `k` (`v`)".to_string()][..])
            );
        }
    }
}
