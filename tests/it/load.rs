//! `myspool load` from real dumps into real target servers.

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use myspool::load::{load, AutoincPolicy, LoadOptions, OnDuplicate};
use myspool::progress::ProgressMode;
use myspool::ConnSpec;

use crate::common::*;

fn make_shop(server: &Server, db: &str) {
    server.query(&format!(
        "USE `{db}`; SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'; SET time_zone = '+00:00';
         CREATE TABLE orders (
            id BIGINT AUTO_INCREMENT PRIMARY KEY,
            customer VARCHAR(50) NULL,
            note TEXT NULL,
            token VARBINARY(16) NULL,
            amount DECIMAL(10,2) NULL,
            d DATE NULL,
            ts TIMESTAMP NULL DEFAULT NULL,
            KEY by_customer (customer)
         );
         INSERT INTO orders VALUES (0, 'zero id', NULL, X'00', 0, '0000-00-00', '0000-00-00 00:00:00'),
            (-5, 'negative', '', X'', -1.5, '2020-00-15', NULL);
         INSERT INTO orders SELECT seq,
            ELT(1 + seq % 5, NULL, '', 'NULL', '\\\\N', CONCAT('c\u{e9} ', seq, ' \u{1f600}')),
            ELT(1 + seq % 4, 'a \"q\", b', 'line\\r\\nnext\\tTab\\\\', NULL, REPEAT('x', seq % 300)),
            UNHEX(MD5(seq)), seq / 3, '2024-01-01' + INTERVAL seq DAY, '2024-01-01 00:00:00' + INTERVAL seq MINUTE
            FROM seq_1_to_3000;
         CREATE TABLE names (k VARCHAR(30) PRIMARY KEY, v INT);
         INSERT INTO names SELECT CONCAT('n\u{e9}', seq, IF(seq % 2, ' ', '')), seq FROM seq_1_to_500;
         CREATE TABLE pairs (a INT, b VARCHAR(8), v BLOB, PRIMARY KEY (a, b));
         INSERT INTO pairs SELECT seq % 7, CONCAT('b', seq), UNHEX(REPEAT('00FF', seq % 20)) FROM seq_1_to_700;
         CREATE TABLE loose (a INT, b TEXT);
         INSERT INTO loose SELECT seq % 3, IF(seq % 2, NULL, 'x') FROM seq_1_to_50;"
    ));
}

#[test]
fn export_then_load_into_another_server_gives_identical_tables() {
    let (src, dst) = (source_server(), target_server());
    let db = src.fresh_db("shop");
    make_shop(&src, &db);
    let dir = tempfile::tempdir().unwrap();
    dump(&src, &[&format!("{db}.*")], dir.path(), 256);

    let mut opts = load_options(&dst, dir.path());
    opts.jobs = 3;
    let summary = run_load(&opts);
    assert_eq!(summary.rows, 3002 + 500 + 700 + 50);
    assert_eq!(summary.chunks_skipped, 0);
    assert!(summary.tables.iter().all(|t| t.created));
    for (table, order) in [
        ("orders", "id"),
        ("names", "k"),
        ("pairs", "a, b"),
        ("loose", "a, b"),
    ] {
        assert_same_table(&src, &db, &dst, &db, table, order);
    }
    // The AUTO_INCREMENT counter carries on above the largest id.
    dst.query(&format!(
        "INSERT INTO `{db}`.orders (customer) VALUES ('next')"
    ));
    assert_eq!(
        dst.scalar(&format!(
            "SELECT id FROM `{db}`.orders WHERE customer = 'next'"
        ))
        .as_deref(),
        Some("3001")
    );

    // A rerun finds everything loaded and does nothing.
    let again = run_load(&opts);
    assert_eq!(again.rows, 0);
    assert_eq!(again.chunks_loaded, 0);

    // --into loads into another database (a new one: created from the dump).
    let other = dst.fresh_db("copy");
    let mut into = load_options(&dst, dir.path());
    into.into = Some(other.clone());
    run_load(&into);
    assert_same_table(&src, &db, &dst, &other, "orders", "id");
}

#[test]
fn a_target_that_differs_from_the_dump_is_refused_before_loading() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_db(
        &src,
        "mismatch",
        "CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARBINARY(4)); INSERT INTO t VALUES (1, 1, X'01');
         CREATE TABLE u (id INT PRIMARY KEY); INSERT INTO u VALUES (1);",
        "*",
        10,
    );
    dst.query(&format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT PRIMARY KEY, a INT, c INT, b VARBINARY(4))"
    ));
    let err = format!("{:#}", load(&load_options(&dst, dir.path())).unwrap_err());
    assert!(err.contains("nothing was loaded"), "{err}");
    assert!(err.contains("column(s) not in the dump: c"), "{err}");
    // Not even the table that would have been fine was created.
    assert_eq!(table_count(&dst, &db), 1);
}

#[test]
fn two_dump_tables_into_one_target_table_are_refused_before_loading() {
    let (src, dst) = (source_server(), target_server());
    let (a, b) = (src.fresh_db("shard"), src.fresh_db("shard"));
    for db in [&a, &b] {
        src.query(&format!(
            "USE `{db}`; CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT, KEY (v));
             INSERT INTO t (v) VALUES (1), (2), (3);"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    dump(&src, &[&format!("{a}.t"), &format!("{b}.t")], dir.path(), 2);
    let merged = dst.fresh_db("merged");
    let opts = load_into(&dst, dir.path(), &merged);
    let err = load_error(&opts);
    assert!(err.contains("nothing was loaded"), "{err}");
    assert!(
        err.contains(&format!(
            "{a}.t and {b}.t of this dump would both load into {merged}.t"
        )),
        "{err}"
    );
    assert_eq!(table_count(&dst, &merged), 0);
}

#[test]
fn local_infile_off_is_a_clear_error_before_anything_is_loaded() {
    let src = source_server();
    let dst = Server::shared(&["--local-infile=0"]);
    let (db, dir) = dumped_db(
        &src,
        "noinfile",
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);",
        "t",
        10,
    );
    let out = myspool(&load_args(dir.path(), &dst, &[]));
    let err = assert_one_line_error(&out);
    assert!(err.contains("local_infile=OFF"), "{err}");
    assert_eq!(
        count(
            &dst,
            &format!("information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'")
        ),
        0
    );
}

#[test]
fn autoinc_policy_refuses_or_proceeds_as_specified() {
    let src = source_server();
    let mode1 = Server::shared(&["--innodb-autoinc-lock-mode=1"]);
    let mode2_row = target_server();
    let mode2_stmt = Server::shared(&[
        "--innodb-autoinc-lock-mode=2",
        "--log-bin",
        "--binlog-format=STATEMENT",
    ]);
    let (db, dir) = autoinc_table(&src, "autoinc");
    let attempt = |server: &Server, policy: AutoincPolicy, jobs: usize| {
        let mut opts = load_options(server, dir.path());
        opts.autoinc = policy;
        opts.jobs = jobs;
        opts.into = Some(server.fresh_db("ai"));
        load(&opts).map(|_| opts.into.clone().unwrap())
    };
    use AutoincPolicy::*;
    // check: parallel refused on mode 1 and on mode 2 with STATEMENT binlog.
    for server in [&mode1, &mode2_stmt] {
        let err = format!("{:#}", attempt(server, Check, 2).unwrap_err());
        assert!(
            err.contains("--autoinc drop") && err.contains("innodb_autoinc_lock_mode"),
            "{err}"
        );
    }
    assert!(format!("{:#}", attempt(&mode2_stmt, Check, 2).unwrap_err())
        .contains("binlog_format = STATEMENT"));
    attempt(&mode2_row, Check, 2).expect("mode 2 with ROW binlog loads in parallel");
    attempt(&mode1, Check, 1).expect("one job warns and goes on");
    // require: refused on mode 1 even with one job, fine on mode 2 + ROW.
    assert!(attempt(&mode1, Require, 1).is_err());
    assert!(attempt(&mode2_stmt, Require, 1).is_err());
    attempt(&mode2_row, Require, 4).unwrap();
    // keep: no check.
    attempt(&mode1, Keep, 2).unwrap();
    // drop: AUTO_INCREMENT removed for the load, restored after.
    let into = attempt(&mode1, Drop, 3).unwrap();
    assert_same_table(&src, &db, &mode1, &into, "t", "id");
    let create = show_create(&mode1, &into, "t");
    assert!(create.contains("AUTO_INCREMENT"), "{create}");
    mode1.query(&format!("INSERT INTO `{into}`.t (v) VALUES (-1)"));
    assert_eq!(
        mode1
            .scalar(&format!("SELECT id FROM `{into}`.t WHERE v = -1"))
            .as_deref(),
        Some("801")
    );
}

#[test]
fn duplicate_keys_fail_by_default_and_ignore_or_replace_on_request() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_db(
        &src,
        "dups",
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO t SELECT seq, CONCAT('src', seq) FROM seq_1_to_100;",
        "t",
        20,
    );
    let prepare = |name: &str| {
        let into = dst.fresh_db(name);
        dst.query(&format!(
            "CREATE TABLE `{into}`.t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO `{into}`.t VALUES (57, 'target');"
        ));
        into
    };

    let into = prepare("dup_error");
    let mut opts = load_into(&dst, dir.path(), &into);
    opts.jobs = 1;
    let err = load_error(&opts);
    assert!(err.contains("chunk 000003"), "{err}");
    assert!(err.contains("Duplicate entry '57'"), "{err}");
    assert!(err.contains("nothing of the chunk was committed"), "{err}");
    // Chunks 1 and 2 are in; nothing of chunk 3 (ids 41–60) but the old row.
    assert_eq!(
        count(&dst, &format!("`{into}`.t WHERE id BETWEEN 41 AND 60")),
        1
    );
    assert_eq!(count(&dst, &format!("`{into}`.t")), 41);

    let into = prepare("dup_ignore");
    opts.into = Some(into.clone());
    opts.on_duplicate = OnDuplicate::Ignore;
    let s = run_load(&opts);
    assert_eq!((s.rows, s.duplicates), (100, 1));
    assert_eq!(
        dst.scalar(&format!("SELECT v FROM `{into}`.t WHERE id = 57"))
            .as_deref(),
        Some("target")
    );
    assert_eq!(count(&dst, &format!("`{into}`.t")), 100);

    let into = prepare("dup_replace");
    opts.into = Some(into.clone());
    opts.on_duplicate = OnDuplicate::Replace;
    let s = run_load(&opts);
    assert_eq!(s.duplicates, 1);
    assert_eq!(
        dst.scalar(&format!("SELECT v FROM `{into}`.t WHERE id = 57"))
            .as_deref(),
        Some("src57")
    );
    assert_same_table(&src, &db, &dst, &into, "t", "id");
}

#[test]
fn bad_values_fail_the_chunk_instead_of_being_truncated() {
    let (src, dst) = (source_server(), target_server());
    let (_, dir) = dumped_db(
        &src,
        "narrow",
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO t VALUES (1, 'short'), (2, 'much too long here');",
        "t",
        10,
    );
    let into = db_with(
        &dst,
        "narrow",
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(5))",
    );
    let opts = load_into(&dst, dir.path(), &into);
    let err = load_error(&opts);
    assert!(err.contains("loading chunk 000001 of "), "{err}");
    assert!(
        err.contains("Data truncated for column 'v' at row 2"),
        "{err}"
    );
    assert_eq!(count(&dst, &format!("`{into}`.t")), 0);
}

#[test]
fn truncate_empties_the_target_once() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_db(
        &src,
        "trunc",
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t SELECT seq FROM seq_1_to_30;",
        "t",
        10,
    );
    let into = db_with(
        &dst,
        "trunc",
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (5), (1000);",
    );
    let mut opts = load_into(&dst, dir.path(), &into);
    opts.truncate = true;
    run_load(&opts);
    assert_same_table(&src, &db, &dst, &into, "t", "id");
}

#[test]
fn defer_indexes_drops_and_restores_secondary_indexes() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_db(
        &src,
        "defer",
        "CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(20), UNIQUE KEY ub (b), KEY ka (a), KEY kab (a, b(5)));
         INSERT INTO t SELECT seq, seq % 10, CONCAT('b', seq) FROM seq_1_to_200;",
        "t",
        50,
    );
    let mut opts = load_options(&dst, dir.path());
    opts.into = Some(dst.fresh_db("defer"));
    opts.indexes = myspool::load::IndexMode::Defer;
    opts.skip_binlog = true;
    run_load(&opts);
    let into = opts.into.unwrap();
    let show =
        |s: &Server, d: &str| s.query_strings(&format!("SHOW CREATE TABLE `{d}`.t"))[0][1].clone();
    assert_eq!(show(&src, &db), show(&dst, &into));
    assert_same_table(&src, &db, &dst, &into, "t", "id");
}

/// Starts `myspool load` with the chunk delay hook and kills it with SIGKILL
/// once the journals under `journal_dir` of this load's target database (its
/// `--into`; earlier rounds into other databases do not count) show
/// `commits` commits begun. False if the load finished first.
fn kill_load_after(args: &[String], journal_dir: &Path, commits: usize) -> bool {
    let into = args
        .iter()
        .position(|a| a == "--into")
        .map(|i| &args[i + 1])
        .expect("the killed loads name their target database with --into");
    let journal_suffix = format!("@{into}.jsonl");
    let begun = || {
        let mut n = 0;
        let mut dirs = vec![journal_dir.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.path().is_dir() {
                    dirs.push(e.path());
                } else if name.starts_with("load@") && name.ends_with(&journal_suffix) {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    n += text.matches("\"committing\"").count();
                }
            }
        }
        n
    };
    kill_9_when(args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "30")], || {
        begun() >= commits
    })
}

#[test]
fn kill_9_at_random_points_then_rerun_loads_every_row_exactly_once() {
    let src = source_server();
    let dst = Server::shared(&["--innodb-autoinc-lock-mode=1"]);
    let (db, dir) = autoinc_table(&src, "killload");
    // Kill after 1, 3, 5 and 7 chunks' commits began (several of those land
    // between the journal's "committing" and the COMMIT).
    for (round, kill_at) in [1usize, 3, 5, 7].into_iter().enumerate() {
        let into = dst.fresh_db("killload");
        let args = load_args(
            dir.path(),
            &dst,
            &["--into", &into, "--jobs", "2", "--autoinc", "drop"],
        );
        let table_dir = dir.path().join(&db).join("t");
        assert!(
            kill_load_after(&args, &table_dir, kill_at),
            "round {round}: the load finished before it could be killed"
        );
        if round % 2 == 1 {
            // A second kill during the rerun.
            kill_load_after(&args, &table_dir, kill_at + 2);
        }
        let out = myspool(&args);
        assert_success(&out);
        assert_same_table(&src, &db, &dst, &into, "t", "id");
        let create = show_create(&dst, &into, "t");
        assert!(create.contains("AUTO_INCREMENT"), "round {round}: {create}");
    }
}

#[test]
fn a_target_restarted_mid_load_is_reconnected_and_the_load_finishes() {
    let src = source_server();
    let mut dst = Server::start(&["--innodb-autoinc-lock-mode=2"]);
    let (db, dir) = dumped_db(
        &src,
        "restart",
        "CREATE TABLE t (id INT PRIMARY KEY, s CHAR(100)); INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_2000;",
        "t",
        100,
    );
    let child = spawn_myspool(
        &load_args(dir.path(), &dst, &["--jobs", "2", "--json"]),
        &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "100")],
    );
    let journal_dir = dir.path().join(&db).join("t");
    wait_until(Duration::from_secs(60), "3 chunks committed", || {
        count_in_files(&journal_dir, "load@", "\"committed\"") >= 3
    });
    dst.kill();
    std::thread::sleep(Duration::from_secs(1));
    dst.restart();
    let out = child.wait_with_output().unwrap();
    assert_success(&out);
    let summary = json(&out);
    assert!(summary["retries"].as_u64().unwrap() >= 1, "{summary}");
    assert_same_table(&src, &db, &dst, &db, "t", "id");
}

#[test]
fn a_deadlock_with_another_session_is_retried() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_db(
        &src,
        "deadlock",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_300;",
        "t",
        100,
    );
    let into = db_with(
        &dst,
        "deadlock",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT); CREATE TABLE ballast (id INT PRIMARY KEY)",
    );
    // The other session: a big transaction (so InnoDB picks the loader as the
    // deadlock victim) that holds id 50 of chunk 1.
    use mysql::prelude::Queryable;
    let mut other = dst.conn();
    other.query_drop(format!("USE `{into}`")).unwrap();
    other
        .query_drop("SET SESSION innodb_lock_wait_timeout = 20")
        .unwrap();
    other.query_drop("START TRANSACTION").unwrap();
    other
        .query_drop("INSERT INTO ballast SELECT seq FROM seq_1_to_5000")
        .unwrap();
    other.query_drop("INSERT INTO t VALUES (50, -1)").unwrap();

    let mut opts = load_into(&dst, dir.path(), &into);
    opts.jobs = 1;
    let loader = std::thread::spawn(move || load(&opts));
    // Wait until the loader's statement is stuck behind id 50, then ask for
    // id 10, which the loader holds: a cycle. Only this test's LOAD DATA
    // counts (other tests load into the same shared target server).
    wait_until(Duration::from_secs(30), "the loader to wait", || {
        assert!(!loader.is_finished(), "the loader ended without waiting");
        count(
            &dst,
            &format!(
                "information_schema.PROCESSLIST WHERE INFO LIKE 'LOAD DATA%' AND INSTR(INFO, '{into}') > 0 AND TIME_MS > 300"
            ),
        ) == 1
    });
    let second = other.query_drop("INSERT INTO t VALUES (10, -1)");
    eprintln!("the other session's second insert: {second:?}");
    other.query_drop("ROLLBACK").unwrap();
    let summary = loader.join().unwrap().unwrap_or_else(|e| panic!("{e:#}"));
    assert!(summary.retries >= 1, "no retry counted");
    assert_same_table(&src, &db, &dst, &into, "t", "id");
}

#[test]
fn missing_privileges_are_named_before_anything_is_loaded() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = autoinc_table(&src, "privs");
    let user = format!("loader_{db}");
    dst.query(&format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT);
         CREATE USER '{user}'@'%' IDENTIFIED BY 'pw';
         GRANT SELECT, INSERT ON `{db}`.* TO '{user}'@'%';"
    ));
    let url = format!("mysql://{user}:pw@127.0.0.1:{}", dst.port());
    let mut opts = LoadOptions::new(ConnSpec::parse(&url).unwrap(), dir.path());
    opts.progress = ProgressMode::Quiet;
    opts.autoinc = AutoincPolicy::Drop;
    let err = load_error(&opts);
    assert!(err.contains(&format!("lacks ALTER on {db}.t")), "{err}");
    assert!(!err.contains("pw@"), "{err}");
    assert_eq!(count(&dst, &format!("`{db}`.t")), 0);
    // What the user may do, it can: mode 2 + ROW binlog needs no ALTER.
    opts.autoinc = AutoincPolicy::Check;
    run_load(&opts);
    assert_same_table(&src, &db, &dst, &db, "t", "id");
}

#[test]
fn repair_restores_auto_increment_after_an_interrupted_load() {
    let src = source_server();
    let dst = Server::shared(&["--innodb-autoinc-lock-mode=1"]);
    let (db, dir) = autoinc_table(&src, "repair");
    let into = dst.fresh_db("repair");
    let args = load_args(
        dir.path(),
        &dst,
        &["--into", &into, "--autoinc", "drop", "--jobs", "2"],
    );
    assert!(
        kill_load_after(&args, &dir.path().join(&db).join("t"), 2),
        "the load ended before the kill"
    );
    let create = || show_create(&dst, &into, "t");
    assert!(
        !create().contains("AUTO_INCREMENT"),
        "dropped during the load: {}",
        create()
    );

    let out = myspool(&[&args[..], &["--repair".into()]].concat());
    assert_success(&out);
    assert!(create().contains("AUTO_INCREMENT"), "{}", create());
    let loaded: u64 = count(&dst, &format!("`{into}`.t"));
    assert!(loaded < 400, "repair loads nothing");

    // The load itself then finishes (dropping and restoring again).
    let out = myspool(&args);
    assert_success(&out);
    assert_same_table(&src, &db, &dst, &into, "t", "id");
    assert!(create().contains("AUTO_INCREMENT"));
}

/// LOAD DATA fires the target's INSERT triggers for every row: myspool
/// leaves triggers alone, and says so in the README.
#[test]
fn triggers_on_the_target_fire_for_every_loaded_row() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_db(
        &src,
        "trig",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_120;",
        "t",
        50,
    );
    let into = db_with(
        &dst,
        "trig",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT); CREATE TABLE audit (id INT);
         CREATE TRIGGER t_ai AFTER INSERT ON t FOR EACH ROW INSERT INTO audit VALUES (NEW.id);",
    );
    let opts = load_into(&dst, dir.path(), &into);
    run_load(&opts);
    assert_eq!(count(&dst, &format!("`{into}`.audit")), 120);
    assert_same_table(&src, &db, &dst, &into, "t", "id");
}

#[test]
fn damaged_dumps_are_refused_naming_the_file_and_commit_nothing_of_it() {
    let (src, dst) = (source_server(), target_server());
    let (db, good) = dumped_db(
        &src,
        "damaged",
        "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(40), b VARBINARY(16));
         INSERT INTO t SELECT seq, MD5(seq), UNHEX(MD5(seq)) FROM seq_1_to_300;",
        "t",
        100,
    );
    let chunk2 = |dir: &Path| dir.join(&db).join("t").join("000002.csv.gz");
    let write_chunk2 = |d: &Path, csv: &[u8]| {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(csv).unwrap();
        std::fs::write(chunk2(d), gz.finish().unwrap()).unwrap();
    };
    type Damage<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "truncated gzip",
            Box::new(|d: &Path| {
                let bytes = std::fs::read(chunk2(d)).unwrap();
                std::fs::write(chunk2(d), &bytes[..bytes.len() / 2]).unwrap();
            }),
            "000002.csv.gz",
        ),
        (
            "valid gzip, other content",
            Box::new(|d: &Path| {
                write_chunk2(d, b"\"id\",\"s\",\"b\"\n\"101\",\"changed\",\"00\"\n")
            }),
            "differs from",
        ),
        (
            // Found while streaming, before the checksum at the end.
            "not hexadecimal in a binary column",
            Box::new(|d: &Path| {
                write_chunk2(
                    d,
                    b"\"id\",\"s\",\"b\"\n\"101\",\"x\",\"00ff\"\n\"102\",\"y\",\"0g\"\n",
                )
            }),
            "000002.csv.gz: line 3: column 3 (b) is not hexadecimal",
        ),
        (
            "missing chunk",
            Box::new(|d: &Path| std::fs::remove_file(chunk2(d)).unwrap()),
            "000002.csv.gz",
        ),
        (
            "manifest not JSON",
            Box::new(|d: &Path| std::fs::write(d.join("manifest.json"), "{ hand edited").unwrap()),
            "manifest.json is not valid JSON",
        ),
        (
            "unknown format version",
            Box::new(|d: &Path| {
                let text = std::fs::read_to_string(d.join("manifest.json")).unwrap();
                std::fs::write(
                    d.join("manifest.json"),
                    text.replace("\"format_version\": 1", "\"format_version\": 99"),
                )
                .unwrap();
            }),
            "format version 99",
        ),
        (
            "a chunk of another dump",
            Box::new(|d: &Path| {
                std::fs::copy(chunk2(d), chunk2(d).with_file_name("000099.csv.gz")).unwrap();
            }),
            "000099.csv.gz is a chunk file that",
        ),
    ];
    for (what, damage, expect) in cases {
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("d");
        copy_dir(good.path(), &dir);
        damage(&dir);
        let into = dst.fresh_db("damaged");
        let out = myspool(&load_args(&dir, &dst, &["--into", &into, "--jobs", "1"]));
        let err = stderr(&out);
        assert!(!out.status.success(), "{what}: loaded anyway");
        assert!(err.contains(expect), "{what}: expected {expect:?} in {err}");
        assert_eq!(
            err.trim_end()
                .lines()
                .filter(|l| l.starts_with("myspool: error"))
                .count(),
            1,
            "{what}: {err}"
        );
        // Chunk 1 may be in; nothing of chunk 2 (ids 101–200) is.
        let created = dst.scalar(&format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{into}' AND TABLE_NAME = 't'"
        ));
        if created.as_deref() == Some("1") {
            let n = dst.scalar(&format!("SELECT COUNT(*) FROM `{into}`.t WHERE id > 100"));
            assert_eq!(
                n.as_deref(),
                Some("0"),
                "{what}: rows of chunk 2 or later were committed"
            );
        }
    }
}

/// Starts `myspool ARGS` (a load of the dump in `dir`) slowed down to one
/// chunk per 100 ms, and returns once it has committed a chunk.
fn start_slow_load(args: &[String], dir: &Path) -> Child {
    let load = spawn_myspool(args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "100")]);
    wait_until(Duration::from_secs(30), "a first chunk committed", || {
        count_in_files(dir, "load@", "committed") > 0
    });
    load
}

#[test]
fn two_loads_of_one_dump_at_once_the_second_refuses() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_db(
        &src,
        "twice",
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t SELECT seq FROM seq_1_to_500;",
        "t",
        50,
    );
    let args = load_args(dir.path(), &dst, &["--jobs", "1"]);
    let first = start_slow_load(&args, dir.path());
    let second = myspool(&args);
    assert!(!second.status.success());
    assert!(stderr(&second).contains("another myspool process is working on"));
    assert_success(&first.wait_with_output().unwrap());
    assert_same_table(&src, &db, &dst, &db, "t", "id");
}

#[test]
fn two_loads_into_one_target_table_the_second_refuses() {
    let (src, dst) = (source_server(), target_server());
    let (db, a) = dumped_db(
        &src,
        "onetable",
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t SELECT seq FROM seq_1_to_500;",
        "t",
        50,
    );
    // The same dump in a second directory: a second load of its own.
    let work = tempfile::tempdir().unwrap();
    let b = work.path().join("b");
    copy_dir(a.path(), &b);
    let first = start_slow_load(&load_args(a.path(), &dst, &["--jobs", "1"]), a.path());
    let second = myspool(&load_args(&b, &dst, &["--jobs", "1"]));
    assert!(!second.status.success());
    let err = stderr(&second);
    assert!(
        err.contains("another myspool load is loading into"),
        "{err}"
    );
    assert_success(&first.wait_with_output().unwrap());
    assert_same_table(&src, &db, &dst, &db, "t", "id");
}

#[test]
fn awkward_names_load_too() {
    let (src, dst) = (source_server(), target_server());
    let db = format!("odd`name é {}", std::process::id());
    src.query(&format!(
        "CREATE DATABASE `{0}` CHARACTER SET utf8mb4; USE `{0}`; CREATE TABLE `a``b; DROP TABLE x; --` (`sel ect` INT PRIMARY KEY, `é\"'` VARBINARY(4), `from` TEXT);
         INSERT INTO `a``b; DROP TABLE x; --` SELECT seq, UNHEX(HEX(seq)), CONCAT('v', seq) FROM seq_1_to_30;",
        db.replace('`', "``")
    ));
    let dir = tempfile::tempdir().unwrap();
    dump(
        &src,
        &[&format!("`{}`.*", db.replace('`', "``"))],
        dir.path(),
        7,
    );
    let into = format!("{db} copy");
    let mut opts = load_into(&dst, dir.path(), &into);
    opts.indexes = myspool::load::IndexMode::Defer;
    run_load(&opts);
    let q = |d: &str| {
        format!(
            "SELECT * FROM `{}`.`a``b; DROP TABLE x; --` ORDER BY 1",
            d.replace('`', "``")
        )
    };
    assert_eq!(dst.query_rows(&q(&into)), src.query_rows(&q(&db)));
    let v = myspool(&[
        "verify",
        "--dir",
        &dir.path().display().to_string(),
        "--to",
        &dst.url(),
        "--into",
        &into,
    ]);
    assert_success(&v);
}

/// Two tables of 8 chunks each in `db` (and the same tables, empty, with an
/// AFTER INSERT trigger logging every row in arrival order, in a fresh target
/// database), dumped; returns the target database and the dump.
fn two_logged_tables(
    src: &Server,
    dst: &Server,
    prefix: &str,
) -> (String, String, tempfile::TempDir) {
    let db = src.fresh_db(prefix);
    let table = "(id INT PRIMARY KEY, v INT, KEY by_v (v))";
    src.query(&format!(
        "USE `{db}`; CREATE TABLE a {table}; CREATE TABLE b {table};
         INSERT INTO a SELECT seq, seq % 7 FROM seq_1_to_400;
         INSERT INTO b SELECT seq, seq % 5 FROM seq_1_to_400;"
    ));
    let dir = tempfile::tempdir().unwrap();
    dump(src, &[&format!("{db}.*")], dir.path(), 50);
    let into = dst.fresh_db(prefix);
    dst.query(&format!(
        "USE `{into}`; CREATE TABLE a {table}; CREATE TABLE b {table};
         CREATE TABLE arrivals (n INT AUTO_INCREMENT PRIMARY KEY, t CHAR(1));
         CREATE TRIGGER a_ai AFTER INSERT ON a FOR EACH ROW INSERT INTO arrivals (t) VALUES ('a');
         CREATE TRIGGER b_ai AFTER INSERT ON b FOR EACH ROW INSERT INTO arrivals (t) VALUES ('b');"
    ));
    (db, into, dir)
}

#[test]
fn jobs_spread_over_the_tables_and_each_table_finishes_on_its_own() {
    let (src, dst) = (source_server(), target_server());
    let (db, into, dir) = two_logged_tables(&src, &dst, "spread");
    let mut opts = load_into(&dst, dir.path(), &into);
    opts.jobs = 2;
    opts.indexes = myspool::load::IndexMode::Defer;
    opts.chunk_delay = Duration::from_millis(50);
    let s = run_load(&opts);

    // b's rows began arriving while a was still at its start: the second job
    // took b while the first was on a (tables one after another would log all
    // 400 rows of a first; both jobs on a, at least 300).
    let a_before_b: u64 = dst
        .scalar(&format!(
            "SELECT COUNT(*) FROM `{into}`.arrivals WHERE t = 'a' AND n < (SELECT MIN(n) FROM `{into}`.arrivals WHERE t = 'b')"
        ))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        a_before_b < 200,
        "{a_before_b} rows of a arrived before the first of b"
    );

    let loaded: Vec<(&str, u64, u64)> = s
        .tables
        .iter()
        .map(|t| (t.table.as_str(), t.chunks_loaded, t.rows))
        .collect();
    assert_eq!(loaded, [("a", 8, 400), ("b", 8, 400)]);
    for t in ["a", "b"] {
        assert_same_table(&src, &db, &dst, &into, t, "id");
        let show = |s: &Server, d: &str| {
            s.query_strings(&format!("SHOW CREATE TABLE `{d}`.{t}"))[0][1].clone()
        };
        assert!(
            show(&dst, &into).unwrap().contains("KEY `by_v`"),
            "{t}: the deferred index is back"
        );
    }
}

#[test]
fn a_failing_table_stops_the_others_and_a_rerun_finishes_them_all() {
    let (src, dst) = (source_server(), target_server());
    let (db, into, dir) = two_logged_tables(&src, &dst, "stopall");
    dst.query(&format!("INSERT INTO `{into}`.b VALUES (123, -1)"));
    let mut opts = load_into(&dst, dir.path(), &into);
    opts.jobs = 2;
    opts.indexes = myspool::load::IndexMode::Defer;
    opts.chunk_delay = Duration::from_millis(50);

    let err = load_error(&opts);
    assert!(err.contains("loading chunk 000003 of"), "{err}");
    assert!(err.contains("Duplicate entry '123'"), "{err}");
    // a was stopped midway, its index still dropped; the message names both.
    assert!(
        err.contains(&format!(
            "secondary indexes of {db}.a into {into} are dropped"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "secondary indexes of {db}.b into {into} are dropped"
        )),
        "{err}"
    );
    let a_rows: u64 = count(&dst, &format!("`{into}`.a"));
    assert!(a_rows < 400, "a was not stopped: {a_rows} rows");

    dst.query(&format!("DELETE FROM `{into}`.b WHERE id = 123"));
    let s = run_load(&opts);
    let a = &s.tables[0];
    assert_eq!(
        a.chunks_skipped * 50,
        a_rows,
        "a's committed chunks are not loaded again"
    );
    assert_eq!(a.chunks_loaded + a.chunks_skipped, 8);
    assert_eq!(s.tables[1].chunks_skipped, 2);
    for t in ["a", "b"] {
        assert_same_table(&src, &db, &dst, &into, t, "id");
    }
    assert_eq!(
        count(&dst, &format!("`{into}`.arrivals")),
        801,
        "no row arrived twice (800 loaded, one inserted by hand)"
    );
}

#[test]
fn kill_9_while_tables_load_side_by_side_then_rerun_finishes_every_table() {
    let src = source_server();
    let dst = Server::shared(&["--innodb-autoinc-lock-mode=1"]);
    let (db, dir) = dumped_db(
        &src,
        "killmany",
        "CREATE TABLE a (id INT AUTO_INCREMENT PRIMARY KEY, v INT, KEY by_v (v));
         CREATE TABLE b (id INT PRIMARY KEY, v INT, KEY by_v (v));
         CREATE TABLE c (id INT PRIMARY KEY, v INT, KEY by_v (v));
         INSERT INTO a SELECT seq * 2, seq % 9 FROM seq_1_to_400;
         INSERT INTO b SELECT seq, seq % 4 FROM seq_1_to_300;
         INSERT INTO c SELECT seq, seq FROM seq_1_to_30;",
        "*",
        50,
    );
    // Commits begun over all tables' journals: the kills land while both jobs
    // are on different tables, and in the second round once more in the rerun.
    for (round, kill_at) in [2usize, 6, 9].into_iter().enumerate() {
        let into = dst.fresh_db("killmany");
        let args = load_args(
            dir.path(),
            &dst,
            &[
                "--into",
                &into,
                "--jobs",
                "2",
                "--autoinc",
                "drop",
                "--defer-indexes",
            ],
        );
        assert!(
            kill_load_after(&args, dir.path(), kill_at),
            "round {round}: the load ended before the kill"
        );
        if round == 1 {
            assert!(
                kill_load_after(&args, dir.path(), kill_at + 3),
                "round {round}: the rerun ended before the kill"
            );
        }
        assert_success(&myspool(&args));
        for t in ["a", "b", "c"] {
            assert_same_table(&src, &db, &dst, &into, t, "id");
            let create = show_create(&dst, &into, t);
            assert!(create.contains("KEY `by_v`"), "round {round}: {create}");
            if t == "a" {
                assert!(create.contains("AUTO_INCREMENT"), "round {round}: {create}");
            }
        }
    }
}

/// A parent, a child whose foreign key has only `k_parent` to stand on, an
/// `other` table referencing `parent.code` (served only by the non-unique
/// `k_code`) with two indexes that serve its key, and an index nothing
/// needs on each.
const FOREIGN_KEYS: &str = "
    CREATE TABLE parent (id INT PRIMARY KEY, code INT NOT NULL, note VARCHAR(20), KEY k_code (code), KEY k_note (note));
    CREATE TABLE child (id INT PRIMARY KEY, parent_id INT NOT NULL, v INT,
        KEY k_parent (parent_id), KEY k_v (v), KEY k_pv (parent_id, v),
        CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id));
    CREATE TABLE other (id INT PRIMARY KEY, code INT, KEY k_other_code (code), KEY k_code_id (code, id),
        CONSTRAINT fk_code FOREIGN KEY (code) REFERENCES parent (code));
    INSERT INTO parent SELECT seq, seq * 10, CONCAT('p', seq) FROM seq_1_to_50;
    INSERT INTO child SELECT seq, 1 + seq % 50, seq % 13 FROM seq_1_to_400;
    INSERT INTO other SELECT seq, 10 * (1 + seq % 50) FROM seq_1_to_60;";

/// The default, `--indexes auto`, into tables the load creates: the
/// non-unique secondary indexes are built after the rows, except the one
/// index a foreign key stands on (MySQL and MariaDB refuse to drop it,
/// 1553), which the summary names with why; the definitions end up as the
/// source's.
#[test]
fn auto_builds_indexes_after_the_rows_but_keeps_the_only_index_of_a_foreign_key() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_db(&src, "fkidx", FOREIGN_KEYS, "*", 100);
    let into = dst.fresh_db("fkidx");
    let out = myspool(&load_args(
        dir.path(),
        &dst,
        &["--into", &into, "--json", "--progress", "none"],
    ));
    assert_success(&out);
    let summary = json(&out);
    let table = |name: &str| {
        summary["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {summary}"))["indexes"]
            .clone()
    };
    // child: k_parent alone serves fk_parent only when k_pv is gone; the
    // first that serves it stays.
    let child = table("child");
    assert_eq!(
        child["deferred"],
        serde_json::json!(["k_v", "k_pv"]),
        "{child}"
    );
    let kept = child["kept"].to_string();
    assert!(
        kept.contains("k_parent") && kept.contains("fk_parent"),
        "{kept}"
    );
    // parent: k_code is what fk_code of `other` references.
    let parent = table("parent");
    assert_eq!(
        parent["deferred"],
        serde_json::json!(["k_note"]),
        "{parent}"
    );
    assert!(parent["kept"].to_string().contains("k_code"), "{parent}");
    let other = table("other");
    assert_eq!(
        other["deferred"],
        serde_json::json!(["k_code_id"]),
        "{other}"
    );
    for t in ["parent", "child", "other"] {
        assert_eq!(
            show_create(&src, &db, t),
            show_create(&dst, &into, t),
            "{t}"
        );
        assert_same_table(&src, &db, &dst, &into, t, "id");
    }
    // The human summary says it too.
    let into2 = dst.fresh_db("fkidx");
    let out = myspool(&load_args(
        dir.path(),
        &dst,
        &["--into", &into2, "--progress", "none"],
    ));
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains("indexes built after the rows: k_v, k_pv"),
        "{text}"
    );
    assert!(
        text.contains("indexes kept: `k_parent` (the only index for foreign key"),
        "{text}"
    );
}

/// auto keeps the indexes of a table that already holds rows; keep keeps
/// them into an empty one; the hidden --defer-indexes still means defer.
#[test]
fn auto_keeps_the_indexes_of_a_table_that_holds_rows_and_keep_always_does() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_db(
        &src,
        "idxmode",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT, KEY kv (v));
         INSERT INTO t SELECT seq, seq % 7 FROM seq_1_to_100;",
        "t",
        50,
    );
    let indexes_of = |more: &[&str], setup: Option<&str>| {
        let into = dst.fresh_db("idxmode");
        if let Some(sql) = setup {
            dst.query(&format!("USE `{into}`; {sql}"));
        }
        let args = [
            &["--into", &into[..], "--json", "--progress", "none"][..],
            more,
        ]
        .concat();
        let out = myspool(&load_args(dir.path(), &dst, &args));
        assert_success(&out);
        assert!(show_create(&dst, &into, "t").contains("KEY `kv`"));
        json(&out)["tables"][0]["indexes"].clone()
    };
    assert_eq!(indexes_of(&[], None)["deferred"], serde_json::json!(["kv"]));
    assert_eq!(
        indexes_of(&["--indexes", "keep"], None),
        serde_json::Value::Null
    );
    let holding =
        "CREATE TABLE t (id INT PRIMARY KEY, v INT, KEY kv (v)); INSERT INTO t VALUES (1000, 1);";
    assert_eq!(indexes_of(&[], Some(holding)), serde_json::Value::Null);
    assert_eq!(
        indexes_of(&["--defer-indexes"], Some(holding))["deferred"],
        serde_json::json!(["kv"])
    );
    let _ = db;
}

/// Killed with its last chunk's commit in flight, after the rows and before
/// the deferred indexes were built: the rerun settles the chunk, builds the
/// indexes (the journal says they were dropped), and the table is the
/// source's.
#[test]
fn a_load_killed_before_its_deferred_indexes_were_built_is_settled_by_the_rerun() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_db(&src, "fkkill", FOREIGN_KEYS, "*", 100);
    let into = dst.fresh_db("fkkill");
    let args = load_args(dir.path(), &dst, &["--into", &into, "--jobs", "1"]);
    // 1 + 4 + 1 chunks: kill once the sixth (the last) commit began.
    assert!(
        kill_load_after(&args, dir.path(), 6),
        "the load finished before it could be killed"
    );
    // Whichever table the last chunk was of still lacks what it deferred.
    let differs = ["parent", "child", "other"]
        .iter()
        .filter(|t| show_create(&src, &db, t) != show_create(&dst, &into, t))
        .count();
    assert!(
        differs >= 1,
        "every table was complete when the load was killed"
    );
    let rerun = load_args(dir.path(), &dst, &["--into", &into, "--progress", "none"]);
    assert_success(&myspool(&rerun));
    for t in ["parent", "child", "other"] {
        assert_eq!(
            show_create(&src, &db, t),
            show_create(&dst, &into, t),
            "{t}"
        );
        assert_same_table(&src, &db, &dst, &into, t, "id");
    }
}

#[test]
fn a_server_error_reaches_the_user_as_a_sentence_naming_the_chunk() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_db(
        &src,
        "sentence",
        "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20));
         INSERT INTO t VALUES (1, 'a'), (2, 'b');",
        "t",
        10,
    );
    // A trigger on the target refuses the rows: a server error (1644) that
    // no preflight can foresee, in the middle of the chunk's LOAD DATA.
    let into = db_with(
        &dst,
        "sentence",
        "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20));
         CREATE TRIGGER no_loads BEFORE INSERT ON t FOR EACH ROW
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'no loads today.';",
    );
    let out = myspool(&load_args(dir.path(), &dst, &["--into", &into]));
    let err = assert_one_line_error(&out);
    assert!(
        err.contains(&format!(
            "loading chunk 000001 of {db}.t into {into}: server error 1644 (45000): no loads today"
        )),
        "{err}"
    );
    assert!(!err.contains("MySqlError"), "{err}");
    assert_eq!(
        count(&dst, &format!("`{into}`.t")),
        0,
        "nothing half-committed"
    );
}
