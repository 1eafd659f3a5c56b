//! Subcommands. Each file holds one subcommand's options, usage text and the
//! few lines that turn them into a library call.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use myspool::progress::ProgressMode;
use myspool::ConnSpec;

mod check;
mod completions;
mod copy;
mod export;
mod load;
mod man;
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
#[command(
    name = "myspool",
    version,
    propagate_version = true,
    after_long_help = "Exit status: 0 done; 1 failed; 2 usage error; 3 refused before anything \
was touched (the load's preflight in load, copy and check, or a rerun that finds the target \
changed); 4 verify found chunks that differ."
)]
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
    Completions(completions::Args),
    Man(man::Args),
}

/// Output options every subcommand takes.
#[derive(Args, Debug, Clone)]
pub struct Output {
    /// Print the summary as JSON on stdout (progress and warnings stay on stderr).
    #[arg(long)]
    pub json: bool,
    /// Progress display: a bar on a terminal, plain periodic lines otherwise
    /// (each stamped with the time, ISO 8601 UTC).
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
    /// Only warnings and errors (on stderr): no progress, no summary (the
    /// summary still prints with --json; check and verify still print their
    /// problems and differences). For cron.
    #[arg(long, short = 'q', conflicts_with = "progress")]
    pub quiet: bool,
}

impl Output {
    /// How the library shows progress: `--quiet` is `--progress none`.
    pub fn mode(&self) -> ProgressMode {
        match self.quiet {
            true => ProgressMode::Quiet,
            false => self.progress.into(),
        }
    }

    /// The summary on stdout: as JSON with --json, else for a reader
    /// (`human`) unless --quiet.
    pub fn print<T: serde::Serialize>(&self, summary: &T, human: impl FnOnce(&T)) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(summary)?);
        } else if !self.quiet {
            human(summary);
        }
        Ok(())
    }
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
    let output = match &cli.command {
        Command::Export(a) => Some(&a.output),
        Command::Process(a) => Some(&a.output),
        Command::Load(a) => Some(&a.output),
        Command::Copy(a) => Some(&a.output),
        Command::Status(a) => Some(&a.output),
        Command::Check(a) => Some(&a.output),
        Command::Verify(a) => Some(&a.output),
        Command::Completions(_) | Command::Man(_) => None,
    };
    // --quiet also silences the library's informational messages.
    myspool::progress::set_quiet(output.is_some_and(|o| o.quiet));
    match cli.command {
        Command::Export(a) => export::run(a),
        Command::Process(a) => process::run(a),
        Command::Load(a) => load::run(a),
        Command::Copy(a) => copy::run(a),
        Command::Status(a) => status::run(a),
        Command::Check(a) => check::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Completions(a) => completions::run(a),
        Command::Man(a) => man::run(a),
    }
}

/// Writes generated text (a completion script, a man page) to stdout. A
/// reader that stops early (`myspool man | head`) is not an error.
fn print_bytes(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("writing to stdout"))
        }
        _ => Ok(()),
    }
}

/// A dump directory and the target server it is compared with or loaded
/// into (`verify`; `load` takes the same two options).
#[derive(Args, Debug, Clone)]
pub struct DumpAndTarget {
    /// Dump directory.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Target server URL; given again for more nodes of a Galera cluster.
    #[arg(long, value_name = "URL", required = true)]
    pub to: Vec<String>,
}

impl DumpAndTarget {
    /// The target server and the more nodes given, their URLs parsed.
    pub fn targets(&self) -> Result<(ConnSpec, Vec<ConnSpec>)> {
        targets(&self.to)
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
    /// Load each table into a shadow table beside it (T_myspool_new) and,
    /// once every table is loaded, swap the shadows in with one atomic
    /// RENAME per database: readers see the old tables or the new ones,
    /// never a half-loaded one. The old tables are then dropped.
    #[arg(long)]
    pub swap: bool,
    /// With --swap: keep each old table as T_old_YYYYMMDD_HHMMSS.
    #[arg(long, requires = "swap")]
    pub keep_old: bool,
    /// Create tables with collation TO where the dump's schema names FROM
    /// (repeatable). Without it, a collation the target lacks is mapped to
    /// its documented closest equivalent (MySQL 8's utf8mb4_0900_ai_ci to
    /// MariaDB's utf8mb4_uca1400_nopad_ai_ci, …) or the load is refused.
    #[arg(long, value_name = "FROM=TO", value_parser = myspool::load::CollationMap::parse_arg)]
    pub collation_map: Vec<(String, String)>,
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
            swap: self.swap,
            into: self.into.clone(),
            repair: false,
            collation_map: myspool::load::CollationMap(self.collation_map.clone()),
        }
    }

    pub fn apply(&self, opts: &mut myspool::load::LoadOptions) {
        opts.require(self.requirements());
        opts.keep_old = self.keep_old;
    }
}

/// `--max-replica-lag` and its replicas, for the commands that load.
#[derive(Args, Debug, Clone)]
pub struct ReplicaLagArgs {
    /// Pause between chunks while a replica lags more than this many
    /// seconds behind the target (Seconds_Behind_Master); a replica whose
    /// replication is stopped counts as too far behind: the load waits.
    /// The replicas are those given with --replica, or else those the
    /// target lists (SHOW SLAVE HOSTS), reached with the target URL's user.
    #[arg(long, value_name = "SECONDS")]
    pub max_replica_lag: Option<u64>,
    /// A replica of the target to watch, mysql://user@host[:port]
    /// (repeatable; needs REPLICATION CLIENT, on MariaDB SLAVE MONITOR).
    #[arg(long = "replica", value_name = "URL", requires = "max_replica_lag")]
    pub replicas: Vec<String>,
}

impl ReplicaLagArgs {
    pub fn apply(&self, opts: &mut myspool::load::LoadOptions) -> anyhow::Result<()> {
        opts.max_replica_lag = self.max_replica_lag;
        opts.replicas = self
            .replicas
            .iter()
            .map(|r| myspool::ConnSpec::parse(r))
            .collect::<anyhow::Result<_>>()?;
        Ok(())
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

/// The `--to` URLs: the target, and more nodes of its Galera cluster.
fn targets(urls: &[String]) -> Result<(ConnSpec, Vec<ConnSpec>)> {
    let mut specs = urls.iter().map(|u| ConnSpec::parse(u));
    let target = specs
        .next()
        .ok_or_else(|| anyhow::anyhow!("--to is required"))??;
    Ok((target, specs.collect::<Result<_>>()?))
}
