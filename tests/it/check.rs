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

/// A dump of `t` (400 rows, an AUTO_INCREMENT key and a secondary index),
/// and the same `t` on the target already holding a row of its own, in a
/// database the test's user may use as the test says.
struct Case {
    dst: Arc<Server>,
    db: String,
    dir: tempfile::TempDir,
}

impl Case {
    fn new(dst: Arc<Server>, prefix: &str) -> Case {
        let create = "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT, KEY (v))";
        let (db, dir) = dumped_db(
            &source_server(),
            prefix,
            &format!("{create}; INSERT INTO t SELECT seq * 2, seq FROM seq_1_to_400;"),
            "t",
            50,
        );
        dst.query(&format!(
            "CREATE DATABASE `{db}`; USE `{db}`; {create}; INSERT INTO t VALUES (1001, -1);"
        ));
        Case { dst, db, dir }
    }

    /// A user holding `privileges` on the case's database and nothing else.
    fn user(&self, privileges: &str) -> String {
        user_with_grants(
            &self.dst,
            &format!("u_{}", self.db),
            &[(&self.db, privileges)],
        )
    }

    /// `check` of `t` as `url` with `options`: its problems, and whether it passed.
    fn check(&self, url: &str, options: &[&str]) -> (Vec<String>, bool) {
        let table = format!("{}.t", self.db);
        let mut args = vec!["check", "--to", url, "--table", &table, "--json"];
        args.extend(options);
        let out = myspool(&args);
        let report = json(&out);
        let problems: Vec<String> = report["problems"]
            .as_array()
            .unwrap_or_else(|| panic!("no problems in {report}"))
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        assert_eq!(out.status.success(), problems.is_empty(), "{report}");
        (problems, out.status.success())
    }

    /// `load` of the dump as `url` with `options`.
    fn load(&self, url: &str, options: &[&str]) -> std::process::Output {
        let dir = path_arg(self.dir.path());
        let mut args = vec!["load", "--dir", &dir, "--to", url, "--progress", "none"];
        args.extend(options);
        myspool(&args)
    }

    /// What a refused load must leave as it was: `t`'s definition and rows.
    fn target_state(&self) -> (String, Option<String>) {
        (
            show_create(&self.dst, &self.db, "t"),
            checksum(&self.dst, &self.db, "t"),
        )
    }

    /// `check` with `options` names a problem containing `expected`, and
    /// the load with them refuses with exactly `check`'s problems, touching
    /// nothing; without them (`plain`), both pass.
    fn assert_same_verdicts(&self, url: &str, options: &[&str], expected: &str, plain: &[&str]) {
        let before = self.target_state();
        let (problems, _) = self.check(url, options);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "check {options:?}: {problems:?}"
        );
        let err = assert_one_line_error(&self.load(url, options));
        assert_eq!(
            err.trim_end(),
            format!(
                "myspool: error: nothing was loaded: {}",
                problems.join("; ")
            ),
            "load {options:?}"
        );
        assert!(!err.contains(":pw@"), "{err}");
        assert_eq!(self.target_state(), before, "load {options:?} touched t");

        let (problems, passed) = self.check(url, plain);
        assert!(passed, "check {plain:?}: {problems:?}");
        assert_success(&self.load(url, plain));
        assert_eq!(count(&self.dst, &format!("`{}`.t", self.db)), 401);
    }
}

#[test]
fn truncate_needs_drop_in_check_as_in_load() {
    let case = Case::new(target_server(), "pf_truncate");
    let url = case.user("SELECT, INSERT");
    let lacks = format!("the target user lacks DROP on {}.t", case.db);
    case.assert_same_verdicts(&url, &["--truncate"], &lacks, &[]);
}

#[test]
fn on_duplicate_replace_needs_delete_in_check_as_in_load() {
    let case = Case::new(target_server(), "pf_replace");
    let url = case.user("SELECT, INSERT");
    let lacks = format!("the target user lacks DELETE on {}.t", case.db);
    let replace = ["--on-duplicate", "replace"];
    case.assert_same_verdicts(&url, &replace, &lacks, &["--on-duplicate", "ignore"]);
}

#[test]
fn defer_indexes_needs_index_in_check_as_in_load() {
    let case = Case::new(target_server(), "pf_defer");
    let url = case.user("SELECT, INSERT, ALTER");
    let lacks = format!("the target user lacks INDEX on {}.t", case.db);
    case.assert_same_verdicts(&url, &["--defer-indexes"], &lacks, &[]);
}

#[test]
fn autoinc_drop_needs_alter_in_check_as_in_load() {
    let case = Case::new(target_server(), "pf_drop");
    let url = case.user("SELECT, INSERT");
    let lacks = format!("the target user lacks ALTER on {}.t", case.db);
    let drop = ["--autoinc", "drop"];
    case.assert_same_verdicts(&url, &drop, &lacks, &["--autoinc", "check"]);
}

#[test]
fn skip_binlog_needs_its_privilege_in_check_as_in_load() {
    let case = Case::new(target_server(), "pf_binlog");
    let url = case.user("SELECT, INSERT");
    let needs = "--skip-binlog needs a privilege to SET sql_log_bin";
    case.assert_same_verdicts(&url, &["--skip-binlog"], needs, &[]);
}

#[test]
fn into_checks_the_other_database_in_check_as_in_load() {
    let case = Case::new(target_server(), "pf_into");
    let into = case.dst.fresh_db("pf_into_other");
    // The user may write into `into` but not create a table there.
    let url = user_with_grants(
        &case.dst,
        &format!("u_{}", case.db),
        &[(&case.db, "SELECT, INSERT"), (&into, "SELECT, INSERT")],
    );
    let lacks = format!("the target user lacks CREATE on {into}.t");
    case.assert_same_verdicts(&url, &["--into", &into], &lacks, &[]);
    assert_eq!(table_count(&case.dst, &into), 0);
}

#[test]
fn jobs_and_the_autoinc_lock_mode_give_one_verdict() {
    let case = Case::new(Server::shared(&["--innodb-autoinc-lock-mode=1"]), "pf_jobs");
    let url = case.dst.url();
    let parallel = "parallel LOAD DATA statements would hold its table-level AUTO-INC lock";
    // One job: both go on, with the same warning.
    let table = format!("{}.t", case.db);
    let out = myspool(&[
        "check", "--to", &url, "--table", &table, "--jobs", "1", "--json",
    ]);
    let check_warnings = json(&out)["warnings"].clone();
    case.assert_same_verdicts(&url, &["--jobs", "2"], parallel, &["--jobs", "1"]);
    assert_eq!(
        check_warnings.as_array().map(Vec::len),
        Some(1),
        "{check_warnings}"
    );
    let out = case.load(&url, &["--jobs", "1", "--json"]);
    assert_success(&out);
    assert_eq!(json(&out)["warnings"], check_warnings);
}

#[test]
fn local_infile_off_is_worded_the_same_by_check_and_load() {
    let case = Case::new(
        Server::shared(&["--local-infile=0", "--innodb-autoinc-lock-mode=1"]),
        "pf_infile",
    );
    let url = case.dst.url();
    let before = case.target_state();
    let (problems, _) = case.check(&url, &["--jobs", "2"]);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("the target has local_infile=OFF"),
        "{problems:?}"
    );
    let err = assert_one_line_error(&case.load(&url, &["--jobs", "2"]));
    assert_eq!(
        err.trim_end(),
        format!(
            "myspool: error: nothing was loaded: {}",
            problems.join("; ")
        )
    );
    assert_eq!(case.target_state(), before);
}

/// max_allowed_packet does not limit a load (the file streams in small
/// packets, and the server reads a row of any length from it), so neither
/// `check` nor `load` says anything about it: a 3 MB row loads into a
/// server whose max_allowed_packet is 1 MiB.
#[test]
fn a_row_bigger_than_max_allowed_packet_loads_and_check_agrees() {
    let src = source_server();
    let dst = Server::shared(&["--max-allowed-packet=1M"]);
    let (db, dir) = dumped_db(
        &src,
        "pf_packet",
        "CREATE TABLE t (id INT PRIMARY KEY, s LONGTEXT, b LONGBLOB) CHARACTER SET latin1;
         INSERT INTO t VALUES (1, REPEAT('ab', 1500000), REPEAT(X'00FF', 750000));",
        "t",
        10,
    );
    let table = format!("{db}.t");
    let out = myspool(&["check", "--to", &dst.url(), "--table", &table]);
    assert_success(&out);
    assert!(
        !stdout(&out).contains("max_allowed_packet"),
        "{}",
        stdout(&out)
    );
    assert_success(&myspool(&load_args(
        dir.path(),
        &dst,
        &["--progress", "none"],
    )));
    // Digests, not the values: HEX() of a value bigger than the target's
    // max_allowed_packet is NULL there.
    let digest =
        format!("SELECT CONCAT_WS(' ', LENGTH(s), MD5(s), LENGTH(b), MD5(b)) FROM `{db}`.t");
    let loaded = dst.scalar(&digest);
    assert_eq!(loaded, src.scalar(&digest));
    assert!(loaded.is_some_and(|d| d.starts_with("3000000 ")));
}
