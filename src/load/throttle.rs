//! `--max-replica-lag`: the load pauses between chunks while a replica of
//! the target (`--replica URL`, repeatable) lags more than the limit, so a
//! load that the primary takes easily does not leave its replicas hours
//! behind. Each job asks before it takes its next chunk; the replicas are
//! asked at most once a second, and while one lags every job waits.
//!
//! The lag is `Seconds_Behind_Master` of `SHOW SLAVE STATUS` (MariaDB, and
//! MySQL before 8.0.22; MySQL 8.0.22+ also has `SHOW REPLICA STATUS` and
//! `Seconds_Behind_Source`). It is NULL when the replica's SQL or IO thread
//! is stopped: the replica may be any distance behind, and whatever the
//! load writes now piles up on it, so a NULL lag counts as too much and the
//! load waits (saying so) until the replica runs again. A server that is
//! no replica at all is refused before anything is loaded.

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, Row};

use crate::conn::ConnSpec;
use crate::pause::{Gate, Pauses, Wording};

/// What a replica says of its lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lag {
    Seconds(u64),
    /// `Seconds_Behind_Master` is NULL: replication is stopped.
    Stopped,
}

/// Whether the load may go on: `None`, or why it waits (every replica
/// that lags too much, named).
pub(super) fn lag_verdict(lags: &[(String, Lag)], limit: u64) -> Option<String> {
    let behind: Vec<String> = lags
        .iter()
        .filter_map(|(name, lag)| match lag {
            Lag::Seconds(s) if *s > limit => Some(format!("{name} lags {s} s")),
            Lag::Seconds(_) => None,
            Lag::Stopped => Some(format!("{name} has replication stopped")),
        })
        .collect();
    (!behind.is_empty()).then(|| behind.join(", "))
}

/// The replicas a load watches, shared by its jobs.
pub(super) struct Throttle {
    limit: u64,
    state: Mutex<Watch>,
}

struct Watch {
    replicas: Vec<(String, ConnSpec, Conn)>,
    gate: Gate,
}

impl Throttle {
    /// Connects to every replica and checks that it is one.
    pub(super) fn connect(replicas: &[ConnSpec], limit: u64) -> Result<Throttle> {
        let mut connected = Vec::new();
        for spec in replicas {
            let name = spec.endpoint();
            let mut conn = spec
                .connect("replica")
                .with_context(|| format!("connecting to the replica {name}"))?;
            lag_of(&mut conn, &name)?;
            connected.push((name, spec.clone(), conn));
        }
        Ok(Throttle {
            limit,
            state: Mutex::new(Watch {
                replicas: connected,
                gate: Gate::default(),
            }),
        })
    }

    /// Returns once every replica lags no more than the limit (or the load
    /// is aborting). One job asks the replicas at a time; the others wait
    /// for its answer.
    pub(super) fn wait_for_replicas(&self, abort: &AtomicBool) -> Result<()> {
        let mut watch = self
            .state
            .lock()
            .map_err(|_| anyhow::anyhow!("a loader thread panicked"))?;
        let Watch { replicas, gate } = &mut *watch;
        let limit = self.limit;
        let busy = || Ok(lag_verdict(&lags(replicas)?, limit));
        let say = Wording {
            pausing: |why: &str| {
                format!("myspool load: pausing: {why} (--max-replica-lag {limit})")
            },
            resuming: |seconds: f64| {
                format!("myspool load: resuming after {seconds:.0} s: the replicas are within {limit} s")
            },
        };
        gate.wait(abort, busy, say)
    }

    pub(super) fn pauses(&self) -> Pauses {
        self.state
            .lock()
            .map(|w| w.gate.pauses())
            .unwrap_or_default()
    }
}

/// Every replica's lag; a lost connection is opened again once.
fn lags(replicas: &mut [(String, ConnSpec, Conn)]) -> Result<Vec<(String, Lag)>> {
    let mut out = Vec::new();
    for (name, spec, conn) in replicas.iter_mut() {
        let lag = match lag_of(conn, name) {
            Ok(lag) => lag,
            Err(_) => {
                *conn = spec
                    .connect("replica")
                    .with_context(|| format!("connecting again to the replica {name}"))?;
                lag_of(conn, name)?
            }
        };
        out.push((name.clone(), lag));
    }
    Ok(out)
}

/// `Seconds_Behind_Master` of the replica's first connection (MariaDB's
/// multi-source replicas list one row per connection; the first is the
/// default one).
fn lag_of(conn: &mut Conn, name: &str) -> Result<Lag> {
    let row: Option<Row> = conn
        .query_first("SHOW SLAVE STATUS")
        .with_context(|| format!("SHOW SLAVE STATUS on the replica {name}"))?;
    let Some(row) = row else {
        bail!("{name}, given as --replica, is not a replica (SHOW SLAVE STATUS is empty)");
    };
    let columns = row.columns();
    let index = columns
        .iter()
        .position(|c| {
            let n = c.name_str();
            n == "Seconds_Behind_Master" || n == "Seconds_Behind_Source"
        })
        .with_context(|| format!("SHOW SLAVE STATUS on {name} has no Seconds_Behind_Master"))?;
    let value: Option<String> = crate::schema::text(&row, index)?;
    Ok(match value.and_then(|v| v.parse().ok()) {
        Some(seconds) => Lag::Seconds(seconds),
        None => Lag::Stopped,
    })
}

/// The replicas the target lists (`SHOW SLAVE HOSTS`), for
/// `--max-replica-lag` without `--replica`: each reached with the target's
/// user, password and TLS settings.
pub(super) fn discover_replicas(target: &ConnSpec) -> Result<Vec<ConnSpec>> {
    let mut conn = target.connect("target")?;
    let rows: Vec<Row> = conn.query("SHOW SLAVE HOSTS").context(
        "SHOW SLAVE HOSTS on the target, to find its replicas for --max-replica-lag (it needs REPLICATION MASTER ADMIN on MariaDB, REPLICATION SLAVE on MySQL; or name them with --replica URL)",
    )?;
    let mut hosts = Vec::new();
    for row in &rows {
        let columns = row.columns();
        let at = |name: &str| columns.iter().position(|c| c.name_str() == name);
        let (Some(h), Some(p)) = (at("Host"), at("Port")) else {
            bail!("SHOW SLAVE HOSTS on the target has no Host and Port columns");
        };
        let host = crate::schema::text(row, h)?.unwrap_or_default();
        let port = crate::schema::text(row, p)?.unwrap_or_default();
        hosts.push((host, port));
    }
    Ok(replica_specs(target, &hosts))
}

/// The target's connection settings pointed at each listed replica
/// (`Host`, `Port` of `SHOW SLAVE HOSTS`); a replica listed without a host
/// or a port (one that reports none) cannot be reached and is left out.
pub(super) fn replica_specs(target: &ConnSpec, hosts: &[(String, String)]) -> Vec<ConnSpec> {
    hosts
        .iter()
        .filter_map(|(host, port)| {
            let port: u16 = port.trim().parse().ok().filter(|&p| p > 0)?;
            let host = host.trim();
            if host.is_empty() {
                return None;
            }
            let mut spec = target.clone();
            spec.host = host.to_string();
            spec.port = port;
            spec.socket = None;
            spec.database = None;
            Some(spec)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovered_replicas_are_reached_like_the_target() {
        let target = ConnSpec::parse("mysql://etl:pw@db1:3306/shop?socket=/run/m.sock").unwrap();
        let hosts = [
            ("10.0.0.7".to_string(), "3307".to_string()),
            (String::new(), "3306".to_string()),
            ("r3".to_string(), "0".to_string()),
        ];
        let specs = replica_specs(&target, &hosts);
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].endpoint(), "10.0.0.7:3307");
        assert_eq!(specs[0].user, "etl");
        assert!(specs[0].socket.is_none());
        assert!(specs[0].database.is_none());
    }

    fn lags(l: &[(&str, Lag)]) -> Vec<(String, Lag)> {
        l.iter().map(|(n, lag)| (n.to_string(), *lag)).collect()
    }

    #[test]
    fn the_load_goes_on_only_while_every_replica_is_within_the_limit() {
        assert_eq!(lag_verdict(&[], 10), None);
        assert_eq!(
            lag_verdict(&lags(&[("r1:3306", Lag::Seconds(10))]), 10),
            None
        );
        assert_eq!(
            lag_verdict(
                &lags(&[("r1:3306", Lag::Seconds(0)), ("r2:3306", Lag::Seconds(11))]),
                10
            )
            .as_deref(),
            Some("r2:3306 lags 11 s")
        );
    }

    #[test]
    fn a_stopped_replica_counts_as_too_far_behind() {
        assert_eq!(
            lag_verdict(
                &lags(&[("r1:3306", Lag::Stopped), ("r2:3306", Lag::Seconds(99))]),
                60
            )
            .as_deref(),
            Some("r1:3306 has replication stopped, r2:3306 lags 99 s")
        );
    }
}
