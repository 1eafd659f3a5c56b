//! The source sessions: how every connection is set up, and how the reading
//! connections start their snapshots so that the tables they read agree
//! (see [`Consistency`]).

use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;

use super::coordinates;
use super::options::Consistency;
use super::summary::Warnings;
use crate::conn::{self, server_error_code, set_optional, ConnSpec};
use crate::dump::Coordinates;

/// `net_write_timeout` for reading sessions (seconds).
const SESSION_NET_WRITE_TIMEOUT: u32 = 3600;

/// Session settings of every source connection.
pub(super) fn setup_session(conn: &mut Conn, raise_net_write_timeout: bool) -> Result<()> {
    conn::set_exact_session(conn).context("setting up the source session")?;
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .context("setting up the source session")?;
    // The reader never lets the server wait on us (it spills instead), so
    // this is a second line of defence only.
    if raise_net_write_timeout {
        conn.query_drop(format!(
            "SET SESSION net_write_timeout = {SESSION_NET_WRITE_TIMEOUT}"
        ))
        .context("setting net_write_timeout")?;
    }
    conn::keep_session_when_idle(conn)?;
    // A server-wide statement time limit would kill a long chunk read.
    set_optional(conn, "max_statement_time = 0")?;
    set_optional(conn, "max_execution_time = 0")?;
    // MySQL 8 serves information_schema.TABLES' TABLE_ROWS and
    // AVG_ROW_LENGTH from a cache kept for a day by default (reference
    // manual, "The INFORMATION_SCHEMA TABLES Table"); 0 reads them from the
    // engine. They only size chunks (see plan::auto_chunk_rows), so a stale
    // value would cost speed, not rows. MariaDB has no such cache or variable.
    set_optional(conn, "information_schema_stats_expiry = 0")?;
    Ok(())
}

/// The reading connections, each inside its snapshot, and how those
/// snapshots relate: `single-snapshot`, `synchronized-snapshots` or
/// `per-connection-snapshots`.
pub(super) struct Readers {
    pub conns: Vec<Conn>,
    pub consistency: &'static str,
    /// The source's binlog coordinates of these snapshots, or why none.
    pub coordinates: Coordinates,
}

/// What the reading connections need to know to open and agree.
pub(super) struct SnapshotPlan<'a> {
    pub jobs: usize,
    pub consistency: Consistency,
    pub raise_net_write_timeout: bool,
    /// The tables still to read (`db`.`t`), locked while the snapshots start.
    pub tables: &'a [String],
}

/// Opens the reading connections and starts their snapshots.
pub(super) fn open_readers(
    spec: &ConnSpec,
    control: &mut Conn,
    plan: &SnapshotPlan,
    warnings: &mut Warnings,
) -> Result<Readers> {
    let mut conns = Vec::with_capacity(plan.jobs);
    for _ in 0..plan.jobs {
        let mut c = spec.connect("source")?;
        setup_session(&mut c, plan.raise_net_write_timeout)?;
        conns.push(c);
    }
    let (consistency, coordinates) = if plan.jobs == 1 {
        start_snapshot(&mut conns[0])?;
        let coordinates = coordinates::of_single_snapshot(&mut conns[0])?;
        ("single-snapshot", coordinates)
    } else if plan.consistency == Consistency::PerConnection {
        conns.iter_mut().try_for_each(start_snapshot)?;
        ("per-connection-snapshots", coordinates::per_connection())
    } else {
        synchronize_snapshots(control, &mut conns, plan, warnings)?
    };
    Ok(Readers {
        conns,
        consistency,
        coordinates,
    })
}

fn start_snapshot(c: &mut Conn) -> Result<()> {
    c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .context("starting a consistent snapshot")
}

/// Starts the snapshots while the tables are locked, and reads the binlog
/// coordinates before unlocking; or, when the lock is refused and
/// `--consistency auto` allows it, starts them one after the other with a
/// warning (and no coordinates).
fn synchronize_snapshots(
    control: &mut Conn,
    conns: &mut [Conn],
    plan: &SnapshotPlan,
    warnings: &mut Warnings,
) -> Result<(&'static str, Coordinates)> {
    // Several snapshots agree only if nothing commits to these tables while
    // they start. FLUSH TABLES … WITH READ LOCK holds writers off for the
    // milliseconds it takes; lock_wait_timeout bounds how long it may queue
    // behind a long-running statement (and so how long writers may stall).
    control.query_drop("SET SESSION lock_wait_timeout = 10")?;
    match control.query_drop(format!(
        "FLUSH TABLES {} WITH READ LOCK",
        plan.tables.join(", ")
    )) {
        Ok(()) => {
            // The coordinates are exact only while the lock still holds.
            let started = conns
                .iter_mut()
                .try_for_each(start_snapshot)
                .and_then(|()| coordinates::under_lock(control));
            control
                .query_drop("UNLOCK TABLES")
                .context("UNLOCK TABLES")?;
            Ok(("synchronized-snapshots", started?))
        }
        Err(e) => {
            let e = anyhow::Error::new(e);
            if !may_fall_back(plan.consistency, server_error_code(&e)) {
                return Err(e.context("synchronizing snapshots with FLUSH TABLES … WITH READ LOCK"));
            }
            warnings.warn(format!(
                "could not synchronize the snapshots of {} connections ({}); each connection takes its own snapshot, so tables may be from moments apart. Use --jobs 1 for one snapshot, or grant RELOAD and LOCK TABLES",
                plan.jobs,
                crate::errors::sentence(&e)
            ));
            conns.iter_mut().try_for_each(start_snapshot)?;
            Ok(("per-connection-snapshots", coordinates::per_connection()))
        }
    }
}

/// Whether a refused FLUSH TABLES … WITH READ LOCK may give way to one
/// snapshot per connection: only with `--consistency auto`, and only when
/// the lock was refused for want of a privilege or for time.
fn may_fall_back(consistency: Consistency, code: Option<u16>) -> bool {
    // 1227: access denied (no RELOAD or LOCK TABLES); 1205: lock
    // wait timeout behind a long statement.
    consistency == Consistency::Auto
        && matches!(code, Some(1227) | Some(1205) | Some(1044) | Some(1142))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_auto_falls_back_and_only_for_privileges_or_time() {
        for code in [1227, 1205, 1044, 1142] {
            assert!(may_fall_back(Consistency::Auto, Some(code)), "{code}");
            assert!(!may_fall_back(Consistency::Locked, Some(code)), "{code}");
        }
        // Any other failure (a lost connection, a syntax error) is an error.
        assert!(!may_fall_back(Consistency::Auto, Some(2013)));
        assert!(!may_fall_back(Consistency::Auto, None));
    }
}
