//! Values the unit tests of `process` build their cases from.

use crate::dialect::Encoding;
use crate::dump::{
    ChunkRecord, ChunkStats, ColumnDescription, Compress, KeyDescription, KeyKind, TableDescription,
};

pub fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|n| n.to_string()).collect()
}

/// A NOT NULL int column.
pub fn column(name: &str) -> ColumnDescription {
    ColumnDescription {
        name: name.into(),
        column_type: "int(11)".into(),
        data_type: "int".into(),
        nullable: false,
        charset: None,
        collation: None,
        encoding: Encoding::Text,
        invisible: false,
    }
}

pub fn stats(rows: u64, sha256: &str) -> ChunkStats {
    ChunkStats {
        rows,
        bytes: 10,
        csv_bytes: 20,
        sha256: sha256.into(),
    }
}

pub fn chunk(number: u32, written: Option<ChunkStats>) -> ChunkRecord {
    ChunkRecord {
        number,
        file: "old".into(),
        lower: None,
        upper: None,
        written,
    }
}

/// `shop.t`, keyed on its primary key `id`.
pub fn table(columns: &[&str], chunks: Vec<ChunkRecord>) -> TableDescription {
    TableDescription {
        db: "shop".into(),
        table: "t".into(),
        columns: columns.iter().map(|c| column(c)).collect(),
        generated_columns: vec![],
        left_out: None,
        key: KeyDescription {
            kind: KeyKind::Primary,
            index: Some("PRIMARY".into()),
            columns: vec!["id".into()],
        },
        chunk_rows: 10,
        planned_rows: 100,
        compress: Compress::Gzip,
        chunks,
        complete: true,
    }
}
