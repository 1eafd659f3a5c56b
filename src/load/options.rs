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
            collation_map: CollationMap::default(),
            repair: false,
            restart: false,
            objects: true,
            definer: DefinerPolicy::Keep,
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
            defer_indexes: self.defer_indexes,
            skip_binlog: self.skip_binlog,
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
            defer_indexes,
            skip_binlog,
            into,
            repair: _,
            collation_map,
        } = req;
        self.jobs = jobs;
        self.autoinc = autoinc;
        self.on_duplicate = on_duplicate;
        self.truncate = truncate;
        self.defer_indexes = defer_indexes;
        self.skip_binlog = skip_binlog;
        self.into = into;
        self.collation_map = collation_map;
    }
}
