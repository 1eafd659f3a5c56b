//! `myspool process --map`: row mode against real worker processes — order
//! with many workers, kill -9 of everything and a rerun, a row that kills
//! its workers, answers out of protocol, memory with 1 MiB rows, and the
//! Rust API on the same machinery.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use myspool::dialect::Field;
use myspool::process::{process_rows_with, ProcessOptions, RowTransform};
use myspool::progress::ProgressMode;

use crate::common::*;

/// `t`: `rows` rows (id, name with NULLs, '', quotes and newlines, a hex
/// column), dumped in chunks of `chunk_rows`.
fn dumped_rows(rows: u64, chunk_rows: u64) -> (String, tempfile::TempDir) {
    dumped_db(
        &source_server(),
        "maprows",
        &format!(
            "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(40) NULL, bin VARBINARY(8) NULL);
             INSERT INTO t SELECT seq, ELT(1 + seq % 4, NULL, '', CONCAT('a \"b\"\\n', seq), 'x'),
                UNHEX(LEFT(MD5(seq), 8)) FROM seq_1_to_{rows};"
        ),
        "t",
        chunk_rows,
    )
}

/// `myspool process --dir DIR --out OUT --map CMD` and `more` arguments.
fn map_args(dir: &Path, out: &Path, cmd: &str, more: &[&str]) -> Vec<String> {
    process_cli(dir, out, &["--map", cmd], more)
}

/// A Python worker, written to `dir/name.py`, run as `python3 FILE`.
fn python(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(format!("{name}.py"));
    let script = format!("import json, os, sys, time\n{body}");
    std::fs::write(&path, script).unwrap();
    format!("python3 {}", path.display())
}

/// Every row: ids ending in 0 dropped, in 1 emitted twice, the others with
/// `name` uppercased; a random pause, so workers answer out of order.
const RESHAPE: &str = r#"
import random
for line in sys.stdin:
    row = json.loads(line)
    time.sleep(random.random() * 0.002)
    n = int(row["id"])
    if row["name"] is not None:
        row["name"] = row["name"].upper()
    if n % 10 == 0:
        print("null")
    elif n % 10 == 1:
        print(json.dumps([row, row]))
    else:
        print(json.dumps(row))
    sys.stdout.flush()
"#;

#[test]
fn sixteen_workers_on_two_chunks_keep_input_order() {
    let (db, dir) = dumped_rows(600, 300);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let cmd = python(work.path(), "reshape", RESHAPE);
    let r = myspool(&map_args(
        dir.path(),
        &out,
        &cmd,
        &["--jobs", "16", "--json"],
    ));
    assert_success(&r);
    let s = json(&r);
    assert_eq!(s["map"]["rows_answered"], 600);
    assert_eq!(s["map"]["rows_dropped"], 60);
    assert_eq!(s["map"]["rows_emitted"], 600);
    assert_eq!(s["map"]["workers"], 16);
    assert_eq!(s["rows_out"], 600);
    let input = dumps::table_rows(dir.path(), &db, "t");
    let want: Vec<Vec<Field>> = input
        .iter()
        .flat_map(|row| {
            let n: u64 = String::from_utf8_lossy(row[0].as_ref().unwrap())
                .parse()
                .unwrap();
            let mut up = row.clone();
            up[1] = up[1]
                .as_ref()
                .map(|v| String::from_utf8_lossy(v).to_uppercase().into_bytes());
            match n % 10 {
                0 => vec![],
                1 => vec![up.clone(), up],
                _ => vec![up],
            }
        })
        .collect();
    assert_eq!(
        dumps::table_rows(&out, &db, "t"),
        want,
        "same rows, in input order"
    );
    let desc = dumps::description(&out, &db, "t");
    assert_eq!(desc.chunks.len(), 2);
    // Nothing of the row mode's own is left beside the chunks.
    let left: Vec<String> = std::fs::read_dir(out.join(&db).join("t"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial") || n.contains("checkpoint"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Answers every row after a pause, counting the rows it answers in a file.
fn counting(count_file: &Path) -> String {
    format!(
        r#"
count = open({:?}, "a")
for line in sys.stdin:
    time.sleep(0.004)
    count.write("1\n"); count.flush()
    print(line, end="", flush=True)
"#,
        count_file.display().to_string()
    )
}

/// Lines in a file (0 when it does not exist).
fn lines(path: &Path) -> u64 {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count() as u64)
}

#[test]
fn kill_9_of_everything_then_a_rerun_redoes_only_the_rows_in_flight() {
    let (db, dir) = dumped_rows(1200, 600);
    let work = tempfile::tempdir().unwrap();
    let reference = work.path().join("reference");
    let plain = python(
        work.path(),
        "plain",
        &counting(&work.path().join("ignored")),
    );
    assert_success(&myspool(&map_args(
        dir.path(),
        &reference,
        &plain,
        &["--jobs", "2"],
    )));

    let count = work.path().join("count");
    let cmd = python(work.path(), "counting", &counting(&count));
    let out = work.path().join("out");
    let args = map_args(dir.path(), &out, &cmd, &["--jobs", "2"]);
    // Its own process group, so that the kill takes its workers too.
    let mut child = Command::new(myspool_bin())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let table = out.join(&db).join("t");
    wait_until(Duration::from_secs(60), "700 rows answered", || {
        lines(&count) >= 700 && table.join("000002.checkpoint").exists()
    });
    let pid = child.id();
    // Only the group this test made: myspool leads it.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let pgrp = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(2)
        .unwrap();
    assert_eq!(pgrp, pid.to_string(), "myspool leads its own process group");
    let killed = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait().unwrap();
    let answered_before = lines(&count);
    let rate = answered_before as f64 / started.elapsed().as_secs_f64();

    // status sees the chunks part done.
    let st = myspool(&["status", "--dir", &path_arg(&out), "--json"]);
    assert_success(&st);
    let partial = &json(&st)["tables"][0]["partial"];
    assert!(
        partial.as_array().is_some_and(|p| !p.is_empty()),
        "no chunk part done: {}",
        stdout(&st)
    );

    let r = myspool(&[&args[..], &["--json".to_string()]].concat());
    assert_success(&r);
    let s = json(&r);
    let earlier = s["map"]["rows_from_earlier_runs"].as_u64().unwrap();
    assert_eq!(earlier + s["map"]["rows_answered"].as_u64().unwrap(), 1200);
    assert_eq!(
        dumps::description(&out, &db, "t").chunks,
        dumps::description(&reference, &db, "t").chunks,
        "the same chunks, byte for byte"
    );
    let redone = lines(&count) - 1200;
    // In flight: a batch per worker (about 0.1 s of rows) plus at most a
    // checkpoint interval (1 s) of answers, at the rate of the killed run.
    let bound = (2.0 * 0.2 * rate + 1.3 * rate) as u64;
    assert!(
        redone <= bound,
        "{redone} rows answered twice (bound {bound}, {rate:.0} rows/s)"
    );
    assert_eq!(
        redone,
        answered_before - earlier,
        "rows answered again = rows lost"
    );
    eprintln!("kill -9 at {answered_before} rows answered: {redone} redone ({rate:.0} rows/s)");
}

/// Rejects id 7 itself; dies (SIGSEGV) on id 42, every time.
const PICKY: &str = r#"
import signal
for line in sys.stdin:
    row = json.loads(line)
    if row["id"] == "42":
        sys.stderr.write("cannot bear row 42\n"); sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSEGV)
    if row["id"] == "7":
        print(json.dumps({"myspool_reject": "seven is not a name"}), flush=True)
    else:
        print(json.dumps(row), flush=True)
"#;

#[test]
fn a_row_that_kills_its_workers_is_rejected_and_the_job_goes_on() {
    let (db, dir) = dumped_rows(250, 125);
    let work = tempfile::tempdir().unwrap();
    let cmd = python(work.path(), "picky", PICKY);
    let out = work.path().join("out");
    let r = myspool(&map_args(
        dir.path(),
        &out,
        &cmd,
        &["--jobs", "3", "--json"],
    ));
    assert_success(&r);
    let s = json(&r);
    assert_eq!(s["map"]["rows_rejected"], 2);
    assert!(s["map"]["rows_redone"].as_u64().unwrap() >= 3);
    let rows = dumps::table_rows(&out, &db, "t");
    assert_eq!(rows.len(), 248);
    let rejects_path = out.join(&db).join("t").join("rejects.jsonl");
    assert_eq!(
        s["map"]["rejects_files"][0],
        rejects_path.display().to_string()
    );
    let rejects: Vec<serde_json::Value> = std::fs::read_to_string(&rejects_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rejects.len(), 2);
    assert_eq!(rejects[0]["key"], serde_json::json!({"id": "7"}));
    assert_eq!(rejects[0]["reason"], "seven is not a name");
    assert_eq!(rejects[0]["row"], 7);
    assert_eq!(rejects[1]["key"], serde_json::json!({"id": "42"}));
    assert_eq!(rejects[1]["input"]["id"], "42");
    let reason = rejects[1]["reason"].as_str().unwrap();
    assert!(reason.contains("3 workers died on this row"), "{reason}");
    // sh reports its child's SIGSEGV as status 139.
    assert!(
        reason.contains("Segmentation fault") || reason.contains("signal 11"),
        "{reason}"
    );
    let stderr_files = s["map"]["worker_stderr"].as_array().unwrap();
    assert!(!stderr_files.is_empty());
    let all: String = stderr_files
        .iter()
        .map(|p| std::fs::read_to_string(p.as_str().unwrap()).unwrap())
        .collect();
    assert!(all.contains("cannot bear row 42"), "{all}");

    // No reject allowed: the job fails at the first, naming the file.
    let out0 = work.path().join("out0");
    let r = myspool(&map_args(dir.path(), &out0, &cmd, &["--max-rejects", "0"]));
    let err = assert_one_line_error(&r);
    assert!(err.contains("more than --max-rejects 0"), "{err}");
    assert!(
        err.contains(
            &out0
                .join(&db)
                .join("t")
                .join("rejects.jsonl")
                .display()
                .to_string()
        ),
        "{err}"
    );
}

#[test]
fn answers_out_of_protocol_fail_clearly_and_commit_nothing_wrong() {
    let (db, dir) = dumped_rows(250, 125);
    let work = tempfile::tempdir().unwrap();
    let garbage = python(
        work.path(),
        "garbage",
        r#"
for line in sys.stdin:
    row = json.loads(line)
    print("oops" if row["id"] == "17" else json.dumps(row), flush=True)
"#,
    );
    let short = python(
        work.path(),
        "short",
        r#"
for line in sys.stdin:
    row = json.loads(line)
    if row["id"] != "17":
        print(json.dumps(row), flush=True)
"#,
    );
    for (cmd, expect) in [
        (&garbage, "row 17 of the chunk (its output line"),
        (&short, "it must write exactly one line per row"),
    ] {
        let out = work.path().join(format!("out{}", expect.len()));
        let r = myspool(&map_args(dir.path(), &out, cmd, &["--jobs", "2"]));
        let err = assert_one_line_error(&r);
        assert!(err.contains(expect), "{err}");
        assert!(err.contains(&format!("chunk 000001 of {db}.t")), "{err}");
        // What is committed of chunk 1 stops before row 17.
        let table = out.join(&db).join("t");
        let cp = std::fs::read_to_string(table.join("000001.checkpoint")).unwrap_or_default();
        let answered = cp.lines().last().map_or(0, |l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["rows_answered"]
                .as_u64()
                .unwrap()
        });
        assert!(answered < 17, "{answered} rows of chunk 1 committed");
        assert!(!table.join("000001.csv.gz").exists());
    }
}

#[test]
fn thirty_two_workers_with_1_mib_rows_keep_memory_flat() {
    let (db, dir) = dumped_db(
        &source_server(),
        "mapbig",
        "CREATE TABLE big (id INT PRIMARY KEY, v MEDIUMTEXT);
         INSERT INTO big SELECT seq, REPEAT(MD5(seq), 32768) FROM seq_1_to_96;",
        "big",
        48,
    );
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let r = myspool(&map_args(
        dir.path(),
        &out,
        "cat",
        &["--jobs", "32", "--json"],
    ));
    assert_success(&r);
    let s = json(&r);
    let rss = s["peak_rss_bytes"].as_u64().unwrap();
    eprintln!(
        "peak RSS with 32 workers and 1 MiB rows: {:.1} MiB",
        rss as f64 / 1048576.0
    );
    assert!(rss < 64 * 1024 * 1024, "peak RSS {rss}");
    assert_eq!(
        dumps::table_rows(&out, &db, "big"),
        dumps::table_rows(dir.path(), &db, "big")
    );
}

/// Doubles `name`; refuses id 13 (an `Err` rejects the row).
struct Double;

impl RowTransform for Double {
    fn columns(&self, input: &[String]) -> anyhow::Result<Vec<String>> {
        Ok(input.to_vec())
    }
    fn transform(
        &self,
        _input: &[String],
        mut row: Vec<Field>,
        emit: &mut dyn FnMut(Vec<Field>),
    ) -> anyhow::Result<()> {
        if row[0].as_deref() == Some(b"13") {
            anyhow::bail!("unlucky");
        }
        row[1] = row[1].take().map(|v| [v.clone(), v].concat());
        emit(row);
        Ok(())
    }
}

#[test]
fn a_rust_transform_runs_row_by_row_with_the_same_checkpoints_and_rejects() {
    let (db, dir) = dumped_rows(250, 125);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let mut opts = ProcessOptions::new(dir.path(), &out, "double (Rust)");
    opts.progress = ProgressMode::Quiet;
    opts.jobs = 4;
    let s = process_rows_with(&opts, &Double).unwrap();
    assert!(s.failed.is_empty(), "{:?}", s.failed);
    let m = s.map.unwrap();
    assert_eq!(
        (m.rows_answered, m.rows_emitted, m.rows_rejected),
        (250, 249, 1)
    );
    let rows = dumps::table_rows(&out, &db, "t");
    assert_eq!(rows.len(), 249);
    assert_eq!(rows[12][0].as_deref(), Some(&b"14"[..]));
    let rejects = std::fs::read_to_string(out.join(&db).join("t").join("rejects.jsonl")).unwrap();
    assert!(rejects.contains("\"reason\":\"unlucky\""), "{rejects}");
}
