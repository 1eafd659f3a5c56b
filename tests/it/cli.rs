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
        ("process", &["--dir", "--out", "--exec", "--jobs"][..]),
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
                "--defer-indexes",
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
                "--defer-indexes",
                "--skip-binlog",
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
        "zstd",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("zstd"));
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

const SUBCOMMANDS: [&str; 9] = [
    "export",
    "process",
    "load",
    "copy",
    "status",
    "check",
    "verify",
    "completions",
    "man",
];

/// Runs `script` in bash after sourcing the completion script, which sets
/// COMPREPLY from COMP_WORDS; returns what bash printed.
fn bash_with_completions(completions: &str, script: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("myspool.bash");
    std::fs::write(&file, completions).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {}\n{script}", file.display()))
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bash_completion_sources_and_completes_subcommands_and_options() {
    let out = myspool(&["completions", "bash"]);
    assert_success(&out);
    let script = stdout(&out);
    // `myspool ex<TAB>`, then `myspool export --ta<TAB>`.
    let completed = bash_with_completions(
        &script,
        "COMP_WORDS=(myspool ex); COMP_CWORD=1; _myspool myspool ex myspool; echo \"${COMPREPLY[*]}\"
         COMP_WORDS=(myspool export --ta); COMP_CWORD=2; _myspool myspool --ta export; echo \"${COMPREPLY[*]}\"",
    );
    assert_eq!(completed, "export\n--table\n");
}

#[test]
fn completions_exist_for_every_shell_and_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = myspool(&["completions", shell]);
        assert_success(&out);
        let script = stdout(&out);
        for cmd in SUBCOMMANDS {
            assert!(script.contains(cmd), "{shell} completions lack {cmd}");
        }
    }
    let out = myspool(&["completions", "tcsh"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

/// `man -l` formats a page; what it printed (without the bold/underline
/// overstrikes).
fn render_man_page(page: &std::path::Path) -> String {
    let out = std::process::Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANPAGER", "cat")
        .env("MAN_KEEP_FORMATTING", "")
        .env("COLUMNS", "100")
        .output()
        .expect("man (scripts/test.sh installs man-db)");
    assert!(
        out.status.success(),
        "man -l {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    // Strip `x\bx` (bold) and `_\bx` (underline).
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain.replace('\u{2010}', "-")
}

#[test]
fn the_man_page_renders_and_lists_every_subcommand() {
    let out = myspool(&["man"]);
    assert_success(&out);
    let roff = stdout(&out);
    assert!(roff.contains(".TH myspool 1"), "{roff}");
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("myspool.1");
    std::fs::write(&page, &roff).unwrap();
    let text = render_man_page(&page);
    assert!(text.contains("NAME"), "{text}");
    for cmd in SUBCOMMANDS {
        assert!(
            text.contains(&format!("myspool-{cmd}(1)")),
            "myspool(1) lacks {cmd}:\n{text}"
        );
    }
}

#[test]
fn man_dir_writes_a_page_per_command_with_its_options() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    assert_success(&myspool(&["man", "--dir", &path_arg(&pages)]));
    for cmd in SUBCOMMANDS {
        let text = render_man_page(&pages.join(format!("myspool-{cmd}.1")));
        assert!(text.contains(&format!("myspool {cmd}")), "{text}");
    }
    let export = render_man_page(&pages.join("myspool-export.1"));
    for option in ["--from", "--table", "--dir", "--chunk-rows", "--json"] {
        assert!(
            export.contains(option),
            "myspool-export(1) lacks {option}:\n{export}"
        );
    }
    assert!(pages.join("myspool.1").exists());
}

#[test]
fn quiet_prints_only_warnings_and_errors_and_json_when_asked() {
    let (src, dst) = (source_server(), target_server());
    // No key: exported as one chunk, with a warning.
    let db = db_with(
        &src,
        "quiet",
        "CREATE TABLE t (v INT); INSERT INTO t SELECT seq FROM seq_1_to_500;",
    );
    let dir = tempfile::tempdir().unwrap();
    let quiet = ["--quiet"];
    let out = myspool_env(
        &export_args(&src, &format!("{db}.t"), dir.path(), &quiet),
        &[("MYSPOOL_PROGRESS_INTERVAL", "0.001")],
    );
    assert_success(&out);
    assert_eq!(stdout(&out), "", "no summary");
    let err = stderr(&out);
    assert!(
        err.lines().all(|l| l.contains("warning")) && err.contains("has no primary key"),
        "only the warning: {err:?}"
    );

    let into = dst.fresh_db("quiet");
    let out = myspool(&load_args(dir.path(), &dst, &["--into", &into, "-q"]));
    assert_success(&out);
    assert_eq!((stdout(&out), stderr(&out)), (String::new(), String::new()));

    let out = myspool(&[
        "status",
        "--dir",
        &path_arg(dir.path()),
        "--quiet",
        "--json",
    ]);
    assert_success(&out);
    assert_eq!(json(&out)["tables"][0]["rows"], 500, "--json still prints");

    // --quiet is --progress none: asking for both is a usage error.
    let out = myspool(&[
        "status",
        "--dir",
        &path_arg(dir.path()),
        "-q",
        "--progress",
        "plain",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// 0 done, 1 failed, 2 usage, 3 refused before anything was touched, 4
/// verify found differences (README "Unattended runs").
#[test]
fn the_exit_status_tells_refused_differences_failure_and_usage_apart() {
    let (src, dst) = (source_server(), target_server());
    let (db, dir) = dumped_db(
        &src,
        "exits",
        "CREATE TABLE t (id INT PRIMARY KEY, a INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_50;",
        "t",
        10,
    );
    // A target table unlike the dump's: the load's preflight refuses it.
    let clash = dst.fresh_db("exits");
    dst.query(&format!(
        "CREATE TABLE `{clash}`.t (id INT PRIMARY KEY, a INT, c INT)"
    ));
    let out = myspool(&load_args(dir.path(), &dst, &["--into", &clash, "-q"]));
    let err = assert_one_line_error(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("nothing was loaded"), "{err}");
    assert_eq!(count(&dst, &format!("`{clash}`.t")), 0);

    // copy: the same refusal, through its load phase.
    let work = tempfile::tempdir().unwrap();
    let out = myspool(&[
        "copy",
        "--from",
        &src.url(),
        "--to",
        &dst.url(),
        "--table",
        &format!("{db}.t"),
        "--dir",
        &path_arg(work.path()),
        "--into",
        &clash,
        "-q",
    ]);
    let err = assert_one_line_error(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");

    // check: a user without INSERT.
    let user = user_with_grants(&dst, &format!("{clash}_ro"), &[(&clash, "SELECT")]);
    let out = myspool(&[
        "check",
        "--to",
        &user,
        "--table",
        &format!("{clash}.t"),
        "-q",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("problem: the target user lacks INSERT"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stdout(&out), "");

    // verify: a row changed after the load.
    let into = dst.fresh_db("exits");
    assert_success(&myspool(&load_args(
        dir.path(),
        &dst,
        &["--into", &into, "-q"],
    )));
    let verify = |more: &[&str]| {
        let base = [
            "verify",
            "--dir",
            &path_arg(dir.path()),
            "--to",
            &dst.url(),
            "--into",
            &into,
        ];
        myspool(&[&base[..], more].concat())
    };
    assert_success(&verify(&[]));
    dst.query(&format!("UPDATE `{into}`.t SET a = 0 WHERE id = 17"));
    let out = verify(&["-q"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("myspool verify: differs: "),
        "{}",
        stderr(&out)
    );

    // Any other failure: no server there.
    let out = myspool(
        &load_args(dir.path(), &dst, &["--into", &into])
            .iter()
            .map(|a| a.replace(&dst.url(), "mysql://root@127.0.0.1:1"))
            .collect::<Vec<_>>(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // A usage error is clap's.
    assert_eq!(myspool(&["load", "--dir"]).status.code(), Some(2));
}
