//! The command-line surface: every subcommand of the design is there, and
//! the ones a later release delivers say so instead of pretending.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

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
    // Justified lines may hold several spaces between words.
    plain
        .replace('\u{2010}', "-")
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
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
    assert!(
        text.contains("Exit status: 0 done; 1 failed; 2 usage error; 3 refused"),
        "{text}"
    );
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
    // The second load finds the table loaded: nothing to do, nothing said.
    for _ in 0..2 {
        let out = myspool(&load_args(dir.path(), &dst, &["--into", &into, "-q"]));
        assert_success(&out);
        assert_eq!((stdout(&out), stderr(&out)), (String::new(), String::new()));
    }
    let out = myspool(&load_args(
        dir.path(),
        &dst,
        &["--into", &into, "--progress", "none"],
    ));
    assert!(stderr(&out).contains("nothing to do"), "{}", stderr(&out));

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

/// Every field path of a `--json` summary (`tables[].db`), and those whose
/// value is an object or a non-empty array (whose fields must then show).
fn json_paths(
    v: &serde_json::Value,
    prefix: &str,
    all: &mut BTreeSet<String>,
    filled: &mut BTreeSet<String>,
) {
    match v {
        serde_json::Value::Object(map) => {
            if !prefix.is_empty() {
                filled.insert(prefix.trim_end_matches("[]").to_string());
            }
            for (k, v) in map {
                let path = match prefix {
                    "" => k.clone(),
                    p if p.ends_with("[]") => format!("{p}.{k}"),
                    p => format!("{p}.{k}"),
                };
                all.insert(path.clone());
                json_paths(v, &path, all, filled);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                json_paths(item, &format!("{prefix}[]"), all, filled);
            }
        }
        _ => {}
    }
}

/// The README's `--json` field tables: command -> documented field paths,
/// those printed only in some modes marked with a trailing `?`.
fn documented_json_fields() -> BTreeMap<String, BTreeSet<String>> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("### `--json` summaries")
        .expect("README section \"### `--json` summaries\"");
    let section = &readme[start..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let mut fields: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut command = None;
    for line in section.lines() {
        if let Some(heading) = line.strip_prefix("#### `myspool ") {
            command = Some(heading.split(' ').next().unwrap().to_string());
        } else if let (Some(cmd), Some(row)) = (&command, line.strip_prefix("| `")) {
            let cells: Vec<&str> = row.split(" | ").collect();
            let names = format!("`{}", cells[0]);
            // "only with --map": printed only then.
            let optional = cells.get(2).is_some_and(|m| m.starts_with("only "));
            for name in names.split('`').skip(1).step_by(2) {
                let name = match optional {
                    true => format!("{name}?"),
                    false => name.to_string(),
                };
                fields.entry(cmd.clone()).or_default().insert(name);
            }
        }
    }
    // copy's summary is the other three's.
    let mut copy = fields["copy"].clone();
    for phase in ["export", "process", "load"] {
        for f in &fields[phase] {
            copy.insert(format!("{phase}.{f}"));
        }
    }
    fields.insert("copy".into(), copy);
    fields
}

/// The fields each command's `--json` prints are the README's, no more, no
/// fewer: runs every command in ways that fill the optional parts (a failed
/// chunk, row mode, a table loaded before, a chunk that differs).
#[test]
fn json_summaries_print_exactly_the_documented_fields() {
    let (src, dst) = (source_server(), target_server());
    let db = db_with(
        &src,
        "jsonfields",
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(10));
         INSERT INTO t SELECT seq, seq FROM seq_1_to_20;",
    );
    let table = format!("{db}.t");
    let work = tempfile::tempdir().unwrap();
    let dump = work.path().join("dump");
    let json_of = |args: Vec<String>, code: i32| {
        let mut args = args;
        args.extend(["--json".to_string(), "--quiet".to_string()]);
        let out = myspool(&args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        json(&out)
    };
    let mut printed: BTreeMap<&str, Vec<serde_json::Value>> = BTreeMap::new();
    printed.entry("export").or_default().push(json_of(
        export_args(&src, &table, &dump, &["--chunk-rows", "5"]),
        0,
    ));
    let failing =
        "if [ \"$MYSPOOL_CHUNK\" = 2 ] || [ \"$MYSPOOL_CHUNK\" = 000002 ]; then exit 3; fi; cat";
    printed.entry("process").or_default().push(json_of(
        process_cli(
            &dump,
            &work.path().join("failing"),
            &["--exec", failing],
            &[],
        ),
        1,
    ));
    let echo = "python3 -c 'import sys\nfor l in sys.stdin: print(l, end=\"\", flush=True)'";
    printed.entry("process").or_default().push(json_of(
        process_cli(&dump, &work.path().join("mapped"), &["--map", echo], &[]),
        0,
    ));
    let into = dst.fresh_db("jsonfields");
    for _ in 0..2 {
        // The second finds it loaded: loaded_before.
        printed
            .entry("load")
            .or_default()
            .push(json_of(load_args(&dump, &dst, &["--into", &into]), 0));
    }
    let copied = dst.fresh_db("jsonfields");
    let copy: Vec<String> = [
        "copy",
        "--from",
        &src.url(),
        "--to",
        &dst.url(),
        "--table",
        &table,
        "--dir",
        &path_arg(&work.path().join("copy")),
        "--into",
        &copied,
        "--exec",
        "cat",
    ]
    .map(String::from)
    .to_vec();
    printed.entry("copy").or_default().push(json_of(copy, 0));
    let status = vec!["status".to_string(), "--dir".into(), path_arg(&dump)];
    printed
        .entry("status")
        .or_default()
        .push(json_of(status, 0));
    let check = ["check", "--to", &dst.url(), "--table", &format!("{into}.t")].map(String::from);
    printed
        .entry("check")
        .or_default()
        .push(json_of(check.to_vec(), 0));
    dst.query(&format!("UPDATE `{into}`.t SET v = 'changed' WHERE id = 7"));
    let verify = [
        "verify",
        "--dir",
        &path_arg(&dump),
        "--to",
        &dst.url(),
        "--into",
        &into,
    ];
    printed
        .entry("verify")
        .or_default()
        .push(json_of(verify.map(String::from).to_vec(), 4));

    let documented = documented_json_fields();
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        ["check", "copy", "export", "load", "process", "status", "verify"],
        "a table per command"
    );
    let mut wrong = Vec::new();
    for (cmd, outputs) in &printed {
        let (mut all, mut filled) = (BTreeSet::new(), BTreeSet::new());
        for v in outputs {
            json_paths(v, "", &mut all, &mut filled);
        }
        let doc: BTreeSet<String> = documented[*cmd]
            .iter()
            .map(|f| f.trim_end_matches('?').to_string())
            .collect();
        let undocumented: Vec<_> = all.difference(&doc).collect();
        if !undocumented.is_empty() {
            wrong.push(format!(
                "{cmd} --json prints fields the README does not list: {undocumented:?}"
            ));
        }
        // A documented field must show wherever its parent did.
        let missing: Vec<_> = documented[*cmd]
            .iter()
            .filter(|f| !f.ends_with('?') && !all.contains(*f))
            .filter(|f| match f.rsplit_once('.') {
                None => true,
                Some((parent, _)) => filled.contains(parent.trim_end_matches("[]")),
            })
            .collect();
        if !missing.is_empty() {
            wrong.push(format!("{cmd} --json lacks documented fields: {missing:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// `scripts/nightly-copy.sh` (README "Unattended runs") with `env`; its
/// output.
fn nightly_copy(env: &[(&str, String)], more: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/nightly-copy.sh");
    std::process::Command::new("bash")
        .arg(script)
        .args(more)
        .env("MYSPOOL_BIN", myspool_bin())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("bash")
}

/// A night that fails says so in one line and its log; rerunning that
/// night continues it: the export keeps its chunks, the load finishes.
#[test]
fn the_nightly_copy_script_logs_fails_in_one_line_and_a_rerun_continues() {
    let (src, dst) = (source_server(), target_server());
    let db = db_with(
        &src,
        "nightly",
        "CREATE TABLE t (id INT PRIMARY KEY, v INT); INSERT INTO t SELECT seq, seq FROM seq_1_to_300;",
    );
    let spool = tempfile::tempdir().unwrap();
    let into = dst.fresh_db("nightly");
    let env = |to: String| {
        vec![
            ("MYSPOOL_FROM", src.url()),
            ("MYSPOOL_TO", to),
            ("MYSPOOL_TABLES", format!("{db}.t")),
            ("MYSPOOL_SPOOL", path_arg(spool.path())),
            ("MYSPOOL_NIGHT", "2026-11-28".to_string()),
        ]
    };
    let more = ["--into", &into, "--truncate", "--chunk-rows", "100"];
    let logs = spool.path().join("logs");

    // No server where the target should be.
    let out = nightly_copy(&env("mysql://root@127.0.0.1:1".into()), &more);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.contains("2026-11-28 failed (exit status 1): see "),
        "{said}"
    );
    let log = std::fs::read_to_string(logs.join("2026-11-28.log")).unwrap();
    assert!(
        log.contains("myspool: error: loading: connecting to"),
        "{log}"
    );
    assert!(
        log.lines().last().unwrap().ends_with("exit status 1"),
        "{log}"
    );

    let out = nightly_copy(&env(dst.url()), &more);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "silent when it worked"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(logs.join("2026-11-28.json")).unwrap()).unwrap();
    assert_eq!(
        summary["export"]["chunks_kept"], 3,
        "the failed night's export is kept"
    );
    assert_eq!(summary["load"]["rows"], 300);
    assert_eq!(count(&dst, &format!("`{into}`.t")), 300);
    let log = std::fs::read_to_string(logs.join("2026-11-28.log")).unwrap();
    assert!(
        log.lines().last().unwrap().ends_with("exit status 0"),
        "{log}"
    );
}
