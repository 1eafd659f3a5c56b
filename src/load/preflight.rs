//! The preflight, one function for `load` and `check`: the server's facts,
//! the options that change what a load needs (`Requirements`), the
//! AUTO_INCREMENT policy's verdict, and every problem at once.

use anyhow::{anyhow, Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, Row};
use serde::Serialize;

use crate::errors;
use crate::schema::text;

use super::compat::{self, Adapted, CollationMap, Flavor, SchemaSource, TargetCatalog};
use super::galera::{cluster_findings, engine_problem, GaleraFacts};
use super::privileges::{missing_privileges, needed_privileges, TableWork};
use super::session::skip_binlog;
use super::swap::{shadow_name, unswappable};
use super::target::{autoinc_column_of, target_columns};
use super::{AutoincPolicy, IndexMode, OnDuplicate};

/// Server variables the preflight and the policy depend on.
#[derive(Debug, Clone, Serialize)]
pub struct ServerFacts {
    pub version: String,
    pub local_infile: bool,
    pub autoinc_lock_mode: u32,
    pub log_bin: bool,
    pub binlog_format: String,
    /// Reported, not required: LOAD DATA LOCAL streams the file in small
    /// packets (4 KiB from the mysql crate) and the server reads a row of any
    /// length from that stream, so a row bigger than max_allowed_packet
    /// loads (a 3 MB row, text and through UNHEX(), into a server with 1 MiB:
    /// tested). Neither `load` nor `check` refuses or warns on its account.
    pub max_allowed_packet: u64,
    /// Set when the target is a Galera node (`wsrep_on`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub galera: Option<GaleraFacts>,
}

impl ServerFacts {
    pub fn read(conn: &mut Conn) -> Result<ServerFacts> {
        let row: Option<Row> = conn
            .query_first(
                "SELECT VERSION(), @@local_infile, @@innodb_autoinc_lock_mode, @@log_bin, \
                 @@binlog_format, @@max_allowed_packet",
            )
            .context("reading the target's server variables")?;
        let row = row.ok_or_else(|| anyhow!("the target returned no server variables"))?;
        let get = |i| -> Result<String> { Ok(text(&row, i)?.unwrap_or_default()) };
        let galera = GaleraFacts::read(conn)?;
        Ok(ServerFacts {
            version: get(0)?,
            local_infile: get(1)? == "1",
            autoinc_lock_mode: get(2)?.parse().unwrap_or(1),
            log_bin: get(3)? == "1",
            binlog_format: get(4)?,
            max_allowed_packet: get(5)?.parse().unwrap_or(0),
            galera,
        })
    }

    /// Parallel bulk inserts into an AUTO_INCREMENT table are safe.
    pub fn autoinc_parallel_safe(&self) -> bool {
        self.autoinc_lock_mode == 2
            && (!self.log_bin || self.binlog_format.eq_ignore_ascii_case("ROW"))
    }

    fn autoinc_settings(&self) -> String {
        format!(
            "@@innodb_autoinc_lock_mode = {}, @@log_bin = {}, @@binlog_format = {}",
            self.autoinc_lock_mode,
            if self.log_bin { "ON" } else { "OFF" },
            self.binlog_format
        )
    }
}

/// The verdict of the AUTO_INCREMENT policy for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoincVerdict {
    NoColumn,
    Proceed,
    /// Go on, but say this.
    Warn(String),
    /// Remove AUTO_INCREMENT during the load.
    Drop,
    Refuse(String),
}

/// Applies the policy of DESIGN.md to one table.
pub fn autoinc_verdict(
    policy: AutoincPolicy,
    jobs: usize,
    table: &str,
    column: Option<&str>,
    facts: &ServerFacts,
) -> AutoincVerdict {
    let Some(column) = column else {
        return AutoincVerdict::NoColumn;
    };
    let remedies = format!(
        "either pass --autoinc drop (AUTO_INCREMENT is removed during the load and restored after), \
         or run the server with innodb_autoinc_lock_mode=2{} (now {})",
        if facts.log_bin { " and binlog_format=ROW" } else { "" },
        facts.autoinc_settings()
    );
    match policy {
        AutoincPolicy::Keep => AutoincVerdict::Proceed,
        AutoincPolicy::Drop => AutoincVerdict::Drop,
        _ if facts.autoinc_parallel_safe() => AutoincVerdict::Proceed,
        AutoincPolicy::Require => AutoincVerdict::Refuse(format!(
            "{table} has AUTO_INCREMENT column {column} and --autoinc require needs innodb_autoinc_lock_mode=2 \
             (with binlog_format=ROW when the binlog is on); {remedies}"
        )),
        AutoincPolicy::Check if jobs > 1 => AutoincVerdict::Refuse(format!(
            "{table} has AUTO_INCREMENT column {column}: {jobs} parallel LOAD DATA statements would hold its \
             table-level AUTO-INC lock and can deadlock; {remedies}; or use --jobs 1"
        )),
        AutoincPolicy::Check => AutoincVerdict::Warn(format!(
            "{table} has AUTO_INCREMENT column {column} and the server is not in innodb_autoinc_lock_mode=2 \
             (+ ROW binlog): loading with one job, which holds the AUTO-INC lock per chunk ({})",
            facts.autoinc_settings()
        )),
    }
}

/// What a load is asked to do that changes what it needs from the target:
/// the part of `LoadOptions` that `myspool check` takes too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirements {
    pub jobs: usize,
    pub autoinc: AutoincPolicy,
    pub on_duplicate: OnDuplicate,
    pub truncate: bool,
    pub indexes: IndexMode,
    pub skip_binlog: bool,
    /// `--swap`: each table is loaded into a shadow table and renamed in.
    pub swap: bool,
    /// Every table goes into this database instead of its own.
    pub into: Option<String>,
    /// `load --repair`: nothing is loaded, so neither `local_infile` nor the
    /// AUTO_INCREMENT policy stands in the way (`check` has no such option).
    pub repair: bool,
    /// `--collation-map FROM=TO`, over `compat::closest_collation`.
    pub collation_map: CollationMap,
}

impl Requirements {
    /// The database a table of `db` goes into.
    pub fn target_db(&self, db: &str) -> String {
        self.into.clone().unwrap_or_else(|| db.to_string())
    }
}

/// A target table as the preflight sees it.
#[derive(Debug, Clone)]
pub struct TargetTable {
    pub db: String,
    pub table: String,
    pub exists: bool,
    /// The target's, or for a missing table the one its CREATE would have
    /// (the load knows it from schema.sql; `check`, without a dump, cannot).
    pub autoinc_column: Option<String>,
    /// The dump's SQL a missing table would be created from.
    pub create: Option<CreateSource>,
    /// The target's storage engine, or the one schema.sql would create it
    /// with (None when not known).
    pub engine: Option<String>,
    /// The dump's triggers on this table that the load creates again after
    /// the data (`DROP TRIGGER IF EXISTS` + `CREATE`): with `--swap` the
    /// target's triggers of these names are carried over, not left behind.
    pub recreated_triggers: Vec<String>,
}

/// The dump's SQL for a table the load creates: `schema.sql`, and
/// `database.sql` when the database is missing too.
#[derive(Debug, Clone)]
pub struct CreateSource {
    pub schema_file: String,
    pub schema_sql: String,
    pub database: Option<(String, String)>,
}

impl CreateSource {
    /// `schema.sql` of a dump table that goes into `target_db`, with its
    /// `database.sql` when the target lacks that database.
    pub(super) fn of_dump(
        conn: &mut Conn,
        dir: &crate::dump::DumpDir,
        entry_dir: &str,
        db: &str,
        target_db: &str,
    ) -> Result<CreateSource> {
        let schema_path = dir.path(entry_dir).join(crate::dump::SCHEMA_FILE);
        let schema_sql = std::fs::read_to_string(&schema_path)
            .with_context(|| format!("reading {}", schema_path.display()))?;
        let db_exists: Option<Row> = conn.exec_first(
            "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (target_db,),
        )?;
        let database = match db_exists {
            Some(_) => None,
            None => {
                let path = dir
                    .path(&crate::dump::safe_file_name(db))
                    .join(crate::dump::DATABASE_FILE);
                // A dump without it gets the server's defaults (as before).
                let sql = std::fs::read_to_string(&path).unwrap_or_default();
                Some((path.display().to_string(), sql))
            }
        };
        Ok(CreateSource {
            schema_file: schema_path.display().to_string(),
            schema_sql,
            database,
        })
    }
}

/// What a missing table is created with, as the preflight adapted it to the
/// target (`compat::adapt`).
#[derive(Debug, Clone, Default)]
pub struct Creation {
    pub schema_sql: String,
    /// The adapted `database.sql`, when the database is created too.
    pub database_sql: Option<String>,
    /// Run on the session before the CREATE (`compat::primary_key_settings`).
    pub session: Vec<&'static str>,
    /// What `compat::adapt` changed and warned about, for this table.
    pub mappings: Vec<String>,
    pub warnings: Vec<String>,
}

impl TargetTable {
    /// The table as it is on the target.
    pub(super) fn read(conn: &mut Conn, db: String, table: String) -> Result<TargetTable> {
        let columns = target_columns(conn, &db, &table)?;
        Ok(TargetTable {
            exists: !columns.is_empty(),
            autoinc_column: autoinc_column_of(&columns),
            create: None,
            engine: table_engine(conn, &db, &table)?,
            db,
            table,
            recreated_triggers: Vec::new(),
        })
    }

    pub fn label(&self) -> String {
        format!("{}.{}", self.db, self.table)
    }
}

/// `information_schema.TABLES.ENGINE` of a table (None if it does not exist).
pub(super) fn table_engine(conn: &mut Conn, db: &str, table: &str) -> Result<Option<String>> {
    let engine: Option<Option<String>> = conn
        .exec_first(
            "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, table),
        )
        .with_context(|| format!("reading the engine of {db}.{table} on the target"))?;
    Ok(engine.flatten())
}

/// What the preflight found.
#[derive(Debug, Clone, Default)]
pub struct Preflight {
    /// Each refuses the load; all are said at once.
    pub problems: Vec<String>,
    /// The load goes on and says these.
    pub warnings: Vec<String>,
    /// The AUTO_INCREMENT verdict of each table, in the order given.
    pub verdicts: Vec<AutoincVerdict>,
    /// Per table, in the order given: whether `--indexes auto` may defer
    /// its indexes (the user holds ALTER and INDEX on it).
    pub may_defer: Vec<bool>,
    /// Each schema rewrite the load applies (a collation mapped, …).
    pub mappings: Vec<String>,
    /// How each table that has a `create` is created, in the order given.
    pub creations: Vec<Option<Creation>>,
}

/// The preflight of a load, the one `load` runs before anything moves and
/// `check` prints: every problem the server, the user's privileges and the
/// AUTO_INCREMENT policy pose for `tables` with `req`. Changes nothing on the
/// server; with `--skip-binlog` it sets `sql_log_bin=0` on `conn`'s own
/// session, the only sure test of that privilege.
pub(super) fn preflight(
    conn: &mut Conn,
    facts: &ServerFacts,
    req: &Requirements,
    tables: &[TargetTable],
) -> Result<Preflight> {
    let mut found = Preflight::default();
    if !facts.local_infile && !req.repair {
        found.problems.push(
            "the target has local_infile=OFF, so it refuses LOAD DATA LOCAL INFILE: \
             run SET GLOBAL local_infile=1 (or start it with --local-infile=1)"
                .to_string(),
        );
    }
    if let Some(g) = &facts.galera {
        let (problems, warnings) =
            cluster_findings(g, facts.autoinc_lock_mode, &facts.binlog_format);
        found.problems.extend(problems);
        found.warnings.extend(warnings);
        for table in tables {
            found
                .problems
                .extend(engine_problem(&table.label(), table.engine.as_deref()));
        }
    }
    if req.skip_binlog {
        if let Err(e) = skip_binlog(conn) {
            found.problems.push(errors::sentence(&e));
        }
    }
    for table in tables {
        let verdict = table_preflight(conn, facts, req, table, &mut found)?;
        found.verdicts.push(verdict);
    }
    creations_preflight(conn, facts, req, tables, &mut found)?;
    Ok(found)
}

/// The schemas of the tables to create, against what the target has:
/// collations mapped or refused, vendor-only syntax, the primary-key
/// variables (see `compat`). Sets those variables off on `conn` where a
/// keyless table needs it: trying is the only sure test of the privilege.
fn creations_preflight(
    conn: &mut Conn,
    facts: &ServerFacts,
    req: &Requirements,
    tables: &[TargetTable],
    found: &mut Preflight,
) -> Result<()> {
    if tables.iter().all(|t| t.create.is_none()) {
        found.creations = vec![None; tables.len()];
        return Ok(());
    }
    let catalog = read_catalog(conn, Flavor::of_version(&facts.version))?;
    let require_pk = optional_bool_variable(conn, "sql_require_primary_key")?;
    let gipk = optional_bool_variable(conn, "sql_generate_invisible_primary_key")?;
    let mut tried: Vec<&'static str> = Vec::new();
    for table in tables {
        let Some(create) = &table.create else {
            found.creations.push(None);
            continue;
        };
        let label = table.label();
        let adapted: Adapted = compat::adapt(
            &SchemaSource {
                table: &label,
                schema_file: &create.schema_file,
                schema_sql: &create.schema_sql,
                database: create
                    .database
                    .as_ref()
                    .map(|(f, s)| (f.as_str(), s.as_str())),
            },
            &catalog,
            &req.collation_map,
        );
        found.problems.extend(adapted.problems);
        found.warnings.extend(adapted.warnings.iter().cloned());
        for m in &adapted.mappings {
            if !found.mappings.contains(m) {
                found.mappings.push(m.clone());
            }
        }
        let session = compat::primary_key_settings(adapted.keyless, require_pk, gipk);
        for setting in &session {
            if tried.contains(setting) {
                continue;
            }
            tried.push(setting);
            if let Err(e) = conn.query_drop(*setting) {
                found.problems.push(format!(
                    "{label} has no primary key and the target has {}=ON; `{setting}` was refused (it needs SYSTEM_VARIABLES_ADMIN or SESSION_VARIABLES_ADMIN): {}; add a primary key to the table, or create it on the target yourself",
                    setting_variable(setting),
                    errors::driver_sentence(&e)
                ));
            }
        }
        found.creations.push(Some(Creation {
            schema_sql: adapted.schema_sql,
            database_sql: adapted.database_sql,
            session,
            mappings: adapted.mappings,
            warnings: adapted.warnings,
        }));
    }
    Ok(())
}

fn setting_variable(setting: &str) -> &str {
    setting
        .trim_start_matches("SET SESSION ")
        .split(' ')
        .next()
        .unwrap_or(setting)
}

/// What the target has: collations (MariaDB 10.10+ lists its UCA 14
/// collations without a character set in COLLATIONS and with it in
/// COLLATION_CHARACTER_SET_APPLICABILITY.FULL_COLLATION_NAME, which older
/// servers and MySQL lack), character sets, usable engines.
fn read_catalog(conn: &mut Conn, flavor: Flavor) -> Result<TargetCatalog> {
    let mut names = |sql: &str| -> Result<std::collections::BTreeSet<String>> {
        let rows: Vec<Option<String>> = conn
            .query(sql)
            .with_context(|| format!("reading the target's catalog ({sql})"))?;
        Ok(rows
            .into_iter()
            .flatten()
            .map(|n| n.to_ascii_lowercase())
            .collect())
    };
    let mut collations = names("SELECT COLLATION_NAME FROM information_schema.COLLATIONS")?;
    if let Ok(full) = names(
        "SELECT FULL_COLLATION_NAME FROM information_schema.COLLATION_CHARACTER_SET_APPLICABILITY",
    ) {
        collations.extend(full);
    }
    Ok(TargetCatalog {
        flavor,
        collations,
        charsets: names("SELECT CHARACTER_SET_NAME FROM information_schema.CHARACTER_SETS")?,
        engines: names(
            "SELECT ENGINE FROM information_schema.ENGINES WHERE SUPPORT IN ('YES', 'DEFAULT')",
        )?,
    })
}

/// A boolean server variable, or `None` when the server has no such
/// variable (1193).
fn optional_bool_variable(conn: &mut Conn, name: &str) -> Result<Option<bool>> {
    match conn.query_first::<Option<String>, _>(format!("SELECT @@{name}")) {
        Ok(v) => Ok(Some(matches!(
            v.flatten().as_deref(),
            Some("1" | "ON" | "on")
        ))),
        Err(mysql::Error::MySqlError(e)) if e.code == 1193 => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading @@{name} on the target")),
    }
}

/// One table's part of the preflight: its AUTO_INCREMENT verdict, and the
/// privileges that and `req` need.
fn table_preflight(
    conn: &mut Conn,
    facts: &ServerFacts,
    req: &Requirements,
    table: &TargetTable,
    found: &mut Preflight,
) -> Result<AutoincVerdict> {
    let label = table.label();
    let column = table.autoinc_column.as_deref();
    let verdict = autoinc_verdict(req.autoinc, req.jobs, &label, column, facts);
    match &verdict {
        AutoincVerdict::Refuse(why) if !req.repair => found.problems.push(why.clone()),
        AutoincVerdict::Warn(why) => found.warnings.push(why.clone()),
        _ => {}
    }
    let needed = needed_privileges(TableWork {
        exists: table.exists,
        truncate: req.truncate,
        replace: req.on_duplicate == OnDuplicate::Replace,
        drop_autoinc: verdict == AutoincVerdict::Drop,
        defer_indexes: req.indexes == IndexMode::Defer,
        swap: req.swap,
    });
    // With --swap the work is done on the shadow table, and the RENAME
    // and DROP need theirs on the database (a grant on the table's own
    // name does not cover its shadow).
    let on_table = if req.swap {
        found.problems.extend(unswappable(
            conn,
            &table.db,
            &table.table,
            &table.recreated_triggers,
        )?);
        shadow_name(&table.table)
    } else {
        table.table.clone()
    };
    if let Some(missing) = missing_privileges(conn, &table.db, &on_table, &needed)? {
        found.problems.push(format!(
            "the target user lacks {} on {label}{}",
            missing.join(", "),
            if req.swap {
                " (--swap needs CREATE, DROP and ALTER on its database)"
            } else {
                ""
            }
        ));
    }
    // auto defers only what the user may ALTER back: lacking the
    // privileges, it keeps the indexes instead of refusing the load.
    let may_defer = match req.indexes {
        IndexMode::Keep => false,
        IndexMode::Defer => true,
        IndexMode::Auto => {
            missing_privileges(conn, &table.db, &on_table, &["ALTER", "INDEX"])?.is_none()
        }
    };
    found.may_defer.push(may_defer);
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(mode: u32, log_bin: bool, format: &str) -> ServerFacts {
        ServerFacts {
            version: "10.11".into(),
            local_infile: true,
            autoinc_lock_mode: mode,
            log_bin,
            binlog_format: format.into(),
            max_allowed_packet: 16 << 20,
            galera: None,
        }
    }

    #[test]
    fn autoinc_policy_follows_the_design() {
        use AutoincPolicy::*;
        use AutoincVerdict as V;
        let col = Some("id");
        let mode1 = facts(1, false, "MIXED");
        let mode2_row = facts(2, true, "ROW");
        let mode2_stmt = facts(2, true, "STATEMENT");
        let mode2_nobin = facts(2, false, "STATEMENT");
        assert!(
            matches!(autoinc_verdict(Check, 2, "t", col, &mode1), V::Refuse(m) if m.contains("--autoinc drop") && m.contains("innodb_autoinc_lock_mode = 1"))
        );
        assert!(matches!(
            autoinc_verdict(Check, 1, "t", col, &mode1),
            V::Warn(_)
        ));
        assert_eq!(autoinc_verdict(Check, 4, "t", col, &mode2_row), V::Proceed);
        assert!(
            matches!(autoinc_verdict(Check, 2, "t", col, &mode2_stmt), V::Refuse(m) if m.contains("binlog_format=ROW"))
        );
        assert_eq!(
            autoinc_verdict(Check, 2, "t", col, &mode2_nobin),
            V::Proceed
        );
        assert!(matches!(
            autoinc_verdict(Require, 1, "t", col, &mode1),
            V::Refuse(_)
        ));
        assert_eq!(
            autoinc_verdict(Require, 1, "t", col, &mode2_row),
            V::Proceed
        );
        assert_eq!(autoinc_verdict(Drop, 8, "t", col, &mode1), V::Drop);
        assert_eq!(autoinc_verdict(Keep, 8, "t", col, &mode1), V::Proceed);
        assert_eq!(autoinc_verdict(Check, 8, "t", None, &mode1), V::NoColumn);
    }
}
