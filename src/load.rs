//! Load: a dump into a target server with `LOAD DATA LOCAL INFILE`.
//!
//! Preflight of every table (before any data moves), then every table is
//! locked and prepared, and `--jobs` connections load the chunks of all of
//! them side by side, each table's in key order: each chunk one `LOAD DATA`
//! statement in its own transaction, streamed from the compressed file through
//! the LOCAL INFILE handler (no temporary copy) and re-encoded on the fly into
//! LOAD DATA's own text format. A table is finished (AUTO_INCREMENT and
//! deferred indexes back) as soon as its last chunk commits.
//!
//! Things the server does that shape this code:
//! - `LOAD DATA LOCAL` implies `IGNORE`: duplicate keys and bad values become
//!   warnings and the rows are skipped or altered *silently*. So every chunk's
//!   `Records/Deleted/Skipped/Warnings` and affected rows are checked against
//!   the chunk's row count, and any warning fails (and rolls back) the chunk.
//! - With `innodb_autoinc_lock_mode` 0 or 1, a bulk insert into a table with an
//!   AUTO_INCREMENT column holds the table's AUTO-INC lock to the end of the
//!   statement; two such loads plus row locks deadlock (1213). Mode 2 avoids
//!   it, and is only safe for replication with `binlog_format=ROW`.
//! - An explicit 0 in an AUTO_INCREMENT column means "next value" unless the
//!   sql_mode has `NO_AUTO_VALUE_ON_ZERO`; zero dates need a sql_mode without
//!   `NO_ZERO_DATE`/`NO_ZERO_IN_DATE`. Every loading session sets both.
//! - The server names the file it wants; a rogue server could name any file
//!   of ours. The handler serves only the chunk of the running statement.

use std::cmp::Reverse;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{unbounded, RecvTimeoutError};
use mysql::prelude::Queryable;
use mysql::{Conn, LocalInfileHandler, Row};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::conn::{self, server_error_code, ConnSpec};
use crate::dialect::{self, Encoding};
use crate::dump::{
    self, ChunkReader, ChunkRecord, ColumnDescription, Compress, DumpDir, Growing, Manifest,
    TableDescription, TableEntry,
};
use crate::journal::{Event, Journal};
use crate::progress::{peak_rss_bytes, Progress, ProgressMode};
use crate::schema::{self, text};
use crate::sql::{self, ident, qualified};

/// What to do about an AUTO_INCREMENT column on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoincPolicy {
    /// Refuse `--jobs` > 1 unless lock mode 2 (+ ROW binlog); warn with one job.
    #[default]
    Check,
    /// Remove AUTO_INCREMENT for the load and restore it after.
    Drop,
    /// Refuse unless lock mode 2 (+ ROW binlog), whatever `--jobs`.
    Require,
    /// No check.
    Keep,
}

/// What a duplicate key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDuplicate {
    /// Fail the chunk (rolled back), showing the key.
    #[default]
    Error,
    /// Keep the row already there.
    Ignore,
    /// Replace the row already there.
    Replace,
}

/// Everything `myspool load` does, as a library call.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub target: ConnSpec,
    pub dir: PathBuf,
    /// Load every table into this database instead of the one it came from.
    pub into: Option<String>,
    pub jobs: usize,
    pub autoinc: AutoincPolicy,
    pub on_duplicate: OnDuplicate,
    pub truncate: bool,
    pub defer_indexes: bool,
    pub skip_binlog: bool,
    /// Only undo what an interrupted load left changed (AUTO_INCREMENT,
    /// deferred indexes); load nothing.
    pub repair: bool,
    pub progress: ProgressMode,
    /// The dump is still being written by another thread of this process
    /// (`copy`): each chunk is loaded once it is finished. Nothing else may
    /// write the dump meanwhile (the caller holds the lock that keeps other
    /// myspool processes out).
    pub follow: Option<Arc<Growing>>,
    /// Test hook: sleep this long before each chunk's LOAD DATA and again
    /// between its `Committing` journal line and its COMMIT (the window a
    /// crash leaves a chunk in doubt). `MYSPOOL_TEST_CHUNK_DELAY_MS` in the CLI.
    #[doc(hidden)]
    pub chunk_delay: Duration,
}

impl LoadOptions {
    pub fn new(target: ConnSpec, dir: impl Into<PathBuf>) -> LoadOptions {
        LoadOptions {
            target,
            dir: dir.into(),
            into: None,
            jobs: 2,
            autoinc: AutoincPolicy::Check,
            on_duplicate: OnDuplicate::Error,
            truncate: false,
            defer_indexes: false,
            skip_binlog: false,
            repair: false,
            progress: ProgressMode::Auto,
            follow: None,
            chunk_delay: Duration::ZERO,
        }
    }
}

/// What a load did.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub dir: PathBuf,
    pub target: String,
    pub tables: Vec<TableLoadSummary>,
    /// Rows loaded by this run.
    pub rows: u64,
    /// Rows that met a duplicate key (skipped or replaced) in this run.
    pub duplicates: u64,
    pub chunks_loaded: u64,
    /// Chunks found already committed by an earlier run.
    pub chunks_skipped: u64,
    /// Chunk attempts repeated after a deadlock, lock wait timeout or lost connection.
    pub retries: u64,
    pub seconds: f64,
    pub peak_rss_bytes: Option<u64>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableLoadSummary {
    pub db: String,
    pub table: String,
    /// The database it was loaded into.
    pub target_db: String,
    pub chunks: usize,
    pub chunks_loaded: u64,
    pub chunks_skipped: u64,
    pub rows: u64,
    pub duplicates: u64,
    pub created: bool,
    pub autoinc: Option<String>,
}

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

/// The load preflight alone: every problem a load of these tables with these
/// options would meet, and nothing changed on the server.
pub fn check(opts: &CheckOptions) -> Result<CheckReport> {
    let mut conn = opts.target.connect("target")?;
    let facts = ServerFacts::read(&mut conn)?;
    let mut problems = Vec::new();
    let mut notes = vec![format!("server version {}", facts.version)];
    if !facts.local_infile {
        problems.push(
            "local_infile=OFF: the server refuses LOAD DATA LOCAL INFILE; run SET GLOBAL local_infile=1".to_string(),
        );
    }
    if facts.max_allowed_packet < (1 << 20) {
        notes.push(format!(
            "max_allowed_packet is {} bytes: a row bigger than that cannot be loaded",
            facts.max_allowed_packet
        ));
    }
    let mut tables = Vec::new();
    for pattern in &opts.tables {
        match crate::schema::TablePattern::parse(pattern)? {
            crate::schema::TablePattern::One(t) => tables.push((t.db, t.table)),
            crate::schema::TablePattern::AllIn(db) => {
                let rows: Vec<Row> = conn.exec(
                    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
                    (&db,),
                )?;
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
    let mut checks = Vec::new();
    for (db, table) in tables {
        let label = format!("{db}.{table}");
        let columns = target_columns(&mut conn, &db, &table)?;
        let exists = !columns.is_empty();
        let autoinc_column = columns.iter().find(|c| c.autoinc).map(|c| c.name.clone());
        let verdict = autoinc_verdict(
            opts.autoinc,
            opts.jobs,
            &label,
            autoinc_column.as_deref(),
            &facts,
        );
        match &verdict {
            AutoincVerdict::Refuse(why) => problems.push(why.clone()),
            AutoincVerdict::Warn(why) => notes.push(why.clone()),
            _ => {}
        }
        if !exists {
            notes.push(format!(
                "{label} does not exist: a load creates it from the dump's schema.sql"
            ));
        }
        let mut needed = vec!["SELECT", "INSERT"];
        if !exists {
            needed.push("CREATE");
        }
        if verdict == AutoincVerdict::Drop {
            needed.push("ALTER");
        }
        if let Some(missing) = missing_privileges(&mut conn, &db, &table, &needed)? {
            problems.push(format!(
                "the target user lacks {} on {label}",
                missing.join(", ")
            ));
        }
        checks.push(TableCheck {
            db,
            table,
            exists,
            autoinc_column,
        });
    }
    Ok(CheckReport {
        target: opts.target.to_string(),
        server: facts,
        tables: checks,
        allowed: problems.is_empty(),
        problems,
        notes,
    })
}

/// One table of the dump and where it goes.
struct TablePlan {
    entry: TableEntry,
    desc: TableDescription,
    target_db: String,
    schema_sql: String,
    exists: bool,
    autoinc_column: Option<String>,
    verdict: AutoincVerdict,
    /// See `raw_bytes_ok` (known once the target table exists).
    raw_bytes: bool,
}

impl TablePlan {
    fn target_sql(&self) -> String {
        qualified(&self.target_db, &self.desc.table)
    }
    fn label(&self) -> String {
        if self.target_db == self.desc.db {
            format!("{}.{}", self.desc.db, self.desc.table)
        } else {
            format!(
                "{}.{} into {}",
                self.desc.db, self.desc.table, self.target_db
            )
        }
    }
}

/// Runs a load (or resumes one).
pub fn load(opts: &LoadOptions) -> Result<LoadSummary> {
    let started = Instant::now();
    if opts.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let dir = DumpDir::new(&opts.dir);
    let (manifest, _lock) = match &opts.follow {
        Some(growing) => {
            let manifest = growing.wait_for(
                || format!("{}", dir.manifest_path().display()),
                || dir.read_manifest(),
            )?;
            (manifest, None)
        }
        None => (read_complete_manifest(&dir)?, Some(dir.lock()?)),
    };
    let mut warnings = Vec::new();

    let mut control = opts.target.connect("target")?;
    setup_session(&mut control, opts)?;
    let facts = ServerFacts::read(&mut control)?;

    // Preflight: every problem of every table, before any data moves.
    let mut problems = Vec::new();
    if !facts.local_infile && !opts.repair {
        problems.push(
            "the target has local_infile=OFF, so it refuses LOAD DATA LOCAL INFILE: \
             run SET GLOBAL local_infile=1 (or start it with --local-infile=1)"
                .to_string(),
        );
    }
    let mut plans = Vec::new();
    for entry in &manifest.tables {
        match plan_table(&mut control, &dir, entry, opts, &facts) {
            Ok(plan) => plans.push(plan),
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    for plan in &plans {
        if let AutoincVerdict::Refuse(why) = &plan.verdict {
            if !opts.repair {
                problems.push(why.clone());
            }
        }
    }
    problems.extend(shared_targets(&plans));
    if !problems.is_empty() {
        bail!("nothing was loaded: {}", problems.join("; "));
    }

    let mut summary = LoadSummary {
        dir: opts.dir.clone(),
        target: opts.target.to_string(),
        tables: Vec::new(),
        rows: 0,
        duplicates: 0,
        chunks_loaded: 0,
        chunks_skipped: 0,
        retries: 0,
        seconds: 0.0,
        peak_rss_bytes: None,
        warnings: Vec::new(),
    };
    let total_rows: u64 = if opts.follow.is_some() {
        plans.iter().map(|p| p.desc.planned_rows).sum()
    } else {
        plans
            .iter()
            .flat_map(|p| p.desc.chunks.iter())
            .filter_map(|c| c.written.as_ref().map(|w| w.rows))
            .sum()
    };
    let progress = Arc::new(Mutex::new(Progress::new(opts.progress, "load", total_rows)));
    for plan in &plans {
        if let AutoincVerdict::Warn(w) = &plan.verdict {
            warn(w.clone(), &mut warnings);
        }
    }
    summary.tables = load_tables(
        &mut control,
        &dir,
        &mut plans,
        opts,
        &progress,
        &mut summary,
    )
    .map_err(|e| with_undo_hint(e, &dir, &plans, opts))?;
    if let Ok(mut p) = progress.lock() {
        p.finish();
    }
    summary.warnings = warnings;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.peak_rss_bytes = peak_rss_bytes();
    Ok(summary)
}

/// A load that stops with AUTO_INCREMENT removed or indexes dropped (on any
/// of its tables: they load side by side) says so, and how to put them back.
fn with_undo_hint(
    err: anyhow::Error,
    dir: &DumpDir,
    plans: &[TablePlan],
    opts: &LoadOptions,
) -> anyhow::Error {
    let mut changed = Vec::new();
    for plan in plans {
        let Ok(journal) = Journal::open(
            &dir.path(&plan.entry.dir),
            &opts.target.endpoint(),
            &plan.target_db,
        ) else {
            continue;
        };
        let state = journal.state();
        if let Some((column, _)) = &state.autoinc_dropped {
            changed.push(format!(
                "AUTO_INCREMENT is removed from {}.{column}",
                plan.label()
            ));
        }
        if state.indexes_dropped.is_some() {
            changed.push(format!("secondary indexes of {} are dropped", plan.label()));
        }
    }
    if changed.is_empty() {
        return err;
    }
    err.context(format!(
        "{}: rerun the same command to finish the load and restore them, or add --repair to restore them now",
        changed.join(" and ")
    ))
}

fn warn(message: String, warnings: &mut Vec<String>) {
    eprintln!("myspool load: warning: {message}");
    warnings.push(message);
}

fn read_complete_manifest(dir: &DumpDir) -> Result<Manifest> {
    let manifest = dir.require_manifest()?;
    if !manifest.complete {
        bail!(
            "the dump in {} is not complete (its export was interrupted or is running): finish it with the same export command first",
            dir.root().display()
        );
    }
    Ok(manifest)
}

/// Session settings of every target connection.
fn setup_session(conn: &mut Conn, opts: &LoadOptions) -> Result<()> {
    // Values exactly as dumped (conn::set_exact_session), explicit 0 kept in
    // an AUTO_INCREMENT column, zero dates accepted, strict conversions (which
    // LOAD DATA LOCAL turns into warnings, and warnings fail the chunk).
    // Foreign keys are not checked: tables and chunks arrive in key order,
    // not in the order the references would need.
    conn::set_exact_session(conn).context("setting up the target session")?;
    for stmt in [
        "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
        "SET SESSION foreign_key_checks = 0",
    ] {
        conn.query_drop(stmt)
            .with_context(|| format!("setting up the target session ({stmt})"))?;
    }
    // A long table can leave the control connection idle for hours.
    conn::keep_session_when_idle(conn).context("setting up the target session")?;
    if opts.skip_binlog {
        conn.query_drop("SET SESSION sql_log_bin = 0").map_err(|e| {
            anyhow!(
                "--skip-binlog needs a privilege to SET sql_log_bin (SUPER, or BINLOG ADMIN on MariaDB) that this user lacks: {e}"
            )
        })?;
    }
    Ok(())
}

/// Preflight of one table: what is there, what the dump needs.
fn plan_table(
    conn: &mut Conn,
    dir: &DumpDir,
    entry: &TableEntry,
    opts: &LoadOptions,
    facts: &ServerFacts,
) -> Result<TablePlan> {
    let desc = dir.table_description(entry, opts.follow.as_deref())?;
    let schema_path = dir.path(&entry.dir).join(dump::SCHEMA_FILE);
    let schema_sql = std::fs::read_to_string(&schema_path)
        .with_context(|| format!("reading {}", schema_path.display()))?;
    for chunk in &desc.chunks {
        if chunk.written.is_none() && opts.follow.is_none() {
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
    let target_db = opts.into.clone().unwrap_or_else(|| desc.db.clone());
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
        columns.iter().find(|c| c.autoinc).map(|c| c.name.clone())
    } else {
        schema_autoinc_column(&schema_sql)
    };
    let verdict = autoinc_verdict(
        opts.autoinc,
        opts.jobs,
        &label,
        autoinc_column.as_deref(),
        facts,
    );
    let mut needed = vec!["SELECT", "INSERT"];
    if !exists {
        needed.push("CREATE");
    }
    if opts.truncate {
        needed.push("DROP");
    }
    if opts.on_duplicate == OnDuplicate::Replace {
        needed.push("DELETE");
    }
    if verdict == AutoincVerdict::Drop || opts.defer_indexes {
        needed.push("ALTER");
    }
    if opts.defer_indexes {
        needed.push("INDEX");
    }
    if let Some(missing) = missing_privileges(conn, &target_db, &desc.table, &needed)? {
        bail!("the target user lacks {} on {label}", missing.join(", "));
    }
    Ok(TablePlan {
        entry: entry.clone(),
        desc,
        target_db,
        schema_sql,
        exists,
        autoinc_column,
        verdict,
        raw_bytes,
    })
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

/// Privileges of `needed` the current user does not hold on a table
/// (globally, on its database, or on the table). `None` also when they
/// cannot be told: with a role active, what the role grants is not in these
/// views, so nothing is refused on their account.
fn missing_privileges(
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

struct TargetColumn {
    name: String,
    data_type: String,
    /// `CHARACTER_SET_NAME`: none for numbers, dates and binary strings.
    charset: Option<String>,
    generated: bool,
    autoinc: bool,
}

fn target_columns(conn: &mut Conn, db: &str, table: &str) -> Result<Vec<TargetColumn>> {
    let rows: Vec<Row> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COALESCE(GENERATION_EXPRESSION, ''), EXTRA, \
             CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .with_context(|| format!("reading the columns of {db}.{table} on the target"))?;
    rows.iter()
        .map(|r| {
            let extra = text(r, 3)?.unwrap_or_default().to_ascii_lowercase();
            Ok(TargetColumn {
                name: text(r, 0)?.unwrap_or_default(),
                data_type: text(r, 1)?.unwrap_or_default().to_ascii_lowercase(),
                charset: text(r, 4)?.map(|c| c.to_ascii_lowercase()),
                generated: !text(r, 2)?.unwrap_or_default().is_empty()
                    || extra.contains("generated"),
                autoinc: extra.contains("auto_increment"),
            })
        })
        .collect()
}

/// The target's columns must be the dump's (generated ones aside), and a
/// column written as hex must land in a binary column.
fn check_columns(label: &str, desc: &TableDescription, columns: &[TargetColumn]) -> Result<()> {
    let target: Vec<&TargetColumn> = columns.iter().filter(|c| !c.generated).collect();
    let missing: Vec<&str> = desc
        .columns
        .iter()
        .filter(|d| !target.iter().any(|t| t.name == d.name))
        .map(|d| d.name.as_str())
        .collect();
    let extra: Vec<&str> = target
        .iter()
        .filter(|t| !desc.columns.iter().any(|d| d.name == t.name))
        .map(|t| t.name.as_str())
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        bail!(
            "the target table {label} does not match the dump: {}{}{}",
            if missing.is_empty() {
                String::new()
            } else {
                format!("missing column(s) {}", missing.join(", "))
            },
            if !missing.is_empty() && !extra.is_empty() {
                "; "
            } else {
                ""
            },
            if extra.is_empty() {
                String::new()
            } else {
                format!("column(s) not in the dump: {}", extra.join(", "))
            },
        );
    }
    for d in &desc.columns {
        let Some(t) = target.iter().find(|t| t.name == d.name) else {
            continue;
        };
        let binary = schema::is_binary_type(&t.data_type);
        if (d.encoding == Encoding::Hex) != binary && d.data_type != t.data_type {
            bail!(
                "the target table {label} does not match the dump: column {} is {} in the dump and {} on the target (binary and text columns cannot be mixed)",
                d.name,
                d.data_type,
                t.data_type
            );
        }
    }
    Ok(())
}

/// Whether the chunks of a table can be sent as raw bytes, read by the server
/// with `CHARACTER SET binary` and stored without any expression.
///
/// Why bother: the other statement reads each hex column into a variable and
/// stores `UNHEX(@v)`, and on a 2M-row table the SET clause cost the server
/// about 1 s of CPU of 4 for parsing (`LOAD DATA` into a keyless MyISAM
/// table), 1 s of 9–10 for the whole InnoDB load.
///
/// Why only then: the file is UTF-8 and `CHARACTER SET binary` converts
/// nothing, so every text column must be utf8mb4 or utf8mb3 (the server still
/// checks the bytes against the column's character set: invalid UTF-8 is
/// refused as with `CHARACTER SET utf8mb4`). Raw bytes need the binary reader:
/// MySQL's LOAD DATA reader takes a byte that starts a multibyte UTF-8
/// sequence as the start of a character and copies the following bytes
/// without looking at them, so a raw 0xE3 before a tab or a backslash would
/// swallow the separator or the escape. Hex columns must land in
/// BINARY/VARBINARY/BLOB (BIT and spatial columns keep `UNHEX`), and MySQL
/// refuses binary strings for JSON columns.
fn raw_bytes_ok(dumped: &[ColumnDescription], columns: &[TargetColumn]) -> bool {
    dumped.iter().all(|d| {
        let Some(t) = columns.iter().find(|t| t.name == d.name) else {
            return false;
        };
        if t.data_type == "json" {
            return false;
        }
        match d.encoding {
            Encoding::Hex => schema::is_byte_string(&t.data_type),
            Encoding::Text => matches!(
                t.charset.as_deref(),
                None | Some("utf8mb4" | "utf8mb3" | "utf8")
            ),
        }
    })
}

/// The AUTO_INCREMENT column named in a `CREATE TABLE`, if any.
fn schema_autoinc_column(create: &str) -> Option<String> {
    create
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('`') && l.contains(" AUTO_INCREMENT"))
        .find_map(column_name_of_definition)
}

/// The name at the start of a column definition line: `` `a``b` int … ``.
fn column_name_of_definition(line: &str) -> Option<String> {
    let rest = line.strip_prefix('`')?;
    let mut name = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' {
            if chars.peek() == Some(&'`') {
                chars.next();
                name.push('`');
            } else {
                return Some(name);
            }
        } else {
            name.push(c);
        }
    }
    None
}

/// The definition line of `column` in `SHOW CREATE TABLE` output.
fn column_definition(create: &str, column: &str) -> Option<String> {
    create
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .find(|l| column_name_of_definition(l).as_deref() == Some(column))
        .map(str::to_string)
}

fn show_create(conn: &mut Conn, table_sql: &str) -> Result<String> {
    let row: Option<Row> = conn
        .query_first(format!("SHOW CREATE TABLE {table_sql}"))
        .with_context(|| format!("SHOW CREATE TABLE {table_sql}"))?;
    match row {
        Some(r) => Ok(text(&r, 1)?.unwrap_or_default()),
        None => bail!("SHOW CREATE TABLE {table_sql} returned nothing"),
    }
}

/// Non-unique secondary indexes as `ADD …` clauses, with their names. Unique
/// indexes stay: without them a duplicate would only show when they are
/// rebuilt, after the data is in.
fn deferrable_indexes(create: &str) -> Vec<(String, String)> {
    create
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .filter(|l| {
            l.starts_with("KEY ") || l.starts_with("FULLTEXT KEY ") || l.starts_with("SPATIAL KEY ")
        })
        .filter_map(|l| {
            let after = &l[l.find('`')?..];
            let name = column_name_of_definition(after)?;
            Some((name, format!("ADD {l}")))
        })
        .collect()
}

fn existing_index_names(conn: &mut Conn, db: &str, table: &str) -> Result<Vec<String>> {
    let rows: Vec<Row> = conn.exec(
        "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        (db, table),
    )?;
    rows.iter()
        .map(|r| Ok(text(r, 0)?.unwrap_or_default()))
        .collect()
}

/// What is left to do for one table once `prepare_table` has run.
enum Prepared {
    /// Loaded by an earlier run.
    Complete,
    /// `--repair` restored what an interrupted load changed; nothing to load.
    Repaired,
    /// These chunks (in key order; maybe none), then `finish_table`.
    Load {
        journal: Journal,
        pending: Vec<ChunkRecord>,
    },
}

/// Locks every target table, prepares each one (create, truncate, the
/// temporary changes, the chunk left in doubt), then loads the chunks of all
/// of them with `opts.jobs` connections and finishes each table as its last
/// chunk commits.
fn load_tables(
    control: &mut Conn,
    dir: &DumpDir,
    plans: &mut [TablePlan],
    opts: &LoadOptions,
    progress: &Arc<Mutex<Progress>>,
    summary: &mut LoadSummary,
) -> Result<Vec<TableLoadSummary>> {
    ensure_alive(control, opts)?;
    // Every lock before any change: a table that another load holds stops
    // this one before anything was touched.
    for plan in plans.iter() {
        lock_target(control, plan)?;
    }
    let mut tables = Vec::new();
    let mut runs = Vec::new();
    for (index, plan) in plans.iter_mut().enumerate() {
        let mut ts = TableLoadSummary {
            db: plan.desc.db.clone(),
            table: plan.desc.table.clone(),
            target_db: plan.target_db.clone(),
            chunks: plan.desc.chunks.len(),
            chunks_loaded: 0,
            chunks_skipped: 0,
            rows: 0,
            duplicates: 0,
            created: false,
            autoinc: plan
                .autoinc_column
                .as_ref()
                .map(|_| format!("{:?}", opts.autoinc).to_lowercase()),
        };
        match prepare_table(control, dir, plan, opts, &mut ts)? {
            Prepared::Complete => {
                ts.chunks_skipped = plan.desc.chunks.len() as u64;
                release_target(control, plan);
            }
            Prepared::Repaired => release_target(control, plan),
            Prepared::Load { journal, pending } => {
                ts.chunks_skipped = (plan.desc.chunks.len() - pending.len()) as u64;
                runs.push((index, journal, pending));
            }
        }
        summary.chunks_skipped += ts.chunks_skipped;
        tables.push(ts);
    }
    let mut pending = Vec::new();
    let runs: Vec<TableRun> = runs
        .into_iter()
        .map(|(index, journal, chunks)| {
            let plan = &plans[index];
            pending.push(chunks);
            TableRun {
                index,
                plan,
                table_dir: dir.path(&plan.entry.dir),
                statement: LoadStatement::new(plan, opts.on_duplicate),
                journal: Mutex::new(journal),
            }
        })
        .collect();
    let outcomes = load_chunks(control, dir, &runs, pending, opts, progress)?;
    for (run, outcome) in runs.iter().zip(outcomes) {
        let ts = &mut tables[run.index];
        ts.chunks_loaded = outcome.chunks;
        ts.rows = outcome.rows;
        ts.duplicates = outcome.duplicates;
        summary.chunks_loaded += outcome.chunks;
        summary.rows += outcome.rows;
        summary.duplicates += outcome.duplicates;
        summary.retries += outcome.retries;
    }
    let _ = control.query_drop("DO RELEASE_ALL_LOCKS()");
    Ok(tables)
}

/// Everything before a table's chunks: the checks against its journal, the
/// CREATE, `--truncate`, the AUTO_INCREMENT and index changes, and the chunk
/// whose commit was in flight when an earlier run died.
fn prepare_table(
    control: &mut Conn,
    dir: &DumpDir,
    plan: &mut TablePlan,
    opts: &LoadOptions,
    ts: &mut TableLoadSummary,
) -> Result<Prepared> {
    let table_dir = dir.path(&plan.entry.dir);
    let mut journal = Journal::open(&table_dir, &opts.target.endpoint(), &plan.target_db)?;
    let target = plan.target_sql();
    let journaled = journal.state().complete || !journal.state().committed.is_empty();
    if journaled && !plan.exists {
        bail!(
            "{} does not exist, but the journal {} says chunks of it were loaded there: the table was dropped since; delete that journal to load it again",
            plan.label(),
            journal.path().display()
        );
    }
    if journal.state().complete && !opts.repair {
        return Ok(Prepared::Complete);
    }

    if !plan.exists && !opts.repair {
        create_table(control, dir, plan)?;
        ts.created = true;
        // schema.sql is the source's definition; a processed dump that
        // dropped columns no longer matches it.
        let columns = target_columns(control, &plan.target_db, &plan.desc.table)?;
        if let Err(e) = check_columns(&plan.label(), &plan.desc, &columns) {
            let _ = control.query_drop(format!("DROP TABLE {target}"));
            return Err(e.context("the table created from schema.sql was dropped again; create it to match the dump first"));
        }
        plan.raw_bytes = raw_bytes_ok(&plan.desc.columns, &columns);
    }

    if opts.repair {
        restore_temporary_changes(control, plan, &mut journal)?;
        return Ok(Prepared::Repaired);
    }

    if opts.truncate && !journal.state().truncated && journal.state().committed.is_empty() {
        control
            .query_drop(format!("TRUNCATE TABLE {target}"))
            .with_context(|| format!("TRUNCATE TABLE {target}"))?;
        journal.record(Event::Truncated)?;
    }

    if plan.verdict == AutoincVerdict::Drop && journal.state().autoinc_dropped.is_none() {
        if let Some(column) = plan.autoinc_column.clone() {
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
                        .with_context(|| {
                            format!("removing AUTO_INCREMENT from {target}.{column}")
                        })?;
                }
            }
        }
    }
    if opts.defer_indexes && journal.state().indexes_dropped.is_none() {
        let create = show_create(control, &target)?;
        let indexes = deferrable_indexes(&create);
        if !indexes.is_empty() {
            journal.record(Event::IndexesDropping {
                indexes: indexes.iter().map(|(_, add)| add.clone()).collect(),
            })?;
            let drops: Vec<String> = indexes
                .iter()
                .map(|(n, _)| format!("DROP INDEX {}", ident(n)))
                .collect();
            control
                .query_drop(format!("ALTER TABLE {target} {}", drops.join(", ")))
                .with_context(|| {
                    format!("dropping the secondary indexes of {target} (--defer-indexes)")
                })?;
        }
    }

    // The chunk whose commit was in flight when an earlier run died: on the
    // target or not, counted by its key range.
    let in_doubt: Vec<u32> = journal.state().in_doubt.iter().copied().collect();
    if !in_doubt.is_empty() && opts.follow.is_some() {
        // It was loaded, so it is written, if perhaps after plan_table looked.
        if let Some(desc) = dir.written_chunks(&plan.entry)? {
            plan.desc = desc;
        }
    }
    for number in in_doubt {
        let chunk = chunk_by_number(&plan.desc, number)?;
        let rows = chunk.written.as_ref().map_or(0, |w| w.rows);
        let found = count_range(control, plan, chunk)?;
        if found == rows {
            journal.record(Event::Committed {
                chunk: number,
                rows,
                duplicates: 0,
            })?;
        } else if found != 0 && opts.on_duplicate == OnDuplicate::Error {
            bail!(
                "chunk {number:06} was being committed when an earlier load stopped, and its key range on the target now holds {found} rows where the chunk has {rows}: the target changed meanwhile; check it, then empty the range or reload with --truncate"
            );
        }
    }

    let pending: Vec<ChunkRecord> = plan
        .desc
        .chunks
        .iter()
        .filter(|c| !journal.state().committed.contains(&c.number))
        .cloned()
        .collect();
    Ok(Prepared::Load { journal, pending })
}

/// Everything after a table's chunks: AUTO_INCREMENT and the deferred
/// indexes back, the journal closed, the table's lock released.
fn finish_table(control: &mut Conn, plan: &TablePlan, journal: &mut Journal) -> Result<()> {
    restore_temporary_changes(control, plan, journal)?;
    journal.record(Event::Complete)?;
    release_target(control, plan);
    Ok(())
}

/// Reconnects the control connection if the server closed it (wait_timeout,
/// a restart). True when it did.
fn ensure_alive(control: &mut Conn, opts: &LoadOptions) -> Result<bool> {
    if control.ping().is_ok() {
        return Ok(false);
    }
    let mut fresh = opts.target.connect("target")?;
    setup_session(&mut fresh, opts)?;
    *control = fresh;
    Ok(true)
}

/// A server-side named lock per target table, held by the control
/// connection while the table loads: two loads (from two dumps, or two
/// machines) into one table at once would corrupt each other's journal
/// assumptions. The server drops the lock when the connection ends, so a
/// killed loader leaves nothing behind.
fn lock_target(control: &mut Conn, plan: &TablePlan) -> Result<()> {
    let name = lock_name(plan);
    let got: Option<Option<i64>> = control
        .exec_first("SELECT GET_LOCK(?, 0)", (&name,))
        .with_context(|| format!("taking the lock {name:?} on the target"))?;
    match got.flatten() {
        Some(1) => Ok(()),
        _ => bail!(
            "another myspool load is loading into {} on this server (it holds the lock {name:?}); wait for it to finish",
            plan.label()
        ),
    }
}

/// Best effort: the lock goes with the connection anyway.
fn release_target(control: &mut Conn, plan: &TablePlan) {
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
    if let Some(indexes) = journal.state().indexes_dropped.clone() {
        let existing = existing_index_names(control, &plan.target_db, &plan.desc.table)?;
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
    let db_exists: Option<Row> = control.exec_first(
        "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        (&plan.target_db,),
    )?;
    if db_exists.is_none() {
        let db_sql = std::fs::read_to_string(
            dir.path(&dump::safe_file_name(&plan.desc.db))
                .join(dump::DATABASE_FILE),
        )
        .unwrap_or_default();
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
    control.query_drop(format!("USE {}", ident(&plan.target_db)))?;
    control
        .query_drop(plan.schema_sql.trim().trim_end_matches(';'))
        .with_context(|| format!("creating {} from schema.sql", plan.target_sql()))?;
    plan.exists = true;
    Ok(())
}

fn chunk_by_number(desc: &TableDescription, number: u32) -> Result<&ChunkRecord> {
    desc.chunks
        .iter()
        .find(|c| c.number == number)
        .ok_or_else(|| anyhow!("the journal names chunk {number:06}, which the dump does not have"))
}

fn count_range(conn: &mut Conn, plan: &TablePlan, chunk: &ChunkRecord) -> Result<u64> {
    let range = sql::chunk_range(
        &plan.desc.key.columns,
        chunk.lower.as_deref(),
        chunk.upper.as_deref(),
    );
    let q = format!(
        "SELECT COUNT(*) FROM {}{}",
        plan.target_sql(),
        sql::where_all(&range)
    );
    let n: Option<u64> = conn
        .query_first(&q)
        .with_context(|| format!("counting chunk {:06}'s range", chunk.number))?;
    Ok(n.unwrap_or(0))
}

#[derive(Default)]
struct ChunksOutcome {
    chunks: u64,
    rows: u64,
    duplicates: u64,
    retries: u64,
}

/// A table with chunks to load, ready for the jobs.
struct TableRun<'p> {
    /// Its place in the dump (and in the summary's tables).
    index: usize,
    plan: &'p TablePlan,
    table_dir: PathBuf,
    statement: LoadStatement,
    journal: Mutex<Journal>,
}

/// Which chunk a job loads next, and what each table has done.
struct Schedule {
    tables: Vec<TableTurn>,
}

#[derive(Default)]
struct TableTurn {
    /// The chunks to load, in key order.
    chunks: Vec<ChunkRecord>,
    /// How many of `chunks` are written (all of them, unless the dump is
    /// still being written: see `Schedule::refresh`).
    ready: usize,
    /// Rows of a chunk not written yet (the planned chunk size).
    planned_rows: u64,
    /// Position in `chunks` of the next chunk to hand out.
    next: usize,
    /// Rows of the chunks not handed out yet (planned rows for those not
    /// written yet).
    rows_to_hand_out: u64,
    /// Jobs loading one of its chunks right now.
    active: usize,
    outcome: ChunksOutcome,
}

impl TableTurn {
    fn rows_of(&self, chunk: &ChunkRecord) -> u64 {
        chunk.written.as_ref().map_or(self.planned_rows, |w| w.rows)
    }
}

impl Schedule {
    /// Per table, the chunks to load in key order, and the rows planned per
    /// chunk (counted for the chunks not written yet).
    fn new(tables: Vec<(Vec<ChunkRecord>, u64)>) -> Schedule {
        let mut schedule = Schedule {
            tables: tables
                .into_iter()
                .map(|(chunks, planned_rows)| TableTurn {
                    chunks,
                    planned_rows,
                    ..TableTurn::default()
                })
                .collect(),
        };
        for turn in &mut schedule.tables {
            turn.rows_to_hand_out = turn.chunks.iter().map(|c| turn.rows_of(c)).sum();
            turn.ready = turn
                .chunks
                .iter()
                .take_while(|c| c.written.is_some())
                .count();
        }
        schedule
    }

    /// Marks the chunks of table `t` that `now` (its description as on disk)
    /// shows written, in key order.
    fn refresh(&mut self, t: usize, now: &TableDescription) {
        let turn = &mut self.tables[t];
        while turn.ready < turn.chunks.len() {
            let number = turn.chunks[turn.ready].number;
            let Some(written) = now
                .chunks
                .iter()
                .find(|c| c.number == number)
                .and_then(|c| c.written.clone())
            else {
                break;
            };
            turn.rows_to_hand_out = turn.rows_to_hand_out - turn.planned_rows + written.rows;
            turn.chunks[turn.ready].written = Some(written);
            turn.ready += 1;
        }
    }

    /// Tables with chunks not handed out yet because they are not written.
    fn waiting(&self) -> impl Iterator<Item = usize> + '_ {
        self.tables
            .iter()
            .enumerate()
            .filter(|(_, turn)| turn.next == turn.ready && turn.ready < turn.chunks.len())
            .map(|(t, _)| t)
    }

    /// The first table waiting for a chunk to be written, and that chunk's
    /// number.
    fn waiting_for(&self) -> Option<(usize, u32)> {
        let t = self.waiting().next()?;
        let turn = &self.tables[t];
        Some((t, turn.chunks.get(turn.ready)?.number))
    }

    /// `take`, with the chunk itself.
    fn take_chunk(&mut self) -> Option<(usize, ChunkRecord)> {
        let (t, i) = self.take()?;
        Some((t, self.tables[t].chunks[i].clone()))
    }

    fn all_handed_out(&self) -> bool {
        self.tables
            .iter()
            .all(|turn| turn.next == turn.chunks.len())
    }

    /// The next chunk, as (table, position in its chunks): the next one in
    /// key order of the table with the fewest jobs on it; on a tie, the one
    /// with the most rows left to hand out, then the earliest in the dump.
    /// Jobs on different tables do not take turns on one table's locks and
    /// latches (on MariaDB every insert into a table with an AUTO_INCREMENT
    /// column latches its primary key's root page), so the jobs spread over
    /// the tables while there is a choice; and the biggest table starts
    /// first, so that the load does not end with every job on it.
    fn take(&mut self) -> Option<(usize, usize)> {
        let (t, turn) = self
            .tables
            .iter_mut()
            .enumerate()
            .filter(|(_, turn)| turn.next < turn.ready)
            .min_by_key(|(t, turn)| (turn.active, Reverse(turn.rows_to_hand_out), *t))?;
        turn.active += 1;
        turn.rows_to_hand_out -= turn.rows_of(&turn.chunks[turn.next]);
        turn.next += 1;
        Some((t, turn.next - 1))
    }

    /// Counts a committed chunk of table `t`; true if it was the table's last.
    fn done(&mut self, t: usize, done: &ChunkDone) -> bool {
        let turn = &mut self.tables[t];
        turn.active -= 1;
        turn.outcome.chunks += 1;
        turn.outcome.rows += done.rows;
        turn.outcome.duplicates += done.duplicates;
        turn.outcome.retries += done.retries;
        turn.outcome.chunks as usize == turn.chunks.len()
    }
}

/// How often the control connection says something while the jobs load.
const KEEPALIVE: Duration = Duration::from_secs(300);

/// Loads the pending chunks of every run with `opts.jobs` connections, each
/// taking whole chunks (see `Schedule::take`), and finishes each table on the
/// control connection as soon as its last chunk commits, while the jobs go
/// on with the other tables. The first error stops every job after its
/// current chunk.
fn load_chunks(
    control: &mut Conn,
    dir: &DumpDir,
    runs: &[TableRun],
    pending: Vec<Vec<ChunkRecord>>,
    opts: &LoadOptions,
    progress: &Arc<Mutex<Progress>>,
) -> Result<Vec<ChunksOutcome>> {
    let total: usize = pending.iter().map(Vec::len).sum();
    let empty: Vec<usize> = (0..runs.len()).filter(|&t| pending[t].is_empty()).collect();
    let schedule = Mutex::new(Schedule::new(
        runs.iter()
            .zip(pending)
            .map(|(r, chunks)| (chunks, r.plan.desc.chunk_rows))
            .collect(),
    ));
    let abort = AtomicBool::new(false);
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let fail = |e: anyhow::Error| {
        abort.store(true, Ordering::SeqCst);
        if let Ok(mut slot) = first_error.lock() {
            slot.get_or_insert(e);
        }
    };
    let jobs = opts.jobs.min(total);
    let (finished_tx, finished_rx) = unbounded::<usize>();
    for t in empty {
        let _ = finished_tx.send(t);
    }
    // The next chunk for a job, once it is written; None when none is left.
    let next_chunk = || -> Result<Option<(usize, ChunkRecord)>> {
        let poisoned = || anyhow!("a loader thread panicked");
        let Some(growing) = &opts.follow else {
            return Ok(schedule.lock().map_err(|_| poisoned())?.take_chunk());
        };
        let what = || match schedule.lock().ok().and_then(|s| s.waiting_for()) {
            Some((t, number)) => format!("chunk {number:06} of {}", runs[t].plan.label()),
            None => "the next chunk".into(),
        };
        // Found: Some(chunk), or None when every chunk is handed out.
        growing.wait_for(what, || {
            if abort.load(Ordering::SeqCst) {
                return Ok(Some(None));
            }
            let mut s = schedule.lock().map_err(|_| poisoned())?;
            if s.all_handed_out() {
                return Ok(Some(None));
            }
            if let Some(found) = s.take_chunk() {
                return Ok(Some(Some(found)));
            }
            let waiting: Vec<usize> = s.waiting().collect();
            for t in waiting {
                if let Some(now) = dir.written_chunks(&runs[t].plan.entry)? {
                    s.refresh(t, &now);
                }
            }
            Ok(s.take_chunk().map(Some))
        })
    };
    thread::scope(|scope| {
        for _ in 0..jobs {
            let finished_tx = finished_tx.clone();
            let (schedule, abort, fail) = (&schedule, &abort, &fail);
            scope.spawn(move || {
                let result = (|| -> Result<()> {
                    let mut loader = Loader::connect(opts)?;
                    while !abort.load(Ordering::SeqCst) {
                        let Some((t, chunk)) = next_chunk()? else {
                            return Ok(());
                        };
                        let run = &runs[t];
                        let chunk = &chunk;
                        let done = loader
                            .load_with_retries(
                                &run.statement,
                                run.plan,
                                &run.table_dir,
                                chunk,
                                &run.journal,
                            )
                            .with_context(|| {
                                format!("loading chunk {:06} of {}", chunk.number, run.plan.label())
                            })?;
                        if let Ok(mut p) = progress.lock() {
                            p.add(done.rows, done.bytes);
                        }
                        let last = schedule
                            .lock()
                            .map_err(|_| anyhow!("a loader thread panicked"))?
                            .done(t, &done);
                        if last {
                            let _ = finished_tx.send(t);
                        }
                    }
                    Ok(())
                })();
                if let Err(e) = result {
                    fail(e);
                }
            });
        }
        drop(finished_tx);
        // Ends when every job has returned (each holds a sender).
        let mut unfinished: Vec<bool> = vec![true; runs.len()];
        loop {
            let t = match finished_rx.recv_timeout(KEEPALIVE) {
                Ok(t) => t,
                Err(RecvTimeoutError::Timeout) => {
                    // Chunks can be minutes or hours apart (`copy` loads them
                    // as a slow --exec writes them): keep the session, and
                    // with it the tables' locks, from reaching wait_timeout.
                    let _ = control.query_drop("DO 1");
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if abort.load(Ordering::SeqCst) {
                continue;
            }
            let run = &runs[t];
            let finished = (|| -> Result<()> {
                // The control connection sat idle while chunks loaded; a short
                // wait_timeout may have closed it, and with it the locks.
                if ensure_alive(control, opts)? {
                    for (r, &open) in runs.iter().zip(&unfinished) {
                        if open {
                            lock_target(control, r.plan)?;
                        }
                    }
                }
                let mut journal = run
                    .journal
                    .lock()
                    .map_err(|_| anyhow!("a loader thread panicked"))?;
                finish_table(control, run.plan, &mut journal)
            })();
            unfinished[t] = false;
            if let Err(e) = finished {
                fail(e.context(format!("finishing {}", run.plan.label())));
            }
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(schedule
        .into_inner()
        .map_err(|_| anyhow!("a loader thread panicked"))?
        .tables
        .into_iter()
        .map(|t| t.outcome)
        .collect())
}

/// The `LOAD DATA` statement of a table (the file name aside).
struct LoadStatement {
    /// Everything after `LOAD DATA LOCAL INFILE '<name>'`.
    tail: String,
    columns: usize,
    header: Vec<String>,
    compress: Compress,
    /// Per column: hex in the chunk, to be sent as the bytes it spells.
    decode_hex: Vec<bool>,
}

impl LoadStatement {
    fn new(plan: &TablePlan, on_duplicate: OnDuplicate) -> LoadStatement {
        let mode = match on_duplicate {
            OnDuplicate::Error | OnDuplicate::Ignore => "IGNORE",
            OnDuplicate::Replace => "REPLACE",
        };
        let header: Vec<String> = plan.desc.columns.iter().map(|c| c.name.clone()).collect();
        if plan.raw_bytes {
            // Every value as it is, no expression (see `raw_bytes_ok`).
            let list: Vec<String> = header.iter().map(|n| ident(n)).collect();
            return LoadStatement {
                tail: format!(
                    "{mode} INTO TABLE {} CHARACTER SET binary FIELDS TERMINATED BY '\\t' \
                     ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
                    plan.target_sql(),
                    list.join(", ")
                ),
                columns: header.len(),
                header,
                compress: plan.desc.compress,
                decode_hex: plan
                    .desc
                    .columns
                    .iter()
                    .map(|c| c.encoding == Encoding::Hex)
                    .collect(),
            };
        }
        let mut list = Vec::new();
        let mut sets = Vec::new();
        let has_hex = plan
            .desc
            .columns
            .iter()
            .any(|c| c.encoding == Encoding::Hex);
        for (i, c) in plan.desc.columns.iter().enumerate() {
            let autoinc = plan.autoinc_column.as_deref() == Some(c.name.as_str());
            match c.encoding {
                // MariaDB (seen on 10.11.19) ignores NO_AUTO_VALUE_ON_ZERO for
                // a column read directly when the statement has a SET clause:
                // an explicit id 0 becomes the next AUTO_INCREMENT value. Read
                // through a variable and assigned in SET, the 0 is kept.
                Encoding::Text if autoinc && has_hex => {
                    list.push(format!("@myspool_{i}"));
                    sets.push(format!("{} = @myspool_{i}", ident(&c.name)));
                }
                Encoding::Text => list.push(ident(&c.name)),
                // Hex columns go through a variable: the bytes come back with
                // UNHEX, untouched by any character set conversion.
                Encoding::Hex => {
                    list.push(format!("@myspool_{i}"));
                    sets.push(format!("{} = UNHEX(@myspool_{i})", ident(&c.name)));
                }
            }
        }
        // LOAD DATA's own format: tab-separated, backslash escapes, \N for NULL.
        let mut tail = format!(
            "{mode} INTO TABLE {} CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' \
             LINES TERMINATED BY '\\n' ({})",
            plan.target_sql(),
            list.join(", ")
        );
        if !sets.is_empty() {
            tail.push_str(" SET ");
            tail.push_str(&sets.join(", "));
        }
        LoadStatement {
            tail,
            columns: header.len(),
            header,
            compress: plan.desc.compress,
            decode_hex: Vec::new(),
        }
    }
}

/// The chunk the running statement may read, and what came of serving it.
struct InfileRequest {
    /// The name in the statement; the server must ask for exactly this.
    name: Vec<u8>,
    path: PathBuf,
    compress: Compress,
    columns: usize,
    header: Vec<String>,
    decode_hex: Vec<bool>,
    sha256: String,
    rows_sent: u64,
    bytes: u64,
    error: Option<String>,
}

type InfileSlot = Arc<Mutex<Option<InfileRequest>>>;

/// The LOCAL INFILE handler: serves the file of the statement being run and
/// nothing else. Errors are kept in the request (the statement then sees a
/// short file, and the row count check rolls the chunk back), because an
/// error returned from here would leave the connection mid-protocol.
fn infile_handler(slot: InfileSlot) -> LocalInfileHandler {
    LocalInfileHandler::new(move |name, out| {
        let Ok(mut guard) = slot.lock() else {
            return Ok(());
        };
        let requested = String::from_utf8_lossy(name).into_owned();
        match guard.as_mut() {
            Some(req) if req.name == name => {
                if let Err(e) = stream_chunk(req, out) {
                    req.error = Some(format!("{e:#}"));
                }
            }
            Some(req) => {
                let msg = format!(
                    "the server asked for local file {requested:?} while loading {}: refused (only the chunk being loaded is served)",
                    req.path.display()
                );
                eprintln!("myspool load: {msg}");
                req.error = Some(msg);
            }
            None => eprintln!(
                "myspool load: the server asked for local file {requested:?} outside any load statement: refused"
            ),
        }
        Ok(())
    })
}

/// Decompresses a chunk, checks it, and writes it in LOAD DATA's format.
fn stream_chunk(req: &mut InfileRequest, out: &mut dyn Write) -> Result<()> {
    let mut reader = ChunkReader::open_hashed(&req.path, req.compress)?;
    reader.expect_header(&req.header)?;
    let file_label = reader.label().to_string();
    let mut record = Vec::new();
    let mut buf = Vec::with_capacity(256 * 1024);
    let mut bytes = Vec::new();
    while reader.read_record(&mut record)? {
        if record.len() != req.columns {
            bail!(
                "{file_label}: line {}: {} fields, expected {}",
                reader.line(),
                record.len(),
                req.columns
            );
        }
        for (i, field) in record.iter().enumerate() {
            if i > 0 {
                buf.push(b'\t');
            }
            match field {
                None => buf.extend_from_slice(b"\\N"),
                Some(v) if req.decode_hex.get(i) == Some(&true) => {
                    bytes.clear();
                    if dialect::decode_hex_into(v, &mut bytes) {
                        escape_into(&mut buf, &bytes);
                    } else {
                        bail!(
                            "{file_label}: line {}: column {} ({}) is not hexadecimal",
                            reader.line(),
                            i + 1,
                            req.header[i]
                        );
                    }
                }
                Some(v) => escape_into(&mut buf, v),
            }
        }
        buf.push(b'\n');
        req.rows_sent += 1;
        if buf.len() >= 256 * 1024 {
            out.write_all(&buf).context("sending to the server")?;
            req.bytes += buf.len() as u64;
            buf.clear();
        }
    }
    // The whole file was read: its checksum must be the recorded one before
    // the last rows go out (a mismatch leaves the statement short, and the
    // chunk is rolled back).
    reader.check_sha256(&req.sha256)?;
    out.write_all(&buf).context("sending to the server")?;
    req.bytes += buf.len() as u64;
    Ok(())
}

/// Escapes a value for LOAD DATA (`ESCAPED BY '\\'`, tab and LF separators).
fn escape_into(buf: &mut Vec<u8>, v: &[u8]) {
    // Most values need no escaping: copy the runs between special bytes
    // whole instead of pushing byte by byte.
    let mut rest = v;
    while let Some(i) = rest.iter().position(|&b| NEEDS_ESCAPE[b as usize]) {
        buf.extend_from_slice(&rest[..i]);
        buf.extend_from_slice(match rest[i] {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => b"\\0",
        });
        rest = &rest[i + 1..];
    }
    buf.extend_from_slice(rest);
}

/// The bytes `escape_into` replaces.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    t[b'\\' as usize] = true;
    t[b'\t' as usize] = true;
    t[b'\n' as usize] = true;
    t[b'\r' as usize] = true;
    t[0] = true;
    t
};

/// What loading one chunk did.
struct ChunkDone {
    rows: u64,
    bytes: u64,
    duplicates: u64,
    retries: u64,
}

/// One loading connection with its LOCAL INFILE handler.
struct Loader<'a> {
    opts: &'a LoadOptions,
    conn: Conn,
    slot: InfileSlot,
}

/// Why a chunk attempt failed, for the retry decision.
enum Failure {
    /// 1213 deadlock or 1205 lock wait timeout: rolled back, try again.
    Transient(anyhow::Error),
    /// The connection is gone; whether the commit happened is unknown if
    /// `committing` is set.
    Lost(anyhow::Error),
    Fatal(anyhow::Error),
}

const MAX_ATTEMPTS: u64 = 6;

impl<'a> Loader<'a> {
    fn connect(opts: &'a LoadOptions) -> Result<Loader<'a>> {
        let slot: InfileSlot = Arc::new(Mutex::new(None));
        let conn = Self::open(opts, &slot)?;
        Ok(Loader { opts, conn, slot })
    }

    fn open(opts: &LoadOptions, slot: &InfileSlot) -> Result<Conn> {
        let mut conn = opts.target.connect("target")?;
        setup_session(&mut conn, opts)?;
        conn.set_local_infile_handler(Some(infile_handler(slot.clone())));
        Ok(conn)
    }

    fn load_with_retries(
        &mut self,
        statement: &LoadStatement,
        plan: &TablePlan,
        table_dir: &Path,
        chunk: &ChunkRecord,
        journal: &Mutex<Journal>,
    ) -> Result<ChunkDone> {
        let mut retries = 0;
        loop {
            let attempt = self.load_once(statement, plan, table_dir, chunk, journal);
            let err = match attempt {
                Ok(mut done) => {
                    done.retries = retries;
                    return Ok(done);
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(e)) | Err(Failure::Lost(e))
                    if retries + 1 >= MAX_ATTEMPTS =>
                {
                    return Err(e.context(format!("giving up after {MAX_ATTEMPTS} attempts")));
                }
                Err(Failure::Transient(e)) => e,
                Err(Failure::Lost(e)) => {
                    self.reconnect().with_context(|| format!("{e:#}"))?;
                    // Did the commit land before the connection went?
                    let in_doubt = journal
                        .lock()
                        .map(|j| j.state().in_doubt.contains(&chunk.number))
                        .unwrap_or(false);
                    if in_doubt {
                        let rows = chunk.written.as_ref().map_or(0, |w| w.rows);
                        let found = count_range(&mut self.conn, plan, chunk)?;
                        if found == rows {
                            record(
                                journal,
                                Event::Committed {
                                    chunk: chunk.number,
                                    rows,
                                    duplicates: 0,
                                },
                            )?;
                            return Ok(ChunkDone {
                                rows,
                                bytes: 0,
                                duplicates: 0,
                                retries: retries + 1,
                            });
                        }
                    }
                    e
                }
            };
            retries += 1;
            let backoff = Duration::from_millis(100 << retries.min(6));
            eprintln!(
                "myspool load: chunk {:06} of {}: {err:#}; retrying in {} ms",
                chunk.number,
                plan.label(),
                backoff.as_millis()
            );
            thread::sleep(backoff);
        }
    }

    /// Reconnects, waiting for a restarting server for up to a minute.
    fn reconnect(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match Self::open(self.opts, &self.slot) {
                Ok(conn) => {
                    self.conn = conn;
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(e.context("the target went away and did not come back within 60 s"))
                }
                Err(_) => thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    fn load_once(
        &mut self,
        statement: &LoadStatement,
        plan: &TablePlan,
        table_dir: &Path,
        chunk: &ChunkRecord,
        journal: &Mutex<Journal>,
    ) -> std::result::Result<ChunkDone, Failure> {
        let stats = chunk.written.as_ref().ok_or_else(|| {
            Failure::Fatal(anyhow!("chunk {:06} was never written", chunk.number))
        })?;
        let name = format!("myspool/{}/{}", plan.entry.dir, chunk.file);
        if let Ok(mut slot) = self.slot.lock() {
            *slot = Some(InfileRequest {
                name: name.clone().into_bytes(),
                path: table_dir.join(&chunk.file),
                compress: statement.compress,
                columns: statement.columns,
                header: statement.header.clone(),
                decode_hex: statement.decode_hex.clone(),
                sha256: stats.sha256.clone(),
                rows_sent: 0,
                bytes: 0,
                error: None,
            });
        }
        let classify = |e: mysql::Error| -> Failure {
            let e = anyhow::Error::new(e);
            match server_error_code(&e) {
                Some(1213) | Some(1205) => Failure::Transient(e),
                Some(1053) | Some(1927) | Some(2006) | Some(2013) | Some(4031) => Failure::Lost(e),
                Some(_) => Failure::Fatal(e),
                None => Failure::Lost(e),
            }
        };
        thread::sleep(self.opts.chunk_delay);
        self.conn
            .query_drop("START TRANSACTION")
            .map_err(classify)?;
        let sql = format!(
            "LOAD DATA LOCAL INFILE {} {}",
            sql::string_literal(&name),
            statement.tail
        );
        let ran = self.conn.query_drop(&sql);
        let req = self.slot.lock().ok().and_then(|mut s| s.take());
        if let Err(e) = ran {
            let _ = self.conn.query_drop("ROLLBACK");
            return Err(classify(e));
        }
        let req =
            req.ok_or_else(|| Failure::Fatal(anyhow!("the LOCAL INFILE request vanished")))?;
        let affected = self.conn.affected_rows();
        let info = LoadInfo::parse(&self.conn.info_str());
        let warning_count = self.conn.warnings();

        let fail = |conn: &mut Conn, why: String| -> Failure {
            let _ = conn.query_drop("ROLLBACK");
            Failure::Fatal(anyhow!("{why}; nothing of the chunk was committed"))
        };
        if let Some(err) = req.error {
            return Err(fail(&mut self.conn, err));
        }
        if req.rows_sent != stats.rows {
            return Err(fail(
                &mut self.conn,
                format!(
                    "{} has {} rows, table.json says {}",
                    req.path.display(),
                    req.rows_sent,
                    stats.rows
                ),
            ));
        }
        let warnings = if warning_count > 0 {
            show_warnings(&mut self.conn)
        } else {
            Vec::new()
        };
        let duplicates = match self.opts.on_duplicate {
            OnDuplicate::Error => {
                if info.records != stats.rows
                    || info.skipped != 0
                    || warning_count != 0
                    || affected != stats.rows
                {
                    let why = describe_rejects(&warnings, info, stats.rows, affected);
                    return Err(fail(&mut self.conn, why));
                }
                0
            }
            OnDuplicate::Ignore => {
                let other: Vec<&Warning> = warnings.iter().filter(|w| w.code != 1062).collect();
                if !other.is_empty() || info.records != stats.rows {
                    let why = describe_rejects(&warnings, info, stats.rows, affected);
                    return Err(fail(&mut self.conn, why));
                }
                info.skipped
            }
            OnDuplicate::Replace => {
                if warning_count != 0 || info.records != stats.rows {
                    let why = describe_rejects(&warnings, info, stats.rows, affected);
                    return Err(fail(&mut self.conn, why));
                }
                info.deleted
            }
        };
        record(
            journal,
            Event::Committing {
                chunk: chunk.number,
            },
        )
        .map_err(Failure::Fatal)?;
        thread::sleep(self.opts.chunk_delay);
        self.conn.query_drop("COMMIT").map_err(classify)?;
        record(
            journal,
            Event::Committed {
                chunk: chunk.number,
                rows: stats.rows,
                duplicates,
            },
        )
        .map_err(Failure::Fatal)?;
        Ok(ChunkDone {
            rows: stats.rows,
            bytes: stats.bytes,
            duplicates,
            retries: 0,
        })
    }
}

fn record(journal: &Mutex<Journal>, event: Event) -> Result<()> {
    journal
        .lock()
        .map_err(|_| anyhow!("a loader thread panicked"))?
        .record(event)
}

/// `Records: 3  Deleted: 0  Skipped: 1  Warnings: 1`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct LoadInfo {
    records: u64,
    deleted: u64,
    skipped: u64,
    warnings: u64,
}

impl LoadInfo {
    fn parse(info: &str) -> LoadInfo {
        let mut out = LoadInfo::default();
        let mut words = info.split_whitespace();
        while let Some(word) = words.next() {
            let value = words.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            match word {
                "Records:" => out.records = value,
                "Deleted:" => out.deleted = value,
                "Skipped:" => out.skipped = value,
                "Warnings:" => out.warnings = value,
                _ => {}
            }
        }
        out
    }
}

struct Warning {
    code: u32,
    message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

fn show_warnings(conn: &mut Conn) -> Vec<Warning> {
    let rows: Vec<Row> = conn.query("SHOW WARNINGS LIMIT 5").unwrap_or_default();
    rows.iter()
        .filter_map(|r| {
            Some(Warning {
                code: text(r, 1).ok()??.parse().ok()?,
                message: text(r, 2).ok()??,
            })
        })
        .collect()
}

fn describe_rejects(warnings: &[Warning], info: LoadInfo, rows: u64, affected: u64) -> String {
    let dup = warnings.iter().filter(|w| w.code == 1062).count();
    let head = if dup > 0 && dup == warnings.len() {
        format!("duplicate key ({} of {rows} rows skipped)", info.skipped)
    } else {
        format!(
            "the server took {} of {rows} rows ({} skipped, {} affected, {} warnings)",
            info.records, info.skipped, affected, info.warnings
        )
    };
    if warnings.is_empty() {
        head
    } else {
        let shown: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        format!("{head}: {}", shown.join("; "))
    }
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
    fn raw_bytes_only_when_every_column_can_take_them() {
        let dumped = |encoding| ColumnDescription {
            name: "c".into(),
            column_type: String::new(),
            data_type: String::new(),
            nullable: true,
            charset: None,
            collation: None,
            encoding,
            invisible: false,
        };
        let target = |data_type: &str, charset: Option<&str>| TargetColumn {
            name: "c".into(),
            data_type: data_type.into(),
            charset: charset.map(Into::into),
            generated: false,
            autoinc: false,
        };
        let ok = |encoding, t: TargetColumn| raw_bytes_ok(&[dumped(encoding)], &[t]);
        assert!(ok(Encoding::Text, target("varchar", Some("utf8mb4"))));
        assert!(ok(Encoding::Text, target("text", Some("utf8mb3"))));
        assert!(ok(Encoding::Text, target("decimal", None)));
        assert!(ok(Encoding::Hex, target("varbinary", None)));
        assert!(ok(Encoding::Hex, target("longblob", None)));
        // Would need a conversion from UTF-8, or an expression.
        assert!(!ok(Encoding::Text, target("varchar", Some("latin1"))));
        assert!(!ok(Encoding::Hex, target("bit", None)));
        assert!(!ok(Encoding::Hex, target("geometry", None)));
        // MySQL refuses binary strings for JSON.
        assert!(!ok(Encoding::Text, target("json", None)));
        assert!(!raw_bytes_ok(&[dumped(Encoding::Text)], &[]));
    }

    fn finish(schedule: &mut Schedule, (t, _): (usize, usize)) -> bool {
        let done = ChunkDone {
            rows: 1,
            bytes: 1,
            duplicates: 0,
            retries: 0,
        };
        schedule.done(t, &done)
    }

    /// A table's chunks to load, `None` for one not written yet.
    fn table(rows: &[Option<u64>], planned: u64) -> (Vec<ChunkRecord>, u64) {
        let chunks = rows
            .iter()
            .enumerate()
            .map(|(i, rows)| ChunkRecord {
                number: i as u32 + 1,
                file: dump::chunk_file_name(i as u32 + 1, Compress::Gzip),
                lower: None,
                upper: None,
                written: rows.map(|rows| dump::ChunkStats {
                    rows,
                    bytes: 0,
                    csv_bytes: 0,
                    sha256: String::new(),
                }),
            })
            .collect();
        (chunks, planned)
    }

    /// A table's description as the writer has it on disk.
    fn on_disk((chunks, planned): (Vec<ChunkRecord>, u64)) -> TableDescription {
        TableDescription {
            db: "d".into(),
            table: "t".into(),
            columns: Vec::new(),
            generated_columns: Vec::new(),
            key: dump::KeyDescription {
                kind: dump::KeyKind::Primary,
                index: None,
                columns: Vec::new(),
            },
            chunk_rows: planned,
            planned_rows: planned * chunks.len() as u64,
            compress: Compress::Gzip,
            chunks,
            complete: false,
        }
    }

    fn written(rows: &[u64]) -> (Vec<ChunkRecord>, u64) {
        table(&rows.iter().map(|&r| Some(r)).collect::<Vec<_>>(), 0)
    }

    #[test]
    fn jobs_go_to_the_biggest_table_first_then_spread_over_the_others() {
        // A small table first in the dump, a big one last, one of 3 chunks.
        let mut s = Schedule::new(vec![
            written(&[10]),
            written(&[100, 100, 100]),
            written(&[50, 50]),
        ]);
        let first = s.take();
        assert_eq!(first, Some((1, 0)), "the biggest table starts");
        let second = s.take();
        assert_eq!(second, Some((2, 0)), "a table no job is on, the bigger one");
        let third = s.take();
        assert_eq!(third, Some((0, 0)), "still a table of its own");
        // Every table has a job now: the next goes to the most rows left.
        assert_eq!(s.take(), Some((1, 1)));
        assert!(
            finish(&mut s, third.unwrap()),
            "table 0's only chunk: it is done"
        );
        assert!(!finish(&mut s, first.unwrap()));
        // Table 1 (one job, 100 rows left) against table 2 (one job, 50 left).
        assert_eq!(s.take(), Some((1, 2)));
        assert_eq!(s.take(), Some((2, 1)));
        assert_eq!(s.take(), None, "everything handed out");
        assert_eq!(s.tables[0].outcome.chunks, 1);
    }

    #[test]
    fn a_dump_being_written_hands_out_only_written_chunks_in_key_order() {
        // Table 0: chunk 1 written, 2 and 3 not yet; table 1: nothing yet,
        // planned at 500 rows a chunk.
        let mut s = Schedule::new(vec![
            table(&[Some(10), None, None], 10),
            table(&[None], 500),
        ]);
        assert_eq!(s.take(), Some((0, 0)));
        assert_eq!(s.take(), None, "nothing else is written");
        assert!(!s.all_handed_out());
        assert_eq!(s.waiting().collect::<Vec<_>>(), vec![0, 1]);
        // Chunk 3 shows up before chunk 2: it waits for chunk 2.
        s.refresh(0, &on_disk(table(&[Some(10), None, Some(7)], 10)));
        assert_eq!(s.take(), None, "chunk 3 waits for chunk 2");
        s.refresh(0, &on_disk(table(&[Some(10), Some(9), Some(7)], 10)));
        // Table 1 has more rows left (500 planned) but nothing written.
        assert_eq!(s.take(), Some((0, 1)));
        assert_eq!(s.take(), Some((0, 2)));
        assert_eq!(s.tables[0].rows_to_hand_out, 0);
        assert_eq!(s.waiting().collect::<Vec<_>>(), vec![1]);
        s.refresh(1, &on_disk(table(&[Some(3)], 500)));
        assert_eq!(s.take(), Some((1, 0)));
        assert!(s.all_handed_out());
    }

    #[test]
    fn load_info_parses() {
        let i = LoadInfo::parse("Records: 3  Deleted: 1  Skipped: 2  Warnings: 4");
        assert_eq!(
            i,
            LoadInfo {
                records: 3,
                deleted: 1,
                skipped: 2,
                warnings: 4
            }
        );
    }

    #[test]
    fn escaping_for_load_data() {
        let mut b = Vec::new();
        escape_into(&mut b, b"a\\b\tc\nd\re\0f\"g,");
        assert_eq!(b, b"a\\\\b\\tc\\nd\\re\\0f\"g,");
    }

    #[test]
    fn definitions_and_indexes_from_show_create() {
        let create = "CREATE TABLE `t` (\n  `id` bigint(20) NOT NULL AUTO_INCREMENT,\n  `a``b` int(11) DEFAULT NULL,\n  `k` int(11) NOT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `uk` (`k`),\n  KEY `ab` (`a``b`),\n  FULLTEXT KEY `ft` (`c`)\n) ENGINE=InnoDB AUTO_INCREMENT=5";
        assert_eq!(schema_autoinc_column(create).as_deref(), Some("id"));
        assert_eq!(
            column_definition(create, "id").as_deref(),
            Some("`id` bigint(20) NOT NULL AUTO_INCREMENT")
        );
        assert_eq!(
            column_definition(create, "a`b").as_deref(),
            Some("`a``b` int(11) DEFAULT NULL")
        );
        let idx = deferrable_indexes(create);
        assert_eq!(
            idx,
            [
                ("ab".to_string(), "ADD KEY `ab` (`a``b`)".to_string()),
                ("ft".to_string(), "ADD FULLTEXT KEY `ft` (`c`)".to_string())
            ]
        );
    }
}
