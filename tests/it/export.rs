//! `myspool export` against real servers started by the harness.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use myspool::export::export;
use myspool::ConnSpec;

use crate::common::dumps::{self, Rows};
use crate::common::*;

/// Source rows in key order, exactly as the text protocol gives them.
fn source_rows(server: &Server, db: &str, table: &str, columns: &str, order: &str) -> Rows {
    server.query_rows(&format!(
        "SELECT {columns} FROM `{db}`.`{table}` ORDER BY {order}"
    ))
}

fn sorted(mut rows: Rows) -> Rows {
    rows.sort();
    rows
}

#[test]
fn csv_reads_back_value_for_value() {
    let server = source_server();
    let db = db_with(
        &server,
        "values",
        "CREATE TABLE t (
            id INT PRIMARY KEY,
            s VARCHAR(100) CHARACTER SET utf8mb4 NULL,
            l VARCHAR(100) CHARACTER SET latin1 NULL,
            b VARBINARY(100) NULL,
            blb BLOB NULL,
            d DECIMAL(20,6) NULL,
            dt DATETIME(6) NULL,
            ts TIMESTAMP(3) NULL DEFAULT NULL,
            tm TIME(2) NULL
        );
        SET time_zone = '+00:00';
        INSERT INTO t VALUES
            (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
            (2, '', '', '', '', 0, '2024-02-29 23:59:59.999999', '1970-01-01 00:00:01.000', '-838:59:59.00'),
            (3, 'NULL', 'NULL', 'NULL', 'NULL', -12345678901234.123456, '1000-01-01 00:00:00', '2038-01-19 03:14:07.999', '00:00:00.50'),
            (4, '\\\\N', '\\\\N', '\\\\N', '\\\\N', 1, NULL, NULL, NULL),
            (5, 'a \"quoted\" value, with comma', 'caf\u{e9} \u{ff}', X'00', X'000102FF', NULL, NULL, NULL, NULL),
            (6, 'line1\\r\\nline2\\nline3\\rend', 'tab\\there', X'0D0A', X'22', NULL, NULL, NULL, NULL),
            (7, 'back\\\\slash \\\\\\\\ two', ' lead and trail ', X'5C4E', X'2C0A0D09', NULL, NULL, NULL, NULL),
            (8, 'emoji \u{1f600} cjk \u{6f22}\u{5b57} combining e\u{301}', 'x', X'80FF', REPEAT(X'00FF', 500), NULL, NULL, NULL, NULL),
            (9, '\"id\",\"s\",\"l\"', '\"', X'', X'', NULL, NULL, NULL, NULL);",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut opts = export_options(&server, &[&format!("{db}.t")], dir.path());
    opts.chunk_rows = Some(4);
    let summary = run_export(&opts);
    assert_eq!(summary.rows, 9);
    assert_eq!(summary.tables[0].chunks, 3);

    let dumped = dumps::table_rows(dir.path(), &db, "t");
    let source = source_rows(&server, &db, "t", "*", "id");
    assert_eq!(dumped, source);
    // Spot checks that the test data means what it says.
    assert_eq!(dumped[0][1], None, "NULL stays NULL");
    assert_eq!(dumped[1][1], Some(b"".to_vec()), "'' stays ''");
    assert_eq!(dumped[2][1], Some(b"NULL".to_vec()));
    assert_eq!(dumped[3][1], Some(b"\\N".to_vec()));
    assert_eq!(dumped[4][3], Some(vec![0]), "binary 0x00 survives");

    // The files are plain RFC 4180 too: a generic reader sees the same
    // records (it cannot tell NULL from '', which is why the dialect quotes).
    let desc = dumps::description(dir.path(), &db, "t");
    let entry = dumps::entry(dir.path(), &db, "t");
    let mut generic_rows = 0;
    for chunk in &desc.chunks {
        let csv = dumps::chunk_csv(&dir.path().join(&entry.dir).join(&chunk.file));
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(&csv[..]);
        for rec in reader.byte_records() {
            let rec = rec.expect("RFC 4180 parse");
            assert_eq!(rec.len(), 9);
            generic_rows += 1;
        }
    }
    assert_eq!(generic_rows, 9);

    // TIMESTAMPs are written in UTC, whatever the server's time zone.
    let (_, rows) = dumps::chunk_records(&dir.path().join(&entry.dir).join(&desc.chunks[0].file));
    assert_eq!(rows[1][7], Some(b"1970-01-01 00:00:01.000".to_vec()));
}

#[test]
fn floats_are_written_so_they_read_back_exactly() {
    let server = source_server();
    let db = db_with(
        &server,
        "floats",
        "CREATE TABLE t (id INT PRIMARY KEY, f FLOAT NULL, d DOUBLE NULL);
         INSERT INTO t VALUES (1, 16777217, 0.1), (2, 0.1, 1.7976931348623157e308),
            (3, 3.40282e38, 5e-324), (4, 1.00000012, 0.30000000000000004), (5, NULL, NULL)",
    );
    let dir = tempfile::tempdir().unwrap();
    run_export(&export_options(&server, &[&format!("{db}.t")], dir.path()));
    let dumped = dumps::table_rows(dir.path(), &db, "t");
    let text = |v: &Option<Vec<u8>>| v.as_ref().map(|b| String::from_utf8(b.clone()).unwrap());
    // Each FLOAT as printed must read back (as a double rounded to single
    // precision, which is what the server does) to the stored value.
    let exact: Vec<Vec<Option<String>>> =
        server.query_strings(&format!("SELECT f + 0e0, d FROM `{db}`.t ORDER BY id"));
    for (row, want) in dumped.iter().zip(&exact) {
        match (text(&row[1]), &want[0]) {
            (Some(f), Some(w)) => {
                let printed: f64 = f.parse().unwrap();
                let stored: f64 = w.parse().unwrap();
                assert_eq!((printed as f32) as f64, stored, "FLOAT printed as {f}");
                assert!(f.len() <= 14, "FLOAT printed short, got {f}");
            }
            (None, None) => {}
            other => panic!("FLOAT mismatch {other:?}"),
        }
        assert_eq!(text(&row[2]), want[1], "DOUBLE as the server prints it");
    }
    assert_eq!(text(&dumped[0][1]).unwrap(), "16777216");
    assert_eq!(text(&dumped[1][1]).unwrap(), "0.1");
}

#[test]
fn zero_dates_and_odd_times_are_written_as_stored() {
    let server = source_server();
    let db = db_with(
        &server,
        "dates",
        "SET SESSION sql_mode = ''; SET time_zone = '+00:00';
         CREATE TABLE t (id INT PRIMARY KEY, d DATE, dt DATETIME(3), ts TIMESTAMP NULL, tm TIME(6), y YEAR);
         INSERT INTO t VALUES
            (1, '0000-00-00', '0000-00-00 00:00:00.000', '0000-00-00 00:00:00', '-838:59:59.000000', 0),
            (2, '2020-00-15', '2020-02-00 10:00:00.5', NULL, '-00:00:00.000001', 1901),
            (3, '9999-12-31', '9999-12-31 23:59:59.999', '2038-01-19 03:14:07', '838:59:59.000000', 2155);",
    );
    let dir = tempfile::tempdir().unwrap();
    run_export(&export_options(&server, &[&format!("{db}.t")], dir.path()));
    let text = |r: &Vec<Option<Vec<u8>>>| -> Vec<String> {
        r.iter()
            .map(|v| {
                v.as_ref()
                    .map_or("NULL".into(), |b| String::from_utf8(b.clone()).unwrap())
            })
            .collect()
    };
    let rows: Vec<Vec<String>> = dumps::table_rows(dir.path(), &db, "t")
        .iter()
        .map(text)
        .collect();
    assert_eq!(
        rows,
        [
            [
                "1",
                "0000-00-00",
                "0000-00-00 00:00:00.000",
                "0000-00-00 00:00:00",
                "-838:59:59.000000",
                "0000"
            ],
            [
                "2",
                "2020-00-15",
                "2020-02-00 10:00:00.500",
                "NULL",
                "-00:00:00.000001",
                "1901"
            ],
            [
                "3",
                "9999-12-31",
                "9999-12-31 23:59:59.999",
                "2038-01-19 03:14:07",
                "838:59:59.000000",
                "2155"
            ],
        ]
    );
}

/// Chunks of every key shape cover the table exactly once, in key order.
#[test]
fn chunks_cover_the_table_exactly_once_for_every_key_shape() {
    let server = source_server();
    let db = db_with(
        &server,
        "keys",
        "CREATE TABLE gaps (id BIGINT PRIMARY KEY, v INT);
         INSERT INTO gaps SELECT CAST(seq AS SIGNED) * CAST(seq AS SIGNED) - 500, seq FROM seq_1_to_100;
         CREATE TABLE strkey (k VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci PRIMARY KEY, v INT);
         INSERT INTO strkey SELECT CONCAT(CHAR(65 + seq % 26), '\u{e9}', seq, IF(seq % 2, ' ', 'z')), seq FROM seq_1_to_60;
         INSERT INTO strkey VALUES ('a', 1000), ('\u{e0}b', 1001), ('\u{1f600}', 1002);
         CREATE TABLE latin (k VARCHAR(20) CHARACTER SET latin1 PRIMARY KEY, v INT);
         INSERT INTO latin SELECT CONCAT(CHAR(192 + seq % 60 USING latin1), seq), seq FROM seq_1_to_50;
         CREATE TABLE composite (a INT, b VARCHAR(10), c DATE, v INT, PRIMARY KEY (a, b, c));
         INSERT INTO composite SELECT seq % 3, CONCAT('x', seq % 5), DATE('2024-01-01') + INTERVAL seq DAY, seq FROM seq_1_to_90;
         CREATE TABLE uniq (code CHAR(8) NOT NULL, maybe INT NULL, v INT, UNIQUE KEY nullable (maybe), UNIQUE KEY code (code));
         INSERT INTO uniq SELECT LPAD(seq * 7 % 101, 8, '0'), seq, seq FROM seq_1_to_40;
         CREATE TABLE nokey (a INT, b TEXT);
         INSERT INTO nokey SELECT seq % 4, REPEAT('n', seq % 3) FROM seq_1_to_25;
         INSERT INTO nokey VALUES (1, ''), (1, '');
         CREATE TABLE empty (id INT PRIMARY KEY, v INT);
         CREATE TABLE enumkey (e ENUM('zeta', 'alpha', 'mid') NOT NULL, n INT NOT NULL, PRIMARY KEY (e, n));
         INSERT INTO enumkey SELECT ELT(1 + seq % 3, 'zeta', 'alpha', 'mid'), seq FROM seq_1_to_30;",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut opts = export_options(&server, &[&format!("{db}.*")], dir.path());
    opts.chunk_rows = Some(7);
    let summary = run_export(&opts);
    assert_eq!(summary.tables.len(), 8);
    // A warning names the table without a key.
    assert!(
        summary
            .warnings
            .iter()
            .any(|w| w.contains("nokey") && w.contains("one chunk")),
        "{:?}",
        summary.warnings
    );

    for (table, order, key, chunks) in [
        ("gaps", "id", vec!["id"], 15),
        ("strkey", "k", vec!["k"], 9),
        ("latin", "k", vec!["k"], 8),
        ("composite", "a, b, c", vec!["a", "b", "c"], 13),
        ("uniq", "code", vec!["code"], 6),
        ("empty", "id", vec!["id"], 1),
        ("enumkey", "e, n", vec!["e", "n"], 5),
    ] {
        let desc = dumps::description(dir.path(), &db, table);
        assert_eq!(desc.key.columns, key, "{table}: key");
        assert_eq!(desc.chunks.len(), chunks, "{table}: chunk count");
        let dumped = dumps::table_rows(dir.path(), &db, table);
        let source = source_rows(&server, &db, table, "*", order);
        assert_eq!(dumped, source, "{table}: rows, in key order");
        // Every chunk but the last holds exactly chunk_rows rows.
        for c in &desc.chunks[..desc.chunks.len() - 1] {
            assert_eq!(
                c.written.as_ref().unwrap().rows,
                7,
                "{table}: chunk {}",
                c.number
            );
        }
    }
    let uniq = dumps::description(dir.path(), &db, "uniq");
    assert_eq!(
        uniq.key.index.as_deref(),
        Some("code"),
        "the nullable unique key is not used"
    );

    let nokey = dumps::description(dir.path(), &db, "nokey");
    assert_eq!(nokey.chunks.len(), 1);
    assert_eq!(format!("{:?}", nokey.key.kind), "None");
    assert_eq!(
        sorted(dumps::table_rows(dir.path(), &db, "nokey")),
        sorted(source_rows(&server, &db, "nokey", "*", "a"))
    );
    let empty = dumps::table_rows(dir.path(), &db, "empty");
    assert!(empty.is_empty());
}

#[test]
fn where_applies_to_every_chunk() {
    let server = source_server();
    let db = db_with(
        &server,
        "where",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT);
         INSERT INTO t SELECT seq, seq % 10 FROM seq_1_to_200;",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut opts = export_options(&server, &[&format!("{db}.t")], dir.path());
    opts.where_clause = Some("v = 3".into());
    opts.chunk_rows = Some(6);
    let summary = run_export(&opts);
    assert_eq!(summary.rows, 20);
    assert_eq!(summary.tables[0].chunks, 4);
    assert_eq!(
        dumps::table_rows(dir.path(), &db, "t"),
        server.query_rows(&format!("SELECT * FROM `{db}`.t WHERE v = 3 ORDER BY id"))
    );
}

#[test]
fn a_per_table_where_combines_with_the_global_one_and_is_recorded() {
    let server = source_server();
    let db = db_with(
        &server,
        "tablewhere",
        "CREATE TABLE a (id INT PRIMARY KEY, v INT);
         INSERT INTO a SELECT seq, seq % 10 FROM seq_1_to_200;
         CREATE TABLE b (id INT PRIMARY KEY, v INT);
         INSERT INTO b SELECT seq, seq % 10 FROM seq_1_to_200;",
    );
    let dir = tempfile::tempdir().unwrap();
    let own = format!("{db}.a: v = 3 OR v = 4");
    let wheres = ["--where", "id > 100", "--where", own.as_str()];
    let args = export_args(
        &server,
        &format!("{db}.*"),
        dir.path(),
        &[&wheres[..], &["--chunk-rows", "7"]].concat(),
    );
    assert_success(&myspool(&args));
    // a: both conditions (the OR inside its own stays whole); b: the global one.
    assert_eq!(
        dumps::table_rows(dir.path(), &db, "a"),
        server.query_rows(&format!(
            "SELECT * FROM `{db}`.a WHERE id > 100 AND (v = 3 OR v = 4) ORDER BY id"
        ))
    );
    assert_eq!(dumps::table_rows(dir.path(), &db, "a").len(), 20);
    assert_eq!(dumps::table_rows(dir.path(), &db, "b").len(), 100);
    let manifest = std::fs::read_to_string(dir.path().join("manifest.json")).unwrap();
    assert!(
        manifest.contains(r#""table_where":[{"db":"#) || manifest.contains(r#""table_where": ["#),
        "{manifest}"
    );
    let status = myspool(&["status", "--dir", &path_arg(dir.path())]);
    assert_success(&status);
    let text = stdout(&status);
    assert!(text.contains("rows where: id > 100"), "{text}");
    assert!(
        text.contains(&format!("rows of {db}.a where: v = 3 OR v = 4")),
        "{text}"
    );

    // Rerun with another per-table condition: refused, the dump untouched.
    let other = format!("{db}.a: v = 5");
    let changed = export_args(
        &server,
        &format!("{db}.*"),
        dir.path(),
        &[
            "--where",
            "id > 100",
            "--where",
            &other,
            "--chunk-rows",
            "7",
        ],
    );
    let err = assert_one_line_error(&myspool(&changed));
    assert!(err.contains("per-table --where"), "{err}");
    assert_eq!(dumps::table_rows(dir.path(), &db, "a").len(), 20);

    // A condition for a table the export does not include: refused by name,
    // nothing written.
    let fresh = tempfile::tempdir().unwrap();
    let stray = format!("{db}.nope: v = 1");
    let out = myspool(&export_args(
        &server,
        &format!("{db}.a"),
        fresh.path(),
        &["--where", &stray],
    ));
    let err = assert_one_line_error(&out);
    assert!(err.contains(&format!("--where names {db}.nope")), "{err}");
    assert!(!fresh.path().join("manifest.json").exists());
}

#[test]
fn copy_takes_per_table_wheres_too() {
    let (src, dst) = (source_server(), target_server());
    let db = db_with(
        &src,
        "copywhere",
        "CREATE TABLE a (id INT PRIMARY KEY, v INT);
         INSERT INTO a SELECT seq, seq % 10 FROM seq_1_to_100;
         CREATE TABLE b (id INT PRIMARY KEY, v INT);
         INSERT INTO b SELECT seq, seq % 10 FROM seq_1_to_100;",
    );
    let into = dst.fresh_db("copywhere");
    let work = tempfile::tempdir().unwrap();
    let d = path_arg(&work.path().join("job"));
    let own = format!("{db}.b: v = 1");
    let out = myspool(&[
        "copy",
        "--from",
        &src.url(),
        "--to",
        &dst.url(),
        "--table",
        &format!("{db}.*"),
        "--dir",
        &d,
        "--exec",
        "cat",
        "--where",
        "id <= 50",
        "--where",
        &own,
        "--into",
        &into,
    ]);
    assert_success(&out);
    let count = |t: &str| dst.scalar(&format!("SELECT COUNT(*) FROM `{into}`.{t}"));
    assert_eq!(count("a").as_deref(), Some("50"));
    assert_eq!(count("b").as_deref(), Some("5"));
}

#[test]
fn db_star_takes_base_tables_and_views_are_refused() {
    let server = source_server();
    let db = db_with(
        &server,
        "star",
        "CREATE TABLE a (id INT PRIMARY KEY); INSERT INTO a VALUES (1);
         CREATE TABLE b (id INT PRIMARY KEY); INSERT INTO b VALUES (2);
         CREATE VIEW v AS SELECT * FROM a;",
    );
    let dir = tempfile::tempdir().unwrap();
    let summary = run_export(&export_options(&server, &[&format!("{db}.*")], dir.path()));
    let names: Vec<&str> = summary.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let m = dumps::manifest(dir.path());
    assert!(m.complete);
    assert_eq!(m.format_version, 1);
    let schema =
        std::fs::read_to_string(dir.path().join(&m.tables[0].dir).join("schema.sql")).unwrap();
    assert!(schema.starts_with("CREATE TABLE `a`"), "{schema}");
    // Dumps hold table data: private to their owner.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let table_dir = dir.path().join(&m.tables[0].dir);
    assert_eq!(mode(&table_dir), 0o700);
    assert_eq!(mode(&dir.path().join(&db)), 0o700);
    for f in ["manifest.json", ".myspool.lock"] {
        assert_eq!(mode(&dir.path().join(f)), 0o600, "{f}");
    }
    for f in ["000001.csv.gz", "table.json", "schema.sql"] {
        assert_eq!(mode(&table_dir.join(f)), 0o600, "{f}");
    }
    let database = std::fs::read_to_string(dir.path().join(&db).join("database.sql")).unwrap();
    assert!(database.contains("utf8mb4"), "{database}");

    let dir2 = tempfile::tempdir().unwrap();
    let err = export(&export_options(&server, &[&format!("{db}.v")], dir2.path())).unwrap_err();
    assert!(format!("{err:#}").contains("is a view"), "{err:#}");
}

#[test]
fn awkward_names_are_quoted_everywhere() {
    let server = source_server();
    let db = server.fresh_db("names");
    let table = "a`b; DROP TABLE x; --";
    server.query(&format!(
        "USE `{db}`; CREATE TABLE `{db}`.`a``b; DROP TABLE x; --` (`sel ect` INT PRIMARY KEY, `é\"'` TEXT);
         INSERT INTO `{db}`.`a``b; DROP TABLE x; --` SELECT seq, CONCAT('v', seq) FROM seq_1_to_10;"
    ));
    let dir = tempfile::tempdir().unwrap();
    let pattern = format!("{db}.{table}");
    let mut opts = export_options(&server, &[&pattern], dir.path());
    opts.chunk_rows = Some(3);
    run_export(&opts);
    assert_eq!(
        dumps::table_rows(dir.path(), &db, table),
        server.query_rows(&format!(
            "SELECT * FROM `{db}`.`a``b; DROP TABLE x; --` ORDER BY 1"
        ))
    );
    let entry = dumps::entry(dir.path(), &db, table);
    assert!(
        !entry.dir.contains('`') && !entry.dir.contains(' '),
        "{}",
        entry.dir
    );
}

#[test]
fn rerun_keeps_finished_chunks_and_refuses_other_options() {
    let server = source_server();
    let db = db_with(
        &server,
        "rerun",
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT);
         INSERT INTO t SELECT seq, REPEAT('x', seq % 50) FROM seq_1_to_100;",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut opts = export_options(&server, &[&format!("{db}.t")], dir.path());
    opts.chunk_rows = Some(10);
    let first = run_export(&opts);
    assert_eq!(first.chunks_written, 10);

    let again = run_export(&opts);
    assert_eq!(again.chunks_written, 0);
    assert_eq!(again.chunks_kept, 10);
    assert_eq!(again.rows, 100);

    let mut other = opts.clone();
    other.chunk_rows = Some(20);
    let err = format!("{:#}", export(&other).unwrap_err());
    assert!(
        err.contains("--chunk-rows was Some(10), now Some(20)"),
        "{err}"
    );
    let mut other = opts.clone();
    other.where_clause = Some("id > 5".into());
    let err = format!("{:#}", export(&other).unwrap_err());
    assert!(err.contains("--where"), "{err}");

    // A directory with other files and no manifest is not written into.
    let busy = tempfile::tempdir().unwrap();
    std::fs::write(busy.path().join("notes.txt"), "mine").unwrap();
    let err = format!(
        "{:#}",
        export(&export_options(&server, &[&format!("{db}.t")], busy.path())).unwrap_err()
    );
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn a_corrupted_chunk_is_exported_again_on_rerun() {
    let server = source_server();
    let db = db_with(
        &server,
        "corrupt",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT);
         INSERT INTO t SELECT seq, seq FROM seq_1_to_50;",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut opts = export_options(&server, &[&format!("{db}.t")], dir.path());
    opts.chunk_rows = Some(10);
    run_export(&opts);
    let entry = dumps::entry(dir.path(), &db, "t");
    let desc = dumps::description(dir.path(), &db, "t");
    // Make the table look unfinished with chunk 2 damaged and chunk 4 gone.
    let mut unfinished = desc.clone();
    unfinished.complete = false;
    let log: String = unfinished
        .chunks
        .iter_mut()
        .map(|c| {
            let stats = c.written.take().unwrap();
            format!(
                "{{\"number\":{},\"rows\":{},\"bytes\":{},\"csv_bytes\":{},\"sha256\":\"{}\"}}\n",
                c.number, stats.rows, stats.bytes, stats.csv_bytes, stats.sha256
            )
        })
        .collect();
    let tdir = dir.path().join(&entry.dir);
    myspool::dump::DumpDir::new(dir.path())
        .write_table(&entry, &unfinished)
        .unwrap();
    std::fs::write(tdir.join("export.log"), log).unwrap();
    std::fs::write(tdir.join("000002.csv.gz"), b"garbage").unwrap();
    std::fs::remove_file(tdir.join("000004.csv.gz")).unwrap();
    let mut m = dumps::manifest(dir.path());
    m.complete = false;
    myspool::dump::DumpDir::new(dir.path())
        .write_manifest(&m)
        .unwrap();

    let summary = run_export(&opts);
    assert_eq!(summary.chunks_written, 2);
    assert_eq!(summary.chunks_kept, 3);
    assert!(summary
        .warnings
        .iter()
        .any(|w| w.contains("000002") && w.contains("checksum")));
    assert!(summary
        .warnings
        .iter()
        .any(|w| w.contains("000004") && w.contains("missing")));
    assert_eq!(dumps::description(dir.path(), &db, "t"), desc);
}

/// Runs the export (slowed down) and kills it with SIGKILL once `export.log`
/// shows `chunks_done` chunks.
fn kill_export_after(args: &[String], log: &Path, chunks_done: usize) {
    let killed = kill_9_when(args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "40")], || {
        line_count(log) >= chunks_done
    });
    assert!(
        killed,
        "the export ended before {chunks_done} chunks were done"
    );
}

#[test]
fn kill_9_mid_export_then_rerun_gives_the_same_dump() {
    let server = source_server();
    let db = db_with(
        &server,
        "kill",
        "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(64), b VARBINARY(16));
         INSERT INTO t SELECT seq, MD5(seq), UNHEX(MD5(seq)) FROM seq_1_to_30000;
         CREATE TABLE u (a INT, b INT, PRIMARY KEY (a, b));
         INSERT INTO u SELECT seq % 7, seq FROM seq_1_to_5000;",
    );
    let reference = tempfile::tempdir().unwrap();
    let t = format!("{db}.*");
    let args = |dir: &Path| export_args(&server, &t, dir, &["--chunk-rows", "1000", "--jobs", "2"]);
    assert_success(&myspool(&args(reference.path())));

    // Kill at different moments: after 2, 9 and 20 chunks of table t.
    for (round, kill_at) in [2usize, 9, 20].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let args = args(dir.path());
        let log = dir.path().join(&db).join("t").join("export.log");
        kill_export_after(&args, &log, kill_at);
        // A second kill during the rerun, then a clean finish.
        if round == 1 {
            kill_export_after(&args, &log, kill_at + 5);
        }
        let out = myspool(&args);
        assert!(out.status.success(), "rerun: {}", stderr(&out));
        assert_eq!(
            dumps::manifest(dir.path()).consistency.as_deref(),
            Some("synchronized-snapshots, resumed with synchronized-snapshots")
        );
        for table in ["t", "u"] {
            let a = dumps::description(reference.path(), &db, table);
            let b = dumps::description(dir.path(), &db, table);
            assert_eq!(
                a.chunks, b.chunks,
                "{table}: same chunks, sizes and checksums"
            );
            assert_eq!(
                dumps::table_rows(dir.path(), &db, table),
                source_rows(&server, &db, table, "*", "1, 2")
            );
        }
        let leftovers: Vec<PathBuf> = std::fs::read_dir(dir.path().join(&db).join("t"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with(".tmp") || name == "export.log"
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

fn big_rows_table(server: &Server, db: &str, rows: u32, row_bytes: u32) {
    server.query(&format!(
        "USE `{db}`; CREATE TABLE `{db}`.big (id INT PRIMARY KEY, body LONGTEXT);
         INSERT INTO `{db}`.big SELECT seq, REPEAT(MD5(seq), {row_bytes} / 32) FROM seq_1_to_{rows};"
    ));
}

/// The server gives up on a client that does not read for net_write_timeout
/// seconds. With the disk side stalling for 2 s per chunk, the export still
/// succeeds: the reader spills instead of leaving the socket unread.
#[test]
fn slow_disk_does_not_stall_the_socket_even_with_net_write_timeout_1() {
    let server = Server::shared(&["--net-write-timeout=1"]);
    let db = server.fresh_db("slowdisk");
    // 2 chunks of 24 MiB each: far more than the socket buffers can absorb.
    big_rows_table(&server, &db, 1536, 32 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let mut opts = export_options(&server, &[&format!("{db}.big")], dir.path());
    opts.chunk_rows = Some(768);
    opts.jobs = 1;
    opts.hooks.write_delay = Duration::from_secs(2);
    // Take away the second line of defence: the design must hold without it.
    opts.hooks.raise_net_write_timeout = false;
    let summary = run_export(&opts);
    assert_eq!(summary.rows, 1536);
    assert!(
        summary.chunks_spilled >= 1,
        "the reader should have spilled"
    );
    assert_eq!(dumps::table_rows(dir.path(), &db, "big").len(), 1536,);

    // The control: the same export with the spill turned off fails the way
    // a naive streaming client does.
    let dir2 = tempfile::tempdir().unwrap();
    let mut naive = export_options(&server, &[&format!("{db}.big")], dir2.path());
    naive.chunk_rows = Some(768);
    naive.jobs = 1;
    naive.hooks = opts.hooks.clone();
    naive.hooks.spill = false;
    let err = format!(
        "{:#}",
        export(&naive).expect_err("a stalled reader should be dropped")
    );
    assert!(err.contains("chunk 000001"), "{err}");
}

#[test]
fn peak_memory_stays_under_64_mib_with_1_mib_rows() {
    let server = Server::shared(&["--max-allowed-packet=64M"]);
    let db = server.fresh_db("rss");
    // About 300 MiB: 200 rows of 1 MiB, then 100k rows of 1 KiB.
    server.query(&format!(
        "USE `{db}`; CREATE TABLE `{db}`.t (id INT PRIMARY KEY, body LONGBLOB, note TEXT);
         INSERT INTO `{db}`.t SELECT seq, REPEAT(UNHEX(MD5(seq)), 65536), 'big' FROM seq_1_to_200;
         INSERT INTO `{db}`.t SELECT 1000 + seq, REPEAT(UNHEX(MD5(seq)), 64), REPEAT('n', seq % 100) FROM seq_1_to_100000;"
    ));
    let dir = tempfile::tempdir().unwrap();
    let table = format!("{db}.t");
    let out = myspool(&export_args(
        &server,
        &table,
        dir.path(),
        &["--jobs", "2", "--chunk-rows", "20000", "--json"],
    ));
    assert_success(&out);
    let summary = json(&out);
    assert_eq!(summary["rows"], 100_200);
    let csv_bytes = summary["csv_bytes"].as_u64().unwrap();
    assert!(
        csv_bytes > 500 << 20,
        "hex doubles 300 MiB of blobs: {csv_bytes}"
    );
    let rss = summary["peak_rss_bytes"].as_u64().unwrap();
    eprintln!(
        "peak RSS exporting {csv_bytes} CSV bytes: {} MiB",
        rss >> 20
    );
    assert!(rss < 64 << 20, "peak RSS {} MiB", rss >> 20);
}

#[test]
fn jobs_share_one_snapshot_or_say_why_not() {
    let server = source_server();
    let db = server.fresh_db("snap");
    server.query(&format!(
        "USE `{db}`; CREATE TABLE `{db}`.t (id INT PRIMARY KEY); INSERT INTO `{db}`.t SELECT seq FROM seq_1_to_50;
         CREATE USER IF NOT EXISTS 'reader_{db}'@'%' IDENTIFIED BY 'pw-{db}';
         GRANT SELECT ON `{db}`.* TO 'reader_{db}'@'%';"
    ));
    let dir = tempfile::tempdir().unwrap();
    let mut opts = export_options(&server, &[&format!("{db}.t")], dir.path());
    opts.chunk_rows = Some(10);
    opts.jobs = 2;
    let s = run_export(&opts);
    assert_eq!(s.consistency.as_deref(), Some("synchronized-snapshots"));

    // Without RELOAD the snapshots cannot be synchronized: a warning, and the
    // manifest says so.
    let url = format!("mysql://reader_{db}:pw-{db}@127.0.0.1:{}", server.port());
    let dir = tempfile::tempdir().unwrap();
    let mut opts = export_options(&server, &[&format!("{db}.t")], dir.path());
    opts.source = ConnSpec::parse(&url).unwrap();
    opts.chunk_rows = Some(10);
    opts.jobs = 2;
    let s = run_export(&opts);
    assert_eq!(s.consistency.as_deref(), Some("per-connection-snapshots"));
    assert!(
        s.warnings.iter().any(|w| w.contains("RELOAD")),
        "{:?}",
        s.warnings
    );
    assert_eq!(
        dumps::manifest(dir.path()).consistency.as_deref(),
        Some("per-connection-snapshots")
    );
    // …and --consistency locked refuses instead.
    let dir = tempfile::tempdir().unwrap();
    opts.dir = dir.path().to_path_buf();
    opts.consistency = myspool::export::Consistency::Locked;
    assert!(export(&opts).is_err());
    // One job is one snapshot.
    let dir = tempfile::tempdir().unwrap();
    opts.dir = dir.path().to_path_buf();
    opts.jobs = 1;
    assert_eq!(
        run_export(&opts).consistency.as_deref(),
        Some("single-snapshot")
    );
}

#[test]
fn bad_input_gets_one_line_errors_and_no_password_leaks() {
    let server = source_server();
    let db = db_with(
        &server,
        "bad",
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1);
         CREATE VIEW v AS SELECT * FROM t;",
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dump");
    let dir_s = dir.display().to_string();
    let port = server.port();
    let good = server.url();
    let wrong_pw = format!("mysql://root:Sekr1t-Pa55@127.0.0.1:{port}");
    let file = tmp.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let t = format!("{db}.t");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![wrong_pw.clone(), t.clone(), dir_s.clone()],
            "Access denied",
        ),
        (
            vec![good.clone(), format!("{db}.nope"), dir_s.clone()],
            "does not exist",
        ),
        (
            vec![good.clone(), "no_such_db.t".into(), dir_s.clone()],
            "database no_such_db does not exist",
        ),
        (
            vec![good.clone(), format!("{db}.v"), dir_s.clone()],
            "is a view",
        ),
        (
            vec![good.clone(), t.clone(), file.display().to_string()],
            "is not a directory",
        ),
        (
            vec![good.clone(), t.clone(), format!("{}/sub", file.display())],
            "Not a directory",
        ),
        (
            vec![
                format!("mysql://root@127.0.0.1:1"),
                t.clone(),
                dir_s.clone(),
            ],
            "connecting to mysql://root@127.0.0.1:1",
        ),
        (
            vec![
                format!("mysql://root:Sekr1t-Pa55@127.0.0.1:{port}/?nope=1"),
                t.clone(),
                dir_s.clone(),
            ],
            "unknown URL option",
        ),
        (
            vec![good.clone(), "justatable".into(), dir_s.clone()],
            "expected DB.TABLE",
        ),
    ];
    for (args, expect) in cases {
        let out = myspool(&[
            "export", "--from", &args[0], "--table", &args[1], "--dir", &args[2],
        ]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            err.contains(expect),
            "{args:?}: expected {expect:?} in {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("myspool: error: "), "{err}");
        assert!(!err.contains("Sekr1t-Pa55"), "password leaked: {err}");
        assert!(!stdout(&out).contains("Sekr1t-Pa55"));
    }
    // Nothing half-written was left behind by the failures.
    if dir.exists() {
        let m = myspool::dump::DumpDir::new(&dir).read_manifest().unwrap();
        assert!(m.is_none() || !m.unwrap().complete);
    }
    // MYSQL_PWD is used when the URL has no password, and never printed.
    let out = myspool_env(
        &[
            "export",
            "--from",
            &format!("mysql://root@127.0.0.1:{port}"),
            "--table",
            &t,
            "--dir",
            &path_arg(&tmp.path().join("pwd")),
        ],
        &[("MYSQL_PWD", "Sekr1t-Pa55")],
    );
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("using password: YES"),
        "{err}"
    );
    assert!(!err.contains("Sekr1t-Pa55"));
}

#[test]
fn server_killed_mid_export_fails_clearly_and_a_rerun_finishes() {
    let mut server = Server::start(&[]);
    let db = "gone";
    server.query(&format!(
        "CREATE DATABASE {db}; USE {db}; CREATE TABLE {db}.t (id INT PRIMARY KEY, s CHAR(200));
         INSERT INTO {db}.t SELECT seq, MD5(seq) FROM seq_1_to_60000;"
    ));
    let dir = tempfile::tempdir().unwrap();
    let args = export_args(
        &server,
        "gone.t",
        dir.path(),
        &["--chunk-rows", "1000", "--jobs", "1"],
    );
    let child = spawn_myspool(&args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "100")]);
    let log = dir.path().join("gone/t/export.log");
    wait_until(Duration::from_secs(60), "2 chunks exported", || {
        line_count(&log) >= 2
    });
    server.kill();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "export survived a dead server?");
    assert!(err.contains("exporting chunk"), "{err}");
    let done_before = line_count(&log);
    assert!(done_before < 60, "the kill came too late to test anything");

    server.restart();
    let out = myspool(&args);
    assert_success(&out);
    assert_eq!(
        dumps::table_rows(dir.path(), db, "t"),
        source_rows(&server, db, "t", "*", "id")
    );
}

/// A tmpfs of a few MiB fills up mid-export: a clear error, no chunk recorded
/// that is not whole, and the same command finishes once there is room.
#[test]
fn disk_full_fails_clearly_and_resumes_when_space_is_freed() {
    let server = source_server();
    let db = db_with(
        &server,
        "full",
        "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(64));
         INSERT INTO t SELECT seq, MD5(seq) FROM seq_1_to_200000;",
    );
    let mount = Tmpfs::mount("size=3m");
    let ballast = mount.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 1 << 20]).unwrap();

    let dir = mount.path().join("dump");
    let table = format!("{db}.t");
    let args = export_args(
        &server,
        &table,
        &dir,
        &["--chunk-rows", "20000", "--compress", "none"],
    );
    let err = assert_one_line_error(&myspool(&args));
    assert!(err.contains("No space left on device"), "{err}");

    // Whatever was recorded as done is whole.
    dumps::assert_recorded_chunks_whole(&dir.join(&db).join("t"), "export.log", "csv");

    // Free space (the compressed rerun fits) and rerun the same command.
    std::fs::remove_file(&ballast).unwrap();
    mount.remount("size=64m");
    let out = myspool(&args);
    assert_success(&out);
    assert_eq!(
        dumps::table_rows(&dir, &db, "t"),
        source_rows(&server, &db, "t", "*", "id")
    );
}

#[test]
fn a_read_only_dir_is_refused_clearly() {
    let server = source_server();
    let mount = Tmpfs::mount("ro,size=1m");
    let out = myspool(&export_args(
        &server,
        "mysql.db",
        &mount.path().join("dump"),
        &[],
    ));
    drop(mount);
    let err = assert_one_line_error(&out);
    assert!(
        err.contains("Read-only file system") && err.contains("/dump"),
        "{err}"
    );
}

#[test]
fn progress_is_plain_lines_when_stderr_is_not_a_terminal() {
    let server = source_server();
    let db = db_with(
        &server,
        "progress",
        "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t SELECT seq FROM seq_1_to_3000;",
    );
    let dir = tempfile::tempdir().unwrap();
    let t = format!("{db}.t");
    let out = myspool_env(
        &export_args(&server, &t, dir.path(), &["--chunk-rows", "100"]),
        &[
            ("MYSPOOL_PROGRESS_INTERVAL", "0.01"),
            ("MYSPOOL_TEST_CHUNK_DELAY_MS", "10"),
        ],
    );
    assert_success(&out);
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains(" myspool export: ") && l.contains("/3000 rows"))
        .unwrap_or_else(|| panic!("no progress line in {err:?}"));
    // Stamped with the time, ISO 8601 UTC: `2026-11-29T15:07:19Z myspool export: …`.
    let (stamp, rest) = line.split_once(' ').unwrap();
    assert!(rest.starts_with("myspool export: "), "{line}");
    assert_eq!(stamp.len(), 20, "{line}");
    assert!(
        stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{line}"
    );
    assert!(line.contains("/s"), "{line}");
    assert!(
        !err.contains('\r') && !err.contains("\u{1b}["),
        "no bar drawing: {err:?}"
    );
    let summary = stdout(&out);
    assert!(summary.contains("3000 rows"), "{summary}");
}

/// The README's processing example (examples/uppercase.py) keeps NULL, '',
/// 'NULL', '\N', quotes and newlines exact through a real chunk.
#[test]
fn the_readme_python_example_keeps_nulls_exact() {
    let server = source_server();
    let db = db_with(
        &server,
        "python",
        "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(50) NULL, other TEXT NULL, b VARBINARY(4) NULL);
         INSERT INTO t VALUES (1, NULL, 'x', NULL), (2, '', NULL, X'00'), (3, 'NULL', '\\\\N', X''),
            (4, 'a \"b\", c\\r\\nd', 'line\\rbreak', X'0A0D'), (5, 'caf\u{e9} \u{1f600}', '', X'FF');",
    );
    let dir = tempfile::tempdir().unwrap();
    run_export(&export_options(&server, &[&format!("{db}.t")], dir.path()));
    let entry = dumps::entry(dir.path(), &db, "t");
    let desc = dumps::description(dir.path(), &db, "t");
    let csv = dumps::chunk_csv(&dir.path().join(&entry.dir).join(&desc.chunks[0].file));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/uppercase.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .arg("name")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test (scripts/test.sh installs it)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&csv).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let mut reader = myspool::dialect::Reader::new(&out.stdout[..]);
    let mut rec = Vec::new();
    let mut got = Vec::new();
    while reader.read_record(&mut rec).unwrap() {
        got.push(rec.clone());
    }
    let mut want = vec![vec![
        Some(b"id".to_vec()),
        Some(b"name".to_vec()),
        Some(b"other".to_vec()),
        Some(b"b".to_vec()),
    ]];
    let (_, rows) = dumps::chunk_records(&dir.path().join(&entry.dir).join(&desc.chunks[0].file));
    for mut row in rows {
        if let Some(name) = &row[1] {
            row[1] = Some(
                String::from_utf8(name.clone())
                    .unwrap()
                    .to_uppercase()
                    .into_bytes(),
            );
        }
        want.push(row);
    }
    assert_eq!(got, want);
    assert_eq!(got[1][1], None, "NULL stays NULL");
    assert_eq!(got[2][1], Some(Vec::new()), "'' stays ''");
}

/// A server sends a row bigger than its own max_allowed_packet (the limit is
/// on what it reads); the client must take it instead of failing with the
/// driver's "Packet is larger than max_allowed_packet".
#[test]
fn a_row_bigger_than_the_sources_max_allowed_packet_exports_whole() {
    let src = source_server();
    let small = Server::shared(&["--max-allowed-packet=1M"]);
    let (db, dir) = dumped_db(
        &src,
        "bigrow",
        "CREATE TABLE t (id INT PRIMARY KEY, b LONGBLOB);
         INSERT INTO t VALUES (1, REPEAT(X'00FF', 1500000)), (2, X'01');",
        "t",
        10,
    );
    assert_success(&myspool(&load_args(
        dir.path(),
        &small,
        &["--progress", "none"],
    )));
    let again = tempfile::tempdir().unwrap();
    dump(&small, &[&format!("{db}.t")], again.path(), 10);
    let dir_arg = again.path().to_str().unwrap();
    assert_success(&myspool(&["verify", "--dir", dir_arg, "--to", &src.url()]));
}

/// `--compress zstd`: chunks named `*.csv.zst` that `process` reads and
/// writes the same way, `load` and `verify` read, and the manifest records;
/// a rerun with gzip is refused; a damaged chunk is a one-line error naming
/// it.
#[test]
fn zstd_chunks_go_through_process_load_and_verify() {
    let server = source_server();
    let db = db_with(
        &server,
        "zstd",
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40) NULL, b VARBINARY(8));
         INSERT INTO t SELECT seq, IF(seq % 7 = 0, NULL, CONCAT('row \"', seq, '\"\\n')), UNHEX(HEX(seq)) FROM seq_1_to_3000;",
    );
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("dump");
    let table = format!("{db}.t");
    let zstd = ["--compress", "zstd", "--level", "3", "--chunk-rows", "1000"];
    assert_success(&myspool(&export_args(&server, &table, &dir, &zstd)));
    let manifest = dumps::manifest(&dir);
    assert_eq!(manifest.export.compress, myspool::dump::Compress::Zstd);
    assert_eq!(manifest.export.level, 3);
    let desc = dumps::description(&dir, &db, "t");
    let files: Vec<&str> = desc.chunks.iter().map(|c| c.file.as_str()).collect();
    assert_eq!(
        files,
        ["000001.csv.zst", "000002.csv.zst", "000003.csv.zst"]
    );
    let dumped = dumps::table_rows(&dir, &db, "t");
    assert_eq!(dumped, source_rows(&server, &db, "t", "*", "id"));

    // The same export with another compression is refused, as today.
    let gzip = ["--compress", "gzip", "--chunk-rows", "1000"];
    let err = assert_one_line_error(&myspool(&export_args(&server, &table, &dir, &gzip)));
    assert!(err.contains("compress"), "{err}");

    // process reads zstd and writes zstd.
    let out = work.path().join("out");
    assert_success(&myspool(&process_cli(&dir, &out, &["--exec", "cat"], &[])));
    let processed = dumps::description(&out, &db, "t");
    assert!(processed
        .chunks
        .iter()
        .all(|c| c.file.ends_with(".csv.zst")));

    // load and verify read them: the copy equals the source.
    let into = format!("{db}_z");
    let load = load_args(&out, &server, &["--into", &into, "--progress", "none"]);
    assert_success(&myspool(&load));
    assert_same_table(&server, &db, &server, &into, "t", "id");
    let verify = [
        "verify",
        "--dir",
        &path_arg(&dir),
        "--to",
        &server.url(),
        "--into",
        &into,
    ];
    assert_success(&myspool(&verify));

    // A damaged chunk: one line naming the file.
    let chunk = dir
        .join(&dumps::entry(&dir, &db, "t").dir)
        .join("000002.csv.zst");
    let mut bytes = std::fs::read(&chunk).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xA5;
    std::fs::write(&chunk, &bytes).unwrap();
    let into = format!("{db}_bad");
    let load = load_args(&dir, &server, &["--into", &into, "--progress", "none"]);
    let err = assert_one_line_error(&myspool(&load));
    assert!(err.contains(&chunk.display().to_string()), "{err}");
}

/// Without `--chunk-rows`, a keyed table is cut by the rows the planner
/// counts, not by the server's `TABLE_ROWS` (an estimate, on MySQL 8 a
/// cached one, and of the whole table): `--where` selects 45,000 of 60,000
/// rows, and the chunks are those of 45,000 (the estimate, about 60,000 on
/// MariaDB here, would have made three chunks of 15,000).
#[test]
fn automatic_chunks_follow_the_rows_counted_not_the_statistics() {
    let server = source_server();
    let db = db_with(
        &server,
        "auto_chunks",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT);
         INSERT INTO t SELECT seq, seq FROM seq_1_to_60000;",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut opts = export_options(&server, &[&format!("{db}.t")], dir.path());
    opts.chunk_rows = None;
    opts.jobs = 1;
    opts.where_clause = Some("id <= 45000".into());
    let summary = run_export(&opts);
    assert_eq!(summary.rows, 45_000);
    // 45,000 rows for one job want four chunks of 11,250: a whole number of
    // 10,000-row steps, so 10,000, and five chunks.
    let desc = dumps::description(dir.path(), &db, "t");
    assert_eq!((desc.chunk_rows, desc.chunks.len()), (10_000, 5));
    let rows: Vec<u64> = desc
        .chunks
        .iter()
        .map(|c| c.written.as_ref().unwrap().rows)
        .collect();
    assert_eq!(rows, [10_000, 10_000, 10_000, 10_000, 5_000]);
}
