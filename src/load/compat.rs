//! Cross-vendor schemas: a dump's `database.sql`/`schema.sql` (the source's
//! `SHOW CREATE` text) read against what the target server has, before the
//! load creates anything. One decision, [`adapt`], for `load` and `check`:
//! it finds every collation, character set, engine and vendor-only piece of
//! syntax the target lacks or reads differently, maps what has a faithful
//! equivalent, refuses the rest by name, and returns the SQL to execute
//! (the only place schema SQL is rewritten).
//!
//! What the servers do that shapes this (MySQL: reference manual 8.0/8.4;
//! MariaDB: checked on 10.11.19):
//! - Executable comments `/*!NNNNN … */` run on a server whose version is at
//!   least NNNNN, but MariaDB skips every one numbered 50700–99999 as MySQL's
//!   own (tried on 10.11: `/*!50699 +1 */` runs, `/*!50700`, `/*!80023`,
//!   `/*!99999` do not). So MySQL 8's `/*!80023 INVISIBLE */`, `/*!80016 NOT
//!   ENFORCED */` and `/*!80003 SRID 4326 */` are silently dropped by MariaDB.
//!   `/*M!NNNNNN … */` is MariaDB's alone; MySQL reads it as a comment.
//! - MySQL 8's `_0900_` collations (UCA 9.0.0, NO PAD) do not exist in MariaDB
//!   10.11 (1273 Unknown collation); MariaDB 10.10+ has UCA 14.0.0 ones,
//!   `utf8mb4_uca1400[_LANG]_nopad_{ai_ci,as_ci,as_cs}`, the same weights for
//!   every character UCA 9 knew and the same NO PAD comparison (so `'a'` and
//!   `'a '` stay distinct in a unique key, as on the source).
//! - MySQL has no `UUID`/`INET4`/`INET6` types, no system versioning, no
//!   `COMPRESSED` columns, no `IGNORED` indexes, no Aria table options, and
//!   allows a DEFAULT on TEXT/BLOB/JSON/GEOMETRY only as an expression in
//!   parentheses (8.0.13+; manual "Data Type Default Values"); MariaDB's
//!   `SHOW CREATE TABLE` writes `DEFAULT 'x'` there.
//! - MariaDB has no functional key parts (`KEY k ((a + 1))`: 1064).

use std::collections::BTreeSet;

use anyhow::{bail, Result};

/// Which server family the target is, from `VERSION()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    MySql,
}

impl Flavor {
    /// MariaDB says so in its version (`10.11.19-MariaDB-0+deb12u1`); MySQL
    /// and Percona do not (`8.0.36`, `8.4.3-3`).
    pub fn of_version(version: &str) -> Flavor {
        if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        }
    }

    fn name(self) -> &'static str {
        match self {
            Flavor::MariaDb => "MariaDB",
            Flavor::MySql => "MySQL",
        }
    }
}

/// What the target has, from its `information_schema` (names in lower case).
#[derive(Debug, Clone)]
pub struct TargetCatalog {
    pub flavor: Flavor,
    pub collations: BTreeSet<String>,
    pub charsets: BTreeSet<String>,
    /// Engines with SUPPORT YES or DEFAULT.
    pub engines: BTreeSet<String>,
}

impl TargetCatalog {
    /// `utf8_…` is an alias of `utf8mb3_…` on both servers (MariaDB 10.6+
    /// and MySQL 8 list only the `utf8mb3` names).
    fn has_collation(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.collations.contains(&name)
            || name
                .strip_prefix("utf8_")
                .is_some_and(|rest| self.collations.contains(&format!("utf8mb3_{rest}")))
    }

    fn has_charset(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.charsets.contains(&name) || (name == "utf8" && self.charsets.contains("utf8mb3"))
    }
}

/// `--collation-map FROM=TO`, in the order given: the user's word over the
/// table below, for any collation named FROM.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollationMap(pub Vec<(String, String)>);

impl CollationMap {
    /// One `FROM=TO` argument.
    pub fn parse_arg(arg: &str) -> Result<(String, String)> {
        let ok =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match arg.split_once('=') {
            Some((from, to)) if ok(from.trim()) && ok(to.trim()) => {
                Ok((from.trim().to_ascii_lowercase(), to.trim().to_ascii_lowercase()))
            }
            _ => bail!(
                "--collation-map {arg:?}: expected FROM=TO, two collation names (letters, digits, _), e.g. utf8mb4_0900_ai_ci=utf8mb4_uca1400_nopad_ai_ci"
            ),
        }
    }

    fn get(&self, from: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f.eq_ignore_ascii_case(from))
            .map(|(_, t)| t.as_str())
    }
}

/// MySQL 8's language codes in `_0900_` collation names and MariaDB's names
/// for the same tailorings in its `uca1400` collations. Languages MariaDB
/// 10.11 has no tailoring for (ja, zh, ru, nb, nn, mn_cyrl, bs, bg, gl,
/// sr_latn) are not here: their names are refused, since the root order
/// would sort and compare them differently.
const LANGUAGES: &[(&str, &str)] = &[
    ("cs", "czech"),
    ("da", "danish"),
    ("de_pb", "german2"),
    ("eo", "esperanto"),
    ("es", "spanish"),
    ("es_trad", "spanish2"),
    ("et", "estonian"),
    ("hr", "croatian"),
    ("hu", "hungarian"),
    ("is", "icelandic"),
    ("la", "roman"),
    ("lt", "lithuanian"),
    ("lv", "latvian"),
    ("pl", "polish"),
    ("ro", "romanian"),
    ("sk", "slovak"),
    ("sl", "slovenian"),
    ("sv", "swedish"),
    ("tr", "turkish"),
    ("vi", "vietnamese"),
];

/// The documented mapping: the candidates for a collation the target lacks,
/// best first; the first one `has` is taken. Only mappings that compare
/// strings alike (accent and case sensitivity, NO PAD) are listed, so that a
/// unique key accepts exactly the rows it accepted on the source:
///
/// | MySQL 8                        | MariaDB                                   |
/// |--------------------------------|-------------------------------------------|
/// | utf8mb4_0900_ai_ci             | utf8mb4_uca1400_nopad_ai_ci, else utf8mb4_unicode_520_nopad_ci |
/// | utf8mb4_0900_as_ci / _as_cs    | utf8mb4_uca1400_nopad_as_ci / _as_cs      |
/// | utf8mb4_0900_bin               | utf8mb4_nopad_bin (code point order, NO PAD) |
/// | utf8mb4_LANG_0900_ai_ci/as_cs… | utf8mb4_uca1400_LANGUAGE_nopad_ai_ci/as_cs… (`LANGUAGES`) |
pub fn closest_collation(name: &str, has: impl Fn(&str) -> bool) -> Option<String> {
    let name = name.to_ascii_lowercase();
    let rest = name.strip_prefix("utf8mb4_")?;
    let candidates: Vec<String> = if rest == "0900_bin" {
        vec!["utf8mb4_nopad_bin".into()]
    } else if let Some(strength) = rest.strip_prefix("0900_") {
        let mut c = vec![format!("utf8mb4_uca1400_nopad_{strength}")];
        if strength == "ai_ci" {
            c.push("utf8mb4_unicode_520_nopad_ci".into());
        }
        c
    } else {
        let (lang, strength) = rest.split_once("_0900_")?;
        let (_, language) = LANGUAGES.iter().find(|(code, _)| *code == lang)?;
        vec![format!("utf8mb4_uca1400_{language}_nopad_{strength}")]
    };
    candidates.into_iter().find(|c| has(c))
}

/// The dump's SQL for one table the load would create.
#[derive(Debug, Clone)]
pub struct SchemaSource<'a> {
    /// The table, as messages name it.
    pub table: &'a str,
    /// `schema.sql`'s path, as messages name it.
    pub schema_file: &'a str,
    pub schema_sql: &'a str,
    /// `database.sql`, when the load would create the database too.
    pub database: Option<(&'a str, &'a str)>,
}

/// What [`adapt`] decided for one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Adapted {
    /// The SQL to execute instead of the dump's.
    pub schema_sql: String,
    pub database_sql: Option<String>,
    /// Each refuses the load.
    pub problems: Vec<String>,
    /// Said, and the load goes on.
    pub warnings: Vec<String>,
    /// Each rewrite applied, to be printed.
    pub mappings: Vec<String>,
    /// No PRIMARY KEY: `sql_require_primary_key` and
    /// `sql_generate_invisible_primary_key` matter.
    pub keyless: bool,
}

/// Reads the table's (and its database's) SQL against the target: see the
/// module's comment.
pub fn adapt(src: &SchemaSource, target: &TargetCatalog, map: &CollationMap) -> Adapted {
    let mut out = Adapted::default();
    let file = File {
        path: src.schema_file,
        table: src.table,
        sql: src.schema_sql,
    };
    out.schema_sql = file.adapt(target, map, &mut out);
    out.keyless = !has_primary_key(&lex(src.schema_sql), target.flavor);
    if let Some((path, sql)) = src.database {
        let db_file = File {
            path,
            table: src.table,
            sql,
        };
        out.database_sql = Some(db_file.adapt(target, map, &mut out));
    }
    out
}

/// One SQL file of the dump.
struct File<'a> {
    path: &'a str,
    table: &'a str,
    sql: &'a str,
}

impl File<'_> {
    /// The file's SQL with the mappings applied; problems, warnings and
    /// mappings added to `out`.
    fn adapt(&self, target: &TargetCatalog, map: &CollationMap, out: &mut Adapted) -> String {
        let tokens = lex(self.sql);
        let mut edits: Vec<(usize, usize, String)> = Vec::new();
        self.names(&tokens, target, map, out, &mut edits);
        match target.flavor {
            Flavor::MariaDb => self.mysql_only(&tokens, out, &mut edits),
            Flavor::MySql => self.mariadb_only(&tokens, out),
        }
        self.engines(&tokens, target, out);
        edits.sort_by_key(|e| e.0);
        let mut sql = String::with_capacity(self.sql.len());
        let mut at = 0;
        for (start, end, text) in edits {
            if start < at {
                continue;
            }
            sql.push_str(&self.sql[at..start]);
            sql.push_str(&text);
            at = end;
        }
        sql.push_str(&self.sql[at..]);
        sql
    }

    /// Where in the file: `table t (schema.sql, column `c`)`.
    fn at(&self, offset: usize) -> String {
        let part = definition_at(self.sql, offset);
        if part.is_empty() {
            format!("{} ({})", self.table, self.path)
        } else {
            format!("{} ({}, {part})", self.table, self.path)
        }
    }

    /// Collations and character sets the target lacks: mapped or refused.
    fn names(
        &self,
        tokens: &[Token],
        target: &TargetCatalog,
        map: &CollationMap,
        out: &mut Adapted,
        edits: &mut Vec<(usize, usize, String)>,
    ) {
        for (kind, token) in named_collations(tokens, target.flavor) {
            let name = token.text.to_ascii_lowercase();
            let exists = match kind {
                Named::Charset => target.has_charset(&name),
                Named::Collation => target.has_collation(&name),
            };
            if kind == Named::Charset {
                if !exists {
                    push_once(
                        &mut out.problems,
                        format!(
                            "{}: character set {name} does not exist on the target ({}): create the table yourself with one it has",
                            self.at(token.start),
                            target.flavor.name()
                        ),
                    );
                }
                continue;
            }
            let (to, why) = match map.get(&name) {
                Some(to) => (Some(to.to_string()), "--collation-map"),
                None if exists => continue,
                None => (
                    closest_collation(&name, |c| target.has_collation(c)),
                    "closest equivalent",
                ),
            };
            match to {
                Some(to) if target.has_collation(&to) => {
                    push_once(
                        &mut out.mappings,
                        format!("collation {name} -> {to} ({why}) in {}", self.table),
                    );
                    edits.push((token.start, token.end, to));
                }
                Some(to) => push_once(
                    &mut out.problems,
                    format!(
                        "{}: --collation-map {name}={to} names a collation the target does not have",
                        self.at(token.start)
                    ),
                ),
                None => push_once(
                    &mut out.problems,
                    format!(
                        "{}: collation {name} does not exist on the target ({}) and has no equivalent there: pass --collation-map {name}=<one of the target's collations>",
                        self.at(token.start),
                        target.flavor.name()
                    ),
                ),
            }
        }
    }

    /// MySQL 8 syntax a MariaDB target skips or refuses.
    fn mysql_only(
        &self,
        tokens: &[Token],
        out: &mut Adapted,
        edits: &mut Vec<(usize, usize, String)>,
    ) {
        for comment in skipped_comments(tokens, Flavor::MariaDb) {
            let words = comment.words.join(" ").to_ascii_uppercase();
            let line = definition_at(self.sql, comment.start);
            let on_column = line.starts_with("column");
            let text = &self.sql[comment.start..comment.end];
            if words == "INVISIBLE" && on_column {
                // MariaDB has invisible columns (10.3.3+), with the same
                // meaning: left out of SELECT * and INSERT without a list.
                edits.push((comment.start, comment.end, "INVISIBLE".into()));
                out.mappings.push(format!(
                    "{}: {text} -> INVISIBLE (MariaDB's own syntax)",
                    self.at(comment.start)
                ));
            } else if words == "INVISIBLE" {
                out.warnings.push(format!(
                    "{}: MariaDB ignores {text}: the index becomes visible to the optimizer (query plans may change)",
                    self.at(comment.start)
                ));
            } else if words.contains("NOT ENFORCED") {
                // Refused rather than warned: the source never checked it,
                // so rows may break it, and MariaDB would reject them in the
                // middle of the load.
                out.problems.push(format!(
                    "{}: MariaDB ignores {text}, so the CHECK constraint would be enforced and may reject rows the source holds: create the table on the target yourself (without the constraint, or with it if the data satisfies it), then load",
                    self.at(comment.start)
                ));
            } else if words.starts_with("SRID") {
                out.warnings.push(format!(
                    "{}: MariaDB ignores {text}: the column accepts geometries of any SRID",
                    self.at(comment.start)
                ));
            } else if !storage_only(&words) {
                out.warnings.push(format!(
                    "{}: MariaDB ignores the MySQL-only {text}",
                    self.at(comment.start)
                ));
            }
        }
        for (i, t) in tokens.iter().enumerate() {
            // KEY `k` ((expr)): a functional key part, MySQL 8.0.13+.
            if t.is_punct('(')
                && tokens.get(i + 1).is_some_and(|n| n.is_punct('('))
                && executed(t.comment, Flavor::MariaDb)
                && definition_at(self.sql, t.start).starts_with("index")
                && i > 0
                && tokens[i - 1].kind == Kind::Ident
            {
                out.problems.push(format!(
                    "{}: a functional key part, which MariaDB does not have: create the table on the target yourself (an index on a virtual column does the same), then load",
                    self.at(t.start)
                ));
            }
        }
    }

    /// MariaDB syntax a MySQL target refuses.
    fn mariadb_only(&self, tokens: &[Token], out: &mut Adapted) {
        let executed: Vec<&Token> = tokens
            .iter()
            .filter(|t| executed(t.comment, Flavor::MySql))
            .collect();
        let mut refuse = |offset: usize, what: String| {
            push_once(
                &mut out.problems,
                format!("{}: {what}, which MySQL does not have", self.at(offset)),
            );
        };
        for (i, t) in executed.iter().enumerate() {
            let word = |k: usize| executed.get(k).filter(|t| t.kind == Kind::Word);
            let upper = if t.kind == Kind::Word {
                t.text.to_ascii_uppercase()
            } else {
                String::new()
            };
            let part = definition_at(self.sql, t.start);
            // The column's type: the word right after its name.
            if t.kind == Kind::Ident
                && part.starts_with("column")
                && is_line_start(self.sql, t.start)
            {
                if let Some(ty) = word(i + 1) {
                    let ty = ty.text.to_ascii_lowercase();
                    if matches!(ty.as_str(), "uuid" | "inet4" | "inet6" | "vector") {
                        refuse(t.start, format!("type {}", ty.to_ascii_uppercase()));
                    }
                    let line_end = self.sql[t.start..]
                        .find('\n')
                        .map_or(self.sql.len(), |e| t.start + e);
                    let column: Vec<&Token> = executed[i + 1..]
                        .iter()
                        .take_while(|n| n.start < line_end)
                        .copied()
                        .collect();
                    if is_lob_type(&ty) {
                        if let Some(d) = literal_default(&column) {
                            refuse(d, format!("a DEFAULT without parentheses on a {} column (MySQL takes only an expression default there, DEFAULT (…), since 8.0.13)", ty.to_ascii_uppercase()));
                        }
                    }
                }
            }
            match upper.as_str() {
                "VERSIONING" if i > 0 && executed[i - 1].text.eq_ignore_ascii_case("SYSTEM") => {
                    refuse(t.start, "system versioning".into())
                }
                "PERIOD" if word(i + 1).is_some_and(|w| w.text.eq_ignore_ascii_case("FOR")) => {
                    refuse(t.start, "a PERIOD FOR clause".into())
                }
                "COMPRESSED" if part.starts_with("column") => {
                    refuse(t.start, "a COMPRESSED column".into())
                }
                "IGNORED" if part.starts_with("index") => {
                    refuse(t.start, "an IGNORED index".into())
                }
                "PAGE_CHECKSUM"
                | "TRANSACTIONAL"
                | "PAGE_COMPRESSED"
                | "PAGE_COMPRESSION_LEVEL"
                | "ENCRYPTED"
                | "ENCRYPTION_KEY_ID"
                | "SEQUENCE"
                    if part == "table options" =>
                {
                    refuse(t.start, format!("the table option {upper}"))
                }
                _ => {}
            }
        }
    }

    /// `ENGINE=X` that the target does not have: MySQL refuses it under
    /// NO_ENGINE_SUBSTITUTION (every load session sets it), MariaDB too.
    fn engines(&self, tokens: &[Token], target: &TargetCatalog, out: &mut Adapted) {
        for (i, t) in tokens.iter().enumerate() {
            if !(t.kind == Kind::Word
                && t.text.eq_ignore_ascii_case("ENGINE")
                && executed(t.comment, target.flavor))
            {
                continue;
            }
            let value = tokens[i + 1..].iter().find(|n| !n.is_punct('='));
            if let Some(engine) = value.filter(|v| v.kind == Kind::Word) {
                if !target.engines.contains(&engine.text.to_ascii_lowercase()) {
                    push_once(
                        &mut out.problems,
                        format!(
                            "{}: ENGINE={}, which the target ({}) does not have",
                            self.at(engine.start),
                            engine.text,
                            target.flavor.name()
                        ),
                    );
                }
            }
        }
    }
}

fn push_once(list: &mut Vec<String>, message: String) {
    if !list.contains(&message) {
        list.push(message);
    }
}

/// Version-comment content that only says how the table is stored.
fn storage_only(words: &str) -> bool {
    [
        "ENCRYPTION",
        "DEFAULT ENCRYPTION",
        "AUTOEXTEND_SIZE",
        "TABLESPACE",
        "STORAGE",
        "ENGINE_ATTRIBUTE",
        "SECONDARY_ENGINE_ATTRIBUTE",
    ]
    .iter()
    .any(|w| words.starts_with(w))
}

fn is_lob_type(ty: &str) -> bool {
    matches!(
        ty,
        "tinytext"
            | "text"
            | "mediumtext"
            | "longtext"
            | "tinyblob"
            | "blob"
            | "mediumblob"
            | "longblob"
            | "json"
            | "geometry"
            | "point"
            | "linestring"
            | "polygon"
            | "multipoint"
            | "multilinestring"
            | "multipolygon"
            | "geometrycollection"
    )
}

/// The offset of a `DEFAULT` that is not NULL and not `(expression)`.
fn literal_default(column: &[&Token]) -> Option<usize> {
    let i = column
        .iter()
        .position(|t| t.kind == Kind::Word && t.text.eq_ignore_ascii_case("DEFAULT"))?;
    let next = column.get(i + 1)?;
    let null = next.kind == Kind::Word && next.text.eq_ignore_ascii_case("NULL");
    (!null && !next.is_punct('(')).then_some(column[i].start)
}

fn has_primary_key(tokens: &[Token], flavor: Flavor) -> bool {
    tokens.windows(2).any(|w| {
        executed(w[0].comment, flavor)
            && w[0].text.eq_ignore_ascii_case("PRIMARY")
            && w[1].text.eq_ignore_ascii_case("KEY")
    })
}

/// The session settings a keyless table needs before its CREATE: with
/// `sql_require_primary_key=ON` (MySQL 8.0.13+) the CREATE fails (3750);
/// with `sql_generate_invisible_primary_key=ON` (8.0.30+) it gets a
/// `my_row_id` column the dump does not have. Both may be set per session,
/// a restricted operation (SYSTEM_VARIABLES_ADMIN or SESSION_VARIABLES_ADMIN;
/// manual, "System Variable Privileges"); `None` = the server lacks it
/// (MariaDB has neither).
pub fn primary_key_settings(
    keyless: bool,
    require_primary_key: Option<bool>,
    generate_invisible_primary_key: Option<bool>,
) -> Vec<&'static str> {
    let mut settings = Vec::new();
    if keyless && require_primary_key == Some(true) {
        settings.push("SET SESSION sql_require_primary_key = 0");
    }
    if keyless && generate_invisible_primary_key == Some(true) {
        settings.push("SET SESSION sql_generate_invisible_primary_key = 0");
    }
    settings
}

// ---- a small lexer for SHOW CREATE text ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Word,
    Ident,
    Str,
    Punct,
}

/// An executable comment around a token: `/*!NNNNN` (MySQL's, a version or
/// none) or `/*M!NNNNNN` (MariaDB's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Comment {
    version: Option<u32>,
    mariadb: bool,
    start: usize,
    end: usize,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    /// Identifiers unquoted; everything else as written.
    text: String,
    start: usize,
    end: usize,
    comment: Option<Comment>,
}

impl Token {
    fn is_punct(&self, c: char) -> bool {
        self.kind == Kind::Punct && self.text.starts_with(c)
    }
}

/// Whether the server of `flavor` runs what is inside `comment`.
fn executed(comment: Option<Comment>, flavor: Flavor) -> bool {
    match (comment, flavor) {
        (None, _) => true,
        (Some(c), Flavor::MySql) => !c.mariadb,
        (Some(c), Flavor::MariaDb) => {
            c.mariadb || !c.version.is_some_and(|v| (50700..=99999).contains(&v))
        }
    }
}

/// The tokens of `sql`: comments' content kept (with the comment they are
/// in) when executable, dropped otherwise.
fn lex(sql: &str) -> Vec<Token> {
    let b = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut comment: Option<Comment> = None;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if comment.is_some() && b[i..].starts_with(b"*/") {
            comment = None;
            i += 2;
        } else if b[i..].starts_with(b"/*!") || b[i..].starts_with(b"/*M!") {
            let mariadb = b[i + 2] == b'M';
            let start = i;
            i += if mariadb { 4 } else { 3 };
            let digits = b[i..].iter().take_while(|d| d.is_ascii_digit()).count();
            let version = sql[i..i + digits].parse().ok();
            i += digits;
            let end = sql[i..].find("*/").map_or(b.len(), |e| i + e + 2);
            comment = Some(Comment {
                version,
                mariadb,
                start,
                end,
            });
        } else if b[i..].starts_with(b"/*") {
            i = sql[i..].find("*/").map_or(b.len(), |e| i + e + 2);
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'\'' || c == b'"' || c == b'`' {
            let start = i;
            let mut text = String::new();
            i += 1;
            while i < b.len() {
                if b[i] == b'\\' && c != b'`' {
                    i += 2;
                    continue;
                }
                if b[i] == c {
                    if b.get(i + 1) == Some(&c) {
                        text.push(c as char);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                let ch_len = sql[i..].chars().next().map_or(1, char::len_utf8);
                text.push_str(&sql[i..i + ch_len]);
                i += ch_len;
            }
            let i = i.min(b.len());
            tokens.push(Token {
                kind: if c == b'`' { Kind::Ident } else { Kind::Str },
                text: if c == b'`' {
                    text
                } else {
                    sql[start..i].to_string()
                },
                start,
                end: i,
                comment,
            });
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            let start = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            tokens.push(Token {
                kind: Kind::Word,
                text: sql[start..i].to_string(),
                start,
                end: i,
                comment,
            });
        } else {
            tokens.push(Token {
                kind: Kind::Punct,
                text: (c as char).to_string(),
                start: i,
                end: i + 1,
                comment,
            });
            i += 1;
        }
    }
    tokens
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Named {
    Charset,
    Collation,
}

/// Every `COLLATE x`, `CHARSET x`, `CHARACTER SET x` (with or without `=`)
/// the server of `flavor` would execute.
fn named_collations(tokens: &[Token], flavor: Flavor) -> Vec<(Named, &Token)> {
    let mut found = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.kind != Kind::Word || !executed(t.comment, flavor) {
            continue;
        }
        let upper = t.text.to_ascii_uppercase();
        let (kind, after) = match upper.as_str() {
            "COLLATE" => (Named::Collation, i + 1),
            "CHARSET" => (Named::Charset, i + 1),
            "CHARACTER"
                if tokens
                    .get(i + 1)
                    .is_some_and(|n| n.text.eq_ignore_ascii_case("SET")) =>
            {
                (Named::Charset, i + 2)
            }
            _ => continue,
        };
        let value = tokens[after.min(tokens.len())..]
            .iter()
            .find(|n| !n.is_punct('='));
        if let Some(v) = value.filter(|v| matches!(v.kind, Kind::Word | Kind::Ident)) {
            found.push((kind, v));
        }
    }
    found
}

/// An executable comment the server of `flavor` skips, with its words.
struct Skipped {
    start: usize,
    end: usize,
    words: Vec<String>,
}

fn skipped_comments(tokens: &[Token], flavor: Flavor) -> Vec<Skipped> {
    let mut found: Vec<Skipped> = Vec::new();
    for t in tokens {
        let Some(c) = t.comment.filter(|c| !executed(Some(*c), flavor)) else {
            continue;
        };
        match found.last_mut() {
            Some(last) if last.start == c.start => last.words.push(t.text.clone()),
            _ => found.push(Skipped {
                start: c.start,
                end: c.end,
                words: vec![t.text.clone()],
            }),
        }
    }
    found
}

fn is_line_start(sql: &str, offset: usize) -> bool {
    let line_start = sql[..offset].rfind('\n').map_or(0, |i| i + 1);
    sql[line_start..offset].trim().is_empty()
}

/// What the `SHOW CREATE TABLE` line holding `offset` defines: "column `c`",
/// "index `k`", "constraint `c`", "table options" or "" (the first line).
fn definition_at(sql: &str, offset: usize) -> String {
    let start = sql[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = sql[offset..].find('\n').map_or(sql.len(), |i| offset + i);
    let line = sql[start..end].trim();
    let first_ident = |l: &str| {
        lex(l)
            .into_iter()
            .find(|t| t.kind == Kind::Ident)
            .map(|t| t.text)
            .unwrap_or_default()
    };
    let upper = line.to_ascii_uppercase();
    if line.starts_with('`') {
        format!("column `{}`", first_ident(line))
    } else if upper.starts_with("CONSTRAINT") {
        format!("constraint `{}`", first_ident(line))
    } else if upper.starts_with("PRIMARY KEY") {
        "index PRIMARY".into()
    } else if ["KEY", "UNIQUE", "INDEX", "FULLTEXT", "SPATIAL", "FOREIGN"]
        .iter()
        .any(|k| upper.starts_with(k))
    {
        format!("index `{}`", first_ident(line))
    } else if line.starts_with(')') {
        "table options".into()
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests;
