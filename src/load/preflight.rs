//! The preflight: the server's facts, the AUTO_INCREMENT policy's verdict,
//! the privileges a load needs, and `check` (the preflight alone, for
//! `myspool check`).

use anyhow::{anyhow, Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, Row};
use serde::Serialize;

use crate::conn::ConnSpec;
use crate::schema::{text, TablePattern};

use super::target::{autoinc_column_of, target_columns};
use super::AutoincPolicy;

/// Server variables the preflight and the policy depend on.
#[derive(Debug, Clone, Serialize)]
pub struct ServerFacts {
    pub version: String,
    pub local_infile: bool,
    pub autoinc_lock_mode: u32,
    pub log_bin: bool,
    pub binlog_format: String,
    pub max_allowed_packet: u64,
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
        Ok(ServerFacts {
            version: get(0)?,
            local_infile: get(1)? == "1",
            autoinc_lock_mode: get(2)?.parse().unwrap_or(1),
            log_bin: get(3)? == "1",
            binlog_format: get(4)?,
            max_allowed_packet: get(5)?.parse().unwrap_or(0),
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

/// What a load will do to a table, for the privileges it needs.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TableWork {
    pub exists: bool,
    pub truncate: bool,
    pub replace: bool,
    pub drop_autoinc: bool,
    pub defer_indexes: bool,
}

/// The privileges `work` needs on its table.
pub(super) fn needed_privileges(work: TableWork) -> Vec<&'static str> {
    let mut needed = vec!["SELECT", "INSERT"];
    if !work.exists {
        needed.push("CREATE");
    }
    if work.truncate {
        needed.push("DROP");
    }
    if work.replace {
        needed.push("DELETE");
    }
    if work.drop_autoinc || work.defer_indexes {
        needed.push("ALTER");
    }
    if work.defer_indexes {
        needed.push("INDEX");
    }
    needed
}

/// Privileges of `needed` the current user does not hold on a table
/// (globally, on its database, or on the table). `None` also when they
/// cannot be told: with a role active, what the role grants is not in these
/// views, so nothing is refused on their account.
pub(super) fn missing_privileges(
    conn: &mut Conn,
    db: &str,
    table: &str,
    needed: &[&str],
) -> Result<Option<Vec<String>>> {
    let role: Option<Option<String>> = conn.query_first("SELECT CURRENT_ROLE()").unwrap_or(None);
    if matches!(role.flatten().as_deref(), Some(r) if !r.is_empty() && r != "NONE") {
        return Ok(None);
    }
    // GRANTEE is written 'user'@'host'; CURRENT_USER() is user@host.
    let grantee = r#"CONCAT("'", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), "'@'", SUBSTRING_INDEX(CURRENT_USER(), '@', -1), "'")"#;
    let rows: Vec<Row> = conn
        .exec(
            format!(
                "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = {grantee} \
                 UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES \
                   WHERE GRANTEE = {grantee} AND (TABLE_SCHEMA = ? OR ? LIKE TABLE_SCHEMA) \
                 UNION SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES \
                   WHERE GRANTEE = {grantee} AND TABLE_SCHEMA = ? AND TABLE_NAME = ?"
            ),
            (db, db, db, table),
        )
        .context("reading the target user's privileges")?;
    let held: Vec<String> = rows
        .iter()
        .filter_map(|r| text(r, 0).ok().flatten())
        .map(|p| p.to_ascii_uppercase())
        .collect();
    let missing: Vec<String> = needed
        .iter()
        .filter(|p| !held.iter().any(|h| h == *p))
        .map(|p| p.to_string())
        .collect();
    Ok(if missing.is_empty() {
        None
    } else {
        Some(missing)
    })
}

/// What `myspool check` looks at: a target, without a dump.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub target: ConnSpec,
    /// `db.table` or `db.*`.
    pub tables: Vec<String>,
    pub jobs: usize,
    pub autoinc: AutoincPolicy,
}

/// The preflight's findings.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub target: String,
    pub server: ServerFacts,
    pub tables: Vec<TableCheck>,
    /// Each would make a load refuse.
    pub problems: Vec<String>,
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

/// What `check` found so far.
#[derive(Default)]
struct Findings {
    /// Each would make a load refuse.
    problems: Vec<String>,
    /// Worth knowing, not blocking.
    notes: Vec<String>,
}

/// The load preflight alone: every problem a load of these tables with these
/// options would meet, and nothing changed on the server.
pub fn check(opts: &CheckOptions) -> Result<CheckReport> {
    let mut conn = opts.target.connect("target")?;
    let facts = ServerFacts::read(&mut conn)?;
    let mut found = server_findings(&facts);
    let mut checks = Vec::new();
    for (db, table) in tables_named(&mut conn, &opts.tables, &mut found)? {
        checks.push(check_table(&mut conn, opts, &facts, db, table, &mut found)?);
    }
    Ok(CheckReport {
        target: opts.target.to_string(),
        server: facts,
        tables: checks,
        allowed: found.problems.is_empty(),
        problems: found.problems,
        notes: found.notes,
    })
}

/// What the server's variables alone tell.
fn server_findings(facts: &ServerFacts) -> Findings {
    let mut found = Findings {
        problems: Vec::new(),
        notes: vec![format!("server version {}", facts.version)],
    };
    if !facts.local_infile {
        found.problems.push(
            "local_infile=OFF: the server refuses LOAD DATA LOCAL INFILE; run SET GLOBAL local_infile=1".to_string(),
        );
    }
    if facts.max_allowed_packet < (1 << 20) {
        found.notes.push(format!(
            "max_allowed_packet is {} bytes: a row bigger than that cannot be loaded",
            facts.max_allowed_packet
        ));
    }
    found
}

/// The tables `patterns` (`db.table` or `db.*`) name on the target.
fn tables_named(
    conn: &mut Conn,
    patterns: &[String],
    found: &mut Findings,
) -> Result<Vec<(String, String)>> {
    let mut tables = Vec::new();
    for pattern in patterns {
        match TablePattern::parse(pattern)? {
            TablePattern::One(t) => tables.push((t.db, t.table)),
            TablePattern::AllIn(db) => {
                let rows: Vec<Row> = conn.exec(
                    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
                    (&db,),
                )?;
                if rows.is_empty() {
                    found.notes.push(format!(
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

/// One table's part of the preflight.
fn check_table(
    conn: &mut Conn,
    opts: &CheckOptions,
    facts: &ServerFacts,
    db: String,
    table: String,
    found: &mut Findings,
) -> Result<TableCheck> {
    let label = format!("{db}.{table}");
    let columns = target_columns(conn, &db, &table)?;
    let exists = !columns.is_empty();
    let autoinc_column = autoinc_column_of(&columns);
    let column = autoinc_column.as_deref();
    let verdict = autoinc_verdict(opts.autoinc, opts.jobs, &label, column, facts);
    match &verdict {
        AutoincVerdict::Refuse(why) => found.problems.push(why.clone()),
        AutoincVerdict::Warn(why) => found.notes.push(why.clone()),
        _ => {}
    }
    if !exists {
        found.notes.push(format!(
            "{label} does not exist: a load creates it from the dump's schema.sql"
        ));
    }
    let needed = needed_privileges(TableWork {
        exists,
        drop_autoinc: verdict == AutoincVerdict::Drop,
        ..TableWork::default()
    });
    if let Some(missing) = missing_privileges(conn, &db, &table, &needed)? {
        found.problems.push(format!(
            "the target user lacks {} on {label}",
            missing.join(", ")
        ));
    }
    Ok(TableCheck {
        db,
        table,
        exists,
        autoinc_column,
    })
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

    #[test]
    fn privileges_follow_the_work() {
        assert_eq!(
            needed_privileges(TableWork {
                exists: true,
                ..TableWork::default()
            }),
            ["SELECT", "INSERT"]
        );
        assert_eq!(
            needed_privileges(TableWork {
                exists: false,
                truncate: true,
                replace: true,
                drop_autoinc: false,
                defer_indexes: true,
            }),
            ["SELECT", "INSERT", "CREATE", "DROP", "DELETE", "ALTER", "INDEX"]
        );
        assert_eq!(
            needed_privileges(TableWork {
                exists: true,
                drop_autoinc: true,
                ..TableWork::default()
            }),
            ["SELECT", "INSERT", "ALTER"]
        );
    }
}
