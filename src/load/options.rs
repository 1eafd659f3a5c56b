//! What a load is asked to do: `LoadOptions` and its two policies.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::conn::ConnSpec;
use crate::dump::Growing;
use crate::progress::ProgressMode;

use super::Requirements;

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
    pub dir: PathBuf,
    /// Load every table into this database instead of the one it came from.
    pub into: Option<String>,
    pub jobs: usize,
    pub autoinc: AutoincPolicy,
    pub on_duplicate: OnDuplicate,
    pub truncate: bool,
    pub indexes: IndexMode,
    pub skip_binlog: bool,
    /// Only undo what an interrupted load left changed (AUTO_INCREMENT,
    /// deferred indexes); load nothing.
    pub repair: bool,
    /// Forget what the journals say about this target (`--restart`) and
    /// load every table again; temporary changes still in force are kept
    /// in the new journals, to be undone when the load finishes.
    pub restart: bool,
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
            indexes: IndexMode::Auto,
            skip_binlog: false,
            repair: false,
            restart: false,
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
            into: self.into.clone(),
            repair: self.repair,
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
            into,
            repair: _,
        } = req;
        self.jobs = jobs;
        self.autoinc = autoinc;
        self.on_duplicate = on_duplicate;
        self.truncate = truncate;
        self.indexes = indexes;
        self.skip_binlog = skip_binlog;
        self.into = into;
    }
}
