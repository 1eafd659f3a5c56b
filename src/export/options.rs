//! What a caller asks of an export: [`ExportOptions`], the [`Consistency`]
//! of its snapshots, and the test [`Hooks`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::conn::ConnSpec;
use crate::dump::{Compress, ExportSettings, Growing, TableWhere};
use crate::progress::ProgressMode;

use super::pause::PauseWhen;

/// Why `level` cannot go with `compress`, if it cannot.
fn level_refusal(compress: Compress, level: u32) -> Option<String> {
    let levels = compress.levels();
    if levels.contains(&level) {
        return None;
    }
    Some(match compress {
        Compress::Gzip => format!(
            "--level {level} is out of range for gzip: its levels are 0 (store) to {}",
            levels.end()
        ),
        _ => format!(
            "--level {level} is out of range for {}: its levels are {} to {}",
            compress.name(),
            levels.start(),
            levels.end()
        ),
    })
}

/// How the snapshots of several reading connections relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Synchronize the snapshots when possible (with `--jobs` > 1 this needs
    /// the RELOAD privilege); otherwise warn and use one per connection.
    #[default]
    Auto,
    /// Synchronize the snapshots or fail.
    Locked,
    /// Never lock: each connection takes its own snapshot.
    PerConnection,
}

/// Everything `myspool export` does, as a library call.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub source: ConnSpec,
    /// `db.table` or `db.*`, as on the command line.
    pub tables: Vec<String>,
    pub dir: PathBuf,
    /// `--where` for every table: SQL passed to the source as it is.
    pub where_clause: Option<String>,
    /// `--where 'DB.TABLE: condition'`: that table's rows match this too
    /// (`filters::split_where_args` reads the arguments).
    pub table_where: Vec<TableWhere>,
    /// Rows per chunk; `None` picks a size per table (about 32 MiB of data).
    pub chunk_rows: Option<u64>,
    pub jobs: usize,
    pub compress: Compress,
    /// Compression level, within `compress.levels()`
    /// (`compress.default_level()` when the user gives none).
    pub level: u32,
    pub consistency: Consistency,
    /// Views, triggers, routines and events of the databases exported
    /// whole (`DB.*`); `--no-objects` turns it off.
    pub objects: bool,
    /// Also the triggers of the tables named one by one (`--triggers`).
    pub triggers: bool,
    pub progress: ProgressMode,
    /// Told of every finished chunk, for a reader of the dump in this
    /// process (`copy`); the caller calls its `finish` when this returns.
    pub announce: Option<Arc<Growing>>,
    /// `--max-rate`: CSV bytes a second, at most, for the whole export.
    pub max_rate: Option<u64>,
    /// `--pause-when`: wait between chunks while this holds on the source.
    pub pause_when: Option<PauseWhen>,
    #[doc(hidden)]
    pub hooks: Hooks,
}

impl ExportOptions {
    pub fn new(source: ConnSpec, tables: Vec<String>, dir: impl Into<PathBuf>) -> ExportOptions {
        ExportOptions {
            source,
            tables,
            dir: dir.into(),
            where_clause: None,
            table_where: Vec::new(),
            chunk_rows: None,
            jobs: 2,
            compress: Compress::Gzip,
            level: Compress::Gzip.default_level(),
            consistency: Consistency::Auto,
            objects: true,
            triggers: false,
            progress: ProgressMode::Auto,
            announce: None,
            max_rate: None,
            pause_when: None,
            hooks: Hooks::default(),
        }
    }

    /// Refuses options no export can run with, before touching anything.
    pub(super) fn check(&self) -> Result<()> {
        if self.jobs == 0 {
            bail!("--jobs must be at least 1");
        }
        if self.chunk_rows == Some(0) {
            bail!("--chunk-rows must be at least 1");
        }
        if let Some(message) = level_refusal(self.compress, self.level) {
            bail!(message);
        }
        if self.tables.is_empty() {
            bail!("no --table given");
        }
        Ok(())
    }

    /// The options that decide what the dump contains, as the manifest
    /// records them (a rerun must ask for the same).
    pub(super) fn settings(&self) -> ExportSettings {
        ExportSettings {
            table_patterns: self.tables.clone(),
            where_clause: self.where_clause.clone(),
            table_where: self.table_where.clone(),
            chunk_rows: self.chunk_rows,
            compress: self.compress,
            level: self.level,
        }
    }
}

/// Test hooks: ways for the test suite to make the disk side slow or turn
/// off a line of defence, to show the others hold.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Hooks {
    /// Sleep this long before writing each chunk: a disk that stalls.
    pub write_delay: Duration,
    /// Raise `net_write_timeout` in the reading sessions.
    pub raise_net_write_timeout: bool,
    /// Spill to disk when the queue stays full (off only to show the failure).
    pub spill: bool,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            write_delay: Duration::ZERO,
            raise_net_write_timeout: true,
            spill: true,
        }
    }
}

impl Hooks {
    /// `MYSPOOL_TEST_CHUNK_DELAY_MS`, `MYSPOOL_TEST_NO_NET_WRITE_TIMEOUT`,
    /// `MYSPOOL_TEST_NO_SPILL`: for tests that drive the binary.
    pub fn from_env() -> Hooks {
        Hooks {
            write_delay: crate::hooks::chunk_delay(),
            raise_net_write_timeout: !crate::hooks::flag("MYSPOOL_TEST_NO_NET_WRITE_TIMEOUT"),
            spill: !crate::hooks::flag("MYSPOOL_TEST_NO_SPILL"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ExportOptions {
        let source = ConnSpec::parse("mysql://app@db1/shop").unwrap();
        ExportOptions::new(source, vec!["shop.orders".into()], "dump")
    }

    #[test]
    fn check_refuses_options_no_export_can_run_with() {
        assert!(options().check().is_ok());
        let error = |change: fn(&mut ExportOptions)| {
            let mut opts = options();
            change(&mut opts);
            opts.check().unwrap_err().to_string()
        };
        assert_eq!(error(|o| o.jobs = 0), "--jobs must be at least 1");
        assert_eq!(
            error(|o| o.chunk_rows = Some(0)),
            "--chunk-rows must be at least 1"
        );
        assert_eq!(
            error(|o| o.level = 13),
            "--level 13 is out of range for gzip: its levels are 0 (store) to 12"
        );
        assert_eq!(
            error(|o| {
                o.compress = Compress::Zstd;
                o.level = 0;
            }),
            "--level 0 is out of range for zstd: its levels are 1 to 19"
        );
        let mut zstd = options();
        zstd.compress = Compress::Zstd;
        zstd.level = 19;
        assert!(zstd.check().is_ok());
        assert_eq!(error(|o| o.tables.clear()), "no --table given");
    }
}
