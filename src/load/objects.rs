//! The dump's views, triggers, routines and events, created on the target
//! after the data (so the triggers do not fire on the loaded rows), each
//! under the sql_mode and character set it was created under, in the order
//! `objects.sql` holds them (functions and procedures, views in dependency
//! order, triggers, events). An object of the same name on the target is
//! replaced (`DROP … IF EXISTS`, then `CREATE`), so a rerun creates them again.
//!
//! The DEFINER: kept by default, so the target must have each definer
//! (checked before anything is created: the server itself would create a
//! view with an unknown definer and fail only when it is used); `--definer
//! strip` leaves it out (the loading user becomes the definer); `--definer
//! 'user'@'host'` sets that one on every object.

use anyhow::{bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;
use serde::Serialize;

use crate::dump::{DumpDir, Manifest, ObjectCounts, ObjectKind, SchemaObject};
use crate::sql::{ident, qualified};

/// `--definer`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DefinerPolicy {
    /// Each object keeps its definer; the target must have it.
    #[default]
    Keep,
    /// No DEFINER clause: the loading user becomes the definer.
    Strip,
    /// This account is every object's definer.
    Set { user: String, host: String },
}

impl DefinerPolicy {
    /// `keep`, `strip`, or an account: `'user'@'host'`, `` `user`@`host` ``
    /// or `user@host`.
    pub fn parse(text: &str) -> Result<DefinerPolicy> {
        match text {
            "keep" => return Ok(DefinerPolicy::Keep),
            "strip" => return Ok(DefinerPolicy::Strip),
            _ => {}
        }
        match parse_account(text) {
            Some((user, Some(host), end)) if end == text.len() && !user.is_empty() => {
                Ok(DefinerPolicy::Set { user, host })
            }
            _ => bail!("--definer {text:?}: expected keep, strip or 'user'@'host'"),
        }
    }
}

/// The objects of one dump database, and the database they go into.
#[derive(Debug)]
pub(super) struct DatabaseObjects {
    pub db: String,
    pub target_db: String,
    pub objects: Vec<SchemaObject>,
}

/// What the load created, per database.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectsLoaded {
    pub db: String,
    pub target_db: String,
    #[serde(flatten)]
    pub counts: ObjectCounts,
}

/// The objects of every database of the dump (none with `--no-objects`).
pub(super) fn plan(
    dir: &DumpDir,
    manifest: &Manifest,
    into: Option<&str>,
) -> Result<Vec<DatabaseObjects>> {
    let mut dbs: Vec<&str> = Vec::new();
    for t in &manifest.tables {
        if !dbs.contains(&t.db.as_str()) {
            dbs.push(&t.db);
        }
    }
    let mut plan = Vec::new();
    for db in dbs {
        let objects = dir.read_objects(db)?;
        if !objects.is_empty() {
            plan.push(DatabaseObjects {
                db: db.to_string(),
                target_db: into.unwrap_or(db).to_string(),
                objects,
            });
        }
    }
    Ok(plan)
}

/// Refuses, before anything is created, objects the loading user may not
/// create (the privileges their kinds need, and SUPER or SET USER to give
/// them another definer) and objects whose definer the target lacks,
/// naming each object and the account it needs.
pub(super) fn preflight(
    conn: &mut Conn,
    plan: &[DatabaseObjects],
    policy: &DefinerPolicy,
) -> Result<()> {
    let current: Option<String> = conn.query_first("SELECT CURRENT_USER()")?;
    let current = definer_account(&current.unwrap_or_default());
    let mut problems = Vec::new();
    for d in plan {
        let kinds: Vec<ObjectKind> = d.objects.iter().map(|o| o.kind).collect();
        let needed = needed_privileges(&kinds);
        if let Some(missing) =
            super::privileges::missing_privileges(conn, &d.target_db, "", &needed)?
        {
            problems.push(format!(
                "the loading user lacks {} on {} for the objects of {}",
                missing.join(", "),
                d.target_db,
                d.db
            ));
        }
    }
    let foreign = plan.iter().flat_map(|d| &d.objects).any(|o| match policy {
        DefinerPolicy::Strip => false,
        DefinerPolicy::Set { user, host } => (user.clone(), host.clone()) != current,
        DefinerPolicy::Keep => definer_account(&o.definer) != current,
    });
    if binlog_needs_super(conn, plan)? {
        problems.push(
            "creating or replacing triggers and functions while the target writes a binary log needs SUPER (or log_bin_trust_function_creators=ON on the target; --skip-binlog does not lift this)".to_string(),
        );
    }
    if foreign && !may_set_definer(conn)? {
        problems.push(
            "giving objects another definer than the loading user needs SUPER or SET USER (MariaDB), SET_USER_ID or SET_ANY_DEFINER (MySQL 8)".to_string(),
        );
    }
    if !problems.is_empty() {
        bail!(
            "{}: grant them, or load with --definer strip (the loading user becomes the definer) or --no-objects",
            problems.join("; ")
        );
    }
    check_definers(conn, plan, policy, &current)
}

/// The database privileges creating these kinds of objects needs.
fn needed_privileges(kinds: &[ObjectKind]) -> Vec<&'static str> {
    let mut needed = Vec::new();
    for kind in [
        ObjectKind::Function,
        ObjectKind::Procedure,
        ObjectKind::View,
        ObjectKind::Trigger,
        ObjectKind::Event,
    ] {
        if !kinds.contains(&kind) {
            continue;
        }
        // DROP … IF EXISTS (before each CREATE) is checked even when there
        // is nothing to drop: ALTER ROUTINE for a routine, DROP for a view.
        let privileges: &[&str] = match kind {
            ObjectKind::Function | ObjectKind::Procedure => &["CREATE ROUTINE", "ALTER ROUTINE"],
            ObjectKind::View => &["CREATE VIEW", "DROP"],
            ObjectKind::Trigger => &["TRIGGER"],
            ObjectKind::Event => &["EVENT"],
        };
        for privilege in privileges {
            if !needed.contains(privilege) {
                needed.push(privilege);
            }
        }
    }
    needed
}

/// Whether the server will refuse this user the dump's triggers and
/// functions (error 1419, even for `DROP TRIGGER IF EXISTS`): with the
/// binary log open and `log_bin_trust_function_creators` OFF, only SUPER
/// may create them (a body could write what a replica replays differently).
fn binlog_needs_super(conn: &mut Conn, plan: &[DatabaseObjects]) -> Result<bool> {
    let has = plan
        .iter()
        .flat_map(|d| &d.objects)
        .any(|o| matches!(o.kind, ObjectKind::Trigger | ObjectKind::Function));
    if !has {
        return Ok(false);
    }
    let row: Option<(Option<u64>, Option<u64>)> = conn
        .query_first("SELECT @@GLOBAL.log_bin, @@GLOBAL.log_bin_trust_function_creators")
        .context("reading log_bin and log_bin_trust_function_creators")?;
    let (log_bin, trusted) = row.unwrap_or_default();
    if log_bin != Some(1) || trusted == Some(1) {
        return Ok(false);
    }
    Ok(super::privileges::missing_privileges(conn, "", "", &["SUPER"])?.is_some())
}

/// Whether the user holds a global privilege that lets it name another
/// definer. True when that cannot be told (a role is active).
fn may_set_definer(conn: &mut Conn) -> Result<bool> {
    let any = ["SUPER", "SET USER", "SET_USER_ID", "SET_ANY_DEFINER"];
    // missing_privileges answers None when it holds them all, or cannot tell.
    for privilege in any {
        if super::privileges::missing_privileges(conn, "", "", &[privilege])?.is_none() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Refuses objects whose definer the target lacks.
fn check_definers(
    conn: &mut Conn,
    plan: &[DatabaseObjects],
    policy: &DefinerPolicy,
    current: &(String, String),
) -> Result<()> {
    let mut needed: Vec<(String, (String, String))> = Vec::new();
    for d in plan {
        for o in &d.objects {
            let account = match policy {
                DefinerPolicy::Strip => continue,
                DefinerPolicy::Set { user, host } => (user.clone(), host.clone()),
                DefinerPolicy::Keep => definer_account(&o.definer),
            };
            needed.push((o.label(&d.db), account));
        }
    }
    let mut missing = Vec::new();
    let mut known: Vec<((String, String), bool)> = Vec::new();
    for (label, account) in needed {
        let exists = match known.iter().find(|(a, _)| *a == account) {
            Some((_, e)) => *e,
            // The loading user exists (it may not read mysql.user).
            None if account == *current => true,
            None => {
                let e = account_exists(conn, &account)?;
                known.push((account.clone(), e));
                e
            }
        };
        if !exists {
            missing.push(format!("{label} needs {}", account_sql(&account)));
        }
    }
    if !missing.is_empty() {
        bail!(
            "the target lacks the definer of {} object(s): {}; create these accounts on the target, or load with --definer strip (the loading user becomes the definer) or --definer 'user'@'host'",
            missing.len(),
            missing.join(", ")
        );
    }
    Ok(())
}

fn account_exists(conn: &mut Conn, (user, host): &(String, String)) -> Result<bool> {
    let n: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ?",
            (user, host),
        )
        .with_context(|| {
            format!(
                "checking that the definer {} exists on the target (reading mysql.user; without that privilege load with --definer strip)",
                account_sql(&(user.clone(), host.clone()))
            )
        })?;
    Ok(n.unwrap_or(0) > 0)
}

/// The names of the dump's triggers on `db`.`table` (`db` as in the dump).
pub(super) fn triggers_of(plan: &[DatabaseObjects], db: &str, table: &str) -> Vec<String> {
    plan.iter()
        .filter(|d| d.db == db)
        .flat_map(|d| &d.objects)
        .filter(|o| o.kind == ObjectKind::Trigger && o.table.as_deref() == Some(table))
        .map(|o| o.name.clone())
        .collect()
}

/// Drops the dump's triggers already on the target before the data is
/// loaded (a reload into tables an earlier load gave them), so that they do
/// not fire on the loaded rows; they are created again after the data.
pub(super) fn drop_triggers_before_data(conn: &mut Conn, plan: &[DatabaseObjects]) -> Result<()> {
    for d in plan {
        for o in d.objects.iter().filter(|o| o.kind == ObjectKind::Trigger) {
            conn.query_drop(format!(
                "DROP TRIGGER IF EXISTS {}",
                qualified(&d.target_db, &o.name)
            ))
            .with_context(|| format!("dropping {} before loading the data", o.label(&d.db)))?;
        }
    }
    Ok(())
}

/// Creates every object, database by database, in the file's order.
pub(super) fn create_objects(
    conn: &mut Conn,
    plan: &[DatabaseObjects],
    policy: &DefinerPolicy,
) -> Result<Vec<ObjectsLoaded>> {
    let mut loaded = Vec::new();
    for d in plan {
        conn.query_drop(format!("USE {}", ident(&d.target_db)))
            .with_context(|| format!("USE {}", d.target_db))?;
        for o in &d.objects {
            create_object(conn, d, o, policy).with_context(|| {
                if d.target_db == d.db {
                    format!("creating {}", o.label(&d.db))
                } else {
                    format!("creating {} in {}", o.label(&d.db), d.target_db)
                }
            })?;
        }
        loaded.push(ObjectsLoaded {
            db: d.db.clone(),
            target_db: d.target_db.clone(),
            counts: ObjectCounts::of(&d.objects),
        });
    }
    Ok(loaded)
}

fn create_object(
    conn: &mut Conn,
    d: &DatabaseObjects,
    o: &SchemaObject,
    policy: &DefinerPolicy,
) -> Result<()> {
    conn.query_drop(o.session_sql())?;
    conn.query_drop(format!(
        "DROP {} IF EXISTS {}",
        o.kind.keyword(),
        ident(&o.name)
    ))?;
    let create = with_definer(&rename_db(&o.create, &d.db, &d.target_db), policy);
    conn.query_drop(create)?;
    Ok(())
}

/// The statement with its references to `` `from`.`…` `` pointing at `to`
/// (a load `--into` another database: views name their tables qualified).
pub(super) fn rename_db(create: &str, from: &str, to: &str) -> String {
    if from == to {
        return create.to_string();
    }
    create.replace(&format!("{}.", ident(from)), &format!("{}.", ident(to)))
}

/// The statement with its DEFINER clause kept, removed or replaced.
pub fn with_definer(create: &str, policy: &DefinerPolicy) -> String {
    let Some((start, end)) = definer_clause(create) else {
        return create.to_string();
    };
    let replacement = match policy {
        DefinerPolicy::Keep => return create.to_string(),
        DefinerPolicy::Strip => String::new(),
        DefinerPolicy::Set { user, host } => {
            format!("DEFINER={}@{} ", ident(user), ident(host))
        }
    };
    format!("{}{replacement}{}", &create[..start], &create[end..])
}

/// Where `DEFINER=… ` is in a `SHOW CREATE` statement (with the space after
/// it): between `CREATE` and the object's keyword, after nothing but
/// options such as `ALGORITHM=UNDEFINED`. None when it has none.
fn definer_clause(create: &str) -> Option<(usize, usize)> {
    let upper = create.to_ascii_uppercase();
    let start = upper.find("DEFINER=")?;
    // Only option words may come before it: otherwise it is in a body.
    let prefix = &upper[..start];
    if !prefix.starts_with("CREATE ")
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b' ' || b == b'=' || b == b'_')
    {
        return None;
    }
    let account = &create[start + "DEFINER=".len()..];
    let (_, _, len) = parse_account(account)?;
    let mut end = start + "DEFINER=".len() + len;
    if create[end..].starts_with(' ') {
        end += 1;
    }
    Some((start, end))
}

/// Reads an account at the start of `text`: a user name (quoted with ` or ',
/// or bare), then optionally `@` and a host. Returns the user, the host
/// and the length read.
fn parse_account(text: &str) -> Option<(String, Option<String>, usize)> {
    let (user, used) = parse_name(text)?;
    match text[used..].strip_prefix('@') {
        Some(rest) => {
            let (host, host_len) = parse_name(rest)?;
            Some((user, Some(host), used + 1 + host_len))
        }
        None => Some((user, None, used)),
    }
}

/// A name quoted with ` or ' (the quote doubled inside), or bare (up to a
/// space or `@`).
fn parse_name(text: &str) -> Option<(String, usize)> {
    let quote = text.chars().next()?;
    if quote == '`' || quote == '\'' {
        let mut name = String::new();
        let mut chars = text.char_indices().skip(1).peekable();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                if chars.peek().map(|&(_, n)| n) == Some(quote) {
                    chars.next();
                    name.push(quote);
                } else {
                    return Some((name, i + 1));
                }
            } else {
                name.push(c);
            }
        }
        None
    } else {
        let len = text
            .find(|c: char| c == '@' || c.is_whitespace())
            .unwrap_or(text.len());
        (len > 0).then(|| (text[..len].to_string(), len))
    }
}

/// `user@host` as information_schema spells a definer (split at the last
/// `@`: a user name may hold one, a host may not); a role has no host.
fn definer_account(definer: &str) -> (String, String) {
    match definer.rsplit_once('@') {
        Some((user, host)) => (user.to_string(), host.to_string()),
        None => (definer.to_string(), String::new()),
    }
}

/// `'user'@'host'`.
fn account_sql((user, host): &(String, String)) -> String {
    format!(
        "{}@{}",
        crate::sql::string_literal(user),
        crate::sql::string_literal(host)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIEW: &str = "CREATE ALGORITHM=UNDEFINED DEFINER=`app`@`%` SQL SECURITY DEFINER VIEW `v` AS select 1 AS `1`";
    const PROC: &str = "CREATE DEFINER=`o``brien`@`localhost` PROCEDURE `p`()\nBEGIN SELECT 'DEFINER=`x`@`y`'; END";

    #[test]
    fn privileges_follow_the_kinds_of_objects() {
        use ObjectKind::*;
        assert_eq!(
            needed_privileges(&[View, Procedure, Function, View, Event]),
            [
                "CREATE ROUTINE",
                "ALTER ROUTINE",
                "CREATE VIEW",
                "DROP",
                "EVENT"
            ]
        );
        assert_eq!(needed_privileges(&[Trigger]), ["TRIGGER"]);
        assert!(needed_privileges(&[]).is_empty());
    }

    #[test]
    fn definer_kept_stripped_or_replaced() {
        assert_eq!(with_definer(VIEW, &DefinerPolicy::Keep), VIEW);
        assert_eq!(
            with_definer(VIEW, &DefinerPolicy::Strip),
            "CREATE ALGORITHM=UNDEFINED SQL SECURITY DEFINER VIEW `v` AS select 1 AS `1`"
        );
        let set = DefinerPolicy::parse("'etl'@'10.0.%'").unwrap();
        assert_eq!(
            with_definer(PROC, &set),
            "CREATE DEFINER=`etl`@`10.0.%` PROCEDURE `p`()\nBEGIN SELECT 'DEFINER=`x`@`y`'; END"
        );
    }

    #[test]
    fn a_definer_inside_a_body_is_not_the_clause() {
        let no_clause = "CREATE PROCEDURE `p`() SELECT 'DEFINER=`x`@`y` '";
        assert_eq!(with_definer(no_clause, &DefinerPolicy::Strip), no_clause);
    }

    #[test]
    fn definer_option_spellings() {
        let set = |u: &str, h: &str| DefinerPolicy::Set {
            user: u.into(),
            host: h.into(),
        };
        assert_eq!(DefinerPolicy::parse("keep").unwrap(), DefinerPolicy::Keep);
        assert_eq!(DefinerPolicy::parse("strip").unwrap(), DefinerPolicy::Strip);
        assert_eq!(DefinerPolicy::parse("app@%").unwrap(), set("app", "%"));
        assert_eq!(
            DefinerPolicy::parse("`a``b`@`localhost`").unwrap(),
            set("a`b", "localhost")
        );
        for bad in ["", "app", "'app'@", "@'h'", "'app'@'h' x", "Keep"] {
            assert!(DefinerPolicy::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn definers_as_information_schema_spells_them() {
        assert_eq!(
            definer_account("root@localhost"),
            ("root".into(), "localhost".into())
        );
        assert_eq!(definer_account("a@b@%"), ("a@b".into(), "%".into()));
        assert_eq!(definer_account("role1"), ("role1".into(), String::new()));
    }

    #[test]
    fn a_load_into_another_database_renames_qualified_references() {
        let view = "CREATE VIEW `v` AS select `shop`.`t`.`id` AS `id` from `shop`.`t`";
        assert_eq!(
            rename_db(view, "shop", "copy"),
            "CREATE VIEW `v` AS select `copy`.`t`.`id` AS `id` from `copy`.`t`"
        );
        assert_eq!(rename_db(view, "shop", "shop"), view);
    }
}
