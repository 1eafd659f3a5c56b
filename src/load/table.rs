//! One target table before and after its chunks: the lock that keeps other
//! loads out, CREATE and `--truncate`, the temporary changes (AUTO_INCREMENT
//! removed, secondary indexes deferred) and their undoing, and the chunk an
//! earlier run left in doubt.

use anyhow::{anyhow, bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, Row};
use sha2::{Digest, Sha256};

use crate::dump::{self, ChunkRecord, DumpDir, TableDescription};
use crate::journal::{Event, Journal};
use crate::sql::ident;

use super::in_flight;
use super::indexes::{self, IndexReport};
use super::plan::TablePlan;
use super::preflight::AutoincVerdict;
use super::target::{
    check_columns, column_definition, column_name_of_definition, deferrable_indexes,
    existing_index_names, raw_bytes_ok, show_create, target_columns,
};
use super::{rerun, swap};
use super::{IndexMode, LoadOptions, OnDuplicate};

/// What `prepare_target` is asked to do, from the options.
pub(super) struct Preparation {
    pub repair: bool,
    pub truncate: bool,
    pub indexes: IndexMode,
    /// The dump is still being written (`LoadOptions::follow`).
    pub following: bool,
    pub on_duplicate: OnDuplicate,
}

impl Preparation {
    pub(super) fn of(opts: &LoadOptions) -> Preparation {
        Preparation {
            repair: opts.repair,
            truncate: opts.truncate,
            indexes: opts.indexes,
            following: opts.follow.is_some(),
            on_duplicate: opts.on_duplicate,
        }
    }
}

/// What is left to do for one table once `prepare_target` has run.
pub(super) enum Prepared {
    /// Loaded by an earlier run.
    Complete,
    /// `--repair` restored what an interrupted load changed; nothing to load.
    Repaired,
    /// These chunks (in key order; maybe none), then `finish_target`.
    Load {
        journal: Box<Journal>,
        pending: Vec<ChunkRecord>,
    },
}

/// Everything before a table's chunks, once its journal was checked
/// against the target (`rerun::open_journals`): the CREATE, `--truncate`,
/// the AUTO_INCREMENT and index changes, the table's identity recorded, and
/// the chunk whose commit was in flight when an earlier run died.
pub(super) fn prepare_target(
    control: &mut Conn,
    dir: &DumpDir,
    plan: &mut TablePlan,
    mut journal: Journal,
    how: &Preparation,
) -> Result<Prepared> {
    if how.repair {
        repair_target(control, plan, &mut journal)?;
        return Ok(Prepared::Repaired);
    }
    if journal.state().complete {
        return Ok(Prepared::Complete);
    }
    if plan.swap {
        swap::prepare_shadow(control, dir, plan, &mut journal)?;
        check_created(control, plan)?;
    } else if !plan.exists {
        create_target(control, dir, plan)?;
    }
    if how.truncate && !journal.state().truncated && journal.state().committed.is_empty() {
        let target = plan.target_sql();
        control
            .query_drop(format!("TRUNCATE TABLE {target}"))
            .with_context(|| format!("TRUNCATE TABLE {target}"))?;
        journal.record(Event::Truncated)?;
    }
    if plan.verdict == AutoincVerdict::Drop && journal.state().autoinc_dropped.is_none() {
        drop_autoinc(control, plan, &mut journal)?;
    }
    // A rerun finds the indexes a crashed run dropped in its journal and
    // adds them back after the rest of the rows (finish_target), whatever
    // this run's --indexes; only a load that has not dropped them decides.
    if how.indexes != IndexMode::Keep && journal.state().indexes_dropped.is_none() {
        let empty = plan.created || table_is_empty(control, plan)?;
        if indexes::defer_now(how.indexes, empty, plan.may_defer) {
            drop_deferrable_indexes(control, plan, &mut journal)?;
        }
    }
    record_identity(control, plan, &mut journal)?;
    settle_in_doubt(control, dir, plan, &mut journal, how)?;
    let pending: Vec<ChunkRecord> = plan
        .desc
        .chunks
        .iter()
        .filter(|c| !journal.state().committed.contains(&c.number))
        .cloned()
        .collect();
    Ok(Prepared::Load {
        journal: Box::new(journal),
        pending,
    })
}

/// Everything after a table's chunks: AUTO_INCREMENT and the deferred
/// indexes back, the table's identity and the date journaled with the end
/// of the load, the table's lock released.
pub(super) fn finish_target(
    control: &mut Conn,
    plan: &TablePlan,
    journal: &mut Journal,
) -> Result<()> {
    restore_temporary_changes(control, plan, journal)?;
    record_identity(control, plan, journal)?;
    journal.record(Event::Complete {
        at: Some(dump::utc_now()),
    })?;
    release_target(control, plan);
    Ok(())
}

/// `--repair`: puts back what an interrupted load changed, loads nothing.
fn repair_target(control: &mut Conn, plan: &TablePlan, journal: &mut Journal) -> Result<()> {
    if plan.exists {
        restore_temporary_changes(control, plan, journal)?;
        return record_identity(control, plan, journal);
    }
    if journal.state().pending_changes().is_empty() {
        return Ok(());
    }
    bail!(
        "{} no longer exists, so what an earlier load changed on it cannot be put back: rerun without --repair, with --restart, to load it again",
        plan.label()
    )
}

/// Journals the target's InnoDB table id when it is known and not already
/// the journal's: a rerun compares it (`rerun`). Called once myspool's own
/// changes to the definition are done, since they may change it.
fn record_identity(control: &mut Conn, plan: &TablePlan, journal: &mut Journal) -> Result<()> {
    let Some(table_id) = rerun::table_id(control, &plan.target_db, &plan.table) else {
        return Ok(());
    };
    if journal.state().table_id != Some(table_id) {
        journal.record(Event::Identity { table_id })?;
    }
    Ok(())
}

/// Creates the missing table from schema.sql, and checks it against the
/// dump's columns.
fn create_target(control: &mut Conn, dir: &DumpDir, plan: &mut TablePlan) -> Result<()> {
    create_table(control, dir, plan)?;
    plan.created = true;
    check_created(control, plan)
}

/// The table the chunks go into, checked against the dump's columns once
/// it exists. schema.sql is the source's definition; a processed dump that
/// dropped columns no longer matches it.
fn check_created(control: &mut Conn, plan: &mut TablePlan) -> Result<()> {
    let columns = target_columns(control, &plan.target_db, &plan.table)?;
    if let Err(e) = check_columns(&plan.label(), &plan.desc, &columns) {
        let _ = control.query_drop(format!("DROP TABLE {}", plan.target_sql()));
        return Err(e.context("the table created from schema.sql was dropped again; create it to match the dump first"));
    }
    plan.raw_bytes = raw_bytes_ok(&plan.desc.columns, &columns);
    Ok(())
}

/// `--autoinc drop`: removes AUTO_INCREMENT from the column, journaled first
/// with the definition that puts it back.
fn drop_autoinc(control: &mut Conn, plan: &TablePlan, journal: &mut Journal) -> Result<()> {
    let Some(column) = plan.autoinc_column.clone() else {
        return Ok(());
    };
    let target = plan.target_sql();
    let create = show_create(control, &target)?;
    // Still there? (A crash between the journal line and the ALTER
    // leaves it in place; then it is dropped now.)
    if let Some(definition) = column_definition(&create, &column) {
        if definition.contains(" AUTO_INCREMENT") {
            journal.record(Event::AutoincDropping {
                column: column.clone(),
                definition: definition.clone(),
            })?;
            let without = definition.replacen(" AUTO_INCREMENT", "", 1);
            control
                .query_drop(format!("ALTER TABLE {target} MODIFY {without}"))
                .with_context(|| format!("removing AUTO_INCREMENT from {target}.{column}"))?;
        }
    }
    Ok(())
}

fn table_is_empty(control: &mut Conn, plan: &TablePlan) -> Result<bool> {
    let target = plan.target_sql();
    let row: Option<Row> = control
        .query_first(format!("SELECT 1 FROM {target} LIMIT 1"))
        .with_context(|| format!("looking for rows in {target}"))?;
    Ok(row.is_none())
}

/// Drops the non-unique secondary indexes that no foreign key needs,
/// journaled first with the clauses that add them back: the `ADD …` text of
/// SHOW CREATE TABLE, so that expressions (MySQL 8's functional key parts),
/// prefixes, FULLTEXT parsers and comments come back exactly.
fn drop_deferrable_indexes(
    control: &mut Conn,
    plan: &mut TablePlan,
    journal: &mut Journal,
) -> Result<()> {
    let target = plan.target_sql();
    let create = show_create(control, &target)?;
    let all = deferrable_indexes(&create);
    if all.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = all.iter().map(|(n, _)| n.clone()).collect();
    let facts = indexes::read_indexes(control, &plan.target_db, &plan.desc.table)?;
    let needs = indexes::read_foreign_key_needs(control, &plan.target_db, &plan.desc.table)?;
    let (defer, kept) = indexes::split_for_foreign_keys(&names, &facts, &needs);
    let kept: Vec<String> = kept
        .into_iter()
        .map(|(name, why)| format!("{} ({why})", ident(&name)))
        .collect();
    if !kept.is_empty() {
        crate::progress::notice(&format!(
            "myspool load: {}: kept during the load: {}: MySQL and MariaDB refuse to drop it (error 1553)",
            plan.label(),
            kept.join(", ")
        ));
    }
    plan.indexes = Some(IndexReport {
        deferred: defer.clone(),
        kept,
    });
    let indexes: Vec<&(String, String)> = all.iter().filter(|(n, _)| defer.contains(n)).collect();
    if indexes.is_empty() {
        return Ok(());
    }
    journal.record(Event::IndexesDropping {
        indexes: indexes.iter().map(|(_, add)| add.clone()).collect(),
    })?;
    let drops: Vec<String> = indexes
        .iter()
        .map(|(n, _)| format!("DROP INDEX {}", ident(n)))
        .collect();
    control
        .query_drop(format!("ALTER TABLE {target} {}", drops.join(", ")))
        .with_context(|| format!("dropping the secondary indexes of {target} to build them after the rows (--indexes)"))?;
    Ok(())
}

/// The chunk whose commit was in flight when an earlier run died: on the
/// target or not, counted by its key range.
fn settle_in_doubt(
    control: &mut Conn,
    dir: &DumpDir,
    plan: &mut TablePlan,
    journal: &mut Journal,
    how: &Preparation,
) -> Result<()> {
    let in_doubt: Vec<u32> = journal.state().in_doubt.iter().copied().collect();
    if !in_doubt.is_empty() && how.following {
        // It was loaded, so it is written, if perhaps after plan_table looked.
        if let Some(desc) = dir.written_chunks(&plan.entry)? {
            plan.desc = desc;
        }
    }
    for number in in_doubt {
        let chunk = chunk_by_number(&plan.desc, number)?;
        let rows = chunk.written.as_ref().map_or(0, |w| w.rows);
        // The dead run's session may still be committing: count once it is over.
        if let Some(session) = journal.state().committing_sessions.get(&number).cloned() {
            let what = format!("chunk {number:06} of {}", plan.label());
            in_flight::wait_for_end(control, &session, &what)?;
        }
        let found = plan.count_range(control, chunk)?;
        if found == rows {
            journal.record(Event::Committed {
                chunk: number,
                rows,
                duplicates: 0,
            })?;
        } else if found != 0 && how.on_duplicate == OnDuplicate::Error {
            bail!(
                "chunk {number:06} was being committed when an earlier load stopped, and its key range on the target now holds {found} rows where the chunk has {rows}: the target changed meanwhile; check it, then empty the range or reload with --truncate"
            );
        }
    }
    Ok(())
}

/// A server-side named lock per target table, held by the control
/// connection while the table loads: two loads (from two dumps, or two
/// machines) into one table at once would corrupt each other's journal
/// assumptions. The server drops the lock when the connection ends, so a
/// killed loader leaves nothing behind.
pub(super) fn lock_target(control: &mut Conn, plan: &TablePlan) -> Result<()> {
    take_lock(control, plan, 0)
}

/// Takes a table's lock again on a new control connection, after the old
/// one was lost: the server releases the old session's lock only once it
/// has ended that session (`Session::ensure_alive` kills it), which can take
/// a moment.
pub(super) fn relock_target(control: &mut Conn, plan: &TablePlan) -> Result<()> {
    take_lock(control, plan, RELOCK_WAIT_SECONDS)
}

/// How long a relock waits for the lost session's lock to be released.
const RELOCK_WAIT_SECONDS: u32 = 10;

fn take_lock(control: &mut Conn, plan: &TablePlan, wait_seconds: u32) -> Result<()> {
    let name = lock_name(plan);
    let mut wait = wait_seconds;
    let mut told = false;
    let mut freed = 0;
    loop {
        let got: Option<Option<i64>> =
            control
                .exec_first("SELECT GET_LOCK(?, ?)", (&name, wait))
                .with_context(|| format!("taking the lock {name:?} on the target"))?;
        if got.flatten() == Some(1) {
            return Ok(());
        }
        let statement = match holder(control, &name)? {
            // Let go of it meanwhile: try again (a few times).
            Holder::Gone if freed < 3 => {
                freed += 1;
                continue;
            }
            Holder::Gone => bail!("the lock {name:?} on the target is free, but GET_LOCK did not take it"),
            Holder::Busy(statement) => statement,
            Holder::Loading => bail!(
                "another myspool load is loading into {} on this server (it holds the lock {name:?}); wait for it to finish",
                plan.label()
            ),
        };
        if !told {
            crate::progress::notice(&format!(
                "myspool load: waiting for the lock on {}: its holder is still running {statement:.80}… (the last statement of a load that was interrupted, most likely: the server lets go of the lock when the statement ends)",
                plan.label()
            ));
            told = true;
        }
        wait = HOLDER_BUSY_WAIT_SECONDS;
    }
}

/// How long a lock is waited for, at a time, while its holder is busy (see
/// `Holder::Busy`).
const HOLDER_BUSY_WAIT_SECONDS: u32 = 5;

/// Who holds a table's lock.
enum Holder {
    /// Nobody, any more.
    Gone,
    /// A session in the middle of this statement. When a load is killed,
    /// the server finishes the statement its control connection was running
    /// (an ALTER that puts AUTO_INCREMENT back rebuilds the table: seconds
    /// to minutes; the load holds the locks of all its tables meanwhile)
    /// before it notices that the client is gone and ends the session, and
    /// with it the locks: a rerun waits for the statement instead of
    /// refusing as if another load were running. A live load's control
    /// connection is idle but for short statements and these ALTERs; once
    /// its statement ends, it is seen idle and refused.
    Busy(String),
    /// An idle session (a killed client's idle session ends at once), or
    /// one this user cannot see: a load that is alive.
    Loading,
}

fn holder(control: &mut Conn, name: &str) -> Result<Holder> {
    let context = || format!("looking up the holder of the lock {name:?}");
    let id: Option<Option<u64>> = control
        .exec_first("SELECT IS_USED_LOCK(?)", (name,))
        .with_context(context)?;
    let Some(id) = id.flatten() else {
        return Ok(Holder::Gone);
    };
    let session: Option<(String, Option<String>)> = control
        .exec_first(
            "SELECT COMMAND, INFO FROM information_schema.PROCESSLIST WHERE ID = ?",
            (id,),
        )
        .with_context(context)?;
    Ok(match session {
        Some((command, info)) if command != "Sleep" => Holder::Busy(info.unwrap_or(command)),
        _ => Holder::Loading,
    })
}

/// Best effort: the lock goes with the connection anyway.
pub(super) fn release_target(control: &mut Conn, plan: &TablePlan) {
    let _ = control.exec_drop("DO RELEASE_LOCK(?)", (lock_name(plan),));
}

fn lock_name(plan: &TablePlan) -> String {
    let table = format!("{}.{}", plan.target_db, plan.desc.table);
    // Lock names are limited to 64 characters.
    if table.len() <= 56 {
        format!("myspool:{table}")
    } else {
        format!(
            "myspool:{}",
            &dump::hex_lower(&Sha256::digest(table.as_bytes()))[..56]
        )
    }
}

/// Puts AUTO_INCREMENT and deferred indexes back, as the journal says.
fn restore_temporary_changes(
    control: &mut Conn,
    plan: &TablePlan,
    journal: &mut Journal,
) -> Result<()> {
    let target = plan.target_sql();
    if !journal.state().pending_changes().is_empty() {
        // The ALTERs below may rebuild the table (a new InnoDB table id)
        // before their own lines are written.
        journal.record(Event::Restoring)?;
    }
    if let Some(indexes) = journal.state().indexes_dropped.clone() {
        let existing = existing_index_names(control, &plan.target_db, &plan.table)?;
        let missing: Vec<&String> = indexes
            .iter()
            .filter(|add| {
                let name = add
                    .find('`')
                    .and_then(|i| column_name_of_definition(&add[i..]));
                name.is_none_or(|n| !existing.contains(&n))
            })
            .collect();
        if !missing.is_empty() {
            let adds: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            control
                .query_drop(format!("ALTER TABLE {target} {}", adds.join(", ")))
                .with_context(|| format!("adding back the secondary indexes of {target}"))?;
        }
        journal.record(Event::IndexesRestored)?;
    }
    if let Some((column, definition)) = journal.state().autoinc_dropped.clone() {
        // Re-adding AUTO_INCREMENT rebuilds the table; InnoDB starts the
        // counter above the largest value in the column.
        control
            .query_drop(format!("ALTER TABLE {target} MODIFY {definition}"))
            .with_context(|| format!("restoring AUTO_INCREMENT on {target}.{column}"))?;
        journal.record(Event::AutoincRestored { column })?;
    }
    Ok(())
}

fn create_table(control: &mut Conn, dir: &DumpDir, plan: &mut TablePlan) -> Result<()> {
    ensure_database(control, dir, plan)?;
    let create = plan.schema_sql.clone();
    run_create(control, plan, &create)?;
    plan.exists = true;
    Ok(())
}

/// Runs the CREATE TABLE `sql` (schema.sql as the preflight adapted it)
/// in the target database, with the session settings the preflight chose.
pub(super) fn run_create(control: &mut Conn, plan: &TablePlan, sql: &str) -> Result<()> {
    control.query_drop(format!("USE {}", ident(&plan.target_db)))?;
    // sql_require_primary_key / sql_generate_invisible_primary_key off for
    // a keyless table (the preflight tried them on this user).
    for setting in plan.creation.iter().flat_map(|c| c.session.iter()) {
        control
            .query_drop(*setting)
            .with_context(|| format!("{setting}, before creating {}", plan.target_sql()))?;
    }
    control
        .query_drop(sql.trim().trim_end_matches(';'))
        .with_context(|| format!("creating {} from schema.sql", plan.target_sql()))?;
    Ok(())
}

/// Creates the target database if it is missing, with the character set
/// and collation of the dump's database.sql.
pub(super) fn ensure_database(control: &mut Conn, dir: &DumpDir, plan: &TablePlan) -> Result<()> {
    let db_exists: Option<Row> = control.exec_first(
        "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        (&plan.target_db,),
    )?;
    if db_exists.is_none() {
        // database.sql as the preflight adapted it (collations mapped).
        let db_sql = match plan.creation.as_ref().and_then(|c| c.database_sql.clone()) {
            Some(sql) => sql,
            None => std::fs::read_to_string(
                dir.path(&dump::safe_file_name(&plan.desc.db))
                    .join(dump::DATABASE_FILE),
            )
            .unwrap_or_default(),
        };
        let mut create = format!("CREATE DATABASE IF NOT EXISTS {}", ident(&plan.target_db));
        for (word, clause) in [("CHARACTER SET ", "CHARACTER SET"), ("COLLATE ", "COLLATE")] {
            if let Some(value) = db_sql
                .find(word)
                .map(|i| &db_sql[i + word.len()..])
                .and_then(|rest| rest.split([' ', '*', ';']).next())
                .filter(|v| {
                    v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !v.is_empty()
                })
            {
                create.push_str(&format!(" {clause} {value}"));
            }
        }
        control
            .query_drop(&create)
            .with_context(|| format!("creating database {}", plan.target_db))?;
    }
    Ok(())
}

fn chunk_by_number(desc: &TableDescription, number: u32) -> Result<&ChunkRecord> {
    desc.chunks
        .iter()
        .find(|c| c.number == number)
        .ok_or_else(|| anyhow!("the journal names chunk {number:06}, which the dump does not have"))
}
