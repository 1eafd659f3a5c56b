//! One unit of work's claim files, and the only operations that decide who
//! owns it: each is atomic on NFS as on a local file system.
//!
//! ```text
//! .claims/000042.lease.3   claim generation 3: created exclusively (O_EXCL)
//!                          by its holder; JSON: token, host, pid, since
//! .claims/000042.beat.3    its heartbeat: rewritten (temp file + rename) by
//!                          the holder every lease/3; "released" when it gave up
//! .claims/000042.work.3/   the holder's private work: the output chunk and
//!                          claim.json are written here
//! .claims/000042.done/     committed: `000042.work.G` renamed to this name
//! ```
//!
//! Claiming is creating generation 1 exclusively; taking over a claim whose
//! heartbeat stopped is creating generation G+1 exclusively: of runners that
//! try at once, one wins. A holder of G has lost its claim once G+1 exists.
//! Committing is renaming the holder's work directory to `000042.done`: a
//! rename onto a directory that exists and is not empty fails, so exactly
//! one generation commits, whatever the timing. Heartbeats decide nothing:
//! they only tell observers when a takeover is fair.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::dump::{self, ProcessedChunk};

/// The file a committed unit's directory holds.
pub const CLAIM_FILE: &str = "claim.json";
/// What a holder that gave a unit up writes in its heartbeat.
pub const RELEASED: &str = "released";

/// Who holds a claim (the content of its lease file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    /// Unique to one claim of one runner.
    pub token: String,
    pub host: String,
    pub pid: u32,
    /// When the claim was made, by the holder's clock (UTC).
    pub since: String,
    /// The holder's kernel boot and process namespace (see `Runner`).
    #[serde(default)]
    pub machine: String,
    /// The holder's `--lease`, in seconds: an observer waits at least that
    /// long (runners given different leases do not take over live claims).
    #[serde(default)]
    pub lease_secs: u64,
}

/// What a committed unit records: who committed it, and its output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Committed {
    pub generation: u64,
    pub holder: Holder,
    pub chunk: ProcessedChunk,
}

/// One unit's files in a `.claims` directory.
#[derive(Debug, Clone)]
pub struct Unit {
    dir: PathBuf,
    name: String,
}

impl Unit {
    pub fn new(dir: &Path, name: impl Into<String>) -> Unit {
        Unit {
            dir: dir.to_path_buf(),
            name: name.into(),
        }
    }

    /// `NNNNNN`, or `finish`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `.claims` directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lease_path(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("{}.lease.{generation}", self.name))
    }

    fn beat_path(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("{}.beat.{generation}", self.name))
    }

    /// Where the holder of `generation` writes its work.
    pub fn work_dir(&self, generation: u64) -> PathBuf {
        self.dir.join(format!("{}.work.{generation}", self.name))
    }

    pub fn done_dir(&self) -> PathBuf {
        self.dir.join(format!("{}.done", self.name))
    }

    /// The unit is committed.
    pub fn is_done(&self) -> Result<bool> {
        exists(&self.done_dir().join(CLAIM_FILE))
    }

    /// What the commit recorded (`None`: not committed).
    pub fn committed(&self) -> Result<Option<Committed>> {
        let path = self.done_dir().join(CLAIM_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .with_context(|| format!("{} is not a claim record", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// The newest claim generation, 0 if none; `from` is one known to exist
    /// (generations are probed upwards: takeovers are rare, and listing a
    /// directory of thousands of chunks for each would not be).
    pub fn generation(&self, from: u64) -> Result<u64> {
        let mut g = from;
        while exists(&self.lease_path(g + 1))? {
            g += 1;
        }
        Ok(g)
    }

    /// Tries to create claim `generation`; true if this call created it.
    /// The lease file is fsynced with its directory before anything relies
    /// on it.
    pub fn try_claim(&self, generation: u64, holder: &Holder) -> Result<bool> {
        let path = self.lease_path(generation);
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
        };
        let mut text = serde_json::to_vec(holder)?;
        text.push(b'\n');
        file.write_all(&text)
            .and_then(|_| file.sync_all())
            .with_context(|| format!("writing {}", path.display()))?;
        dump::sync_dir(&self.dir)?;
        Ok(true)
    }

    /// Who holds claim `generation` (`None`: its file is gone or not
    /// written yet).
    pub fn holder(&self, generation: u64) -> Option<Holder> {
        let text = fs::read_to_string(self.lease_path(generation)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Renews claim `generation`: a new heartbeat, whole or not at all.
    pub fn beat(&self, generation: u64, text: &str) -> Result<()> {
        dump::write_atomic(&self.beat_path(generation), text.as_bytes())
    }

    /// The heartbeat of claim `generation` as an observer reads it now.
    pub fn read_beat(&self, generation: u64) -> Option<String> {
        fs::read_to_string(self.beat_path(generation)).ok()
    }

    /// The holder of `generation` lost it: a newer claim exists, or the
    /// unit is committed.
    pub fn lost(&self, generation: u64) -> Result<bool> {
        Ok(exists(&self.lease_path(generation + 1))? || self.is_done()?)
    }

    /// Commits the work of claim `generation` (its work directory, to which
    /// `claim.json` is added here); false if the claim was lost: a newer
    /// claim exists or another generation committed first.
    pub fn commit(&self, record: &Committed) -> Result<bool> {
        let work = self.work_dir(record.generation);
        // A newer claim means a takeover: its holder is redoing the unit,
        // and committing now would only race it.
        if self.lost(record.generation)? {
            return Ok(false);
        }
        // Written whole and fsynced, with the directory.
        let written = dump::write_json_atomic(&work.join(CLAIM_FILE), record);
        match written {
            Ok(()) if !self.lost(record.generation)? => {}
            Ok(()) => return Ok(false),
            // The work directory was removed by the runner that completed
            // the output after a takeover.
            Err(_) if self.lost(record.generation)? => return Ok(false),
            Err(e) => return Err(e),
        }
        match fs::rename(&work, self.done_dir()) {
            Ok(()) => dump::sync_dir(&self.dir)?,
            // The done directory exists and is not empty (EEXIST or
            // ENOTEMPTY, as the system says): a generation committed.
            Err(_) if self.is_done()? => {}
            Err(e) => return Err(e).with_context(|| format!("committing {}", work.display())),
        }
        // A rename that NFS retried after it succeeded reports an error:
        // whatever the rename said, the record in the done directory says
        // who committed.
        Ok(self
            .committed()?
            .is_some_and(|c| c.holder.token == record.holder.token))
    }
}

/// A path exists (an error other than "not found" is one).
fn exists(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::fixtures::stats;

    fn holder(token: &str) -> Holder {
        Holder {
            token: token.into(),
            host: "node1".into(),
            pid: 42,
            since: "2026-01-01T00:00:00Z".into(),
            machine: String::new(),
            lease_secs: 60,
        }
    }

    fn record(generation: u64, token: &str) -> Committed {
        Committed {
            generation,
            holder: holder(token),
            chunk: ProcessedChunk {
                number: 7,
                columns: vec!["id".into()],
                rows_in: 3,
                stats: stats(3, "abc"),
            },
        }
    }

    #[test]
    fn of_two_claims_of_one_generation_only_the_first_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let unit = Unit::new(dir.path(), "000007");
        assert_eq!(unit.generation(0).unwrap(), 0);
        assert!(unit.try_claim(1, &holder("a")).unwrap());
        assert!(!unit.try_claim(1, &holder("b")).unwrap());
        assert_eq!(unit.holder(1), Some(holder("a")));
        assert_eq!(unit.generation(0).unwrap(), 1);
        assert!(!unit.lost(1).unwrap());
        // A takeover.
        assert!(unit.try_claim(2, &holder("b")).unwrap());
        assert_eq!(unit.generation(1).unwrap(), 2);
        assert!(unit.lost(1).unwrap());
        assert!(!unit.lost(2).unwrap());
    }

    #[test]
    fn a_heartbeat_is_read_as_last_written() {
        let dir = tempfile::tempdir().unwrap();
        let unit = Unit::new(dir.path(), "000007");
        assert_eq!(unit.read_beat(1), None);
        unit.beat(1, "1").unwrap();
        unit.beat(1, "2").unwrap();
        assert_eq!(unit.read_beat(1).as_deref(), Some("2"));
    }

    #[test]
    fn only_one_generation_commits_and_a_lost_claim_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let unit = Unit::new(dir.path(), "000007");
        assert!(unit.try_claim(1, &holder("a")).unwrap());
        assert!(unit.try_claim(2, &holder("b")).unwrap());
        for g in [1, 2] {
            fs::create_dir(unit.work_dir(g)).unwrap();
            fs::write(unit.work_dir(g).join("000007.csv"), format!("{g}")).unwrap();
        }
        // Generation 1 was taken over: it does not commit.
        assert!(!unit.commit(&record(1, "a")).unwrap());
        assert!(!unit.is_done().unwrap());
        assert!(unit.commit(&record(2, "b")).unwrap());
        assert!(unit.is_done().unwrap());
        assert_eq!(unit.committed().unwrap(), Some(record(2, "b")));
        assert_eq!(
            fs::read_to_string(unit.done_dir().join("000007.csv")).unwrap(),
            "2"
        );
        assert!(
            unit.lost(2).unwrap(),
            "a committed unit is no one's any more"
        );
    }

    #[test]
    fn a_commit_whose_work_was_tidied_away_after_a_takeover_is_lost_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let unit = Unit::new(dir.path(), "000007");
        assert!(unit.try_claim(1, &holder("a")).unwrap());
        assert!(unit.try_claim(2, &holder("b")).unwrap());
        fs::create_dir(unit.work_dir(2)).unwrap();
        assert!(unit.commit(&record(2, "b")).unwrap());
        // The output was completed and tidied: generation 1's work and the
        // leases are gone.
        fs::remove_file(unit.lease_path(2)).unwrap();
        assert!(!unit.commit(&record(1, "a")).unwrap());
        assert_eq!(unit.committed().unwrap(), Some(record(2, "b")));
    }

    #[test]
    fn a_commit_that_loses_the_race_to_the_done_directory_keeps_the_winners_work() {
        let dir = tempfile::tempdir().unwrap();
        let unit = Unit::new(dir.path(), "000007");
        assert!(unit.try_claim(1, &holder("a")).unwrap());
        fs::create_dir(unit.work_dir(1)).unwrap();
        assert!(unit.commit(&record(1, "a")).unwrap());
        // A holder that checked its claim before the commit above, and
        // renames after it (the window the README describes).
        fs::create_dir(unit.work_dir(2)).unwrap();
        dump::write_json_atomic(&unit.work_dir(2).join(CLAIM_FILE), &record(2, "b")).unwrap();
        assert!(fs::rename(unit.work_dir(2), unit.done_dir()).is_err());
        assert_eq!(unit.committed().unwrap(), Some(record(1, "a")));
    }
}
