//! The plan of a load: per dump table, where it goes, what the target has,
//! and what the preflight found, before any data moves.

use anyhow::{bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;

use crate::dump::{self, ChunkRecord, DumpDir, Manifest, TableDescription, TableEntry};
use crate::errors;
use crate::sql::{self, qualified};

use super::preflight::{preflight, AutoincVerdict, ServerFacts, TargetTable};
use super::target::{
    autoinc_column_of, check_columns, raw_bytes_ok, schema_autoinc_column, target_columns,
};
use super::LoadOptions;

/// One table of the dump and where it goes.
pub(super) struct TablePlan {
    pub entry: TableEntry,
    pub desc: TableDescription,
    pub target_db: String,
    pub schema_sql: String,
    pub exists: bool,
    /// Created by this run, from schema.sql.
    pub created: bool,
    pub autoinc_column: Option<String>,
    pub verdict: AutoincVerdict,
    /// `--indexes auto` may defer this table's indexes (the preflight's).
    pub may_defer: bool,
    /// What became of the secondary indexes, for the summary.
    pub indexes: Option<super::indexes::IndexReport>,
    /// See `raw_bytes_ok` (known once the target table exists).
    pub raw_bytes: bool,
}

impl TablePlan {
    pub(super) fn target_sql(&self) -> String {
        qualified(&self.target_db, &self.desc.table)
    }

    /// The target table as the preflight sees it.
    fn target(&self) -> TargetTable {
        TargetTable {
            db: self.target_db.clone(),
            table: self.desc.table.clone(),
            exists: self.exists,
            autoinc_column: self.autoinc_column.clone(),
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
) -> Result<Vec<TablePlan>> {
    let mut dump_problems = Vec::new();
    let mut plans = Vec::new();
    for entry in &manifest.tables {
        match plan_table(control, dir, entry, opts) {
            Ok(plan) => plans.push(plan),
            Err(e) => dump_problems.push(errors::sentence(&e)),
        }
    }
    let targets: Vec<TargetTable> = plans.iter().map(TablePlan::target).collect();
    let found = preflight(control, facts, &opts.requirements(), &targets)?;
    for (plan, verdict) in plans.iter_mut().zip(found.verdicts) {
        plan.verdict = verdict;
    }
    for (plan, may) in plans.iter_mut().zip(found.may_defer) {
        plan.may_defer = may;
    }
    let mut problems = found.problems;
    problems.extend(dump_problems);
    problems.extend(shared_targets(&plans));
    if !problems.is_empty() {
        bail!("nothing was loaded: {}", problems.join("; "));
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
    let columns = target_columns(conn, &target_db, &desc.table)?;
    let exists = !columns.is_empty();
    if !exists && desc.columns.iter().any(|c| c.data_type == "unknown") {
        bail!(
            "{label} does not exist, and this processed dump's columns ({}) are not those of its schema.sql: create the table first",
            desc.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let raw_bytes = exists && raw_bytes_ok(&desc.columns, &columns);
    let autoinc_column = if exists {
        check_columns(&label, &desc, &columns)?;
        autoinc_column_of(&columns)
    } else {
        schema_autoinc_column(&schema_sql)
    };
    Ok(TablePlan {
        entry: entry.clone(),
        desc,
        target_db,
        schema_sql,
        exists,
        created: false,
        autoinc_column,
        verdict: AutoincVerdict::NoColumn,
        may_defer: false,
        indexes: None,
        raw_bytes,
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
