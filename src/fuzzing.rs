//! The entry points of the fuzz targets (`fuzz/`, run by `cargo fuzz`) and
//! of their regression tests: each feeds arbitrary bytes to one reader of
//! what myspool takes from disk or from a command, and panics only when the
//! reader breaks its promise (an error must be one line naming where it is;
//! what reads fine must survive being written and read again). A panic of
//! the reader itself surfaces as itself. Not part of the API: test
//! equipment, the one module allowed to reach into every phase.

use std::io::Cursor;

use crate::dialect::{self, Codec, Field};
use crate::dump::{self, ChunkReader, Compress, ExportedChunk, OutputRecord, ProcessedChunk};
use crate::journal::Event;

/// Panics unless `message` is one line that starts with `prefix`.
fn one_line(message: &str, prefix: &str) {
    assert!(
        message.starts_with(prefix),
        "{message:?} does not start with {prefix:?}"
    );
    assert!(!message.contains('\n'), "{message:?} is not one line");
}

fn read_records(reader: &mut dialect::Reader<&[u8]>) -> std::io::Result<Vec<Vec<Field>>> {
    let mut rows = Vec::new();
    let mut record = Vec::new();
    while reader.read_record(&mut record)? {
        rows.push(record.clone());
    }
    Ok(rows)
}

fn write_records(rows: &[Vec<Field>]) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            dialect::write_field(&mut out, v.as_deref(), Codec::Text);
        }
        out.push(b'\n');
    }
    out
}

/// `dialect::Reader` over any bytes: records, or an error `line L, field F:
/// …`; the records, written in the dialect, read back the same.
pub fn csv(data: &[u8]) {
    match read_records(&mut dialect::Reader::new(data)) {
        Ok(rows) => {
            let again = write_records(&rows);
            let back = read_records(&mut dialect::Reader::new(&again[..]));
            assert_eq!(back.ok().as_ref(), Some(&rows), "written again: {again:?}");
        }
        Err(e) => {
            let message = e.to_string();
            one_line(&message, "line ");
            assert!(message.contains(", field "), "{message:?}");
        }
    }
}

const LABEL: &str = "fuzz/000001.csv.gz";

/// The first byte says how to read the rest: bit 0 gzip, else bit 2 zstd,
/// else plain CSV; bit 1 a recorded CSV length in the next 4 bytes
/// (little-endian).
fn chunk_input(data: &[u8]) -> (Compress, Option<u64>, &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return (Compress::None, None, data);
    };
    let compress = if mode & 1 == 1 {
        Compress::Gzip
    } else if mode & 4 == 4 {
        Compress::Zstd
    } else {
        Compress::None
    };
    if mode & 2 == 2 && rest.len() >= 4 {
        let (len, rest) = rest.split_at(4);
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
        return (compress, Some(u64::from(len)), rest);
    }
    (compress, None, rest)
}

/// `ChunkReader` over any bytes (see [`chunk_input`]): the header and
/// records, or an error naming the file.
pub fn chunk(data: &[u8]) {
    let (compress, csv_bytes, bytes) = chunk_input(data);
    let result = (|| {
        let input = Cursor::new(bytes.to_vec());
        let mut reader = ChunkReader::from_reader(LABEL, input, compress, csv_bytes)?;
        let mut record = Vec::new();
        let mut rows = 0u64;
        while reader.read_record(&mut record)? {
            rows += 1;
        }
        anyhow::Ok(rows)
    })();
    if let Err(e) = result {
        one_line(&format!("{e:#}"), LABEL);
    }
}

/// The conversion of a chunk into LOAD DATA's text (what `load` streams to
/// the server), from any bytes: a plain chunk whose header is taken as the
/// table's columns; the first byte marks up to 8 of them as hex. Every row
/// becomes one line of as many tab-separated fields as the header has.
pub fn load_data(data: &[u8]) {
    let Some((&hex_mask, rest)) = data.split_first() else {
        return;
    };
    let input = Cursor::new(rest.to_vec());
    let Ok(mut reader) = ChunkReader::from_reader(LABEL, input, Compress::None, None) else {
        return;
    };
    let Some(header) = reader.header().map(<[String]>::to_vec) else {
        return;
    };
    let decode_hex: Vec<bool> = (0..header.len())
        .map(|i| i < 8 && hex_mask >> i & 1 == 1)
        .collect();
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut rows = 0;
    let result = crate::load::load_data_rows(
        &mut reader,
        &header,
        &decode_hex,
        &mut buf,
        &mut rows,
        &mut |piece| {
            out.extend_from_slice(piece);
            Ok(())
        },
    );
    out.extend_from_slice(&buf);
    match result {
        Ok(()) => {
            let lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
            assert_eq!(lines.len() as u64, rows + 1, "{out:?}");
            for line in &lines[..lines.len() - 1] {
                let tabs = line.iter().filter(|&&b| b == b'\t').count();
                assert_eq!(tabs + 1, header.len(), "{line:?}");
            }
        }
        Err(e) => one_line(&format!("{e:#}"), LABEL),
    }
}

/// The JSON files of a dump: the first byte picks `manifest.json`,
/// `table.json`, a load journal, `export.log`, `process.log` or
/// `outputs.jsonl`; the rest is its text. What parses survives being written
/// and parsed again.
pub fn dump_files(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            match dump::parse_manifest(text, "manifest.json") {
                Ok(m) => {
                    let again = serde_json::to_string(&m).expect("a manifest serializes");
                    let back = dump::parse_manifest(&again, "manifest.json");
                    assert_eq!(back.ok().as_ref(), Some(&m), "{again}");
                }
                Err(e) => one_line(&format!("{e:#}"), "manifest.json"),
            }
        }
        1 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            match dump::parse_table(text, "table.json") {
                Ok(t) => {
                    let again = serde_json::to_string(&t).expect("a table serializes");
                    let back = dump::parse_table(&again, "table.json");
                    assert_eq!(back.ok().as_ref(), Some(&t), "{again}");
                }
                Err(e) => one_line(&format!("{e:#}"), "table.json"),
            }
        }
        2 => json_lines::<Event>(rest, |a, b| a == b),
        3 => json_lines::<ExportedChunk>(rest, |a, b| a.number == b.number && a.stats == b.stats),
        4 => json_lines::<ProcessedChunk>(rest, |a, b| {
            serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
        }),
        _ => json_lines::<OutputRecord>(rest, |a, b| {
            serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
        }),
    }
}

fn json_lines<T>(bytes: &[u8], same: impl Fn(&T, &T) -> bool)
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + std::fmt::Debug,
{
    const LOG: &str = "load@fuzz@db.jsonl";
    match dump::parse_json_lines::<T>(bytes, LOG) {
        Ok(values) => {
            let mut again = Vec::new();
            for v in &values {
                serde_json::to_writer(&mut again, v).expect("a log line serializes");
                again.push(b'\n');
            }
            let back = dump::parse_json_lines::<T>(&again, LOG).expect("written lines parse");
            assert_eq!(back.len(), values.len());
            for (a, b) in values.iter().zip(&back) {
                assert!(same(a, b), "{a:?} came back as {b:?}");
            }
        }
        Err(e) => one_line(&format!("{e:#}"), LOG),
    }
}

/// The JSON-lines output of a `process --exec` command: every line an
/// object with the first one's keys, or an error naming the output line.
pub fn jsonl_output(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut columns: Option<Vec<String>> = None;
    let mut row = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let line_no = i as u64 + 1;
        let result = crate::process::jsonl::parse_object(line, line_no).and_then(|object| {
            let columns = columns.get_or_insert_with(|| object.keys().cloned().collect());
            crate::process::jsonl::fields_of(&object, columns, line_no, &mut row)
        });
        if let Err(e) = result {
            one_line(&format!("{e:#}"), &format!("output line {line_no}"));
            return;
        }
        assert_eq!(row.len(), columns.as_ref().map_or(0, Vec::len));
    }
}

/// The `--map` protocol reader over any bytes, line by line: each line is
/// an answer or a one-line reason; an answer written again as JSON reads
/// back as the same kind of answer with the same rows and columns (values
/// are compared as far as JSON numbers survive a round trip, so not here).
pub fn map_answer(data: &[u8]) {
    use crate::process::map::protocol::{parse_answer, Answer, REJECT_KEY};
    for line in data.split(|&b| b == b'\n') {
        match parse_answer(line) {
            Ok(answer) => {
                let again = match &answer {
                    Answer::Drop => "null".to_string(),
                    Answer::Row(o) => serde_json::Value::Object(o.clone()).to_string(),
                    Answer::Rows(v) => serde_json::to_string(v).unwrap_or_default(),
                    Answer::Reject(why) => serde_json::json!({ REJECT_KEY: why }).to_string(),
                };
                let shape = |a: &Answer| {
                    let kind = std::mem::discriminant(a);
                    let columns: Vec<Vec<String>> = a
                        .rows()
                        .iter()
                        .map(|r| r.keys().cloned().collect())
                        .collect();
                    (kind, columns)
                };
                let back = parse_answer(again.as_bytes()).ok();
                assert_eq!(
                    back.as_ref().map(shape),
                    Some(shape(&answer)),
                    "written again: {again}"
                );
            }
            Err(e) => {
                let message = format!("{e:#}");
                assert!(
                    !message.is_empty() && !message.contains('\n'),
                    "{message:?}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Every input committed as a seed of a fuzz target (`fuzz/seeds/`)
    /// passes its target: the seeds stay meaningful as the readers change.
    #[test]
    fn every_seed_passes_its_target() {
        let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
        type Target = fn(&[u8]);
        let targets: [(&str, Target); 6] = [
            ("csv", csv),
            ("chunk", chunk),
            ("load_data", load_data),
            ("dump_files", dump_files),
            ("jsonl_output", jsonl_output),
            ("map_answer", map_answer),
        ];
        for (name, target) in targets {
            let mut n = 0;
            for entry in std::fs::read_dir(seeds.join(name)).unwrap() {
                target(&std::fs::read(entry.unwrap().path()).unwrap());
                n += 1;
            }
            assert!(n > 0, "no seed for {name}");
        }
    }

    // What the fuzz targets found, each fixed where it was.

    /// A journal line with a line end inside an unknown event name: serde's
    /// error quotes the name, and the error was two lines (now escaped).
    #[test]
    fn fuzz_dump_files_1_a_journal_error_quoting_a_line_end_is_one_line() {
        dump_files(DUMP_FILES_1);
        let err = dump::parse_json_lines::<Event>(b"{\"event\":\"a\\nb\"}\n{}\n", "j.jsonl")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("j.jsonl line 1: unknown variant `a\\nb`"),
            "{err}"
        );
    }

    const DUMP_FILES_1: &[u8] = b"\x02{\"event\":\"autefi\\nition\":\"`id` bigint(20) unsigned NOT NULL AUTO_INCREMENT\"}\n{\"eveping\",\"indexes\x00{\":[\"A\x03{\"num,\"chunk\"t\xffcsv_b\":\xff";

    /// A hex column whose name holds line ends, and a value that is not
    /// hex: the error printed the name raw (now with its control characters
    /// escaped, as `dump::one_line` does).
    #[test]
    fn fuzz_load_data_1_a_column_name_with_line_ends_is_quoted() {
        load_data(LOAD_DATA_1);
    }

    const LOAD_DATA_1: &[u8] = b"]\"\n\nH]\"\n\nH\xf1r\xf1r";
}
