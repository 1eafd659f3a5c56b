//! A table's rejected rows (`rejects.jsonl` in its output directory): one
//! JSON line per row a worker rejected, or that killed workers again and
//! again, with its chunk, row, key, reason and the input row itself.
//!
//! Lines are written when their row is put in order, and fsynced before the
//! checkpoint that counts them; a rerun drops the lines of rows after the
//! last checkpoint of their chunk (they are answered again).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dump;

/// One line of `rejects.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectLine {
    pub chunk: u32,
    /// 1-based, in the input chunk.
    pub row: u64,
    /// The row's key columns.
    pub key: Map<String, Value>,
    pub reason: String,
    pub input: Map<String, Value>,
}

/// A table's rejects file.
pub struct Rejects {
    pub path: PathBuf,
    file: Mutex<Option<File>>,
}

impl Rejects {
    /// The rejects of the table in `out_dir`, keeping only the lines whose
    /// row is `answered(chunk, row)` (done by a finished chunk or before the
    /// last checkpoint of its chunk); gives how many there are.
    pub fn resume(out_dir: &Path, answered: impl Fn(u32, u64) -> bool) -> Result<(Rejects, u64)> {
        let path = out_dir.join(dump::REJECTS_FILE);
        let lines: Vec<RejectLine> = dump::read_json_lines(&path)?;
        let kept: Vec<&RejectLine> = lines.iter().filter(|l| answered(l.chunk, l.row)).collect();
        if kept.len() < lines.len() {
            let mut text = Vec::new();
            for l in &kept {
                serde_json::to_writer(&mut text, l)?;
                text.push(b'\n');
            }
            dump::write_atomic(&path, &text)?;
        }
        let count = kept.len() as u64;
        Ok((
            Rejects {
                path,
                file: Mutex::new(None),
            },
            count,
        ))
    }

    /// Appends a line (made durable by [`Rejects::sync`]).
    pub fn append(&self, line: &RejectLine) -> Result<()> {
        let mut text = serde_json::to_vec(line)?;
        text.push(b'\n');
        let mut file = self.file.lock().map_err(|_| anyhow!("a worker panicked"))?;
        if file.is_none() {
            *file = Some(
                OpenOptions::new()
                    .mode(0o600)
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .with_context(|| format!("opening {}", self.path.display()))?,
            );
        }
        if let Some(f) = file.as_mut() {
            f.write_all(&text)
                .with_context(|| format!("writing {}", self.path.display()))?;
        }
        Ok(())
    }

    pub fn sync(&self) -> Result<()> {
        let file = self.file.lock().map_err(|_| anyhow!("a worker panicked"))?;
        if let Some(f) = file.as_ref() {
            f.sync_data()
                .with_context(|| format!("writing {}", self.path.display()))?;
        }
        Ok(())
    }
}

/// The key columns of an input row (all of it when the table has no key).
pub fn key_of(input: &Map<String, Value>, key_columns: &[String]) -> Map<String, Value> {
    if key_columns.is_empty() {
        return input.clone();
    }
    key_columns
        .iter()
        .map(|k| (k.clone(), input.get(k).cloned().unwrap_or(Value::Null)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(chunk: u32, row: u64) -> RejectLine {
        let input: Map<String, Value> =
            serde_json::from_str(&format!(r#"{{"id": "{row}", "n": null}}"#)).unwrap();
        RejectLine {
            chunk,
            row,
            key: key_of(&input, &["id".into()]),
            reason: "bad".into(),
            input,
        }
    }

    #[test]
    fn a_rerun_keeps_only_the_rejects_of_answered_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (r, n) = Rejects::resume(dir.path(), |_, _| true).unwrap();
        assert_eq!(n, 0);
        for l in [line(1, 5), line(2, 3), line(2, 9)] {
            r.append(&l).unwrap();
        }
        r.sync().unwrap();
        drop(r);
        // Chunk 2 was checkpointed at 4 rows answered: row 9 goes.
        let (_, n) = Rejects::resume(dir.path(), |c, row| c == 1 || row <= 4).unwrap();
        assert_eq!(n, 2);
        let kept: Vec<RejectLine> =
            dump::read_json_lines(&dir.path().join(dump::REJECTS_FILE)).unwrap();
        assert_eq!(kept, vec![line(1, 5), line(2, 3)]);
    }

    #[test]
    fn a_rejected_row_is_named_by_its_key() {
        let input: Map<String, Value> =
            serde_json::from_str(r#"{"a": "1", "b": "x", "c": null}"#).unwrap();
        let key = key_of(&input, &["b".into(), "a".into()]);
        assert_eq!(serde_json::to_string(&key).unwrap(), r#"{"b":"x","a":"1"}"#);
        assert_eq!(key_of(&input, &[]), input);
    }
}
