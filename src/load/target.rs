//! What the target table looks like: its columns, its `SHOW CREATE TABLE`
//! (AUTO_INCREMENT definition, secondary indexes), and whether the dump's
//! columns fit it.

use anyhow::{bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, Row};

use crate::dialect::Encoding;
use crate::dump::{ColumnDescription, TableDescription};
use crate::schema::{self, text};

/// A column of the target table, from `information_schema.COLUMNS`.
pub(super) struct TargetColumn {
    pub name: String,
    pub data_type: String,
    /// `CHARACTER_SET_NAME`: none for numbers, dates and binary strings.
    pub charset: Option<String>,
    pub generated: bool,
    pub autoinc: bool,
}

pub(super) fn target_columns(conn: &mut Conn, db: &str, table: &str) -> Result<Vec<TargetColumn>> {
    let rows: Vec<Row> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COALESCE(GENERATION_EXPRESSION, ''), EXTRA, \
             CHARACTER_SET_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .with_context(|| format!("reading the columns of {db}.{table} on the target"))?;
    rows.iter()
        .map(|r| {
            let extra = text(r, 3)?.unwrap_or_default().to_ascii_lowercase();
            Ok(TargetColumn {
                name: text(r, 0)?.unwrap_or_default(),
                data_type: text(r, 1)?.unwrap_or_default().to_ascii_lowercase(),
                charset: text(r, 4)?.map(|c| c.to_ascii_lowercase()),
                generated: schema::is_generated_column(&extra, &text(r, 2)?.unwrap_or_default()),
                autoinc: extra.contains("auto_increment"),
            })
        })
        .collect()
}

/// The AUTO_INCREMENT column among the target's, if any.
pub(super) fn autoinc_column_of(columns: &[TargetColumn]) -> Option<String> {
    columns.iter().find(|c| c.autoinc).map(|c| c.name.clone())
}

/// The column of MySQL's generated invisible primary key (manual,
/// "Generated Invisible Primary Keys").
const GIPK_COLUMN: &str = "my_row_id";

/// The target's columns must be the dump's (generated ones aside), and a
/// column written as hex must land in a binary column.
pub(super) fn check_columns(
    label: &str,
    desc: &TableDescription,
    columns: &[TargetColumn],
) -> Result<()> {
    let target: Vec<&TargetColumn> = columns.iter().filter(|c| !c.generated).collect();
    let missing: Vec<&str> = desc
        .columns
        .iter()
        .filter(|d| !target.iter().any(|t| t.name == d.name))
        .map(|d| d.name.as_str())
        .collect();
    let extra: Vec<&str> = target
        .iter()
        .filter(|t| !desc.columns.iter().any(|d| d.name == t.name))
        .map(|t| t.name.as_str())
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        bail!(
            "the target table {label} does not match the dump: {}{}{}{}",
            if missing.is_empty() {
                String::new()
            } else {
                format!("missing column(s) {}", missing.join(", "))
            },
            if !missing.is_empty() && !extra.is_empty() {
                "; "
            } else {
                ""
            },
            if extra.is_empty() {
                String::new()
            } else {
                format!("column(s) not in the dump: {}", extra.join(", "))
            },
            if extra.contains(&GIPK_COLUMN) {
                format!(" ({GIPK_COLUMN} is the primary key MySQL 8.0.30+ adds to a table created without one while sql_generate_invisible_primary_key=ON: create the table with the dump's primary key, or let the load create it, which turns that variable off for its session)")
            } else {
                String::new()
            },
        );
    }
    for d in &desc.columns {
        let Some(t) = target.iter().find(|t| t.name == d.name) else {
            continue;
        };
        let binary = schema::is_binary_type(&t.data_type);
        if (d.encoding == Encoding::Hex) != binary && d.data_type != t.data_type {
            bail!(
                "the target table {label} does not match the dump: column {} is {} in the dump and {} on the target (binary and text columns cannot be mixed)",
                d.name,
                d.data_type,
                t.data_type
            );
        }
    }
    Ok(())
}

/// Whether the chunks of a table can be sent as raw bytes, read by the server
/// with `CHARACTER SET binary` and stored without any expression.
///
/// Why bother: the other statement reads each hex column into a variable and
/// stores `UNHEX(@v)`, and on a 2M-row table the SET clause cost the server
/// about 1 s of CPU of 4 for parsing (`LOAD DATA` into a keyless MyISAM
/// table), 1 s of 9–10 for the whole InnoDB load.
///
/// Why only then: the file is UTF-8 and `CHARACTER SET binary` converts
/// nothing, so every text column must be utf8mb4 or utf8mb3 (the server still
/// checks the bytes against the column's character set: invalid UTF-8 is
/// refused as with `CHARACTER SET utf8mb4`). Raw bytes need the binary reader:
/// MySQL's LOAD DATA reader takes a byte that starts a multibyte UTF-8
/// sequence as the start of a character and copies the following bytes
/// without looking at them, so a raw 0xE3 before a tab or a backslash would
/// swallow the separator or the escape. Hex columns must land in
/// BINARY/VARBINARY/BLOB (BIT and spatial columns keep `UNHEX`), and MySQL
/// refuses binary strings for JSON columns.
pub(super) fn raw_bytes_ok(dumped: &[ColumnDescription], columns: &[TargetColumn]) -> bool {
    dumped.iter().all(|d| {
        let Some(t) = columns.iter().find(|t| t.name == d.name) else {
            return false;
        };
        // MariaDB's UUID, INET4 and INET6 take their text form only from a
        // text string: read as binary, '::1' is "Incorrect inet6 value"
        // (seen on 10.11.19).
        if matches!(t.data_type.as_str(), "json" | "uuid" | "inet4" | "inet6") {
            return false;
        }
        match d.encoding {
            Encoding::Hex => schema::is_byte_string(&t.data_type),
            Encoding::Text => matches!(
                t.charset.as_deref(),
                None | Some("utf8mb4" | "utf8mb3" | "utf8")
            ),
        }
    })
}

/// The AUTO_INCREMENT column named in a `CREATE TABLE`, if any.
pub(super) fn schema_autoinc_column(create: &str) -> Option<String> {
    create
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('`') && l.contains(" AUTO_INCREMENT"))
        .find_map(column_name_of_definition)
}

/// The name at the start of a column definition line: `` `a``b` int … ``.
pub(super) fn column_name_of_definition(line: &str) -> Option<String> {
    let rest = line.strip_prefix('`')?;
    let mut name = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' {
            if chars.peek() == Some(&'`') {
                chars.next();
                name.push('`');
            } else {
                return Some(name);
            }
        } else {
            name.push(c);
        }
    }
    None
}

/// The definition line of `column` in `SHOW CREATE TABLE` output.
pub(super) fn column_definition(create: &str, column: &str) -> Option<String> {
    create
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .find(|l| column_name_of_definition(l).as_deref() == Some(column))
        .map(str::to_string)
}

pub(super) fn show_create(conn: &mut Conn, table_sql: &str) -> Result<String> {
    let row: Option<Row> = conn
        .query_first(format!("SHOW CREATE TABLE {table_sql}"))
        .with_context(|| format!("SHOW CREATE TABLE {table_sql}"))?;
    match row {
        Some(r) => Ok(text(&r, 1)?.unwrap_or_default()),
        None => bail!("SHOW CREATE TABLE {table_sql} returned nothing"),
    }
}

/// Non-unique secondary indexes as `ADD …` clauses, with their names. Unique
/// indexes stay: without them a duplicate would only show when they are
/// rebuilt, after the data is in.
pub(super) fn deferrable_indexes(create: &str) -> Vec<(String, String)> {
    create
        .lines()
        .map(|l| l.trim().trim_end_matches(','))
        .filter(|l| {
            l.starts_with("KEY ") || l.starts_with("FULLTEXT KEY ") || l.starts_with("SPATIAL KEY ")
        })
        .filter_map(|l| {
            let after = &l[l.find('`')?..];
            let name = column_name_of_definition(after)?;
            Some((name, format!("ADD {l}")))
        })
        .collect()
}

pub(super) fn existing_index_names(conn: &mut Conn, db: &str, table: &str) -> Result<Vec<String>> {
    let rows: Vec<Row> = conn.exec(
        "SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        (db, table),
    )?;
    rows.iter()
        .map(|r| Ok(text(r, 0)?.unwrap_or_default()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_bytes_only_when_every_column_can_take_them() {
        let dumped = |encoding| ColumnDescription {
            name: "c".into(),
            column_type: String::new(),
            data_type: String::new(),
            nullable: true,
            charset: None,
            collation: None,
            encoding,
            invisible: false,
        };
        let target = |data_type: &str, charset: Option<&str>| TargetColumn {
            name: "c".into(),
            data_type: data_type.into(),
            charset: charset.map(Into::into),
            generated: false,
            autoinc: false,
        };
        let ok = |encoding, t: TargetColumn| raw_bytes_ok(&[dumped(encoding)], &[t]);
        assert!(ok(Encoding::Text, target("varchar", Some("utf8mb4"))));
        assert!(ok(Encoding::Text, target("text", Some("utf8mb3"))));
        assert!(ok(Encoding::Text, target("decimal", None)));
        assert!(ok(Encoding::Hex, target("varbinary", None)));
        assert!(ok(Encoding::Hex, target("longblob", None)));
        // Would need a conversion from UTF-8, or an expression.
        assert!(!ok(Encoding::Text, target("varchar", Some("latin1"))));
        assert!(!ok(Encoding::Hex, target("bit", None)));
        assert!(!ok(Encoding::Hex, target("geometry", None)));
        // MySQL refuses binary strings for JSON, MariaDB for UUID and INET6.
        assert!(!ok(Encoding::Text, target("json", None)));
        assert!(!ok(Encoding::Text, target("uuid", None)));
        assert!(!ok(Encoding::Text, target("inet6", None)));
        assert!(!raw_bytes_ok(&[dumped(Encoding::Text)], &[]));
    }

    #[test]
    fn definitions_and_indexes_from_show_create() {
        let create = "CREATE TABLE `t` (\n  `id` bigint(20) NOT NULL AUTO_INCREMENT,\n  `a``b` int(11) DEFAULT NULL,\n  `k` int(11) NOT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `uk` (`k`),\n  KEY `ab` (`a``b`),\n  FULLTEXT KEY `ft` (`c`)\n) ENGINE=InnoDB AUTO_INCREMENT=5";
        assert_eq!(schema_autoinc_column(create).as_deref(), Some("id"));
        assert_eq!(
            column_definition(create, "id").as_deref(),
            Some("`id` bigint(20) NOT NULL AUTO_INCREMENT")
        );
        assert_eq!(
            column_definition(create, "a`b").as_deref(),
            Some("`a``b` int(11) DEFAULT NULL")
        );
        let idx = deferrable_indexes(create);
        assert_eq!(
            idx,
            [
                ("ab".to_string(), "ADD KEY `ab` (`a``b`)".to_string()),
                ("ft".to_string(), "ADD FULLTEXT KEY `ft` (`c`)".to_string())
            ]
        );
    }
}
