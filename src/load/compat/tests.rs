//! `adapt` on captured `SHOW CREATE` text: MySQL 8.0/8.4 output (written as
//! the reference manual shows it: `int` without display width, `/*!80023
//! INVISIBLE */`, `/*!80016 NOT ENFORCED */`, SRID, functional key parts,
//! the GIPK example of "Generated Invisible Primary Keys") read against a
//! MariaDB 10.11 catalog, and MariaDB 10.11.19 output (captured here) read
//! against a MySQL 8 one.

use super::*;

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// What MariaDB 10.11 has (the part these tests touch).
fn mariadb_10_11() -> TargetCatalog {
    TargetCatalog {
        flavor: Flavor::MariaDb,
        collations: set(&[
            "utf8mb4_general_ci",
            "utf8mb4_bin",
            "utf8mb4_nopad_bin",
            "utf8mb4_unicode_520_nopad_ci",
            "utf8mb4_uca1400_ai_ci",
            "utf8mb4_uca1400_nopad_ai_ci",
            "utf8mb4_uca1400_nopad_as_ci",
            "utf8mb4_uca1400_nopad_as_cs",
            "utf8mb4_uca1400_swedish_nopad_ai_ci",
            "utf8mb4_uca1400_german2_nopad_as_cs",
            "latin1_swedish_ci",
        ]),
        charsets: set(&["utf8mb4", "utf8mb3", "latin1", "binary"]),
        engines: set(&[
            "innodb",
            "myisam",
            "aria",
            "memory",
            "csv",
            "mrg_myisam",
            "sequence",
        ]),
    }
}

/// MariaDB 10.6–10.9: no uca1400 collations.
fn mariadb_10_6() -> TargetCatalog {
    let mut c = mariadb_10_11();
    c.collations.retain(|n| !n.contains("uca1400"));
    c
}

fn mysql_8() -> TargetCatalog {
    TargetCatalog {
        flavor: Flavor::MySql,
        collations: set(&[
            "utf8mb4_0900_ai_ci",
            "utf8mb4_0900_as_cs",
            "utf8mb4_0900_bin",
            "utf8mb4_general_ci",
            "utf8mb4_bin",
            "latin1_swedish_ci",
        ]),
        charsets: set(&["utf8mb4", "utf8mb3", "latin1", "binary"]),
        engines: set(&[
            "innodb",
            "myisam",
            "memory",
            "csv",
            "archive",
            "blackhole",
            "mrg_myisam",
            "federated",
            "performance_schema",
        ]),
    }
}

fn run(sql: &str, target: &TargetCatalog, map: &CollationMap) -> Adapted {
    adapt(
        &SchemaSource {
            table: "shop.orders",
            schema_file: "shop/orders/schema.sql",
            schema_sql: sql,
            database: None,
        },
        target,
        map,
    )
}

/// MySQL 8.0.36's SHOW CREATE TABLE of a table with most of what differs.
const MYSQL_ORDERS: &str = "CREATE TABLE `orders` (
  `id` int NOT NULL AUTO_INCREMENT,
  `customer` varchar(64) COLLATE utf8mb4_0900_as_cs NOT NULL,
  `note` text COLLATE utf8mb4_sv_0900_ai_ci,
  `code` varbinary(8) DEFAULT NULL,
  `secret` varchar(20) DEFAULT NULL /*!80023 INVISIBLE */,
  `created` timestamp NULL DEFAULT CURRENT_TIMESTAMP,
  `qty` int NOT NULL,
  `pos` point NOT NULL /*!80003 SRID 4326 */,
  PRIMARY KEY (`id`),
  KEY `by_customer` (`customer`) /*!80000 INVISIBLE */,
  SPATIAL KEY `by_pos` (`pos`)
) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci /*!80016 ENCRYPTION='N' */";

#[test]
fn mysql_8_collations_map_to_mariadb_equivalents_and_are_rewritten() {
    let a = run(MYSQL_ORDERS, &mariadb_10_11(), &CollationMap::default());
    assert!(a.problems.is_empty(), "{:?}", a.problems);
    assert!(a
        .schema_sql
        .contains("COLLATE utf8mb4_uca1400_nopad_as_cs NOT NULL"));
    assert!(a
        .schema_sql
        .contains("`note` text COLLATE utf8mb4_uca1400_swedish_nopad_ai_ci,"));
    assert!(a
        .schema_sql
        .ends_with("COLLATE=utf8mb4_uca1400_nopad_ai_ci /*!80016 ENCRYPTION='N' */"));
    assert!(!a.schema_sql.contains("0900"));
    for m in [
        "collation utf8mb4_0900_as_cs -> utf8mb4_uca1400_nopad_as_cs (closest equivalent) in shop.orders",
        "collation utf8mb4_sv_0900_ai_ci -> utf8mb4_uca1400_swedish_nopad_ai_ci (closest equivalent) in shop.orders",
        "collation utf8mb4_0900_ai_ci -> utf8mb4_uca1400_nopad_ai_ci (closest equivalent) in shop.orders",
    ] {
        assert!(a.mappings.iter().any(|x| x == m), "{m} not in {:?}", a.mappings);
    }
    assert!(!a.keyless);
}

#[test]
fn an_invisible_column_stays_invisible_in_mariadb_syntax() {
    let a = run(MYSQL_ORDERS, &mariadb_10_11(), &CollationMap::default());
    assert!(a
        .schema_sql
        .contains("`secret` varchar(20) DEFAULT NULL INVISIBLE,"));
    assert!(a.mappings.iter().any(|m| m.starts_with(
        "shop.orders (shop/orders/schema.sql, column `secret`): /*!80023 INVISIBLE */ -> INVISIBLE"
    )));
}

#[test]
fn what_mariadb_ignores_is_said_and_storage_options_are_not() {
    let a = run(MYSQL_ORDERS, &mariadb_10_11(), &CollationMap::default());
    assert_eq!(a.warnings.len(), 2, "{:?}", a.warnings);
    assert!(a.warnings[0].contains("column `pos`") && a.warnings[0].contains("any SRID"));
    assert!(
        a.warnings[1].contains("index `by_customer`")
            && a.warnings[1].contains("visible to the optimizer")
    );
    // The comment MariaDB skips stays in the SQL (harmless there).
    assert!(a.schema_sql.contains("/*!80003 SRID 4326 */"));
}

#[test]
fn a_not_enforced_check_and_a_functional_key_part_are_refused() {
    let sql = "CREATE TABLE `t` (
  `id` int NOT NULL,
  `qty` int NOT NULL,
  `name` varchar(20) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `by_upper` ((upper(`name`))),
  CONSTRAINT `qty_positive` CHECK ((`qty` > 0)) /*!80016 NOT ENFORCED */
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci";
    let a = run(sql, &mariadb_10_11(), &CollationMap::default());
    assert_eq!(a.problems.len(), 2, "{:?}", a.problems);
    assert!(a.problems[0].starts_with(
        "shop.orders (shop/orders/schema.sql, constraint `qty_positive`): MariaDB ignores /*!80016 NOT ENFORCED */"
    ));
    assert!(
        a.problems[1].contains("index `by_upper`") && a.problems[1].contains("functional key part")
    );
    // An enforced CHECK is the same on both: nothing to say.
    let enforced = sql
        .replace(" /*!80016 NOT ENFORCED */", "")
        .replace("  KEY `by_upper` ((upper(`name`))),\n", "");
    assert!(run(&enforced, &mariadb_10_11(), &CollationMap::default())
        .problems
        .is_empty());
}

#[test]
fn a_generated_invisible_primary_key_keeps_its_column_invisible() {
    // MySQL 8.4's example table with a GIPK (sql_generate_invisible_primary_key=ON).
    let sql = "CREATE TABLE `auto_1` (
  `my_row_id` bigint unsigned NOT NULL AUTO_INCREMENT /*!80023 INVISIBLE */,
  `c1` varchar(50) DEFAULT NULL,
  `c2` int DEFAULT NULL,
  PRIMARY KEY (`my_row_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci";
    let a = run(sql, &mariadb_10_11(), &CollationMap::default());
    assert!(a.problems.is_empty() && a.warnings.is_empty(), "{a:?}");
    assert!(a
        .schema_sql
        .contains("`my_row_id` bigint unsigned NOT NULL AUTO_INCREMENT INVISIBLE,"));
    assert!(!a.keyless);
}

#[test]
fn a_collation_without_equivalent_is_refused_by_name_unless_mapped() {
    let sql = "CREATE TABLE `t` (\n  `id` int NOT NULL,\n  `n` varchar(9) COLLATE utf8mb4_ja_0900_as_cs_ks,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci";
    let a = run(sql, &mariadb_10_11(), &CollationMap::default());
    assert_eq!(
        a.problems,
        ["shop.orders (shop/orders/schema.sql, column `n`): collation utf8mb4_ja_0900_as_cs_ks does not exist on the target (MariaDB) and has no equivalent there: pass --collation-map utf8mb4_ja_0900_as_cs_ks=<one of the target's collations>"]
    );
    let map = CollationMap(vec![
        CollationMap::parse_arg("utf8mb4_ja_0900_as_cs_ks=utf8mb4_bin").unwrap(),
        // The user's word wins over the table, for names the target lacks
        // or has.
        CollationMap::parse_arg("UTF8MB4_0900_AI_CI=utf8mb4_general_ci").unwrap(),
    ]);
    let a = run(sql, &mariadb_10_11(), &map);
    assert!(a.problems.is_empty(), "{:?}", a.problems);
    assert!(
        a.schema_sql.contains("COLLATE utf8mb4_bin,")
            && a.schema_sql.ends_with("COLLATE=utf8mb4_general_ci")
    );
    assert!(a.mappings.contains(
        &"collation utf8mb4_ja_0900_as_cs_ks -> utf8mb4_bin (--collation-map) in shop.orders"
            .to_string()
    ));
    // A mapping to a collation the target lacks is refused too.
    let map = CollationMap(vec![CollationMap::parse_arg(
        "utf8mb4_ja_0900_as_cs_ks=nope_ci",
    )
    .unwrap()]);
    let a = run(sql, &mariadb_10_11(), &map);
    assert!(a.problems[0].contains("--collation-map utf8mb4_ja_0900_as_cs_ks=nope_ci names a collation the target does not have"));
}

#[test]
fn the_mapping_table_prefers_uca1400_and_never_changes_sensitivity() {
    let on = |c: TargetCatalog| move |n: &str| c.collations.contains(n);
    let m11 = on(mariadb_10_11());
    let m106 = on(mariadb_10_6());
    assert_eq!(
        closest_collation("utf8mb4_0900_ai_ci", &m11).as_deref(),
        Some("utf8mb4_uca1400_nopad_ai_ci")
    );
    assert_eq!(
        closest_collation("utf8mb4_0900_ai_ci", &m106).as_deref(),
        Some("utf8mb4_unicode_520_nopad_ci")
    );
    assert_eq!(
        closest_collation("utf8mb4_0900_as_cs", &m11).as_deref(),
        Some("utf8mb4_uca1400_nopad_as_cs")
    );
    // No accent- and case-sensitive UCA collation before 10.10.
    assert_eq!(closest_collation("utf8mb4_0900_as_cs", &m106), None);
    assert_eq!(
        closest_collation("utf8mb4_0900_bin", &m106).as_deref(),
        Some("utf8mb4_nopad_bin")
    );
    assert_eq!(
        closest_collation("utf8mb4_de_pb_0900_as_cs", &m11).as_deref(),
        Some("utf8mb4_uca1400_german2_nopad_as_cs")
    );
    assert_eq!(
        closest_collation("UTF8MB4_SV_0900_AI_CI", &m11).as_deref(),
        Some("utf8mb4_uca1400_swedish_nopad_ai_ci")
    );
    assert_eq!(closest_collation("utf8mb4_zh_0900_as_cs", &m11), None);
    assert_eq!(closest_collation("utf8mb4_ja_0900_as_cs_ks", &m11), None);
    assert_eq!(closest_collation("latin1_swedish_ci", &m11), None);
}

#[test]
fn a_mysql_8_database_sql_is_mapped_and_its_encryption_ignored() {
    let db = "CREATE DATABASE `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci */ /*!80016 DEFAULT ENCRYPTION='N' */";
    let a = adapt(
        &SchemaSource {
            table: "shop.orders",
            schema_file: "shop/orders/schema.sql",
            schema_sql: "CREATE TABLE `orders` (\n  `id` int NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB",
            database: Some(("shop/database.sql", db)),
        },
        &mariadb_10_11(),
        &CollationMap::default(),
    );
    assert!(a.problems.is_empty() && a.warnings.is_empty(), "{a:?}");
    assert_eq!(
        a.database_sql.as_deref(),
        Some("CREATE DATABASE `shop` /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_uca1400_nopad_ai_ci */ /*!80016 DEFAULT ENCRYPTION='N' */")
    );
}

/// MariaDB 10.11.19's SHOW CREATE TABLE (captured) of a table with what
/// MySQL lacks.
const MARIADB_HOSTS: &str = "CREATE TABLE `hosts` (
  `id` uuid NOT NULL,
  `v4` inet4 DEFAULT NULL,
  `v6` inet6 DEFAULT NULL,
  `note` text DEFAULT 'none',
  `doc` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT json_array() CHECK (json_valid(`doc`)),
  `body` blob DEFAULT NULL,
  `expr_text` text DEFAULT concat('a','b'),
  `name` varchar(20) DEFAULT NULL,
  `z` blob /*M!100301 COMPRESSED*/ DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `kn` (`name`) IGNORED
) ENGINE=Aria DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_uca1400_ai_ci PAGE_CHECKSUM=1 WITH SYSTEM VERSIONING";

#[test]
fn mariadb_only_types_and_syntax_are_refused_by_name_on_mysql() {
    let a = run(MARIADB_HOSTS, &mysql_8(), &CollationMap::default());
    let expect = [
        "column `id`): type UUID",
        "column `v4`): type INET4",
        "column `v6`): type INET6",
        "column `note`): a DEFAULT without parentheses on a TEXT column",
        "column `doc`): a DEFAULT without parentheses on a LONGTEXT column",
        "column `expr_text`): a DEFAULT without parentheses on a TEXT column",
        "index `kn`): an IGNORED index",
        "table options): the table option PAGE_CHECKSUM",
        "table options): system versioning",
        "table options): collation utf8mb4_uca1400_ai_ci does not exist on the target (MySQL)",
        "table options): ENGINE=Aria, which the target (MySQL) does not have",
    ];
    for e in expect {
        assert!(
            a.problems.iter().any(|p| p.contains(e)),
            "{e:?} not in {:#?}",
            a.problems
        );
    }
    assert_eq!(a.problems.len(), expect.len(), "{:#?}", a.problems);
    // MariaDB's COMPRESSED is in a /*M! comment: MySQL stores the column
    // uncompressed, same data. DEFAULT NULL is fine on a BLOB.
    assert!(!a
        .problems
        .iter()
        .any(|p| p.contains("`z`") || p.contains("`body`")));
}

#[test]
fn mariadb_into_mariadb_refuses_nothing() {
    let a = run(MARIADB_HOSTS, &mariadb_10_11(), &CollationMap::default());
    assert!(
        a.problems.is_empty() && a.warnings.is_empty() && a.mappings.is_empty(),
        "{a:?}"
    );
    assert_eq!(a.schema_sql, MARIADB_HOSTS);
}

#[test]
fn mysql_into_mysql_changes_nothing() {
    let a = run(
        MYSQL_ORDERS,
        &{
            let mut c = mysql_8();
            c.collations.insert("utf8mb4_sv_0900_ai_ci".into());
            c
        },
        &CollationMap::default(),
    );
    assert!(
        a.problems.is_empty() && a.warnings.is_empty() && a.mappings.is_empty(),
        "{a:?}"
    );
    assert_eq!(a.schema_sql, MYSQL_ORDERS);
}

#[test]
fn names_in_strings_and_identifiers_are_not_collations() {
    let sql = "CREATE TABLE `COLLATE x` (\n  `a` varchar(9) DEFAULT 'COLLATE utf8mb4_0900_ai_ci' COMMENT 'CHARSET=nope',\n  PRIMARY KEY (`a`)\n) ENGINE=InnoDB";
    let a = run(sql, &mariadb_10_11(), &CollationMap::default());
    assert!(a.problems.is_empty() && a.mappings.is_empty(), "{a:?}");
    assert_eq!(a.schema_sql, sql);
}

#[test]
fn keyless_tables_need_the_primary_key_variables_off() {
    let keyless = "CREATE TABLE `log` (\n  `at` datetime DEFAULT NULL,\n  UNIQUE KEY `u` (`at`)\n) ENGINE=InnoDB";
    assert!(run(keyless, &mysql_8(), &CollationMap::default()).keyless);
    assert!(
        primary_key_settings(true, None, None).is_empty(),
        "MariaDB has neither"
    );
    assert!(primary_key_settings(false, Some(true), Some(true)).is_empty());
    assert!(primary_key_settings(true, Some(false), Some(false)).is_empty());
    assert_eq!(
        primary_key_settings(true, Some(true), Some(true)),
        [
            "SET SESSION sql_require_primary_key = 0",
            "SET SESSION sql_generate_invisible_primary_key = 0"
        ]
    );
    // 8.0.13–8.0.29: sql_require_primary_key only.
    assert_eq!(
        primary_key_settings(true, Some(true), None),
        ["SET SESSION sql_require_primary_key = 0"]
    );
}

#[test]
fn flavor_from_the_version_string() {
    assert_eq!(
        Flavor::of_version("10.11.19-MariaDB-0+deb12u1"),
        Flavor::MariaDb
    );
    assert_eq!(Flavor::of_version("11.4.5-MariaDB-log"), Flavor::MariaDb);
    assert_eq!(Flavor::of_version("8.0.36"), Flavor::MySql);
    assert_eq!(Flavor::of_version("8.4.3-3"), Flavor::MySql);
}

#[test]
fn collation_map_arguments() {
    assert_eq!(
        CollationMap::parse_arg("utf8mb4_0900_ai_ci=utf8mb4_general_ci").unwrap(),
        ("utf8mb4_0900_ai_ci".into(), "utf8mb4_general_ci".into())
    );
    for bad in ["utf8mb4_0900_ai_ci", "=x", "a=", "a=b;DROP TABLE t"] {
        let e = CollationMap::parse_arg(bad).unwrap_err().to_string();
        assert!(e.contains("expected FROM=TO"), "{e}");
    }
}
