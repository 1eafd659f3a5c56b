//! Throttling: `load --max-replica-lag` pauses while a real replica of the
//! target lags (made to lag on purpose) and resumes once it caught up;
//! `export --max-rate` is not faster than its limit.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::*;

/// `t`: 200 rows dumped in 10 chunks: (source db, dump).
fn dumped_t(src: &Server, prefix: &str) -> (String, tempfile::TempDir) {
    dumped_db(
        src,
        prefix,
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(30));
         INSERT INTO t SELECT seq, CONCAT('row', seq) FROM seq_1_to_200;",
        "t",
        20,
    )
}

/// Waits for the next stderr line of the load that contains `needle`.
#[track_caller]
fn line_with(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => continue,
            Err(e) => panic!("no line with {needle:?} from the load: {e}"),
        }
    }
}

fn count(server: &Server, db: &str) -> u64 {
    server
        .scalar(&format!("SELECT COUNT(*) FROM `{db}`.t"))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The replica is made to lag (`lag` does it), the load started; it must
/// pause before loading anything, stay paused, and finish once `catch_up`
/// has let the replica catch up.
fn load_waits_for_the_replica(
    prefix: &str,
    lag: impl Fn(&Server, &Server),
    catch_up: impl Fn(&Server),
    reason: &str,
) {
    let src = source_server();
    let (primary, replica) = replicated_pair();
    let (_, dir) = dumped_t(&src, prefix);
    let into = primary.fresh_db(prefix);
    primary.query(&format!(
        "CREATE TABLE `{into}`.t (id INT PRIMARY KEY, v VARCHAR(30))"
    ));
    wait_for_replica(&replica);
    lag(&primary, &replica);
    let args = load_args(
        dir.path(),
        &primary,
        &[
            "--into",
            &into,
            "--max-replica-lag",
            "1",
            "--replica",
            &replica.url(),
            "--json",
        ],
    );
    let mut load = spawn_myspool(&args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "10")]);
    let stderr = load.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let paused = line_with(&lines, "pausing");
    assert!(paused.contains(reason), "{paused}");
    // Paused: nothing is loaded while the replica lags, however long we
    // look (a few rounds of the load's own polling).
    for _ in 0..5 {
        assert_eq!(count(&primary, &into), 0);
        assert!(
            load.try_wait().unwrap().is_none(),
            "the load ended while paused"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    catch_up(&replica);
    let resumed = line_with(&lines, "resuming");
    assert!(resumed.contains("within 1 s"), "{resumed}");
    let out = load.wait_with_output().unwrap();
    reader.join().unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    let summary = json(&out);
    assert_eq!(summary["rows"], 200);
    assert!(
        summary["replica_pauses"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    assert_eq!(count(&primary, &into), 200);
    wait_for_replica(&replica);
    assert_eq!(count(&replica, &into), 200);
}

#[test]
fn the_load_pauses_while_a_replica_lags_more_than_the_limit_and_resumes_after() {
    load_waits_for_the_replica(
        "lagging",
        |primary, replica| {
            // Events wait an hour on the replica: its lag grows from the
            // first one on.
            replica.set_replica_delay(3600);
            primary.query("CREATE DATABASE lag_marker; DROP DATABASE lag_marker");
            wait_until(Duration::from_secs(30), "the replica to lag 2 s", || {
                replica.replica_lag().is_some_and(|l| l >= 2)
            });
        },
        |replica| replica.set_replica_delay(0),
        "lags",
    );
}

#[test]
fn a_stopped_replica_makes_the_load_wait() {
    load_waits_for_the_replica(
        "stopped",
        |_, replica| replica.query("STOP SLAVE SQL_THREAD"),
        |replica| replica.query("START SLAVE SQL_THREAD"),
        "replication stopped",
    );
}

#[test]
fn replica_options_need_each_other_and_a_replica() {
    let src = source_server();
    let dst = target_server();
    let (_, dir) = dumped_t(&src, "replicaopts");
    let into = dst.fresh_db("replicaopts");
    let out = myspool(&load_args(
        dir.path(),
        &dst,
        &["--into", &into, "--max-replica-lag", "5"],
    ));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--replica"), "{}", stderr(&out));
    // The target is no replica.
    let out = myspool(&load_args(
        dir.path(),
        &dst,
        &[
            "--into",
            &into,
            "--max-replica-lag",
            "5",
            "--replica",
            &dst.url(),
        ],
    ));
    let err = assert_one_line_error(&out);
    assert!(err.contains("is not a replica"), "{err}");
    assert_eq!(
        dst.scalar(&format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{into}'"
        ))
        .as_deref(),
        Some("0")
    );
}

/// The average rate is asserted only from above: a loaded machine may make
/// the export slower than its limit, never faster.
#[test]
fn export_max_rate_holds_the_average_to_the_limit() {
    let src = source_server();
    let db = db_with(
        &src,
        "maxrate",
        "CREATE TABLE t (id INT PRIMARY KEY, v CHAR(200));
         INSERT INTO t SELECT seq, REPEAT('x', 200) FROM seq_1_to_16000;",
    );
    let dir = tempfile::tempdir().unwrap();
    let limit = 1u64 << 20;
    let out = myspool(&export_args(
        &src,
        &format!("{db}.t"),
        dir.path(),
        &["--max-rate", "1M", "--chunk-rows", "1000", "--json"],
    ));
    assert_success(&out);
    let summary = json(&out);
    let csv = summary["csv_bytes"].as_u64().unwrap();
    let seconds = summary["seconds"].as_f64().unwrap();
    assert!(csv > 3 * limit, "a run of a few seconds: {csv} bytes");
    let rate = csv as f64 / seconds;
    assert!(
        rate <= limit as f64 * 1.1,
        "{rate:.0} B/s over {seconds:.2} s, limit {limit}"
    );
}

#[test]
fn export_max_rate_takes_units_and_refuses_nonsense() {
    let src = source_server();
    let dir = tempfile::tempdir().unwrap();
    let out = myspool(&export_args(
        &src,
        "mysql.user",
        dir.path(),
        &["--max-rate", "10X"],
    ));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("--max-rate"), "{err}");
    assert!(err.contains("K, M or G"), "{err}");
}

/// `Threads_connected` on `server` now.
fn threads_connected(server: &Server) -> u64 {
    server
        .scalar(
            "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'THREADS_CONNECTED'",
        )
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn the_export_pauses_while_its_condition_holds_on_the_source_and_resumes_after() {
    // A source of its own: no other test's connections come and go.
    let src = Server::start(&[]);
    let db = db_with(
        &src,
        "pausewhen",
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(30));
         INSERT INTO t SELECT seq, CONCAT('row', seq) FROM seq_1_to_200;",
    );
    // The condition is made true on purpose: 20 connections held open,
    // against a limit 15 above the count without them (the export's own
    // few connections stay below it).
    let limit = threads_connected(&src) + 15;
    let crowd: Vec<mysql::Conn> = (0..20).map(|_| src.conn()).collect();
    let dir = tempfile::tempdir().unwrap();
    let when = format!("Threads_connected>={limit}");
    let args = export_args(
        &src,
        &format!("{db}.t"),
        dir.path(),
        &["--pause-when", &when, "--chunk-rows", "20", "--json"],
    );
    let mut export = spawn_myspool(&args, &[]);
    let stderr = export.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let paused = line_with(&lines, "pausing");
    assert!(paused.contains("Threads_connected is"), "{paused}");
    for _ in 0..3 {
        assert!(
            export.try_wait().unwrap().is_none(),
            "the export ended while paused"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let m = dumps::manifest(dir.path());
    let log = dir.path().join(&m.tables[0].dir).join("export.log");
    assert!(
        std::fs::read_to_string(&log).unwrap_or_default().is_empty(),
        "a chunk was exported while paused"
    );
    drop(crowd);
    let resumed = line_with(&lines, "resuming");
    assert!(resumed.contains("no longer holds"), "{resumed}");
    let out = export.wait_with_output().unwrap();
    reader.join().unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    let summary = json(&out);
    assert_eq!(summary["rows"], 200);
    assert!(summary["pauses"].as_u64().unwrap() >= 1, "{summary}");
    assert_eq!(
        dumps::table_rows(dir.path(), &db, "t"),
        src.query_rows(&format!("SELECT * FROM `{db}`.t ORDER BY id"))
    );
}

#[test]
fn a_pause_condition_on_a_variable_the_source_lacks_is_refused_before_anything_is_written() {
    let src = source_server();
    let db = db_with(&src, "pausebad", "CREATE TABLE t (id INT PRIMARY KEY);");
    let dir = tempfile::tempdir().unwrap();
    let args = export_args(
        &src,
        &format!("{db}.t"),
        dir.path(),
        &["--pause-when", "No_such_status>1"],
    );
    let err = assert_one_line_error(&myspool(&args));
    assert!(
        err.contains("no global status variable No_such_status"),
        "{err}"
    );
    assert!(!dir.path().join("manifest.json").exists());
    let bad = export_args(
        &src,
        &format!("{db}.t"),
        dir.path(),
        &["--pause-when", "Threads_running<4"],
    );
    assert!(!myspool(&bad).status.success());
}

#[test]
fn without_replica_urls_the_replicas_the_target_lists_are_watched() {
    let src = source_server();
    let (primary, replica) = replicated_pair();
    let (_, dir) = dumped_t(&src, "discover");
    let into = primary.fresh_db("discover");
    primary.query(&format!(
        "CREATE TABLE `{into}`.t (id INT PRIMARY KEY, v VARCHAR(30))"
    ));
    wait_for_replica(&replica);
    // The primary lists its replica (MariaDB 10.5+ lists every replica,
    // by the address it connected from).
    let hosts = primary.query_strings("SHOW SLAVE HOSTS");
    eprintln!("SHOW SLAVE HOSTS: {hosts:?}");
    replica.query("STOP SLAVE SQL_THREAD");
    // The library (the command line asks for --replica with
    // --max-replica-lag for now).
    let mut opts = load_into(&primary, dir.path(), &into);
    opts.max_replica_lag = Some(1);
    let load = std::thread::spawn(move || myspool::load::load(&opts));
    // Paused: nothing is loaded while the replica's SQL thread is stopped.
    for _ in 0..5 {
        assert_eq!(count(&primary, &into), 0);
        assert!(!load.is_finished(), "the load ended while paused");
        std::thread::sleep(Duration::from_millis(300));
    }
    replica.query("START SLAVE SQL_THREAD");
    let summary = load.join().unwrap().expect("the load");
    assert_eq!(summary.rows, 200);
    assert!(summary.replica_pauses >= 1);
    wait_for_replica(&replica);
    assert_eq!(count(&replica, &into), 200);
}
