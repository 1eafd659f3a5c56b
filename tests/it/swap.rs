//! `load --swap`: readers of the target see the old tables or the new ones,
//! never a half-loaded or a missing one; a load killed anywhere (in its
//! chunks, before, during or after the RENAME) is settled by a rerun, which
//! swaps exactly once and drops or keeps the old table as asked; what
//! `--swap` refuses (a table in the way of its shadow, triggers, foreign
//! keys, missing privileges).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql::prelude::Queryable;

use crate::common::*;

/// The source: `t` with 300 rows (10 chunks of 30) and `u` with 100
/// (4 chunks): (source db, dump).
fn dumped_pair(src: &Server, prefix: &str) -> (String, tempfile::TempDir) {
    dumped_db(
        src,
        prefix,
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), KEY kv (v));
         INSERT INTO t SELECT seq, CONCAT('new', seq) FROM seq_1_to_300;
         CREATE TABLE u (id INT PRIMARY KEY, w INT);
         INSERT INTO u SELECT seq, seq FROM seq_1_to_100;",
        "*",
        30,
    )
}

/// A target database holding the old `t` (50 rows) and `u` (7 rows).
fn old_target(dst: &Server, prefix: &str) -> String {
    db_with(
        dst,
        prefix,
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), KEY kv (v));
         INSERT INTO t SELECT seq, CONCAT('old', seq) FROM seq_1_to_50;
         CREATE TABLE u (id INT PRIMARY KEY, w INT);
         INSERT INTO u SELECT seq, 0 FROM seq_1_to_7;",
    )
}

fn swap_cli(dir: &tempfile::TempDir, dst: &Server, into: &str, more: &[&str]) -> Vec<String> {
    let args = [&["--into", into, "--swap", "--jobs", "2"][..], more].concat();
    load_args(dir.path(), dst, &args)
}

/// The tables of `db`, sorted.
fn tables(dst: &Server, db: &str) -> Vec<String> {
    let mut names: Vec<String> = dst
        .query_strings(&format!("SHOW TABLES FROM `{db}`"))
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    names.sort();
    names
}

fn count(dst: &Server, db: &str, table: &str) -> u64 {
    dst.scalar(&format!("SELECT COUNT(*) FROM `{db}`.`{table}`"))
        .unwrap()
        .parse()
        .unwrap()
}

/// The new rows are in, swapped once: `t` and `u` hold the dump's rows and
/// no shadow is left; the old tables are gone, or (`kept`) kept once each,
/// holding the old rows.
#[track_caller]
fn assert_swapped_once(dst: &Server, db: &str, kept: bool) {
    assert_eq!(count(dst, db, "t"), 300);
    assert_eq!(count(dst, db, "u"), 100);
    assert_eq!(
        dst.scalar(&format!("SELECT MIN(v) FROM `{db}`.t")).unwrap(),
        "new1"
    );
    let names = tables(dst, db);
    let old: Vec<&String> = names.iter().filter(|n| n.contains("_old_")).collect();
    assert!(
        !names.iter().any(|n| n.contains("myspool_new")),
        "{names:?}"
    );
    if kept {
        assert_eq!(old.len(), 2, "{names:?}");
        let t_old = old.iter().find(|n| n.starts_with("t_old_")).unwrap();
        let u_old = old.iter().find(|n| n.starts_with("u_old_")).unwrap();
        assert_eq!(count(dst, db, t_old), 50, "the old t, not a new one");
        assert_eq!(count(dst, db, u_old), 7);
    } else {
        assert!(old.is_empty(), "{names:?}");
        assert_eq!(names, ["t", "u"]);
    }
}

#[test]
fn readers_see_the_old_tables_or_the_new_ones_never_a_part_or_nothing() {
    let (src, dst) = (source_server(), target_server());
    let (_, dir) = dumped_pair(&src, "swapread");
    let into = old_target(&dst, "swapread");
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (done, mut conn, into) = (done.clone(), dst.conn(), into.clone());
        std::thread::spawn(move || {
            // One statement reads both tables: the RENAME of both is one
            // step, so a pair is all old or all new.
            let q = format!(
                "SELECT (SELECT COUNT(*) FROM `{into}`.t), (SELECT COUNT(*) FROM `{into}`.u)"
            );
            let mut seen = Vec::new();
            while !done.load(Ordering::SeqCst) {
                let pair: (u64, u64) = conn
                    .query_first(&q)
                    .unwrap_or_else(|e| panic!("the reader failed: {e}"))
                    .unwrap();
                if seen.last() != Some(&pair) {
                    seen.push(pair);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let pair: (u64, u64) = conn.query_first(&q).unwrap().unwrap();
            if seen.last() != Some(&pair) {
                seen.push(pair);
            }
            seen
        })
    };
    let out = myspool_env(
        &swap_cli(&dir, &dst, &into, &[]),
        &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "20")],
    );
    done.store(true, Ordering::SeqCst);
    let seen = reader.join().unwrap();
    assert_success(&out);
    assert_eq!(seen, [(50, 7), (300, 100)], "what the reader saw, in order");
    assert_swapped_once(&dst, &into, false);
    let summary = stdout(&out);
    assert!(
        summary.contains(&format!("{into}.t swapped in")),
        "{summary}"
    );
}

/// Kills the load at `point` (a test hook), reruns it, and checks that it
/// swapped once.
fn killed_at_then_rerun(point: &str, keep_old: bool) {
    let (src, dst) = (source_server(), target_server());
    let prefix = format!("swapkill_{}", point.replace('-', "_"));
    let (_, dir) = dumped_pair(&src, &prefix);
    let into = old_target(&dst, &prefix);
    let more: &[&str] = if keep_old { &["--keep-old"] } else { &[] };
    let args = swap_cli(&dir, &dst, &into, more);
    let out = myspool_env(&args, &[("MYSPOOL_TEST_STOP_AT", point)]);
    assert!(
        !out.status.success() && out.status.code().is_none(),
        "myspool was not killed at {point}: {}",
        stderr(&out)
    );
    // status: loaded, not finished until swapped in and the old table
    // settled.
    let st = json(&myspool(&[
        "status",
        "--dir",
        &path_arg(dir.path()),
        "--json",
    ]));
    let complete: Vec<bool> = st["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["loaded"][0]["complete"].as_bool().unwrap())
        .collect();
    // Killed after the first table's old table was dropped, that table
    // is finished.
    let first_done = point == "swap-after-drop";
    assert_eq!(complete, [first_done, false], "{st}");
    let out = myspool(&args);
    assert_success(&out);
    assert_swapped_once(&dst, &into, keep_old);
    let st = json(&myspool(&[
        "status",
        "--dir",
        &path_arg(dir.path()),
        "--json",
    ]));
    assert_eq!(st["tables"][0]["loaded"][0]["complete"], true, "{st}");
    // And again: nothing left to do.
    let out = myspool(&args);
    assert_success(&out);
    let err = stderr(&out);
    assert!(err.contains("swapped in; nothing to do"), "{err}");
    assert_swapped_once(&dst, &into, keep_old);
}

#[test]
fn killed_between_the_load_and_the_rename_a_rerun_swaps_once() {
    killed_at_then_rerun("swap-before-rename", false);
    killed_at_then_rerun("swap-before-rename", true);
}

#[test]
fn killed_right_after_the_rename_a_rerun_records_it_and_drops_the_old_tables() {
    killed_at_then_rerun("swap-after-rename", false);
    killed_at_then_rerun("swap-after-rename", true);
}

#[test]
fn killed_before_the_old_table_is_dropped_a_rerun_drops_or_keeps_it() {
    killed_at_then_rerun("swap-before-drop", false);
    killed_at_then_rerun("swap-before-drop", true);
}

#[test]
fn killed_after_the_drop_a_rerun_finds_it_done() {
    killed_at_then_rerun("swap-after-drop", false);
}

#[test]
fn killed_in_its_chunks_the_load_resumes_into_the_shadow_and_readers_keep_the_old_table() {
    let (src, dst) = (source_server(), target_server());
    let (_, dir) = dumped_pair(&src, "swapmid");
    let into = old_target(&dst, "swapmid");
    let args = swap_cli(&dir, &dst, &into, &[]);
    let shadow_rows = |dst: &Server| {
        dst.scalar(&format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{into}' AND TABLE_NAME = 't_myspool_new'"
        ))
        .as_deref()
            == Some("1")
            && count(dst, &into, "t_myspool_new") >= 60
    };
    let killed = kill_9_when(&args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "30")], || {
        shadow_rows(&dst)
    });
    assert!(killed, "the load ended before it was killed");
    // Readers still see the old tables.
    assert_eq!(count(&dst, &into, "t"), 50);
    assert_eq!(count(&dst, &into, "u"), 7);
    let out = myspool(&args);
    assert_success(&out);
    let summary = json_of(&dst, &dir, &into);
    assert_swapped_once(&dst, &into, false);
    assert!(
        summary.contains("swapped in by an earlier run"),
        "{summary}"
    );
}

/// The summary of one more rerun (nothing to do).
fn json_of(dst: &Server, dir: &tempfile::TempDir, into: &str) -> String {
    let out = myspool(&swap_cli(dir, dst, into, &[]));
    assert_success(&out);
    stdout(&out)
}

#[test]
fn a_table_in_the_way_of_the_shadow_is_refused_and_nothing_is_touched() {
    let (src, dst) = (source_server(), target_server());
    let (_, dir) = dumped_pair(&src, "swapway");
    let into = old_target(&dst, "swapway");
    dst.query(&format!(
        "CREATE TABLE `{into}`.t_myspool_new (x INT); INSERT INTO `{into}`.t_myspool_new VALUES (1)"
    ));
    let out = myspool(&swap_cli(&dir, &dst, &into, &[]));
    let err = assert_one_line_error(&out);
    assert!(err.contains("t_myspool_new is in the way"), "{err}");
    assert_eq!(count(&dst, &into, "t_myspool_new"), 1);
    assert_eq!(count(&dst, &into, "t"), 50);
    assert_eq!(tables(&dst, &into), ["t", "t_myspool_new", "u"]);
}

#[test]
fn triggers_and_foreign_keys_that_a_rename_would_not_carry_are_refused() {
    let (src, dst) = (source_server(), target_server());
    let (_, dir) = dumped_pair(&src, "swaptrig");
    let into = old_target(&dst, "swaptrig");
    dst.query(&format!(
        "USE `{into}`; CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW SET NEW.v = NEW.v;
         CREATE TABLE child (id INT PRIMARY KEY, uid INT, CONSTRAINT fk_u FOREIGN KEY (uid) REFERENCES u (id))"
    ));
    let out = myspool(&swap_cli(&dir, &dst, &into, &[]));
    let err = assert_one_line_error(&out);
    assert!(err.contains("trigger(s) tr"), "{err}");
    assert!(err.contains(&format!("{into}.child.fk_u")), "{err}");
    assert_eq!(tables(&dst, &into), ["child", "t", "u"]);
}

/// The triggers on `db`.`table`.
fn triggers_on(dst: &Server, db: &str, table: &str) -> Vec<String> {
    dst.query_strings(&format!(
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS \
         WHERE EVENT_OBJECT_SCHEMA = '{db}' AND EVENT_OBJECT_TABLE = '{table}' ORDER BY 1"
    ))
    .into_iter()
    .filter_map(|r| r.into_iter().next().flatten())
    .collect()
}

#[test]
fn a_nightly_reload_of_a_database_with_a_trigger_swaps_it_onto_the_new_table() {
    let (src, dst) = (source_server(), target_server());
    // DB.*: the dump carries the trigger `stamp` of t in its objects.sql.
    let db = db_with(
        &src,
        "swapnight",
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), KEY kv (v));
         INSERT INTO t SELECT seq, CONCAT('new', seq) FROM seq_1_to_300;
         CREATE TABLE u (id INT PRIMARY KEY, w INT);
         INSERT INTO u SELECT seq, seq FROM seq_1_to_100;
         CREATE TRIGGER stamp BEFORE INSERT ON t FOR EACH ROW SET NEW.v = CONCAT('fired', NEW.id);",
    );
    let into = old_target(&dst, "swapnight");
    let fired = |dst: &Server| count_where(dst, &into, "v LIKE 'fired%'");
    // Night 1: the target has no trigger yet; night 2: t has the dump's
    // trigger, which the swap carries over instead of refusing.
    for (night, keep_old) in [(1, false), (2, true)] {
        // Each night's own dump.
        let dir = tempfile::tempdir().unwrap();
        dump(&src, &[&format!("{db}.*")], dir.path(), 30);
        let reader = Reader::start(&dst, &into);
        let more: &[&str] = if keep_old { &["--keep-old"] } else { &[] };
        let out = myspool_env(
            &swap_cli(&dir, &dst, &into, more),
            &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "10")],
        );
        let seen = reader.seen();
        assert_success(&out);
        let expected: &[(u64, u64)] = if night == 1 {
            &[(50, 7), (300, 100)]
        } else {
            &[(300, 100)]
        };
        assert_eq!(seen, expected, "night {night}: what the reader saw");
        assert_eq!(triggers_on(&dst, &into, "t"), ["stamp"], "night {night}");
        assert_eq!(fired(&dst), 0, "night {night}: it fired on loaded rows");
    }
    assert_eq!(count(&dst, &into, "t"), 300);
    assert_eq!(count(&dst, &into, "u"), 100);
    // The table kept by --keep-old ends without the trigger.
    let kept: Vec<String> = tables(&dst, &into)
        .into_iter()
        .filter(|n| n.starts_with("t_old_"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(triggers_on(&dst, &into, &kept[0]).is_empty());
    assert_eq!(count(&dst, &into, &kept[0]), 300, "the table of night 1");
    // It fires on a later insert into the new table.
    dst.query(&format!(
        "INSERT INTO `{into}`.t (id, v) VALUES (1000, 'x')"
    ));
    assert_eq!(
        dst.scalar(&format!("SELECT v FROM `{into}`.t WHERE id = 1000")),
        Some("fired1000".to_string())
    );
}

/// Rows of `db`.t matching `condition`.
fn count_where(dst: &Server, db: &str, condition: &str) -> u64 {
    dst.scalar(&format!("SELECT COUNT(*) FROM `{db}`.t WHERE {condition}"))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_target_trigger_the_dump_does_not_create_again_is_refused_by_name() {
    let (src, dst) = (source_server(), target_server());
    let (_, dir) = dumped_db(
        &src,
        "swaptrig2",
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20));
         INSERT INTO t VALUES (1, 'a');
         CREATE TRIGGER stamp BEFORE INSERT ON t FOR EACH ROW SET NEW.v = 'fired';",
        "*",
        30,
    );
    let into = db_with(
        &dst,
        "swaptrig2",
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20));
         CREATE TRIGGER stamp BEFORE INSERT ON t FOR EACH ROW SET NEW.v = 'fired';
         CREATE TRIGGER audit BEFORE UPDATE ON t FOR EACH ROW SET NEW.v = 'upd';",
    );
    let out = myspool(&swap_cli(&dir, &dst, &into, &[]));
    let err = assert_one_line_error(&out);
    assert!(err.contains("trigger(s) audit that the dump"), "{err}");
    assert!(!err.contains("stamp"), "{err}");
    assert_eq!(triggers_on(&dst, &into, "t"), ["audit", "stamp"]);
    // `check --swap` with the dump judges it the same way.
    let check = myspool(&[
        "check",
        "--to",
        &dst.url(),
        "--dir",
        &path_arg(dir.path()),
        "--into",
        &into,
        "--swap",
    ]);
    let said = format!("{}{}", stdout(&check), stderr(&check));
    assert!(!check.status.success(), "{said}");
    assert!(said.contains("trigger(s) audit that the dump"), "{said}");
    assert!(!said.contains("stamp"), "{said}");
    // Without the dump's objects, its own trigger is left behind too.
    let out = myspool(&swap_cli(&dir, &dst, &into, &["--no-objects"]));
    let err = assert_one_line_error(&out);
    assert!(err.contains("trigger(s) audit, stamp"), "{err}");
}

#[test]
fn swap_needs_create_drop_and_alter_on_the_database() {
    let (src, dst) = (source_server(), target_server());
    let (_, dir) = dumped_pair(&src, "swappriv");
    let into = old_target(&dst, "swappriv");
    let url = user_with_grants(&dst, &format!("{into}_u"), &[(&into, "SELECT, INSERT")]);
    let mut args = swap_cli(&dir, &dst, &into, &[]);
    let to = args.iter().position(|a| a == "--to").unwrap();
    args[to + 1] = url;
    let out = myspool(&args);
    let err = assert_one_line_error(&out);
    assert!(err.contains("lacks CREATE, DROP, ALTER"), "{err}");
    assert!(err.contains("--swap needs"), "{err}");
    assert_eq!(tables(&dst, &into), ["t", "u"]);
}

#[test]
fn swap_into_a_missing_table_creates_the_shadow_from_schema_sql() {
    let (src, dst) = (source_server(), target_server());
    let (_, dir) = dumped_pair(&src, "swapnew");
    let into = dst.fresh_db("swapnew");
    let out = myspool(&swap_cli(&dir, &dst, &into, &[]));
    assert_success(&out);
    assert_eq!(tables(&dst, &into), ["t", "u"]);
    assert_eq!(count(&dst, &into, "t"), 300);
    let create = dst.query_strings(&format!("SHOW CREATE TABLE `{into}`.t"));
    let create = create[0][1].clone().unwrap();
    assert!(create.contains("KEY `kv`"), "{create}");
}

#[test]
fn swap_and_truncate_do_not_go_together() {
    let (src, dst) = (source_server(), target_server());
    let (_, dir) = dumped_pair(&src, "swaptrunc");
    let into = old_target(&dst, "swaptrunc");
    let out = myspool(&swap_cli(&dir, &dst, &into, &["--truncate"]));
    let err = assert_one_line_error(&out);
    assert!(err.contains("--truncate has nothing to empty"), "{err}");
}

#[test]
fn copy_swaps_too() {
    let (src, dst) = (source_server(), target_server());
    let db = db_with(
        &src,
        "swapcopy",
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), KEY kv (v));
         INSERT INTO t SELECT seq, CONCAT('new', seq) FROM seq_1_to_300;
         CREATE TABLE u (id INT PRIMARY KEY, w INT);
         INSERT INTO u SELECT seq, seq FROM seq_1_to_100;",
    );
    let into = old_target(&dst, "swapcopy");
    let work = tempfile::tempdir().unwrap();
    let table = format!("{db}.*");
    let work_dir = path_arg(work.path());
    let (from, to) = (src.url(), dst.url());
    let args = [
        "copy",
        "--from",
        &from,
        "--to",
        &to,
        "--table",
        &table,
        "--dir",
        &work_dir,
        "--into",
        &into,
        "--swap",
        "--keep-old",
        "--chunk-rows",
        "30",
    ];
    assert_success(&myspool(&args));
    assert_swapped_once(&dst, &into, true);
}

/// A reader polling both tables for the whole time: every pair it saw.
struct Reader {
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(u64, u64)>>,
}

impl Reader {
    fn start(dst: &Server, db: &str) -> Reader {
        let done = Arc::new(AtomicBool::new(false));
        let (stop, mut conn) = (done.clone(), dst.conn());
        let q = format!("SELECT (SELECT COUNT(*) FROM `{db}`.t), (SELECT COUNT(*) FROM `{db}`.u)");
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            loop {
                let last = stop.load(Ordering::SeqCst);
                let pair: (u64, u64) = conn
                    .query_first(&q)
                    .unwrap_or_else(|e| panic!("the reader failed: {e}"))
                    .unwrap();
                if seen.last() != Some(&pair) {
                    seen.push(pair);
                }
                if last {
                    return seen;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Reader { done, thread }
    }

    fn seen(self) -> Vec<(u64, u64)> {
        self.done.store(true, Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

#[test]
fn killed_at_moments_spread_over_the_load_a_rerun_swaps_once_and_readers_see_old_or_new() {
    let (src, dst) = (source_server(), target_server());
    let (_, dir) = dumped_pair(&src, "swaprand");
    // Spread over planning, the chunks and the swap (the load takes about
    // 0.5-0.7 s with this delay on an idle machine); a run that ends first
    // is fine.
    for (i, kill_ms) in [40u64, 120, 200, 280, 360, 440, 520]
        .into_iter()
        .enumerate()
    {
        let into = old_target(&dst, &format!("swaprand{i}"));
        let reader = Reader::start(&dst, &into);
        let args = swap_cli(&dir, &dst, &into, &["--keep-old"]);
        let ended = run_until_killed(&args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "25")], |t| {
            t >= Duration::from_millis(kill_ms)
        });
        if let Ended::Exited(t, out) = ended {
            assert_success(&out);
            eprintln!("(the load ended by itself after {t:?}, before {kill_ms} ms)");
        }
        assert_success(&myspool(&args));
        let seen = reader.seen();
        assert!(
            seen == [(50, 7), (300, 100)] || seen == [(300, 100)],
            "killed after {kill_ms} ms, the reader saw {seen:?}"
        );
        assert_swapped_once(&dst, &into, true);
    }
}
