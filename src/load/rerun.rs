//! A rerun against a target that may have changed since the journal was
//! written: the journal says which chunks are on the target, but someone may
//! have dropped the table (or its database), truncated it, or deleted rows
//! since. A load that trusted the journal alone would skip those chunks and
//! exit 0 with the rows missing, so before anything is touched every table
//! whose journal claims rows is compared with what the target is now
//! (`observe`), and `verdict` decides: go on, nothing to do, or refuse.
//!
//! What is compared, and why:
//! - The table exists.
//! - Its InnoDB table id, recorded in the journal once myspool's own
//!   changes to the definition are done. TRUNCATE, DROP + CREATE and any
//!   rebuild (OPTIMIZE, a copying ALTER) give the table a new id, on
//!   MariaDB (checked on 10.11: TRUNCATE 18 → 19, re-adding AUTO_INCREMENT
//!   and OPTIMIZE give new ids, adding or dropping an index and removing
//!   AUTO_INCREMENT do not) and on MySQL 8 (its manual: TRUNCATE drops and
//!   re-creates the table; `INNODB_TABLES.TABLE_ID`, not tested here).
//!   `CREATE_TIME` is not used: MariaDB keeps it across TRUNCATE and
//!   changes it on an in-place ALTER, to the second. Reading the id needs
//!   the PROCESS privilege, and a name the server spells the way we can
//!   (ASCII); otherwise it is unknown and only the count below decides.
//! - `COUNT(*)` against the rows the journal committed. An exact count reads
//!   the smallest index once: a fraction of what loading those rows cost
//!   (the table statistics' `TABLE_ROWS` is cheap but an estimate, off by
//!   tens of percent, so it cannot prove nothing is missing). More rows
//!   than loaded is fine: rows that were there before a load without
//!   `--truncate`, or were added since, are not ours to judge.

use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;
use serde::Serialize;

use crate::dump::DumpDir;
use crate::journal::{Journal, State};
use crate::progress;

use super::plan::TablePlan;
use super::LoadOptions;

/// Every table's journal for this target, checked against the target (or,
/// with `--restart`, forgotten) before anything is touched: each journal,
/// and whether its load is complete and intact. Every table that changed
/// since is refused, all in one line, and nothing is loaded.
pub(super) fn open_journals(
    control: &mut Conn,
    dir: &DumpDir,
    plans: &[TablePlan],
    opts: &LoadOptions,
) -> Result<Vec<(Journal, Option<LoadedBefore>)>> {
    let endpoint = opts.target.endpoint();
    let mut journals = Vec::new();
    let mut refusals = Vec::new();
    for plan in plans {
        let mut journal = Journal::open(&dir.path(&plan.entry.dir), &endpoint, &plan.target_db)?;
        let mut before = None;
        if opts.restart {
            // AUTO_INCREMENT still removed or indexes still dropped stay in
            // the new journal, so this load puts them back; a table that
            // is gone has nothing left to put back.
            let carried = if plan.exists {
                journal.state().pending_changes()
            } else {
                Vec::new()
            };
            journal.restart(carried)?;
        }
        if plan.swap && plan.exists && journal.state().shadow.as_deref() != Some(&plan.table) {
            refusals.push(format!(
                "{}.{} is in the way: --swap loads {} into a table of that name, and no load of this dump created it; drop or rename it",
                plan.target_db,
                plan.table,
                plan.label()
            ));
            continue;
        }
        if let Some(b) = swapped_before(journal.state()) {
            progress::notice(&format!(
                "myspool load: {}: {} and swapped in; nothing to do (--restart loads it again)",
                plan.label(),
                b.describe()
            ));
            before = Some(b);
        } else if !opts.restart && !opts.repair && needs_observing(journal.state()) {
            let seen = observe(control, plan)?;
            match verdict(journal.state(), &seen) {
                Verdict::Resume => {}
                Verdict::AlreadyLoaded(b) => {
                    progress::info(&format!(
                        "myspool load: {}: {}; nothing to do (--restart loads it again)",
                        plan.label(),
                        b.describe()
                    ));
                    before = Some(b);
                }
                Verdict::Refuse(changed) => refusals.push(refusal(&plan.label(), &changed)),
            }
        }
        journals.push((journal, before));
    }
    if !refusals.is_empty() {
        let message = format!("nothing was loaded: {}", refusals.join("; "));
        return Err(crate::errors::Refused(message).into());
    }
    Ok(journals)
}

/// What the target table is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Observed {
    pub exists: bool,
    /// None when it cannot be read (no PROCESS privilege, not InnoDB, a
    /// name we cannot spell as InnoDB does).
    pub table_id: Option<u64>,
    /// `COUNT(*)` (0 when the table does not exist).
    pub rows: u64,
}

/// A complete load found intact: nothing to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadedBefore {
    /// When it completed (UTC), if its journal recorded it.
    pub at: Option<String>,
    /// The rows the journal committed.
    pub rows: u64,
}

impl LoadedBefore {
    /// "already loaded on <date>, N rows".
    pub fn describe(&self) -> String {
        match &self.at {
            Some(at) => format!(
                "already loaded on {}, {} rows",
                at.replace('T', " "),
                self.rows
            ),
            None => format!("already loaded, {} rows", self.rows),
        }
    }
}

/// How the target differs from what the journal loaded into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Changed {
    /// The table (or its database) no longer exists.
    Dropped,
    /// Another InnoDB table id: truncated, dropped and re-created, rebuilt.
    NewTable { was: u64, now: u64, rows: u64 },
    /// Fewer rows than the journal committed.
    RowsMissing { rows: u64, committed: u64 },
}

/// What a rerun does with one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The journal claims nothing, or the target holds what it claims:
    /// carry on where the journal stopped.
    Resume,
    /// Complete, and the target still holds it.
    AlreadyLoaded(LoadedBefore),
    Refuse(Changed),
}

/// Whether `verdict` needs the target observed at all: not once a swap
/// began, since the table loaded into then changes its name (`swap`
/// settles that).
pub(super) fn needs_observing(journal: &State) -> bool {
    journal.claims_rows() && journal.swap.is_none()
}

/// A `--swap` load completed and swapped in by an earlier run.
fn swapped_before(journal: &State) -> Option<LoadedBefore> {
    journal
        .swap
        .as_ref()
        .filter(|s| s.settled)
        .map(|_| LoadedBefore {
            at: journal.completed_at.clone(),
            rows: journal.committed_rows,
        })
}

/// The rerun's decision from the journal and what the target is now.
pub(super) fn verdict(journal: &State, seen: &Observed) -> Verdict {
    if !journal.claims_rows() {
        return Verdict::Resume;
    }
    if !seen.exists {
        return Verdict::Refuse(Changed::Dropped);
    }
    if let (Some(was), Some(now)) = (journal.table_id, seen.table_id) {
        if was != now {
            return Verdict::Refuse(Changed::NewTable {
                was,
                now,
                rows: seen.rows,
            });
        }
    }
    if seen.rows < journal.committed_rows {
        return Verdict::Refuse(Changed::RowsMissing {
            rows: seen.rows,
            committed: journal.committed_rows,
        });
    }
    if journal.complete {
        return Verdict::AlreadyLoaded(LoadedBefore {
            at: journal.completed_at.clone(),
            rows: journal.committed_rows,
        });
    }
    Verdict::Resume
}

/// The refusal for `label`, naming the remedy (one line).
pub(super) fn refusal(label: &str, changed: &Changed) -> String {
    match changed {
        Changed::Dropped => format!(
            "{label} no longer exists (it or its database was dropped since an earlier load into it): rerun with --restart to forget that load and load it again"
        ),
        Changed::NewTable { was, now, rows } => format!(
            "{label} is not the table an earlier load filled (its InnoDB table id is {now}, was {was}: truncated, re-created or rebuilt since) and holds {rows} rows: rerun with {} to load it again",
            remedy(*rows)
        ),
        Changed::RowsMissing { rows, committed } => format!(
            "{label} holds {rows} rows where an earlier load committed {committed} (rows were deleted since): rerun with {}{}",
            remedy(*rows),
            if *rows > 0 {
                " to load it again, or --restart --on-duplicate ignore to add only the missing rows"
            } else {
                " to load it again"
            }
        ),
    }
}

fn remedy(rows: u64) -> &'static str {
    if rows == 0 {
        "--restart"
    } else {
        "--restart --truncate"
    }
}

/// What the target table of `plan` is now.
pub(super) fn observe(control: &mut Conn, plan: &TablePlan) -> Result<Observed> {
    if !plan.exists {
        return Ok(Observed {
            exists: false,
            table_id: None,
            rows: 0,
        });
    }
    let target = plan.target_sql();
    let rows: Option<u64> = control
        .query_first(format!("SELECT COUNT(*) FROM {target}"))
        .with_context(|| format!("counting the rows of {target}"))?;
    Ok(Observed {
        exists: true,
        table_id: table_id(control, &plan.target_db, &plan.table),
        rows: rows.unwrap_or(0),
    })
}

/// The InnoDB table id of `db`.`table`, if it can be read: MariaDB has
/// `INNODB_SYS_TABLES`, MySQL 8 `INNODB_TABLES`; both need the PROCESS
/// privilege, and name tables in InnoDB's file-name spelling.
pub(super) fn table_id(control: &mut Conn, db: &str, table: &str) -> Option<u64> {
    let name = format!("{}/{}", innodb_name(db)?, innodb_name(table)?);
    for view in ["INNODB_SYS_TABLES", "INNODB_TABLES"] {
        let q = format!("SELECT TABLE_ID FROM information_schema.{view} WHERE NAME = ?");
        if let Ok(found) = control.exec_first::<u64, _, _>(q, (&name,)) {
            return found;
        }
    }
    None
}

/// A name as InnoDB spells it in its dictionary: ASCII letters, digits and
/// `_` as they are, other ASCII as `@` and four hex digits (`a-b` →
/// `a@002db`, checked on MariaDB 10.11). Non-ASCII characters are encoded
/// by a table of the server's; such names give None (the id is then not
/// compared).
fn innodb_name(name: &str) -> Option<String> {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if c.is_ascii() {
            out.push_str(&format!("@{:04x}", c as u32));
        } else {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Event;

    fn journal(events: Vec<Event>) -> State {
        let dir = tempfile::tempdir().unwrap();
        let mut j = crate::journal::Journal::open(dir.path(), "h:1", "d").unwrap();
        for e in events {
            j.record(e).unwrap();
        }
        j.state().clone()
    }

    fn loaded(rows: u64, table_id: Option<u64>, complete: bool) -> State {
        let mut events: Vec<Event> = table_id
            .map(|id| Event::Identity { table_id: id })
            .into_iter()
            .collect();
        events.push(Event::Committed {
            chunk: 1,
            rows,
            duplicates: 0,
        });
        if complete {
            events.push(Event::Complete {
                at: Some("2026-01-02T03:04:05Z".into()),
            });
        }
        journal(events)
    }

    fn seen(rows: u64, table_id: Option<u64>) -> Observed {
        Observed {
            exists: true,
            table_id,
            rows,
        }
    }

    #[test]
    fn an_intact_complete_load_is_already_loaded() {
        let v = verdict(&loaded(100, Some(7), true), &seen(100, Some(7)));
        let Verdict::AlreadyLoaded(before) = v else {
            panic!("{v:?}")
        };
        assert_eq!(
            before.describe(),
            "already loaded on 2026-01-02 03:04:05Z, 100 rows"
        );
    }

    #[test]
    fn a_journal_that_claims_nothing_needs_no_look_at_the_target() {
        let fresh = journal(vec![
            Event::Truncated,
            Event::Committing {
                chunk: 1,
                session: None,
            },
        ]);
        assert!(!needs_observing(&fresh));
        let gone = Observed {
            exists: false,
            table_id: None,
            rows: 0,
        };
        assert_eq!(verdict(&fresh, &gone), Verdict::Resume);
        assert_eq!(verdict(&State::default(), &gone), Verdict::Resume);
    }

    #[test]
    fn a_dropped_table_is_refused_complete_or_not() {
        let gone = Observed {
            exists: false,
            table_id: None,
            rows: 0,
        };
        for complete in [true, false] {
            assert_eq!(
                verdict(&loaded(5, Some(7), complete), &gone),
                Verdict::Refuse(Changed::Dropped)
            );
        }
        // Complete with no rows still says the table was there.
        let empty = journal(vec![Event::Complete { at: None }]);
        assert_eq!(verdict(&empty, &gone), Verdict::Refuse(Changed::Dropped));
    }

    #[test]
    fn a_new_table_id_is_refused_even_with_the_rows_there() {
        for rows in [0, 100, 500] {
            assert_eq!(
                verdict(&loaded(100, Some(7), true), &seen(rows, Some(9))),
                Verdict::Refuse(Changed::NewTable {
                    was: 7,
                    now: 9,
                    rows
                })
            );
        }
    }

    #[test]
    fn missing_rows_are_refused_and_extra_rows_are_not() {
        let j = loaded(100, Some(7), false);
        assert_eq!(
            verdict(&j, &seen(50, Some(7))),
            Verdict::Refuse(Changed::RowsMissing {
                rows: 50,
                committed: 100
            })
        );
        assert_eq!(verdict(&j, &seen(100, Some(7))), Verdict::Resume);
        assert_eq!(verdict(&j, &seen(150, Some(7))), Verdict::Resume);
    }

    #[test]
    fn an_unknown_table_id_leaves_the_count_to_decide() {
        // Not readable now, or never recorded (no PROCESS privilege, an old
        // journal, a change of ours not yet confirmed).
        for (was, now) in [(Some(7), None), (None, Some(9)), (None, None)] {
            let j = loaded(100, was, true);
            assert!(matches!(
                verdict(&j, &seen(100, now)),
                Verdict::AlreadyLoaded(_)
            ));
            assert_eq!(
                verdict(&j, &seen(0, now)),
                Verdict::Refuse(Changed::RowsMissing {
                    rows: 0,
                    committed: 100
                })
            );
        }
        // Our own rebuild after the id was recorded, then a crash.
        let mut events = vec![Event::Identity { table_id: 7 }];
        events.push(Event::Committed {
            chunk: 1,
            rows: 10,
            duplicates: 0,
        });
        events.push(Event::Restoring);
        let j = journal(events);
        assert_eq!(verdict(&j, &seen(10, Some(8))), Verdict::Resume);
    }

    #[test]
    fn refusals_name_the_table_and_the_remedy_on_one_line() {
        let cases = [
            (Changed::Dropped, "--restart to forget"),
            (
                Changed::NewTable {
                    was: 1,
                    now: 2,
                    rows: 0,
                },
                "rerun with --restart to load",
            ),
            (
                Changed::NewTable {
                    was: 1,
                    now: 2,
                    rows: 3,
                },
                "--restart --truncate",
            ),
            (
                Changed::RowsMissing {
                    rows: 3,
                    committed: 6,
                },
                "--on-duplicate ignore",
            ),
        ];
        for (changed, remedy) in cases {
            let line = refusal("shop.t into copy", &changed);
            assert!(line.starts_with("shop.t into copy "), "{line}");
            assert!(line.contains(remedy), "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn names_are_spelled_as_innodb_does() {
        assert_eq!(innodb_name("t_1").as_deref(), Some("t_1"));
        assert_eq!(innodb_name("a-b.c").as_deref(), Some("a@002db@002ec"));
        assert_eq!(innodb_name("t x").as_deref(), Some("t@0020x"));
        assert_eq!(innodb_name("é"), None);
    }
}
