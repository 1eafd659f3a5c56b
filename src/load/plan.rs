//! The plan of a load: per dump table, where it goes, what the target has,
//! and what the preflight found, before any data moves.

use anyhow::{bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;

use crate::dump::{self, ChunkRecord, DumpDir, Manifest, TableDescription, TableEntry};
use crate::errors;
use crate::progress;
use crate::sql::{self, qualified};

use super::galera::{schema_engine, write_set_problem};
use super::objects::{self, DatabaseObjects};
use super::preflight::{
    preflight, table_engine, AutoincVerdict, CreateSource, Creation, ServerFacts, TargetTable,
};
use super::target::{
    autoinc_column_of, check_columns, raw_bytes_ok, schema_autoinc_column, target_columns,
};
use super::{swap, LoadOptions};

/// One table of the dump and where it goes.
pub(super) struct TablePlan {
    pub entry: TableEntry,
    pub desc: TableDescription,
    pub target_db: String,
    /// The table the chunks go into: the dump's, or with `--swap` its
    /// shadow (`swap::shadow_name`).
    pub table: String,
    /// The CREATE TABLE to run, as the preflight adapted it to the target.
    pub schema_sql: String,
    /// How the table is created when missing (`preflight::Creation`).
    pub creation: Option<Creation>,
    /// `table` exists.
    pub exists: bool,
    /// `--swap`, and whether the table the shadow replaces exists.
    pub swap: bool,
    pub swap_target_exists: bool,
    /// Created by this run, from schema.sql.
    pub created: bool,
    pub autoinc_column: Option<String>,
    /// The target's engine, or schema.sql's for a table to create.
    pub engine: Option<String>,
    pub verdict: AutoincVerdict,
    /// `--indexes auto` may defer this table's indexes (the preflight's).
    pub may_defer: bool,
    /// What became of the secondary indexes, for the summary.
    pub indexes: Option<super::indexes::IndexReport>,
    /// See `raw_bytes_ok` (known once the target table exists).
    pub raw_bytes: bool,
    /// The dump's SQL for a missing table, for the preflight.
    create_source: Option<CreateSource>,
    /// The dump's triggers on this table that the load creates after the
    /// data (none with `--no-objects`), for the `--swap` preflight.
    recreated_triggers: Vec<String>,
}

impl TablePlan {
    /// The table the chunks go into.
    pub(super) fn target_sql(&self) -> String {
        qualified(&self.target_db, &self.table)
    }

    /// The table readers use: the dump's name in the target database.
    pub(super) fn final_sql(&self) -> String {
        qualified(&self.target_db, &self.desc.table)
    }

    /// The target table as the preflight sees it.
    fn target(&self) -> TargetTable {
        TargetTable {
            db: self.target_db.clone(),
            table: self.desc.table.clone(),
            exists: self.exists || self.swap_target_exists,
            autoinc_column: self.autoinc_column.clone(),
            create: self.create_source.clone(),
            engine: self.engine.clone(),
            recreated_triggers: self.recreated_triggers.clone(),
        }
    }

    pub(super) fn label(&self) -> String {
        if self.target_db == self.desc.db {
            format!("{}.{}", self.desc.db, self.desc.table)
        } else {
            format!(
                "{}.{} into {}",
                self.desc.db, self.desc.table, self.target_db
            )
        }
    }

    /// The rows the target table holds in a chunk's key range.
    pub(super) fn count_range(&self, conn: &mut Conn, chunk: &ChunkRecord) -> Result<u64> {
        let range = sql::chunk_range(
            &self.desc.key.columns,
            chunk.lower.as_deref(),
            chunk.upper.as_deref(),
        );
        let q = format!(
            "SELECT COUNT(*) FROM {}{}",
            self.target_sql(),
            sql::where_all(&range)
        );
        let n: Option<u64> = conn
            .query_first(&q)
            .with_context(|| format!("counting chunk {:06}'s range", chunk.number))?;
        Ok(n.unwrap_or(0))
    }
}

/// Every problem of every table, before any data moves: the dump's own
/// (its files, a target table that differs from it, two tables into one)
/// and the preflight's, the same list `check` prints. The plan of every
/// table, or all the problems at once.
pub(super) fn plan_load(
    control: &mut Conn,
    dir: &DumpDir,
    manifest: &Manifest,
    opts: &LoadOptions,
    facts: &ServerFacts,
    objects: &[DatabaseObjects],
) -> Result<Vec<TablePlan>> {
    let mut dump_problems = Vec::new();
    let mut plans = Vec::new();
    for entry in &manifest.tables {
        match plan_table(control, dir, entry, opts) {
            Ok(mut plan) => {
                plan.recreated_triggers = objects::triggers_of(objects, &entry.db, &entry.table);
                plans.push(plan)
            }
            Err(e) => dump_problems.push(errors::sentence(&e)),
        }
    }
    let targets: Vec<TargetTable> = plans.iter().map(TablePlan::target).collect();
    let found = preflight(control, facts, &opts.requirements(), &targets)?;
    for ((plan, verdict), creation) in plans.iter_mut().zip(found.verdicts).zip(found.creations) {
        plan.verdict = verdict;
        if let Some(c) = &creation {
            plan.schema_sql = c.schema_sql.clone();
        }
        plan.creation = creation;
    }
    for (plan, may) in plans.iter_mut().zip(found.may_defer) {
        plan.may_defer = may;
    }
    let mut problems = found.problems;
    problems.extend(dump_problems);
    problems.extend(shared_targets(&plans));
    problems.extend(write_set_problems(&plans, facts));
    if !problems.is_empty() {
        let message = format!("nothing was loaded: {}", problems.join("; "));
        return Err(errors::Refused(message).into());
    }
    // Said once the load is allowed, before anything is created.
    for c in plans.iter().filter_map(|p| p.creation.as_ref()) {
        for m in &c.mappings {
            progress::notice(&format!("myspool load: schema mapped: {m}"));
        }
        for w in &c.warnings {
            progress::notice(&format!("myspool load: warning: {w}"));
        }
    }
    Ok(plans)
}

/// One dump table: what is there, what the dump needs. Its AUTO_INCREMENT
/// verdict is the preflight's, set after.
fn plan_table(
    conn: &mut Conn,
    dir: &DumpDir,
    entry: &TableEntry,
    opts: &LoadOptions,
) -> Result<TablePlan> {
    let desc = dir.table_description(entry, opts.follow.as_deref())?;
    let schema_path = dir.path(&entry.dir).join(dump::SCHEMA_FILE);
    let schema_sql = std::fs::read_to_string(&schema_path)
        .with_context(|| format!("reading {}", schema_path.display()))?;
    check_chunk_files(dir, entry, &desc, opts.follow.is_some())?;
    let target_db = opts.requirements().target_db(&desc.db);
    let label = format!("{target_db}.{}", desc.table);
    let swap = opts.requirements().swap;
    let table = if swap {
        swap::shadow_name(&desc.table)
    } else {
        desc.table.clone()
    };
    let mut columns = target_columns(conn, &target_db, &table)?;
    let exists = !columns.is_empty();
    let mut swap_target_exists = false;
    if swap {
        // The shadow is made like the target: judge the dump against the
        // target (a table in the shadow's way is `rerun`'s to refuse).
        let target = target_columns(conn, &target_db, &desc.table)?;
        swap_target_exists = !target.is_empty();
        if swap_target_exists {
            columns = target;
        }
    }
    let known = !columns.is_empty();
    if !known && desc.columns.iter().any(|c| c.data_type == "unknown") {
        bail!(
            "{label} does not exist, and this processed dump's columns ({}) are not those of its schema.sql: create the table first",
            desc.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let raw_bytes = known && raw_bytes_ok(&desc.columns, &columns);
    // Created from the dump only when neither the table nor (`--swap`)
    // the target its shadow would be made like exists.
    let create_source = match known {
        true => None,
        false => Some(CreateSource::of_dump(
            conn, dir, &entry.dir, &desc.db, &target_db,
        )?),
    };
    let autoinc_column = if known {
        check_columns(&label, &desc, &columns)?;
        autoinc_column_of(&columns)
    } else {
        schema_autoinc_column(&schema_sql)
    };
    let engine = if exists {
        table_engine(conn, &target_db, &desc.table)?
    } else {
        schema_engine(&schema_sql)
    };
    Ok(TablePlan {
        entry: entry.clone(),
        engine,
        desc,
        target_db,
        table,
        schema_sql,
        exists,
        swap,
        swap_target_exists,
        created: false,
        autoinc_column,
        verdict: AutoincVerdict::NoColumn,
        may_defer: false,
        indexes: None,
        raw_bytes,
        create_source,
        creation: None,
        recreated_triggers: Vec::new(),
    })
}

/// Every chunk table.json lists is written (unless the dump is still being
/// written), and the table's folder has no chunk it does not list.
fn check_chunk_files(
    dir: &DumpDir,
    entry: &TableEntry,
    desc: &TableDescription,
    following: bool,
) -> Result<()> {
    for chunk in &desc.chunks {
        if chunk.written.is_none() && !following {
            bail!("{}: chunk {:06} was never written", entry.dir, chunk.number);
        }
    }
    // A chunk file that table.json does not list means dumps were mixed up.
    let table_dir = dir.path(&entry.dir);
    for e in std::fs::read_dir(&table_dir)
        .with_context(|| format!("reading {}", table_dir.display()))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let stem = name.trim_end_matches(".gz").trim_end_matches(".csv");
        let looks_like_chunk = name.ends_with(".csv") || name.ends_with(".csv.gz");
        if looks_like_chunk
            && stem.len() >= 6
            && stem.bytes().all(|b| b.is_ascii_digit())
            && !desc.chunks.iter().any(|c| c.file == name)
        {
            bail!(
                "{} is a chunk file that {} does not list: is another dump mixed into this one?",
                table_dir.join(&name).display(),
                table_dir.join(dump::TABLE_FILE).display()
            );
        }
    }
    Ok(())
}

/// Each chunk's transaction against a Galera cluster's write-set limits
/// (`galera::write_set_problem`): the chunks written, and for a dump still
/// being written the rows its chunks are planned to hold.
fn write_set_problems(plans: &[TablePlan], facts: &ServerFacts) -> Vec<String> {
    let Some(g) = &facts.galera else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    for plan in plans {
        let label = plan.label();
        let written = plan.desc.chunks.iter().find_map(|c| {
            let w = c.written.as_ref()?;
            let chunk = format!("chunk {:06}", c.number);
            write_set_problem(g, &label, &chunk, w.rows, w.csv_bytes)
        });
        let planned = || {
            let rows = plan.desc.chunk_rows;
            write_set_problem(g, &label, "each chunk", rows, 0)
        };
        problems.extend(written.or_else(planned));
    }
    problems
}

/// Dump tables that would go into the same target table (`db1.t` and
/// `db2.t` with `--into x`). Each keeps its own journal, and the tables load
/// side by side, so one table's finish (AUTO_INCREMENT and indexes back)
/// would run while the other still loads, and `--truncate` or a resumed
/// in-doubt chunk would count the other's rows as its own.
fn shared_targets(plans: &[TablePlan]) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let target = (&plan.target_db, &plan.desc.table);
        let Some(first) = plans[..i]
            .iter()
            .find(|p| (&p.target_db, &p.desc.table) == target)
        else {
            continue;
        };
        problems.push(format!(
            "{}.{} and {}.{} of this dump would both load into {}.{}: each dump table needs its own target table; load without --into, or export them into separate dumps and load those one after the other",
            first.desc.db,
            first.desc.table,
            plan.desc.db,
            plan.desc.table,
            plan.target_db,
            plan.desc.table
        ));
    }
    problems
}
