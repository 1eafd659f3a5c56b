//! `--swap`: readers never see a half-loaded table. Each table is loaded
//! into a shadow table beside its target, and once every table of the load
//! is in (every chunk loaded and checked, every temporary change undone),
//! the shadows of each database replace their targets in one
//! `RENAME TABLE t TO t_old, t_new TO t, …`, which the server runs
//! atomically: a reader sees all the old tables or all the new ones, never
//! a missing one. The old tables are dropped after (`--keep-old` keeps
//! them under a dated name).
//!
//! The shadow is `CREATE TABLE … LIKE` the target when the target exists
//! (the definition readers use stays: indexes, partitioning, character
//! sets; the dump's columns are checked against it as for any load), from
//! the dump's schema.sql otherwise.
//!
//! Every step is journaled before it is taken (`ShadowCreating`,
//! `Swapping`) or right after (`Swapped`, `OldSettled`), so a rerun after a
//! crash anywhere settles it: a load stopped in its chunks resumes into the
//! shadow; stopped before or during the RENAME, the rerun looks at which
//! tables exist (the RENAME ran entirely or not at all) and renames or
//! records it; stopped before the old table was dropped, it is dropped.
//!
//! What the server does around a RENAME (checked on MariaDB 10.11), and so
//! what the preflight refuses: triggers belong to the table object and go
//! with the old table (and are dropped with it), so a target's trigger is
//! refused unless the dump's objects.sql creates it again (same name, same
//! table): the objects are created after the RENAME, and `DROP TRIGGER IF
//! EXISTS` (trigger names are per database) takes it off the old table
//! before `CREATE TRIGGER` puts it on the new one — a `--keep-old` table
//! ends without it, and writes between the RENAME and the CREATE do not
//! fire it. A foreign key of another
//! table that references the target follows the old table (and then keeps
//! it from being dropped, error 1451); `CREATE TABLE … LIKE` does not copy
//! the target's own foreign keys. Views name their tables and are resolved
//! when they are queried: they see the new table.

use anyhow::{bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, Row};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::dump::{self, DumpDir};
use crate::journal::{Event, Journal, State};
use crate::schema::text;
use crate::sql::{ident, qualified};
use crate::{hooks, progress};

use super::plan::TablePlan;
use super::target::column_name_of_definition;

/// The longest table name MariaDB and MySQL take, in characters.
const NAME_LIMIT: usize = 64;

/// The shadow table of `table`: beside it, with myspool's name in it.
pub(super) fn shadow_name(table: &str) -> String {
    derived_name(table, "_myspool_new")
}

/// The name the target table gets when it is swapped out, dated
/// (`t_old_20261129_153000`) from `at` (RFC 3339, `dump::utc_now`).
pub(super) fn old_name(table: &str, at: &str) -> String {
    let digits: String = at.chars().filter(char::is_ascii_digit).collect();
    let stamp = format!(
        "{}_{}",
        digits.get(..8).unwrap_or(&digits),
        digits.get(8..14).unwrap_or("")
    );
    derived_name(table, &format!("_old_{stamp}"))
}

/// `table` + `suffix`, shortened to fit the name limit: the start of
/// `table` and 8 hex digits of its hash, so two long names stay apart.
fn derived_name(table: &str, suffix: &str) -> String {
    let chars = table.chars().count() + suffix.chars().count();
    if chars <= NAME_LIMIT {
        return format!("{table}{suffix}");
    }
    let hash = &dump::hex_lower(&Sha256::digest(table.as_bytes()))[..8];
    let keep = NAME_LIMIT - suffix.chars().count() - 9;
    let start: String = table.chars().take(keep).collect();
    format!("{start}_{hash}{suffix}")
}

/// schema.sql's `CREATE TABLE `t` (…` with another table name.
pub(super) fn renamed_create(schema_sql: &str, name: &str) -> Option<String> {
    let sql = schema_sql.trim().trim_end_matches(';');
    let rest = sql.strip_prefix("CREATE TABLE ")?;
    let old = column_name_of_definition(rest)?;
    let after = &rest[ident(&old).len()..];
    Some(format!("CREATE TABLE {}{after}", ident(name)))
}

/// What a table's swap needs next, from its journal and the tables that
/// exist now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// Rename the target to `old` (none: there is no target) and the
    /// shadow to the target.
    Rename {
        old: Option<String>,
    },
    /// The RENAME ran before the journal could say so: record it.
    RecordSwapped,
    /// Drop the old table (or keep it).
    SettleOld,
    /// Swapped, and the old table settled.
    Done,
    Refuse(String),
}

/// Which tables exist now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Present {
    pub shadow: bool,
    pub target: bool,
    /// The old table named by the journal's `Swapping`.
    pub old: bool,
}

/// The next step of one table's swap. `fresh_old` is the name a target
/// swapped out now would get. A RENAME runs whole or not at all, so a
/// `Swapping` without `Swapped` is settled by which tables exist.
pub(super) fn next_step(journal: &State, now: Present, fresh_old: &str, label: &str) -> Step {
    let rename = || Step::Rename {
        old: now.target.then(|| match &journal.swap {
            Some(s) => s.old.clone().unwrap_or_else(|| fresh_old.to_string()),
            None => fresh_old.to_string(),
        }),
    };
    let Some(swap) = &journal.swap else {
        if now.shadow {
            return rename();
        }
        return Step::Refuse(format!(
            "the shadow table of {label} that an earlier load filled no longer exists: rerun with --restart to load it again"
        ));
    };
    if swap.settled {
        return Step::Done;
    }
    if swap.swapped {
        return Step::SettleOld;
    }
    if now.shadow {
        return rename();
    }
    // No shadow: renamed, if the target is there and so is the old table
    // (when there was one).
    if now.target && (swap.old.is_none() || now.old) {
        return Step::RecordSwapped;
    }
    Step::Refuse(format!(
        "{label} was being swapped in when an earlier load stopped, and neither its shadow table nor {} is there now: check the target, then rerun with --restart",
        if swap.old.is_some() {
            "the renamed old table"
        } else {
            "the target table"
        }
    ))
}

/// The target's triggers that `--swap` would leave on the old table: those
/// the dump does not create again. (The dump's own are carried over: after
/// the RENAME, `DROP TRIGGER IF EXISTS` removes each from the old table —
/// trigger names are per database — and `CREATE TRIGGER` puts it on the
/// new one.)
pub(super) fn triggers_left_behind(on_target: &[String], recreated: &[String]) -> Vec<String> {
    on_target
        .iter()
        .filter(|name| !recreated.contains(name))
        .cloned()
        .collect()
}

/// `--swap`'s refusals for one existing target table: what the RENAME
/// would not carry over (triggers the dump does not create again, foreign
/// keys). `recreated`: the dump's triggers on this table.
pub(super) fn unswappable(
    conn: &mut Conn,
    db: &str,
    table: &str,
    recreated: &[String],
) -> Result<Vec<String>> {
    let label = format!("{db}.{table}");
    let mut problems = Vec::new();
    let triggers: Vec<Row> = conn
        .exec(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS \
             WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? ORDER BY 1",
            (db, table),
        )
        .with_context(|| format!("reading the triggers of {label}"))?;
    let names = triggers_left_behind(&names_of(&triggers)?, recreated);
    if !names.is_empty() {
        problems.push(format!(
            "{label} has trigger(s) {} that the dump does not create again, which --swap would leave on the old table (and drop with it): load without --swap, or drop them and create them again on the new table after",
            names.join(", ")
        ));
    }
    let foreign: Vec<Row> = conn
        .exec(
            "SELECT CONCAT(CONSTRAINT_SCHEMA, '.', TABLE_NAME, '.', CONSTRAINT_NAME) \
             FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE (CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?) \
                OR (UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?) ORDER BY 1",
            (db, table, db, table),
        )
        .with_context(|| format!("reading the foreign keys of {label}"))?;
    let names = names_of(&foreign)?;
    if !names.is_empty() {
        problems.push(format!(
            "{label} has or is referenced by foreign key(s) {}: after --swap those of other tables would reference the old table, and its own would be lost; load without --swap",
            names.join(", ")
        ));
    }
    Ok(problems)
}

fn names_of(rows: &[Row]) -> Result<Vec<String>> {
    rows.iter()
        .map(|r| Ok(text(r, 0)?.unwrap_or_default()))
        .collect()
}

/// Before the chunks: the shadow table, created (journaled first) or, if
/// an earlier run created it but its journal holds no rows in it, emptied.
pub(super) fn prepare_shadow(
    control: &mut Conn,
    dir: &DumpDir,
    plan: &mut TablePlan,
    journal: &mut Journal,
) -> Result<()> {
    let shadow = qualified(&plan.target_db, &plan.table);
    if plan.exists {
        if !journal.state().claims_rows() {
            // Ours (`rerun` refused it otherwise) but not known to hold
            // anything: start it empty. TRUNCATE keeps its definition, so
            // what the journal says of AUTO_INCREMENT and indexes holds.
            control
                .query_drop(format!("TRUNCATE TABLE {shadow}"))
                .with_context(|| format!("TRUNCATE TABLE {shadow}"))?;
        }
        return Ok(());
    }
    journal.record(Event::ShadowCreating {
        table: plan.table.clone(),
    })?;
    if plan.swap_target_exists {
        control
            .query_drop(format!("CREATE TABLE {shadow} LIKE {}", plan.final_sql()))
            .with_context(|| format!("creating the shadow table {shadow}"))?;
    } else {
        super::table::ensure_database(control, dir, plan)?;
        // schema.sql as the preflight adapted it to the target.
        let Some(create) = renamed_create(&plan.schema_sql, &plan.table) else {
            bail!(
                "{}: schema.sql does not start with CREATE TABLE `name`, so the shadow table cannot be created from it; create {} first",
                plan.entry.dir,
                plan.final_sql()
            );
        };
        super::table::run_create(control, plan, &create)?;
    }
    plan.exists = true;
    plan.created = true;
    Ok(())
}

/// What the swap did, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct Swapped {
    pub db: String,
    pub table: String,
    /// Swapped by this run (false: an earlier run did).
    pub now: bool,
    /// Where the old table is kept (`--keep-old`); none when dropped or
    /// when there was none.
    pub kept_as: Option<String>,
}

/// After every table is loaded: the swap of each database's tables, in one
/// RENAME per database, then the old tables dropped or kept.
pub(super) fn swap_tables(
    control: &mut Conn,
    dir: &DumpDir,
    plans: &[TablePlan],
    endpoint: &str,
    keep_old: bool,
) -> Result<Vec<Swapped>> {
    let mut databases: Vec<&str> = Vec::new();
    for plan in plans {
        if !databases.contains(&plan.target_db.as_str()) {
            databases.push(&plan.target_db);
        }
    }
    let mut out = Vec::new();
    for db in databases {
        let group: Vec<&TablePlan> = plans.iter().filter(|p| p.target_db == db).collect();
        out.extend(swap_database(control, dir, &group, endpoint, keep_old)?);
    }
    Ok(out)
}

fn swap_database(
    control: &mut Conn,
    dir: &DumpDir,
    plans: &[&TablePlan],
    endpoint: &str,
    keep_old: bool,
) -> Result<Vec<Swapped>> {
    let at = dump::utc_now();
    let mut journals = Vec::new();
    let mut steps = Vec::new();
    let mut refusals = Vec::new();
    for plan in plans {
        let journal = Journal::open(&dir.path(&plan.entry.dir), endpoint, &plan.target_db)?;
        let recorded_old = journal.state().swap.as_ref().and_then(|s| s.old.clone());
        let fresh_old = old_name(&plan.desc.table, &at);
        let now = Present {
            shadow: exists(control, &plan.target_db, &plan.table)?,
            target: exists(control, &plan.target_db, &plan.desc.table)?,
            old: match &recorded_old {
                Some(old) => exists(control, &plan.target_db, old)?,
                None => false,
            },
        };
        let step = next_step(journal.state(), now, &fresh_old, &plan.label());
        if let Step::Rename { old: Some(old) } = &step {
            if recorded_old.as_ref() != Some(old) && exists(control, &plan.target_db, old)? {
                refusals.push(format!(
                    "{}.{old}, the name the old table of {} would get, is taken: drop or rename it",
                    plan.target_db,
                    plan.label()
                ));
            }
        }
        if let Step::Refuse(why) = &step {
            refusals.push(why.clone());
        }
        journals.push(journal);
        steps.push(step);
    }
    if !refusals.is_empty() {
        bail!("nothing was swapped: {}", refusals.join("; "));
    }
    let mut pairs = Vec::new();
    for ((plan, journal), step) in plans.iter().zip(&mut journals).zip(&steps) {
        if let Step::Rename { old } = step {
            journal.record(Event::Swapping { old: old.clone() })?;
            if let Some(old) = old {
                pairs.push(format!(
                    "{} TO {}",
                    plan.final_sql(),
                    qualified(&plan.target_db, old)
                ));
            }
            pairs.push(format!(
                "{} TO {}",
                qualified(&plan.target_db, &plan.table),
                plan.final_sql()
            ));
        }
    }
    if !pairs.is_empty() {
        hooks::stop_at("swap-before-rename");
        let rename = format!("RENAME TABLE {}", pairs.join(", "));
        control
            .query_drop(&rename)
            .with_context(|| format!("swapping the loaded tables of {} in", plans[0].target_db))?;
        hooks::stop_at("swap-after-rename");
    }
    let mut out = Vec::new();
    for ((plan, journal), step) in plans.iter().zip(&mut journals).zip(&steps) {
        if matches!(step, Step::Rename { .. } | Step::RecordSwapped) {
            journal.record(Event::Swapped)?;
            hooks::stop_at("swap-before-drop");
        }
        let old = journal.state().swap.as_ref().and_then(|s| s.old.clone());
        if step != &Step::Done {
            if let (Some(old), false) = (&old, keep_old) {
                let old_sql = qualified(&plan.target_db, old);
                control
                    .query_drop(format!("DROP TABLE IF EXISTS {old_sql}"))
                    .with_context(|| format!("dropping the old table {old_sql}"))?;
            }
            journal.record(Event::OldSettled {
                dropped: old.is_some() && !keep_old,
            })?;
            hooks::stop_at("swap-after-drop");
            progress::notice(&format!(
                "myspool load: {}: swapped in{}",
                plan.label(),
                match (&old, keep_old) {
                    (Some(old), true) => format!(", the old table kept as {old}"),
                    (Some(_), false) => ", the old table dropped".to_string(),
                    (None, _) => String::new(),
                }
            ));
        }
        out.push(Swapped {
            db: plan.target_db.clone(),
            table: plan.desc.table.clone(),
            now: step != &Step::Done,
            kept_as: old.filter(|_| keep_old),
        });
    }
    Ok(out)
}

fn exists(control: &mut Conn, db: &str, table: &str) -> Result<bool> {
    let found: Option<Row> = control
        .exec_first(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, table),
        )
        .with_context(|| format!("looking for {db}.{table} on the target"))?;
    Ok(found.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::SwapState;

    #[test]
    fn only_triggers_the_dump_does_not_create_again_are_left_behind() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let on_target = names(&["audit", "stamp"]);
        assert_eq!(
            triggers_left_behind(&on_target, &names(&["stamp"])),
            ["audit"]
        );
        assert!(triggers_left_behind(&on_target, &names(&["audit", "stamp", "other"])).is_empty());
        assert_eq!(triggers_left_behind(&on_target, &[]), on_target);
    }

    #[test]
    fn derived_names_sit_beside_the_table_and_fit_the_limit() {
        assert_eq!(shadow_name("orders"), "orders_myspool_new");
        assert_eq!(
            old_name("orders", "2026-11-29T15:30:00Z"),
            "orders_old_20261129_153000"
        );
        let long = "x".repeat(60);
        let other = format!("{}y", "x".repeat(59));
        for name in [shadow_name(&long), old_name(&long, "2026-11-29T15:30:00Z")] {
            assert_eq!(name.chars().count(), 64, "{name}");
        }
        assert_ne!(shadow_name(&long), shadow_name(&other));
        let wide = "é".repeat(60);
        assert_eq!(shadow_name(&wide).chars().count(), 64);
    }

    #[test]
    fn the_shadow_is_created_from_schema_sql_under_its_own_name() {
        let sql = "CREATE TABLE `a``b` (\n  `id` int NOT NULL\n) ENGINE=InnoDB;\n";
        assert_eq!(
            renamed_create(sql, "a`b_myspool_new").as_deref(),
            Some("CREATE TABLE `a``b_myspool_new` (\n  `id` int NOT NULL\n) ENGINE=InnoDB")
        );
        assert_eq!(renamed_create("CREATE VIEW v AS SELECT 1", "x"), None);
    }

    fn state(swap: Option<SwapState>) -> State {
        State {
            complete: true,
            shadow: Some("t_myspool_new".into()),
            swap,
            ..State::default()
        }
    }

    fn present(shadow: bool, target: bool, old: bool) -> Present {
        Present {
            shadow,
            target,
            old,
        }
    }

    fn swapping(old: Option<&str>, swapped: bool, settled: bool) -> Option<SwapState> {
        Some(SwapState {
            old: old.map(Into::into),
            swapped,
            settled,
        })
    }

    #[test]
    fn a_loaded_shadow_is_renamed_in_with_the_target_renamed_out() {
        let fresh = "t_old_1";
        assert_eq!(
            next_step(&state(None), present(true, true, false), fresh, "d.t"),
            Step::Rename {
                old: Some(fresh.into())
            }
        );
        // No target: the shadow only takes its name.
        assert_eq!(
            next_step(&state(None), present(true, false, false), fresh, "d.t"),
            Step::Rename { old: None }
        );
        assert!(matches!(
            next_step(&state(None), present(false, true, false), fresh, "d.t"),
            Step::Refuse(m) if m.contains("--restart")
        ));
    }

    #[test]
    fn a_rename_in_doubt_is_settled_by_the_tables_there() {
        let fresh = "t_old_2";
        let doubt = state(swapping(Some("t_old_1"), false, false));
        // Not run: again, under the name already journaled.
        assert_eq!(
            next_step(&doubt, present(true, true, false), fresh, "d.t"),
            Step::Rename {
                old: Some("t_old_1".into())
            }
        );
        // Run.
        assert_eq!(
            next_step(&doubt, present(false, true, true), fresh, "d.t"),
            Step::RecordSwapped
        );
        // Neither: someone else was here.
        assert!(matches!(
            next_step(&doubt, present(false, true, false), fresh, "d.t"),
            Step::Refuse(_)
        ));
        let no_target = state(swapping(None, false, false));
        assert_eq!(
            next_step(&no_target, present(false, true, false), fresh, "d.t"),
            Step::RecordSwapped
        );
    }

    #[test]
    fn after_the_rename_only_the_old_table_is_left_then_nothing() {
        let fresh = "t_old_2";
        for now in [present(false, true, true), present(false, true, false)] {
            assert_eq!(
                next_step(
                    &state(swapping(Some("t_old_1"), true, false)),
                    now,
                    fresh,
                    "d.t"
                ),
                Step::SettleOld
            );
            assert_eq!(
                next_step(
                    &state(swapping(Some("t_old_1"), true, true)),
                    now,
                    fresh,
                    "d.t"
                ),
                Step::Done
            );
        }
    }
}
