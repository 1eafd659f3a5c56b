//! Every column type, charset and odd value makes the round trip exactly:
//! export from one server → process with `cat` → load into a fresh table on
//! another server, then `CHECKSUM TABLE` and a row-by-row comparison of every
//! column in an exact form (HEX for strings and binary, plain text for
//! integers, DECIMAL and temporal types, `col + 0e0` for FLOAT and DOUBLE).

use myspool::load::AutoincPolicy;
use myspool::process::{process, ProcessOptions};
use myspool::progress::ProgressMode;

use crate::common::*;

/// Creates `setup` (SQL run in a fresh database on the source), then
/// export → process(cat) → load into a fresh database on the target, and
/// compares every table named in `tables` (name, ORDER BY).
fn round_trip(setup: &str, tables: &[(&str, &str)]) {
    round_trip_in_chunks(setup, tables, 7);
}

/// [`round_trip`] with chunks of `chunk_rows` rows.
fn round_trip_in_chunks(setup: &str, tables: &[(&str, &str)], chunk_rows: u64) {
    let (src, dst) = (source_server(), target_server());
    let (db, dump) = dumped_db(
        &src,
        "types",
        &format!("SET time_zone = '+00:00'; {setup}"),
        "*",
        chunk_rows,
    );
    let work = tempfile::tempdir().unwrap();
    let processed = work.path().join("cat");
    let mut p = ProcessOptions::new(dump.path(), &processed, "cat");
    p.progress = ProgressMode::Quiet;
    let ps = process(&p).unwrap_or_else(|err| panic!("process: {err:#}"));
    assert!(ps.failed.is_empty(), "{:?}", ps.failed);
    let into = dst.fresh_db("types_copy");
    let mut l = load_options(&dst, &processed);
    l.into = Some(into.clone());
    l.autoinc = AutoincPolicy::Drop;
    run_load(&l);

    for (table, order) in tables {
        let a = typed_rows(&src, &db, table, order);
        assert!(!a.is_empty(), "{table}: the test table is empty");
        assert_same_rows(table, &a, &typed_rows(&dst, &into, table, order));
        // CHECKSUM TABLE of a table with a VIRTUAL column is not a function of
        // its content on MariaDB 10.11: a copy made on the same server with
        // INSERT … SELECT, equal row for row, checksums differently. The
        // row-by-row comparison above covers those tables.
        let has_virtual = count(
            &src,
            &format!(
                "information_schema.COLUMNS WHERE TABLE_SCHEMA = '{db}' \
                 AND TABLE_NAME = '{table}' AND EXTRA LIKE '%VIRTUAL%'"
            ),
        ) != 0;
        if !has_virtual {
            assert_eq!(
                checksum(&src, &db, table),
                checksum(&dst, &into, table),
                "{table}: CHECKSUM TABLE"
            );
        }
    }
}

#[test]
fn integers_of_every_width_at_their_extremes_bool_and_bit() {
    round_trip(
        "CREATE TABLE i (id INT PRIMARY KEY,
            t TINYINT, tu TINYINT UNSIGNED, s SMALLINT, su SMALLINT UNSIGNED, m MEDIUMINT, mu MEDIUMINT UNSIGNED,
            n INT, nu INT UNSIGNED, b BIGINT, bu BIGINT UNSIGNED, z INT(5) ZEROFILL, bo BOOL, b1 BIT(1), b64 BIT(64), b12 BIT(12));
         INSERT INTO i VALUES
            (1, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, 0, FALSE, b'0', b'0', b'0'),
            (2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615, 42, TRUE, b'1',
                b'1111111111111111111111111111111111111111111111111111111111111111', b'101010101010'),
            (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
            (4, 0, 1, -1, 1, 0, 1, 0, 1, 0, 1, 1, 2, b'0', b'1000000000000000000000000000000000000000000000000000000000000001', b'1');",
        &[("i", "id")],
    );
}

#[test]
fn decimal_float_and_double_keep_every_digit() {
    round_trip(
        "CREATE TABLE d (id INT PRIMARY KEY, big DECIMAL(65,30), whole DECIMAL(10,0), money DECIMAL(12,2) UNSIGNED,
            f FLOAT, d DOUBLE, f2 FLOAT(7,3), d2 DOUBLE(10,4));
         INSERT INTO d VALUES
            (1, -12345678901234567890123456789012345.123456789012345678901234567890, -9999999999, 0.01, 0.1, 0.1, 1.5, 1.25),
            (2, 99999999999999999999999999999999999.999999999999999999999999999999, 9999999999, 9999999999.99, 3.40282e38, 1.7976931348623157e308, -9999.999, 123456.7891),
            (3, 0.000000000000000000000000000001, 0, 0, 1e-38, 5e-324, 0, 0),
            (4, NULL, NULL, NULL, 16777217, 0.30000000000000004, NULL, NULL),
            (5, -0.5, -1, 1, -1.17549435e-38, -2.2250738585072014e-308, 0.001, -0.0001),
            (6, 1, 1, 1, 1.00000012, 4.9406564584124654e-324, 1, 1);",
        &[("d", "id")],
    );
}

#[test]
fn temporal_types_with_fractions_negative_times_and_zero_dates() {
    round_trip(
        "SET SESSION sql_mode = '';
         CREATE TABLE tm (id INT PRIMARY KEY, d DATE, dt0 DATETIME, dt3 DATETIME(3), dt6 DATETIME(6),
            ts0 TIMESTAMP NULL DEFAULT NULL, ts6 TIMESTAMP(6) NULL DEFAULT NULL, t0 TIME, t6 TIME(6), y YEAR);
         INSERT INTO tm VALUES
            (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00.000', '2020-00-15 00:00:00.000000', '0000-00-00 00:00:00', NULL, '-838:59:59', '-838:59:59.000000', 0),
            (2, '1000-01-01', '1000-01-01 00:00:00', '9999-12-31 23:59:59.999', '9999-12-31 23:59:59.999999', '1970-01-01 00:00:01', '2038-01-19 03:14:07.999999', '838:59:59', '838:59:59.000000', 1901),
            (3, '2020-02-29', '2024-03-31 02:30:00', '2024-10-27 02:30:00.5', '2024-02-29 12:00:00.000001', '2024-03-31 02:30:00', '2024-10-27 01:30:00.123456', '-00:00:01', '-00:00:00.000001', 2155),
            (4, '2020-00-00', NULL, NULL, NULL, NULL, NULL, '25:00:00', '100:00:00.5', NULL);",
        &[("tm", "id")],
    );
}

#[test]
fn text_in_every_charset_enum_set_and_json() {
    round_trip(
        "CREATE TABLE s (id INT PRIMARY KEY,
            u VARCHAR(100) CHARACTER SET utf8mb4, l VARCHAR(200) CHARACTER SET latin1, bin VARCHAR(50) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
            c CHAR(10), cl CHAR(10) CHARACTER SET latin1, tx TEXT, mt MEDIUMTEXT CHARACTER SET utf8mb3,
            e ENUM('', 'a', 'b,c', 'd''e') NULL, st SET('', 'x', 'y', 'z') NULL, j JSON NULL);
         INSERT INTO s VALUES
            (1, 'emoji \u{1f600}\u{1f3fd} and combining e\u{301}', CONCAT('latin1 ', CONVERT((SELECT GROUP_CONCAT(UNHEX(HEX(seq)) SEPARATOR '') FROM seq_128_to_255) USING latin1)), 'Case',
             'trail  ', 'x  ', 'tab\\there', 'utf8mb3 \u{e9}', '', '', '{\"b\": 1, \"a\": [1, 2.50, \"\\\\u00e9\"]}'),
            (2, 'trailing spaces   ', 'sp\u{e9}cial \u{e0} \u{ff}', 'case', '', '', '', '', 'a', 'x,z', '[]'),
            (3, '', '', '', 'NULL', '\\\\N', 'NULL', '\\\\N', 'b,c', 'x,y,z', 'null'),
            (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
            (5, '\"quoted\", comma', 'back\\\\slash', ' lead', '\"', ',', 'cr\\rlf\\r\\nlf\\n', 'lone\\r', 'd''e', 'y', CONCAT('{\"k\": \"', REPEAT('v', 70000), '\"}')),
            (6, '\"id\",\"u\",\"l\"', 'id', 'u', 'id', 'l', '\"id\",\"u\",\"l\",\"bin\",\"c\"', 'x', 'a', '', '{\"emoji\": \"\u{1f600}\", \"nested\": {\"z\": null}}');",
        &[("s", "id")],
    );
}

#[test]
fn binary_types_with_every_byte_and_geometry() {
    round_trip(
        "CREATE TABLE b (id INT PRIMARY KEY, bn BINARY(4), vb VARBINARY(300), tb TINYBLOB, bl BLOB, mb MEDIUMBLOB, lb LONGBLOB, g GEOMETRY NULL, p POINT NULL);
         INSERT INTO b VALUES
            (1, X'01', X'000102', X'', X'FF', X'00', X'0D0A', ST_GeomFromText('POINT(1 2)'), ST_GeomFromText('POINT(-1.5 1e-10)')),
            (2, X'00000000', (SELECT GROUP_CONCAT(UNHEX(LPAD(HEX(seq), 2, '0')) SEPARATOR '') FROM seq_0_to_255), X'5C4E', X'22', X'2C', X'09',
             ST_GeomFromText('POLYGON((0 0, 10 0, 10 10, 0 10, 0 0), (2 2, 3 2, 3 3, 2 2))', 4326), ST_GeomFromText('POINT(5 5)', 3857)),
            (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
            (4, X'FFFFFFFF', X'', X'5C', REPEAT(X'00FF', 30000), REPEAT(X'AB', 200000), REPEAT(X'0A0D5C2209', 300000),
             ST_GeomFromText('MULTILINESTRING((0 0, 1 1), (2 2, 3 3))'), NULL);",
        &[("b", "id")],
    );
}

/// A table of UTF-8 text and binary strings only is loaded from raw bytes
/// (`CHARACTER SET binary`, no expressions): bytes that would start a UTF-8
/// sequence right before a tab, a newline or a backslash must stay bytes.
#[test]
fn binary_strings_next_to_utf8_text_keep_every_byte() {
    round_trip(
        "SET sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO');
         CREATE TABLE r (id BIGINT AUTO_INCREMENT PRIMARY KEY, t VARCHAR(50) CHARACTER SET utf8mb4,
            t3 VARCHAR(50) CHARACTER SET utf8mb3, vb VARBINARY(600), bl BLOB, bn BINARY(3), n INT)
            CHARACTER SET utf8mb4;
         INSERT INTO r VALUES
            (0, 'id zero', 'caf\u{e9}', X'E309E35CF00AC30D', X'C3', X'E35C6E', 0),
            (1, 'emoji \u{1f600}', NULL, (SELECT GROUP_CONCAT(UNHEX(LPAD(HEX(seq), 2, '0')) SEPARATOR '') FROM seq_0_to_255),
             (SELECT GROUP_CONCAT(UNHEX(LPAD(HEX(255 - seq), 2, '0')) SEPARATOR '') FROM seq_0_to_255), X'F09F98', NULL),
            (2, X'5C4E', 'NULL', X'5C4E', X'', X'000000', -1),
            (3, '', '', X'', NULL, X'0A0909', 2);",
        &[("r", "id")],
    );
}

#[test]
fn odd_keys_generated_and_invisible_columns() {
    round_trip(
        "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO';
         CREATE TABLE a (id INT AUTO_INCREMENT PRIMARY KEY, v INT, doubled INT AS (v * 2) VIRTUAL, stored VARCHAR(20) AS (CONCAT('s', v)) PERSISTENT,
            hidden INT INVISIBLE DEFAULT 7,
            made TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
            tag VARCHAR(40) DEFAULT (CONCAT('t', RAND())));
         INSERT INTO a (id, v, hidden) VALUES (0, 1, 10), (-5, 2, NULL), (-2147483648, 3, 11), (2147483647, 4, 12);
         INSERT INTO a (id, v) SELECT seq, seq FROM seq_1_to_30;
         CREATE TABLE sk (k VARCHAR(20) COLLATE utf8mb4_nopad_bin PRIMARY KEY, v INT);
         INSERT INTO sk VALUES ('a', 1), ('A', 2), ('a ', 3), ('\u{e9}', 4), ('e\u{301}', 5), ('', 6), ('\u{1f600}', 7), ('z', 8), ('Z', 9), ('0', 10);
         CREATE TABLE ck (a DATE, b DECIMAL(5,2), c VARBINARY(4), v INT, PRIMARY KEY (a, b, c));
         INSERT INTO ck SELECT DATE('2024-01-01') + INTERVAL (seq % 3) DAY, (seq % 4) / 4, UNHEX(LPAD(HEX(seq), 4, '0')), seq FROM seq_1_to_40;
         CREATE TABLE nk (a INT, b TEXT);
         INSERT INTO nk VALUES (1, 'x'), (1, 'x'), (NULL, NULL), (2, '');",
        &[("a", "id"), ("sk", "k"), ("ck", "a, b, c"), ("nk", "a, b")],
    );
    // The invisible column came back too (SELECT * would not show it), and
    // the columns with expression defaults (DEFAULT_GENERATED on MySQL 8)
    // kept the source's values instead of taking new ones at the load.
}

/// Random finite values of every magnitude, and the edges: FLOAT and DOUBLE
/// come back bit for bit (compared as `col + 0e0` and its sign). The server
/// reads a FLOAT by parsing a DOUBLE and refusing anything beyond ±FLT_MAX
/// before narrowing it, so the text written for FLT_MAX must not be its
/// shortest form, 3.4028235e38, which is above FLT_MAX as a DOUBLE.
/// NaN and infinities are left out: neither server stores them.
#[test]
fn every_float_and_double_bit_pattern_swept_comes_back_exactly() {
    let mut floats = float_edges();
    let mut doubles = double_edges();
    let mut random = SplitMix64(0x5eed_f10a7);
    while floats.len() < FLOAT_SWEEP {
        let f = f32::from_bits(random.next() as u32);
        if f.is_finite() {
            floats.push(f);
        }
    }
    while doubles.len() < FLOAT_SWEEP {
        let d = f64::from_bits(random.next());
        if d.is_finite() {
            doubles.push(d);
        }
    }
    // Each value is inserted as the shortest text of the DOUBLE it is (a
    // FLOAT widened exactly), which the server parses back to that DOUBLE
    // and narrows without rounding.
    let rows: Vec<String> = floats
        .iter()
        .zip(&doubles)
        .enumerate()
        .map(|(i, (f, d))| format!("({i}, {:e}, {d:e})", f64::from(*f)))
        .collect();
    let inserts: Vec<String> = rows
        .chunks(5000)
        .map(|batch| format!("INSERT INTO fd VALUES {};", batch.join(", ")))
        .collect();
    round_trip_in_chunks(
        &format!(
            "CREATE TABLE fd (id INT PRIMARY KEY, f FLOAT NOT NULL, d DOUBLE NOT NULL); {}",
            inserts.join("\n")
        ),
        &[("fd", "id")],
        25_000,
    );
}

/// Rows of the FLOAT/DOUBLE sweep: the edges, then random bit patterns.
const FLOAT_SWEEP: usize = 100_000;

/// ±FLT_MAX, ±FLT_MIN, ±the smallest subnormal, zero, and every power of
/// two with its neighbours above and below.
fn float_edges() -> Vec<f32> {
    let mut v = vec![f32::MAX, f32::MIN_POSITIVE, f32::from_bits(1), 0.0];
    for exp in -149i32..=127 {
        // 2^exp built from its bits (powi underflows for the subnormals).
        let bits = if exp >= -126 {
            ((exp + 127) as u32) << 23
        } else {
            1 << (exp + 149)
        };
        v.extend([bits, bits + 1, bits - 1].map(f32::from_bits));
    }
    let negated: Vec<f32> = v.iter().map(|f| -f).collect();
    v.extend(negated);
    v.retain(|f| f.is_finite());
    v
}

/// The same edges for DOUBLE.
fn double_edges() -> Vec<f64> {
    let mut v = vec![f64::MAX, f64::MIN_POSITIVE, f64::from_bits(1), 0.0];
    for exp in -1074i32..=1023 {
        let bits = if exp >= -1022 {
            ((exp + 1023) as u64) << 52
        } else {
            1 << (exp + 1074)
        };
        v.extend([bits, bits + 1, bits - 1].map(f64::from_bits));
    }
    let negated: Vec<f64> = v.iter().map(|d| -d).collect();
    v.extend(negated);
    v.retain(|d| d.is_finite());
    v
}

/// A small, seeded generator (SplitMix64): the sweep is the same every run.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
