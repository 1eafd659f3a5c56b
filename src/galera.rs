//! Galera nodes, below every phase: what a node says about itself and its
//! cluster (`wsrep_*` variables and status), and finding a cluster's other
//! nodes from one (`wsrep_incoming_addresses`) — for `load` (jobs spread
//! over the nodes) and `verify` (every node read). What a load requires of
//! a cluster is `load::galera`'s.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;
use serde::Serialize;

use crate::conn::ConnSpec;

/// What a Galera node says about itself and its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GaleraFacts {
    /// `wsrep_node_name`.
    pub node: String,
    /// `wsrep_gcomm_uuid`: this node's own, whatever address reaches it.
    pub node_uuid: String,
    /// `wsrep_cluster_state_uuid`: the same on every node of one cluster.
    pub cluster_uuid: String,
    pub cluster_size: u32,
    /// `wsrep_cluster_status`: `Primary` when the node is in the quorum.
    pub cluster_status: String,
    /// `wsrep_local_state_comment`: `Synced`, `Donor/Desynced`, `Joining`, …
    pub local_state: String,
    /// `wsrep_ready`: the node accepts queries.
    pub ready: bool,
    /// `wsrep_max_ws_rows` (0: no limit).
    pub max_ws_rows: u64,
    /// `wsrep_max_ws_size` in bytes.
    pub max_ws_size: u64,
    /// `wsrep_trx_fragment_size` (0: no streaming replication), reported.
    pub trx_fragment_size: u64,
    /// `wsrep_auto_increment_control`: the node sets its own
    /// auto_increment_increment/offset from the cluster size.
    pub auto_increment_control: bool,
}

impl GaleraFacts {
    /// The facts of the node `conn` is on, or None when it is not a Galera
    /// node (MySQL has no `wsrep_on` at all; MariaDB has it OFF).
    pub(crate) fn read(conn: &mut Conn) -> Result<Option<GaleraFacts>> {
        let variables = name_values(conn, "SHOW GLOBAL VARIABLES LIKE 'wsrep%'")?;
        let status = name_values(conn, "SHOW GLOBAL STATUS LIKE 'wsrep%'")?;
        Ok(GaleraFacts::of(&variables, &status))
    }

    /// The pure part of [`GaleraFacts::read`].
    pub(crate) fn of(
        variables: &HashMap<String, String>,
        status: &HashMap<String, String>,
    ) -> Option<Self> {
        let on = |v: Option<&String>| v.is_some_and(|v| v.eq_ignore_ascii_case("ON") || v == "1");
        if !on(variables.get("wsrep_on")) {
            return None;
        }
        let text = |m: &HashMap<String, String>, k: &str| m.get(k).cloned().unwrap_or_default();
        let number = |m: &HashMap<String, String>, k: &str| {
            m.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        };
        Some(GaleraFacts {
            node: text(variables, "wsrep_node_name"),
            node_uuid: text(status, "wsrep_gcomm_uuid"),
            cluster_uuid: text(status, "wsrep_cluster_state_uuid"),
            cluster_size: number(status, "wsrep_cluster_size") as u32,
            cluster_status: text(status, "wsrep_cluster_status"),
            local_state: text(status, "wsrep_local_state_comment"),
            ready: on(status.get("wsrep_ready")),
            max_ws_rows: number(variables, "wsrep_max_ws_rows"),
            max_ws_size: number(variables, "wsrep_max_ws_size"),
            trx_fragment_size: number(variables, "wsrep_trx_fragment_size"),
            auto_increment_control: on(variables.get("wsrep_auto_increment_control")),
        })
    }

    /// Takes `other`'s write-set limits where they are tighter: each node
    /// holds the transactions it runs to its own.
    pub(crate) fn tighten(&mut self, other: &GaleraFacts) {
        let tighter = |a: u64, b: u64| match (a, b) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
        self.max_ws_rows = tighter(self.max_ws_rows, other.max_ws_rows);
        self.max_ws_size = tighter(self.max_ws_size, other.max_ws_size);
    }

    /// One line for the user: which node, which cluster, in what state.
    pub fn describe(&self) -> String {
        format!(
            "Galera node {} of a {}-node cluster ({}, {})",
            self.node, self.cluster_size, self.cluster_status, self.local_state
        )
    }
}

pub(crate) fn name_values(conn: &mut Conn, sql: &str) -> Result<HashMap<String, String>> {
    let rows: Vec<(String, Option<String>)> = conn.query(sql).with_context(|| sql.to_string())?;
    Ok(rows
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.unwrap_or_default()))
        .collect())
}

/// The port a node address without one stands for.
const DEFAULT_PORT: u16 = 3306;

/// What one entry of `wsrep_incoming_addresses` says: an address to try,
/// or why it cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IncomingAddress {
    Node { host: String, port: u16 },
    Unusable { entry: String, why: &'static str },
}

/// The entries of `wsrep_incoming_addresses` (`host:port` of each node, as
/// its clients reach it, comma-separated). `given_host` is the host the
/// node that reported them was reached at.
///
/// What the servers put there: `AUTO` when a node could not tell its own
/// address (no `wsrep_node_incoming_address`, no usable interface);
/// `0.0.0.0:port` (or `[::]:port`) on some setups when the node listens on
/// every interface — the port is right, the host is not said, so
/// `given_host` is tried (right when the nodes share a host; elsewhere
/// the cluster check after connecting leaves it out); IPv6 in brackets.
pub(crate) fn incoming_addresses(value: &str, given_host: &str) -> Vec<IncomingAddress> {
    let mut out: Vec<IncomingAddress> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let unusable = |why| IncomingAddress::Unusable {
            entry: entry.to_string(),
            why,
        };
        let parsed = if entry.eq_ignore_ascii_case("AUTO") {
            Err("a node that does not know its own address: set wsrep_node_incoming_address on it, or give it with --to")
        } else {
            split_host_port(entry).ok_or("not a host:port")
        };
        let address = match parsed {
            Ok((host, port)) => {
                let host = if matches!(host, "0.0.0.0" | "::" | "") {
                    given_host.to_string()
                } else {
                    host.to_string()
                };
                IncomingAddress::Node { host, port }
            }
            Err(why) => unusable(why),
        };
        if !out.contains(&address) {
            out.push(address);
        }
    }
    out
}

/// `host:port`, `[v6]:port`, or a bare host (the default port).
fn split_host_port(entry: &str) -> Option<(&str, u16)> {
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(port) => Some((host, port.parse().ok()?)),
            None if after.is_empty() => Some((host, DEFAULT_PORT)),
            None => None,
        };
    }
    match entry.matches(':').count() {
        0 => Some((entry, DEFAULT_PORT)),
        1 => {
            let (host, port) = entry.split_once(':')?;
            Some((host, port.parse().ok()?))
        }
        // An IPv6 address without brackets: where its port starts is not said.
        _ => None,
    }
}

/// The nodes [`discover_nodes`] found, and what it says of them.
#[derive(Debug, Clone)]
pub(crate) struct Discovered {
    /// The nodes given, then those found: every node but the target.
    pub nodes: Vec<ConnSpec>,
    /// `Galera nodes used: …`, for the user.
    pub said: String,
}

/// What a node reached at an address of `wsrep_incoming_addresses` is.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// A node of the cluster not kept yet.
    New,
    /// A node kept already, under another address.
    Known,
    LeftOut(&'static str),
}

/// Judges the node `there` (its facts; None: not a Galera node) against
/// the cluster being discovered and the nodes `known` by `wsrep_gcomm_uuid`.
fn judge_found(cluster_uuid: &str, known: &[String], there: Option<&GaleraFacts>) -> Found {
    match there {
        None => Found::LeftOut("not a Galera node"),
        Some(g) if g.cluster_uuid != cluster_uuid => Found::LeftOut("a node of another cluster"),
        // A server without wsrep_gcomm_uuid: its address alone tells nodes apart.
        Some(g) if !g.node_uuid.is_empty() && known.contains(&g.node_uuid) => Found::Known,
        Some(_) => Found::New,
    }
}

/// The nodes of a Galera cluster found from one of them: the nodes given
/// (`target` and `given`, `--to`), then those of the target's
/// `wsrep_incoming_addresses` that answer, with the same user, password and
/// TLS as the target, as nodes of the same cluster (same
/// `wsrep_cluster_state_uuid`) and are not a node given under another name.
/// The line that says which are used and which left out, and why, comes
/// with them (said by the caller: `load` once its preflight has passed).
/// None when the target is not a Galera node.
pub(crate) fn discover_nodes(target: &ConnSpec, given: &[ConnSpec]) -> Result<Option<Discovered>> {
    let mut conn = target.connect("target")?;
    let Some(facts) = GaleraFacts::read(&mut conn)? else {
        return Ok(None);
    };
    let status = name_values(
        &mut conn,
        "SHOW GLOBAL STATUS LIKE 'wsrep_incoming_addresses'",
    )?;
    drop(conn);
    let value = status
        .get("wsrep_incoming_addresses")
        .cloned()
        .unwrap_or_default();
    // Nodes known by their own id, so that another name of one is not
    // taken for a new node.
    let mut known: Vec<String> = vec![facts.node_uuid.clone()];
    let mut endpoints: Vec<String> = vec![target.endpoint()];
    for node in given {
        endpoints.push(node.endpoint());
        if let Ok(Some(g)) = node
            .connect("target")
            .and_then(|mut c| GaleraFacts::read(&mut c))
        {
            known.push(g.node_uuid);
        }
    }
    let mut found = Vec::new();
    let mut left_out = Vec::new();
    for address in incoming_addresses(&value, &target.host) {
        let (host, port) = match address {
            IncomingAddress::Node { host, port } => (host, port),
            IncomingAddress::Unusable { entry, why } => {
                left_out.push(format!("{entry} ({why})"));
                continue;
            }
        };
        let mut spec = target.clone();
        spec.host = host;
        spec.port = port;
        spec.socket = None;
        // An address this client cannot reach must not hold the load up
        // for long.
        spec.connect_timeout = spec.connect_timeout.min(Duration::from_secs(5));
        if endpoints.contains(&spec.endpoint()) {
            continue;
        }
        let there = spec
            .connect("target")
            .and_then(|mut c| GaleraFacts::read(&mut c));
        match there {
            Ok(there) => match judge_found(&facts.cluster_uuid, &known, there.as_ref()) {
                Found::New => {
                    known.extend(there.map(|g| g.node_uuid));
                    endpoints.push(spec.endpoint());
                    spec.connect_timeout = target.connect_timeout;
                    found.push(spec);
                }
                Found::Known => {}
                Found::LeftOut(why) => left_out.push(format!("{} ({why})", spec.endpoint())),
            },
            Err(e) => left_out.push(format!(
                "{} ({})",
                spec.endpoint(),
                crate::errors::sentence(&e)
            )),
        }
    }
    let mut nodes: Vec<ConnSpec> = given.to_vec();
    nodes.extend(found.iter().cloned());
    let all: Vec<String> = std::iter::once(target)
        .chain(nodes.iter())
        .map(ConnSpec::endpoint)
        .collect();
    let mut line = format!(
        "Galera nodes used: {} ({} found in wsrep_incoming_addresses of {})",
        all.join(", "),
        found.len(),
        target.endpoint()
    );
    if !left_out.is_empty() {
        line.push_str(&format!("; not used: {}", left_out.join(", ")));
    }
    Ok(Some(Discovered { nodes, said: line }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incoming_addresses_are_read_as_the_servers_write_them() {
        let node = |h: &str, p| IncomingAddress::Node {
            host: h.to_string(),
            port: p,
        };
        // Three nodes bound to 127.0.0.1 without wsrep_node_incoming_address
        // (captured from this harness's cluster before it set one).
        assert!(matches!(
            &incoming_addresses("AUTO,AUTO,AUTO", "127.0.0.1")[..],
            [IncomingAddress::Unusable { entry, .. }] if entry == "AUTO"
        ));
        // With wsrep_node_incoming_address=127.0.0.1 (the port is the node's).
        assert_eq!(
            incoming_addresses(
                "127.0.0.1:41001,127.0.0.1:41002,127.0.0.1:41003",
                "127.0.0.1"
            ),
            vec![
                node("127.0.0.1", 41001),
                node("127.0.0.1", 41002),
                node("127.0.0.1", 41003)
            ]
        );
        // Nodes that listen on every interface: the host they were reached at.
        assert_eq!(
            incoming_addresses("0.0.0.0:3306, 0.0.0.0:3307,[::]:3308", "db1.example"),
            vec![
                node("db1.example", 3306),
                node("db1.example", 3307),
                node("db1.example", 3308)
            ]
        );
        // Several nodes on 0.0.0.0:3306 (one per host) are one address to try.
        assert_eq!(
            incoming_addresses("0.0.0.0:3306,0.0.0.0:3306", "db1"),
            vec![node("db1", 3306)]
        );
        // AUTO, IPv6, a bare host, and what cannot be read.
        let read = incoming_addresses("AUTO,[fd00::2]:3306,db3,fd00::4:3306,db5:x,", "db1");
        assert_eq!(read[1], node("fd00::2", 3306));
        assert_eq!(read[2], node("db3", 3306));
        for (i, entry) in [(0, "AUTO"), (3, "fd00::4:3306"), (4, "db5:x")] {
            assert!(
                matches!(&read[i], IncomingAddress::Unusable { entry: e, .. } if e == entry),
                "{read:?}"
            );
        }
        assert_eq!(read.len(), 5);
        assert_eq!(incoming_addresses("", "db1"), vec![]);
    }

    #[test]
    fn a_discovered_node_is_kept_once_and_only_from_the_same_cluster() {
        let mut g = GaleraFacts::of(
            &[("wsrep_on".to_string(), "ON".to_string())].into(),
            &[
                ("wsrep_cluster_state_uuid".to_string(), "c1".to_string()),
                ("wsrep_gcomm_uuid".to_string(), "n2".to_string()),
            ]
            .into(),
        )
        .unwrap();
        let known = vec!["n1".to_string()];
        assert_eq!(judge_found("c1", &known, Some(&g)), Found::New);
        assert_eq!(
            judge_found("c1", &["n2".to_string()], Some(&g)),
            Found::Known
        );
        assert_eq!(
            judge_found("c2", &known, Some(&g)),
            Found::LeftOut("a node of another cluster")
        );
        assert_eq!(
            judge_found("c1", &known, None),
            Found::LeftOut("not a Galera node")
        );
        g.node_uuid.clear();
        assert_eq!(judge_found("c1", &[String::new()], Some(&g)), Found::New);
    }
}
