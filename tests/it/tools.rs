//! Reading a dump with the data tools users already have: the scripts in
//! `scripts/read/` (which the README quotes) run with the real packages
//! (Python's csv module, Polars, DuckDB, pandas through Polars) over a real
//! dump of the values that break CSV readers, and every cell they read must
//! be the source's.
//!
//! The packages come from `scripts/read/requirements.txt`, installed by
//! `scripts/test.sh` into a virtual environment; the tests use
//! `MYSPOOL_PYTHON` if set, else that environment, else `python3`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// The Python with the packages of `scripts/read/requirements.txt`.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MYSPOOL_PYTHON") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")));
    if let Some(venv) = cache.map(|c| c.join("myspool/python/bin/python3")) {
        if venv.exists() {
            return venv;
        }
    }
    PathBuf::from("python3")
}

fn read_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/read")
}

/// Every byte value, for the BLOB column.
fn all_bytes_hex() -> String {
    (0..=255u8).map(|b| format!("{b:02X}")).collect()
}

/// A table of the values that break CSV readers, dumped in chunks of 2 rows
/// (so a whole-table read crosses chunk files).
fn awkward_dump() -> (std::sync::Arc<Server>, String, tempfile::TempDir) {
    let server = source_server();
    let blob = all_bytes_hex();
    let (db, dir) = dumped_db(
        &server,
        "tools",
        &format!(
            "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(50) NULL, note TEXT NULL,
                qty BIGINT UNSIGNED NULL, price DECIMAL(10,2) NULL, ratio DOUBLE NULL,
                day DATE NULL, at DATETIME NULL, b VARBINARY(8) NULL, flag TINYINT(1) NULL,
                blob_col BLOB NULL) DEFAULT CHARSET=utf8mb4;
             INSERT INTO t VALUES
              (1, NULL, 'x', 18446744073709551615, 1.50, 0.1, '2024-02-29', '2024-02-29 23:59:59', NULL, 1, X'{blob}'),
              (2, '', NULL, 0, -3.00, 1e300, '1970-01-01', '1970-01-01 00:00:00', X'00', 0, X''),
              (3, 'NULL', '\\\\N', NULL, NULL, NULL, NULL, NULL, X'', NULL, NULL),
              (4, 'a \"b\", c\\r\\nd', 'line\\rbreak\\n', 7, 0.00, -2.5, '9999-12-31', '9999-12-31 23:59:59', X'0A0D', 1, X'2C22'),
              (5, 'caf\u{e9} \u{1f600}', '', 8, 99999999.99, 5e-324, '0001-01-01', '0001-01-01 00:00:00', X'FF', NULL, X'5C4E'),
              (6, 'tab\\there \\\\ back', ',', NULL, -0.01, -1.7976931348623157e308, NULL, '2000-01-01 12:00:00', X'5C', -128, NULL),
              (7, '\"', '\"\"', 1, 0.10, 0, '2000-01-01', NULL, X'22', 127, X'0A');"
        ),
        "t",
        2,
    );
    (server, db, dir)
}

const COLUMNS: &str = "id, name, note, qty, price, ratio, day, at, HEX(b), flag, HEX(blob_col)";
const DOUBLE_COLUMN: usize = 5;

/// The source's cells in the form the scripts print (see scripts/read/cells.py).
fn source_cells(server: &Server, db: &str) -> Vec<Vec<Option<String>>> {
    server.query_strings(&format!("SELECT {COLUMNS} FROM `{db}`.t ORDER BY id"))
}

/// Runs `scripts/read/<script>` on the table's directory; its rows, one JSON
/// array per line.
fn read_with(script: &str, python: &Path, table_dir: &Path) -> Vec<Vec<Option<String>>> {
    let out = Command::new(python)
        .arg(read_dir().join(script))
        .arg(table_dir)
        .output()
        .unwrap_or_else(|e| panic!("running {} {script}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{script} failed ({}); scripts/test.sh installs scripts/read/requirements.txt:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{script}: {e}: {l}")))
        .collect()
}

/// Every cell as the source holds it; DOUBLE compared as numbers (Python
/// prints 1e300 as 1e+300).
#[track_caller]
fn assert_reads_every_cell(tool: &str, got: &[Vec<Option<String>>], want: &[Vec<Option<String>>]) {
    assert_eq!(got.len(), want.len(), "{tool}: row count\n{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.len(), w.len(), "{tool}: columns of {g:?}");
        for (i, (a, b)) in g.iter().zip(w).enumerate() {
            if i == DOUBLE_COLUMN {
                let num = |v: &Option<String>| v.as_ref().map(|s| s.parse::<f64>().unwrap());
                assert_eq!(num(a), num(b), "{tool}: DOUBLE in row {w:?}");
            } else {
                assert_eq!(a, b, "{tool}: column {i} of row {w:?}; read {g:?}");
            }
        }
    }
}

fn check_script(script: &str) {
    let (server, db, dir) = awkward_dump();
    let table_dir = dir.path().join(&dumps::entry(dir.path(), &db, "t").dir);
    assert!(
        std::fs::read_dir(&table_dir).unwrap().count() > 4,
        "several chunk files"
    );
    let got = read_with(script, &python(), &table_dir);
    assert_reads_every_cell(script, &got, &source_cells(&server, &db));
}

#[test]
fn pythons_csv_module_reads_every_cell_exactly() {
    check_script("csv_table.py");
}

#[test]
fn polars_reads_every_cell_exactly() {
    check_script("polars_table.py");
}

#[test]
fn duckdb_reads_every_cell_exactly() {
    check_script("duckdb_table.py");
}

/// After `export --compress zstd` the same DuckDB and Polars scripts read
/// the `.csv.zst` chunks, every cell the source's.
#[test]
fn duckdb_and_polars_read_zstd_chunks_exactly() {
    let (server, db, _) = awkward_dump();
    let dir = tempfile::tempdir().unwrap();
    let table = format!("{db}.t");
    let args = export_args(
        &server,
        &table,
        dir.path(),
        &["--chunk-rows", "2", "--compress", "zstd"],
    );
    assert_success(&myspool(&args));
    let table_dir = dir.path().join(&dumps::entry(dir.path(), &db, "t").dir);
    let zst = std::fs::read_dir(&table_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".csv.zst"))
        .count();
    assert!(zst > 2, "several .csv.zst chunks, found {zst}");
    for script in ["duckdb_table.py", "polars_table.py"] {
        let got = read_with(script, &python(), &table_dir);
        assert_reads_every_cell(script, &got, &source_cells(&server, &db));
    }
}

#[test]
fn pandas_through_polars_reads_every_cell_exactly() {
    check_script("pandas_table.py");
}

/// What the README says pandas cannot do: its read_csv sees NULL and ''
/// alike, whatever its options.
#[test]
fn pandas_read_csv_alone_cannot_tell_null_from_empty() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "\"id\",\"v\"\n\"1\",\n\"2\",\"\"\n\"3\",\"NULL\"\n").unwrap();
    let out = Command::new(python())
        .args([
            "-c",
            "import pandas, sys\n\
            for opts in ({}, {'keep_default_na': False}):\n\
            \x20   print(pandas.read_csv(sys.argv[1], dtype=str, **opts)['v'].tolist())",
        ])
        .arg(&csv)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "[nan, nan, nan]\n['', '', 'NULL']\n",
        "NULL, '' and 'NULL': the default turns all three into NaN; without it nothing is NULL"
    );
}

/// The README quotes each script's part above the marker line as it is.
#[test]
fn the_readme_quotes_the_scripts_as_they_are() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for script in [
        "csv_table.py",
        "polars_table.py",
        "duckdb_table.py",
        "pandas_table.py",
    ] {
        let text = std::fs::read_to_string(read_dir().join(script)).unwrap();
        let (quoted, _) = text
            .split_once("\n# --- the README quotes the lines above")
            .unwrap_or_else(|| panic!("{script} has no marker line"));
        // The module docstring (the usage line) is not quoted.
        let body = quoted.split_once("\"\"\"\n").map_or(quoted, |(_, r)| r);
        let body = body.trim();
        assert!(
            readme.contains(body),
            "README.md does not quote scripts/read/{script} as it is; paste in:\n{body}"
        );
    }
}
