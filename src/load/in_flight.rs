//! The session that was committing a chunk when its load died.
//!
//! A chunk in doubt (`Committing` journaled, no `Committed`) is settled by
//! counting its key range on the target. That count is only the truth once
//! the session that sent the COMMIT has ended: when a client is killed the
//! server goes on with the statement it was running — a COMMIT included —
//! and notices the dead client only afterwards. A count taken meanwhile sees
//! none of the chunk's rows, the chunk is loaded again, and the late commit
//! then collides with it (or, in a table without a unique key, doubles it).
//! So before counting, a rerun (and a loader that lost its connection)
//! waits for that session: gone, it counts; busy, it waits; idle, it ends it
//! (an idle session has no COMMIT in flight, and ending it rolls back any
//! transaction it left open, whose row locks would block the reload).

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mysql::prelude::*;
use mysql::Conn;

use crate::journal::ServerSession;
use crate::progress;

/// What to do about the recorded session, from what the server says now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum InFlight {
    /// Ended (or the server restarted since, which ended it): count.
    Gone,
    /// Running a statement (the COMMIT, most likely): wait for it.
    Busy(String),
    /// Idle: nothing in flight; end it, then count.
    Idle,
}

/// A session as `information_schema.PROCESSLIST` shows it.
#[derive(Debug, Clone)]
pub(super) struct SessionRow {
    pub command: String,
    pub info: Option<String>,
}

/// The decision, a pure function. `now` is this session on the server
/// asked (two readings of one server's start differ by a second or two:
/// `NOW() - Uptime` is rounded); `own` are this run's own session ids,
/// which a restarted server may have handed out again.
pub(super) fn judge(
    recorded: &ServerSession,
    now: &ServerSession,
    own: &[u64],
    row: Option<&SessionRow>,
) -> InFlight {
    // Another server (a Galera node numbers its own sessions) or the same
    // one restarted since: the recorded session ended with it, and the id
    // is someone else's now.
    let elsewhere =
        recorded.server != now.server || (now.server_started - recorded.server_started).abs() > 2;
    match row {
        _ if elsewhere || own.contains(&recorded.id) => InFlight::Gone,
        None => InFlight::Gone,
        Some(r) if r.command == "Sleep" => InFlight::Idle,
        // "Killed": ending, possibly still rolling back: wait for it.
        Some(r) => InFlight::Busy(r.info.clone().unwrap_or_else(|| r.command.clone())),
    }
}

/// This session's identity, journaled with each `Committing`.
pub(super) fn this_session(conn: &mut Conn) -> Result<ServerSession> {
    let context = "reading this session's id and the server's start";
    // SHOW GLOBAL STATUS on both servers: MySQL 8 has no
    // information_schema.GLOBAL_STATUS (it moved to performance_schema).
    let uptime: Option<(String, i64)> = conn
        .query_first("SHOW GLOBAL STATUS LIKE 'Uptime'")
        .context(context)?;
    let row: Option<(u64, String, i64)> = conn
        .query_first("SELECT CONNECTION_ID(), CONCAT(@@hostname, ':', @@port), UNIX_TIMESTAMP()")
        .context(context)?;
    let ((_, uptime), (id, server, now)) = uptime.zip(row).context(context)?;
    Ok(ServerSession {
        id,
        server,
        server_started: now - uptime,
    })
}

/// How long a busy session is waited for before the rerun gives up (a
/// COMMIT that takes longer is not a COMMIT of one chunk).
const BUSY_WAIT: Duration = Duration::from_secs(600);

/// Waits until `recorded` has ended (ending it if idle), so that a count
/// of the chunk's rows is the truth. `what` names the chunk for messages.
pub(super) fn wait_for_end(conn: &mut Conn, recorded: &ServerSession, what: &str) -> Result<()> {
    let me = this_session(conn)?;
    let deadline = Instant::now() + BUSY_WAIT;
    let mut told = false;
    let mut killed = false;
    loop {
        let row = session_row(conn, recorded.id)?;
        match judge(recorded, &me, &[me.id], row.as_ref()) {
            InFlight::Gone => return Ok(()),
            InFlight::Idle if !killed => {
                // A user may always end its own sessions; one that ended
                // meanwhile is "Unknown thread id", which is fine.
                let _ = conn.query_drop(format!("KILL CONNECTION {}", recorded.id));
                killed = true;
            }
            InFlight::Idle => {}
            InFlight::Busy(statement) => {
                if !told {
                    progress::notice(&format!(
                        "myspool load: {what} was being committed when the earlier load stopped; \
                         waiting for its session ({}) to finish {statement:.60}",
                        recorded.id
                    ));
                    told = true;
                }
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "{what} was being committed when the earlier load stopped, and its session ({}) \
                 is still running after {} s: end it (KILL CONNECTION {}), then run again",
                recorded.id,
                BUSY_WAIT.as_secs(),
                recorded.id
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
}

fn session_row(conn: &mut Conn, id: u64) -> Result<Option<SessionRow>> {
    // Without the PROCESS privilege a user sees only its own sessions: a
    // load run as another user is not seen, and counted at once.
    let row: Option<(String, Option<String>)> = conn
        .exec_first(
            "SELECT COMMAND, INFO FROM information_schema.PROCESSLIST WHERE ID = ?",
            (id,),
        )
        .context("looking up the session of the earlier load")?;
    Ok(row.map(|(command, info)| SessionRow { command, info }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded() -> ServerSession {
        session(42, "db1:3306", 1_000_000)
    }

    fn session(id: u64, server: &str, server_started: i64) -> ServerSession {
        ServerSession {
            id,
            server: server.to_string(),
            server_started,
        }
    }

    /// This run's session on the server that started at `started`.
    fn now(started: i64) -> ServerSession {
        session(7, "db1:3306", started)
    }

    fn row(command: &str, info: Option<&str>) -> SessionRow {
        SessionRow {
            command: command.to_string(),
            info: info.map(str::to_string),
        }
    }

    #[test]
    fn a_session_still_committing_is_waited_for() {
        let r = row("Query", Some("COMMIT"));
        assert_eq!(
            judge(&recorded(), &now(1_000_001), &[7], Some(&r)),
            InFlight::Busy("COMMIT".into())
        );
        let killed = row("Killed", None);
        assert_eq!(
            judge(&recorded(), &now(1_000_000), &[7], Some(&killed)),
            InFlight::Busy("Killed".into())
        );
    }

    #[test]
    fn an_ended_session_is_counted_at_once() {
        assert_eq!(
            judge(&recorded(), &now(1_000_000), &[7], None),
            InFlight::Gone
        );
    }

    #[test]
    fn an_idle_session_is_ended() {
        let r = row("Sleep", None);
        assert_eq!(
            judge(&recorded(), &now(999_999), &[7], Some(&r)),
            InFlight::Idle
        );
    }

    #[test]
    fn after_a_server_restart_the_id_is_someone_elses() {
        // Ids start again at a restart: the session with id 42 now is not
        // the one that was committing, and must be neither waited for nor
        // ended.
        let r = row("Query", Some("SELECT 1"));
        assert_eq!(
            judge(&recorded(), &now(1_000_300), &[7], Some(&r)),
            InFlight::Gone
        );
        let idle = row("Sleep", None);
        assert_eq!(
            judge(&recorded(), &now(1_000_300), &[7], Some(&idle)),
            InFlight::Gone
        );
    }

    #[test]
    fn another_galera_node_numbers_its_own_sessions() {
        let r = row("Sleep", None);
        let node2 = session(7, "db2:3306", 1_000_000);
        assert_eq!(judge(&recorded(), &node2, &[7], Some(&r)), InFlight::Gone);
    }

    #[test]
    fn this_runs_own_session_is_never_waited_for() {
        let r = row("Query", Some("SELECT …"));
        assert_eq!(
            judge(&recorded(), &now(1_000_000), &[42], Some(&r)),
            InFlight::Gone
        );
    }
}
