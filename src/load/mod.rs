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
//!   the chunk's row count, and any warning fails (and rolls back) the chunk
//!   (`verdict`).
//! - With `innodb_autoinc_lock_mode` 0 or 1, a bulk insert into a table with an
//!   AUTO_INCREMENT column holds the table's AUTO-INC lock to the end of the
//!   statement; two such loads plus row locks deadlock (1213). Mode 2 avoids
//!   it, and is only safe for replication with `binlog_format=ROW`
//!   (`preflight::autoinc_verdict`).
//! - An explicit 0 in an AUTO_INCREMENT column means "next value" unless the
//!   sql_mode has `NO_AUTO_VALUE_ON_ZERO`; zero dates need a sql_mode without
//!   `NO_ZERO_DATE`/`NO_ZERO_IN_DATE`. Every loading session sets both
//!   (`session`).
//! - The server names the file it wants; a rogue server could name any file
//!   of ours. The handler serves only the chunk of the running statement
//!   (`infile`).
//!
//! One file per step: `options`, `preflight` (server facts, the options
//! that change what a load needs, AUTO_INCREMENT policy: the one preflight
//! of `load` and `check`), `compat` (a dump's schema against the target's
//! catalog and vendor: collations mapped or refused, the SQL the CREATE
//! runs), `privileges`, `check` (the preflight without a dump), `target` (what the target table looks like), `plan` (each dump
//! table and where it goes), `table` (a target
//! table before and after its chunks), `jobs` and `schedule` (the chunks of
//! every table side by side), `loader` (one connection, one chunk at a time),
//! `infile` (the statement and the LOCAL INFILE handler), `verdict` (judging
//! the server's answer), `objects` (views, triggers, routines and events,
//! created after the data), `swap` (`--swap`: shadow tables renamed in),
//! `throttle` (`--max-replica-lag`), `galera` (a Galera cluster as the
//! target: its facts, checks and summary).

mod check;
mod compat;
mod galera;
mod in_flight;
mod indexes;
mod infile;
mod jobs;
mod loader;
mod objects;
mod options;
mod plan;
mod preflight;
mod privileges;
mod rerun;
mod schedule;
mod session;
mod swap;
mod table;
mod target;
mod throttle;
mod verdict;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use mysql::prelude::Queryable;
use mysql::Conn;
use serde::Serialize;

use crate::dump::{ChunkRecord, DumpDir, Manifest};
use crate::journal::Journal;
use crate::progress::{self, peak_rss_bytes, Progress};

pub(crate) use infile::load_data_rows;
use infile::LoadStatement;
use jobs::Jobs;
use loader::LoadingTable;
use plan::{plan_load, TablePlan};
use session::Session;
use table::{lock_target, prepare_target, release_target, Preparation, Prepared};
use throttle::Throttle;

pub use check::{check, CheckOptions, CheckReport, TableCheck};
pub use compat::CollationMap;
pub use galera::{GaleraFacts, GaleraSummary};
pub use indexes::IndexReport;
pub use objects::{with_definer, DefinerPolicy, ObjectsLoaded};
pub use options::{AutoincPolicy, IndexMode, LoadOptions, OnDuplicate};
pub use preflight::{autoinc_verdict, AutoincVerdict, Requirements, ServerFacts, TargetTable};
pub use rerun::LoadedBefore;
pub use swap::Swapped;

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
    /// The views, triggers, routines and events created, per database.
    pub objects: Vec<ObjectsLoaded>,
    pub seconds: f64,
    pub peak_rss_bytes: Option<u64>,
    pub warnings: Vec<String>,
    /// `--max-replica-lag`: how often the load paused for a replica, and
    /// for how long in all.
    pub replica_pauses: u64,
    pub replica_pause_seconds: f64,
    /// `--swap`: each table swapped in (by this run or an earlier one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub swapped: Vec<Swapped>,
    /// Set when the target is a Galera cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub galera: Option<GaleraSummary>,
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
    /// The secondary indexes this run built after the rows and those it
    /// kept (with why); `None` when it deferred none.
    pub indexes: Option<IndexReport>,
    /// Loaded completely by an earlier run, and found intact: nothing done.
    pub loaded_before: Option<LoadedBefore>,
}

impl TableLoadSummary {
    /// Before its chunks: nothing loaded yet.
    fn of(plan: &TablePlan, autoinc: AutoincPolicy) -> TableLoadSummary {
        TableLoadSummary {
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
                .map(|_| format!("{autoinc:?}").to_lowercase()),
            indexes: None,
            loaded_before: None,
        }
    }
}

/// Runs a load (or resumes one).
pub fn load(opts: &LoadOptions) -> Result<LoadSummary> {
    let started = Instant::now();
    if opts.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    if opts.restart && opts.repair {
        bail!("--restart and --repair do not go together: --repair only puts back what a load changed, --restart forgets that load and loads again (and puts them back when it finishes)");
    }
    if opts.swap && opts.truncate {
        bail!("--swap loads every table into a new, empty table: --truncate has nothing to empty; leave it out");
    }
    let throttle = match (opts.max_replica_lag, opts.replicas.is_empty()) {
        (Some(limit), false) => Some(Throttle::connect(&opts.replicas, limit)?),
        // None named: the replicas the target lists, reached with the
        // target's user and password.
        (Some(limit), true) => {
            let found = throttle::discover_replicas(&opts.target)?;
            if found.is_empty() {
                bail!("--max-replica-lag: no --replica given, and SHOW SLAVE HOSTS on the target lists no replica with a host and port: give each as --replica URL");
            }
            progress::notice(&format!(
                "myspool load: watching the replicas the target lists: {}",
                found
                    .iter()
                    .map(|s| s.endpoint())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            Some(Throttle::connect(&found, limit)?)
        }
        (None, false) => bail!("--replica is watched only with --max-replica-lag SECONDS"),
        (None, true) => None,
    };
    // The cluster's other nodes, found before the session that spreads the
    // jobs over them is made.
    let (discovered, said_nodes) = match with_discovered_nodes(opts)? {
        Some((found, said)) => (Some(found), Some(said)),
        None => (None, None),
    };
    let opts = discovered.as_ref().unwrap_or(opts);
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
    let session = Session::of(opts);
    // --skip-binlog is set on it by the preflight (`plan_load`).
    let mut control = session.connect_for_preflight()?;
    let mut facts = ServerFacts::read(&mut control)?;
    let nodes = if opts.nodes.is_empty() {
        vec![session.endpoint()]
    } else {
        galera::check_nodes(&session, &mut facts)?
    };
    // The objects first: `--swap` carries over the target's triggers that
    // the dump creates again (`swap::unswappable`).
    let objects = load_objects_plan(&mut control, &dir, &manifest, opts)?;
    let mut plans = plan_load(&mut control, &dir, &manifest, opts, &facts, &objects)?;
    if let Some(g) = &facts.galera {
        progress::notice(&format!("myspool load: the target is {}", g.describe()));
    }
    // Once the preflight has passed: a refusal stays one line.
    if let Some(said) = said_nodes {
        progress::notice(&format!("myspool load: {said}"));
    }
    let paused_before = galera::flow_control_paused_ns(&mut control);

    let progress = Mutex::new(Progress::new(
        opts.progress,
        "load",
        rows_to_load(&plans, opts.follow.is_some()),
    ));
    let mut warnings = autoinc_warnings(&plans);
    // The schema's (printed by the preflight) kept for the summary.
    for c in plans.iter().filter_map(|p| p.creation.as_ref()) {
        warnings.extend(c.mappings.iter().map(|m| format!("schema mapped: {m}")));
        warnings.extend(c.warnings.iter().cloned());
    }
    let (tables, retries) = load_tables(
        &mut control,
        &dir,
        &mut plans,
        &objects,
        opts,
        &progress,
        throttle.as_ref(),
    )
    .map_err(|e| with_undo_hint(e, &dir, &plans, &session.endpoint()))?;
    if let Ok(mut p) = progress.lock() {
        p.finish();
    }
    let pauses = throttle.map(|t| t.pauses()).unwrap_or_default();
    // Only once every table is in: one RENAME per database swaps them all.
    let swapped = if opts.swap && !opts.repair {
        Session::of(opts).ensure_alive(&mut control)?;
        swap::swap_tables(
            &mut control,
            &dir,
            &plans,
            &session.endpoint(),
            opts.keep_old,
        )?
    } else {
        Vec::new()
    };
    // The objects after the swap: triggers belong on the new tables.
    let objects = if opts.follow.is_some() {
        // A dump being written may have got its objects.sql since the
        // start (a processed dump copies it along): read and check again.
        load_objects_plan(&mut control, &dir, &manifest, opts)?
    } else {
        objects
    };
    let objects = if objects.is_empty() {
        Vec::new()
    } else {
        // A session of their own: each object sets its sql_mode on it.
        objects::create_objects(&mut session.connect()?, &objects, &opts.definer)?
    };
    let galera = facts.galera.as_ref().map(|g| {
        let seconds = started.elapsed().as_secs_f64();
        let (summary, said) = galera::after_load(
            &session,
            &mut control,
            &plans,
            g,
            nodes,
            paused_before,
            seconds,
        );
        warnings.extend(said);
        summary
    });
    Ok(LoadSummary {
        dir: opts.dir.clone(),
        target: opts.target.to_string(),
        rows: tables.iter().map(|t| t.rows).sum(),
        duplicates: tables.iter().map(|t| t.duplicates).sum(),
        chunks_loaded: tables.iter().map(|t| t.chunks_loaded).sum(),
        chunks_skipped: tables.iter().map(|t| t.chunks_skipped).sum(),
        tables,
        retries,
        objects,
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
        warnings,
        replica_pauses: pauses.count,
        replica_pause_seconds: pauses.seconds,
        swapped,
        galera,
    })
}

/// `opts` with the nodes of the target's Galera cluster found from it
/// (`--no-discover` turns it off; `--repair` loads nothing), and the line
/// that says which; None when nothing is to change.
fn with_discovered_nodes(opts: &LoadOptions) -> Result<Option<(LoadOptions, String)>> {
    if !opts.discover || opts.repair {
        return Ok(None);
    }
    let Some(found) = crate::galera::discover_nodes(&opts.target, &opts.nodes)? else {
        return Ok(None);
    };
    let opts = LoadOptions {
        nodes: found.nodes,
        ..opts.clone()
    };
    Ok(Some((opts, found.said)))
}

/// The dump's schema objects for this load (none with `--no-objects` or
/// `--repair`), their definers checked on the target.
fn load_objects_plan(
    control: &mut Conn,
    dir: &DumpDir,
    manifest: &Manifest,
    opts: &LoadOptions,
) -> Result<Vec<objects::DatabaseObjects>> {
    if !opts.objects || opts.repair {
        return Ok(Vec::new());
    }
    let plan = objects::plan(dir, manifest, opts.into.as_deref())?;
    objects::preflight(control, &plan, &opts.definer)?;
    Ok(plan)
}

fn read_complete_manifest(dir: &DumpDir) -> Result<Manifest> {
    let manifest = dir.require_manifest()?;
    if !manifest.complete && manifest.processed.is_some() {
        bail!(
            "the processing into {} is not complete ({}): run the same `myspool process` command again, or wait for the runners still working (`myspool status --dir {}`)",
            dir.root().display(),
            crate::process::missing_work(dir, &manifest),
            dir.root().display()
        );
    }
    if !manifest.complete {
        bail!(
            "the dump in {} is not complete (its export was interrupted or is running): finish it with the same export command first",
            dir.root().display()
        );
    }
    Ok(manifest)
}

/// The rows the progress counts to: those written, or those planned while
/// the dump is still being written.
fn rows_to_load(plans: &[TablePlan], following: bool) -> u64 {
    if following {
        plans.iter().map(|p| p.desc.planned_rows).sum()
    } else {
        plans
            .iter()
            .flat_map(|p| p.desc.chunks.iter())
            .filter_map(|c| c.written.as_ref().map(|w| w.rows))
            .sum()
    }
}

/// The AUTO_INCREMENT policy's warnings, said now and kept for the summary.
fn autoinc_warnings(plans: &[TablePlan]) -> Vec<String> {
    let mut warnings = Vec::new();
    for plan in plans {
        if let AutoincVerdict::Warn(message) = &plan.verdict {
            progress::notice(&format!("myspool load: warning: {message}"));
            warnings.push(message.clone());
        }
    }
    warnings
}

/// Locks every target table, prepares each one (create, truncate, the
/// temporary changes, the chunk left in doubt), then loads the chunks of all
/// of them with `opts.jobs` connections and finishes each table as its last
/// chunk commits. Each table's summary, and the retries of all of them.
fn load_tables(
    control: &mut Conn,
    dir: &DumpDir,
    plans: &mut [TablePlan],
    objects: &[objects::DatabaseObjects],
    opts: &LoadOptions,
    progress: &Mutex<Progress>,
    throttle: Option<&Throttle>,
) -> Result<(Vec<TableLoadSummary>, u64)> {
    Session::of(opts).ensure_alive(control)?;
    // Every lock before any change: a table that another load holds stops
    // this one before anything was touched.
    for plan in plans.iter() {
        lock_target(control, plan)?;
    }
    let (mut tables, to_load) = prepare_targets(control, dir, plans, objects, opts)?;
    let mut pending = Vec::new();
    let loading: Vec<LoadingTable> = to_load
        .into_iter()
        .map(|(index, journal, chunks)| {
            let plan = &plans[index];
            pending.push(chunks);
            LoadingTable {
                index,
                plan,
                table_dir: dir.path(&plan.entry.dir),
                statement: LoadStatement::new(plan, opts.on_duplicate),
                journal: Mutex::new(journal),
            }
        })
        .collect();
    let jobs = Jobs {
        throttle,
        ..Jobs::of(opts)
    };
    let outcomes = jobs::load_chunks(control, dir, &loading, pending, &jobs, progress)?;
    let mut retries = 0;
    for (table, outcome) in loading.iter().zip(outcomes) {
        let ts = &mut tables[table.index];
        ts.chunks_loaded = outcome.chunks;
        ts.rows = outcome.rows;
        ts.duplicates = outcome.duplicates;
        retries += outcome.retries;
    }
    let _ = control.query_drop("DO RELEASE_ALL_LOCKS()");
    Ok((tables, retries))
}

/// A table with chunks to load: its place in the dump, its journal, the
/// chunks its journal does not show committed.
type ToLoad = (usize, Journal, Vec<ChunkRecord>);

/// `prepare_target` for every table, once every journal was checked
/// against its target: each one's summary so far, and those with chunks to
/// load. A table with nothing to load has its lock released.
fn prepare_targets(
    control: &mut Conn,
    dir: &DumpDir,
    plans: &mut [TablePlan],
    objects: &[objects::DatabaseObjects],
    opts: &LoadOptions,
) -> Result<(Vec<TableLoadSummary>, Vec<ToLoad>)> {
    let journals = rerun::open_journals(control, dir, plans, opts)?;
    // Once every target passed the rerun's checks (a refusal leaves the
    // target untouched), before any row goes in. Not with --swap: the rows
    // go into shadow tables, which have no triggers, while the live tables
    // keep theirs for their users until the RENAME.
    if !opts.swap {
        objects::drop_triggers_before_data(control, objects)?;
    }
    let how = Preparation::of(opts);
    let mut tables = Vec::new();
    let mut to_load = Vec::new();
    for ((index, plan), (journal, before)) in plans.iter_mut().enumerate().zip(journals) {
        let mut ts = TableLoadSummary::of(plan, opts.autoinc);
        ts.loaded_before = before;
        let prepared = prepare_target(control, dir, plan, journal, &how)?;
        ts.created = plan.created;
        ts.indexes = plan.indexes.clone();
        match prepared {
            Prepared::Complete => {
                ts.chunks_skipped = plan.desc.chunks.len() as u64;
                release_target(control, plan);
            }
            Prepared::Repaired => release_target(control, plan),
            Prepared::Load { journal, pending } => {
                ts.chunks_skipped = (plan.desc.chunks.len() - pending.len()) as u64;
                to_load.push((index, *journal, pending));
            }
        }
        tables.push(ts);
    }
    Ok((tables, to_load))
}

/// A load that stops with AUTO_INCREMENT removed or indexes dropped (on any
/// of its tables: they load side by side) says so, and how to put them back.
fn with_undo_hint(
    err: anyhow::Error,
    dir: &DumpDir,
    plans: &[TablePlan],
    endpoint: &str,
) -> anyhow::Error {
    let mut changed = Vec::new();
    for plan in plans {
        let Ok(journal) = Journal::open(&dir.path(&plan.entry.dir), endpoint, &plan.target_db)
        else {
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

/// Locks a mutex the jobs share; it is poisoned only if one of them panicked.
fn locked<T>(mutex: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    mutex.lock().map_err(|_| poisoned())
}

fn poisoned() -> anyhow::Error {
    anyhow!("a loader thread panicked")
}
