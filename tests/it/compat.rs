//! Cross-vendor schemas (issue 17): a dump exported from MySQL 8 loaded into
//! MariaDB maps what has an equivalent, refuses the rest before anything is
//! created or locked, and `check --dir` says the same; a MariaDB dump into
//! MariaDB is never refused. (No MySQL server here: the MySQL side is the
//! unit tests of `load::compat` on MySQL's own output.)

use std::path::Path;

use crate::common::mysql8::{mysql8_dump, ORDERS};
use crate::common::*;

fn column_facts(server: &Server, db: &str, table: &str, column: &str) -> (String, String) {
    let row = server.query_strings(&format!(
        "SELECT COALESCE(COLLATION_NAME, ''), EXTRA FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = '{table}' AND COLUMN_NAME = '{column}'"
    ));
    let row = &row[0];
    (row[0].clone().unwrap(), row[1].clone().unwrap())
}

/// Journal files (`load@…`) anywhere in the dump.
fn journals(dir: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            n += journals(&e.path());
        } else if e.file_name().to_string_lossy().starts_with("load@") {
            n += 1;
        }
    }
    n
}

#[test]
fn a_mysql_8_dump_loads_into_mariadb_with_collations_mapped_and_invisible_columns_kept() {
    let src = source_server();
    let dst = target_server();
    let (db, dir) = mysql8_dump(&src, "m8map", ORDERS);
    let into = format!("{db}_into");

    // check --dir says what the load will do, and allows it.
    let out = myspool(&[
        "check",
        "--to",
        &dst.url(),
        "--dir",
        &path_arg(dir.path()),
        "--into",
        &into,
    ]);
    assert_success(&out);
    let report = stdout(&out);
    assert!(report.contains(&format!("schema mapped: collation utf8mb4_0900_as_cs -> utf8mb4_uca1400_nopad_as_cs (closest equivalent) in {into}.orders")), "{report}");

    let out = myspool(&load_args(
        dir.path(),
        &dst,
        &["--into", &into, "--progress", "none"],
    ));
    assert_success(&out);
    let said = stderr(&out);
    for m in [
        format!("schema mapped: collation utf8mb4_0900_ai_ci -> utf8mb4_uca1400_nopad_ai_ci (closest equivalent) in {into}.orders"),
        format!("schema mapped: collation utf8mb4_sv_0900_ai_ci -> utf8mb4_uca1400_swedish_nopad_ai_ci (closest equivalent) in {into}.orders"),
        format!("schema mapped: {into}.events ({}/{db}/events/schema.sql, column `my_row_id`): /*!80023 INVISIBLE */ -> INVISIBLE", dir.path().display()),
        "index `by_customer`): MariaDB ignores /*!80000 INVISIBLE */: the index becomes visible to the optimizer".to_string(),
    ] {
        assert!(said.contains(&m), "{m:?} not in:\n{said}");
    }
    // The database and the columns got the mapped collations.
    assert_eq!(
        dst.scalar(&format!("SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{into}'")).as_deref(),
        Some("utf8mb4_uca1400_nopad_ai_ci")
    );
    assert_eq!(
        column_facts(&dst, &into, "orders", "customer").0,
        "utf8mb4_uca1400_nopad_as_cs"
    );
    assert_eq!(
        column_facts(&dst, &into, "orders", "note").0,
        "utf8mb4_uca1400_swedish_nopad_ai_ci"
    );
    // Invisible columns stay invisible, with their values: MySQL's GIPK
    // keeps its numbers, and SELECT * does not show it.
    assert!(column_facts(&dst, &into, "orders", "secret")
        .1
        .contains("INVISIBLE"));
    assert!(column_facts(&dst, &into, "events", "my_row_id")
        .1
        .contains("INVISIBLE"));
    assert_eq!(
        count(
            &dst,
            &format!("`{into}`.orders WHERE secret = CONCAT('s', id)")
        ),
        100
    );
    assert_eq!(
        dst.scalar(&format!("SELECT SUM(my_row_id) FROM `{into}`.events"))
            .as_deref(),
        Some("3825")
    );
    let star = dst.query_strings(&format!("SELECT * FROM `{into}`.events LIMIT 1"));
    assert_eq!(star[0].len(), 2, "SELECT * shows c1 and c2 only");
}

/// The MySQL 8 `orders` with what has no MariaDB equivalent: a Japanese
/// collation and a CHECK the source did not enforce.
fn refused_orders() -> String {
    ORDERS
        .replace("COLLATE utf8mb4_sv_0900_ai_ci", "COLLATE utf8mb4_ja_0900_as_cs_ks")
        .replace(
            "  PRIMARY KEY (`id`),",
            "  PRIMARY KEY (`id`),\n  CONSTRAINT `qty_big` CHECK ((`qty` > 1000)) /*!80016 NOT ENFORCED */,",
        )
}

#[test]
fn a_refused_mysql_8_schema_leaves_the_target_untouched_and_check_says_the_same() {
    let src = source_server();
    let dst = target_server();
    let (db, dir) = mysql8_dump(&src, "m8ref", &refused_orders());
    let schema = format!("{}/{db}/orders/schema.sql", dir.path().display());
    let collation = format!(
        "{db}.orders ({schema}, column `note`): collation utf8mb4_ja_0900_as_cs_ks does not exist on the target (MariaDB) and has no equivalent there: pass --collation-map utf8mb4_ja_0900_as_cs_ks=<one of the target's collations>"
    );
    let check = format!(
        "{db}.orders ({schema}, constraint `qty_big`): MariaDB ignores /*!80016 NOT ENFORCED */"
    );

    let out = myspool(&load_args(dir.path(), &dst, &["--progress", "none"]));
    let error = assert_one_line_error(&out);
    assert!(
        error.contains("nothing was loaded")
            && error.contains(&collation)
            && error.contains(&check),
        "{error}"
    );
    // Nothing created, locked or journaled: not the database, not `events`
    // (which alone would have loaded), no journal in the dump.
    assert_eq!(
        dst.scalar(&format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'"
        ))
        .as_deref(),
        Some("0")
    );
    assert_eq!(
        dst.scalar(&format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{db}'"
        ))
        .as_deref(),
        Some("0")
    );
    assert_eq!(
        dst.scalar(&format!("SELECT IS_USED_LOCK('myspool:{db}.orders')")),
        None
    );
    assert_eq!(journals(dir.path()), 0);

    // check --dir finds the same problems, in the same words.
    let out = myspool(&["check", "--to", &dst.url(), "--dir", &path_arg(dir.path())]);
    assert!(!out.status.success());
    let report = stdout(&out);
    assert!(
        report.contains(&format!("problem: {collation}"))
            && report.contains(&format!("problem: {check}")),
        "{report}"
    );
    assert!(stderr(&out).contains("2 problem(s)"));

    // --collation-map answers the collation; the CHECK still refuses.
    let map = ["--collation-map", "utf8mb4_ja_0900_as_cs_ks=utf8mb4_bin"];
    let out = myspool(
        &[
            &["check", "--to", &dst.url(), "--dir", &path_arg(dir.path())][..],
            &map[..],
        ]
        .concat(),
    );
    let report = stdout(&out);
    assert!(!out.status.success());
    assert!(
        !report.contains("utf8mb4_ja_0900_as_cs_ks does not exist") && report.contains(&check),
        "{report}"
    );
    assert!(report.contains(&format!("schema mapped: collation utf8mb4_ja_0900_as_cs_ks -> utf8mb4_bin (--collation-map) in {db}.orders")), "{report}");
    let out = myspool(&load_args(
        dir.path(),
        &dst,
        &[&["--progress", "none"][..], &map[..]].concat(),
    ));
    assert!(assert_one_line_error(&out).contains(&check));
    assert_eq!(
        dst.scalar(&format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{db}'"
        ))
        .as_deref(),
        Some("0")
    );
}

#[test]
fn a_bad_collation_map_argument_is_refused_by_the_cli() {
    let out = myspool(&[
        "check",
        "--to",
        "mysql://root@127.0.0.1:1/",
        "--table",
        "a.b",
        "--collation-map",
        "utf8mb4_0900_ai_ci",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("expected FROM=TO"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn mariadb_only_schemas_load_into_mariadb_without_refusal() {
    let src = source_server();
    let dst = target_server();
    let (db, dir) = dumped_db(
        &src,
        "mdb",
        "CREATE TABLE hosts (id UUID NOT NULL PRIMARY KEY, v4 INET4, v6 INET6,
           note TEXT DEFAULT 'none', name VARCHAR(20) COLLATE utf8mb4_uca1400_ai_ci)
           ENGINE=Aria DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_uca1400_ai_ci;
         INSERT INTO hosts (id, v4, v6, name) SELECT UUID(), '10.0.0.1', '::1', CONCAT('h', seq) FROM seq_1_to_20;
         CREATE TABLE keyless (a INT, b VARCHAR(9));
         INSERT INTO keyless SELECT seq, 'x' FROM seq_1_to_20;",
        "*",
        100,
    );
    let into = format!("{db}_into");
    let out = myspool(&load_args(
        dir.path(),
        &dst,
        &["--into", &into, "--progress", "none"],
    ));
    assert_success(&out);
    assert!(
        !stderr(&out).contains("schema mapped") && !stderr(&out).contains("warning"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&dst, &format!("`{into}`.hosts")), 20);
    assert_eq!(count(&dst, &format!("`{into}`.keyless")), 20);
    assert!(show_create(&dst, &into, "hosts").contains("ENGINE=Aria"));
}

#[test]
fn a_target_table_with_a_generated_invisible_primary_key_is_explained() {
    // What MySQL 8.0.30+ makes of a keyless CREATE with
    // sql_generate_invisible_primary_key=ON, made here by hand.
    let src = source_server();
    let dst = target_server();
    let (db, dir) = dumped_db(
        &src,
        "gipk",
        "CREATE TABLE auto_1 (c1 VARCHAR(50), c2 INT); INSERT INTO auto_1 SELECT 'x', seq FROM seq_1_to_10;",
        "auto_1",
        100,
    );
    dst.query(&format!(
        "CREATE DATABASE `{db}`; CREATE TABLE `{db}`.auto_1 (my_row_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT INVISIBLE PRIMARY KEY, c1 VARCHAR(50), c2 INT)"
    ));
    let out = myspool(&load_args(dir.path(), &dst, &["--progress", "none"]));
    let error = assert_one_line_error(&out);
    assert!(
        error.contains(
            "column(s) not in the dump: my_row_id (my_row_id is the primary key MySQL 8.0.30+ adds"
        ),
        "{error}"
    );
    assert_eq!(count(&dst, &format!("`{db}`.auto_1")), 0);
}
