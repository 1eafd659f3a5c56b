//! `myspool verify`: a loaded table compared with its dump, chunk by chunk.

use std::sync::Arc;

use myspool::dump::LeftOutColumn;

use crate::common::dumps::{description, entry};
use crate::common::*;

#[test]
fn verify_finds_the_chunks_that_differ() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_db(
        &src,
        "verify",
        "CREATE TABLE t (id INT PRIMARY KEY, f FLOAT, b VARBINARY(16), s VARCHAR(20));
         INSERT INTO t SELECT seq, seq / 7, UNHEX(MD5(seq)), IF(seq % 3, CONCAT('v', seq), NULL) FROM seq_1_to_100;
         CREATE TABLE loose (a INT, b INT); INSERT INTO loose SELECT seq % 4, seq FROM seq_1_to_20;",
        "*",
        25,
    );
    run_load(&load_options(&dst, dir.path()));
    let d = dir.path().display().to_string();
    let out = myspool(&["verify", "--dir", &d, "--to", &dst.url()]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{db}.t: 4 chunks, all match")),
        "{text}"
    );

    // One changed value in chunk 2, one row gone from chunk 4.
    dst.query(&format!(
        "UPDATE `{db}`.t SET s = 'changed' WHERE id = 30; DELETE FROM `{db}`.t WHERE id = 99;"
    ));
    let out = myspool(&["verify", "--dir", &d, "--to", &dst.url(), "--json"]);
    assert!(!out.status.success());
    let report: serde_json::Value = json(&out);
    let diffs: Vec<(u64, u64, u64)> = report["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["chunk"].as_u64().unwrap(),
                d["dump_rows"].as_u64().unwrap(),
                d["target_rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(diffs, [(2, 25, 25), (4, 25, 24)]);
    assert!(stderr(&out).contains("2 chunk(s) differ"));
}

/// A table with a generated column, exported, loaded and verified: the
/// columns and chunks match.
fn loaded_table_with_a_generated_column(prefix: &str) -> (Arc<Server>, String, tempfile::TempDir) {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_db(
        &src,
        prefix,
        "CREATE TABLE t (id INT PRIMARY KEY, v INT, g INT AS (v * 2) VIRTUAL);
         INSERT INTO t (id, v) SELECT seq, seq FROM seq_1_to_50;",
        "t",
        20,
    );
    run_load(&load_options(&dst, dir.path()));
    (dst, db, dir)
}

fn verify_cli(dir: &std::path::Path, target: &Server, more: &[&str]) -> std::process::Output {
    let mut args = vec![
        "verify".to_string(),
        "--dir".into(),
        path_arg(dir),
        "--to".into(),
        target.url(),
    ];
    args.extend(more.iter().map(|s| s.to_string()));
    myspool(&args)
}

/// `--json`'s column mismatches as (column, kind).
fn column_mismatches(report: &serde_json::Value) -> Vec<(String, String)> {
    report["column_mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["column"].as_str().unwrap_or("").to_string(),
                m["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn verify_fails_naming_a_target_column_the_dump_lacks() {
    let (dst, db, dir) = loaded_table_with_a_generated_column("verify_extra");
    // The export recorded the generated column it left out.
    let desc = description(dir.path(), &db, "t");
    assert_eq!(desc.left_out, Some(vec![LeftOutColumn::generated("g")]));
    assert_success(&verify_cli(dir.path(), &dst, &[]));

    // A column added after the load, with a default: every row holds 7, and
    // no chunk fingerprint reads it.
    dst.query(&format!("ALTER TABLE `{db}`.t ADD COLUMN c INT DEFAULT 7"));
    let out = verify_cli(dir.path(), &dst, &[]);
    let err = assert_one_line_error(&out);
    assert!(
        err.contains("1 column mismatch(es) between the dump and the target"),
        "{err}"
    );
    assert!(
        stdout(&out).contains(&format!(
            "mismatch: {db}.t: column c is on the target but not in the dump"
        )),
        "{}",
        stdout(&out)
    );
    let out = verify_cli(dir.path(), &dst, &["--json"]);
    assert!(!out.status.success());
    let report = json(&out);
    assert_eq!(
        column_mismatches(&report),
        [("c".to_string(), "not_in_dump".to_string())]
    );
    assert_eq!(report["column_mismatches"][0]["table"], format!("{db}.t"));
    assert_eq!(report["matches"], false);
    // The chunks themselves still match.
    assert_eq!(report["differences"].as_array().unwrap().len(), 0);

    // A generated column the dump lacks is computed from the compared ones.
    dst.query(&format!(
        "ALTER TABLE `{db}`.t DROP COLUMN c, ADD COLUMN h INT AS (id + v) STORED"
    ));
    assert_success(&verify_cli(dir.path(), &dst, &[]));
}

#[test]
fn verify_reports_the_source_columns_the_dump_left_out() {
    let (dst, db, dir) = loaded_table_with_a_generated_column("verify_left_out");
    // g, generated on the source, made an ordinary column on the target:
    // its values there never came from the source.
    dst.query(&format!(
        "ALTER TABLE `{db}`.t DROP COLUMN g, ADD COLUMN g INT DEFAULT 0"
    ));
    let out = verify_cli(dir.path(), &dst, &["--json"]);
    assert!(!out.status.success());
    assert_eq!(
        column_mismatches(&json(&out)),
        [("g".to_string(), "not_generated_on_target".to_string())]
    );
    // g gone, and v (a dumped column) too: the chunks cannot be read.
    dst.query(&format!(
        "ALTER TABLE `{db}`.t DROP COLUMN g, DROP COLUMN v"
    ));
    let out = verify_cli(dir.path(), &dst, &[]);
    assert_one_line_error(&out);
    let text = stdout(&out);
    for line in [
        format!("{db}.t: 3 chunks, not compared (a column of the dump is not on the target); 2 column mismatch(es)"),
        format!("mismatch: {db}.t: column v is in the dump but not on the target"),
        format!("mismatch: {db}.t: column g of the source (generated, so not in the dump) is not on the target"),
    ] {
        assert!(text.contains(&line), "{line}\n{text}");
    }
}

#[test]
fn verify_reads_a_dump_that_predates_the_left_out_record_with_a_note() {
    let (dst, db, dir) = loaded_table_with_a_generated_column("verify_old_dump");
    // table.json as an older myspool wrote it: no left_out.
    let entry = entry(dir.path(), &db, "t");
    let path = dir.path().join(&entry.dir).join("table.json");
    let mut table: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    table.as_object_mut().unwrap().remove("left_out").unwrap();
    std::fs::write(&path, serde_json::to_vec_pretty(&table).unwrap()).unwrap();

    let out = verify_cli(dir.path(), &dst, &[]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("note: ")
            && stdout(&out).contains("its list of generated columns stands in for it"),
        "{}",
        stdout(&out)
    );
    // Its generated_columns still say what the source had.
    dst.query(&format!("ALTER TABLE `{db}`.t DROP COLUMN g"));
    let out = verify_cli(dir.path(), &dst, &["--json"]);
    assert_eq!(
        column_mismatches(&json(&out)),
        [("g".to_string(), "source_column_not_on_target".to_string())]
    );
}

#[test]
fn verify_fails_on_a_table_missing_from_the_target() {
    let (dst, db, dir) = loaded_table_with_a_generated_column("verify_gone");
    dst.query(&format!("DROP TABLE `{db}`.t"));
    let out = verify_cli(dir.path(), &dst, &["--json"]);
    assert!(!out.status.success());
    assert_eq!(
        column_mismatches(&json(&out)),
        [(String::new(), "table_not_on_target".to_string())]
    );
}
