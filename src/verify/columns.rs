//! Whether the target's columns are the ones the dump compared: a chunk's
//! fingerprint covers only the dump's columns, so a column the target has
//! and the dump lacks is never checked, and `verify` must say so rather
//! than pass.
//!
//! Three lists meet here: the dump's columns, the source columns the export
//! recorded as left out (`left_out` in `table.json`; older dumps have only
//! `generated_columns`), and the target's columns from
//! `information_schema.COLUMNS`.

use serde::Serialize;

use crate::dump::{LeftOutColumn, TableDescription};
use crate::schema::ColumnRow;

/// A column of the target as this check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetColumn {
    pub name: String,
    /// Computed by the target from the other columns.
    pub generated: bool,
    /// MySQL's generated invisible primary key (`my_row_id`), numbered by
    /// the target itself.
    pub invisible_primary_key: bool,
}

impl TargetColumn {
    pub fn of(row: &ColumnRow) -> TargetColumn {
        TargetColumn {
            name: row.name.clone(),
            generated: row.generated(),
            invisible_primary_key: row.generated_invisible_primary_key(),
        }
    }
}

/// What is wrong with one column (or a whole table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    /// The target has no such table.
    TableNotOnTarget,
    /// A column of the dump the target lacks: its values cannot be compared.
    NotOnTarget,
    /// An ordinary target column the dump lacks and the source did not
    /// record: added since the export, with values that were never copied.
    NotInDump,
    /// Left out of the dump as generated, but ordinary on the target: its
    /// values there were not copied from the source.
    NotGeneratedOnTarget,
    /// A source column left out of the dump that the target lacks.
    SourceColumnNotOnTarget,
    /// Left out of the dump for a reason this myspool does not know.
    LeftOut,
}

/// One mismatch, by table and column, with the sentence a user reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnMismatch {
    /// The target table, `db.table`.
    pub table: String,
    /// None for [`MismatchKind::TableNotOnTarget`].
    pub column: Option<String>,
    pub kind: MismatchKind,
    pub sentence: String,
}

/// The outcome of comparing one table's columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnCheck {
    pub mismatches: Vec<ColumnMismatch>,
    /// What the user should know that is not a failure.
    pub notes: Vec<String>,
    /// Every dump column is on the target, so the chunks can be compared.
    pub chunks_comparable: bool,
}

fn same_name(a: &str, b: &str) -> bool {
    // Column names are case-insensitive on every platform.
    a.to_lowercase() == b.to_lowercase()
}

/// Compares the dump's columns, the source's left-out ones and the
/// target's (`target` empty: the table is not there) for the target table
/// `label`.
pub fn compare_columns(
    label: &str,
    desc: &TableDescription,
    target: &[TargetColumn],
) -> ColumnCheck {
    let mut check = ColumnCheck::default();
    let mismatch = |column: Option<&str>, kind: MismatchKind, sentence: String| ColumnMismatch {
        table: label.to_string(),
        column: column.map(String::from),
        kind,
        sentence,
    };
    if target.is_empty() {
        check.mismatches.push(mismatch(
            None,
            MismatchKind::TableNotOnTarget,
            format!(
                "{label}: the table is not on the target (or this user sees none of its columns)"
            ),
        ));
        return check;
    }
    let left_out: Vec<LeftOutColumn> = match &desc.left_out {
        Some(list) => list.clone(),
        None => {
            check.notes.push(format!(
                "{label}: the dump predates myspool recording the source columns an export leaves out; \
                 its list of generated columns stands in for it"
            ));
            desc.generated_columns
                .iter()
                .map(|name| LeftOutColumn::generated(name))
                .collect()
        }
    };
    let on_target = |name: &str| target.iter().find(|t| same_name(&t.name, name));

    for column in &desc.columns {
        if on_target(&column.name).is_none() {
            check.mismatches.push(mismatch(
                Some(&column.name),
                MismatchKind::NotOnTarget,
                format!(
                    "{label}: column {} is in the dump but not on the target",
                    column.name
                ),
            ));
        }
    }
    for left in &left_out {
        let generated = left.reason == LeftOutColumn::GENERATED;
        match on_target(&left.name) {
            None => check.mismatches.push(mismatch(
                Some(&left.name),
                MismatchKind::SourceColumnNotOnTarget,
                format!(
                    "{label}: column {} of the source ({}) is not on the target",
                    left.name,
                    left_out_why(left)
                ),
            )),
            Some(t) if generated && t.generated => {}
            Some(_) if generated => check.mismatches.push(mismatch(
                Some(&left.name),
                MismatchKind::NotGeneratedOnTarget,
                format!(
                    "{label}: column {} was left out of the dump as a generated column of the source, \
                     but it is an ordinary column on the target: its values there did not come from the source",
                    left.name
                ),
            )),
            Some(_) => check.mismatches.push(mismatch(
                Some(&left.name),
                MismatchKind::LeftOut,
                format!(
                    "{label}: column {} of the source was left out of the dump ({}): its values on the target were not compared",
                    left.name,
                    left_out_why(left)
                ),
            )),
        }
    }
    let in_dump = |name: &str| {
        desc.columns.iter().any(|c| same_name(&c.name, name))
            || left_out.iter().any(|l| same_name(&l.name, name))
    };
    for t in target.iter().filter(|t| !in_dump(&t.name)) {
        if t.invisible_primary_key {
            check.notes.push(format!(
                "{label}: column {} is MySQL's generated invisible primary key on the target, numbered by the target: not compared",
                t.name
            ));
        } else if !t.generated {
            check.mismatches.push(mismatch(
                Some(&t.name),
                MismatchKind::NotInDump,
                format!(
                    "{label}: column {} is on the target but not in the dump (added since the export?): its values were not compared",
                    t.name
                ),
            ));
        }
        // A generated column the dump lacks is computed by the target
        // from the columns that were compared.
    }
    check.chunks_comparable = desc.columns.iter().all(|c| on_target(&c.name).is_some());
    check
}

fn left_out_why(left: &LeftOutColumn) -> String {
    if left.reason == LeftOutColumn::GENERATED {
        "generated, so not in the dump".to_string()
    } else {
        format!("left out of the dump: {}", left.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::fixtures::table;

    fn ordinary(name: &str) -> TargetColumn {
        TargetColumn {
            name: name.into(),
            generated: false,
            invisible_primary_key: false,
        }
    }

    fn generated(name: &str) -> TargetColumn {
        TargetColumn {
            generated: true,
            ..ordinary(name)
        }
    }

    /// A dump of `columns` whose export recorded `left_out` (None: an
    /// older dump, with only `generated_columns`).
    fn dump(columns: &[&str], left_out: Option<Vec<LeftOutColumn>>) -> TableDescription {
        let mut desc = table(columns, Vec::new());
        desc.left_out = left_out;
        desc
    }

    fn kinds(check: &ColumnCheck) -> Vec<(Option<&str>, MismatchKind)> {
        check
            .mismatches
            .iter()
            .map(|m| (m.column.as_deref(), m.kind))
            .collect()
    }

    #[test]
    fn the_same_columns_match() {
        let check = compare_columns(
            "db.t",
            &dump(&["id", "a"], Some(vec![])),
            &[ordinary("id"), ordinary("A")],
        );
        assert_eq!(
            check,
            ColumnCheck {
                chunks_comparable: true,
                ..ColumnCheck::default()
            }
        );
    }

    #[test]
    fn an_ordinary_target_column_the_dump_lacks_is_named() {
        // E.g. `ALTER TABLE t ADD c INT DEFAULT 7` after the load: every
        // row holds 7, and no chunk fingerprint reads it.
        let check = compare_columns(
            "db.t",
            &dump(&["id"], Some(vec![])),
            &[ordinary("id"), ordinary("c")],
        );
        assert_eq!(kinds(&check), [(Some("c"), MismatchKind::NotInDump)]);
        assert_eq!(
            check.mismatches[0].sentence,
            "db.t: column c is on the target but not in the dump (added since the export?): its values were not compared"
        );
        assert!(check.chunks_comparable);
    }

    #[test]
    fn a_generated_target_column_the_dump_lacks_is_fine() {
        let check = compare_columns(
            "db.t",
            &dump(&["id"], Some(vec![])),
            &[ordinary("id"), generated("twice")],
        );
        assert!(check.mismatches.is_empty(), "{check:?}");
    }

    #[test]
    fn mysqls_invisible_primary_key_on_the_target_is_a_note() {
        let gipk = TargetColumn {
            invisible_primary_key: true,
            ..ordinary("my_row_id")
        };
        let check = compare_columns("db.t", &dump(&["a"], Some(vec![])), &[gipk, ordinary("a")]);
        assert!(check.mismatches.is_empty(), "{check:?}");
        assert!(check.notes[0].contains("my_row_id"), "{:?}", check.notes);
    }

    #[test]
    fn a_dump_column_the_target_lacks_stops_the_chunk_comparison() {
        let check = compare_columns(
            "db.t",
            &dump(&["id", "gone"], Some(vec![])),
            &[ordinary("id")],
        );
        assert_eq!(kinds(&check), [(Some("gone"), MismatchKind::NotOnTarget)]);
        assert!(!check.chunks_comparable);
    }

    #[test]
    fn source_columns_left_out_are_checked_against_the_target() {
        let left_out = Some(vec![
            LeftOutColumn::generated("g_same"),
            LeftOutColumn::generated("g_ordinary"),
            LeftOutColumn::generated("g_gone"),
            LeftOutColumn {
                name: "secret".into(),
                reason: "no privilege".into(),
            },
        ]);
        let check = compare_columns(
            "db.t",
            &dump(&["id"], left_out),
            &[
                ordinary("id"),
                generated("g_same"),
                ordinary("g_ordinary"),
                ordinary("secret"),
            ],
        );
        assert_eq!(
            kinds(&check),
            [
                (Some("g_ordinary"), MismatchKind::NotGeneratedOnTarget),
                (Some("g_gone"), MismatchKind::SourceColumnNotOnTarget),
                (Some("secret"), MismatchKind::LeftOut),
            ]
        );
        assert!(check.mismatches[2]
            .sentence
            .contains("(left out of the dump: no privilege)"));
        assert!(check.notes.is_empty());
    }

    #[test]
    fn an_older_dump_stands_on_its_generated_columns_with_a_note() {
        // Written before `left_out` existed, e.g. by a myspool that took
        // MySQL 8's DEFAULT_GENERATED `created` for a generated column.
        let mut old = dump(&["id"], None);
        old.generated_columns = vec!["created".into()];
        let check = compare_columns("db.t", &old, &[ordinary("id"), ordinary("created")]);
        assert_eq!(
            kinds(&check),
            [(Some("created"), MismatchKind::NotGeneratedOnTarget)]
        );
        assert!(check.notes[0].contains("predates"), "{:?}", check.notes);
    }

    #[test]
    fn a_missing_table_is_one_mismatch() {
        let check = compare_columns("db.t", &dump(&["id"], Some(vec![])), &[]);
        assert_eq!(kinds(&check), [(None, MismatchKind::TableNotOnTarget)]);
        assert!(!check.chunks_comparable);
    }
}
