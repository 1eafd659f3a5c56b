//! The row protocol of `--map`: what one answer line of a worker means.
//!
//! A worker reads one JSON object per line and writes exactly one line per
//! row, in order: the output row (an object), `null` to drop the row, an
//! array of objects to emit several (`[]` drops it too), or
//! `{"myspool_reject": "why"}` to reject it.

use anyhow::{anyhow, bail, Result};
use serde_json::{Map, Value};

/// The key of a reject answer; the only key of that object.
pub const REJECT_KEY: &str = "myspool_reject";

/// What a worker answered for one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Row(Map<String, Value>),
    Drop,
    Rows(Vec<Map<String, Value>>),
    Reject(String),
}

impl Answer {
    /// The output rows it gives.
    pub fn rows(&self) -> &[Map<String, Value>] {
        match self {
            Answer::Row(o) => std::slice::from_ref(o),
            Answer::Rows(v) => v,
            Answer::Drop | Answer::Reject(_) => &[],
        }
    }
}

/// Parses one answer line (its line end removed or not).
pub fn parse_answer(line: &[u8]) -> Result<Answer> {
    let line = trim_line_end(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        bail!("an empty line is not an answer (null drops a row)");
    }
    let value: Value = serde_json::from_slice(line).map_err(|e| anyhow!("not JSON: {e}"))?;
    match value {
        Value::Null => Ok(Answer::Drop),
        Value::Object(o) => object_answer(o),
        Value::Array(items) => {
            let rows = items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Object(o) if !o.contains_key(REJECT_KEY) => Ok(o),
                    _ => Err(anyhow!("element {} of the array is not a row object", i + 1)),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(match rows.len() {
                0 => Answer::Drop,
                _ => Answer::Rows(rows),
            })
        }
        other => bail!(
            "{} is not an answer (an object, null, an array of objects, or {{\"{REJECT_KEY}\": \"why\"}})",
            kind(&other)
        ),
    }
}

fn object_answer(o: Map<String, Value>) -> Result<Answer> {
    let Some(reason) = o.get(REJECT_KEY) else {
        return Ok(Answer::Row(o));
    };
    if o.len() > 1 {
        bail!(
            "a reject has the single key {REJECT_KEY:?}, this one has {}",
            o.len()
        );
    }
    Ok(Answer::Reject(match reason {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }))
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        _ => "this value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(text: &str) -> Map<String, Value> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn every_kind_of_answer_is_understood() {
        assert_eq!(
            parse_answer(b"{\"id\": \"1\", \"n\": null}\n").unwrap(),
            Answer::Row(obj(r#"{"id": "1", "n": null}"#))
        );
        assert_eq!(parse_answer(b"null\r\n").unwrap(), Answer::Drop);
        assert_eq!(parse_answer(b"[]").unwrap(), Answer::Drop);
        assert_eq!(
            parse_answer(b"[{\"a\":\"1\"},{\"a\":\"2\"}]").unwrap(),
            Answer::Rows(vec![obj(r#"{"a":"1"}"#), obj(r#"{"a":"2"}"#)])
        );
        assert_eq!(
            parse_answer(b"{\"myspool_reject\": \"no photo\"}").unwrap(),
            Answer::Reject("no photo".into())
        );
        assert_eq!(
            parse_answer(b"{\"myspool_reject\": 42}").unwrap(),
            Answer::Reject("42".into())
        );
    }

    #[test]
    fn an_answer_out_of_protocol_says_why() {
        let err = |line: &[u8]| parse_answer(line).unwrap_err().to_string();
        assert!(
            err(b"garbage").starts_with("not JSON: "),
            "{}",
            err(b"garbage")
        );
        assert_eq!(
            err(b"\n"),
            "an empty line is not an answer (null drops a row)"
        );
        assert!(err(b"42").starts_with("a number is not an answer"));
        assert!(err(b"\"x\"").starts_with("a string is not an answer"));
        assert_eq!(
            err(b"[{\"a\":\"1\"}, 3]"),
            "element 2 of the array is not a row object"
        );
        assert_eq!(
            err(b"{\"myspool_reject\": \"x\", \"id\": \"1\"}"),
            "a reject has the single key \"myspool_reject\", this one has 2"
        );
        assert!(err(b"{\"a\": 1} {\"a\": 2}").starts_with("not JSON"));
    }

    #[test]
    fn an_answer_gives_its_output_rows() {
        assert_eq!(Answer::Drop.rows().len(), 0);
        assert_eq!(Answer::Reject("x".into()).rows().len(), 0);
        assert_eq!(Answer::Row(obj("{}")).rows().len(), 1);
        assert_eq!(Answer::Rows(vec![obj("{}"), obj("{}")]).rows().len(), 2);
    }
}
