//! How a dump writes and reads files: atomically (a temporary name, fsync,
//! rename, fsync of the directory), privately (directories 0700), as JSON
//! lines appended and fsynced one by one, hashed with SHA-256, and under
//! names made safe for any file system.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dialect;

/// Keeps `[A-Za-z0-9_-]` and other letters/digits; every other byte becomes
/// `%XX`, so `a/b` or ``a`b; DROP`` cannot escape the dump directory or
/// collide with the files myspool writes.
pub fn safe_file_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' || c == '-' {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    out
}

/// The name [`safe_file_name`] encoded.
pub fn decode_file_name(encoded: &str) -> String {
    dialect::percent_decode(encoded)
}

/// Creates a directory (and parents) with mode 0700.
pub fn create_private_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("creating directory {}", path.display()))
}

/// How every temporary file of a dump starts (atomic writes, chunks being
/// written): a run killed mid-write leaves one behind.
pub(super) const TMP_PREFIX: &str = ".tmp-";

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming into {}", path.display()))?;
    sync_dir(dir)
}

pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    write_atomic(path, &text)
}

/// fsync of a directory, so a rename in it survives a power cut.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Appends one JSON line to a log file and fsyncs it.
pub fn append_json_line<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(&line)
        .and_then(|_| f.sync_data())
        .with_context(|| format!("appending to {}", path.display()))
}

/// An error message made one line: line ends and other control characters
/// in it are escaped (a serde error quotes the text it could not read, which
/// may hold them).
pub fn one_line(message: impl std::fmt::Display) -> String {
    let mut out = String::new();
    for c in message.to_string().chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads a JSON-lines log (see [`parse_json_lines`]); a missing file has no
/// lines.
pub fn read_json_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    parse_json_lines(&bytes, &path.display().to_string())
}

/// The values of a JSON-lines log (`label` names it in errors). A torn last
/// line (the process died mid-write: no line end, maybe half a UTF-8
/// character) is ignored; a bad line before the last is an error naming the
/// line.
pub fn parse_json_lines<T: for<'de> Deserialize<'de>>(bytes: &[u8], label: &str) -> Result<Vec<T>> {
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = match std::str::from_utf8(line) {
            Ok(t) => t,
            Err(_) if last => break,
            Err(e) => bail!("{label} line {}: not UTF-8: {e}", i + 1),
        };
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(text) {
            Ok(v) => out.push(v),
            Err(_) if last => break,
            Err(e) => bail!("{label} line {}: {}", i + 1, one_line(e)),
        }
    }
    Ok(out)
}

/// SHA-256 of a file, as lowercase hex (what `sha256sum` prints).
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex_lower(&hasher.finalize()))
}

pub fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::ExportedChunk;

    #[test]
    fn file_names_cannot_escape_the_dump() {
        assert_eq!(safe_file_name("orders"), "orders");
        assert_eq!(safe_file_name("../x"), "%2E%2E%2Fx");
        assert_eq!(safe_file_name("a`b; DROP"), "a%60b%3B%20DROP");
        assert_eq!(safe_file_name("café"), "café");
        assert_eq!(safe_file_name(""), "%");
        for name in ["a`b; DROP", "caf\u{e9}", "../x", "db1:3306"] {
            assert_eq!(decode_file_name(&safe_file_name(name)), name);
        }
    }

    #[test]
    fn torn_last_log_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        fs::write(
            &path,
            "{\"number\":1,\"rows\":2,\"bytes\":3,\"csv_bytes\":4,\"sha256\":\"ab\"}\n{\"numb",
        )
        .unwrap();
        let done: Vec<ExportedChunk> = read_json_lines(&path).unwrap();
        assert_eq!(done.len(), 1);
        fs::write(
            &path,
            "garbage\n{\"number\":1,\"rows\":2,\"bytes\":3,\"csv_bytes\":4,\"sha256\":\"ab\"}\n",
        )
        .unwrap();
        assert!(read_json_lines::<ExportedChunk>(&path).is_err());
    }

    #[test]
    fn a_last_line_torn_inside_a_character_is_ignored_too() {
        // `é` is two bytes; the process died after the first.
        let line = b"{\"event\":\"autoinc_restored\",\"column\":\"\xc3";
        let text = [&b"{\"event\":\"truncated\"}\n"[..], line].concat();
        let events: Vec<crate::journal::Event> = parse_json_lines(&text, "j").unwrap();
        assert_eq!(events, [crate::journal::Event::Truncated]);
        let text = [line, &b"\n{\"event\":\"truncated\"}\n"[..]].concat();
        let err = parse_json_lines::<crate::journal::Event>(&text, "j").unwrap_err();
        assert!(err.to_string().starts_with("j line 1: not UTF-8"), "{err}");
    }

    #[test]
    fn errors_quoting_control_characters_stay_one_line() {
        assert_eq!(one_line("a\nb\t\u{1b}c é"), "a\\nb\\t\\u{1b}c é");
    }
}
