//! `check`: the load's preflight alone, on a target, without a dump.

use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, Row};
use serde::Serialize;

use crate::conn::ConnSpec;
use crate::schema::{text, TablePattern};

use crate::dump::DumpDir;

use super::preflight::{preflight, CreateSource, Requirements, ServerFacts, TargetTable};
use super::target::schema_autoinc_column;

/// What `myspool check` looks at: a target, without a dump.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub target: ConnSpec,
    /// `db.table` or `db.*`: the tables a dump would hold.
    pub tables: Vec<String>,
    /// The load's options that change what it needs.
    pub requirements: Requirements,
    /// A dump to check too: each of its tables, and for a table the target
    /// lacks, its schema.sql read against the target (`compat`).
    pub dir: Option<std::path::PathBuf>,
}

/// The preflight's findings.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub target: String,
    pub server: ServerFacts,
    pub tables: Vec<TableCheck>,
    /// Each would make a load refuse: the load's own list, word for word.
    pub problems: Vec<String>,
    /// What the load would warn about and go on.
    pub warnings: Vec<String>,
    /// The schema rewrites the load would apply (`--dir`).
    pub mappings: Vec<String>,
    /// Worth knowing, not blocking.
    pub notes: Vec<String>,
    pub allowed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    pub db: String,
    pub table: String,
    pub exists: bool,
    pub autoinc_column: Option<String>,
}

/// The load preflight alone: every problem a load of these tables with these
/// options would meet (the same function the load runs), and nothing changed
/// on the server.
pub fn check(opts: &CheckOptions) -> Result<CheckReport> {
    let mut conn = opts.target.connect("target")?;
    let facts = ServerFacts::read(&mut conn)?;
    let mut notes = vec![format!("server version {}", facts.version)];
    if let Some(g) = &facts.galera {
        notes.push(format!("the target is {}", g.describe()));
    }
    let mut tables = Vec::new();
    for (db, table) in tables_named(&mut conn, opts, &mut notes)? {
        let target = TargetTable::read(&mut conn, db, table)?;
        if !target.exists {
            notes.push(format!(
                "{} does not exist: a load creates it from the dump's schema.sql (whose AUTO_INCREMENT column, if any, is not known without the dump)",
                target.label()
            ));
        }
        tables.push(target);
    }
    if let Some(dir) = &opts.dir {
        with_dump_tables(&mut conn, dir, &opts.requirements, &mut tables)?;
    }
    let found = preflight(&mut conn, &facts, &opts.requirements, &tables)?;
    Ok(CheckReport {
        target: opts.target.to_string(),
        server: facts,
        tables: tables
            .into_iter()
            .map(|t| TableCheck {
                db: t.db,
                table: t.table,
                exists: t.exists,
                autoinc_column: t.autoinc_column,
            })
            .collect(),
        allowed: found.problems.is_empty(),
        problems: found.problems,
        warnings: found.warnings,
        mappings: found.mappings,
        notes,
    })
}

/// Every table of the dump in `dir` added to `tables` (unless named
/// already), each missing one with the SQL a load would create it from.
fn with_dump_tables(
    conn: &mut Conn,
    dir: &std::path::Path,
    req: &Requirements,
    tables: &mut Vec<TargetTable>,
) -> Result<()> {
    let dump = DumpDir::new(dir);
    let manifest = dump.require_manifest()?;
    for entry in &manifest.tables {
        let db = req.target_db(&entry.db);
        let named = tables
            .iter()
            .position(|t| t.db == db && t.table == entry.table);
        let mut target = match named {
            Some(i) => tables.remove(i),
            None => TargetTable::read(conn, db.clone(), entry.table.clone())?,
        };
        // As the load does (unless --no-objects): the dump's triggers on
        // the table are carried over by --swap, not refused.
        target.recreated_triggers = dump
            .read_objects(&entry.db)?
            .into_iter()
            .filter(|o| {
                o.kind == crate::dump::ObjectKind::Trigger
                    && o.table.as_deref() == Some(&entry.table)
            })
            .map(|o| o.name)
            .collect();
        if !target.exists {
            let create = CreateSource::of_dump(conn, &dump, &entry.dir, &entry.db, &db)?;
            target.autoinc_column = schema_autoinc_column(&create.schema_sql);
            target.create = Some(create);
        }
        tables.push(target);
    }
    Ok(())
}

/// The target tables `opts.tables` (`db.table` or `db.*`) name, in the
/// database `--into` sends them to: `db.*` is every table there now.
fn tables_named(
    conn: &mut Conn,
    opts: &CheckOptions,
    notes: &mut Vec<String>,
) -> Result<Vec<(String, String)>> {
    let mut tables = Vec::new();
    for pattern in &opts.tables {
        match TablePattern::parse(pattern)? {
            TablePattern::One(t) => tables.push((opts.requirements.target_db(&t.db), t.table)),
            TablePattern::AllIn(db) => {
                let db = opts.requirements.target_db(&db);
                let rows: Vec<Row> = conn
                    .exec(
                        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
                        (&db,),
                    )
                    .with_context(|| format!("listing the tables of {db} on the target"))?;
                if rows.is_empty() {
                    notes.push(format!(
                        "{db} has no tables on the target: a load creates them"
                    ));
                }
                for r in &rows {
                    tables.push((db.clone(), text(r, 0)?.unwrap_or_default()));
                }
            }
        }
    }
    Ok(tables)
}
