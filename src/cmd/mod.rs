//! Subcommands. Each file holds one subcommand's options, usage text and the
//! few lines that turn them into a library call.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use myspool::progress::ProgressMode;
use myspool::ConnSpec;

mod check;
mod copy;
mod export;
mod load;
mod process;
mod status;
mod verify;

/// Bulk-copy MySQL/MariaDB tables through local export files.
///
/// export streams tables at full speed into compressed CSV chunks; process
/// transforms the chunks offline, at leisure; load brings them back with
/// LOAD DATA LOCAL INFILE, keeping explicit primary-key values.
///
/// Server URLs look like mysql://user[:password]@host[:port][/db]; the
/// password may instead come from MYSQL_PWD or the [client] group of
/// ~/.my.cnf, and is never printed.
#[derive(Parser, Debug)]
#[command(name = "myspool", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Export(export::Args),
    Process(process::Args),
    Load(load::Args),
    Copy(copy::Args),
    Status(status::Args),
    Check(check::Args),
    Verify(verify::Args),
}

/// Output options every subcommand takes.
#[derive(Args, Debug, Clone)]
pub struct Output {
    /// Print the summary as JSON on stdout (progress and warnings stay on stderr).
    #[arg(long)]
    pub json: bool,
    /// Progress display: a bar on a terminal, plain periodic lines otherwise.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ProgressArg {
    Auto,
    Bar,
    Plain,
    None,
}

impl From<ProgressArg> for ProgressMode {
    fn from(p: ProgressArg) -> ProgressMode {
        match p {
            ProgressArg::Auto => ProgressMode::Auto,
            ProgressArg::Bar => ProgressMode::Bar,
            ProgressArg::Plain => ProgressMode::Plain,
            ProgressArg::None => ProgressMode::Quiet,
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Export(a) => export::run(a),
        Command::Process(a) => process::run(a),
        Command::Load(a) => load::run(a),
        Command::Copy(a) => copy::run(a),
        Command::Status(a) => status::run(a),
        Command::Check(a) => check::run(a),
        Command::Verify(a) => verify::run(a),
    }
}

/// A dump directory and the target server it is compared with or loaded
/// into (`verify`; `load` takes the same two options).
#[derive(Args, Debug, Clone)]
pub struct DumpAndTarget {
    /// Dump directory.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Target server URL.
    #[arg(long, value_name = "URL")]
    pub to: String,
}

impl DumpAndTarget {
    /// The target server, its URL parsed.
    pub fn target(&self) -> Result<ConnSpec> {
        ConnSpec::parse(&self.to)
    }
}

/// Load options shared by `load`, `copy` and `check`: every one of them
/// changes what a load needs from the target, which `check` checks.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// Load into this database instead of the one each table was exported from.
    #[arg(long, value_name = "DB")]
    pub into: Option<String>,
    /// Chunks loaded at once, each by its own connection; the jobs spread
    /// over the tables (one table each while there are enough, the biggest
    /// first).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub jobs: usize,
    /// AUTO_INCREMENT policy: check refuses a parallel load unless
    /// innodb_autoinc_lock_mode=2 (with binlog_format=ROW when the binlog is
    /// on); require refuses unless so whatever --jobs; drop removes
    /// AUTO_INCREMENT during the load and restores it; keep checks nothing.
    #[arg(long, value_enum, default_value_t = AutoincPolicy::Check)]
    pub autoinc: AutoincPolicy,
    /// What a duplicate key does: fail the chunk, skip the row, or replace the row.
    #[arg(long, value_enum, default_value_t = OnDuplicate::Error)]
    pub on_duplicate: OnDuplicate,
    /// Empty each target table before loading it (once: a resumed load
    /// does not empty it again, unless with --restart).
    #[arg(long)]
    pub truncate: bool,
    /// Non-unique secondary indexes: auto builds them after the rows into a
    /// table that is empty when its load starts (as myloader does), defer
    /// into any table, keep never; an index that alone backs a foreign key
    /// is always kept.
    #[arg(long, value_enum, default_value_t = IndexesArg::Auto)]
    pub indexes: IndexesArg,
    /// The old spelling of --indexes defer.
    #[arg(long, hide = true, conflicts_with = "indexes")]
    pub defer_indexes: bool,
    /// Do not write the load to the target's binary log (SET sql_log_bin=0).
    #[arg(long)]
    pub skip_binlog: bool,
}

impl LoadArgs {
    /// What these options need from the target (`check` takes them for that).
    pub fn requirements(&self) -> myspool::load::Requirements {
        myspool::load::Requirements {
            jobs: self.jobs,
            autoinc: self.autoinc.into(),
            on_duplicate: match self.on_duplicate {
                OnDuplicate::Error => myspool::load::OnDuplicate::Error,
                OnDuplicate::Ignore => myspool::load::OnDuplicate::Ignore,
                OnDuplicate::Replace => myspool::load::OnDuplicate::Replace,
            },
            truncate: self.truncate,
            indexes: match (self.defer_indexes, self.indexes) {
                (true, _) | (_, IndexesArg::Defer) => myspool::load::IndexMode::Defer,
                (_, IndexesArg::Keep) => myspool::load::IndexMode::Keep,
                (_, IndexesArg::Auto) => myspool::load::IndexMode::Auto,
            },
            skip_binlog: self.skip_binlog,
            into: self.into.clone(),
            repair: false,
        }
    }

    pub fn apply(&self, opts: &mut myspool::load::LoadOptions) {
        opts.require(self.requirements());
    }
}

/// `--restart`, for the commands that load (`check` loads nothing, so
/// it has no journal to forget and does not take it).
#[derive(Args, Debug, Clone)]
pub struct RestartArg {
    /// Forget what earlier loads of this dump into this target did (their
    /// journals) and load every table again; with --truncate each table is
    /// emptied first. AUTO_INCREMENT still removed or indexes still dropped
    /// by an interrupted load are put back when the load finishes.
    #[arg(long)]
    pub restart: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum AutoincPolicy {
    Check,
    Drop,
    Require,
    Keep,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum IndexesArg {
    Keep,
    Defer,
    Auto,
}

impl From<AutoincPolicy> for myspool::load::AutoincPolicy {
    fn from(p: AutoincPolicy) -> Self {
        match p {
            AutoincPolicy::Check => myspool::load::AutoincPolicy::Check,
            AutoincPolicy::Drop => myspool::load::AutoincPolicy::Drop,
            AutoincPolicy::Require => myspool::load::AutoincPolicy::Require,
            AutoincPolicy::Keep => myspool::load::AutoincPolicy::Keep,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum OnDuplicate {
    Error,
    Ignore,
    Replace,
}
