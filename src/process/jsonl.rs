//! Rows as JSON objects (`--format jsonl`): `{"col": "value", "other": null}`,
//! every value a string (binary columns as hex text), SQL NULL as null.

use anyhow::{anyhow, bail, Result};
use serde_json::{Map, Value};

use crate::dialect::Field;

/// A row of the input as the object given to the command.
pub(super) fn object_of(names: &[String], record: &[Field]) -> Map<String, Value> {
    let mut object = Map::new();
    for (name, field) in names.iter().zip(record) {
        let value = match field {
            None => Value::Null,
            Some(v) => Value::String(String::from_utf8_lossy(v).into_owned()),
        };
        object.insert(name.clone(), value);
    }
    object
}

/// A line of the command's output: one JSON object.
pub(crate) fn parse_object(line: &str, line_no: u64) -> Result<Map<String, Value>> {
    let value: Value = serde_json::from_str(line)
        .map_err(|e| anyhow!("output line {line_no}: not a JSON object: {e}"))?;
    let Value::Object(object) = value else {
        bail!("output line {line_no}: not a JSON object");
    };
    Ok(object)
}

/// The fields of an output object, in the header's order, into `row`: the
/// object has exactly the header's keys. A value that is not a string
/// (a number, true) is written as its JSON text.
pub(crate) fn fields_of(
    object: &Map<String, Value>,
    columns: &[String],
    line_no: u64,
    row: &mut Vec<Field>,
) -> Result<()> {
    if object.len() != columns.len() || !columns.iter().all(|c| object.contains_key(c)) {
        bail!(
            "output line {line_no}: keys {:?} differ from the first object's {columns:?}",
            object.keys().collect::<Vec<_>>()
        );
    }
    row.clear();
    for c in columns {
        row.push(match &object[c] {
            Value::Null => None,
            Value::String(s) => Some(s.clone().into_bytes()),
            other => Some(other.to_string().into_bytes()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::fixtures::names;

    #[test]
    fn an_input_row_becomes_an_object_in_column_order() {
        let object = object_of(&names(&["b", "a"]), &[Some(b"x\"y".to_vec()), None]);
        assert_eq!(
            serde_json::to_string(&object).unwrap(),
            r#"{"b":"x\"y","a":null}"#
        );
    }

    #[test]
    fn an_output_line_must_be_an_object() {
        assert!(parse_object(r#"{"a": "1"}"#, 1).is_ok());
        assert_eq!(
            parse_object("[1]", 4).unwrap_err().to_string(),
            "output line 4: not a JSON object"
        );
        assert!(parse_object("{", 5)
            .unwrap_err()
            .to_string()
            .starts_with("output line 5: not a JSON object: "));
    }

    #[test]
    fn an_output_object_gives_the_headers_fields() {
        let columns = names(&["id", "n", "note"]);
        let object = parse_object(r#"{"note": null, "id": "7", "n": 2.5}"#, 1).unwrap();
        let mut row = vec![None];
        fields_of(&object, &columns, 1, &mut row).unwrap();
        assert_eq!(row, vec![Some(b"7".to_vec()), Some(b"2.5".to_vec()), None]);
        let other = parse_object(r#"{"id": "7", "x": "1", "note": "a"}"#, 2).unwrap();
        assert_eq!(
            fields_of(&other, &columns, 2, &mut row)
                .unwrap_err()
                .to_string(),
            "output line 2: keys [\"id\", \"x\", \"note\"] differ from the first object's [\"id\", \"n\", \"note\"]"
        );
    }
}
