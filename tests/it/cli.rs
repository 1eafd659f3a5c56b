//! The command-line surface: every subcommand of the design is there, and
//! the ones a later release delivers say so instead of pretending.

use crate::common::*;

#[test]
fn help_lists_every_subcommand() {
    let out = myspool(&["--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    for cmd in [
        "export", "process", "load", "copy", "status", "check", "verify",
    ] {
        assert!(help.contains(cmd), "{cmd} missing from --help:\n{help}");
    }
}

#[test]
fn every_documented_option_is_accepted_by_clap() {
    for (cmd, options) in [
        (
            "export",
            &[
                "--from",
                "--table",
                "--dir",
                "--where",
                "--chunk-rows",
                "--jobs",
                "--compress",
                "--level",
                "--json",
            ][..],
        ),
        (
            "process",
            &["--dir", "--out", "--exec", "--jobs", "--lease", "--shard"][..],
        ),
        (
            "load",
            &[
                "--dir",
                "--to",
                "--into",
                "--jobs",
                "--autoinc",
                "--on-duplicate",
                "--truncate",
                "--indexes",
                "--skip-binlog",
                "--restart",
                "--repair",
            ][..],
        ),
        (
            "copy",
            &[
                "--from",
                "--to",
                "--table",
                "--dir",
                "--exec",
                "--compress",
                "--level",
                "--autoinc",
                "--jobs",
                "--restart",
            ][..],
        ),
        ("status", &["--dir"][..]),
        (
            "check",
            &[
                "--to",
                "--table",
                "--jobs",
                "--autoinc",
                "--into",
                "--on-duplicate",
                "--truncate",
                "--indexes",
                "--skip-binlog",
                "--collation-map",
                "--dir",
            ][..],
        ),
        ("verify", &["--dir", "--to"][..]),
    ] {
        // --restart forgets a load journal: check loads nothing and has none.
        if cmd == "check" {
            let help = stdout(&myspool(&[cmd, "--help"]));
            assert!(
                !help
                    .lines()
                    .any(|l| l.trim_start().starts_with("--restart")),
                "{help}"
            );
        }
        let out = myspool(&[cmd, "--help"]);
        assert!(out.status.success(), "{cmd} --help");
        let help = stdout(&out);
        for option in options {
            assert!(
                help.contains(option),
                "{cmd} --help lacks {option}:\n{help}"
            );
        }
    }
}

#[test]
fn usage_errors_exit_non_zero() {
    let out = myspool(&["export", "--from", "mysql://root@h"]);
    assert!(!out.status.success());
    let out = myspool(&[
        "export",
        "--from",
        "mysql://root@h",
        "--table",
        "a.b",
        "--dir",
        "/tmp/x",
        "--compress",
        "lz4",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("lz4"));
}

#[test]
fn copy_refuses_a_compression_level_out_of_range_before_touching_a_server() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("job").display().to_string();
    // Port 1 has no server: the level must be refused before any connection.
    let out = myspool(&[
        "copy",
        "--from",
        "mysql://root@127.0.0.1:1",
        "--to",
        "mysql://root@127.0.0.1:1",
        "--table",
        "a.b",
        "--dir",
        &dir,
        "--level",
        "13",
    ]);
    let err = assert_one_line_error(&out);
    assert!(err.contains("--level 13 is out of range"), "{err}");
}
