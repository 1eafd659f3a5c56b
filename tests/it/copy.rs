//! `myspool copy`: export → process → load as one job, its phases overlapping.

use std::process::Output;

use crate::common::*;

#[test]
fn copy_with_a_processing_step_survives_kill_9_at_every_phase() {
    let src = Server::shared(&[]);
    let dst = Server::shared(&["--innodb-autoinc-lock-mode=1"]);
    let db = db_with(
        &src,
        "copy",
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20) NULL, b VARBINARY(8));
         INSERT INTO t SELECT seq, IF(seq % 5, CONCAT('n', seq), NULL), UNHEX(HEX(seq)) FROM seq_1_to_1200;",
    );
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("job");
    let d = path_arg(&dir);
    let into = dst.fresh_db("copied");
    dst.query(&format!("DROP DATABASE `{into}`"));
    // sed capitalizes the names (not the header); NULLs and hex stay as
    // they are.
    let sed = "sleep 0.05; sed '2,$ s/\"n/\"N/'";
    let args = copy_args(&src, &dst, &db, &d, sed, &into, 2);
    // Kill during the export, during processing, during the load.
    for (prefix, needle, at) in [
        ("export.log", "sha256", 3),
        ("process.log", "sha256", 4),
        ("load@", "\"committing\"", 4),
    ] {
        let killed = kill_9_when(&args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "30")], || {
            count_in_files(&dir, prefix, needle) >= at
        });
        assert!(killed, "copy ended before the kill in {prefix}");
        // status tells what is done and what comes next.
        let st = myspool(&["status", "--dir", &format!("{d}/export")]);
        assert_success(&st);
    }
    let out = myspool(&args);
    assert_success(&out);
    assert_eq!(
        dst.query_strings(&format!(
            "SELECT id, name, HEX(b) FROM `{into}`.t ORDER BY id"
        )),
        src.query_strings(&format!(
            "SELECT id, REPLACE(name, 'n', 'N'), HEX(b) FROM `{db}`.t ORDER BY id"
        ))
    );
    let create = show_create(&dst, &into, "t");
    assert!(create.contains("AUTO_INCREMENT"), "{create}");
    // A rerun of a finished copy does nothing twice.
    let again = myspool(&[&args[..], &["--json".into()]].concat());
    assert!(again.status.success());
    let s = json(&again);
    assert_eq!(s["load"]["rows"], 0);
    assert_eq!(s["export"]["chunks_written"], 0);
}

/// `wait_timeout=2` on both servers and a processing step slower than that:
/// no connection is left idle long enough to be dropped (or it is reopened).
#[test]
fn copy_survives_a_short_wait_timeout_and_a_slow_processing_step() {
    let server = Server::shared(&["--wait-timeout=2", "--innodb-autoinc-lock-mode=2"]);
    let db = db_with(
        &server,
        "waits",
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10)); INSERT INTO t SELECT seq, seq FROM seq_1_to_300;",
    );
    let work = tempfile::tempdir().unwrap();
    let d = path_arg(&work.path().join("job"));
    let into = format!("{db}_copy");
    let args = copy_args(&server, &server, &db, &d, "sleep 2.5; cat", &into, 1);
    assert_copied(&myspool(&args), &server, &db, &into);
}

#[test]
fn copy_with_compress_none_keeps_both_dumps_plain_csv_and_loads_them() {
    let server = Server::shared(&["--innodb-autoinc-lock-mode=2"]);
    let db = db_with(
        &server,
        "plain",
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20) NULL, b VARBINARY(4));
         INSERT INTO t SELECT seq, CASE seq % 3 WHEN 0 THEN NULL WHEN 1 THEN CONCAT('a\\nb', seq) ELSE '' END, UNHEX(HEX(seq)) FROM seq_1_to_500;",
    );
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
    assert_success(&out);
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
    let values =
        |db: &str| server.query_strings(&format!("SELECT id, v, HEX(b) FROM `{db}`.t ORDER BY id"));
    assert_eq!(values(&into), values(&db));
}

/// The arguments of a copy of `{db}.t` through `exec` in chunks of 100 rows,
/// with `jobs` jobs and `--autoinc drop`, into `into`.
fn copy_args(
    from: &Server,
    to: &Server,
    db: &str,
    dir: &str,
    exec: &str,
    into: &str,
    jobs: usize,
) -> Vec<String> {
    [
        "copy",
        "--from",
        &from.url(),
        "--to",
        &to.url(),
        "--table",
        &format!("{db}.t"),
        "--dir",
        dir,
        "--exec",
        exec,
        "--chunk-rows",
        "100",
        "--jobs",
        &jobs.to_string(),
        "--autoinc",
        "drop",
        "--into",
        into,
    ]
    .map(String::from)
    .to_vec()
}

/// A fresh database whose `t` holds 600 rows: six chunks of a copy.
fn six_chunks(server: &Server, prefix: &str) -> String {
    db_with(
        server,
        prefix,
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10), KEY (v));
         INSERT INTO t SELECT seq, seq FROM seq_1_to_600;",
    )
}

#[test]
fn copy_loads_the_first_chunks_while_the_last_one_is_still_processing() {
    let server = Server::shared(&["--innodb-autoinc-lock-mode=2"]);
    let db = six_chunks(&server, "overlap");
    let work = tempfile::tempdir().unwrap();
    let d = path_arg(&work.path().join("job"));
    // The last chunk's processing waits (up to 20 s) for the load to commit
    // a chunk, and fails if it never does: a copy that loads only after
    // processing everything cannot pass.
    let exec = format!(
        r#"input=$(cat)
case "$input" in *'"600"'*)
  for i in $(seq 200); do grep -qs '"committed"' {d}/processed/*/*/load@*.jsonl && break; sleep 0.1; done
  grep -qs '"committed"' {d}/processed/*/*/load@*.jsonl || {{ echo "nothing was loaded while the last chunk was processed" >&2; exit 1; }} ;;
esac
printf '%s\n' "$input""#
    );
    let into = format!("{db}_copy");
    let out = myspool(&copy_args(&server, &server, &db, &d, &exec, &into, 2));
    assert_copied(&out, &server, &db, &into);
}

#[test]
fn a_chunk_that_fails_processing_stops_the_copy_after_the_chunks_before_it_and_a_rerun_finishes() {
    let server = Server::shared(&["--innodb-autoinc-lock-mode=2"]);
    let db = six_chunks(&server, "badchunk");
    let work = tempfile::tempdir().unwrap();
    let d = path_arg(&work.path().join("job"));
    let fixed = work.path().join("fixed");
    // Chunk 3 (ids 201..300) fails until the script is "fixed".
    let exec = format!(
        r#"input=$(cat)
case "$input" in *'"300"'*) [ -e {} ] || {{ echo "cannot handle row 300" >&2; exit 3; }} ;; esac
printf '%s\n' "$input""#,
        fixed.display()
    );
    let into = format!("{db}_copy");
    let args = copy_args(&server, &server, &db, &d, &exec, &into, 2);
    let out = myspool(&args);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("1 chunk(s) failed processing"), "{err}");
    assert!(err.contains("chunk 000003"), "{err}");
    assert!(err.contains("cannot handle row 300"), "{err}");
    assert!(
        err.contains("the chunks before it were loaded meanwhile"),
        "{err}"
    );
    // Chunks load in key order: the two before the failed one, no more.
    assert_eq!(
        server.scalar(&format!(
            "SELECT CONCAT(COUNT(*), ' ', MAX(id)) FROM `{into}`.t"
        )),
        Some("200 200".into())
    );

    std::fs::write(&fixed, "").unwrap();
    let again = myspool(&[&args[..], &["--json".into()]].concat());
    assert_success(&again);
    let s = json(&again);
    // The first run processed the chunks after the failed one too.
    assert_eq!(s["process"]["chunks_processed"], 1, "{s}");
    assert_eq!(s["load"]["chunks_loaded"], 4, "{s}");
    assert_eq!(s["load"]["chunks_skipped"], 2, "{s}");
    assert_t_copied(&server, &db, &into);
}

#[test]
fn a_target_that_refuses_the_load_stops_the_processing_too() {
    let src = Server::shared(&[]);
    let dst = Server::shared(&["--local-infile=0"]);
    let db = six_chunks(&src, "refused");
    let work = tempfile::tempdir().unwrap();
    let d = path_arg(&work.path().join("job"));
    let into = format!("{db}_copy");
    let out = myspool(&copy_args(&src, &dst, &db, &d, "sleep 0.5; cat", &into, 2));
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(err.contains("local_infile=OFF"), "{err}");
    let processed = chunk_files(&work.path().join("job/processed"));
    assert!(
        processed < 6,
        "the processing went on after the load was refused: {processed} of 6 chunks"
    );
}

/// Chunk files (`*.csv.gz`) under `dir`.
fn chunk_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            n += chunk_files(&e.path());
        } else if e.file_name().to_string_lossy().ends_with(".csv.gz") {
            n += 1;
        }
    }
    n
}

/// The copy succeeded, and `{into}.t` holds what `{db}.t` holds.
fn assert_copied(out: &Output, server: &Server, db: &str, into: &str) {
    assert_success(out);
    assert_t_copied(server, db, into);
}
