//! What a load is asked to do: `LoadOptions` and its two policies.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::conn::ConnSpec;
use crate::dump::Growing;
use crate::progress::ProgressMode;

use super::compat::CollationMap;
use super::{DefinerPolicy, Requirements};

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

/// When secondary indexes are built: with the rows, or after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IndexMode {
    /// Leave every index in place: each row updates each index.
    Keep,
    /// Drop the non-unique secondary indexes before the rows and add them
    /// back after (one sorted build each), whatever the table holds.
    Defer,
    /// Defer them when the table is empty when its load starts (created by
    /// the load, or empty already) and the user may ALTER it; else keep.
    #[default]
    Auto,
}

/// Everything `myspool load` does, as a library call.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub target: ConnSpec,
    /// More nodes of the target's Galera cluster (`--to` given more than
    /// once): the jobs load through all of them, and a job whose node goes
    /// moves to another. The journals and the control connection use
    /// `target`.
    pub nodes: Vec<ConnSpec>,
    pub dir: PathBuf,
    /// Load every table into this database instead of the one it came from.
    pub into: Option<String>,
    pub jobs: usize,
    pub autoinc: AutoincPolicy,
    pub on_duplicate: OnDuplicate,
    pub truncate: bool,
    pub indexes: IndexMode,
    pub skip_binlog: bool,
    /// `--collation-map FROM=TO` (see `compat`).
    pub collation_map: CollationMap,
    /// Only undo what an interrupted load left changed (AUTO_INCREMENT,
    /// deferred indexes); load nothing.
    pub repair: bool,
    /// Forget what the journals say about this target (`--restart`) and
    /// load every table again; temporary changes still in force are kept
    /// in the new journals, to be undone when the load finishes.
    pub restart: bool,
    /// Create the dump's views, triggers, routines and events after the
    /// data (`--no-objects` turns it off).
    pub objects: bool,
    /// `--definer`: what becomes of their DEFINER.
    pub definer: DefinerPolicy,
    /// Load each table into a shadow table and swap it in when all are
    /// loaded (`load::swap`).
    pub swap: bool,
    /// With `swap`: keep each old table under a dated name.
    pub keep_old: bool,
    /// `--max-replica-lag`: pause between chunks while one of `replicas`
    /// lags more than this many seconds (`load::throttle`).
    pub max_replica_lag: Option<u64>,
    pub replicas: Vec<ConnSpec>,
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
            nodes: Vec::new(),
            dir: dir.into(),
            into: None,
            jobs: 2,
            autoinc: AutoincPolicy::Check,
            on_duplicate: OnDuplicate::Error,
            truncate: false,
            indexes: IndexMode::Auto,
            skip_binlog: false,
            collation_map: CollationMap::default(),
            repair: false,
            restart: false,
            objects: true,
            definer: DefinerPolicy::Keep,
            swap: false,
            keep_old: false,
            max_replica_lag: None,
            replicas: Vec::new(),
            progress: ProgressMode::Auto,
            follow: None,
            chunk_delay: Duration::ZERO,
        }
    }
}

impl LoadOptions {
    /// What these options need from the target: what the preflight checks.
    pub fn requirements(&self) -> Requirements {
        Requirements {
            jobs: self.jobs,
            autoinc: self.autoinc,
            on_duplicate: self.on_duplicate,
            truncate: self.truncate,
            indexes: self.indexes,
            skip_binlog: self.skip_binlog,
            swap: self.swap,
            into: self.into.clone(),
            repair: self.repair,
            collation_map: self.collation_map.clone(),
        }
    }

    /// Takes every option of `req` (all but `repair`, which `check` does
    /// not have).
    pub fn require(&mut self, req: Requirements) {
        let Requirements {
            jobs,
            autoinc,
            on_duplicate,
            truncate,
            indexes,
            skip_binlog,
            swap,
            into,
            repair: _,
            collation_map,
        } = req;
        self.swap = swap;
        self.jobs = jobs;
        self.autoinc = autoinc;
        self.on_duplicate = on_duplicate;
        self.truncate = truncate;
        self.indexes = indexes;
        self.skip_binlog = skip_binlog;
        self.into = into;
        self.collation_map = collation_map;
    }
}
