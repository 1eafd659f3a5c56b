//! `--where`: one condition for every table, and conditions for one table
//! each (`--where 'shop.orders: created_at >= "2026-01-01"'`, repeatable).
//! A table's rows are those matching both (`sql::and_all`). The conditions
//! are SQL passed to the source as they are, the global one like the
//! per-table ones: they are the user's, not checked by myspool.

use anyhow::{bail, Result};

use crate::dump::TableWhere;
use crate::schema::TableRef;
use crate::sql;

/// What one `--where` argument is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhereArg {
    /// For every table.
    Global(String),
    /// `DB.TABLE: condition`.
    Table(TableWhere),
}

/// Reads one `--where` argument: `DB.TABLE: condition` (names bare, or
/// quoted with backticks) is for that table; anything else is a condition
/// for every table. (A condition for every table never starts with a
/// qualified name and a colon: that is not SQL, but `:=` is, and stays a
/// global condition.)
pub fn parse_where_arg(text: &str) -> Result<WhereArg> {
    let Some((db, table, rest)) = table_prefix(text) else {
        return Ok(WhereArg::Global(text.to_string()));
    };
    let condition = rest.trim();
    if condition.is_empty() {
        bail!("--where {text:?}: no condition after {db}.{table}:");
    }
    Ok(WhereArg::Table(TableWhere {
        db,
        table,
        condition: condition.to_string(),
    }))
}

/// `DB.TABLE:` at the start of `text` (after spaces), and what follows the
/// colon; none when `text` does not start so.
fn table_prefix(text: &str) -> Option<(String, String, &str)> {
    let (db, used) = name(text.trim_start())?;
    let start = text.len() - text.trim_start().len();
    let after_db = &text[start + used..];
    let after_dot = after_db.strip_prefix('.')?;
    let (table, used) = name(after_dot)?;
    let rest = after_dot[used..].trim_start();
    let rest = rest.strip_prefix(':')?;
    if rest.starts_with('=') {
        return None;
    }
    Some((db, table, rest))
}

/// A name at the start of `text`: `` `quoted` `` (a backtick doubled
/// inside) or bare (letters, digits, `_`, `$`), and the length read.
fn name(text: &str) -> Option<(String, usize)> {
    if let Some(rest) = text.strip_prefix('`') {
        let mut out = String::new();
        let mut chars = rest.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '`' {
                if chars.peek().map(|&(_, n)| n) == Some('`') {
                    chars.next();
                    out.push('`');
                } else {
                    return (!out.is_empty()).then_some((out, i + 2));
                }
            } else {
                out.push(c);
            }
        }
        return None;
    }
    let len = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .unwrap_or(text.len());
    (len > 0).then(|| (text[..len].to_string(), len))
}

/// The `--where` argument that gives `f` again (names in backticks when
/// they are not bare), for the command `status` prints.
pub fn where_arg(f: &TableWhere) -> String {
    let name = |n: &str| {
        if !n.is_empty()
            && n.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        {
            n.to_string()
        } else {
            sql::ident(n)
        }
    };
    format!("{}.{}: {}", name(&f.db), name(&f.table), f.condition)
}

/// Every `--where` argument, read: the global condition (at most one) and
/// the per-table ones (at most one a table).
pub fn split_where_args(args: &[String]) -> Result<(Option<String>, Vec<TableWhere>)> {
    let mut global: Option<String> = None;
    let mut tables: Vec<TableWhere> = Vec::new();
    for arg in args {
        match parse_where_arg(arg)? {
            WhereArg::Global(c) => {
                if let Some(first) = &global {
                    bail!("--where is given twice for every table ({first:?} and {c:?}): join them with AND, or name a table (--where 'DB.TABLE: condition')");
                }
                global = Some(c);
            }
            WhereArg::Table(t) => {
                if tables.iter().any(|o| o.db == t.db && o.table == t.table) {
                    bail!(
                        "--where is given twice for {}.{}: join the conditions with AND",
                        t.db,
                        t.table
                    );
                }
                tables.push(t);
            }
        }
    }
    Ok((global, tables))
}

/// The condition of `db`.`table`'s rows: the global one and its own, both.
pub fn table_condition(
    global: Option<&str>,
    filters: &[TableWhere],
    db: &str,
    table: &str,
) -> Option<String> {
    let own = filters
        .iter()
        .find(|f| f.db == db && f.table == table)
        .map(|f| f.condition.as_str());
    sql::and_all(&[global, own].into_iter().flatten().collect::<Vec<_>>())
}

/// Refuses per-table conditions for tables the export does not hold.
pub fn check_filtered_tables(filters: &[TableWhere], tables: &[TableRef]) -> Result<()> {
    let missing: Vec<String> = filters
        .iter()
        .filter(|f| !tables.iter().any(|t| t.db == f.db && t.table == f.table))
        .map(|f| format!("{}.{}", f.db, f.table))
        .collect();
    if !missing.is_empty() {
        bail!(
            "--where names {}, which this export does not include (no --table names it, or it is not a base table): name it with --table, or fix the name",
            missing.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(db: &str, table: &str, condition: &str) -> WhereArg {
        WhereArg::Table(TableWhere {
            db: db.into(),
            table: table.into(),
            condition: condition.into(),
        })
    }

    #[test]
    fn a_table_prefix_makes_a_condition_that_tables_own() {
        assert_eq!(
            parse_where_arg(r#"shop.orders: created_at >= "2026-01-01""#).unwrap(),
            table("shop", "orders", r#"created_at >= "2026-01-01""#)
        );
        assert_eq!(
            parse_where_arg(" `my db`.`a``b` :x=1").unwrap(),
            table("my db", "a`b", "x=1")
        );
    }

    #[test]
    fn the_argument_status_prints_reads_back_the_same() {
        for (db, t) in [("shop", "orders"), ("my db", "a`b.c"), ("x", "it's")] {
            let f = TableWhere {
                db: db.into(),
                table: t.into(),
                condition: "a = 'x:y'".into(),
            };
            assert_eq!(parse_where_arg(&where_arg(&f)).unwrap(), WhereArg::Table(f));
        }
    }

    #[test]
    fn anything_else_is_for_every_table_as_written() {
        for text in [
            "created_at >= '2026-01-01 10:00:00'",
            "t.a = 1",
            "@x.y := 1",
            "a.b := 3",
            "id > 5",
        ] {
            assert_eq!(
                parse_where_arg(text).unwrap(),
                WhereArg::Global(text.into())
            );
        }
    }

    #[test]
    fn a_table_without_a_condition_is_refused() {
        let err = parse_where_arg("shop.orders:  ").unwrap_err().to_string();
        assert!(err.contains("no condition after shop.orders"), "{err}");
    }

    #[test]
    fn one_global_and_one_per_table_at_most() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (global, tables) = split_where_args(&args(&["id > 1", "s.t: v = 2"])).unwrap();
        assert_eq!(global.as_deref(), Some("id > 1"));
        assert_eq!(tables.len(), 1);
        assert!(split_where_args(&args(&["a", "b"])).is_err());
        let err = split_where_args(&args(&["s.t: a", "s.t: b"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("twice for s.t"), "{err}");
        assert_eq!(split_where_args(&[]).unwrap(), (None, Vec::new()));
    }

    #[test]
    fn a_tables_rows_match_the_global_condition_and_its_own() {
        let filters = [TableWhere {
            db: "s".into(),
            table: "t".into(),
            condition: "v = 2 OR v = 3".into(),
        }];
        assert_eq!(
            table_condition(Some("id > 1"), &filters, "s", "t").as_deref(),
            Some("(id > 1) AND (v = 2 OR v = 3)")
        );
        assert_eq!(
            table_condition(None, &filters, "s", "t").as_deref(),
            Some("v = 2 OR v = 3")
        );
        assert_eq!(
            table_condition(Some("id > 1"), &filters, "s", "u").as_deref(),
            Some("id > 1")
        );
        assert_eq!(table_condition(None, &filters, "s", "u"), None);
    }

    #[test]
    fn a_filter_on_a_table_not_exported_is_refused_by_name() {
        let filters = [TableWhere {
            db: "s".into(),
            table: "gone".into(),
            condition: "1".into(),
        }];
        let tables = [TableRef {
            db: "s".into(),
            table: "t".into(),
        }];
        let err = check_filtered_tables(&filters, &tables)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--where names s.gone"), "{err}");
        assert!(check_filtered_tables(&filters[..0], &tables).is_ok());
    }
}
