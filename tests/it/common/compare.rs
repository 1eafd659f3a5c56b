//! Comparing tables: row by row in an exact text form, and with
//! `CHECKSUM TABLE`.

use super::Server;

pub type TextRows = Vec<Vec<Option<String>>>;

/// Every row of a table with every column as `HEX()`, in `order`.
pub fn hex_rows(server: &Server, db: &str, table: &str, order: &str) -> TextRows {
    let cols = server.query_strings(&format!(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
    ));
    let exprs: Vec<String> = cols
        .iter()
        .map(|c| format!("HEX(`{}`)", c[0].as_deref().unwrap()))
        .collect();
    server.query_strings(&format!(
        "SELECT {} FROM `{db}`.`{table}` ORDER BY {order}",
        exprs.join(", ")
    ))
}

/// Every row of a table in the exact form of each column's type, in
/// `order`: plain text for integers, DECIMAL and temporal types,
/// `col + 0e0` and its sign for FLOAT and DOUBLE, HEX for the rest.
pub fn typed_rows(server: &Server, db: &str, table: &str, order: &str) -> TextRows {
    let cols = server.query_strings(&format!(
        "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
    ));
    let exprs: Vec<String> = cols
        .iter()
        .map(|c| {
            let name = c[0].as_deref().unwrap();
            match c[1].as_deref().unwrap() {
                "tinyint" | "smallint" | "mediumint" | "int" | "bigint" | "decimal" | "year"
                | "date" | "datetime" | "timestamp" | "time" => format!("`{name}`"),
                "float" | "double" => format!("CONCAT(`{name}` + 0e0, '|', HEX(`{name}` < 0))"),
                _ => format!("HEX(`{name}`)"),
            }
        })
        .collect();
    server.query_strings(&format!(
        "SELECT {} FROM `{db}`.`{table}` ORDER BY {order}",
        exprs.join(", ")
    ))
}

/// Panics at the first row where `source` and `target` differ.
#[track_caller]
pub fn assert_same_rows(table: &str, source: &TextRows, target: &TextRows) {
    let (a, b) = (source, target);
    if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
        panic!(
            "{table}: {} rows in the source, {} in the target; first difference at row {i}:\n source {:?}\n target {:?}",
            a.len(),
            b.len(),
            a.get(i),
            b.get(i)
        );
    }
}

/// `CHECKSUM TABLE … EXTENDED`.
pub fn checksum(server: &Server, db: &str, table: &str) -> Option<String> {
    server.query_strings(&format!("CHECKSUM TABLE `{db}`.`{table}` EXTENDED"))[0][1].clone()
}

/// `sdb.table` on `src` and `ddb.table` on `dst` hold the same rows (every
/// value compared in hex, in `order`) and have the same `CHECKSUM TABLE`.
#[track_caller]
pub fn assert_same_table(
    src: &Server,
    sdb: &str,
    dst: &Server,
    ddb: &str,
    table: &str,
    order: &str,
) {
    assert_same_rows(
        table,
        &hex_rows(src, sdb, table, order),
        &hex_rows(dst, ddb, table, order),
    );
    assert_eq!(
        checksum(src, sdb, table),
        checksum(dst, ddb, table),
        "{table}: CHECKSUM TABLE"
    );
}

/// `{into}.t` holds what `{db}.t` holds (`SELECT *` by id, as text).
#[track_caller]
pub fn assert_t_copied(server: &Server, db: &str, into: &str) {
    assert_eq!(
        server.query_strings(&format!("SELECT * FROM `{into}`.t ORDER BY id")),
        server.query_strings(&format!("SELECT * FROM `{db}`.t ORDER BY id"))
    );
}

/// `SHOW CREATE TABLE`'s statement.
pub fn show_create(server: &Server, db: &str, table: &str) -> String {
    server.query_strings(&format!("SHOW CREATE TABLE `{db}`.`{table}`"))[0][1]
        .clone()
        .unwrap()
}

/// `SELECT COUNT(*) FROM {from}` (`from` may carry a WHERE clause).
pub fn count(server: &Server, from: &str) -> u64 {
    server
        .scalar(&format!("SELECT COUNT(*) FROM {from}"))
        .unwrap()
        .parse()
        .unwrap()
}

/// How many tables database `db` has (0 if it does not exist).
pub fn table_count(server: &Server, db: &str) -> u64 {
    count(
        server,
        &format!("information_schema.TABLES WHERE TABLE_SCHEMA = '{db}'"),
    )
}
