//! Building SQL text safely: identifier quoting and literals for key values.
//!
//! Everything myspool sends to a server is built here, so that a table named
//! ``a`b; DROP TABLE x; --`` is always a quoted identifier and a key value is
//! always an inert literal.

/// Quotes an identifier with backticks, doubling any backtick inside it.
pub fn ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        if c == '`' {
            out.push('`');
        }
        out.push(c);
    }
    out.push('`');
    out
}

/// `db`.`table`
pub fn qualified(db: &str, table: &str) -> String {
    format!("{}.{}", ident(db), ident(table))
}

/// A string literal with every byte escaped that the server could read as
/// syntax. Used for values from the user or the server (such as a database
/// name in an `information_schema` query), never for key bounds, which are
/// written as hex (see [`hex_literal`]).
pub fn string_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `X'…'`, optionally with a character-set introducer (`_latin1 X'E9'`), so
/// that the bytes reach the server exactly and are compared in the column's
/// own character set and collation.
pub fn hex_literal(charset: Option<&str>, bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2 + 16);
    if let Some(cs) = charset {
        out.push('_');
        out.push_str(cs);
        out.push(' ');
    }
    out.push_str("X'");
    crate::dialect::push_hex(&mut out, bytes);
    out.push('\'');
    out
}

/// True when `text` is a plain decimal or floating-point number as the server
/// prints one, so it can be sent unquoted.
pub fn is_numeric_literal(text: &str) -> bool {
    let t = text.strip_prefix('-').unwrap_or(text);
    !t.is_empty()
        && t.as_bytes()[0].is_ascii_digit()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
}

/// The keyset condition `(k1, k2, …) > (v1, v2, …)` (or `<=` for an upper
/// bound), written out as nested OR/AND.
///
/// Why not the row-value form: MariaDB (10.11 at least) does not use an index
/// range for `(a,b) > (x,y)` and scans the whole index for every chunk, which
/// makes a chunked export quadratic. The expanded form
/// `a > x OR (a = x AND b > y)` gets a range scan on both MariaDB and MySQL.
/// The leading `a >= x` repeats what the OR implies; it lets older optimizers
/// pick the range even when they give up on the OR.
pub fn keyset_condition(columns: &[String], values: &[String], lower: bool) -> String {
    debug_assert_eq!(columns.len(), values.len());
    let (strict, inclusive_last) = if lower { (">", ">") } else { ("<", "<=") };
    fn build(cols: &[String], vals: &[String], strict: &str, last: &str) -> String {
        let c = ident(&cols[0]);
        if cols.len() == 1 {
            return format!("{c} {last} {}", vals[0]);
        }
        format!(
            "({c} {strict} {v} OR ({c} = {v} AND {rest}))",
            v = vals[0],
            rest = build(&cols[1..], &vals[1..], strict, last)
        )
    }
    let body = build(columns, values, strict, inclusive_last);
    if columns.len() == 1 {
        body
    } else {
        let hint = if lower { ">=" } else { "<=" };
        format!("{} {hint} {} AND {body}", ident(&columns[0]), values[0])
    }
}

/// The conditions that select a chunk, `lower < key <= upper` (a missing
/// bound is unbounded), each in parentheses: the one place a chunk's range
/// becomes SQL, for the export that reads it, the load that counts it and
/// `verify` that compares it.
pub fn chunk_range(
    key: &[String],
    lower: Option<&[String]>,
    upper: Option<&[String]>,
) -> Vec<String> {
    let mut conds = Vec::new();
    if let Some(lower) = lower {
        conds.push(format!("({})", keyset_condition(key, lower, true)));
    }
    if let Some(upper) = upper {
        conds.push(format!("({})", keyset_condition(key, upper, false)));
    }
    conds
}

/// ` WHERE a AND b`, or nothing when there are no conditions.
pub fn where_all(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// User conditions that must all hold, as one: a single one as it is,
/// several each in parentheses, joined with AND (`--where` for every table
/// and for one).
pub fn and_all(conditions: &[&str]) -> Option<String> {
    match conditions {
        [] => None,
        [one] => Some(one.to_string()),
        many => Some(
            many.iter()
                .map(|c| format!("({c})"))
                .collect::<Vec<_>>()
                .join(" AND "),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_with_backticks_are_doubled() {
        assert_eq!(ident("a`b; DROP TABLE x; --"), "`a``b; DROP TABLE x; --`");
        assert_eq!(qualified("shop", "or`ders"), "`shop`.`or``ders`");
    }

    #[test]
    fn string_literals_escape_quotes_and_backslashes() {
        assert_eq!(string_literal("it's \\ \0"), "'it''s \\\\ \\0'");
    }

    #[test]
    fn hex_literals_carry_the_charset() {
        assert_eq!(hex_literal(Some("latin1"), &[0xe9]), "_latin1 X'E9'");
        assert_eq!(hex_literal(None, &[0, 255]), "X'00FF'");
    }

    #[test]
    fn numeric_literals() {
        assert!(is_numeric_literal("-12.5e-7"));
        assert!(is_numeric_literal("0"));
        assert!(!is_numeric_literal("1; DROP"));
        assert!(!is_numeric_literal(""));
        assert!(!is_numeric_literal("-"));
    }

    #[test]
    fn composite_keyset_conditions_expand_to_ranges() {
        let cols = vec!["a".to_string(), "b".to_string()];
        let vals = vec!["1".to_string(), "X'41'".to_string()];
        assert_eq!(
            keyset_condition(&cols, &vals, true),
            "`a` >= 1 AND (`a` > 1 OR (`a` = 1 AND `b` > X'41'))"
        );
        assert_eq!(
            keyset_condition(&cols, &vals, false),
            "`a` <= 1 AND (`a` < 1 OR (`a` = 1 AND `b` <= X'41'))"
        );
        assert_eq!(keyset_condition(&cols[..1], &vals[..1], true), "`a` > 1");
    }

    #[test]
    fn a_chunk_range_is_lower_exclusive_upper_inclusive() {
        let key = vec!["id".to_string()];
        let (lo, hi) = (vec!["10".to_string()], vec!["20".to_string()]);
        let both = chunk_range(&key, Some(&lo), Some(&hi));
        assert_eq!(where_all(&both), " WHERE (`id` > 10) AND (`id` <= 20)");
        assert_eq!(
            where_all(&chunk_range(&key, None, Some(&hi))),
            " WHERE (`id` <= 20)"
        );
        assert_eq!(where_all(&chunk_range(&key, None, None)), "");
    }
}
