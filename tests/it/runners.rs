//! Cooperating `process` runners: several runs of the same command on one
//! dump and one `--out` share the chunks through claims, as on machines
//! sharing them over NFS (here: separate processes on a local file system,
//! relying only on exclusive create, rename and fsync). Runners that must
//! not see each other's processes run with their own
//! `MYSPOOL_RUNNER_MACHINE`, so only the lease tells them a runner stopped.

use std::path::Path;
use std::process::{Child, Output};

use myspool::process::claims::held_units;

use crate::common::*;

/// `items`: 400 rows in 20 chunks of 20.
fn dumped_items() -> (String, tempfile::TempDir) {
    dumped_db(
        &source_server(),
        "runners",
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40) NULL, note TEXT NULL);
         INSERT INTO items SELECT seq, CONCAT('item ', seq), IF(seq % 7 = 0, NULL, REPEAT('x', seq % 13)) FROM seq_1_to_400;",
        "items",
        20,
    )
}

const ROWS: u64 = 400;
const CHUNKS: u64 = 20;

/// A command slow enough for runners to overlap; its output is the input
/// with `name` uppercased.
const SLOW_UPPER: &str = "sleep 0.3; tr 'a-z' 'A-Z'";

fn runner_args(dir: &Path, out: &Path, exec: &str, more: &[&str]) -> Vec<String> {
    process_cli(dir, out, &["--exec", exec], &[&["--json"], more].concat())
}

/// The output one runner alone writes.
fn reference(dir: &Path, out: &Path, exec: &str) {
    assert_success(&myspool(&runner_args(dir, out, exec, &["--jobs", "2"])));
}

fn start(args: &[String], machine: &str) -> Child {
    spawn_myspool(args, &[("MYSPOOL_RUNNER_MACHINE", machine)])
}

fn finish(child: Child) -> Output {
    child.wait_with_output().expect("reaping a runner")
}

/// The output's chunks (files and checksums) are the reference's, and it is
/// complete.
fn assert_same_output(out: &Path, reference: &Path, db: &str) {
    assert!(dumps::manifest(out).complete, "the output is complete");
    assert_eq!(
        dumps::description(out, db, "items").chunks,
        dumps::description(reference, db, "items").chunks,
        "same chunks, same checksums"
    );
    assert_eq!(
        dumps::table_rows(out, db, "items"),
        dumps::table_rows(reference, db, "items")
    );
}

fn signal(child: &Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig}");
}

#[test]
fn two_then_four_runners_started_together_write_what_one_runner_writes() {
    let (db, dir) = dumped_items();
    let work = tempfile::tempdir().unwrap();
    let one = work.path().join("one");
    reference(dir.path(), &one, SLOW_UPPER);
    for n in [2, 4] {
        let out = work.path().join(format!("by{n}"));
        let args = runner_args(dir.path(), &out, SLOW_UPPER, &["--jobs", "1"]);
        let runners: Vec<Child> = (0..n).map(|i| start(&args, &format!("m{i}"))).collect();
        let outputs: Vec<Output> = runners.into_iter().map(finish).collect();
        let mut rows_in = 0;
        let mut chunks = 0;
        for o in &outputs {
            assert_success(o);
            let summary = json(o);
            assert_eq!(summary["complete"], true, "every runner ends complete");
            assert!(summary["lost"].as_array().unwrap().is_empty());
            rows_in += summary["rows_in"].as_u64().unwrap();
            chunks += summary["chunks_processed"].as_u64().unwrap();
        }
        assert_same_output(&out, &one, &db);
        // Each chunk answered once: claims never overlap while every
        // runner lives.
        assert_eq!((rows_in, chunks), (ROWS, CHUNKS), "{n} runners");
        assert!(held_units(&out.join(&db).join("items")).is_empty());
    }
}

#[test]
fn a_runner_killed_with_kill_9_is_taken_over_once_its_lease_expires() {
    let (db, dir) = dumped_items();
    let work = tempfile::tempdir().unwrap();
    let one = work.path().join("one");
    reference(dir.path(), &one, SLOW_UPPER);
    // Another runner started after the kill, and one running before it.
    for started_before in [false, true] {
        let out = work.path().join(format!("killed-{started_before}"));
        let table_dir = out.join(&db).join("items");
        let args = runner_args(
            dir.path(),
            &out,
            SLOW_UPPER,
            &["--jobs", "2", "--lease", "2"],
        );
        let victim = start(&args, "victim");
        let other = started_before.then(|| start(&args, "other"));
        wait_until(
            Duration::from_secs(60),
            "the victim to hold a chunk",
            || {
                dumps::committed_chunks(&table_dir) >= 2
                    && held_units(&table_dir).iter().any(|h| h.pid == victim.id())
            },
        );
        signal(&victim, "-KILL");
        let killed = finish(victim);
        assert!(!killed.status.success());
        let other = other.unwrap_or_else(|| start(&args, "other"));
        let o = finish(other);
        assert_success(&o);
        let summary = json(&o);
        assert!(summary["taken_over"].as_u64().unwrap() >= 1, "{summary:#}");
        assert_same_output(&out, &one, &db);
    }
}

#[test]
fn a_runner_stalled_past_its_lease_does_not_commit_over_the_new_owner() {
    let (db, dir) = dumped_items();
    let work = tempfile::tempdir().unwrap();
    let one = work.path().join("one");
    reference(dir.path(), &one, SLOW_UPPER);
    let out = work.path().join("stalled");
    let table_dir = out.join(&db).join("items");
    let args = runner_args(
        dir.path(),
        &out,
        SLOW_UPPER,
        &["--jobs", "1", "--lease", "2"],
    );
    let stalled = start(&args, "stalled");
    // Stopped while it holds a chunk (not between two).
    loop {
        wait_until(
            Duration::from_secs(60),
            "the runner to hold a chunk",
            || held_units(&table_dir).iter().any(|h| h.pid == stalled.id()),
        );
        signal(&stalled, "-STOP");
        if held_units(&table_dir).iter().any(|h| h.pid == stalled.id()) {
            break;
        }
        signal(&stalled, "-CONT");
    }
    let o = finish(start(&args, "new-owner"));
    assert_success(&o);
    assert!(json(&o)["taken_over"].as_u64().unwrap() >= 1);
    assert_same_output(&out, &one, &db);
    let before = dumps::description(&out, &db, "items");

    signal(&stalled, "-CONT");
    let o = finish(stalled);
    assert_success(&o);
    let summary = json(&o);
    let lost = summary["lost"].as_array().unwrap();
    assert_eq!(lost.len(), 1, "{summary:#}");
    assert!(
        stderr(&o).contains("lost the claim on chunk"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        dumps::description(&out, &db, "items"),
        before,
        "nothing changed after the stalled runner woke"
    );
    assert_same_output(&out, &one, &db);
    dumps::assert_committed_chunks_whole(&table_dir, "csv.gz");
}

#[test]
fn status_names_the_runner_holding_each_chunk_and_load_refuses_an_unfinished_output() {
    let (db, dir) = dumped_items();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let table_dir = out.join(&db).join("items");
    let args = runner_args(dir.path(), &out, "sleep 2; cat", &["--jobs", "2"]);
    let runner = start(&args, "m1");
    wait_until(
        Duration::from_secs(60),
        "the runner to hold two chunks",
        || held_units(&table_dir).len() == 2,
    );
    let s = myspool(&["status", "--dir", &path_arg(dir.path())]);
    assert_success(&s);
    let text = stdout(&s);
    assert!(
        text.contains(&format!("pid {}", runner.id())),
        "status names the runner: {text}"
    );
    let l = myspool(&load_args(&out, &target_server(), &[]));
    assert!(!l.status.success());
    let err = stderr(&l);
    assert!(
        err.contains("processing") && err.contains("not complete") && err.contains("chunks"),
        "{err}"
    );
    signal(&runner, "-KILL");
    finish(runner);
}

use std::time::Duration;

#[test]
fn a_failing_chunk_is_tried_once_by_each_runner_and_a_rerun_finishes_it() {
    let (db, dir) = dumped_items();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let flag = work.path().join("fixed");
    let exec = format!(
        "if [ \"$MYSPOOL_CHUNK\" = 3 ] && [ ! -e {} ]; then echo \"boom on $(hostname)\" >&2; exit 3; fi; sleep 0.1; cat",
        flag.display()
    );
    let args = runner_args(dir.path(), &out, &exec, &["--jobs", "1"]);
    let runners: Vec<Child> = ["m1", "m2"].iter().map(|m| start(&args, m)).collect();
    for o in runners.into_iter().map(finish) {
        assert!(!o.status.success());
        let summary = json(&o);
        let failed = summary["failed"].as_array().unwrap();
        assert_eq!(failed.len(), 1, "{summary:#}");
        assert_eq!(failed[0]["chunk"], 3);
        assert_eq!(summary["complete"], false);
    }
    assert!(!dumps::manifest(&out).complete);
    assert_eq!(dumps::committed_chunks(&out.join(&db).join("items")), 19);

    std::fs::write(&flag, "").unwrap();
    let o = myspool(&args);
    assert_success(&o);
    let summary = json(&o);
    assert_eq!(
        summary["chunks_processed"], 1,
        "only the failed chunk is redone"
    );
    assert!(dumps::manifest(&out).complete);
    assert_eq!(
        dumps::table_rows(&out, &db, "items"),
        dumps::table_rows(dir.path(), &db, "items")
    );
    // A runner that comes once the output is complete finds nothing to do.
    let before = dumps::description(&out, &db, "items");
    let o = myspool(&args);
    assert_success(&o);
    assert_eq!(json(&o)["chunks_processed"], 0);
    assert_eq!(dumps::description(&out, &db, "items"), before);
}

#[test]
fn a_second_map_run_on_one_output_is_refused_naming_exec_runners() {
    let (_, dir) = dumped_items();
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let args = process_cli(dir.path(), &out, &["--map", "sleep 30; cat"], &[]);
    let first = start(&args, "m1");
    wait_until(
        Duration::from_secs(60),
        "the first run to lock the output",
        || out.join(myspool::dump::LOCK_FILE).exists(),
    );
    let second = myspool(&args);
    assert!(!second.status.success());
    let err = stderr(&second);
    assert!(
        err.contains("another myspool process is working on")
            && err.contains("several runners share one only with --exec"),
        "{err}"
    );
    signal(&first, "-KILL");
    finish(first);
}

/// A real scheduler: a Slurm job array of 4 runners (scripts/slurm-process.sbatch,
/// unchanged) over one dump, on a single-node Slurm started for the test.
#[test]
fn a_slurm_job_array_of_runners_writes_what_one_runner_writes() {
    let (db, dir) = dumped_items();
    let work = tempfile::tempdir().unwrap();
    let one = work.path().join("one");
    reference(dir.path(), &one, SLOW_UPPER);
    let out = work.path().join("slurm");
    let slurm = slurm::Slurm::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm-process.sbatch");
    let logs = slurm.dir().join("task-%a.out");
    let r = slurm.sbatch_wait(
        &[
            "--array=1-4",
            &format!("--output={}", logs.display()),
            &path_arg(&script),
        ],
        &[
            ("MYSPOOL", path_arg(&myspool_bin())),
            ("DUMP", path_arg(dir.path())),
            ("OUT", path_arg(&out)),
            ("EXEC", SLOW_UPPER.to_string()),
            ("LEASE", "10".to_string()),
        ],
    );
    let tasks: Vec<String> = (1..=4)
        .map(|i| {
            std::fs::read_to_string(slurm.dir().join(format!("task-{i}.out"))).unwrap_or_default()
        })
        .collect();
    assert!(
        r.status.success(),
        "sbatch: {}{}\ntasks: {tasks:#?}\n{}",
        stdout(&r),
        stderr(&r),
        slurm.logs()
    );
    let mut chunks = 0;
    for t in &tasks {
        let start = t.find('{').unwrap_or_else(|| panic!("no summary in {t}"));
        let summary: serde_json::Value = serde_json::from_str(&t[start..]).unwrap();
        assert_eq!(summary["complete"], true, "{t}");
        chunks += summary["chunks_processed"].as_u64().unwrap();
    }
    assert_eq!(chunks, CHUNKS, "each chunk processed once: {tasks:#?}");
    assert_same_output(&out, &one, &db);
}
