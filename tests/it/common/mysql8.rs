//! Dumps that look exported from MySQL 8: a table exported from MariaDB,
//! then its `schema.sql`, `database.sql`, `table.json` collations and the
//! manifest's server version replaced with what MySQL 8.0 writes (its
//! `SHOW CREATE` text as the reference manual shows it: `_0900_`
//! collations, `/*!80023 INVISIBLE */`, `/*!80016 … */`). The CSV chunks
//! stay MariaDB's: the data is the same on both servers.

use std::path::Path;

use serde_json::Value;

use super::server::Server;

/// MySQL 8.0's `SHOW CREATE DATABASE` of `db` (utf8mb4_0900_ai_ci default).
pub fn database_sql(db: &str) -> String {
    format!("CREATE DATABASE `{db}` /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci */ /*!80016 DEFAULT ENCRYPTION='N' */;\n")
}

/// `orders` on MySQL 8.0: a case- and accent-sensitive customer, a Swedish
/// note, an invisible column and an invisible index.
pub const ORDERS: &str = "CREATE TABLE `orders` (
  `id` int NOT NULL,
  `customer` varchar(64) COLLATE utf8mb4_0900_as_cs NOT NULL,
  `note` text COLLATE utf8mb4_sv_0900_ai_ci,
  `secret` varchar(20) DEFAULT NULL /*!80023 INVISIBLE */,
  `qty` int NOT NULL,
  PRIMARY KEY (`id`),
  KEY `by_customer` (`customer`) /*!80000 INVISIBLE */
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci /*!80016 ENCRYPTION='N' */;
";

/// `events` created on MySQL 8.0.30+ with sql_generate_invisible_primary_key=ON:
/// the generated invisible primary key `my_row_id` (manual, "Generated
/// Invisible Primary Keys").
pub const EVENTS_GIPK: &str = "CREATE TABLE `events` (
  `my_row_id` bigint unsigned NOT NULL AUTO_INCREMENT /*!80023 INVISIBLE */,
  `c1` varchar(50) DEFAULT NULL,
  `c2` int DEFAULT NULL,
  PRIMARY KEY (`my_row_id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci;
";

/// The MariaDB tables the MySQL 8 text stands for, with their rows: 100
/// orders, 50 events with my_row_id 3, 6, … 150.
pub const SOURCE_TABLES: &str = "
CREATE TABLE orders (id INT PRIMARY KEY, customer VARCHAR(64) NOT NULL, note TEXT,
  secret VARCHAR(20) INVISIBLE, qty INT NOT NULL, KEY by_customer (customer));
INSERT INTO orders (id, customer, note, secret, qty)
  SELECT seq, CONCAT('Cust ', seq), 'Åsa ', CONCAT('s', seq), seq FROM seq_1_to_100;
CREATE TABLE events (my_row_id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT INVISIBLE,
  c1 VARCHAR(50), c2 INT, PRIMARY KEY (my_row_id));
INSERT INTO events (my_row_id, c1, c2) SELECT seq * 3, CONCAT('e', seq), seq FROM seq_1_to_50;
";

/// A dump of `SOURCE_TABLES` exported from a fresh database of `src`, made
/// to look exported from MySQL 8.0.36 with `orders` as `orders_sql`.
pub fn mysql8_dump(src: &Server, prefix: &str, orders_sql: &str) -> (String, tempfile::TempDir) {
    let (db, dir) = super::fixtures::dumped_db(src, prefix, SOURCE_TABLES, "*", 40);
    let root = dir.path();
    std::fs::write(root.join(&db).join("database.sql"), database_sql(&db)).unwrap();
    let mut manifest = read_json(&root.join("manifest.json"));
    manifest["source"]["server_version"] = "8.0.36".into();
    write_json(&root.join("manifest.json"), &manifest);
    for (table, sql) in [("orders", orders_sql), ("events", EVENTS_GIPK)] {
        let table_dir = root.join(&db).join(table);
        std::fs::write(table_dir.join("schema.sql"), sql).unwrap();
        // table.json as MySQL's information_schema would have it.
        let mut desc = read_json(&table_dir.join("table.json"));
        for column in desc["columns"].as_array_mut().unwrap() {
            let name = column["name"].as_str().unwrap().to_string();
            if column["collation"].is_string() {
                column["collation"] = mysql8_collation(&name).into();
            }
            let ty = column["column_type"].as_str().unwrap();
            column["column_type"] = ty
                .replace("int(11)", "int")
                .replace("bigint(20)", "bigint")
                .into();
        }
        write_json(&table_dir.join("table.json"), &desc);
    }
    (db, dir)
}

fn mysql8_collation(column: &str) -> &'static str {
    match column {
        "customer" => "utf8mb4_0900_as_cs",
        "note" => "utf8mb4_sv_0900_ai_ci",
        _ => "utf8mb4_0900_ai_ci",
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}
