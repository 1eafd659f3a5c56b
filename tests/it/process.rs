//! `myspool process`: commands over chunks, offline, with failures, retries
//! and kill -9; then a load of the processed dump.

use std::path::Path;

use myspool::process::{process_with, ProcessOptions, RowTransform};
use myspool::progress::ProgressMode;

use crate::common::*;

/// `people`: 250 rows with NULLs, '', 'NULL', quotes, newlines and binary
/// values, in a fresh database on the source server, dumped in 5 chunks.
fn dumped_people() -> (String, tempfile::TempDir) {
    dumped_db(
        &source_server(),
        "people",
        "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(40) NULL, secret VARBINARY(16) NULL, note TEXT NULL);
         INSERT INTO people SELECT seq, ELT(1 + seq % 4, NULL, '', CONCAT('zo\u{eb} ', seq), 'a \"quoted\", name'),
            UNHEX(MD5(seq)), ELT(1 + seq % 3, NULL, 'NULL', 'line\\nbreak') FROM seq_1_to_250;",
        "people",
        50,
    )
}

/// `myspool process --dir DIR --out OUT --exec EXEC` and `more` arguments.
fn process_args(dir: &Path, out: &Path, exec: &str, more: &[&str]) -> Vec<String> {
    process_cli(dir, out, &["--exec", exec], more)
}

/// A script in Python (JSON lines: no CSV convention needed) that uppercases
/// `name` and drops `secret`.
const UPPERCASE_PY: &str = r#"
import json, sys
for line in sys.stdin:
    row = json.loads(line)
    if row["name"] is not None:
        row["name"] = row["name"].upper()
    del row["secret"]
    print(json.dumps(row))
"#;

#[test]
fn uppercase_one_column_drop_another_and_load_the_result() {
    let src = source_server();
    let (db, dir) = dumped_people();
    let out = tempfile::tempdir().unwrap();
    let out2 = out.path().join("processed");
    let script = out.path().join("upper.py");
    std::fs::write(&script, UPPERCASE_PY).unwrap();
    let exec = format!("python3 {}", script.display());
    let r = myspool(&process_args(
        dir.path(),
        &out2,
        &exec,
        &["--format", "jsonl", "--jobs", "3"],
    ));
    assert_success(&r);
    let desc = dumps::description(&out2, &db, "people");
    let names: Vec<&str> = desc.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "name", "note"]);
    assert_eq!(desc.chunks.len(), 5);

    // Load into a table shaped like the output, on another server.
    let dst = target_server();
    let into = db_with(
        &dst,
        "people_out",
        "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(40) NULL, note TEXT NULL)",
    );
    let opts = load_into(&dst, &out2, &into);
    run_load(&opts);
    let expected = src.query_strings(&format!(
        "SELECT id, HEX(UPPER(name)), HEX(note) FROM `{db}`.people ORDER BY id"
    ));
    let got = dst.query_strings(&format!(
        "SELECT id, HEX(name), HEX(note) FROM `{into}`.people ORDER BY id"
    ));
    assert_eq!(got, expected);

    // Without a table to load into, the processed dump is not created from
    // the source's schema.sql (its columns differ).
    let mut opts = load_options(&dst, &out2);
    opts.into = Some(dst.fresh_db("people_nowhere"));
    let err = load_error(&opts);
    assert!(err.contains("create it to match the dump first"), "{err}");
}

#[test]
fn identity_csv_keeps_every_value_and_needs_no_server() {
    let (db, dir) = dumped_people();
    let out = tempfile::tempdir().unwrap();
    let out2 = out.path().join("same");
    // No server URL anywhere: process works on files alone.
    let r = myspool(&process_args(dir.path(), &out2, "cat", &["--json"]));
    assert_success(&r);
    let summary = json(&r);
    assert_eq!(summary["rows_in"], 250);
    assert_eq!(summary["rows_out"], 250);
    assert_eq!(
        dumps::table_rows(&out2, &db, "people"),
        dumps::table_rows(dir.path(), &db, "people")
    );
    let m = dumps::manifest(&out2);
    assert!(m.complete);
    assert_eq!(m.processed.unwrap().exec, "cat");
}

#[test]
fn a_failing_chunk_keeps_its_stderr_and_is_retried_on_the_next_run() {
    let (db, dir) = dumped_people();
    let out = tempfile::tempdir().unwrap();
    let out2 = out.path().join("p");
    let flag = out.path().join("fixed");
    let exec = format!(
        "if [ \"$MYSPOOL_CHUNK\" = 2 ] && [ ! -e {} ]; then echo \"chunk $MYSPOOL_CHUNK of $MYSPOOL_TABLE: boom\" >&2; exit 3; fi; cat",
        flag.display()
    );
    let args = process_args(dir.path(), &out2, &exec, &[]);
    let r = myspool(&args);
    assert!(!r.status.success());
    let text = stdout(&r);
    assert!(
        text.contains(
            "chunk 000002: the command exited with status 3 (stderr: chunk 2 of people: boom)"
        ),
        "{text}"
    );
    assert!(text.contains("4 of 5 chunks done"), "{text}");
    let table_dir = out2.join(&db).join("people");
    assert!(std::fs::read_to_string(table_dir.join("000002.stderr"))
        .unwrap()
        .contains("boom"));
    assert!(
        !table_dir.join("000002.csv.gz").exists(),
        "no output for a failed chunk"
    );
    assert!(!dumps::manifest(&out2).complete);

    std::fs::write(&flag, "").unwrap();
    let r = myspool(&[&args[..], &["--json".into()]].concat());
    assert_success(&r);
    let summary = json(&r);
    assert_eq!(
        (
            summary["chunks_processed"].as_u64(),
            summary["chunks_kept"].as_u64()
        ),
        (Some(1), Some(4))
    );
    assert_eq!(
        dumps::table_rows(&out2, &db, "people"),
        dumps::table_rows(dir.path(), &db, "people")
    );

    // Another command into the same --out is refused.
    let r = myspool(&process_args(dir.path(), &out2, "cat", &[]));
    assert!(!r.status.success());
    assert!(stderr(&r).contains("holds another processing"));
}

#[test]
fn invalid_output_is_rejected_with_its_line() {
    let (_, dir) = dumped_people();
    for (exec, expect) in [
        ("cat; echo '\"1\",\"2\"'", "fields, the header has 4"),
        ("cat; printf '\"unterminated'", "unterminated quoted field"),
        (
            "printf '\"a\",\"b\"\\n\"\\377\",\"x\"\\n'",
            "not valid UTF-8",
        ),
        ("true", "no header line"),
        ("head -c 30", "unterminated"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let r = myspool(&process_args(dir.path(), &out.path().join("o"), exec, &[]));
        let text = stdout(&r);
        assert!(!r.status.success(), "{exec}");
        assert!(
            text.contains(expect),
            "{exec}: expected {expect:?} in {text}"
        );
    }
}

#[test]
fn kill_9_mid_process_then_rerun_gives_the_same_output() {
    let (db, dir) = dumped_people();
    let work = tempfile::tempdir().unwrap();
    let reference = work.path().join("reference");
    let exec = "sleep 0.1; cat";
    let r = myspool(&process_args(dir.path(), &reference, exec, &[]));
    assert!(r.status.success());
    for kill_at in [1usize, 3] {
        let out = work.path().join(format!("killed{kill_at}"));
        let args = process_args(dir.path(), &out, exec, &["--jobs", "2"]);
        let table_dir = out.join(&db).join("people");
        assert!(
            kill_9_when(&args, &[], || dumps::committed_chunks(&table_dir)
                >= kill_at),
            "finished before the kill"
        );
        let r = myspool(&args);
        assert_success(&r);
        assert_eq!(
            dumps::description(&out, &db, "people").chunks,
            dumps::description(&reference, &db, "people").chunks,
            "same chunks, same checksums"
        );
    }
}

struct Reverse;

impl RowTransform for Reverse {
    fn columns(&self, input: &[String]) -> anyhow::Result<Vec<String>> {
        Ok(input.iter().rev().cloned().collect())
    }
    fn transform(
        &self,
        _input: &[String],
        row: Vec<myspool::dialect::Field>,
        emit: &mut dyn FnMut(Vec<myspool::dialect::Field>),
    ) -> anyhow::Result<()> {
        // Every row twice, columns reversed.
        emit(row.iter().rev().cloned().collect());
        emit(row.into_iter().rev().collect());
        Ok(())
    }
}

#[test]
fn a_rust_row_transform_runs_through_the_same_machinery() {
    let (db, dir) = dumped_people();
    let out = tempfile::tempdir().unwrap();
    let out2 = out.path().join("rev");
    let mut opts = ProcessOptions::new(dir.path(), &out2, "reverse (Rust)");
    opts.progress = ProgressMode::Quiet;
    let s = process_with(&opts, &Reverse).unwrap();
    assert_eq!((s.rows_in, s.rows_out), (250, 500));
    let rows = dumps::table_rows(&out2, &db, "people");
    let input = dumps::table_rows(dir.path(), &db, "people");
    let mut want: Vec<_> = input
        .iter()
        .flat_map(|r| {
            let rev: Vec<_> = r.iter().rev().cloned().collect();
            [rev.clone(), rev]
        })
        .collect();
    // The hex column stays hex text in a processed dump (its description
    // says hex, so the test helper decodes it: compare decoded values).
    want.sort();
    let mut got = rows;
    got.sort();
    assert_eq!(got, want);
}

/// The output disk fills up: a clear error, nothing recorded that is not
/// whole, and the same command finishes once there is room.
#[test]
fn a_full_disk_fails_clearly_and_the_rerun_finishes() {
    let (db, dir) = dumped_people();
    let mount = Tmpfs::mount("size=300k");
    let ballast = mount.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 200 * 1024]).unwrap();
    let out = mount.path().join("out");
    // Output much bigger than the input, and incompressible.
    let exec = "python3 -c 'import json, os, sys\nfor l in sys.stdin:\n o = json.loads(l); o[\"note\"] = os.urandom(3000).hex(); print(json.dumps(o))'";
    let args = process_args(dir.path(), &out, exec, &["--format", "jsonl"]);
    let r = myspool(&args);
    assert!(!r.status.success());
    let text = format!("{}{}", stdout(&r), stderr(&r));
    assert!(text.contains("No space left on device"), "{text}");
    dumps::assert_committed_chunks_whole(&out.join(&db).join("people"), "csv.gz");
    std::fs::remove_file(&ballast).unwrap();
    mount.remount("size=64m");
    let r = myspool(&args);
    assert_success(&r);
    assert_eq!(dumps::table_rows(&out, &db, "people").len(), 250);
}
