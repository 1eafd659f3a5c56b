//! `myspool status`: what each phase of a job has done and how to continue.

use crate::common::*;

#[test]
fn status_reports_every_phase_and_how_to_continue() {
    let src = Server::shared(&[]);
    let dst = target_server();
    let db = db_with(
        &src,
        "status",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_500;",
    );
    let work = tempfile::tempdir().unwrap();
    let dump = work.path().join("dump");
    let out = work.path().join("out");
    let (d, o) = (dump.display().to_string(), out.display().to_string());
    let table = format!("{db}.t");
    assert!(
        myspool(&export_args(&src, &table, &dump, &["--chunk-rows", "100"]))
            .status
            .success()
    );
    let exec = "if [ \"$MYSPOOL_CHUNK\" = 3 ]; then exit 1; fi; cat";
    assert!(
        !myspool(&["process", "--dir", &d, "--out", &o, "--exec", exec])
            .status
            .success()
    );
    assert!(myspool(&load_args(&dump, &dst, &[])).status.success());

    let st = myspool(&["status", "--dir", &d, "--json"]);
    assert_success(&st);
    let s: serde_json::Value = json(&st);
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
