//! `myspool copy` (export → process → load as one job) and `myspool status`.

mod common;

use std::process::{Command, Output, Stdio};

use common::{myspool_bin, Server};

fn myspool(args: &[&str]) -> Output {
    Command::new(myspool_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn rows(server: &Server, sql: &str) -> Vec<Vec<Option<String>>> {
    server.query_strings(sql)
}

#[test]
fn copy_with_a_processing_step_survives_kill_9_at_every_phase() {
    let src = Server::shared(&[]);
    let dst = Server::shared(&["--innodb-autoinc-lock-mode=1"]);
    let db = src.fresh_db("copy");
    src.query(&format!(
        "USE `{db}`; CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) NULL, b VARBINARY(8));
         INSERT INTO t SELECT seq, IF(seq % 5, CONCAT('n', seq), NULL), UNHEX(HEX(seq)) FROM seq_1_to_1200;"
    ));
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("job");
    let d = dir.display().to_string();
    let (from, to, table) = (src.url(), dst.url(), format!("{db}.t"));
    let into = dst.fresh_db("copied");
    dst.query(&format!("DROP DATABASE `{into}`"));
    // sed capitalizes the names (not the header); NULLs and hex stay as
    // they are.
    let args = [
        "copy",
        "--from",
        &from,
        "--to",
        &to,
        "--table",
        &table,
        "--dir",
        &d,
        "--exec",
        "sleep 0.05; sed '2,$ s/\"n/\"N/'",
        "--chunk-rows",
        "100",
        "--jobs",
        "2",
        "--autoinc",
        "drop",
        "--into",
        &into,
    ];
    // Kill during the export, during processing, during the load.
    for (prefix, needle, at) in [
        ("export.log", "sha256", 3),
        ("process.log", "sha256", 4),
        ("load@", "\"committing\"", 4),
    ] {
        let killed = common::kill_9_when(&args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "30")], || {
            common::count_in_files(&dir, prefix, needle) >= at
        });
        assert!(killed, "copy ended before the kill in {prefix}");
        // status tells what is done and what comes next.
        let st = myspool(&["status", "--dir", &format!("{d}/export")]);
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
    }
    let out = myspool(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        rows(
            &dst,
            &format!("SELECT id, name, HEX(b) FROM `{into}`.t ORDER BY id")
        ),
        rows(
            &src,
            &format!("SELECT id, REPLACE(name, 'n', 'N'), HEX(b) FROM `{db}`.t ORDER BY id")
        )
    );
    let create = rows(&dst, &format!("SHOW CREATE TABLE `{into}`.t"))[0][1]
        .clone()
        .unwrap();
    assert!(create.contains("AUTO_INCREMENT"), "{create}");
    // A rerun of a finished copy does nothing twice.
    let again = myspool(&[&args[..], &["--json"]].concat());
    assert!(again.status.success());
    let s: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(s["load"]["rows"], 0);
    assert_eq!(s["export"]["chunks_written"], 0);
}

#[test]
fn status_reports_every_phase_and_how_to_continue() {
    let src = Server::shared(&[]);
    let dst = common::target_server();
    let db = src.fresh_db("status");
    src.query(&format!(
        "USE `{db}`; CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_500;"
    ));
    let work = tempfile::tempdir().unwrap();
    let dump = work.path().join("dump");
    let out = work.path().join("out");
    let (d, o) = (dump.display().to_string(), out.display().to_string());
    let table = format!("{db}.t");
    assert!(myspool(&[
        "export",
        "--from",
        &src.url(),
        "--table",
        &table,
        "--dir",
        &d,
        "--chunk-rows",
        "100"
    ])
    .status
    .success());
    let exec = "if [ \"$MYSPOOL_CHUNK\" = 3 ]; then exit 1; fi; cat";
    assert!(
        !myspool(&["process", "--dir", &d, "--out", &o, "--exec", exec])
            .status
            .success()
    );
    assert!(myspool(&["load", "--dir", &d, "--to", &dst.url()])
        .status
        .success());

    let st = myspool(&["status", "--dir", &d, "--json"]);
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    let t = &s["tables"][0];
    assert_eq!(
        (
            t["chunks"].as_u64(),
            t["exported"].as_u64(),
            t["rows"].as_u64()
        ),
        (Some(5), Some(5), Some(500))
    );
    assert_eq!(t["processed"][0]["done"], 4);
    assert_eq!(t["processed"][0]["failed"], serde_json::json!([3]));
    assert_eq!(t["loaded"][0]["committed"], 5);
    assert_eq!(t["loaded"][0]["complete"], true);
    let next: Vec<String> = s["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(next.len(), 1, "{next:?}");
    assert!(
        next[0].starts_with("myspool process --dir ") && next[0].contains("--exec 'if ["),
        "{next:?}"
    );

    let human = String::from_utf8_lossy(&myspool(&["status", "--dir", &o]).stdout).into_owned();
    assert!(human.contains("4 of 5 chunks processed"), "{human}");
    assert!(
        human.contains("to continue:") && human.contains("myspool process"),
        "{human}"
    );
}

/// `wait_timeout=2` on both servers and a processing step slower than that:
/// no connection is left idle long enough to be dropped (or it is reopened).
#[test]
fn copy_survives_a_short_wait_timeout_and_a_slow_processing_step() {
    let server = Server::shared(&["--wait-timeout=2", "--innodb-autoinc-lock-mode=2"]);
    let db = server.fresh_db("waits");
    server.query(&format!(
        "USE `{db}`; CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10)); INSERT INTO t SELECT seq, seq FROM seq_1_to_300;"
    ));
    let work = tempfile::tempdir().unwrap();
    let d = work.path().join("job").display().to_string();
    let into = format!("{db}_copy");
    let table = format!("{db}.t");
    let out = myspool(&[
        "copy",
        "--from",
        &server.url(),
        "--to",
        &server.url(),
        "--table",
        &table,
        "--dir",
        &d,
        "--exec",
        "sleep 2.5; cat",
        "--chunk-rows",
        "100",
        "--jobs",
        "1",
        "--autoinc",
        "drop",
        "--into",
        &into,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        rows(&server, &format!("SELECT * FROM `{into}`.t ORDER BY id")),
        rows(&server, &format!("SELECT * FROM `{db}`.t ORDER BY id"))
    );
}

#[test]
fn copy_with_compress_none_keeps_both_dumps_plain_csv_and_loads_them() {
    let server = Server::shared(&["--innodb-autoinc-lock-mode=2"]);
    let db = server.fresh_db("plain");
    server.query(&format!(
        "USE `{db}`; CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20) NULL, b VARBINARY(4));
         INSERT INTO t SELECT seq, CASE seq % 3 WHEN 0 THEN NULL WHEN 1 THEN CONCAT('a\\nb', seq) ELSE '' END, UNHEX(HEX(seq)) FROM seq_1_to_500;"
    ));
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("job");
    let d = dir.display().to_string();
    let into = format!("{db}_copy");
    let table = format!("{db}.t");
    let out = myspool(&[
        "copy",
        "--from",
        &server.url(),
        "--to",
        &server.url(),
        "--table",
        &table,
        "--dir",
        &d,
        "--exec",
        "cat",
        "--compress",
        "none",
        "--chunk-rows",
        "100",
        "--into",
        &into,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for phase in ["export", "processed"] {
        let chunks = dir.join(phase).join(&db).join("t");
        let names: Vec<String> = std::fs::read_dir(&chunks)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("0000"))
            .collect();
        assert_eq!(names.len(), 5, "{phase}: {names:?}");
        assert!(
            names.iter().all(|n| n.ends_with(".csv")),
            "{phase}: {names:?}"
        );
        let first = std::fs::read_to_string(chunks.join("000001.csv")).unwrap();
        assert!(
            first.starts_with("\"id\",\"v\",\"b\"\n"),
            "{phase}: {first:.40}"
        );
    }
    assert_eq!(
        rows(
            &server,
            &format!("SELECT id, v, HEX(b) FROM `{into}`.t ORDER BY id")
        ),
        rows(
            &server,
            &format!("SELECT id, v, HEX(b) FROM `{db}`.t ORDER BY id")
        )
    );
}
