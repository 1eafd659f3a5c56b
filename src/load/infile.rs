//! What a chunk's `LOAD DATA LOCAL INFILE` reads: the statement of a table,
//! and the LOCAL INFILE handler that streams the chunk from its compressed
//! file, re-encoded on the fly into LOAD DATA's own text format (no
//! temporary copy).
//!
//! The server names the file it wants; a rogue server could name any file
//! of ours. The handler serves only the chunk of the running statement.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use mysql::LocalInfileHandler;

use crate::dialect::{self, Encoding};
use crate::dump::{ChunkReader, Compress};
use crate::errors;
use crate::progress;
use crate::sql::ident;

use super::plan::TablePlan;
use super::OnDuplicate;

/// The `LOAD DATA` statement of a table (the file name aside).
pub(super) struct LoadStatement {
    /// Everything after `LOAD DATA LOCAL INFILE '<name>'`.
    pub tail: String,
    header: Vec<String>,
    compress: Compress,
    /// Per column: hex in the chunk, to be sent as the bytes it spells.
    decode_hex: Vec<bool>,
}

impl LoadStatement {
    pub(super) fn new(plan: &TablePlan, on_duplicate: OnDuplicate) -> LoadStatement {
        let mode = match on_duplicate {
            OnDuplicate::Error | OnDuplicate::Ignore => "IGNORE",
            OnDuplicate::Replace => "REPLACE",
        };
        let header: Vec<String> = plan.desc.columns.iter().map(|c| c.name.clone()).collect();
        let (tail, decode_hex) = if plan.raw_bytes {
            // Every value as it is, no expression (see `raw_bytes_ok`).
            let decode_hex = plan
                .desc
                .columns
                .iter()
                .map(|c| c.encoding == Encoding::Hex)
                .collect();
            (raw_tail(plan, mode, &header), decode_hex)
        } else {
            (text_tail(plan, mode), Vec::new())
        };
        LoadStatement {
            tail,
            header,
            compress: plan.desc.compress,
            decode_hex,
        }
    }

    /// The request the handler serves while this statement reads the file
    /// `name` (found at `path`, whose checksum is `sha256`).
    pub(super) fn request(&self, name: &str, path: PathBuf, sha256: &str) -> InfileRequest {
        InfileRequest {
            name: name.as_bytes().to_vec(),
            path,
            compress: self.compress,
            header: self.header.clone(),
            decode_hex: self.decode_hex.clone(),
            sha256: sha256.to_string(),
            rows_sent: 0,
            bytes: 0,
            error: None,
        }
    }
}

/// The statement's tail when the chunk goes as raw bytes: the columns
/// read as they are, `CHARACTER SET binary`.
fn raw_tail(plan: &TablePlan, mode: &str, header: &[String]) -> String {
    let list: Vec<String> = header.iter().map(|n| ident(n)).collect();
    format!(
        "{mode} INTO TABLE {} CHARACTER SET binary FIELDS TERMINATED BY '\\t' \
         ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        plan.target_sql(),
        list.join(", ")
    )
}

/// The statement's tail when the chunk goes as text: hex columns (and an
/// AUTO_INCREMENT column beside them) through variables and `SET`.
fn text_tail(plan: &TablePlan, mode: &str) -> String {
    let mut list = Vec::new();
    let mut sets = Vec::new();
    let has_hex = plan
        .desc
        .columns
        .iter()
        .any(|c| c.encoding == Encoding::Hex);
    for (i, c) in plan.desc.columns.iter().enumerate() {
        let autoinc = plan.autoinc_column.as_deref() == Some(c.name.as_str());
        match c.encoding {
            // MariaDB (seen on 10.11.19) ignores NO_AUTO_VALUE_ON_ZERO for
            // a column read directly when the statement has a SET clause:
            // an explicit id 0 becomes the next AUTO_INCREMENT value. Read
            // through a variable and assigned in SET, the 0 is kept.
            Encoding::Text if autoinc && has_hex => {
                list.push(format!("@myspool_{i}"));
                sets.push(format!("{} = @myspool_{i}", ident(&c.name)));
            }
            Encoding::Text => list.push(ident(&c.name)),
            // Hex columns go through a variable: the bytes come back with
            // UNHEX, untouched by any character set conversion.
            Encoding::Hex => {
                list.push(format!("@myspool_{i}"));
                sets.push(format!("{} = UNHEX(@myspool_{i})", ident(&c.name)));
            }
        }
    }
    // LOAD DATA's own format: tab-separated, backslash escapes, \N for NULL.
    let mut tail = format!(
        "{mode} INTO TABLE {} CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' \
         LINES TERMINATED BY '\\n' ({})",
        plan.target_sql(),
        list.join(", ")
    );
    if !sets.is_empty() {
        tail.push_str(" SET ");
        tail.push_str(&sets.join(", "));
    }
    tail
}

/// The chunk the running statement may read, and what came of serving it.
pub(super) struct InfileRequest {
    /// The name in the statement; the server must ask for exactly this.
    name: Vec<u8>,
    pub path: PathBuf,
    compress: Compress,
    header: Vec<String>,
    decode_hex: Vec<bool>,
    sha256: String,
    pub rows_sent: u64,
    bytes: u64,
    pub error: Option<String>,
}

pub(super) type InfileSlot = Arc<Mutex<Option<InfileRequest>>>;

/// The LOCAL INFILE handler: serves the file of the statement being run and
/// nothing else. Errors are kept in the request (the statement then sees a
/// short file, and the row count check rolls the chunk back), because an
/// error returned from here would leave the connection mid-protocol.
pub(super) fn infile_handler(slot: InfileSlot) -> LocalInfileHandler {
    LocalInfileHandler::new(move |name, out| {
        let Ok(mut guard) = slot.lock() else {
            return Ok(());
        };
        let requested = String::from_utf8_lossy(name).into_owned();
        match guard.as_mut() {
            Some(req) if req.name == name => {
                if let Err(e) = stream_chunk(req, out) {
                    req.error = Some(errors::sentence(&e));
                }
            }
            Some(req) => {
                let msg = format!(
                    "the server asked for local file {requested:?} while loading {}: refused (only the chunk being loaded is served)",
                    req.path.display()
                );
                progress::notice(&format!("myspool load: {msg}"));
                req.error = Some(msg);
            }
            None => progress::notice(&format!(
                "myspool load: the server asked for local file {requested:?} outside any load statement: refused"
            )),
        }
        Ok(())
    })
}

/// Decompresses a chunk, checks it, and writes it in LOAD DATA's format.
fn stream_chunk(req: &mut InfileRequest, out: &mut dyn Write) -> Result<()> {
    let mut reader = ChunkReader::open_hashed(&req.path, req.compress)?;
    reader.expect_header(&req.header)?;
    let mut buf = Vec::with_capacity(FLUSH_BYTES);
    let bytes = &mut req.bytes;
    load_data_rows(
        &mut reader,
        &req.header,
        &req.decode_hex,
        &mut buf,
        &mut req.rows_sent,
        &mut |piece| {
            out.write_all(piece).context("sending to the server")?;
            *bytes += piece.len() as u64;
            Ok(())
        },
    )?;
    // The whole file was read: its checksum must be the recorded one before
    // the last rows go out (a mismatch leaves the statement short, and the
    // chunk is rolled back).
    reader.check_sha256(&req.sha256)?;
    out.write_all(&buf).context("sending to the server")?;
    req.bytes += buf.len() as u64;
    Ok(())
}

/// LOAD DATA text is handed on in pieces of about this size.
const FLUSH_BYTES: usize = 256 * 1024;

/// The rows of a chunk (its header read and checked against `header`) in
/// LOAD DATA's text format: tab-separated, backslash escapes, `\N` for NULL,
/// hex columns (`decode_hex`) as the bytes they spell. Every full piece goes
/// to `send`; the last one is left in `buf`, for the caller to send once the
/// file proved whole. Counts the rows in `rows`. Pure but for the reader: the
/// fuzz target `load_data` drives it from memory.
pub(crate) fn load_data_rows(
    reader: &mut ChunkReader,
    header: &[String],
    decode_hex: &[bool],
    buf: &mut Vec<u8>,
    rows: &mut u64,
    send: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let file_label = reader.label().to_string();
    let mut record = Vec::new();
    let mut bytes = Vec::new();
    while reader.read_record(&mut record)? {
        if record.len() != header.len() {
            bail!(
                "{file_label}: line {}: {} fields, expected {}",
                reader.line(),
                record.len(),
                header.len()
            );
        }
        for (i, field) in record.iter().enumerate() {
            if i > 0 {
                buf.push(b'\t');
            }
            match field {
                None => buf.extend_from_slice(b"\\N"),
                Some(v) if decode_hex.get(i) == Some(&true) => {
                    bytes.clear();
                    if dialect::decode_hex_into(v, &mut bytes) {
                        escape_into(buf, &bytes);
                    } else {
                        bail!(
                            "{file_label}: line {}: column {} ({}) is not hexadecimal",
                            reader.line(),
                            i + 1,
                            crate::dump::one_line(&header[i])
                        );
                    }
                }
                Some(v) => escape_into(buf, v),
            }
        }
        buf.push(b'\n');
        *rows += 1;
        if buf.len() >= FLUSH_BYTES {
            send(buf)?;
            buf.clear();
        }
    }
    Ok(())
}

/// Escapes a value for LOAD DATA (`ESCAPED BY '\\'`, tab and LF separators).
fn escape_into(buf: &mut Vec<u8>, v: &[u8]) {
    // Most values need no escaping: copy the runs between special bytes
    // whole instead of pushing byte by byte.
    let mut rest = v;
    while let Some(i) = rest.iter().position(|&b| NEEDS_ESCAPE[b as usize]) {
        buf.extend_from_slice(&rest[..i]);
        buf.extend_from_slice(match rest[i] {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => b"\\0",
        });
        rest = &rest[i + 1..];
    }
    buf.extend_from_slice(rest);
}

/// The bytes `escape_into` replaces.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    t[b'\\' as usize] = true;
    t[b'\t' as usize] = true;
    t[b'\n' as usize] = true;
    t[b'\r' as usize] = true;
    t[0] = true;
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_for_load_data() {
        let mut b = Vec::new();
        escape_into(&mut b, b"a\\b\tc\nd\re\0f\"g,");
        assert_eq!(b, b"a\\\\b\\tc\\nd\\re\\0f\"g,");
    }
}
