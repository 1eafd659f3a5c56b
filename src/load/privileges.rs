//! The privileges a load needs on a target table, and those the user lacks.

use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, Row};

use crate::schema::text;

/// What a load will do to a table, for the privileges it needs.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TableWork {
    pub exists: bool,
    pub truncate: bool,
    pub replace: bool,
    pub drop_autoinc: bool,
    pub defer_indexes: bool,
    /// `--swap`: a shadow table created, renamed in, the old one dropped.
    pub swap: bool,
}

/// The privileges `work` needs on its table.
pub(super) fn needed_privileges(work: TableWork) -> Vec<&'static str> {
    let mut needed = vec!["SELECT", "INSERT"];
    if !work.exists || work.swap {
        needed.push("CREATE");
    }
    // TRUNCATE TABLE needs DROP, and so do the RENAME (of the table
    // renamed away) and the DROP of the old table after a swap.
    if work.truncate || work.swap {
        needed.push("DROP");
    }
    // REPLACE deletes the row it replaces.
    if work.replace {
        needed.push("DELETE");
    }
    // RENAME TABLE needs ALTER on the table renamed away.
    if work.drop_autoinc || work.defer_indexes || work.swap {
        needed.push("ALTER");
    }
    // ALTER TABLE … ADD INDEX needs INDEX as well as ALTER.
    if work.defer_indexes {
        needed.push("INDEX");
    }
    needed
}

/// Privileges of `needed` the current user does not hold on a table
/// (globally, on its database, or on the table). `None` also when they
/// cannot be told: with a role active, what the role grants is not in these
/// views, so nothing is refused on their account.
pub(super) fn missing_privileges(
    conn: &mut Conn,
    db: &str,
    table: &str,
    needed: &[&str],
) -> Result<Option<Vec<String>>> {
    let role: Option<Option<String>> = conn.query_first("SELECT CURRENT_ROLE()").unwrap_or(None);
    if matches!(role.flatten().as_deref(), Some(r) if !r.is_empty() && r != "NONE") {
        return Ok(None);
    }
    // GRANTEE is written 'user'@'host'; CURRENT_USER() is user@host.
    let grantee = r#"CONCAT("'", SUBSTRING_INDEX(CURRENT_USER(), '@', 1), "'@'", SUBSTRING_INDEX(CURRENT_USER(), '@', -1), "'")"#;
    let rows: Vec<Row> = conn
        .exec(
            format!(
                "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = {grantee} \
                 UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES \
                   WHERE GRANTEE = {grantee} AND (TABLE_SCHEMA = ? OR ? LIKE TABLE_SCHEMA) \
                 UNION SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES \
                   WHERE GRANTEE = {grantee} AND TABLE_SCHEMA = ? AND TABLE_NAME = ?"
            ),
            (db, db, db, table),
        )
        .context("reading the target user's privileges")?;
    let held: Vec<String> = rows
        .iter()
        .filter_map(|r| text(r, 0).ok().flatten())
        .map(|p| p.to_ascii_uppercase())
        .collect();
    let missing: Vec<String> = needed
        .iter()
        .filter(|p| !held.iter().any(|h| h == *p))
        .map(|p| p.to_string())
        .collect();
    Ok(if missing.is_empty() {
        None
    } else {
        Some(missing)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileges_follow_the_work() {
        assert_eq!(
            needed_privileges(TableWork {
                exists: true,
                ..TableWork::default()
            }),
            ["SELECT", "INSERT"]
        );
        assert_eq!(
            needed_privileges(TableWork {
                exists: false,
                truncate: true,
                replace: true,
                drop_autoinc: false,
                defer_indexes: true,
                swap: false,
            }),
            ["SELECT", "INSERT", "CREATE", "DROP", "DELETE", "ALTER", "INDEX"]
        );
        assert_eq!(
            needed_privileges(TableWork {
                exists: true,
                swap: true,
                ..TableWork::default()
            }),
            ["SELECT", "INSERT", "CREATE", "DROP", "ALTER"]
        );
        assert_eq!(
            needed_privileges(TableWork {
                exists: true,
                drop_autoinc: true,
                ..TableWork::default()
            }),
            ["SELECT", "INSERT", "ALTER"]
        );
    }
}
