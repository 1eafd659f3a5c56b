//! Which secondary indexes a load builds after the rows (`--indexes`):
//! [`defer_now`] decides for a table, [`split_for_foreign_keys`] keeps the
//! indexes a foreign key cannot lose, and [`IndexReport`] says what became
//! of them in the summary.
//!
//! Why foreign keys: MySQL refuses to drop an index that is the only one
//! backing a foreign key (error 1553, "needed in a foreign key constraint"),
//! on the referencing side and on the referenced side, even with
//! `foreign_key_checks=0`; MariaDB refuses it as well (1553). A second index
//! that starts with the same columns lets the first go.

use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, Row};
use serde::Serialize;

use super::IndexMode;
use crate::schema::text;

/// Whether to drop a table's deferrable indexes now. `empty`: the table
/// holds no row as its load starts; `may_defer`: the user holds ALTER and
/// INDEX on it (the preflight's).
pub(super) fn defer_now(mode: IndexMode, empty: bool, may_defer: bool) -> bool {
    match mode {
        IndexMode::Keep => false,
        IndexMode::Defer => true,
        // Into a table that already holds rows, rebuilding its indexes
        // costs more than the rows being added save.
        IndexMode::Auto => empty && may_defer,
    }
}

/// One index of a table as `information_schema.STATISTICS` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct IndexFacts {
    pub name: String,
    /// Its parts in order: a column name, or `None` for a part no foreign
    /// key can use (an expression — MySQL 8's functional key parts have a
    /// NULL COLUMN_NAME —, a prefix of the column, a FULLTEXT or SPATIAL
    /// index).
    pub parts: Vec<Option<String>>,
}

/// Columns of the table that a foreign key needs an index on: its own
/// columns when the table references another, the referenced columns when
/// another table (or itself) references it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ForeignKeyNeed {
    pub constraint: String,
    pub columns: Vec<String>,
}

/// What became of a table's deferrable indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IndexReport {
    /// Dropped before the rows, added back after them.
    pub deferred: Vec<String>,
    /// Kept in place, each with why.
    pub kept: Vec<String>,
}

/// Splits `deferrable` (index names, in the table's order) into those that
/// may be dropped and those kept because a foreign key in `needs` has no
/// other index: the indexes not in `deferrable` (primary, unique) stay, and
/// so does the first deferrable index that serves a need none of those
/// serves.
pub(super) fn split_for_foreign_keys(
    deferrable: &[String],
    indexes: &[IndexFacts],
    needs: &[ForeignKeyNeed],
) -> (Vec<String>, Vec<(String, String)>) {
    let is_deferrable = |name: &str| deferrable.iter().any(|d| d == name);
    let mut staying: Vec<&IndexFacts> =
        indexes.iter().filter(|i| !is_deferrable(&i.name)).collect();
    let mut kept: Vec<(String, String)> = Vec::new();
    for need in needs {
        if staying.iter().any(|i| serves(i, need)) {
            continue;
        }
        let first = deferrable
            .iter()
            .filter_map(|d| indexes.iter().find(|i| &i.name == d))
            .find(|i| serves(i, need));
        if let Some(index) = first {
            kept.push((
                index.name.clone(),
                format!("the only index for foreign key {}", need.constraint),
            ));
            staying.push(index);
        }
    }
    let defer = deferrable
        .iter()
        .filter(|d| !kept.iter().any(|(k, _)| k == *d))
        .cloned()
        .collect();
    (defer, kept)
}

/// An index serves a foreign key when it starts with its columns, in order
/// (column names compare without case, as MySQL compares them).
fn serves(index: &IndexFacts, need: &ForeignKeyNeed) -> bool {
    index.parts.len() >= need.columns.len()
        && need
            .columns
            .iter()
            .zip(&index.parts)
            .all(|(c, p)| p.as_deref().is_some_and(|p| p.eq_ignore_ascii_case(c)))
}

/// The indexes of `db`.`table`, from `information_schema.STATISTICS`.
pub(super) fn read_indexes(conn: &mut Conn, db: &str, table: &str) -> Result<Vec<IndexFacts>> {
    let rows: Vec<Row> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME, SUB_PART, INDEX_TYPE FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (db, table),
        )
        .with_context(|| format!("reading the indexes of {db}.{table}"))?;
    let mut out: Vec<IndexFacts> = Vec::new();
    for row in &rows {
        let name = text(row, 0)?.unwrap_or_default();
        let column = text(row, 1)?;
        let prefix = text(row, 2)?.is_some();
        let kind = text(row, 3)?.unwrap_or_default();
        let part = column.filter(|_| !prefix && kind != "FULLTEXT" && kind != "SPATIAL");
        match out.last_mut() {
            Some(last) if last.name == name => last.parts.push(part),
            _ => out.push(IndexFacts {
                name,
                parts: vec![part],
            }),
        }
    }
    Ok(out)
}

/// The foreign keys that need an index on `db`.`table`, on either side,
/// from `information_schema.KEY_COLUMN_USAGE`.
pub(super) fn read_foreign_key_needs(
    conn: &mut Conn,
    db: &str,
    table: &str,
) -> Result<Vec<ForeignKeyNeed>> {
    let rows: Vec<Row> = conn
        .exec(
            "SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME, '.', CONSTRAINT_NAME), COLUMN_NAME, ORDINAL_POSITION, 0 \
               FROM information_schema.KEY_COLUMN_USAGE \
              WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND REFERENCED_TABLE_NAME IS NOT NULL \
             UNION ALL \
             SELECT CONCAT(TABLE_SCHEMA, '.', TABLE_NAME, '.', CONSTRAINT_NAME), REFERENCED_COLUMN_NAME, ORDINAL_POSITION, 1 \
               FROM information_schema.KEY_COLUMN_USAGE \
              WHERE REFERENCED_TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME = ? \
             ORDER BY 1, 4, 3",
            (db, table, db, table),
        )
        .with_context(|| format!("reading the foreign keys of {db}.{table}"))?;
    // One need per constraint and side (a self-referencing key needs an
    // index on both its columns and the ones it references).
    let mut out: Vec<ForeignKeyNeed> = Vec::new();
    let mut last_key = None;
    for row in &rows {
        let constraint = text(row, 0)?.unwrap_or_default();
        let column = text(row, 1)?.unwrap_or_default();
        let key = (constraint.clone(), text(row, 3)?);
        match out.last_mut() {
            Some(last) if last_key.as_ref() == Some(&key) => last.columns.push(column),
            _ => out.push(ForeignKeyNeed {
                constraint,
                columns: vec![column],
            }),
        }
        last_key = Some(key);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(name: &str, parts: &[Option<&str>]) -> IndexFacts {
        IndexFacts {
            name: name.into(),
            parts: parts.iter().map(|p| p.map(String::from)).collect(),
        }
    }

    fn need(constraint: &str, columns: &[&str]) -> ForeignKeyNeed {
        ForeignKeyNeed {
            constraint: constraint.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn auto_defers_only_into_an_empty_table_the_user_may_alter() {
        assert!(!defer_now(IndexMode::Keep, true, true));
        assert!(defer_now(IndexMode::Defer, false, false));
        assert!(defer_now(IndexMode::Auto, true, true));
        assert!(!defer_now(IndexMode::Auto, false, true));
        assert!(!defer_now(IndexMode::Auto, true, false));
    }

    #[test]
    fn the_only_index_of_a_foreign_key_is_kept() {
        let indexes = [
            index("PRIMARY", &[Some("id")]),
            index("fk_parent", &[Some("parent_id")]),
            index("k_v", &[Some("v")]),
        ];
        let (defer, kept) = split_for_foreign_keys(
            &names(&["fk_parent", "k_v"]),
            &indexes,
            &[need("db.child.fk", &["PARENT_ID"])],
        );
        assert_eq!(defer, names(&["k_v"]));
        assert_eq!(
            kept,
            [(
                "fk_parent".to_string(),
                "the only index for foreign key db.child.fk".to_string()
            )]
        );
    }

    #[test]
    fn an_index_a_kept_one_already_covers_is_deferred() {
        // The primary key starts with the foreign key's column.
        let indexes = [
            index("PRIMARY", &[Some("parent_id"), Some("n")]),
            index("fk_parent", &[Some("parent_id")]),
        ];
        let needs = [need("db.c.fk", &["parent_id"])];
        let (defer, kept) = split_for_foreign_keys(&names(&["fk_parent"]), &indexes, &needs);
        assert_eq!(defer, names(&["fk_parent"]));
        assert!(kept.is_empty());
        // Two deferrable indexes serve it: the first stays, the second goes.
        let indexes = [
            index("a", &[Some("x"), Some("y")]),
            index("b", &[Some("x")]),
        ];
        let needs = [need("db.c.fk", &["x"])];
        let (defer, kept) = split_for_foreign_keys(&names(&["a", "b"]), &indexes, &needs);
        assert_eq!(defer, names(&["b"]));
        assert_eq!(kept[0].0, "a");
    }

    #[test]
    fn only_a_leading_match_of_whole_columns_serves_a_foreign_key() {
        let needs = [need("db.c.fk", &["a", "b"])];
        let deferrable = names(&["i"]);
        let kept = |parts: &[Option<&str>]| {
            split_for_foreign_keys(&deferrable, &[index("i", parts)], &needs)
                .1
                .len()
        };
        assert_eq!(kept(&[Some("a"), Some("b")]), 1);
        assert_eq!(kept(&[Some("a"), Some("b"), Some("c")]), 1);
        // Wrong order, too short, an expression or a prefix part (None):
        // not an index the foreign key can use, so it does not hold it.
        assert_eq!(kept(&[Some("b"), Some("a")]), 0);
        assert_eq!(kept(&[Some("a")]), 0);
        assert_eq!(kept(&[Some("a"), None]), 0);
    }

    #[test]
    fn referenced_side_needs_count_as_well() {
        // Another table references (code) of this one, which only a
        // non-unique index serves (InnoDB allows that).
        let indexes = [
            index("PRIMARY", &[Some("id")]),
            index("k_code", &[Some("code")]),
        ];
        let needs = [need("db.other.fk_code", &["code"])];
        let (defer, kept) = split_for_foreign_keys(&names(&["k_code"]), &indexes, &needs);
        assert!(defer.is_empty());
        assert_eq!(kept.len(), 1);
    }
}
