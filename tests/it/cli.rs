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
