//! `myspool verify`: a loaded table compared with its dump, chunk by chunk.

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
