//! `myspool check`: a target's settings and tables checked before a load,
//! without changing anything.

use std::sync::Arc;

use crate::common::*;

#[test]
fn check_reports_every_problem_and_changes_nothing() {
    let src = source_server();
    let (db, _dir) = autoinc_table(&src, "check");
    // The target table exists as the dump has it: only the servers differ.
    let with_table = |server: Arc<Server>| {
        server.query(&format!(
            "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"
        ));
        server
    };
    let strict = with_table(Server::shared(&[
        "--local-infile=0",
        "--innodb-autoinc-lock-mode=1",
    ]));
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

    let ok = with_table(target_server());
    let out = myspool(&["check", "--to", &ok.url(), "--table", &table, "--jobs", "4"]);
    assert_success(&out);
}
