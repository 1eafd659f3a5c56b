//! The binary log coordinates of the rows exported: where a user starts
//! replication or a binlog replay so that a copy of the dump becomes the
//! source. Read at the moment the snapshots start, the only moment they are
//! exact (see [`Coordinates`]).
//!
//! - One snapshot on MariaDB: `START TRANSACTION WITH CONSISTENT SNAPSHOT`
//!   fixes the session status `binlog_snapshot_file`/`_position` at the
//!   binlog point of that snapshot (MariaDB keeps the InnoDB commit order and
//!   the binlog order the same), so no lock is needed;
//!   `BINLOG_GTID_POS(file, pos)` turns it into a GTID position. MySQL has
//!   no such variables: without a lock there is no exact position.
//! - Synchronized snapshots: `SHOW MASTER STATUS` while `FLUSH TABLES …
//!   WITH READ LOCK` still holds the exported tables: nothing can commit to
//!   them between the snapshots and that read, so the position is exact
//!   for those tables (transactions on other tables may sit on either side).
//! - Snapshots per connection: none is exact; none is recorded.

use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;

use crate::conn::server_error_code;
use crate::dump::Coordinates;

/// What a server said about its binary log at a snapshot.
#[derive(Debug, Default, PartialEq)]
pub(super) struct BinlogFacts {
    pub log_bin: bool,
    pub mariadb: bool,
    pub file: Option<String>,
    pub position: Option<u64>,
    pub gtid: Option<String>,
}

/// The coordinates of the one snapshot `conn` has just started.
pub(super) fn of_single_snapshot(conn: &mut Conn) -> Result<Coordinates> {
    let (log_bin, mariadb) = binlog_and_flavour(conn)?;
    if !log_bin || !mariadb {
        return Ok(decide(
            &BinlogFacts {
                log_bin,
                mariadb,
                ..BinlogFacts::default()
            },
            "binlog_snapshot",
        ));
    }
    let rows: Vec<(String, String)> = conn
        .query("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")
        .context("reading binlog_snapshot_file and binlog_snapshot_position")?;
    let value = |name: &str| {
        rows.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let file = value("binlog_snapshot_file");
    let position = value("binlog_snapshot_position").and_then(|p| p.parse().ok());
    let gtid = match (&file, position) {
        (Some(f), Some(p)) if !f.is_empty() => conn
            .exec_first::<Option<String>, _, _>("SELECT BINLOG_GTID_POS(?, ?)", (f, p))
            .context("BINLOG_GTID_POS")?
            .flatten(),
        _ => None,
    };
    Ok(decide(
        &BinlogFacts {
            log_bin,
            mariadb,
            file,
            position,
            gtid,
        },
        "binlog_snapshot",
    ))
}

/// The coordinates while the exported tables are locked (by `control`).
pub(super) fn under_lock(control: &mut Conn) -> Result<Coordinates> {
    let (log_bin, mariadb) = binlog_and_flavour(control)?;
    let mut facts = BinlogFacts {
        log_bin,
        mariadb,
        ..BinlogFacts::default()
    };
    if log_bin {
        let status = match master_status(control) {
            Ok(s) => s,
            Err(e) if matches!(server_error_code(&e), Some(1227) | Some(1044)) => {
                return Ok(Coordinates::none(format!(
                    "reading the binary log position was refused ({}); grant BINLOG MONITOR (MariaDB) or REPLICATION CLIENT (MySQL)",
                    crate::errors::sentence(&e)
                )))
            }
            Err(e) => return Err(e),
        };
        if let Some((file, position)) = status {
            facts.file = Some(file);
            facts.position = Some(position);
        }
        let variable = gtid_variable(mariadb);
        facts.gtid = control
            .query_first::<Option<String>, _>(format!("SELECT @@GLOBAL.{variable}"))
            .with_context(|| format!("reading {variable}"))?
            .flatten();
    }
    Ok(decide(&facts, "under_lock"))
}

/// `SHOW MASTER STATUS`, or `SHOW BINARY LOG STATUS` on a MySQL that has
/// removed the former (8.4): the current file and position.
fn master_status(conn: &mut Conn) -> Result<Option<(String, u64)>> {
    let row: Option<mysql::Row> = match conn.query_first("SHOW MASTER STATUS") {
        Ok(r) => r,
        Err(mysql::Error::MySqlError(e)) if e.code == 1064 => conn
            .query_first("SHOW BINARY LOG STATUS")
            .context("SHOW BINARY LOG STATUS")?,
        Err(e) => return Err(e).context("SHOW MASTER STATUS"),
    };
    Ok(row.and_then(|r| {
        let file: Option<String> = r.get_opt(0).and_then(|v| v.ok());
        let pos: Option<u64> = r.get_opt(1).and_then(|v| v.ok());
        file.zip(pos)
    }))
}

fn binlog_and_flavour(conn: &mut Conn) -> Result<(bool, bool)> {
    let row: Option<(Option<u64>, String)> = conn
        .query_first("SELECT @@GLOBAL.log_bin, VERSION()")
        .context("reading log_bin")?;
    let (log_bin, version) = row.unwrap_or_default();
    Ok((log_bin == Some(1), version.contains("MariaDB")))
}

fn gtid_variable(mariadb: bool) -> &'static str {
    if mariadb {
        "gtid_binlog_pos"
    } else {
        "gtid_executed"
    }
}

/// The coordinates the facts give, or why there are none.
pub(super) fn decide(facts: &BinlogFacts, read: &str) -> Coordinates {
    if !facts.log_bin {
        return Coordinates::none("the source writes no binary log (log_bin is OFF)");
    }
    if !facts.mariadb && read == "binlog_snapshot" {
        return Coordinates::none(
            "MySQL gives the binary log position of a snapshot only under a lock; export with --jobs 2 or more (synchronized snapshots) to record it",
        );
    }
    match (&facts.file, facts.position) {
        (Some(file), Some(position)) if !file.is_empty() => Coordinates {
            binlog_file: Some(file.clone()),
            binlog_position: Some(position),
            gtid: facts.gtid.clone().filter(|g| !g.is_empty()),
            gtid_variable: facts
                .gtid
                .as_ref()
                .filter(|g| !g.is_empty())
                .map(|_| gtid_variable(facts.mariadb).to_string()),
            read: Some(read.to_string()),
            none_because: None,
        },
        _ => Coordinates::none("the server reported no binary log position"),
    }
}

/// Why a run whose snapshots each connection took alone has no coordinates.
pub(super) fn per_connection() -> Coordinates {
    Coordinates::none(
        "each reading connection took its own snapshot (per-connection-snapshots): no one binary log position matches all the rows",
    )
}

/// The coordinates the manifest records after this run: a resumed export
/// (`chunks_kept` > 0) holds rows read at several moments, which no one
/// position matches.
pub(super) fn recorded(chunks_kept: u64, this_run: Coordinates) -> Coordinates {
    if chunks_kept > 0 {
        Coordinates::none(
            "the export was resumed: its chunks were read by several runs, at different moments",
        )
    } else {
        this_run
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> BinlogFacts {
        BinlogFacts {
            log_bin: true,
            mariadb: true,
            file: Some("mariadb-bin.000002".into()),
            position: Some(1234),
            gtid: Some("0-1-42".into()),
        }
    }

    #[test]
    fn a_snapshot_with_a_binlog_position_records_it_and_its_gtid() {
        let c = decide(&facts(), "binlog_snapshot");
        assert_eq!(c.binlog_file.as_deref(), Some("mariadb-bin.000002"));
        assert_eq!(c.binlog_position, Some(1234));
        assert_eq!(c.gtid.as_deref(), Some("0-1-42"));
        assert_eq!(c.gtid_variable.as_deref(), Some("gtid_binlog_pos"));
        assert_eq!(c.none_because, None);
        assert_eq!(
            c.describe(),
            "mariadb-bin.000002:1234 (gtid_binlog_pos 0-1-42)"
        );
    }

    #[test]
    fn no_binlog_no_coordinates_and_the_reason() {
        let c = decide(
            &BinlogFacts {
                log_bin: false,
                ..facts()
            },
            "under_lock",
        );
        assert_eq!(c.binlog_file, None);
        assert!(c.describe().contains("log_bin is OFF"), "{}", c.describe());
    }

    #[test]
    fn mysql_has_coordinates_only_under_the_lock() {
        let mysql = BinlogFacts {
            mariadb: false,
            gtid: Some(String::new()),
            ..facts()
        };
        assert!(decide(&mysql, "binlog_snapshot")
            .none_because
            .unwrap()
            .contains("--jobs 2"));
        let locked = decide(&mysql, "under_lock");
        assert_eq!(locked.binlog_position, Some(1234));
        // gtid_executed is empty without GTID mode: no GTID recorded.
        assert_eq!(locked.gtid, None);
        assert_eq!(locked.gtid_variable, None);
    }

    #[test]
    fn an_empty_file_is_no_position() {
        let c = decide(
            &BinlogFacts {
                file: Some(String::new()),
                ..facts()
            },
            "binlog_snapshot",
        );
        assert!(c.none_because.is_some());
    }

    #[test]
    fn a_resumed_export_has_no_coordinates() {
        let exact = decide(&facts(), "under_lock");
        assert_eq!(recorded(0, exact.clone()), exact);
        assert!(recorded(3, exact).none_because.unwrap().contains("resumed"));
    }
}
