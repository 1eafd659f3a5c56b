//! A load run again over a target that may have changed since: intact
//! (nothing to do, said so), dropped, truncated, rows deleted, a database
//! dropped, an interrupted load whose target was then emptied; `--restart`
//! (with `--truncate`, with temporary changes still in force) and `--repair`.

use std::path::Path;

use myspool::load::{AutoincPolicy, LoadOptions};
use myspool::progress::ProgressMode;
use myspool::ConnSpec;
use mysql::prelude::Queryable;

use crate::common::*;

/// `t`: 30 rows (ids 1..30), an AUTO_INCREMENT key and a secondary index
/// `kv`, dumped in 3 chunks: (source db, dump).
fn dumped_t(src: &Server, prefix: &str) -> (String, tempfile::TempDir) {
    dumped_db(
        src,
        prefix,
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT, KEY kv (v));
         INSERT INTO t SELECT seq, seq % 7 FROM seq_1_to_30;",
        "t",
        10,
    )
}

/// `dumped_t` loaded into a fresh database of the target: (source db,
/// dump, target db).
fn loaded_t(src: &Server, dst: &Server, prefix: &str) -> (String, tempfile::TempDir, String) {
    let (db, dir) = dumped_t(src, prefix);
    let into = dst.fresh_db(prefix);
    run_load(&load_into(dst, dir.path(), &into));
    (db, dir, into)
}

/// `myspool load` of `dir` into `into` with `more` options.
fn load_cli(dir: &tempfile::TempDir, dst: &Server, into: &str, more: &[&str]) -> Vec<String> {
    let args = [&["--into", into][..], more].concat();
    load_args(dir.path(), dst, &args)
}

/// The rerun is refused in one line naming the table and `remedy`.
#[track_caller]
fn assert_refused(out: &std::process::Output, table: &str, remedy: &str) -> String {
    let err = assert_one_line_error(out);
    assert_eq!(
        out.status.code(),
        Some(3),
        "refused, nothing touched: {err}"
    );
    assert!(err.contains("nothing was loaded"), "{err}");
    assert!(err.contains(table), "{err}");
    assert!(err.contains(remedy), "{err}");
    err
}

#[test]
fn a_complete_load_rerun_into_an_intact_target_does_nothing_and_says_so() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir, into) = loaded_t(&src, &dst, "intact");
    // Rows added since are not rows missing.
    dst.query(&format!("INSERT INTO `{into}`.t VALUES (1000, 1)"));
    let out = myspool(&load_cli(&dir, &dst, &into, &[]));
    assert_success(&out);
    let (err, summary) = (stderr(&out), stdout(&out));
    assert!(err.contains("already loaded on 2"), "{err}");
    assert!(err.contains(", 30 rows"), "{err}");
    assert!(
        summary.contains(&format!("{db}.t into {into}  already loaded on ")),
        "{summary}"
    );
    assert!(
        summary.contains("0 rows, 0 chunks loaded, 3 skipped"),
        "{summary}"
    );
    let json = json(&myspool(&load_cli(&dir, &dst, &into, &["--json"])));
    assert_eq!(json["tables"][0]["loaded_before"]["rows"], 30);
    assert_eq!(json["rows"], 0);
    assert_eq!(count(&dst, &format!("`{into}`.t")), 31);
}

#[test]
fn a_dropped_target_table_is_refused_untouched_and_restart_loads_it_again() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir, into) = loaded_t(&src, &dst, "dropped");
    dst.query(&format!("DROP TABLE `{into}`.t"));
    let out = myspool(&load_cli(&dir, &dst, &into, &[]));
    let err = assert_refused(
        &out,
        &format!("{db}.t into {into} no longer exists"),
        "--restart",
    );
    assert!(!err.contains("--truncate"), "{err}");
    assert_eq!(table_count(&dst, &into), 0, "not re-created");

    assert_success(&myspool(&load_cli(&dir, &dst, &into, &["--restart"])));
    assert_same_table(&src, &db, &dst, &into, "t", "id");
    // And the next rerun is the quiet no-op again.
    let out = myspool(&load_cli(&dir, &dst, &into, &[]));
    assert_success(&out);
    assert!(
        stderr(&out).contains("already loaded on"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_dropped_database_is_refused_without_creating_it() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir, into) = loaded_t(&src, &dst, "dropdb");
    dst.query(&format!("DROP DATABASE `{into}`"));
    let out = myspool(&load_cli(&dir, &dst, &into, &[]));
    assert_refused(&out, "no longer exists", "--restart");
    let schemata = format!("information_schema.SCHEMATA WHERE SCHEMA_NAME = '{into}'");
    assert_eq!(count(&dst, &schemata), 0);
    assert_success(&myspool(&load_cli(&dir, &dst, &into, &["--restart"])));
    assert_same_table(&src, &db, &dst, &into, "t", "id");
}

#[test]
fn a_truncated_target_is_refused_and_restart_loads_it_again() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir, into) = loaded_t(&src, &dst, "truncated");
    dst.query(&format!("TRUNCATE TABLE `{into}`.t"));
    let out = myspool(&load_cli(&dir, &dst, &into, &[]));
    let err = assert_refused(&out, "InnoDB table id", "rerun with --restart");
    assert!(err.contains("holds 0 rows"), "{err}");
    assert_eq!(count(&dst, &format!("`{into}`.t")), 0, "nothing touched");
    // status reads files only, and says its "complete" is the journal's.
    let status = stdout(&myspool(&["status", "--dir", &path_arg(dir.path())]));
    assert!(
        status.contains("complete per its journal (the target is not checked)"),
        "{status}"
    );
    // Refilled by someone else with as many rows: still not the load's rows.
    dst.query(&format!(
        "USE `{into}`; INSERT INTO t SELECT seq + 100, 0 FROM seq_1_to_30"
    ));
    let out = myspool(&load_cli(&dir, &dst, &into, &[]));
    assert_refused(&out, "holds 30 rows", "--restart --truncate");

    assert_success(&myspool(&load_cli(
        &dir,
        &dst,
        &into,
        &["--restart", "--truncate"],
    )));
    assert_same_table(&src, &db, &dst, &into, "t", "id");
}

#[test]
fn deleted_rows_are_refused_and_restart_refills_them() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir, into) = loaded_t(&src, &dst, "deleted");
    dst.query(&format!("DELETE FROM `{into}`.t WHERE id % 2 = 0"));
    let out = myspool(&load_cli(&dir, &dst, &into, &[]));
    let err = assert_refused(
        &out,
        "holds 15 rows where an earlier load committed 30",
        "--restart --truncate",
    );
    assert!(err.contains("--restart --on-duplicate ignore"), "{err}");
    assert_eq!(count(&dst, &format!("`{into}`.t")), 15, "nothing touched");
    // --restart alone meets the rows still there.
    let out = myspool(&load_cli(&dir, &dst, &into, &["--restart", "--jobs", "1"]));
    let err = assert_one_line_error(&out);
    assert!(err.contains("duplicate key"), "{err}");
    // --on-duplicate ignore adds only the missing rows.
    let out = myspool(&load_cli(
        &dir,
        &dst,
        &into,
        &["--restart", "--on-duplicate", "ignore"],
    ));
    assert_success(&out);
    assert_same_table(&src, &db, &dst, &into, "t", "id");
    assert!(
        stdout(&out).contains("15 duplicate keys"),
        "{}",
        stdout(&out)
    );
}

/// AUTO_INCREMENT and the index `kv` are back on `into`.`t`.
#[track_caller]
fn assert_definition_restored(dst: &Server, into: &str) {
    let create = show_create(dst, into, "t");
    assert!(
        create.contains("AUTO_INCREMENT") && create.contains("KEY `kv`"),
        "{create}"
    );
}

/// A load into `into` whose third chunk meets a row already there (id 25)
/// and fails: chunks 1 and 2 committed, AUTO_INCREMENT removed and the
/// secondary index dropped meanwhile.
fn interrupted_load(dst: &Server, dir: &tempfile::TempDir, into: &str) {
    dst.query(&format!(
        "USE `{into}`; CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT, KEY kv (v));
         INSERT INTO t VALUES (25, -1);"
    ));
    let out = myspool(&load_cli(
        dir,
        dst,
        into,
        &["--jobs", "1", "--autoinc", "drop", "--defer-indexes"],
    ));
    let err = assert_one_line_error(&out);
    assert!(
        err.contains("duplicate key") && err.contains("AUTO_INCREMENT is removed"),
        "{err}"
    );
    assert_eq!(count(dst, &format!("`{into}`.t")), 21);
    let create = show_create(dst, into, "t");
    assert!(
        !create.contains("AUTO_INCREMENT") && !create.contains("`kv`"),
        "{create}"
    );
}

#[test]
fn an_interrupted_load_whose_target_was_truncated_is_refused_and_restart_settles_it() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_t(&src, "partial");
    let into = dst.fresh_db("partial");
    interrupted_load(&dst, &dir, &into);
    dst.query(&format!("TRUNCATE TABLE `{into}`.t"));
    let out = myspool(&load_cli(&dir, &dst, &into, &[]));
    assert_refused(&out, "truncated, re-created or rebuilt since", "--restart");
    assert_eq!(count(&dst, &format!("`{into}`.t")), 0, "nothing touched");

    // --restart without --autoinc drop or --defer-indexes: what the
    // interrupted load changed is carried over and put back at the end.
    let out = myspool(&load_cli(&dir, &dst, &into, &["--restart", "--jobs", "1"]));
    assert_success(&out);
    assert_same_table(&src, &db, &dst, &into, "t", "id");
    assert_definition_restored(&dst, &into);
    let out = myspool(&load_cli(&dir, &dst, &into, &[]));
    assert!(
        stderr(&out).contains("already loaded on"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn restart_truncate_empties_the_table_and_keeps_pending_changes() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_t(&src, "restartt");
    let into = dst.fresh_db("restartt");
    interrupted_load(&dst, &dir, &into);
    // A plain rerun still meets id 25; --restart --truncate empties first.
    let out = myspool(&load_cli(&dir, &dst, &into, &["--restart", "--truncate"]));
    assert_success(&out);
    assert_same_table(&src, &db, &dst, &into, "t", "id");
    assert_definition_restored(&dst, &into);
}

#[test]
fn repair_puts_changes_back_on_a_changed_target_and_refuses_a_dropped_one() {
    let (src, dst) = (source_server(), target_server());
    let (_db, dir) = dumped_t(&src, "repairx");
    let into = dst.fresh_db("repairx");
    interrupted_load(&dst, &dir, &into);
    let out = myspool(&load_cli(&dir, &dst, &into, &["--restart", "--repair"]));
    let err = assert_one_line_error(&out);
    assert!(
        err.contains("--restart and --repair do not go together"),
        "{err}"
    );

    // Truncated: --repair still restores the definition, loads nothing,
    // and the next load is refused as for any changed target.
    dst.query(&format!("TRUNCATE TABLE `{into}`.t"));
    assert_success(&myspool(&load_cli(&dir, &dst, &into, &["--repair"])));
    assert_definition_restored(&dst, &into);
    assert_eq!(count(&dst, &format!("`{into}`.t")), 0);
    let out = myspool(&load_cli(&dir, &dst, &into, &[]));
    assert_refused(&out, "holds 0 rows", "--restart");

    // Dropped while AUTO_INCREMENT was removed: nothing to put it back on.
    let other = dst.fresh_db("repairy");
    interrupted_load(&dst, &dir, &other);
    dst.query(&format!("DROP TABLE `{other}`.t"));
    let out = myspool(&load_cli(&dir, &dst, &other, &["--repair"]));
    let err = assert_one_line_error(&out);
    assert!(
        err.contains("no longer exists") && err.contains("--restart"),
        "{err}"
    );
    assert_eq!(table_count(&dst, &other), 0);
}

#[test]
fn one_changed_table_of_several_stops_the_load_before_any_table_is_touched() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_db(
        &src,
        "several",
        "CREATE TABLE a (id INT PRIMARY KEY); INSERT INTO a SELECT seq FROM seq_1_to_20;
         CREATE TABLE b (id INT PRIMARY KEY); INSERT INTO b SELECT seq FROM seq_1_to_20;",
        "*",
        10,
    );
    let into = dst.fresh_db("several");
    let mut opts = load_into(&dst, dir.path(), &into);
    run_load(&opts);
    dst.query(&format!(
        "DROP TABLE `{into}`.b; DELETE FROM `{into}`.a WHERE id > 15"
    ));
    let err = load_error(&opts);
    assert!(
        err.contains(&format!("{db}.a into {into} holds 15 rows")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{db}.b into {into} no longer exists")),
        "{err}"
    );
    assert_eq!(table_count(&dst, &into), 1, "b not re-created");
    assert_eq!(count(&dst, &format!("`{into}`.a")), 15);
    opts.restart = true;
    opts.truncate = true;
    run_load(&opts);
    for t in ["a", "b"] {
        assert_same_table(&src, &db, &dst, &into, t, "id");
    }
}

#[test]
fn without_the_process_privilege_the_row_count_still_catches_a_truncate() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_db(
        &src,
        "noproc",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_30;",
        "t",
        10,
    );
    let user = format!("loader_{db}");
    dst.query(&format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v INT);
         CREATE USER '{user}'@'%' IDENTIFIED BY 'pw';
         GRANT SELECT, INSERT, DROP ON `{db}`.* TO '{user}'@'%';"
    ));
    let url = format!("mysql://{user}:pw@127.0.0.1:{}", dst.port());
    let mut opts = LoadOptions::new(ConnSpec::parse(&url).unwrap(), dir.path());
    opts.progress = ProgressMode::Quiet;
    opts.autoinc = AutoincPolicy::Keep;
    run_load(&opts);
    let journal = std::fs::read_to_string(
        std::fs::read_dir(dir.path().join(&db).join("t"))
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("load@"))
            .unwrap()
            .path(),
    )
    .unwrap();
    assert!(
        !journal.contains("identity"),
        "no PROCESS, no table id: {journal}"
    );
    dst.query(&format!("TRUNCATE TABLE `{db}`.t"));
    let err = load_error(&opts);
    assert!(
        err.contains("holds 0 rows where an earlier load committed 30"),
        "{err}"
    );
    opts.restart = true;
    run_load(&opts);
    assert_same_table(&src, &db, &dst, &db, "t", "id");
}

/// A load killed while chunk 1 waited to commit (in doubt), its journal then
/// pointed at `session`, a session the test holds: what the rerun does
/// about the session that "was committing" that chunk.
fn in_doubt_on(dst: &Server, prefix: &str) -> (String, tempfile::TempDir, String) {
    let src = source_server();
    let (db, dir) = dumped_t(&src, prefix);
    let into = dst.fresh_db(prefix);
    let args = load_cli(&dir, dst, &into, &["--jobs", "1", "--indexes", "keep"]);
    let journal = || -> Option<std::path::PathBuf> {
        std::fs::read_dir(dir.path().join(&db).join("t"))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(&format!("@{into}.jsonl")))
    };
    // Ten seconds between the journal's `committing` and the COMMIT: killed
    // in between, chunk 1 is in doubt and was never committed.
    let killed = kill_9_when(&args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "10000")], || {
        journal().is_some_and(|j| {
            std::fs::read_to_string(j)
                .unwrap_or_default()
                .contains("\"committing\"")
        })
    });
    assert!(killed, "the load ended before the kill");
    (db, dir, into)
}

/// Rewrites the `committing` line of the journal of `into` so that it
/// names `session_id` on the same server.
fn point_in_doubt_chunk_at(dir: &Path, db: &str, into: &str, session_id: u64) {
    let table_dir = dir.join(db).join("t");
    let path = std::fs::read_dir(&table_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(&format!("@{into}.jsonl")))
        .expect("the load's journal");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut changed = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            if v["event"] == "committing" {
                assert!(
                    v["session"].is_object(),
                    "the journal records the session: {line}"
                );
                v["session"]["id"] = serde_json::json!(session_id);
                changed += 1;
            }
            v.to_string()
        })
        .collect();
    assert_eq!(changed, 1, "{text}");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn a_rerun_waits_for_the_session_still_committing_before_it_counts() {
    let dst = target_server();
    let (db, dir, into) = in_doubt_on(&dst, "inflight");
    // The session "still committing": busy for two seconds.
    let mut busy = dst.conn();
    let id: u64 = busy.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
    point_in_doubt_chunk_at(dir.path(), &db, &into, id);
    let sleeper = std::thread::spawn(move || busy.query_drop("SELECT SLEEP(2)"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = myspool(&load_cli(&dir, &dst, &into, &[]));
    assert_success(&out);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "waiting for its session ({id}) to finish SELECT SLEEP(2)"
        )),
        "{err}"
    );
    // It waited for the statement to end rather than cutting it short (and
    // ended the session once idle, as a dead client's session is).
    let statement = sleeper.join().unwrap();
    assert!(
        statement.is_ok(),
        "the busy session's statement was interrupted: {statement:?}"
    );
    assert_same_table(&source_server(), &db, &dst, &into, "t", "id");
}

#[test]
fn a_rerun_ends_an_idle_session_left_by_the_earlier_load() {
    let dst = target_server();
    let (db, dir, into) = in_doubt_on(&dst, "idle");
    // An idle session (as a dead client's session is, with its transaction
    // open, until the server notices): the rerun ends it, then counts.
    let mut idle = dst.conn();
    let id: u64 = idle.query_first("SELECT CONNECTION_ID()").unwrap().unwrap();
    point_in_doubt_chunk_at(dir.path(), &db, &into, id);
    let out = myspool(&load_cli(&dir, &dst, &into, &[]));
    assert_success(&out);
    assert!(
        idle.query_drop("SELECT 1").is_err(),
        "the idle session was ended"
    );
    assert_same_table(&source_server(), &db, &dst, &into, "t", "id");
}
