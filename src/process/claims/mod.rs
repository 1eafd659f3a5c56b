//! Cooperating runners: any number of `myspool process` runs on one dump
//! and one `--out` (on one machine, or on many sharing them over NFS) split
//! the chunks between them with no coordinator.
//!
//! Each chunk is a unit of work with its own claim files in
//! `<db>/<table>/.claims/` (see `lease.rs` for the files and the atomic
//! operations that decide who owns a unit). A runner claims the first unit
//! nobody holds, renews its claim every lease/3 while it works, and commits
//! the output chunk only if the claim is still its own. A runner that
//! stopped renewing (killed, machine lost, stalled) is taken over once its
//! heartbeat was seen unchanged for a whole lease *on the observer's own
//! monotonic clock*: no two machines' clocks are ever compared. On one
//! machine a holder whose process is gone is taken over at once.
//!
//! Runners with nothing left to claim wait while others hold units, so the
//! output completes as long as one runner lives; once every chunk is
//! committed, one runner (a claim on the `finish` unit of `<out>/.claims/`)
//! writes the tables' `table.json` and marks the manifest complete.

mod lease;
mod runner;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde::Serialize;

pub use lease::Holder;
use lease::{Committed, Unit, RELEASED};
pub use runner::Runner;

use crate::dump::{self, DumpDir, ProcessedChunk, CLAIMS_DIR};

/// The unit that completes the output, in `<out>/.claims/`.
const FINISH_UNIT: &str = "finish";
/// How long a claim lives without a heartbeat, unless `--lease` says.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// `--shard K/N`: this runner starts with every Nth chunk from the Kth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl FromStr for Shard {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Shard> {
        let bad = || anyhow!("--shard {s:?}: give K/N with 1 <= K <= N, e.g. 2/8");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n) = (
            k.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }
}

/// The order a runner tries the units in: its shard's first (every Nth
/// from the Kth), then the others', so runners of a job array start on
/// different chunks and still help with what is left.
pub fn claim_order(units: usize, shard: Option<Shard>) -> Vec<usize> {
    match shard {
        None => (0..units).collect(),
        Some(Shard { k, n }) => {
            let (mine, others): (Vec<usize>, Vec<usize>) = (0..units).partition(|i| i % n == k - 1);
            mine.into_iter().chain(others).collect()
        }
    }
}

/// What an observer last saw of a claim it does not hold, and since when
/// (its own monotonic clock).
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    generation: u64,
    beat: Option<String>,
    since: Instant,
}

/// Notes what is seen of a claim now: a new generation or a new heartbeat
/// restarts the count.
pub fn observe(seen: &mut Option<Seen>, generation: u64, beat: Option<String>, now: Instant) {
    match seen {
        Some(s) if s.generation == generation && s.beat == beat => {}
        _ => {
            *seen = Some(Seen {
                generation,
                beat,
                since: now,
            })
        }
    }
}

/// A claim may be taken over: its holder gave it up, its process is known
/// gone, or its heartbeat has not changed for a whole lease as this
/// observer saw it. Never judged from the time written in a file: that is
/// the holder's clock, and clocks of two machines differ.
pub fn expired(seen: &Seen, now: Instant, lease: Duration, holder_gone: bool) -> bool {
    holder_gone
        || seen.beat.as_deref() == Some(RELEASED)
        || now.saturating_duration_since(seen.since) >= lease
}

/// How long an observer waits on a claim: its own `--lease`, or the
/// holder's if longer (the holder renews every third of its own).
pub fn observed_lease(own: Duration, holder: Option<&Holder>) -> Duration {
    holder.map_or(own, |h| own.max(Duration::from_secs(h.lease_secs)))
}

/// What this runner knows of one unit.
#[derive(Debug, Default)]
struct UnitState {
    /// Committed (by anyone).
    done: bool,
    /// Failed here: not tried again by this runner.
    failed: bool,
    /// Held by this runner.
    mine: bool,
    /// The newest generation known to exist.
    generation: u64,
    seen: Option<Seen>,
}

/// A unit this runner holds.
pub(crate) struct Claim {
    pub index: usize,
    pub generation: u64,
    pub holder: Holder,
    /// Where the holder writes its output.
    pub work_dir: PathBuf,
}

/// A unit claimed, or why none was.
enum Step {
    Claimed(Claim),
    Done,
    /// Held by a live runner.
    Held,
    Skip,
}

/// One runner's view of the units of an output.
pub(crate) struct Claims {
    runner: Runner,
    lease: Duration,
    units: Vec<Unit>,
    order: Vec<usize>,
    state: Mutex<Vec<UnitState>>,
    /// Claims held now, renewed by `renew`: unit index, generation, beats.
    held: Mutex<BTreeMap<usize, (Unit, u64, u64)>>,
    lost: Mutex<Vec<usize>>,
    taken_over: AtomicU64,
    /// The runner must stop (a failure that is not a chunk's).
    stop: AtomicBool,
    finish: Unit,
}

/// Of a lost claim: the unit's index.
#[derive(Debug, Clone, Serialize)]
pub struct LostClaim {
    pub table: String,
    pub chunk: u32,
}

impl Claims {
    /// `units`: for every unit, its table's output directory and chunk
    /// number, in the tables' order.
    pub fn new(
        out: &DumpDir,
        units: &[(PathBuf, u32)],
        lease: Duration,
        shard: Option<Shard>,
    ) -> Result<Claims> {
        if lease < Duration::from_secs(1) {
            bail!("--lease must be at least 1 second");
        }
        let mut dirs: Vec<&Path> = units.iter().map(|(d, _)| d.as_path()).collect();
        dirs.dedup();
        for d in dirs {
            dump::create_private_dir(&d.join(CLAIMS_DIR))?;
        }
        dump::create_private_dir(&out.root().join(CLAIMS_DIR))?;
        Ok(Claims {
            runner: Runner::this()?,
            lease,
            units: units
                .iter()
                .map(|(dir, n)| Unit::new(&dir.join(CLAIMS_DIR), format!("{n:06}")))
                .collect(),
            order: claim_order(units.len(), shard),
            state: Mutex::new((0..units.len()).map(|_| UnitState::default()).collect()),
            held: Mutex::new(BTreeMap::new()),
            lost: Mutex::new(Vec::new()),
            taken_over: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            finish: Unit::new(&out.root().join(CLAIMS_DIR), FINISH_UNIT),
        })
    }

    /// How often a waiting runner looks again.
    fn poll(&self) -> Duration {
        (self.lease / 6).clamp(Duration::from_millis(100), Duration::from_secs(2))
    }

    /// Claims the next unit, waiting while the only ones left are held by
    /// live runners; `None` when none is left for this runner (every unit
    /// committed, or failed here).
    pub fn next(&self) -> Result<Option<Claim>> {
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let mut waiting = false;
            {
                let mut state = self.lock_state()?;
                for &i in &self.order {
                    match self.try_take(&self.units[i], i, &mut state[i])? {
                        Step::Claimed(c) => return Ok(Some(c)),
                        Step::Held => waiting = true,
                        Step::Done | Step::Skip => {}
                    }
                }
            }
            if !waiting {
                return Ok(None);
            }
            thread::sleep(self.poll());
        }
    }

    fn lock_state(&self) -> Result<std::sync::MutexGuard<'_, Vec<UnitState>>> {
        self.state.lock().map_err(|_| anyhow!("a worker panicked"))
    }

    /// Tries to claim one unit.
    fn try_take(&self, unit: &Unit, index: usize, st: &mut UnitState) -> Result<Step> {
        if st.done || st.failed || st.mine {
            return Ok(if st.done { Step::Done } else { Step::Skip });
        }
        if unit.is_done()? {
            st.done = true;
            return Ok(Step::Done);
        }
        let g = unit.generation(st.generation)?;
        st.generation = g;
        if g > 0 {
            let now = Instant::now();
            observe(&mut st.seen, g, unit.read_beat(g), now);
            let holder = unit.holder(g);
            let gone = holder.as_ref().is_some_and(|h| self.runner.is_gone(h));
            let lease = observed_lease(self.lease, holder.as_ref());
            let seen = st.seen.as_ref().ok_or_else(|| anyhow!("no observation"))?;
            if !expired(seen, now, lease, gone) {
                return Ok(Step::Held);
            }
        }
        let holder = self.runner.holder(self.lease);
        if !unit.try_claim(g + 1, &holder)? {
            // Another runner claimed it first.
            return Ok(Step::Held);
        }
        st.generation = g + 1;
        let work_dir = unit.work_dir(g + 1);
        let started = match unit.is_done() {
            // Committed between the look and the claim.
            Ok(true) => Err(None),
            // No heartbeat yet: an observer counts from the claim itself
            // (a missing heartbeat that stays missing expires like any).
            Ok(false) => dump::create_private_dir(&work_dir).map_err(Some),
            Err(e) => Err(Some(e)),
        };
        if let Err(e) = started {
            // A runner that stalled right after its claim may find the
            // unit committed, and the output tidied, when it wakes.
            if unit.lost(g + 1)? {
                if index != usize::MAX {
                    crate::progress::notice(&format!(
                        "myspool process: lost the claim on chunk {} in {}: this runner stalled past its lease and another runner took the chunk over",
                        unit.name(),
                        unit.dir().display()
                    ));
                    if let Ok(mut lost) = self.lost.lock() {
                        lost.push(index);
                    }
                }
                st.done = unit.is_done()?;
                return Ok(if st.done { Step::Done } else { Step::Held });
            }
            return Err(e.unwrap_or_else(|| anyhow!("claim {} lost", g + 1)));
        }
        st.mine = true;
        if g > 0 {
            self.taken_over.fetch_add(1, Ordering::SeqCst);
        }
        self.held
            .lock()
            .map_err(|_| anyhow!("a worker panicked"))?
            .insert(index, (unit.clone(), g + 1, 0));
        Ok(Step::Claimed(Claim {
            index,
            generation: g + 1,
            holder,
            work_dir,
        }))
    }

    /// Commits a claim's output chunk (`file` in its work directory) and
    /// moves it to `table_dir`; false if the claim was lost.
    pub fn commit(
        &self,
        claim: &Claim,
        chunk: &ProcessedChunk,
        table_dir: &Path,
        file: &str,
    ) -> Result<bool> {
        let unit = &self.units[claim.index];
        self.unhold(claim.index);
        let won = unit.commit(&Committed {
            generation: claim.generation,
            holder: claim.holder.clone(),
            chunk: chunk.clone(),
        })?;
        let mut state = self.lock_state()?;
        state[claim.index].mine = false;
        if won {
            state[claim.index].done = true;
            place(unit, table_dir, file)?;
        } else {
            self.lost_claim(claim);
        }
        Ok(won)
    }

    /// A claim whose unit failed: given up, so other runners may try it
    /// (this one does not again). False if it was lost before.
    pub fn release(&self, claim: &Claim) -> Result<bool> {
        let unit = &self.units[claim.index];
        self.unhold(claim.index);
        let mut state = self.lock_state()?;
        state[claim.index].mine = false;
        if unit.lost(claim.generation)? {
            self.lost_claim(claim);
            return Ok(false);
        }
        state[claim.index].failed = true;
        unit.beat(claim.generation, RELEASED)?;
        let _ = fs::remove_dir_all(&claim.work_dir);
        Ok(true)
    }

    fn unhold(&self, index: usize) {
        if let Ok(mut held) = self.held.lock() {
            held.remove(&index);
        }
    }

    fn lost_claim(&self, claim: &Claim) {
        let _ = fs::remove_dir_all(&claim.work_dir);
        if let Ok(mut lost) = self.lost.lock() {
            lost.push(claim.index);
        }
    }

    /// The units whose claims this runner lost, by index.
    pub fn lost(&self) -> Vec<usize> {
        self.lost.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Claims this runner took over from a runner that stopped.
    pub fn taken_over(&self) -> u64 {
        self.taken_over.load(Ordering::SeqCst)
    }

    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// Asks `next` to give no more units.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Renews every claim held, every lease/3, until `done` is set; a claim
    /// found taken over is dropped from the renewals (its commit will find
    /// it lost).
    pub fn renew(&self, done: &AtomicBool) {
        let every = self.lease / 3;
        let mut last = Instant::now();
        while !done.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(50).min(every));
            if last.elapsed() < every {
                continue;
            }
            last = Instant::now();
            let Ok(mut held) = self.held.lock() else {
                return;
            };
            held.retain(|_, (unit, generation, beats)| {
                if unit.lost(*generation).unwrap_or(false) {
                    return false;
                }
                *beats += 1;
                if let Err(e) = unit.beat(*generation, &beat_text(*beats)) {
                    crate::progress::notice(&format!(
                        "myspool process: could not renew a claim: {}",
                        crate::errors::sentence(&e)
                    ));
                }
                true
            });
        }
    }

    /// Every unit is committed, by anyone (read from the disk).
    pub fn all_done(&self) -> Result<bool> {
        let mut state = self.lock_state()?;
        for (unit, st) in self.units.iter().zip(state.iter_mut()) {
            if !st.done {
                st.done = unit.is_done()?;
                if !st.done {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Runs `complete` once for the whole output, on the runner that claims
    /// the finish unit (waiting, and taking over, as for chunks); false if
    /// another runner completed it.
    pub fn finish(&self, complete: impl FnOnce() -> Result<()>) -> Result<bool> {
        let mut st = UnitState::default();
        let claim = loop {
            match self.try_take(&self.finish, usize::MAX, &mut st)? {
                Step::Claimed(c) => break c,
                Step::Done => return Ok(false),
                Step::Held | Step::Skip => thread::sleep(self.poll()),
            }
        };
        complete()?;
        self.unhold(usize::MAX);
        let unit = &self.finish;
        let chunk = ProcessedChunk {
            number: 0,
            columns: Vec::new(),
            rows_in: 0,
            stats: Default::default(),
        };
        unit.commit(&Committed {
            generation: claim.generation,
            holder: claim.holder.clone(),
            chunk,
        })
    }
}

/// Moves a committed unit's chunk into its table's directory (once: the
/// committer does it, or a runner that finds it left there by a committer
/// that died).
fn place(unit: &Unit, table_dir: &Path, file: &str) -> Result<()> {
    let from = unit.done_dir().join(file);
    match fs::rename(&from, table_dir.join(file)) {
        Ok(()) => dump::sync_dir(table_dir),
        Err(_) if !from.exists() => Ok(()),
        Err(e) => Err(anyhow::Error::from(e).context(format!("moving {}", from.display()))),
    }
}

/// A heartbeat: a count (it changes even if the clock does not) and the
/// holder's time, for people reading `status`.
fn beat_text(n: u64) -> String {
    format!("{n} {}\n", dump::utc_now())
}

/// The chunks of a table committed by cooperating runners, each moved into
/// the table's directory if its committer died before it did; `file` names
/// a chunk's file.
pub(crate) fn committed_chunks(
    table_dir: &Path,
    numbers: &[u32],
    file: impl Fn(u32) -> String,
) -> Result<BTreeMap<u32, ProcessedChunk>> {
    let mut done = BTreeMap::new();
    let dir = table_dir.join(CLAIMS_DIR);
    for &n in numbers {
        let unit = Unit::new(&dir, format!("{n:06}"));
        if let Some(c) = unit.committed()? {
            place(&unit, table_dir, &file(n))?;
            done.insert(n, c.chunk);
        }
    }
    Ok(done)
}

/// A unit held now, as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct HeldUnit {
    pub chunk: u32,
    pub generation: u64,
    pub host: String,
    pub pid: u32,
    /// When the claim was made (the holder's clock, UTC).
    pub since: String,
    /// The holder's last heartbeat, as it wrote it (count and its time).
    pub last_beat: Option<String>,
}

/// The units of a table held now (not committed, not released), read from
/// its claim files.
pub fn held_units(table_dir: &Path) -> Vec<HeldUnit> {
    let dir = table_dir.join(CLAIMS_DIR);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut newest: BTreeMap<u32, u64> = BTreeMap::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some((n, g)) = name.split_once(".lease.") else {
            continue;
        };
        if let (Ok(n), Ok(g)) = (n.parse::<u32>(), g.parse::<u64>()) {
            let slot = newest.entry(n).or_default();
            *slot = (*slot).max(g);
        }
    }
    newest
        .into_iter()
        .filter_map(|(n, g)| {
            let unit = Unit::new(&dir, format!("{n:06}"));
            if unit.is_done().unwrap_or(true) {
                return None;
            }
            let beat = unit.read_beat(g).map(|b| b.trim().to_string());
            if beat.as_deref() == Some(RELEASED) {
                return None;
            }
            let h = unit.holder(g)?;
            Some(HeldUnit {
                chunk: n,
                generation: g,
                host: h.host,
                pid: h.pid,
                since: h.since,
                last_beat: beat,
            })
        })
        .collect()
}

/// Removes what claims leave behind once the output is complete: the
/// leases, heartbeats and work directories of every claim. The done directories stay: a runner that stalled past its lease
/// and wakes later must still find its chunk committed (it then checks
/// nothing else: a claim it might make finds the chunk done).
pub(crate) fn tidy(table_dir: &Path) {
    let Ok(entries) = fs::read_dir(table_dir.join(CLAIMS_DIR)) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(".work.") {
            let _ = fs::remove_dir_all(e.path());
        } else if leftover(&name) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// A claim file of no use once its chunk is committed. (Temporary files
/// stay: a runner that stalled in the middle of writing one renames it when
/// it wakes, and must not fail for that.)
fn leftover(name: &str) -> bool {
    !name.starts_with(".tmp-") && (name.contains(".lease.") || name.contains(".beat."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_is_k_of_n_and_starts_with_its_own_units() {
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard { k: 2, n: 4 });
        for bad in ["0/4", "5/4", "1/0", "4", "a/b", ""] {
            let err = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(err.starts_with("--shard"), "{err}");
        }
        assert_eq!(claim_order(5, None), vec![0, 1, 2, 3, 4]);
        assert_eq!(
            claim_order(7, Some(Shard { k: 2, n: 3 })),
            vec![1, 4, 0, 2, 3, 5, 6]
        );
    }

    #[test]
    fn a_claim_expires_after_a_lease_without_a_new_heartbeat_on_the_observers_clock() {
        let lease = Duration::from_secs(60);
        let t0 = Instant::now();
        let mut seen = None;
        observe(&mut seen, 1, Some("1 x".into()), t0);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(!expired(seen.as_ref().unwrap(), at(59), lease, false));
        // A new heartbeat restarts the count, whatever time it says.
        observe(&mut seen, 1, Some("2 1970-01-01T00:00:00Z".into()), at(59));
        assert!(!expired(seen.as_ref().unwrap(), at(100), lease, false));
        assert!(expired(seen.as_ref().unwrap(), at(119), lease, false));
        // So does a new generation (a takeover by someone else).
        observe(&mut seen, 2, Some("2 1970-01-01T00:00:00Z".into()), at(119));
        assert!(!expired(seen.as_ref().unwrap(), at(120), lease, false));
        // A released claim, or one whose process is gone, is free at once.
        assert!(expired(seen.as_ref().unwrap(), at(120), lease, true));
        observe(&mut seen, 2, Some(RELEASED.into()), at(121));
        assert!(expired(seen.as_ref().unwrap(), at(121), lease, false));
    }

    #[test]
    fn an_observer_waits_the_longer_of_its_lease_and_the_holders() {
        let me = Runner::this().unwrap();
        let (short, long) = (Duration::from_secs(10), Duration::from_secs(600));
        let holder = me.holder(long);
        assert_eq!(observed_lease(short, Some(&holder)), long);
        assert_eq!(observed_lease(long, Some(&me.holder(short))), long);
        assert_eq!(observed_lease(short, None), short);
    }

    #[test]
    fn two_runners_never_hold_one_unit_and_a_stopped_ones_claim_is_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        let out = DumpDir::new(tmp.path());
        let table = tmp.path().join("t");
        fs::create_dir(&table).unwrap();
        let units = vec![(table.clone(), 1), (table.clone(), 2)];
        let lease = Duration::from_secs(1);
        let a = Claims::new(&out, &units, lease, None).unwrap();
        let b = Claims::new(&out, &units, lease, None).unwrap();
        let first = a.next().unwrap().unwrap();
        let second = b.next().unwrap().unwrap();
        assert_eq!((first.index, second.index), (0, 1));
        // b commits its unit; a never renews: b waits a lease, then takes
        // a's unit over.
        fs::write(second.work_dir.join("000002.csv"), "x").unwrap();
        let chunk = |n| ProcessedChunk {
            number: n,
            columns: vec![],
            rows_in: 0,
            stats: Default::default(),
        };
        assert!(b.commit(&second, &chunk(2), &table, "000002.csv").unwrap());
        assert_eq!(fs::read_to_string(table.join("000002.csv")).unwrap(), "x");
        let taken = b.next().unwrap().unwrap();
        assert_eq!((taken.index, taken.generation), (0, 2));
        assert_eq!(b.taken_over(), 1);
        assert_eq!(held_units(&table).len(), 1);
        // a wakes up: its commit is refused, and says so.
        assert!(!a.commit(&first, &chunk(1), &table, "000001.csv").unwrap());
        assert_eq!(a.lost(), vec![0]);
        assert!(b.commit(&taken, &chunk(1), &table, "000001.csv").unwrap());
        assert!(a.all_done().unwrap() && b.next().unwrap().is_none());
        assert!(held_units(&table).is_empty());
        assert!(b.finish(|| Ok(())).unwrap());
        assert!(!a.finish(|| panic!("finished twice")).unwrap());
        tidy(&table);
        let mut left: Vec<String> = fs::read_dir(table.join(CLAIMS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec!["000001.done", "000002.done"]);
        // A claim made after the tidying finds the chunk done.
        assert!(Claims::new(&out, &units, lease, None)
            .unwrap()
            .next()
            .unwrap()
            .is_none());
    }
}
