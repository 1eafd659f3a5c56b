//! The CSV dialect of a dump, and how each column's values are written in it.
//!
//! RFC 4180, UTF-8, comma, LF line ends, one header row of column names.
//!
//! NULL is told apart from every string by *quoting*: SQL NULL is an empty
//! field with no quotes, and every non-NULL value is quoted, so the empty
//! string is `""`, and the strings `NULL` and `\N` are `"NULL"` and `"\N"`.
//! This is PostgreSQL's `COPY … CSV` convention; Python 3.12's
//! `csv.QUOTE_NOTNULL` reads and writes it. Inside quotes a `"` is doubled
//! and nothing else is escaped: backslashes, commas, CR and LF are literal.
//!
//! Binary columns (BINARY, VARBINARY, BLOBs, BIT, GEOMETRY) are written as
//! uppercase hex of their bytes, so a script can carry them through as text.
//!
//! Generic CSV readers (the `csv` crate, most spreadsheets) read the files
//! fine but cannot see the difference between `""` and an empty field; use
//! [`Reader`] (or `QUOTE_NOTNULL` in Python 3.13+) where NULL matters.
//!
//! ```
//! use myspool::dialect::{write_field, Codec, Reader};
//!
//! let mut csv = Vec::new();
//! for (i, value) in [None, Some(&b""[..]), Some(b"NULL"), Some(b"say \"hi\"")].iter().enumerate() {
//!     if i > 0 { csv.push(b','); }
//!     write_field(&mut csv, *value, Codec::Text);
//! }
//! csv.push(b'\n');
//! assert_eq!(csv, b",\"\",\"NULL\",\"say \"\"hi\"\"\"\n");
//!
//! let mut record = Vec::new();
//! Reader::new(&csv[..]).read_record(&mut record)?;
//! assert_eq!(record, [None, Some(vec![]), Some(b"NULL".to_vec()), Some(b"say \"hi\"".to_vec())]);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, BufRead};

use serde::{Deserialize, Serialize};

/// How a column's values are written in the CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The value as the server prints it in text, converted to UTF-8.
    Text,
    /// The bytes as uppercase hexadecimal.
    Hex,
}

/// How the exporter turns one column of a text-protocol row into CSV. It is
/// finer than [`Encoding`]: a FLOAT is `Text` in the dump, but the server
/// prints FLOAT with 6 significant digits (16777217 comes out as 16777200),
/// so the exporter asks for `col + 0e0` (exact as a DOUBLE) and prints it back
/// here as the shortest text that reads back as the same FLOAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Text,
    Hex,
    Float32,
}

impl Codec {
    pub fn encoding(self) -> Encoding {
        match self {
            Codec::Text | Codec::Float32 => Encoding::Text,
            Codec::Hex => Encoding::Hex,
        }
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789ABCDEF";

/// Appends the uppercase hex of `bytes` to a `String`.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(HEX_DIGITS[(b >> 4) as usize] as char);
        out.push(HEX_DIGITS[(b & 15) as usize] as char);
    }
}

/// Decodes hex (either case). `None` if it is not hex.
pub fn decode_hex(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 2);
    decode_hex_into(text, &mut out).then_some(out)
}

/// Appends the bytes `text` spells in hex to `out`; false (with `out` partly
/// written) if it is not an even number of hex digits.
pub fn decode_hex_into(text: &[u8], out: &mut Vec<u8>) -> bool {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if !text.len().is_multiple_of(2) {
        return false;
    }
    for pair in text.chunks_exact(2) {
        let (Some(hi), Some(lo)) = (nibble(pair[0]), nibble(pair[1])) else {
            return false;
        };
        out.push(hi << 4 | lo);
    }
    true
}

/// `%XX` escapes decoded (invalid ones kept as they are), as UTF-8: the
/// user, password and database of a server URL, and the names of a dump's
/// files (`dump::safe_file_name`).
pub fn percent_decode(encoded: &str) -> String {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            if let Some(v) = decode_hex(&bytes[i + 1..i + 3]) {
                out.push(v[0]);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes a row of values in the dump's CSV dialect (`None` is SQL NULL).
pub fn write_field(out: &mut Vec<u8>, value: Option<&[u8]>, codec: Codec) {
    let Some(v) = value else { return };
    out.push(b'"');
    match codec {
        Codec::Text => push_quoted_body(out, v),
        Codec::Hex => {
            out.reserve(v.len() * 2);
            for &b in v {
                out.push(HEX_DIGITS[(b >> 4) as usize]);
                out.push(HEX_DIGITS[(b & 15) as usize]);
            }
        }
        Codec::Float32 => match shortest_f32(v) {
            Some(s) => out.extend_from_slice(s.as_bytes()),
            None => push_quoted_body(out, v),
        },
    }
    out.push(b'"');
}

fn push_quoted_body(out: &mut Vec<u8>, v: &[u8]) {
    let mut rest = v;
    while let Some(pos) = rest.iter().position(|&b| b == b'"') {
        out.extend_from_slice(&rest[..=pos]);
        out.push(b'"');
        rest = &rest[pos + 1..];
    }
    out.extend_from_slice(rest);
}

/// Writes a header row: the names, each quoted.
pub fn write_header<S: AsRef<str>>(out: &mut Vec<u8>, names: &[S]) {
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_field(out, Some(name.as_ref().as_bytes()), Codec::Text);
    }
    out.push(b'\n');
}

/// The text of a DOUBLE (as the server printed `float_col + 0e0`) rewritten as
/// the shortest decimal that reads back as the same FLOAT. The server reads a
/// FLOAT by parsing a double, refusing it when it is beyond ±FLT_MAX ("Out of
/// range value", even when it would round to FLT_MAX), then rounding it to
/// single precision; the text is checked to survive exactly that. When it
/// does not — the shortest text of FLT_MAX, `3.4028235e38`, is above FLT_MAX
/// as a double — `None` tells the caller to keep the server's exact DOUBLE
/// text (`3.4028234663852886e38`), which always survives.
fn shortest_f32(double_text: &[u8]) -> Option<String> {
    let d: f64 = std::str::from_utf8(double_text).ok()?.parse().ok()?;
    let f = d as f32;
    if f as f64 != d || !f.is_finite() {
        return None;
    }
    let abs = f.abs();
    let s = if abs == 0.0 || (1e-5..1e16).contains(&abs) {
        format!("{f}")
    } else {
        format!("{f:e}")
    };
    let back: f64 = s.parse().ok()?;
    let in_range = back.abs() <= f64::from(f32::MAX);
    (in_range && (back as f32).to_bits() == f.to_bits()).then_some(s)
}

/// One field read back from a dump CSV: `None` is SQL NULL.
pub type Field = Option<Vec<u8>>;

/// A CSV syntax error with its position (1-based line and field).
#[derive(Debug)]
pub struct SyntaxError {
    pub line: u64,
    pub field: usize,
    pub message: &'static str,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, field {}: {}",
            self.line, self.field, self.message
        )
    }
}

impl std::error::Error for SyntaxError {}

/// A streaming reader of the dump dialect that keeps NULL (unquoted empty)
/// apart from the empty string (`""`), which generic CSV readers cannot.
pub struct Reader<R> {
    input: R,
    /// Physical lines read so far.
    lines_read: u64,
    /// The line the last record returned started on.
    line: u64,
    /// The physical line being split, kept to reuse its allocation.
    buf: Vec<u8>,
    /// Value buffers of earlier records, reused: once warm, reading a record
    /// allocates nothing (per-field allocations were ~15% of a load's CPU).
    spare: Vec<Vec<u8>>,
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Self {
        Reader {
            input,
            lines_read: 0,
            line: 0,
            buf: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// The 1-based line on which the last record returned started.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Reads the next record into `record` (cleared first). `Ok(false)` at the
    /// end of input.
    pub fn read_record(&mut self, record: &mut Vec<Field>) -> io::Result<bool> {
        let Reader {
            input,
            lines_read,
            line,
            buf,
            spare,
        } = self;
        spare.extend(record.drain(..).flatten());
        let mut fresh = || {
            let mut v = spare.pop().unwrap_or_default();
            v.clear();
            v
        };
        buf.clear();
        if input.read_until(b'\n', buf)? == 0 {
            return Ok(false);
        }
        *lines_read += 1;
        *line = *lines_read;
        let err = |field: usize, message: &'static str, line: u64| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                SyntaxError {
                    line,
                    field,
                    message,
                },
            )
        };
        let mut pos = 0;
        loop {
            let field_no = record.len() + 1;
            if buf.get(pos) == Some(&b'"') {
                // Quoted field: may span lines.
                let mut value = fresh();
                pos += 1;
                loop {
                    match buf[pos..].iter().position(|&b| b == b'"') {
                        Some(q) => {
                            value.extend_from_slice(&buf[pos..pos + q]);
                            pos += q + 1;
                            if buf.get(pos) == Some(&b'"') {
                                value.push(b'"');
                                pos += 1;
                                continue;
                            }
                            break;
                        }
                        None => {
                            value.extend_from_slice(&buf[pos..]);
                            buf.clear();
                            pos = 0;
                            if input.read_until(b'\n', buf)? == 0 {
                                return Err(err(field_no, "unterminated quoted field", *line));
                            }
                            *lines_read += 1;
                        }
                    }
                }
                record.push(Some(value));
                match buf.get(pos) {
                    Some(b',') => pos += 1,
                    Some(b'\n') | None => break,
                    Some(b'\r') if buf.get(pos + 1) == Some(&b'\n') => break,
                    Some(_) => {
                        return Err(err(
                            field_no,
                            "unexpected character after closing quote",
                            *lines_read,
                        ))
                    }
                }
            } else {
                let end = buf[pos..]
                    .iter()
                    .position(|&b| b == b',' || b == b'\n')
                    .map_or(buf.len(), |e| pos + e);
                let mut raw = &buf[pos..end];
                if end < buf.len() && buf[end] == b'\n' {
                    raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                }
                if raw.contains(&b'"') {
                    return Err(err(field_no, "quote inside an unquoted field", *lines_read));
                }
                record.push(if raw.is_empty() {
                    None
                } else {
                    let mut v = fresh();
                    v.extend_from_slice(raw);
                    Some(v)
                });
                if end < buf.len() && buf[end] == b',' {
                    pos = end + 1;
                } else {
                    break;
                }
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_field(&mut out, *v, Codec::Text);
        }
        out.push(b'\n');
        out
    }

    #[test]
    fn null_empty_and_lookalikes_stay_distinct() {
        let values: Vec<Option<&[u8]>> = vec![
            None,
            Some(b""),
            Some(b"NULL"),
            Some(b"\\N"),
            Some(b"a\"b,c\r\nd\te\\"),
            Some(b"\r"),
        ];
        let text = row(&values);
        assert_eq!(
            text,
            b",\"\",\"NULL\",\"\\N\",\"a\"\"b,c\r\nd\te\\\",\"\r\"\n".to_vec()
        );
        let mut reader = Reader::new(&text[..]);
        let mut rec = Vec::new();
        assert!(reader.read_record(&mut rec).unwrap());
        let expect: Vec<Field> = values.iter().map(|v| v.map(|b| b.to_vec())).collect();
        assert_eq!(rec, expect);
        assert!(!reader.read_record(&mut rec).unwrap());
    }

    #[test]
    fn reused_buffers_never_leak_an_earlier_value() {
        let rows: Vec<Vec<Option<&[u8]>>> = vec![
            vec![Some(b"a long first value"), Some(b"x"), None],
            vec![None, Some(b"two\nlines"), Some(b"")],
            vec![Some(b"s"), None, Some(b"a,b")],
            vec![Some(b""), Some(b"q\"q"), Some(b"last")],
        ];
        let text: Vec<u8> = rows.iter().flat_map(|r| row(r)).collect();
        let mut reader = Reader::new(&text[..]);
        let mut rec = Vec::new();
        for want in &rows {
            assert!(reader.read_record(&mut rec).unwrap());
            let want: Vec<Field> = want.iter().map(|v| v.map(|b| b.to_vec())).collect();
            assert_eq!(rec, want);
        }
        assert!(!reader.read_record(&mut rec).unwrap());
    }

    #[test]
    fn line_is_where_the_record_started() {
        let mut reader = Reader::new(&b"\"a\nb\nc\",1\nx,2\n"[..]);
        let mut rec = Vec::new();
        assert!(reader.read_record(&mut rec).unwrap());
        assert_eq!(reader.line(), 1);
        assert!(reader.read_record(&mut rec).unwrap());
        assert_eq!(reader.line(), 4);
    }

    #[test]
    fn hex_round_trips_every_byte() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        write_field(&mut out, Some(&bytes), Codec::Hex);
        assert_eq!(decode_hex(&out[1..out.len() - 1]).unwrap(), bytes);
        assert!(decode_hex(b"0G").is_none());
    }

    #[test]
    fn floats_print_shortest_and_read_back_exactly() {
        for (double, want) in [
            ("0.10000000149011612", "0.1"),
            ("16777216", "16777216"),
            // The shortest text of FLT_MAX is above it as a double, which
            // the server refuses: the exact text is kept.
            ("3.4028234663852886e38", "3.4028234663852886e38"),
            ("-3.4028234663852886e38", "-3.4028234663852886e38"),
            ("3.4028232635611926e38", "3.4028233e38"),
            ("1.401298464324817e-45", "1e-45"),
            ("1.1754943508222875e-38", "1.1754944e-38"),
            ("9.999999350456404e-39", "1e-38"),
            ("-1.5", "-1.5"),
            ("0", "0"),
        ] {
            let mut out = Vec::new();
            write_field(&mut out, Some(double.as_bytes()), Codec::Float32);
            assert_eq!(String::from_utf8(out).unwrap(), format!("\"{want}\""));
        }
    }

    #[test]
    fn syntax_errors_name_line_and_field() {
        let mut rec = Vec::new();
        let mut r = Reader::new(&b"\"a\",\"b\nc"[..]);
        let e = r.read_record(&mut rec).unwrap_err();
        assert_eq!(e.to_string(), "line 1, field 2: unterminated quoted field");
        let mut r = Reader::new(&b"\"a\"x\n"[..]);
        let e = r.read_record(&mut rec).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1, field 1: unexpected character after closing quote"
        );
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Values rich in what the convention must keep apart: quotes,
        /// commas, CR, LF, backslashes, `NULL`, `\\N`, bytes that are not UTF-8.
        fn value() -> impl Strategy<Value = Option<Vec<u8>>> {
            let byte = prop_oneof![
                3 => prop::sample::select(b"\",\r\nNUL\\ \x00\xff\xc3".to_vec()),
                1 => any::<u8>(),
            ];
            prop_oneof![
                1 => Just(None),
                1 => Just(Some(b"".to_vec())),
                1 => Just(Some(b"NULL".to_vec())),
                1 => Just(Some(b"\\N".to_vec())),
                6 => prop::collection::vec(byte, 0..12).prop_map(Some),
            ]
        }

        fn rows() -> impl Strategy<Value = Vec<Vec<Field>>> {
            prop::collection::vec(prop::collection::vec(value(), 1..6), 0..8)
        }

        fn write_rows(rows: &[Vec<Field>], codec: Codec) -> Vec<u8> {
            let mut out = Vec::new();
            for row in rows {
                for (i, v) in row.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_field(&mut out, v.as_deref(), codec);
                }
                out.push(b'\n');
            }
            out
        }

        /// Every record of `text`, or the first error.
        fn read_all(text: &[u8]) -> io::Result<Vec<Vec<Field>>> {
            let mut reader = Reader::new(text);
            let mut out = Vec::new();
            let mut record = Vec::new();
            while reader.read_record(&mut record)? {
                out.push(record.clone());
            }
            Ok(out)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn writing_then_reading_is_the_identity(rows in rows()) {
                let text = write_rows(&rows, Codec::Text);
                prop_assert_eq!(read_all(&text).unwrap(), rows);
            }

            #[test]
            fn hex_columns_read_back_as_their_bytes(rows in rows()) {
                let text = write_rows(&rows, Codec::Hex);
                let back: Vec<Vec<Field>> = read_all(&text)
                    .unwrap()
                    .into_iter()
                    .map(|r| r.into_iter().map(|f| f.map(|h| decode_hex(&h).unwrap())).collect())
                    .collect();
                prop_assert_eq!(back, rows);
            }

            /// Any bytes: the records, or an error naming a line and a
            /// field; what was read, written again, reads the same.
            #[test]
            fn any_bytes_read_or_fail_with_a_position(
                text in prop::collection::vec(
                    prop_oneof![
                        3 => prop::sample::select(b"\",\r\na".to_vec()),
                        1 => any::<u8>(),
                    ],
                    0..64,
                )
            ) {
                match read_all(&text) {
                    Ok(rows) => {
                        prop_assert!(rows.iter().all(|r| !r.is_empty()));
                        prop_assert_eq!(read_all(&write_rows(&rows, Codec::Text)).unwrap(), rows);
                    }
                    Err(e) => {
                        let lines = text.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
                        let syntax = e.get_ref().and_then(|e| e.downcast_ref::<SyntaxError>());
                        let Some(syntax) = syntax else {
                            return Err(TestCaseError::fail(format!("not a syntax error: {e}")));
                        };
                        prop_assert!((1..=lines).contains(&syntax.line), "{}", e);
                        prop_assert!(syntax.field >= 1, "{}", e);
                        let prefix = format!("line {}, field {}: ", syntax.line, syntax.field);
                        prop_assert!(e.to_string().starts_with(&prefix), "{}", e);
                    }
                }
            }
        }
    }
}
