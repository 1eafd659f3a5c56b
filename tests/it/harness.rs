//! The test harness itself: real MariaDB servers start, take options, share,
//! isolate, and survive a crash with their committed data.

use crate::common::*;

#[test]
fn shared_server_answers_version() {
    let server = Server::shared(&[]);
    let version = server.scalar("SELECT VERSION()").expect("a version");
    assert!(
        version.contains("MariaDB"),
        "unexpected version {version:?}"
    );
    assert_eq!(
        server.url(),
        format!("mysql://root@127.0.0.1:{}", server.port())
    );
    assert!(
        server.socket().exists(),
        "unix socket {:?}",
        server.socket()
    );
    assert!(server.datadir().join("mysql").is_dir());
}

#[test]
fn shared_server_is_reused_for_the_same_options_in_any_order() {
    let a = Server::shared(&[
        "--log-bin",
        "--binlog-format=ROW",
        "--innodb-autoinc-lock-mode=2",
    ]);
    let b = Server::shared(&[
        "--innodb-autoinc-lock-mode=2",
        "--log-bin",
        "--binlog-format=ROW",
    ]);
    assert_eq!(a.port(), b.port());
    assert_ne!(a.port(), Server::shared(&[]).port());
}

#[test]
fn per_test_options_take_effect() {
    let server = Server::shared(&[
        "--innodb-autoinc-lock-mode=2",
        "--log-bin",
        "--binlog-format=ROW",
    ]);
    assert_eq!(
        server
            .scalar("SELECT @@innodb_autoinc_lock_mode")
            .as_deref(),
        Some("2")
    );
    assert_eq!(server.scalar("SELECT @@log_bin").as_deref(), Some("1"));
    assert_eq!(
        server.scalar("SELECT @@binlog_format").as_deref(),
        Some("ROW")
    );

    let server = Server::shared(&["--net-write-timeout=1"]);
    assert_eq!(
        server.scalar("SELECT @@net_write_timeout").as_deref(),
        Some("1")
    );
}

#[test]
fn local_infile_is_on_by_default_and_can_be_switched_off() {
    assert_eq!(
        Server::shared(&[])
            .scalar("SELECT @@local_infile")
            .as_deref(),
        Some("1")
    );
    let off = Server::shared(&["--local-infile=0"]);
    assert_eq!(off.scalar("SELECT @@local_infile").as_deref(), Some("0"));
}

#[test]
fn fresh_dbs_are_distinct_and_exist() {
    let server = Server::shared(&[]);
    let a = server.fresh_db("harness");
    let b = server.fresh_db("harness");
    assert_ne!(a, b);
    for db in [&a, &b] {
        let found = server.scalar(&format!(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'"
        ));
        assert_eq!(found.as_deref(), Some(db.as_str()));
    }
}

#[test]
fn query_rows_keep_nulls_and_bytes_exact() {
    let server = Server::shared(&[]);
    let db = db_with(
        &server,
        "rows",
        "CREATE TABLE t (id INT PRIMARY KEY, b VARBINARY(8), s VARCHAR(8));
         INSERT INTO t VALUES (1, 0x00FF0A, 'é'), (2, NULL, NULL)",
    );
    let rows = server.query_rows(&format!("SELECT id, b, s FROM `{db}`.t ORDER BY id"));
    assert_eq!(
        rows,
        vec![
            vec![
                Some(b"1".to_vec()),
                Some(vec![0x00, 0xFF, 0x0A]),
                Some("é".as_bytes().to_vec())
            ],
            vec![Some(b"2".to_vec()), None, None],
        ]
    );
    assert_eq!(
        server.query_strings(&format!("SELECT s FROM `{db}`.t ORDER BY id")),
        vec![vec![Some("é".to_string())], vec![None]]
    );
}

#[test]
#[should_panic(expected = "no_such_table")]
fn a_failing_statement_in_a_batch_panics_with_the_sql() {
    let server = Server::shared(&[]);
    server.query("SELECT 1; SELECT * FROM mysql.no_such_table");
}

#[test]
fn kill_then_restart_keeps_committed_data() {
    let mut server = Server::start(&[]);
    let port = server.port();
    server.query(
        "CREATE DATABASE crash;
         CREATE TABLE crash.t (id INT PRIMARY KEY, v VARCHAR(10)) ENGINE=InnoDB;
         INSERT INTO crash.t VALUES (1, 'one'), (2, 'two')",
    );

    server.kill();
    assert!(!server.is_running());
    assert!(
        server.datadir().join("crash").is_dir(),
        "datadir kept after kill"
    );

    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(
        server.scalar("SELECT COUNT(*) FROM crash.t").as_deref(),
        Some("2")
    );
    assert_eq!(
        server
            .scalar("SELECT v FROM crash.t WHERE id = 2")
            .as_deref(),
        Some("two")
    );
}

#[test]
fn stop_then_restart_and_drop_removes_everything() {
    let mut server = Server::start(&["--wait-timeout=2"]);
    assert_eq!(server.scalar("SELECT @@wait_timeout").as_deref(), Some("2"));
    server.query("CREATE DATABASE kept; CREATE TABLE kept.t (id INT) ENGINE=InnoDB; INSERT INTO kept.t VALUES (7)");

    server.stop();
    assert!(!server.is_running());
    server.restart();
    assert_eq!(server.scalar("SELECT id FROM kept.t").as_deref(), Some("7"));
    assert_eq!(server.scalar("SELECT @@wait_timeout").as_deref(), Some("2"));

    let datadir = server.datadir();
    drop(server);
    assert!(!datadir.exists(), "{datadir:?} removed on drop");
}

#[test]
fn myspool_binary_is_built() {
    assert!(myspool_bin().is_file());
}
