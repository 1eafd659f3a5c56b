//! `<db>/objects.sql`: a database's views, triggers, stored procedures and
//! functions and events, as SQL that also runs in the `mariadb` client.
//!
//! ```text
//! DELIMITER ;;
//! -- object: {"kind":"view","name":"v","definer":"app@%","sql_mode":"",…,"bytes":88}
//! SET SESSION sql_mode = '', character_set_client = 'utf8mb4', collation_connection = 'utf8mb4_general_ci';;
//! CREATE ALGORITHM=UNDEFINED DEFINER=`app`@`%` SQL SECURITY DEFINER VIEW `v` AS select …
//! ;;
//! DELIMITER ;
//! ```
//!
//! Each object is a header line (its metadata as JSON, with the length of
//! its statement in bytes), the line setting the session it must be created
//! under, and its `SHOW CREATE` statement. myspool reads the statement by
//! its length, never by parsing SQL, so any body reads back exactly (the
//! `mariadb` client would stop at a `;;` inside a body; myspool does not).
//! Objects are in the order they must be created: views in dependency order.

use std::fmt;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::files::{one_line, write_atomic};
use crate::sql::string_literal;

/// What kind of schema object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Function,
    Procedure,
    View,
    Trigger,
    Event,
}

impl ObjectKind {
    /// The word in `CREATE …`/`DROP …`.
    pub fn keyword(self) -> &'static str {
        match self {
            ObjectKind::Function => "FUNCTION",
            ObjectKind::Procedure => "PROCEDURE",
            ObjectKind::View => "VIEW",
            ObjectKind::Trigger => "TRIGGER",
            ObjectKind::Event => "EVENT",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.keyword().to_lowercase())
    }
}

/// One object: its `SHOW CREATE` statement and the session it was created
/// under (a trigger's or routine's body is parsed under its own sql_mode,
/// and its string literals under its character set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaObject {
    pub kind: ObjectKind,
    pub name: String,
    /// A trigger's table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// `user@host` as the server spells it.
    pub definer: String,
    pub sql_mode: String,
    pub character_set_client: String,
    pub collation_connection: String,
    /// An event's time zone (its schedule is in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(skip)]
    pub create: String,
}

/// The header: the object's metadata and its statement's length.
#[derive(Serialize, Deserialize)]
struct Header {
    #[serde(flatten)]
    object: SchemaObject,
    bytes: usize,
}

const HEADER_PREFIX: &str = "-- object: ";

impl SchemaObject {
    /// `SET SESSION …` for the session the object is created under.
    pub fn session_sql(&self) -> String {
        let mut sql = format!(
            "SET SESSION sql_mode = {}, character_set_client = {}, collation_connection = {}",
            string_literal(&self.sql_mode),
            string_literal(&self.character_set_client),
            string_literal(&self.collation_connection)
        );
        if let Some(tz) = &self.time_zone {
            sql.push_str(&format!(", time_zone = {}", string_literal(tz)));
        }
        sql
    }

    /// `view shop.v`.
    pub fn label(&self, db: &str) -> String {
        format!("{} {db}.{}", self.kind, self.name)
    }
}

/// How many objects of each kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ObjectCounts {
    pub views: usize,
    pub triggers: usize,
    pub procedures: usize,
    pub functions: usize,
    pub events: usize,
}

impl ObjectCounts {
    pub fn of(objects: &[SchemaObject]) -> ObjectCounts {
        let mut c = ObjectCounts::default();
        for o in objects {
            *match o.kind {
                ObjectKind::View => &mut c.views,
                ObjectKind::Trigger => &mut c.triggers,
                ObjectKind::Procedure => &mut c.procedures,
                ObjectKind::Function => &mut c.functions,
                ObjectKind::Event => &mut c.events,
            } += 1;
        }
        c
    }

    /// `2 views, 1 trigger, 1 procedure, 0 functions, 1 event`.
    pub fn describe(&self) -> String {
        let n =
            |count: usize, one: &str| format!("{count} {one}{}", if count == 1 { "" } else { "s" });
        [
            n(self.views, "view"),
            n(self.triggers, "trigger"),
            n(self.procedures, "procedure"),
            n(self.functions, "function"),
            n(self.events, "event"),
        ]
        .join(", ")
    }
}

/// The text of `objects.sql` for database `db`.
pub fn objects_sql(db: &str, objects: &[SchemaObject]) -> Result<String> {
    let mut out = format!(
        "-- myspool: views, triggers, routines and events of database {}, in creation order.\n\
         -- `myspool load` creates them after the data; to run by hand: USE the database, then this file.\n\
         DELIMITER ;;\n",
        crate::sql::ident(db)
    );
    for o in objects {
        let header = Header {
            object: o.clone(),
            bytes: o.create.len(),
        };
        out.push_str(HEADER_PREFIX);
        out.push_str(&serde_json::to_string(&header)?);
        out.push('\n');
        out.push_str(&o.session_sql());
        out.push_str(";;\n");
        out.push_str(&o.create);
        out.push_str("\n;;\n");
    }
    out.push_str("DELIMITER ;\n");
    Ok(out)
}

/// Writes `objects.sql` (atomically).
pub fn write_objects(path: &Path, db: &str, objects: &[SchemaObject]) -> Result<()> {
    write_atomic(path, objects_sql(db, objects)?.as_bytes())
}

/// The objects of an `objects.sql`, in its order (`label` names the file in
/// errors).
pub fn parse_objects(text: &str, label: &str) -> Result<Vec<SchemaObject>> {
    let mut objects = Vec::new();
    let mut rest = text;
    let mut line_no = 1;
    while let Some(at) = rest.find(HEADER_PREFIX) {
        line_no += rest[..at].matches('\n').count();
        let from_header = &rest[at + HEADER_PREFIX.len()..];
        let bad = |what: &str| anyhow!("{label}, line {line_no}: {what}");
        let (json, after) = from_header
            .split_once('\n')
            .ok_or_else(|| bad("a header without its statement"))?;
        let header: Header = serde_json::from_str(json)
            .map_err(|e| bad(&format!("not a valid object header: {}", one_line(e))))?;
        // The SET SESSION line, then exactly `bytes` bytes of statement.
        let (_, body) = after
            .split_once('\n')
            .ok_or_else(|| bad("the statement is missing"))?;
        let create = body
            .get(..header.bytes)
            .ok_or_else(|| bad("the statement is shorter than its header says"))?;
        let tail = &body[header.bytes..];
        if !tail.starts_with("\n;;\n") {
            bail!("{label}, line {line_no}: the statement is not followed by ;; where its header says it ends");
        }
        line_no += 2 + create.matches('\n').count() + 2;
        let mut object = header.object;
        object.create = create.to_string();
        objects.push(object);
        rest = &tail[4..];
    }
    Ok(objects)
}

/// The objects in `path`; none when the file does not exist (a dump made
/// without them, or before they existed).
pub fn read_objects(path: &Path) -> Result<Vec<SchemaObject>> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_objects(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: ObjectKind, name: &str, create: &str) -> SchemaObject {
        SchemaObject {
            kind,
            name: name.into(),
            table: None,
            definer: "root@localhost".into(),
            sql_mode: "STRICT_ALL_TABLES".into(),
            character_set_client: "utf8mb4".into(),
            collation_connection: "utf8mb4_general_ci".into(),
            time_zone: None,
            create: create.into(),
        }
    }

    #[test]
    fn objects_read_back_exactly_whatever_their_bodies_hold() {
        let mut event = object(
            ObjectKind::Event,
            "e",
            "CREATE EVENT `e` ON SCHEDULE EVERY 1 DAY DO SELECT ';;\n-- object: {}'",
        );
        event.time_zone = Some("+02:00".into());
        let objects = vec![
            object(
                ObjectKind::Function,
                "f",
                "CREATE FUNCTION `f`() RETURNS int\nBEGIN\n  RETURN 1;\nEND",
            ),
            object(
                ObjectKind::View,
                "v",
                "CREATE VIEW `v` AS select 'é' AS `x`",
            ),
            event,
        ];
        let text = objects_sql("shop", &objects).unwrap();
        assert!(text.starts_with("-- myspool"), "{text}");
        assert!(text.contains("time_zone = '+02:00';;\n"), "{text}");
        assert_eq!(parse_objects(&text, "objects.sql").unwrap(), objects);
    }

    #[test]
    fn a_damaged_file_names_its_line() {
        let text = objects_sql(
            "shop",
            &[object(ObjectKind::View, "v", "CREATE VIEW `v` AS select 1")],
        )
        .unwrap();
        let cut = text.replace("select 1", "select");
        let err = parse_objects(&cut, "shop/objects.sql")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("shop/objects.sql, line 4: "), "{err}");
        assert!(parse_objects("-- object: {nope\n", "x")
            .unwrap_err()
            .to_string()
            .contains("not a valid object header"));
    }

    #[test]
    fn counts_per_kind() {
        let objects = [
            object(ObjectKind::View, "a", ""),
            object(ObjectKind::View, "b", ""),
            object(ObjectKind::Trigger, "t", ""),
        ];
        assert_eq!(
            ObjectCounts::of(&objects).describe(),
            "2 views, 1 trigger, 0 procedures, 0 functions, 0 events"
        );
    }
}
