//! Fixtures: export and load through the library (quietly, panicking with
//! the whole error chain), and source databases dumped for a test.

use std::path::Path;

use myspool::export::{export, ExportOptions, ExportSummary};
use myspool::load::{load, LoadOptions, LoadSummary};
use myspool::progress::ProgressMode;
use myspool::ConnSpec;

use super::Server;

/// A path as a command-line argument.
pub fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

/// `myspool process --dir DIR --out OUT` with the mode (`["--exec", CMD]`
/// or `["--map", CMD]`) and `more` arguments.
pub fn process_cli(dir: &Path, out: &Path, mode: &[&str], more: &[&str]) -> Vec<String> {
    let paths = [
        "--dir".to_string(),
        path_arg(dir),
        "--out".into(),
        path_arg(out),
    ];
    std::iter::once("process".to_string())
        .chain(paths)
        .chain(mode.iter().chain(more).map(|s| s.to_string()))
        .collect()
}

/// Export options for `tables` (`DB.TABLE` patterns) of `server` into
/// `dir`, without progress output.
pub fn export_options(server: &Server, tables: &[&str], dir: &Path) -> ExportOptions {
    let spec = ConnSpec::parse(&server.url()).expect("harness URL");
    let mut opts = ExportOptions::new(spec, tables.iter().map(|s| s.to_string()).collect(), dir);
    opts.progress = ProgressMode::Quiet;
    opts
}

/// Runs the export; panics with the whole error chain if it fails.
pub fn run_export(opts: &ExportOptions) -> ExportSummary {
    export(opts).unwrap_or_else(|e| panic!("export failed: {e:#}"))
}

/// Exports `tables` of `server` into `dir` in chunks of `chunk_rows` rows.
pub fn dump(server: &Server, tables: &[&str], dir: &Path, chunk_rows: u64) {
    let mut opts = export_options(server, tables, dir);
    opts.chunk_rows = Some(chunk_rows);
    run_export(&opts);
}

/// `myspool export --from SERVER --table TABLE --dir DIR` and `more`
/// arguments.
pub fn export_args(from: &Server, table: &str, dir: &Path, more: &[&str]) -> Vec<String> {
    let args = [
        "export",
        "--from",
        &from.url(),
        "--table",
        table,
        "--dir",
        &path_arg(dir),
    ]
    .map(String::from);
    args.into_iter()
        .chain(more.iter().map(|s| s.to_string()))
        .collect()
}

/// A fresh database on `server` made by `setup` (SQL run in it).
pub fn db_with(server: &Server, prefix: &str, setup: &str) -> String {
    let db = server.fresh_db(prefix);
    server.query(&format!("USE `{db}`; {setup}"));
    db
}

/// A fresh database on `server` made by `setup` (SQL run in it), and a dump
/// of its `tables` (`t`, `*`, …) in chunks of `chunk_rows` rows.
pub fn dumped_db(
    server: &Server,
    prefix: &str,
    setup: &str,
    tables: &str,
    chunk_rows: u64,
) -> (String, tempfile::TempDir) {
    let db = db_with(server, prefix, setup);
    let dir = tempfile::tempdir().unwrap();
    dump(server, &[&format!("{db}.{tables}")], dir.path(), chunk_rows);
    (db, dir)
}

/// `t`: 400 rows with even AUTO_INCREMENT ids (2..800), dumped in 8 chunks.
pub fn autoinc_table(src: &Server, prefix: &str) -> (String, tempfile::TempDir) {
    dumped_db(
        src,
        prefix,
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT);
         INSERT INTO t SELECT seq * 2, seq FROM seq_1_to_400;",
        "t",
        50,
    )
}

/// Load options for the dump in `dir` into `target`, without progress output.
pub fn load_options(target: &Server, dir: &Path) -> LoadOptions {
    let mut opts = LoadOptions::new(ConnSpec::parse(&target.url()).unwrap(), dir);
    opts.progress = ProgressMode::Quiet;
    opts
}

/// Load options for the dump in `dir` into database `into` of `target`.
pub fn load_into(target: &Server, dir: &Path, into: &str) -> LoadOptions {
    let mut opts = load_options(target, dir);
    opts.into = Some(into.to_string());
    opts
}

/// `myspool load --dir DIR --to TARGET` and `more` arguments.
pub fn load_args(dir: &Path, target: &Server, more: &[&str]) -> Vec<String> {
    let args = ["load", "--dir", &path_arg(dir), "--to", &target.url()].map(String::from);
    args.into_iter()
        .chain(more.iter().map(|s| s.to_string()))
        .collect()
}

/// Runs the load; panics with the whole error chain if it fails.
pub fn run_load(opts: &LoadOptions) -> LoadSummary {
    load(opts).unwrap_or_else(|e| panic!("load failed: {e:#}"))
}

/// Runs the load, which must fail; returns the whole error chain.
#[track_caller]
pub fn load_error(opts: &LoadOptions) -> String {
    match load(opts) {
        Ok(s) => panic!("the load succeeded: {s:?}"),
        Err(e) => format!("{e:#}"),
    }
}

/// A new user of `server` (password `pw`) holding `grants` (`"SELECT,
/// INSERT"`, …) on each database named, and nothing else; its URL.
pub fn user_with_grants(server: &Server, name: &str, grants: &[(&str, &str)]) -> String {
    let mut sql = format!("CREATE USER '{name}'@'%' IDENTIFIED BY 'pw';");
    for (db, privileges) in grants {
        sql.push_str(&format!("GRANT {privileges} ON `{db}`.* TO '{name}'@'%';"));
    }
    server.query(&sql);
    format!("mysql://{name}:pw@127.0.0.1:{}", server.port())
}
