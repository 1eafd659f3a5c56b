//! `myspool check`: a target's settings and tables checked before a load,
//! without changing anything.

use crate::common::*;

#[test]
fn check_reports_every_problem_and_changes_nothing() {
    let src = source_server();
    let (db, _dir) = autoinc_table(&src, "check");
    let strict = Server::shared(&["--local-infile=0", "--innodb-autoinc-lock-mode=1"]);
    strict.query(&format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"
    ));
    let table = format!("{db}.t");
    let out = myspool(&[
        "check",
        "--to",
        &strict.url(),
        "--table",
        &table,
        "--jobs",
        "2",
    ]);
    let text = stdout(&out);
    assert!(!out.status.success());
    assert!(text.contains("local_infile=OFF"), "{text}");
    assert!(
        text.contains("--autoinc drop") && text.contains("innodb_autoinc_lock_mode = 1"),
        "{text}"
    );
    assert!(stderr(&out).contains("2 problem(s)"));

    let ok = target_server();
    ok.query(&format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"
    ));
    let out = myspool(&["check", "--to", &ok.url(), "--table", &table, "--jobs", "4"]);
    assert_success(&out);
}
