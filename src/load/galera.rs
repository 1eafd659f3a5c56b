//! A Galera cluster as the target: what the preflight reads (`wsrep_on`,
//! the cluster's size and state, its write-set limits), what it requires,
//! and what the load reports (flow control) and checks after (the
//! AUTO_INCREMENT counter on every node).
//!
//! Things Galera does that shape this:
//! - Every transaction is replicated at COMMIT as one write set, certified on
//!   every node: a chunk's transaction must fit `wsrep_max_ws_rows` and
//!   `wsrep_max_ws_size`, or the node refuses it once the rows are sent
//!   (1180 "wsrep_max_ws_rows exceeded" from the LOAD DATA; 1105 "Maximum
//!   writeset size exceeded" at COMMIT). Splitting a chunk into several
//!   transactions would break "one chunk, one transaction, one journal line"
//!   that a rerun's exactly-once rests on, so such a chunk is refused before
//!   anything moves instead.
//! - Only InnoDB is replicated: rows loaded into a MyISAM or Aria table stay
//!   on the node that took them.
//! - Galera needs `innodb_autoinc_lock_mode=2` and `binlog_format=ROW`.
//! - A node outside the Primary Component refuses statements (1047) and
//!   fails a commit it cannot replicate (1180): the loader waits for a node
//!   of the Primary Component (`loader::retry_kind`).
//! - Writers are paused by flow control while a node's receive queue is too
//!   long; `wsrep_flow_control_paused_ns` counts the time.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;
use serde::Serialize;

use crate::progress;
use crate::sql::{ident, qualified};

use super::plan::TablePlan;
use super::preflight::ServerFacts;
use super::session::Session;

/// What a Galera node says about itself and its cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GaleraFacts {
    /// `wsrep_node_name`.
    pub node: String,
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
    pub(super) fn read(conn: &mut Conn) -> Result<Option<GaleraFacts>> {
        let variables = name_values(conn, "SHOW GLOBAL VARIABLES LIKE 'wsrep%'")?;
        let status = name_values(conn, "SHOW GLOBAL STATUS LIKE 'wsrep%'")?;
        Ok(GaleraFacts::of(&variables, &status))
    }

    /// The pure part of [`GaleraFacts::read`].
    fn of(variables: &HashMap<String, String>, status: &HashMap<String, String>) -> Option<Self> {
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
    fn tighten(&mut self, other: &GaleraFacts) {
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

fn name_values(conn: &mut Conn, sql: &str) -> Result<HashMap<String, String>> {
    let rows: Vec<(String, Option<String>)> = conn.query(sql).with_context(|| sql.to_string())?;
    Ok(rows
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.unwrap_or_default()))
        .collect())
}

/// What the cluster itself must be for a load: problems (refuse) and
/// warnings (say and go on).
pub(super) fn cluster_findings(
    g: &GaleraFacts,
    autoinc_lock_mode: u32,
    binlog_format: &str,
) -> (Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    if g.cluster_status != "Primary" || !g.ready {
        problems.push(format!(
            "Galera node {} is not in the cluster's Primary Component (wsrep_cluster_status = {}, \
             wsrep_ready = {}): it takes no writes; load through a node of the Primary Component",
            g.node,
            g.cluster_status,
            if g.ready { "ON" } else { "OFF" }
        ));
    } else if g.local_state != "Synced" {
        warnings.push(format!(
            "Galera node {} is {} (wsrep_local_state_comment), not Synced: it may lag or pause the load",
            g.node, g.local_state
        ));
    }
    if autoinc_lock_mode != 2 {
        problems.push(format!(
            "Galera needs innodb_autoinc_lock_mode=2 (node {} has {autoinc_lock_mode}): set it in the \
             server's configuration and restart the node",
            g.node
        ));
    }
    if !binlog_format.eq_ignore_ascii_case("ROW") {
        problems.push(format!(
            "Galera needs binlog_format=ROW (node {} has {binlog_format}): SET GLOBAL binlog_format=ROW",
            g.node
        ));
    }
    (problems, warnings)
}

/// Galera replicates only InnoDB: a table in another engine would hold the
/// rows on the node that loaded them and nowhere else.
pub(super) fn engine_problem(label: &str, engine: Option<&str>) -> Option<String> {
    let engine = engine?;
    if engine.eq_ignore_ascii_case("InnoDB") {
        return None;
    }
    Some(format!(
        "{label} is {engine}, and Galera replicates only InnoDB tables: its rows would stay on \
         the node that loads them; ALTER TABLE {label} ENGINE=InnoDB first"
    ))
}

/// The `ENGINE=` of a `CREATE TABLE` (what schema.sql would create).
pub(super) fn schema_engine(create: &str) -> Option<String> {
    let at = create.rfind(") ENGINE=")? + ") ENGINE=".len();
    let name: String = create[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Whether one chunk's transaction fits the cluster's write-set limits. The
/// write set holds each row's image and keys; its size is estimated by the
/// chunk's CSV bytes (the rows as text), which is close for most tables.
pub(super) fn write_set_problem(
    g: &GaleraFacts,
    label: &str,
    chunk: &str,
    rows: u64,
    csv_bytes: u64,
) -> Option<String> {
    let why = |what: String, limit: &str, fitting: u64| {
        format!(
            "{chunk} of {label} would be one transaction of {what}, over the cluster's {limit}: \
             a chunk is one transaction (a rerun's exactly-once rests on it), so nothing was \
             split; export again with --chunk-rows {fitting} or less, or raise {limit} \
             (SET GLOBAL on every node)"
        )
    };
    if g.max_ws_rows > 0 && rows > g.max_ws_rows {
        let limit = format!("wsrep_max_ws_rows ({})", g.max_ws_rows);
        return Some(why(format!("{rows} rows"), &limit, g.max_ws_rows));
    }
    if g.max_ws_size > 0 && csv_bytes > g.max_ws_size {
        // Rows that fit, with a quarter spare for the write set's keys.
        let fitting = (rows as u128 * g.max_ws_size as u128 * 3 / 4 / csv_bytes as u128) as u64;
        let limit = format!("wsrep_max_ws_size ({} bytes)", g.max_ws_size);
        return Some(why(
            format!("about {csv_bytes} bytes"),
            &limit,
            fitting.max(1),
        ));
    }
    None
}

/// Nodes given together (`--to` more than once) must be of one cluster.
pub(super) fn cluster_mismatch(
    first: &str,
    g0: Option<&GaleraFacts>,
    other: &str,
    g: Option<&GaleraFacts>,
) -> Option<String> {
    match (g0, g) {
        (Some(a), Some(b)) if a.cluster_uuid == b.cluster_uuid => None,
        (Some(a), Some(b)) => Some(format!(
            "{other} is not a node of the cluster of {first} (wsrep_cluster_state_uuid {} there, {} here): \
             give --to more than once only for the nodes of one Galera cluster",
            a.cluster_uuid, b.cluster_uuid
        )),
        _ => Some(format!(
            "--to is given more than once, and {} is not a Galera node: several --to name the \
             nodes of one Galera cluster",
            if g0.is_none() { first } else { other }
        )),
    }
}

/// The nodes given with several `--to`, checked to be of the target's
/// cluster before anything moves; their endpoints, the target's first. A
/// node that cannot be reached now is said and kept: it may come back.
/// `facts` takes the tightest write-set limits of all of them.
pub(super) fn check_nodes(session: &Session, facts: &mut ServerFacts) -> Result<Vec<String>> {
    let mut nodes = session.all_nodes();
    let Some(target) = nodes.next() else {
        return Ok(Vec::new());
    };
    let mut endpoints = vec![target.endpoint()];
    let mut problems = Vec::new();
    for node in nodes {
        endpoints.push(node.endpoint());
        let facts_there = match node
            .connect("target")
            .and_then(|mut c| GaleraFacts::read(&mut c))
        {
            Ok(g) => g,
            Err(e) => {
                progress::notice(&format!(
                    "myspool load: warning: Galera node {} cannot be reached now ({}); its jobs load through the other nodes",
                    node.endpoint(),
                    crate::errors::sentence(&e)
                ));
                continue;
            }
        };
        let mismatch = cluster_mismatch(
            &target.endpoint(),
            facts.galera.as_ref(),
            &node.endpoint(),
            facts_there.as_ref(),
        );
        match (&mut facts.galera, facts_there) {
            (Some(g), Some(there)) if mismatch.is_none() => g.tighten(&there),
            _ => problems.extend(mismatch),
        }
    }
    if !problems.is_empty() {
        bail!("nothing was loaded: {}", problems.join("; "));
    }
    Ok(endpoints)
}

/// After the load, each node's AUTO_INCREMENT counter of each loaded table
/// with an AUTO_INCREMENT column, against the largest id (read with
/// `wsrep_sync_wait`, set by the session): the warnings.
pub(super) fn check_autoinc_counters(session: &Session, plans: &[TablePlan]) -> Vec<String> {
    let mut warnings = Vec::new();
    for node in session.all_nodes() {
        let Ok(mut conn) = node.connect("target") else {
            continue;
        };
        // Wait until this node has applied every chunk, whichever node took it.
        if conn.query_drop("SET SESSION wsrep_sync_wait = 1").is_err() {
            continue;
        }
        for plan in plans {
            let Some(column) = &plan.autoinc_column else {
                continue;
            };
            let next: Option<u64> = conn
                .exec_first(
                    "SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                    (&plan.target_db, &plan.desc.table),
                )
                .ok()
                .flatten()
                .flatten();
            let max: Option<u64> = conn
                .query_first(format!(
                    "SELECT MAX({}) FROM {}",
                    ident(column),
                    qualified(&plan.target_db, &plan.desc.table)
                ))
                .ok()
                .flatten()
                .flatten();
            warnings.extend(autoinc_counter_problem(
                &node.endpoint(),
                &plan.label(),
                column,
                next,
                max,
            ));
        }
    }
    warnings
}

/// What the load reports about the cluster once its chunks are in: the
/// summary (flow control since `paused_before` on the control node), and
/// the warnings of [`check_autoinc_counters`], each said now too.
pub(super) fn after_load(
    session: &Session,
    control: &mut Conn,
    plans: &[TablePlan],
    g: &GaleraFacts,
    nodes: Vec<String>,
    paused_before: Option<u64>,
    seconds: f64,
) -> (GaleraSummary, Vec<String>) {
    let warnings = check_autoinc_counters(session, plans);
    for warning in &warnings {
        progress::notice(&format!("myspool load: warning: {warning}"));
    }
    let paused = flow_control_paused_ns(control)
        .unwrap_or(0)
        .saturating_sub(paused_before.unwrap_or(0));
    let summary = GaleraSummary::new(nodes, g.cluster_size, paused, seconds);
    (summary, warnings)
}

/// Flow control on one node: the time writers were paused so far.
pub(super) fn flow_control_paused_ns(conn: &mut Conn) -> Option<u64> {
    let status = name_values(
        conn,
        "SHOW GLOBAL STATUS LIKE 'wsrep_flow_control_paused_ns'",
    )
    .ok()?;
    status.get("wsrep_flow_control_paused_ns")?.parse().ok()
}

/// What Galera did during the load, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct GaleraSummary {
    /// The nodes the jobs loaded through.
    pub nodes: Vec<String>,
    pub cluster_size: u32,
    /// Seconds the control node's writers were paused by flow control
    /// during the load (`wsrep_flow_control_paused_ns`).
    pub flow_control_paused_seconds: f64,
    /// The same, as a share of the load's time (0..1).
    pub flow_control_paused: f64,
}

impl GaleraSummary {
    pub(super) fn new(nodes: Vec<String>, size: u32, paused_ns: u64, seconds: f64) -> Self {
        let paused = paused_ns as f64 / 1e9;
        GaleraSummary {
            nodes,
            cluster_size: size,
            flow_control_paused_seconds: paused,
            flow_control_paused: if seconds > 0.0 {
                (paused / seconds).min(1.0)
            } else {
                0.0
            },
        }
    }
}

impl GaleraSummary {
    /// One line for the summary.
    pub fn describe(&self) -> String {
        format!(
            "Galera: {}-node cluster, loaded through {}; flow control paused writes for {:.1} s ({:.0}% of the load)",
            self.cluster_size,
            self.nodes.join(", "),
            self.flow_control_paused_seconds,
            self.flow_control_paused * 100.0
        )
    }
}

/// After a load with `wsrep_auto_increment_control`, the next value a node
/// hands out must be past every loaded id: a warning when `next` (the
/// table's AUTO_INCREMENT on that node) is not above `max` (the largest id).
pub(super) fn autoinc_counter_problem(
    node: &str,
    label: &str,
    column: &str,
    next: Option<u64>,
    max: Option<u64>,
) -> Option<String> {
    let max = max?;
    match next {
        Some(next) if next > max => None,
        _ => Some(format!(
            "on Galera node {node}, the AUTO_INCREMENT counter of {label} ({}) is not above the largest \
             {column} loaded ({max}): new rows there would collide; ALTER TABLE {label} AUTO_INCREMENT = {}",
            next.map_or("unknown".to_string(), |n| n.to_string()),
            max + 1
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> GaleraFacts {
        let variables: HashMap<String, String> = [
            ("wsrep_on", "ON"),
            ("wsrep_node_name", "node2"),
            ("wsrep_max_ws_rows", "0"),
            ("wsrep_max_ws_size", "2147483647"),
            ("wsrep_trx_fragment_size", "0"),
            ("wsrep_auto_increment_control", "ON"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let status: HashMap<String, String> = [
            ("wsrep_cluster_state_uuid", "u1"),
            ("wsrep_cluster_size", "3"),
            ("wsrep_cluster_status", "Primary"),
            ("wsrep_local_state_comment", "Synced"),
            ("wsrep_ready", "ON"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        GaleraFacts::of(&variables, &status).unwrap()
    }

    #[test]
    fn a_server_without_wsrep_on_is_not_galera() {
        let off: HashMap<String, String> = [("wsrep_on".to_string(), "OFF".to_string())].into();
        assert_eq!(GaleraFacts::of(&off, &HashMap::new()), None);
        assert_eq!(GaleraFacts::of(&HashMap::new(), &HashMap::new()), None);
        let g = facts();
        assert_eq!((g.cluster_size, g.ready, g.max_ws_rows), (3, true, 0));
        assert_eq!(
            g.describe(),
            "Galera node node2 of a 3-node cluster (Primary, Synced)"
        );
    }

    #[test]
    fn a_synced_primary_node_in_mode_2_with_row_is_fine() {
        assert_eq!(cluster_findings(&facts(), 2, "ROW"), (vec![], vec![]));
    }

    #[test]
    fn a_node_outside_the_primary_component_or_wrong_settings_refuse() {
        let mut g = facts();
        g.cluster_status = "non-Primary".into();
        g.ready = false;
        let (problems, _) = cluster_findings(&g, 1, "MIXED");
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("non-Primary"));
        assert!(problems[1].contains("innodb_autoinc_lock_mode=2"));
        assert!(problems[2].contains("binlog_format=ROW"));
        let mut donor = facts();
        donor.local_state = "Donor/Desynced".into();
        let (problems, warnings) = cluster_findings(&donor, 2, "ROW");
        assert!(problems.is_empty());
        assert!(warnings[0].contains("Donor/Desynced"));
    }

    #[test]
    fn only_innodb_is_replicated() {
        assert_eq!(engine_problem("d.t", Some("InnoDB")), None);
        assert_eq!(engine_problem("d.t", None), None);
        for engine in ["MyISAM", "Aria"] {
            let p = engine_problem("d.t", Some(engine)).unwrap();
            assert!(p.starts_with(&format!("d.t is {engine}")), "{p}");
        }
        assert_eq!(
            schema_engine("CREATE TABLE `t` (\n  `id` int\n) ENGINE=Aria DEFAULT CHARSET=utf8mb4")
                .as_deref(),
            Some("Aria")
        );
        assert_eq!(schema_engine("CREATE TABLE t (id int)"), None);
    }

    #[test]
    fn a_chunk_over_the_write_set_limits_is_refused_with_a_way_out() {
        let mut g = facts();
        assert_eq!(
            write_set_problem(&g, "d.t", "chunk 000001", 50_000, 5 << 20),
            None
        );
        g.max_ws_rows = 1000;
        let p = write_set_problem(&g, "d.t", "chunk 000001", 1001, 10).unwrap();
        assert!(p.contains("wsrep_max_ws_rows (1000)"), "{p}");
        assert!(p.contains("--chunk-rows 1000"), "{p}");
        assert_eq!(write_set_problem(&g, "d.t", "chunk 000001", 1000, 10), None);
        g.max_ws_rows = 0;
        g.max_ws_size = 1_000_000;
        let p = write_set_problem(&g, "d.t", "chunk 000001", 4000, 2_000_000).unwrap();
        assert!(p.contains("wsrep_max_ws_size (1000000 bytes)"), "{p}");
        assert!(p.contains("--chunk-rows 1500"), "{p}");
    }

    #[test]
    fn the_tightest_limits_of_the_nodes_hold() {
        let mut a = facts();
        let mut b = facts();
        b.max_ws_rows = 200;
        b.max_ws_size = 1 << 20;
        a.tighten(&b);
        assert_eq!((a.max_ws_rows, a.max_ws_size), (200, 1 << 20));
        b.max_ws_rows = 0;
        b.max_ws_size = 1 << 30;
        a.tighten(&b);
        assert_eq!((a.max_ws_rows, a.max_ws_size), (200, 1 << 20));
    }

    #[test]
    fn several_targets_must_be_nodes_of_one_cluster() {
        let a = facts();
        let mut b = facts();
        assert_eq!(cluster_mismatch("n1", Some(&a), "n2", Some(&b)), None);
        b.cluster_uuid = "u2".into();
        assert!(cluster_mismatch("n1", Some(&a), "n2", Some(&b))
            .unwrap()
            .contains("n2 is not a node of the cluster of n1"));
        assert!(cluster_mismatch("n1", Some(&a), "n2", None)
            .unwrap()
            .contains("n2 is not a Galera node"));
    }

    #[test]
    fn the_counter_must_be_past_the_loaded_ids() {
        assert_eq!(
            autoinc_counter_problem("n", "d.t", "id", Some(801), Some(800)),
            None
        );
        assert_eq!(autoinc_counter_problem("n", "d.t", "id", None, None), None);
        let p = autoinc_counter_problem("n", "d.t", "id", Some(700), Some(800)).unwrap();
        assert!(p.contains("AUTO_INCREMENT = 801"), "{p}");
    }

    #[test]
    fn flow_control_is_a_share_of_the_load() {
        let s = GaleraSummary::new(vec!["a".into()], 3, 500_000_000, 2.0);
        assert_eq!(s.flow_control_paused_seconds, 0.5);
        assert_eq!(s.flow_control_paused, 0.25);
    }
}
