//! Reading dumps back in tests: every chunk of a table, decoded into the
//! values the server holds (hex columns turned back into bytes).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use myspool::dialect::{self, Encoding, Field};
use myspool::dump::{DumpDir, Manifest, TableDescription, TableEntry};

pub type Rows = Vec<Vec<Field>>;

pub fn manifest(dir: &Path) -> Manifest {
    DumpDir::new(dir)
        .read_manifest()
        .expect("reading manifest")
        .expect("no manifest")
}

pub fn entry(dir: &Path, db: &str, table: &str) -> TableEntry {
    manifest(dir)
        .tables
        .into_iter()
        .find(|t| t.db == db && t.table == table)
        .unwrap_or_else(|| panic!("{db}.{table} is not in the manifest"))
}

pub fn description(dir: &Path, db: &str, table: &str) -> TableDescription {
    let e = entry(dir, db, table);
    DumpDir::new(dir)
        .read_table(&e)
        .expect("reading table.json")
        .expect("no table.json")
}

/// The decompressed bytes of one chunk file.
pub fn chunk_csv(path: &Path) -> Vec<u8> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(file)
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    } else if path.extension().is_some_and(|e| e == "zst") {
        out = zstd::decode_all(file).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    } else {
        BufReader::new(file).read_to_end(&mut out).unwrap();
    }
    out
}

/// Header and rows of one chunk, as written (hex still hex).
pub fn chunk_records(path: &Path) -> (Vec<String>, Rows) {
    let csv = chunk_csv(path);
    let mut reader = dialect::Reader::new(&csv[..]);
    let mut header = Vec::new();
    assert!(
        reader.read_record(&mut header).expect("header"),
        "{}: empty chunk file (no header)",
        path.display()
    );
    let header = header
        .into_iter()
        .map(|f| String::from_utf8(f.expect("NULL in header")).unwrap())
        .collect();
    let mut rows = Vec::new();
    let mut rec = Vec::new();
    while reader
        .read_record(&mut rec)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    {
        rows.push(rec.clone());
    }
    (header, rows)
}

/// Every row of a dumped table, in chunk order, with hex columns decoded.
pub fn table_rows(dir: &Path, db: &str, table: &str) -> Rows {
    let e = entry(dir, db, table);
    let desc = description(dir, db, table);
    let names: Vec<String> = desc.columns.iter().map(|c| c.name.clone()).collect();
    let mut all = Vec::new();
    for chunk in &desc.chunks {
        assert!(
            chunk.written.is_some(),
            "chunk {} not written",
            chunk.number
        );
        let path = dir.join(&e.dir).join(&chunk.file);
        let (header, rows) = chunk_records(&path);
        assert_eq!(header, names, "{}: header", path.display());
        let stats = chunk.written.as_ref().unwrap();
        assert_eq!(
            rows.len() as u64,
            stats.rows,
            "{}: row count",
            path.display()
        );
        for mut row in rows {
            assert_eq!(row.len(), names.len(), "{}: field count", path.display());
            for (value, col) in row.iter_mut().zip(&desc.columns) {
                if col.encoding == Encoding::Hex {
                    if let Some(v) = value {
                        *v = dialect::decode_hex(v).expect("bad hex in a hex column");
                    }
                }
            }
            all.push(row);
        }
    }
    all
}

/// Every chunk that the journal `table_dir/log` (`export.log`,
/// `process.log`) records as done is whole: its file `NNNNNN.ext` has the
/// recorded SHA-256.
#[track_caller]
pub fn assert_recorded_chunks_whole(table_dir: &Path, log: &str, ext: &str) {
    let journal = std::fs::read_to_string(table_dir.join(log)).unwrap_or_default();
    for line in journal.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let file = table_dir.join(format!("{:06}.{ext}", v["number"].as_u64().unwrap()));
        assert_eq!(
            myspool::dump::sha256_file(&file).unwrap(),
            v["sha256"].as_str().unwrap()
        );
    }
}

/// The chunks of a table that cooperating `process` runners committed.
pub fn committed_chunks(table_dir: &Path) -> usize {
    std::fs::read_dir(table_dir.join(myspool::dump::CLAIMS_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".done"))
        .count()
}

/// Every chunk cooperating runners committed is whole: its file (in the
/// table's directory, or still in the claim's) has the checksum recorded.
pub fn assert_committed_chunks_whole(table_dir: &Path, ext: &str) {
    let claims = table_dir.join(myspool::dump::CLAIMS_DIR);
    for e in std::fs::read_dir(&claims).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(unit) = name.strip_suffix(".done") else {
            continue;
        };
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(e.path().join("claim.json")).unwrap())
                .unwrap();
        let file = format!("{unit}.{ext}");
        let path = [table_dir.join(&file), e.path().join(&file)]
            .into_iter()
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{file} of a committed claim is missing"));
        assert_eq!(
            myspool::dump::sha256_file(&path).unwrap(),
            record["chunk"]["sha256"].as_str().unwrap()
        );
    }
}
