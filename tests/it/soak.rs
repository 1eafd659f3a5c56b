//! The soak: `myspool copy` killed with SIGKILL at random moments, and the
//! regressions it found, each pinned by a test of its own.

use std::time::Duration;

use crate::common::*;

/// Found by the soak: a load killed while its control connection puts
/// AUTO_INCREMENT back leaves that ALTER running on the server (it rebuilds
/// the table), and the server keeps the session, and the table's named lock,
/// until the statement ends. The rerun refused at once ("another myspool
/// load is loading into …; wait for it to finish") although none was. It
/// now waits for the statement, then finishes. Here a transaction of the
/// test holds the table's metadata lock, so the ALTER waits as long as the
/// test needs, whatever the machine's speed.
#[test]
fn a_rerun_waits_for_the_alter_a_killed_load_left_running_then_finishes() {
    let src = source_server();
    let dst = target_server();
    let (db, dir) = autoinc_table(&src, "orphanalter");
    let into = dst.fresh_db("orphanalter");
    let args = load_args(
        dir.path(),
        &dst,
        &["--into", &into, "--autoinc", "drop", "--jobs", "1"],
    );
    let sessions = |like: &str| {
        count(
            &dst,
            &format!(
                "information_schema.PROCESSLIST WHERE COMMAND IN ('Query', 'Execute') AND INFO LIKE '{like}'"
            ),
        )
    };
    let restoring = format!("ALTER TABLE `{into}`.`t` MODIFY%AUTO_INCREMENT%");
    let mut reader = dst.conn();
    let mut load = spawn_myspool(&args, &[("MYSPOOL_TEST_CHUNK_DELAY_MS", "30")]);
    wait_until(Duration::from_secs(30), "a first chunk committed", || {
        count_in_files(dir.path(), "load@", "\"committed\"") > 0
    });
    // A metadata lock that the rebuild must wait for at its end.
    mysql::prelude::Queryable::query_drop(
        &mut reader,
        format!("START TRANSACTION; SELECT COUNT(*) FROM `{into}`.t"),
    )
    .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the ALTER putting AUTO_INCREMENT back",
        || sessions(&restoring) > 0,
    );
    load.kill().unwrap();
    load.wait().unwrap();
    assert_eq!(sessions(&restoring), 1, "the killed load's ALTER goes on");

    let mut rerun = spawn_myspool(&args, &[]);
    wait_until(
        Duration::from_secs(30),
        "the rerun waiting for the lock",
        || {
            if let Some(status) = rerun.try_wait().unwrap() {
                let mut err = String::new();
                let _ = std::io::Read::read_to_string(rerun.stderr.as_mut().unwrap(), &mut err);
                panic!("the rerun ended while the killed load's ALTER ran ({status}): {err}");
            }
            sessions("SELECT GET_LOCK(%") > 0
        },
    );
    mysql::prelude::Queryable::query_drop(&mut reader, "COMMIT").unwrap();
    let out = rerun.wait_with_output().unwrap();
    assert_success(&out);
    assert!(
        stderr(&out).contains("waiting for the lock on"),
        "{}",
        stderr(&out)
    );
    assert_same_table(&src, &db, &dst, &into, "t", "id");
    assert!(show_create(&dst, &into, "t").contains("AUTO_INCREMENT"));
}
