//! Binlog coordinates of an export, used as a user would: export while a
//! writer changes the table, load the dump into another server, replay the
//! source's binary log from the recorded position with `mariadb-binlog`,
//! and the target equals the source.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use mysql::prelude::Queryable;

use crate::common::*;

/// A private source with a row-based binary log (private: its binlog must
/// hold this test's writes only, to be replayed whole).
fn binlog_source() -> Server {
    Server::start(&["--log-bin", "--binlog-format=ROW"])
}

/// Changes `db.t` (inserts, updates, deletes, each committed alone) until
/// `stop` is set; returns how many statements it ran.
fn writer(src: &Server, db: &str, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    let mut conn = src.conn();
    let db = db.to_string();
    thread::spawn(move || {
        let mut n: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            let k = n * 7 % 3000 + 1;
            let sql = match n % 3 {
                0 => format!("INSERT INTO `{db}`.t VALUES ({}, {n}, 'new')", 10_000 + n),
                1 => format!("UPDATE `{db}`.t SET v = v + 1, note = 'changed' WHERE id = {k}"),
                _ => format!("DELETE FROM `{db}`.t WHERE id = {k}"),
            };
            conn.query_drop(sql).expect("the writer's statement");
            n += 1;
        }
        n
    })
}

/// Where a replay starts.
enum From<'a> {
    /// `mariadb-binlog --start-position=POS FILE LATER_FILES…`.
    Position(&'a str, u64),
    /// `mariadb-binlog --start-position=GTID ALL_FILES…` (each GTID is
    /// exclusive: the events after it).
    Gtid(&'a str),
}

/// The source's binlog from `from`, `| mariadb` onto `target`.
fn replay_binlog(src: &Server, from: From, target: &Server) {
    let first = match from {
        From::Position(file, _) => file,
        From::Gtid(_) => "",
    };
    let logs: Vec<String> = src
        .query_strings("SHOW BINARY LOGS")
        .into_iter()
        .filter_map(|r| r[0].clone())
        .filter(|name| name.as_str() >= first)
        .map(|name| path_arg(&src.datadir().join(name)))
        .collect();
    let start = match from {
        From::Position(_, position) => position.to_string(),
        From::Gtid(gtid) => gtid.to_string(),
    };
    let mut binlog = Command::new("mariadb-binlog")
        .arg(format!("--start-position={start}"))
        .args(&logs)
        .stdout(Stdio::piped())
        .spawn()
        .expect("running mariadb-binlog");
    let client = Command::new("mariadb")
        .args(["--host=127.0.0.1", "--user=root"])
        .arg(format!("--port={}", target.port()))
        .stdin(binlog.stdout.take().unwrap())
        .output()
        .expect("running mariadb");
    assert!(binlog.wait().unwrap().success(), "mariadb-binlog failed");
    assert!(
        client.status.success(),
        "replaying the binlog failed: {}",
        String::from_utf8_lossy(&client.stderr)
    );
}

/// Export `db.t` with `jobs` while the writer runs, load it, replay the
/// binlog from the manifest's position (or its GTID): the target equals
/// the source.
fn replay_proof(jobs: &str, read: &str, by_gtid: bool) {
    let src = binlog_source();
    let dst = target_server();
    let db = db_with(
        &src,
        "coords",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT, note VARCHAR(20));
         INSERT INTO t SELECT seq, seq, 'old' FROM seq_1_to_3000;",
    );
    let work = tempfile::tempdir().unwrap();
    let dump = work.path().join("dump");
    let stop = Arc::new(AtomicBool::new(false));
    let writing = writer(&src, &db, Arc::clone(&stop));
    // Slow chunks: the export takes a while, and the writer keeps committing
    // after the snapshot started.
    let out = myspool_env(
        &export_args(
            &src,
            &format!("{db}.t"),
            &dump,
            &["--jobs", jobs, "--chunk-rows", "200", "--json"],
        ),
        &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "30")],
    );
    // A few more changes after the export, also to be replayed.
    thread::sleep(std::time::Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let statements = writing.join().unwrap();
    assert_success(&out);
    let summary = json(&out);
    let coords = &summary["coordinates"];
    assert_eq!(coords["read"], read, "{coords}");
    let file = coords["binlog_file"].as_str().expect("a binlog file");
    let position = coords["binlog_position"].as_u64().expect("a position");
    assert!(
        coords["gtid"].as_str().is_some_and(|g| !g.is_empty()),
        "{coords}"
    );
    assert_eq!(coords["gtid_variable"], "gtid_binlog_pos");
    assert!(statements > 10, "the writer ran {statements} statements");

    assert_success(&myspool(&load_args(&dump, &dst, &[])));
    // The writer did commit after the snapshot: the dump alone is behind.
    assert_ne!(
        hex_rows(&dst, &db, "t", "id"),
        hex_rows(&src, &db, "t", "id"),
        "the export saw every change: nothing is left to replay"
    );
    let gtid = coords["gtid"].as_str().unwrap();
    let from = if by_gtid {
        From::Gtid(gtid)
    } else {
        From::Position(file, position)
    };
    replay_binlog(&src, from, &dst);
    assert_same_table(&src, &db, &dst, &db, "t", "id");

    // status shows the same coordinates.
    let status = stdout(&myspool(&["status", "--dir", &path_arg(&dump)]));
    assert!(
        status.contains(&format!("binlog coordinates: {file}:{position}")),
        "{status}"
    );
}

#[test]
fn synchronized_snapshots_record_the_position_to_replay_from() {
    replay_proof("2", "under_lock", false);
}

#[test]
fn the_recorded_gtid_position_replays_as_well() {
    replay_proof("2", "under_lock", true);
}

#[test]
fn a_single_snapshot_records_its_own_position_without_a_lock() {
    replay_proof("1", "binlog_snapshot", false);
}

/// The manifest's `coordinates`.
fn manifest_coordinates(dump: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dump.join("manifest.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["coordinates"].clone()
}

#[test]
fn a_source_without_binlog_records_none_and_says_why() {
    let src = source_server();
    let db = db_with(
        &src,
        "nobinlog",
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t SELECT seq FROM seq_1_to_10;",
    );
    let dump = tempfile::tempdir().unwrap();
    let out = myspool(&export_args(
        &src,
        &format!("{db}.t"),
        dump.path(),
        &["--jobs", "1"],
    ));
    assert_success(&out);
    assert!(
        stdout(&out).contains("binlog coordinates: none: the source writes no binary log"),
        "{}",
        stdout(&out)
    );
    let coords = manifest_coordinates(dump.path());
    assert!(coords["binlog_file"].is_null(), "{coords}");
    assert!(
        coords["none_because"]
            .as_str()
            .unwrap()
            .contains("log_bin is OFF"),
        "{coords}"
    );
}

#[test]
fn per_connection_snapshots_record_none_and_say_why() {
    let src = binlog_source();
    let db = db_with(
        &src,
        "perconn",
        "CREATE TABLE a (id INT PRIMARY KEY); CREATE TABLE b (id INT PRIMARY KEY);
         INSERT INTO a SELECT seq FROM seq_1_to_10; INSERT INTO b SELECT seq FROM seq_1_to_10;",
    );
    let dump = tempfile::tempdir().unwrap();
    let out = myspool(&export_args(
        &src,
        &format!("{db}.*"),
        dump.path(),
        &["--jobs", "2", "--consistency", "per-connection"],
    ));
    assert_success(&out);
    let coords = manifest_coordinates(dump.path());
    assert!(coords["binlog_position"].is_null(), "{coords}");
    assert!(
        coords["none_because"]
            .as_str()
            .unwrap()
            .contains("own snapshot"),
        "{coords}"
    );
}
