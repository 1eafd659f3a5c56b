//! What a source table looks like: which tables a `--table` pattern names,
//! their columns and how each is read and written, and the key the chunks
//! follow.

use std::collections::HashMap;
use std::fmt;

use anyhow::{bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, Row};

use crate::dialect::{Codec, Encoding};
use crate::dump::{ColumnDescription, KeyDescription, KeyKind};
use crate::sql::{ident, qualified};

/// A table, by database and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableRef {
    pub db: String,
    pub table: String,
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.db, self.table)
    }
}

impl TableRef {
    pub fn sql(&self) -> String {
        qualified(&self.db, &self.table)
    }
}

/// A `--table` argument: `db.table`, or `db.*` for every base table of `db`.
/// Either part may be backtick-quoted to hold dots: ``"`my.db`.`t`"``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TablePattern {
    One(TableRef),
    AllIn(String),
}

impl TablePattern {
    pub fn parse(text: &str) -> Result<TablePattern> {
        let bad = || {
            anyhow::anyhow!("--table {text:?}: expected DB.TABLE or DB.* (quote names holding dots with backticks)")
        };
        let (db, rest) = take_name(text).ok_or_else(bad)?;
        let rest = rest.strip_prefix('.').ok_or_else(bad)?;
        if rest == "*" {
            return Ok(TablePattern::AllIn(db));
        }
        // An unquoted table name is everything after the first dot.
        let (table, tail) = if rest.starts_with('`') {
            take_name(rest).ok_or_else(bad)?
        } else {
            (rest.to_string(), "")
        };
        if !tail.is_empty() || table.is_empty() || db.is_empty() {
            return Err(bad());
        }
        Ok(TablePattern::One(TableRef { db, table }))
    }
}

/// Reads one name: backtick-quoted (doubled backticks inside) or up to the
/// first dot.
fn take_name(text: &str) -> Option<(String, &str)> {
    if let Some(quoted) = text.strip_prefix('`') {
        let mut name = String::new();
        let mut chars = quoted.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '`' {
                if let Some((_, '`')) = chars.peek() {
                    chars.next();
                    name.push('`');
                } else {
                    return Some((name, &quoted[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        None
    } else {
        let end = text.find('.').unwrap_or(text.len());
        Some((text[..end].to_string(), &text[end..]))
    }
}

/// Expands patterns into tables (sorted, without repeats), checking that each
/// exists and is a base table.
pub fn resolve_tables(conn: &mut Conn, patterns: &[TablePattern]) -> Result<Vec<TableRef>> {
    let mut out: Vec<TableRef> = Vec::new();
    for pattern in patterns {
        match pattern {
            TablePattern::AllIn(db) => {
                require_database(conn, db)?;
                let names: Vec<Row> = conn.exec(
                    "SELECT TABLE_NAME FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = ? AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') \
                     ORDER BY TABLE_NAME",
                    (db,),
                )?;
                if names.is_empty() {
                    bail!("database {db} has no base tables (for --table {db}.*)");
                }
                for row in &names {
                    let table = text(row, 0)?.unwrap_or_default();
                    out.push(TableRef {
                        db: db.clone(),
                        table,
                    });
                }
            }
            TablePattern::One(t) => {
                require_database(conn, &t.db)?;
                let kind: Option<Row> = conn.exec_first(
                    "SELECT TABLE_TYPE FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                    (&t.db, &t.table),
                )?;
                match kind
                    .as_ref()
                    .map(|r| text(r, 0))
                    .transpose()?
                    .flatten()
                    .as_deref()
                {
                    None => bail!("table {t} does not exist (or this user has no privilege on it)"),
                    Some("VIEW") => {
                        bail!("{t} is a view, not a base table: export the tables it reads")
                    }
                    Some("BASE TABLE") | Some("SYSTEM VERSIONED") => out.push(t.clone()),
                    Some(other) => bail!("{t} is a {other}, not a base table"),
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn require_database(conn: &mut Conn, db: &str) -> Result<()> {
    let found: Option<Row> = conn.exec_first(
        "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
        (db,),
    )?;
    if found.is_none() {
        bail!("database {db} does not exist (or this user has no privilege on it)");
    }
    Ok(())
}

/// A column as the exporter reads it.
#[derive(Debug, Clone)]
pub struct SourceColumn {
    pub desc: ColumnDescription,
    pub codec: Codec,
    /// What goes in the SELECT list for this column.
    pub select_expr: String,
}

/// How a key column's value is turned into a literal for a chunk bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLiteral {
    /// Integers, DECIMAL, YEAR, and FLOAT/DOUBLE read as `col + 0e0`.
    Number,
    /// ENUM, SET and BIT read as `col + 0`: an ENUM sorts by its index, not
    /// its text, so the bound must be the index too.
    Index,
    /// Strings read as `HEX(col)`, sent as `_charset X'…'` (no introducer for
    /// binary strings), so the bytes are compared in the column's collation.
    Hex(Option<String>),
    /// Temporal values, quoted.
    Quoted,
}

#[derive(Debug, Clone)]
pub struct KeyColumn {
    pub name: String,
    /// The expression the planner selects to build a bound.
    pub select_expr: String,
    pub literal: KeyLiteral,
}

/// Everything the exporter needs to know about a source table.
#[derive(Debug, Clone)]
pub struct SourceTable {
    pub table: TableRef,
    pub columns: Vec<SourceColumn>,
    pub generated_columns: Vec<String>,
    pub key: KeyDescription,
    pub key_columns: Vec<KeyColumn>,
    pub estimated_rows: u64,
    pub avg_row_length: u64,
    pub create_sql: String,
}

impl SourceTable {
    /// `SELECT <columns> FROM db.t` (no WHERE).
    pub fn select_prefix(&self) -> String {
        let list: Vec<&str> = self
            .columns
            .iter()
            .map(|c| c.select_expr.as_str())
            .collect();
        format!("SELECT {} FROM {}", list.join(", "), self.table.sql())
    }

    /// `ORDER BY` for the key, empty when the table has none.
    pub fn order_by(&self) -> String {
        if self.key_columns.is_empty() {
            return String::new();
        }
        let cols: Vec<String> = self.key_columns.iter().map(|k| ident(&k.name)).collect();
        format!(" ORDER BY {}", cols.join(", "))
    }
}

/// Reads a table's columns, key, statistics and `SHOW CREATE TABLE`.
pub fn describe(conn: &mut Conn, table: &TableRef) -> Result<SourceTable> {
    let ctx = || format!("reading the definition of {table}");
    let rows = column_rows(conn, &table.db, &table.table).with_context(ctx)?;
    if rows.is_empty() {
        bail!("table {table} has no columns visible to this user");
    }
    let columns = TableColumns::read(&rows);
    if columns.exported.is_empty() {
        bail!("table {table} has only generated columns: nothing to export");
    }
    let (key, key_columns) = choose_key(conn, table, &columns.facts).with_context(ctx)?;
    let (estimated_rows, avg_row_length) = table_statistics(conn, table).with_context(ctx)?;
    let create: Option<Row> = conn
        .query_first(format!("SHOW CREATE TABLE {}", table.sql()))
        .with_context(ctx)?;
    let create_sql = match create {
        Some(r) => text(&r, 1)?.unwrap_or_default(),
        None => bail!("SHOW CREATE TABLE {table} returned nothing"),
    };

    Ok(SourceTable {
        table: table.clone(),
        columns: columns.exported,
        generated_columns: columns.generated,
        key,
        key_columns,
        estimated_rows,
        avg_row_length,
        create_sql,
    })
}

/// What choosing the key needs to know of a column.
#[derive(Debug, Clone)]
struct ColumnFacts {
    nullable: bool,
    charset: Option<String>,
    kind: TypeKind,
}

/// A table's columns as information_schema.COLUMNS lists them.
struct TableColumns {
    /// The columns a dump holds, in table order.
    exported: Vec<SourceColumn>,
    generated: Vec<String>,
    /// Every column, generated or not, by name.
    facts: HashMap<String, ColumnFacts>,
}

impl TableColumns {
    /// From a table's [`column_rows`].
    fn read(rows: &[ColumnRow]) -> TableColumns {
        let mut columns = TableColumns {
            exported: Vec::new(),
            generated: Vec::new(),
            facts: HashMap::new(),
        };
        for row in rows {
            let data_type = row.data_type.to_ascii_lowercase();
            let kind = TypeKind::of(&data_type, row.charset.as_deref());
            let facts = ColumnFacts {
                nullable: row.nullable,
                charset: row.charset.clone(),
                kind,
            };
            columns.facts.insert(row.name.clone(), facts);
            // Generated columns are computed by the target from the other columns;
            // LOAD DATA could not write them anyway.
            if row.generated() {
                columns.generated.push(row.name.clone());
                continue;
            }
            let codec = kind.codec();
            columns.exported.push(SourceColumn {
                desc: ColumnDescription {
                    name: row.name.clone(),
                    column_type: row.column_type.clone(),
                    data_type,
                    nullable: row.nullable,
                    charset: row.charset.clone(),
                    collation: row.collation.clone(),
                    encoding: codec.encoding(),
                    invisible: row.invisible(),
                },
                codec,
                select_expr: select_expr(&row.name, codec),
            });
        }
        columns
    }
}

/// A row of `information_schema.COLUMNS`, as export and verify read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRow {
    pub name: String,
    /// `COLUMN_TYPE`, e.g. `bigint(20) unsigned` (MySQL 8 drops the width).
    pub column_type: String,
    /// `DATA_TYPE`, e.g. `bigint`.
    pub data_type: String,
    pub nullable: bool,
    pub charset: Option<String>,
    pub collation: Option<String>,
    /// `EXTRA` as the server spells it: `auto_increment`, `VIRTUAL GENERATED`,
    /// MySQL 8's `DEFAULT_GENERATED on update CURRENT_TIMESTAMP`, `INVISIBLE`…
    pub extra: String,
    /// `GENERATION_EXPRESSION`, empty for an ordinary column.
    pub generation_expression: String,
}

impl ColumnRow {
    /// Computed by the server from the other columns (see [`is_generated_column`]).
    pub fn generated(&self) -> bool {
        is_generated_column(&self.extra, &self.generation_expression)
    }

    /// Hidden from `SELECT *` (MySQL 8.0.23+, MariaDB 10.3+): `EXTRA` says
    /// `INVISIBLE`, beside other words.
    pub fn invisible(&self) -> bool {
        self.extra
            .split_whitespace()
            .any(|w| w.eq_ignore_ascii_case("INVISIBLE"))
    }

    /// MySQL 8.0.30+'s generated invisible primary key: with
    /// `sql_generate_invisible_primary_key=ON` the server adds
    /// `my_row_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT INVISIBLE` to a
    /// table created without a primary key, and numbers the rows itself
    /// (MySQL 8.0 reference manual, "Generated Invisible Primary Keys").
    pub fn generated_invisible_primary_key(&self) -> bool {
        let auto_increment = self
            .extra
            .split_whitespace()
            .any(|w| w.eq_ignore_ascii_case("auto_increment"));
        self.name == "my_row_id" && auto_increment && self.invisible()
    }
}

/// A table's columns in order, from `information_schema.COLUMNS` (none
/// when the table does not exist or the user sees none of it).
pub fn column_rows(conn: &mut Conn, db: &str, table: &str) -> Result<Vec<ColumnRow>> {
    let rows: Vec<Row> = conn.exec(
        "SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, \
                COLLATION_NAME, EXTRA, COALESCE(GENERATION_EXPRESSION, '') \
         FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        (db, table),
    )?;
    rows.iter()
        .map(|row| {
            let fields = (0..8).map(|i| text(row, i)).collect::<Result<Vec<_>>>()?;
            Ok(column_row(fields))
        })
        .collect()
}

/// A COLUMNS row from its fields as text, in [`column_rows`]' order.
fn column_row(mut fields: Vec<Option<String>>) -> ColumnRow {
    fields.resize(8, None);
    let mut take = |i: usize| fields[i].take();
    ColumnRow {
        name: take(0).unwrap_or_default(),
        column_type: take(1).unwrap_or_default(),
        data_type: take(2).unwrap_or_default(),
        nullable: take(3).as_deref() == Some("YES"),
        charset: take(4),
        collation: take(5),
        extra: take(6).unwrap_or_default(),
        generation_expression: take(7).unwrap_or_default(),
    }
}

/// The server's estimates of a table's rows and average row length (0 when
/// it has none).
fn table_statistics(conn: &mut Conn, table: &TableRef) -> Result<(u64, u64)> {
    let stats: Option<Row> = conn.exec_first(
        "SELECT COALESCE(TABLE_ROWS, 0), COALESCE(AVG_ROW_LENGTH, 0) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        (&table.db, &table.table),
    )?;
    Ok(match &stats {
        Some(r) => (
            text(r, 0)?.and_then(|s| s.parse().ok()).unwrap_or(0),
            text(r, 1)?.and_then(|s| s.parse().ok()).unwrap_or(0),
        ),
        None => (0, 0),
    })
}

/// Whether a column is generated (computed from the other columns, so
/// neither exported nor loaded), from `information_schema.COLUMNS`' `EXTRA`
/// and `GENERATION_EXPRESSION`: the one place export and load decide it.
///
/// `EXTRA` says `VIRTUAL GENERATED` or `STORED GENERATED` on MySQL 8 and
/// MariaDB (`PERSISTENT GENERATED` on older MariaDB), perhaps with more words
/// (`INVISIBLE`). Since MySQL 8.0.13 it also says `DEFAULT_GENERATED` for
/// every column with an expression default (`DEFAULT CURRENT_TIMESTAMP`,
/// `DEFAULT (UUID())`): an ordinary column whose value must be copied, not
/// recomputed — matching "GENERATED" anywhere in `EXTRA` dropped those
/// columns silently on MySQL. `GENERATION_EXPRESSION` is non-empty only for
/// generated columns (MySQL 8 reference manual, "The INFORMATION_SCHEMA
/// COLUMNS Table"); it decides when `EXTRA` names no kind.
pub fn is_generated_column(extra: &str, generation_expression: &str) -> bool {
    let extra = extra.to_ascii_uppercase();
    let words: Vec<&str> = extra.split_whitespace().collect();
    let generated_kind = words
        .windows(2)
        .any(|w| w[1] == "GENERATED" && matches!(w[0], "VIRTUAL" | "STORED" | "PERSISTENT"));
    if generated_kind {
        return true;
    }
    if words.contains(&"DEFAULT_GENERATED") {
        return false;
    }
    !generation_expression.trim().is_empty()
}

/// The expression a SELECT reads a column with to get its dump form: FLOAT
/// as `col + 0e0`, because the server prints a FLOAT with 6 significant
/// digits and the DOUBLE it widens to has them all; every other column as it is.
pub fn select_expr(name: &str, codec: Codec) -> String {
    match codec {
        Codec::Float32 => format!("({} + 0e0)", ident(name)),
        Codec::Hex | Codec::Text => ident(name),
    }
}

/// The codec and SELECT expression that give a dumped column's values as
/// the dump holds them (`verify` reads a target with them).
pub fn dumped_column_reader(c: &ColumnDescription) -> (Codec, String) {
    let codec = match c.encoding {
        Encoding::Hex => Codec::Hex,
        Encoding::Text => match TypeKind::of(&c.data_type, c.charset.as_deref()).codec() {
            Codec::Hex => Codec::Text,
            codec => codec,
        },
    };
    (codec, select_expr(&c.name, codec))
}

/// Types whose values are bytes, not text: written as hex in a dump, and
/// only a binary column on the target can take them.
pub fn is_binary_type(data_type: &str) -> bool {
    matches!(
        TypeKind::of(data_type, None),
        TypeKind::Binary | TypeKind::Bit
    )
}

/// BINARY, VARBINARY and the BLOBs: the columns that take any bytes as
/// they are (BIT and spatial columns do not).
pub fn is_byte_string(data_type: &str) -> bool {
    matches!(
        data_type,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
    )
}

/// The broad family of a column type, as far as reading and writing it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeKind {
    Integer,
    Decimal,
    Float,
    Double,
    Bit,
    EnumOrSet,
    Text,
    Binary,
    Temporal,
    Other,
}

impl TypeKind {
    /// How values of this family are written in a dump.
    fn codec(self) -> Codec {
        match self {
            TypeKind::Binary | TypeKind::Bit => Codec::Hex,
            TypeKind::Float => Codec::Float32,
            _ => Codec::Text,
        }
    }

    fn of(data_type: &str, charset: Option<&str>) -> TypeKind {
        match data_type {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => {
                TypeKind::Integer
            }
            "decimal" | "numeric" => TypeKind::Decimal,
            "float" => TypeKind::Float,
            "double" | "real" | "double precision" => TypeKind::Double,
            "bit" => TypeKind::Bit,
            "enum" | "set" => TypeKind::EnumOrSet,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
            | "geometry" | "point" | "linestring" | "polygon" | "multipoint"
            | "multilinestring" | "multipolygon" | "geometrycollection" | "geomcollection"
            | "vector" => TypeKind::Binary,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                if charset == Some("binary") {
                    TypeKind::Binary
                } else {
                    TypeKind::Text
                }
            }
            "date" | "datetime" | "timestamp" | "time" => TypeKind::Temporal,
            // json, uuid, inet4, inet6 and whatever comes next: the server's
            // text form is what they are written and read back as.
            _ => TypeKind::Other,
        }
    }
}

/// An index as information_schema.STATISTICS lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Index {
    name: String,
    unique: bool,
    columns: Vec<String>,
    /// Some column is indexed by a prefix only (`SUB_PART`).
    has_prefix: bool,
    /// Some key part is an expression, not a column (MySQL 8.0.13+'s
    /// functional key parts, `INDEX ((a + b))`): a chunk range cannot be
    /// written on it.
    functional: bool,
}

/// The primary key, else the smallest unique index on NOT NULL columns, else
/// none.
fn choose_key(
    conn: &mut Conn,
    table: &TableRef,
    facts: &HashMap<String, ColumnFacts>,
) -> Result<(KeyDescription, Vec<KeyColumn>)> {
    let indexes = read_indexes(conn, table)?;
    let Some(index) = pick_key_index(&indexes, facts) else {
        return Ok((
            KeyDescription {
                kind: KeyKind::None,
                index: None,
                columns: Vec::new(),
            },
            Vec::new(),
        ));
    };
    let key_columns = index
        .columns
        .iter()
        .map(|name| key_column(name, facts.get(name)))
        .collect();
    Ok((
        KeyDescription {
            kind: if index.name == "PRIMARY" {
                KeyKind::Primary
            } else {
                KeyKind::Unique
            },
            index: Some(index.name.clone()),
            columns: index.columns.clone(),
        },
        key_columns,
    ))
}

/// A table's indexes, sorted by name, each with its columns in order.
fn read_indexes(conn: &mut Conn, table: &TableRef) -> Result<Vec<Index>> {
    let rows: Vec<Row> = conn.exec(
        "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, COALESCE(SUB_PART, 0) \
         FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        (&table.db, &table.table),
    )?;
    let rows = rows
        .iter()
        .map(|row| (0..4).map(|i| text(row, i)).collect::<Result<Vec<_>>>())
        .collect::<Result<Vec<_>>>()?;
    Ok(indexes_of(&rows))
}

/// The indexes in STATISTICS rows (`INDEX_NAME`, `NON_UNIQUE`,
/// `COLUMN_NAME`, `SUB_PART` as text, in index and key part order).
///
/// MySQL 8.0.13+ lists a functional key part with `COLUMN_NAME` NULL (its
/// expression is in the `EXPRESSION` column, which MariaDB lacks, so it is
/// not read): such an index is marked functional, never a chunking key.
fn indexes_of(rows: &[Vec<Option<String>>]) -> Vec<Index> {
    let field = |row: &Vec<Option<String>>, i: usize| row.get(i).cloned().flatten();
    let mut indexes: Vec<Index> = Vec::new();
    for row in rows {
        let name = field(row, 0).unwrap_or_default();
        let unique = field(row, 1).as_deref() == Some("0");
        let column = field(row, 2);
        let functional = column.is_none();
        let column = column.unwrap_or_default();
        let prefix = field(row, 3).as_deref().unwrap_or("0") != "0";
        match indexes.last_mut() {
            Some(last) if last.name == name => {
                last.columns.push(column);
                last.has_prefix |= prefix;
                last.functional |= functional;
            }
            _ => indexes.push(Index {
                name,
                unique,
                columns: vec![column],
                has_prefix: prefix,
                functional,
            }),
        }
    }
    indexes
}

/// The index the chunks follow: the primary key, else the unique index with
/// the fewest columns (then the first by name) that has no prefix part and
/// only NOT NULL columns, so that its values name every row once.
fn pick_key_index<'a>(
    indexes: &'a [Index],
    facts: &HashMap<String, ColumnFacts>,
) -> Option<&'a Index> {
    let not_null = |c: &String| facts.get(c).is_some_and(|f| !f.nullable);
    // MySQL refuses functional key parts in a primary key; checked anyway,
    // as a chunk range on an expression would read the wrong rows.
    let primary = indexes
        .iter()
        .find(|i| i.name == "PRIMARY" && !i.functional);
    primary.or_else(|| {
        indexes
            .iter()
            .filter(|i| {
                i.unique && !i.has_prefix && !i.functional && i.columns.iter().all(not_null)
            })
            .min_by_key(|i| (i.columns.len(), i.name.clone()))
    })
}

/// How the planner reads a key column and writes its value as a bound.
fn key_column(name: &str, facts: Option<&ColumnFacts>) -> KeyColumn {
    let kind = facts.map_or(TypeKind::Other, |f| f.kind);
    let id = ident(name);
    let (select_expr, literal) = match kind {
        TypeKind::Integer | TypeKind::Decimal => (id, KeyLiteral::Number),
        TypeKind::Float | TypeKind::Double => (format!("({id} + 0e0)"), KeyLiteral::Number),
        TypeKind::Bit | TypeKind::EnumOrSet => (format!("({id} + 0)"), KeyLiteral::Index),
        TypeKind::Temporal => (id, KeyLiteral::Quoted),
        TypeKind::Text => (
            format!("HEX({id})"),
            KeyLiteral::Hex(facts.and_then(|f| f.charset.clone())),
        ),
        TypeKind::Binary | TypeKind::Other => (format!("HEX({id})"), KeyLiteral::Hex(None)),
    };
    KeyColumn {
        name: name.to_string(),
        select_expr,
        literal,
    }
}

/// Column `i` of an information_schema row as text.
pub fn text(row: &Row, i: usize) -> Result<Option<String>> {
    match row.as_ref(i) {
        None => bail!("the server returned fewer columns than asked for"),
        Some(mysql::Value::NULL) => Ok(None),
        Some(mysql::Value::Bytes(b)) => Ok(Some(String::from_utf8_lossy(b).into_owned())),
        Some(other) => Ok(Some(other.as_sql(true).trim_matches('\'').to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `EXTRA` and `GENERATION_EXPRESSION` as MySQL 8 and MariaDB 10.11
    /// report them (MySQL's from its reference manual and SHOW COLUMNS
    /// output; MariaDB's read here).
    #[test]
    fn generated_columns_are_told_from_expression_defaults() {
        for (extra, expression, generated) in [
            // MySQL 8.0.13+: expression defaults are ordinary columns.
            ("DEFAULT_GENERATED", "", false),
            ("DEFAULT_GENERATED on update CURRENT_TIMESTAMP", "", false),
            ("DEFAULT_GENERATED INVISIBLE", "", false),
            ("VIRTUAL GENERATED", "(`a` * 2)", true),
            ("STORED GENERATED", "concat(`a`,'x')", true),
            ("VIRTUAL GENERATED INVISIBLE", "(`a` + 1)", true),
            ("auto_increment", "", false),
            ("", "", false),
            // MariaDB: lower case from SHOW, upper from information_schema.
            ("VIRTUAL GENERATED", "`v` * 2", true),
            ("PERSISTENT GENERATED", "concat('s',`v`)", true),
            ("stored generated", "`v`", true),
            ("on update current_timestamp()", "", false),
            ("INVISIBLE", "", false),
            // No kind named, yet an expression: generated.
            ("", "`a` + 1", true),
        ] {
            assert_eq!(
                is_generated_column(extra, expression),
                generated,
                "EXTRA {extra:?}, GENERATION_EXPRESSION {expression:?}"
            );
        }
    }

    fn columns_row(fields: [Option<&str>; 8]) -> ColumnRow {
        column_row(fields.iter().map(|f| f.map(String::from)).collect())
    }

    /// `information_schema.COLUMNS` of a MySQL 8.0.30+ table, as its manual
    /// documents the columns (`EXTRA`, `GENERATION_EXPRESSION` empty for
    /// ordinary columns) for
    /// `CREATE TABLE t (created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    /// updated DATETIME DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
    /// a INT, v INT AS (a * 2), s VARCHAR(20) AS (CONCAT(a, 'x')) STORED)`
    /// created with `sql_generate_invisible_primary_key=ON`.
    fn mysql8_rows() -> Vec<ColumnRow> {
        vec![
            columns_row([
                Some("my_row_id"),
                Some("bigint unsigned"),
                Some("bigint"),
                Some("NO"),
                None,
                None,
                Some("auto_increment INVISIBLE"),
                Some(""),
            ]),
            columns_row([
                Some("created"),
                Some("timestamp"),
                Some("timestamp"),
                Some("NO"),
                None,
                None,
                Some("DEFAULT_GENERATED"),
                Some(""),
            ]),
            columns_row([
                Some("updated"),
                Some("datetime"),
                Some("datetime"),
                Some("YES"),
                None,
                None,
                Some("DEFAULT_GENERATED on update CURRENT_TIMESTAMP"),
                Some(""),
            ]),
            columns_row([
                Some("a"),
                Some("int"),
                Some("int"),
                Some("YES"),
                None,
                None,
                Some(""),
                Some(""),
            ]),
            columns_row([
                Some("v"),
                Some("int"),
                Some("int"),
                Some("YES"),
                None,
                None,
                Some("VIRTUAL GENERATED"),
                Some("(`a` * 2)"),
            ]),
            columns_row([
                Some("s"),
                Some("varchar(20)"),
                Some("varchar"),
                Some("YES"),
                Some("utf8mb4"),
                Some("utf8mb4_0900_ai_ci"),
                Some("STORED GENERATED"),
                Some("concat(`a`,_utf8mb4\\'x\\')"),
            ]),
        ]
    }

    #[test]
    fn mysql8_expression_defaults_are_exported_and_generated_columns_left_out() {
        let columns = TableColumns::read(&mysql8_rows());
        let exported: Vec<(&str, bool)> = columns
            .exported
            .iter()
            .map(|c| (c.desc.name.as_str(), c.desc.invisible))
            .collect();
        assert_eq!(
            exported,
            [
                ("my_row_id", true),
                ("created", false),
                ("updated", false),
                ("a", false)
            ]
        );
        assert_eq!(columns.generated, ["v", "s"]);
        // The key chooser knows every column, generated or not.
        assert_eq!(columns.facts.len(), 6);
        assert!(!columns.facts["created"].nullable);
    }

    #[test]
    fn mysql8_column_rows_say_what_verify_needs() {
        let rows = mysql8_rows();
        let judged: Vec<(&str, bool, bool, bool)> = rows
            .iter()
            .map(|r| {
                (
                    r.name.as_str(),
                    r.generated(),
                    r.invisible(),
                    r.generated_invisible_primary_key(),
                )
            })
            .collect();
        assert_eq!(
            judged,
            [
                ("my_row_id", false, true, true),
                ("created", false, false, false),
                ("updated", false, false, false),
                ("a", false, false, false),
                ("v", true, false, false),
                ("s", true, false, false),
            ]
        );
        // An invisible AUTO_INCREMENT column of another name is the user's own.
        let mut own = rows[0].clone();
        own.name = "seq".into();
        assert!(!own.generated_invisible_primary_key());
        // NULLs where a server has nothing to say do not upset the reader.
        let sparse = columns_row([Some("x"), None, None, None, None, None, None, None]);
        assert!(!sparse.generated() && !sparse.nullable && sparse.charset.is_none());
    }

    fn stat(
        index: &str,
        non_unique: &str,
        column: Option<&str>,
        sub_part: Option<&str>,
    ) -> Vec<Option<String>> {
        vec![
            Some(index.into()),
            Some(non_unique.into()),
            column.map(String::from),
            sub_part.map(String::from),
        ]
    }

    /// `information_schema.STATISTICS` on MySQL 8.0.13+ and 8.4 (reference
    /// manual, "The INFORMATION_SCHEMA STATISTICS Table": `COLUMN_NAME` is
    /// NULL for a functional key part, whose expression is in `EXPRESSION`)
    /// for `CREATE TABLE t (id INT NOT NULL, email VARCHAR(100) NOT NULL,
    /// a INT NOT NULL, b INT NOT NULL, UNIQUE KEY u_email ((LOWER(email))),
    /// UNIQUE KEY u_mix (a, (b * 2)), UNIQUE KEY u_ab (a, b), KEY k_f ((a + b)))`,
    /// sorted as `read_indexes` asks.
    fn mysql8_statistics() -> Vec<Vec<Option<String>>> {
        vec![
            stat("k_f", "1", None, None),
            stat("u_ab", "0", Some("a"), None),
            stat("u_ab", "0", Some("b"), None),
            stat("u_email", "0", None, None),
            stat("u_mix", "0", Some("a"), None),
            stat("u_mix", "0", None, None),
        ]
    }

    #[test]
    fn functional_key_parts_never_make_the_chunking_key() {
        let indexes = indexes_of(&mysql8_statistics());
        let functional: Vec<(&str, bool)> = indexes
            .iter()
            .map(|i| (i.name.as_str(), i.functional))
            .collect();
        assert_eq!(
            functional,
            [
                ("k_f", true),
                ("u_ab", false),
                ("u_email", true),
                ("u_mix", true)
            ]
        );
        let facts = facts(&[("id", false), ("email", false), ("a", false), ("b", false)]);
        // u_email has one part and u_mix two, like u_ab: neither may win.
        assert_eq!(
            pick_key_index(&indexes, &facts).map(|i| &i.name[..]),
            Some("u_ab")
        );
        // With only functional unique indexes, the table has no key.
        let only_functional: Vec<Index> =
            indexes.into_iter().filter(|i| i.name != "u_ab").collect();
        assert_eq!(pick_key_index(&only_functional, &facts), None);
    }

    #[test]
    fn statistics_rows_with_prefixes_and_short_rows_are_read() {
        let rows = vec![
            stat("PRIMARY", "0", Some("id"), None),
            stat("u_name", "0", Some("name"), Some("10")),
            vec![Some("odd".into())],
        ];
        let indexes = indexes_of(&rows);
        assert_eq!(indexes.len(), 3);
        assert!(!indexes[0].has_prefix && indexes[0].unique);
        assert!(indexes[1].has_prefix);
        // A row missing its fields: a functional, non-unique index, never a key.
        assert!(indexes[2].functional && !indexes[2].unique);
    }

    fn one(db: &str, table: &str) -> TablePattern {
        TablePattern::One(TableRef {
            db: db.into(),
            table: table.into(),
        })
    }

    #[test]
    fn table_patterns() {
        assert_eq!(
            TablePattern::parse("shop.orders").unwrap(),
            one("shop", "orders")
        );
        assert_eq!(
            TablePattern::parse("shop.*").unwrap(),
            TablePattern::AllIn("shop".into())
        );
        assert_eq!(
            TablePattern::parse("`my.db`.`a``b`").unwrap(),
            one("my.db", "a`b")
        );
        assert_eq!(
            TablePattern::parse("shop.or.ders").unwrap(),
            one("shop", "or.ders")
        );
        assert!(TablePattern::parse("orders").is_err());
        assert!(TablePattern::parse(".x").is_err());
        assert!(TablePattern::parse("`unterminated.x").is_err());
    }

    fn index(name: &str, unique: bool, columns: &[&str]) -> Index {
        Index {
            name: name.into(),
            unique,
            columns: columns.iter().map(|c| c.to_string()).collect(),
            has_prefix: false,
            functional: false,
        }
    }

    fn facts(columns: &[(&str, bool)]) -> HashMap<String, ColumnFacts> {
        columns
            .iter()
            .map(|&(name, nullable)| {
                let facts = ColumnFacts {
                    nullable,
                    charset: None,
                    kind: TypeKind::Integer,
                };
                (name.to_string(), facts)
            })
            .collect()
    }

    #[test]
    fn the_key_is_the_primary_key_else_the_smallest_unique_not_null_index() {
        let facts = facts(&[("a", false), ("b", false), ("c", true), ("d", false)]);
        let primary = index("PRIMARY", true, &["a", "b"]);
        let small = index("u_d", true, &["d"]);
        let indexes = vec![primary.clone(), small.clone()];
        assert_eq!(pick_key_index(&indexes, &facts), Some(&primary));
        let indexes = vec![
            index("by_a", false, &["a"]),
            index("u_ab", true, &["a", "b"]),
            index("u_c", true, &["c"]),
            small.clone(),
        ];
        assert_eq!(pick_key_index(&indexes, &facts), Some(&small));
        // Same size: the first by name.
        let indexes = vec![index("z", true, &["b"]), index("y", true, &["a"])];
        assert_eq!(
            pick_key_index(&indexes, &facts).map(|i| &i.name[..]),
            Some("y")
        );
    }

    #[test]
    fn nullable_prefix_or_unknown_columns_cannot_be_the_key() {
        let facts = facts(&[("a", false), ("c", true)]);
        let mut prefix = index("u_a", true, &["a"]);
        prefix.has_prefix = true;
        let indexes = vec![
            prefix,
            index("u_c", true, &["c"]),
            index("u_x", true, &["x"]),
            index("by_a", false, &["a"]),
        ];
        assert_eq!(pick_key_index(&indexes, &facts), None);
    }

    #[test]
    fn key_columns_are_read_as_their_bounds_need() {
        let column = |kind, charset: Option<&str>| ColumnFacts {
            nullable: false,
            charset: charset.map(String::from),
            kind,
        };
        let read = |kind, charset| {
            let k = key_column("k", Some(&column(kind, charset)));
            (k.select_expr, k.literal)
        };
        assert_eq!(
            read(TypeKind::Integer, None),
            ("`k`".into(), KeyLiteral::Number)
        );
        assert_eq!(
            read(TypeKind::Double, None),
            ("(`k` + 0e0)".into(), KeyLiteral::Number)
        );
        // An ENUM sorts by its index, not its text.
        assert_eq!(
            read(TypeKind::EnumOrSet, None),
            ("(`k` + 0)".into(), KeyLiteral::Index)
        );
        assert_eq!(
            read(TypeKind::Temporal, None),
            ("`k`".into(), KeyLiteral::Quoted)
        );
        assert_eq!(
            read(TypeKind::Text, Some("latin1")),
            ("HEX(`k`)".into(), KeyLiteral::Hex(Some("latin1".into())))
        );
        assert_eq!(
            read(TypeKind::Binary, Some("binary")),
            ("HEX(`k`)".into(), KeyLiteral::Hex(None))
        );
        assert_eq!(key_column("k", None).literal, KeyLiteral::Hex(None));
    }
}
