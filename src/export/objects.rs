//! The schema objects of the exported databases: views, triggers, stored
//! procedures and functions, events, each read with `SHOW CREATE` (which
//! gives the sql_mode and character set it was created under) into
//! `<db>/objects.sql`, in the order a load creates them.
//!
//! Which: every object of a database exported whole (`DB.*`); with
//! `--triggers`, the triggers of the tables named one by one. Users and
//! grants are not exported.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, Row};

use crate::dump::{self, DumpDir, ObjectKind, SchemaObject};
use crate::schema::{self, TablePattern};
use crate::sql::{ident, qualified};

/// Writes `objects.sql` for every database with objects to export.
pub(super) fn export_objects(
    control: &mut Conn,
    dir: &DumpDir,
    patterns: &[TablePattern],
    named_tables_triggers: bool,
) -> Result<()> {
    let mut per_db: BTreeMap<String, Vec<SchemaObject>> = BTreeMap::new();
    for pattern in patterns {
        if let TablePattern::AllIn(db) = pattern {
            if !per_db.contains_key(db) {
                let objects = database_objects(control, db)?;
                per_db.insert(db.clone(), objects);
            }
        }
    }
    if named_tables_triggers {
        for pattern in patterns {
            if let TablePattern::One(t) = pattern {
                if patterns.contains(&TablePattern::AllIn(t.db.clone())) {
                    continue;
                }
                let triggers = triggers(control, &t.db, Some(&t.table))?;
                per_db.entry(t.db.clone()).or_default().extend(triggers);
            }
        }
    }
    for (db, objects) in per_db {
        if objects.is_empty() {
            continue;
        }
        let db_dir = dir.path(&dump::safe_file_name(&db));
        dump::create_private_dir(&db_dir)?;
        dump::write_objects(&dir.objects_path(&db), &db, &objects)?;
    }
    Ok(())
}

/// Every object of `db`, in creation order: functions and procedures (a
/// view may call a function; routine bodies are not checked at creation),
/// views in dependency order, triggers, events.
fn database_objects(control: &mut Conn, db: &str) -> Result<Vec<SchemaObject>> {
    let mut objects = routines(control, db)?;
    objects.extend(order_views(db, views(control, db)?));
    objects.extend(triggers(control, db, None)?);
    objects.extend(events(control, db)?);
    Ok(objects)
}

fn routines(control: &mut Conn, db: &str) -> Result<Vec<SchemaObject>> {
    let rows: Vec<(String, String, String)> = control
        .exec(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE, DEFINER FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE IN ('FUNCTION', 'PROCEDURE') \
             ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
            (db,),
        )
        .with_context(|| format!("listing the routines of {db}"))?;
    rows.into_iter()
        .map(|(name, kind, definer)| {
            let (kind, column) = if kind == "FUNCTION" {
                (ObjectKind::Function, "Create Function")
            } else {
                (ObjectKind::Procedure, "Create Procedure")
            };
            let row = show_create(control, db, kind, &name)?;
            Ok(SchemaObject {
                kind,
                name: name.clone(),
                table: None,
                definer,
                sql_mode: field(&row, "sql_mode")?,
                character_set_client: field(&row, "character_set_client")?,
                collation_connection: field(&row, "collation_connection")?,
                time_zone: None,
                create: create_statement(&row, column, kind, db, &name)?,
            })
        })
        .collect()
}

fn views(control: &mut Conn, db: &str) -> Result<Vec<SchemaObject>> {
    let rows: Vec<(String, String)> = control
        .exec(
            "SELECT TABLE_NAME, DEFINER FROM information_schema.VIEWS \
             WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
            (db,),
        )
        .with_context(|| format!("listing the views of {db}"))?;
    rows.into_iter()
        .map(|(name, definer)| {
            let row = show_create(control, db, ObjectKind::View, &name)?;
            Ok(SchemaObject {
                kind: ObjectKind::View,
                name: name.clone(),
                table: None,
                definer,
                // A view keeps no sql_mode: SHOW CREATE VIEW writes it in
                // a form any mode reads (backquoted names, no `||`).
                sql_mode: String::new(),
                character_set_client: field(&row, "character_set_client")?,
                collation_connection: field(&row, "collation_connection")?,
                time_zone: None,
                create: create_statement(&row, "Create View", ObjectKind::View, db, &name)?,
            })
        })
        .collect()
}

/// The triggers of `db` (of one table of it), in the order they fire
/// (`ACTION_ORDER`: creating them in that order keeps it).
fn triggers(control: &mut Conn, db: &str, table: Option<&str>) -> Result<Vec<SchemaObject>> {
    let rows: Vec<(String, String, String)> = control
        .exec(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, DEFINER FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA = ? AND (? IS NULL OR EVENT_OBJECT_TABLE = ?) \
             ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
            (db, table, table),
        )
        .with_context(|| format!("listing the triggers of {db}"))?;
    rows.into_iter()
        .map(|(name, table, definer)| {
            let row = show_create(control, db, ObjectKind::Trigger, &name)?;
            Ok(SchemaObject {
                kind: ObjectKind::Trigger,
                name: name.clone(),
                table: Some(table),
                definer,
                sql_mode: field(&row, "sql_mode")?,
                character_set_client: field(&row, "character_set_client")?,
                collation_connection: field(&row, "collation_connection")?,
                time_zone: None,
                create: create_statement(
                    &row,
                    "SQL Original Statement",
                    ObjectKind::Trigger,
                    db,
                    &name,
                )?,
            })
        })
        .collect()
}

fn events(control: &mut Conn, db: &str) -> Result<Vec<SchemaObject>> {
    let rows: Vec<(String, String)> = control
        .exec(
            "SELECT EVENT_NAME, DEFINER FROM information_schema.EVENTS \
             WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME",
            (db,),
        )
        .with_context(|| format!("listing the events of {db}"))?;
    rows.into_iter()
        .map(|(name, definer)| {
            let row = show_create(control, db, ObjectKind::Event, &name)?;
            Ok(SchemaObject {
                kind: ObjectKind::Event,
                name: name.clone(),
                table: None,
                definer,
                sql_mode: field(&row, "sql_mode")?,
                character_set_client: field(&row, "character_set_client")?,
                collation_connection: field(&row, "collation_connection")?,
                time_zone: Some(field(&row, "time_zone")?),
                create: create_statement(&row, "Create Event", ObjectKind::Event, db, &name)?,
            })
        })
        .collect()
}

fn show_create(control: &mut Conn, db: &str, kind: ObjectKind, name: &str) -> Result<Row> {
    let sql = format!("SHOW CREATE {} {}", kind.keyword(), qualified(db, name));
    control
        .query_first(&sql)
        .with_context(|| format!("reading the definition of {kind} {db}.{name} ({sql})"))?
        .with_context(|| format!("{sql} returned nothing"))
}

/// A column of a `SHOW CREATE` row, by name.
fn field(row: &Row, name: &str) -> Result<String> {
    let i = row
        .columns_ref()
        .iter()
        .position(|c| c.name_str().eq_ignore_ascii_case(name))
        .with_context(|| format!("SHOW CREATE gave no {name} column"))?;
    Ok(schema::text(row, i)?.unwrap_or_default())
}

/// The statement column; NULL when the user may not read the body.
fn create_statement(
    row: &Row,
    column: &str,
    kind: ObjectKind,
    db: &str,
    name: &str,
) -> Result<String> {
    let create = field(row, column)?;
    if create.is_empty() {
        bail!(
            "the definition of {kind} {db}.{name} is hidden from this user (it is neither its definer nor may read mysql.proc): grant it that, or export with --no-objects"
        );
    }
    Ok(create)
}

/// Views in an order where each comes after the views it reads: view A
/// depends on view B when A's `SHOW CREATE VIEW` names `` `db`.`B` ``
/// (the server always writes names qualified there). A false match (the
/// name inside a string) only adds an ordering; views left in a cycle that
/// cannot be (it would be such a false match) follow in name order.
pub(super) fn order_views(db: &str, views: Vec<SchemaObject>) -> Vec<SchemaObject> {
    let mentions = |a: &SchemaObject, b: &SchemaObject| {
        a.name != b.name
            && a.create
                .contains(&format!("{}.{}", ident(db), ident(&b.name)))
    };
    let mut left = views;
    let mut ordered = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let ready = left
            .iter()
            .position(|a| !left.iter().any(|b| mentions(a, b)))
            .unwrap_or(0);
        ordered.push(left.remove(ready));
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, from: &str) -> SchemaObject {
        SchemaObject {
            kind: ObjectKind::View,
            name: name.into(),
            table: None,
            definer: "root@localhost".into(),
            sql_mode: String::new(),
            character_set_client: "utf8mb4".into(),
            collation_connection: "utf8mb4_general_ci".into(),
            time_zone: None,
            create: format!(
                "CREATE VIEW `{name}` AS select `shop`.`{from}`.`id` AS `id` from `shop`.`{from}`"
            ),
        }
    }

    fn names(views: &[SchemaObject]) -> Vec<&str> {
        views.iter().map(|v| v.name.as_str()).collect()
    }

    #[test]
    fn views_come_after_the_views_they_read() {
        // a_top reads m_mid reads z_base reads the table t; b reads t.
        let views = vec![
            view("a_top", "m_mid"),
            view("b", "t"),
            view("m_mid", "z_base"),
            view("z_base", "t"),
        ];
        assert_eq!(
            names(&order_views("shop", views)),
            ["b", "z_base", "m_mid", "a_top"]
        );
    }

    #[test]
    fn a_cycle_of_false_matches_still_orders_every_view() {
        let views = vec![view("x", "y"), view("y", "x")];
        assert_eq!(names(&order_views("shop", views)), ["x", "y"]);
    }
}
