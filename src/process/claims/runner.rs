//! Who this runner is (host, pid, a token unique to each claim), and
//! whether another runner's process is known to be gone.

use std::fs;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;

use super::lease::Holder;
use crate::dump;

/// This process, as a runner.
#[derive(Debug)]
pub struct Runner {
    pub host: String,
    pub pid: u32,
    /// This kernel and process namespace: two runners with the same
    /// `machine` see each other's processes (the host name alone does not
    /// say that: two machines may share one).
    machine: String,
    started: u128,
    claims: AtomicU64,
}

impl Runner {
    pub fn this() -> Result<Runner> {
        Ok(Runner {
            host: host_name(),
            pid: std::process::id(),
            machine: machine_id(),
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
            claims: AtomicU64::new(0),
        })
    }

    /// A new claim's holder record, with a token no other claim has.
    pub fn holder(&self, lease: Duration) -> Holder {
        let n = self.claims.fetch_add(1, Ordering::SeqCst);
        Holder {
            token: format!("{}-{}-{}-{n}", self.host, self.pid, self.started),
            host: self.host.clone(),
            pid: self.pid,
            since: dump::utc_now(),
            machine: self.machine.clone(),
            lease_secs: lease.as_secs(),
        }
    }

    /// The holder's process is known to be gone: it ran on this machine
    /// (same kernel boot, same process namespace) and no longer runs. On any
    /// other machine nothing is known, and only the heartbeat tells.
    pub fn is_gone(&self, holder: &Holder) -> bool {
        !self.machine.is_empty()
            && holder.machine == self.machine
            && holder.pid != self.pid
            && !process_alive(holder.pid)
    }
}

fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The kernel's boot id and this process's pid namespace; empty if either
/// is unknown (then no holder is ever judged gone from its pid).
/// `MYSPOOL_RUNNER_MACHINE` replaces it: the tests run runners on one
/// machine as if each were on its own, where only the lease tells.
fn machine_id() -> String {
    if let Ok(m) = std::env::var("MYSPOOL_RUNNER_MACHINE") {
        return m;
    }
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let ns = fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match (boot.trim(), ns.as_str()) {
        ("", _) | (_, "") => String::new(),
        (b, n) => format!("{b} {n}"),
    }
}

/// The process runs (a zombie, killed and not yet waited for, does not).
fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !is_dead_state(&stat),
        Err(_) => false,
    }
}

/// The state field of `/proc/PID/stat` (after the command name, which may
/// hold spaces and parentheses) says zombie or dead.
fn is_dead_state(stat: &str) -> bool {
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|s| s == "Z" || s == "X")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zombie_or_missing_process_is_gone_and_a_running_one_is_not() {
        assert!(is_dead_state("123 (sh) Z 1 2 3"));
        assert!(is_dead_state("123 (a) b) X 1"));
        assert!(!is_dead_state("123 (my spool) S 1 2"));
        assert!(process_alive(std::process::id()));
        let me = Runner::this().unwrap();
        let mut other = me.holder(Duration::from_secs(60));
        assert!(!me.is_gone(&other), "this process runs");
        other.pid = u32::MAX;
        assert!(me.is_gone(&other));
        other.machine = "another machine".into();
        assert!(!me.is_gone(&other), "another machine's pids say nothing");
    }

    #[test]
    fn every_claim_has_its_own_token() {
        let me = Runner::this().unwrap();
        assert_ne!(
            me.holder(Duration::from_secs(60)).token,
            me.holder(Duration::from_secs(60)).token
        );
    }
}
