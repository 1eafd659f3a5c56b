//! Loading into a 3-node Galera cluster (`common::galera`, one cluster shared
//! by every test here, each test in its own databases): spread over the
//! three nodes, the preflight's Galera checks, and faults — a node killed
//! mid-load and restarted, myspool killed mid-load and run again.

use std::path::Path;
use std::time::Duration;

use crate::common::galera::{cluster, cluster_alone, Cluster};
use crate::common::*;

/// A source table `t` of `rows` rows with an AUTO_INCREMENT key, dumped in
/// chunks of `chunk_rows`.
fn dumped_t(prefix: &str, rows: u64, chunk_rows: u64) -> (String, tempfile::TempDir) {
    dumped_db(
        &source_server(),
        prefix,
        &format!(
            "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(40), n INT);
             INSERT INTO t SELECT seq * 3, CONCAT('row ', seq), seq % 7 FROM seq_1_to_{rows};"
        ),
        "t",
        chunk_rows,
    )
}

/// `myspool load` of `dir` through every node of `c`, and `more`.
fn load_through_all(c: &Cluster, dir: &Path, more: &[&str]) -> Vec<String> {
    let mut args = vec!["load".to_string(), "--dir".into(), path_arg(dir)];
    args.extend(c.to_args());
    args.extend(more.iter().map(|s| s.to_string()));
    args
}

/// Every node holds what the source holds (after the causality wait).
#[track_caller]
fn assert_every_node_holds(c: &Cluster, db: &str) {
    c.sync_all();
    for node in &c.nodes {
        assert_same_table(&source_server(), db, node, db, "t", "id");
    }
}

/// Chunks the journals in `dir` record committed so far.
fn committed(dir: &Path) -> usize {
    count_in_files(dir, "load@", "\"event\":\"committed\"")
}

fn wsrep_local_commits(c: &Cluster) -> Vec<u64> {
    c.nodes
        .iter()
        .map(|n| n.query_strings("SHOW STATUS LIKE 'wsrep_local_commits'")[0][1].clone())
        .map(|v| v.unwrap().parse().unwrap())
        .collect()
}

#[test]
fn the_cluster_replicates_between_its_nodes() {
    let c = cluster();
    let db = c.nodes[0].fresh_db("gal_harness");
    c.nodes[1].query(&format!(
        "CREATE TABLE `{db}`.t (id INT PRIMARY KEY); INSERT INTO `{db}`.t VALUES (1), (2)"
    ));
    c.sync_all();
    for node in &c.nodes {
        assert_eq!(count(node, &format!("`{db}`.t")), 2);
        let size = node.query_strings("SHOW STATUS LIKE 'wsrep_cluster_size'");
        assert_eq!(size[0][1].as_deref(), Some("3"));
    }
}

#[test]
fn jobs_spread_over_the_nodes_and_every_node_ends_identical() {
    let (db, dir) = dumped_t("gal_spread", 6000, 500);
    let c = cluster();
    let before = wsrep_local_commits(&c);
    let out = myspool(&load_through_all(
        &c,
        dir.path(),
        &["--jobs", "3", "--json"],
    ));
    assert_success(&out);
    let err = stderr(&out);
    assert!(
        err.contains("the target is Galera node node1 of a 3-node cluster (Primary, Synced)"),
        "{err}"
    );
    let summary = json(&out);
    let galera = &summary["galera"];
    assert_eq!(galera["cluster_size"], 3, "{summary}");
    assert_eq!(galera["nodes"].as_array().unwrap().len(), 3, "{summary}");
    assert!(galera["flow_control_paused_seconds"].as_f64().is_some());
    assert_eq!(
        summary["warnings"].as_array().unwrap().len(),
        0,
        "{summary}"
    );
    let after = wsrep_local_commits(&c);
    for n in 0..3 {
        assert!(after[n] > before[n], "no chunk committed through node {n}");
    }
    // verify of each node right away: its reads wait for the node to apply
    // what the others committed (wsrep_sync_wait).
    for node in &c.nodes {
        let verify = [
            "verify",
            "--dir",
            &path_arg(dir.path()),
            "--to",
            &node.url(),
        ];
        assert_success(&myspool(&verify));
    }
    assert_every_node_holds(&c, &db);
}

#[test]
fn a_myisam_table_is_refused_by_name_before_anything_moves() {
    let (db, dir) = dumped_t("gal_myisam", 100, 50);
    let c = cluster();
    c.nodes[0].query(&format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT AUTO_INCREMENT PRIMARY KEY, \
         v VARCHAR(40), n INT) ENGINE=MyISAM"
    ));
    let out = myspool(&load_args(dir.path(), &c.nodes[0], &["--jobs", "1"]));
    let err = assert_one_line_error(&out);
    assert!(
        err.contains(&format!(
            "{db}.t is MyISAM, and Galera replicates only InnoDB tables"
        )),
        "{err}"
    );
    assert_eq!(count(&c.nodes[0], &format!("`{db}`.t")), 0);
}

#[test]
fn a_chunk_over_wsrep_max_ws_rows_is_refused_before_anything_moves() {
    let (db, dir) = dumped_t("gal_ws_rows", 600, 300);
    let c = cluster_alone();
    // A node holds its own transactions to its own limit: node 2's counts.
    c.nodes[1].query("SET GLOBAL wsrep_max_ws_rows = 200");
    let out = myspool(&load_through_all(&c, dir.path(), &[]));
    c.nodes[1].query("SET GLOBAL wsrep_max_ws_rows = 0");
    let err = assert_one_line_error(&out);
    assert!(
        err.contains(&format!(
            "chunk 000001 of {db}.t would be one transaction of 300 rows, over the cluster's wsrep_max_ws_rows (200)"
        )),
        "{err}"
    );
    assert!(err.contains("--chunk-rows 200"), "{err}");
    assert_eq!(table_count(&c.nodes[0], &db), 0, "nothing may move");
}

#[test]
fn a_chunk_the_server_refuses_as_too_big_is_not_tried_again() {
    // As a node would refuse a chunk the preflight did not hold to its
    // limit: 1180 "wsrep_max_ws_rows exceeded", the code a node outside
    // the Primary Component also answers with, is not retried.
    let (db, dir) = dumped_t("gal_ws_server", 600, 300);
    let c = cluster_alone();
    let node = &c.nodes[0];
    node.query(&format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT AUTO_INCREMENT PRIMARY KEY, \
         v VARCHAR(40), n INT)"
    ));
    // Set after the preflight read it: the load is stopped by the server.
    let child = spawn_myspool(
        &load_args(dir.path(), node, &["--jobs", "1"]),
        &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "1000")],
    );
    // The journal's first line: the preflight is done, the first chunk
    // waits for its LOAD DATA.
    wait_until(Duration::from_secs(60), "the load's journal", || {
        count_in_files(dir.path(), "load@", "\"event\"") > 0
    });
    node.query("SET GLOBAL wsrep_max_ws_rows = 200");
    let out = child.wait_with_output().unwrap();
    node.query("SET GLOBAL wsrep_max_ws_rows = 0");
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("wsrep_max_ws_rows exceeded"), "{err}");
    assert!(!err.contains("retrying"), "{err}");
    assert_eq!(count(node, &format!("`{db}`.t")), 0);
}

#[test]
fn a_node_killed_mid_load_leaves_the_load_to_the_others_and_rejoins_identical() {
    let (db, dir) = dumped_t("gal_node_kill", 8000, 200);
    let mut c = cluster_alone();
    let args = load_through_all(&c, dir.path(), &["--jobs", "3"]);
    let child = spawn_myspool(&args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "40")]);
    wait_until(Duration::from_secs(60), "chunks to commit", || {
        committed(dir.path()) >= 6
    });
    c.kill(2);
    assert!(
        committed(dir.path()) < 40,
        "the load ended before the node was killed"
    );
    let out = child.wait_with_output().unwrap();
    assert_success(&out);
    // The job loading through node 3 lost its connection and went on
    // through another node.
    assert!(stderr(&out).contains("retrying"), "{}", stderr(&out));
    c.restart(2);
    assert_every_node_holds(&c, &db);
}

#[test]
fn myspool_killed_mid_load_into_the_cluster_reruns_exactly_once() {
    let (db, dir) = dumped_t("gal_kill9", 6000, 200);
    let c = cluster();
    let args = load_through_all(&c, dir.path(), &["--jobs", "3"]);
    let killed = kill_9_when(&args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "30")], || {
        committed(dir.path()) >= 5
    });
    assert!(killed, "the load ended before the kill");
    let mut rerun = args.clone();
    rerun.push("--json".into());
    let out = myspool(&rerun);
    assert_success(&out);
    let summary = json(&out);
    assert!(
        summary["chunks_skipped"].as_u64().unwrap() >= 5,
        "{summary}"
    );
    assert_eq!(summary["duplicates"], 0, "{summary}");
    assert_every_node_holds(&c, &db);
}

#[test]
fn a_node_cut_off_from_the_primary_component_is_left_and_the_load_finishes() {
    let (db, dir) = dumped_t("gal_isolate", 8000, 200);
    let c = cluster_alone();
    // Job 0 loads through node 1 (also the control node), job 1 through node 3.
    let args = [
        "load",
        "--dir",
        &path_arg(dir.path()),
        "--to",
        &c.nodes[0].url(),
        "--to",
        &c.nodes[2].url(),
        "--jobs",
        "2",
    ];
    let child = spawn_myspool(&args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "40")]);
    wait_until(Duration::from_secs(60), "chunks to commit", || {
        committed(dir.path()) >= 6
    });
    // Node 3 leaves the cluster's Primary Component (as behind a network
    // partition): it refuses statements (1047) and commits (1180).
    c.nodes[2].query("SET GLOBAL wsrep_provider_options = 'gmcast.isolate = 1'");
    assert!(committed(dir.path()) < 40, "the load ended before the cut");
    let out = child.wait_with_output().unwrap();
    c.nodes[2].query("SET GLOBAL wsrep_provider_options = 'gmcast.isolate = 0'");
    assert_success(&out);
    eprintln!("{}", stderr(&out));
    assert!(stderr(&out).contains("retrying"), "{}", stderr(&out));
    c.wait_synced_all();
    assert_every_node_holds(&c, &db);
}
