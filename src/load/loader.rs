//! One loading connection: a chunk's `LOAD DATA` in its own transaction,
//! judged before it commits, journaled around its commit, and tried again
//! after a deadlock, a lock wait timeout or a lost connection.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, Row};

use crate::conn::server_error_code;
use crate::dump::{ChunkRecord, ChunkStats};
use crate::errors;
use crate::journal::{Event, Journal, ServerSession};
use crate::progress;
use crate::schema::text;
use crate::sql;

use super::in_flight;
use super::infile::{infile_handler, InfileRequest, InfileSlot, LoadStatement};
use super::plan::TablePlan;
use super::schedule::ChunkLoaded;
use super::session::Session;
use super::verdict::{self, LoadInfo, LoadResult, Warning};
use super::{locked, LoadOptions, OnDuplicate};

/// A table with chunks to load, ready for the jobs.
pub(super) struct LoadingTable<'p> {
    /// Its place in the dump (and in the summary's tables).
    pub index: usize,
    pub plan: &'p TablePlan,
    pub table_dir: PathBuf,
    pub statement: LoadStatement,
    pub journal: Mutex<Journal>,
}

/// What every loading connection does alike.
#[derive(Clone, Copy)]
pub(super) struct LoaderSettings<'a> {
    pub session: Session<'a>,
    pub on_duplicate: OnDuplicate,
    /// See `LoadOptions::chunk_delay`.
    pub chunk_delay: Duration,
}

impl<'a> LoaderSettings<'a> {
    pub(super) fn of(opts: &'a LoadOptions) -> LoaderSettings<'a> {
        LoaderSettings {
            session: Session::of(opts),
            on_duplicate: opts.on_duplicate,
            chunk_delay: opts.chunk_delay,
        }
    }

    /// The settings of job `n`, which loads through node `n`.
    pub(super) fn of_job(self, n: usize) -> LoaderSettings<'a> {
        LoaderSettings {
            session: self.session.on_node(n),
            ..self
        }
    }
}

/// One loading connection with its LOCAL INFILE handler.
pub(super) struct Loader<'a> {
    settings: LoaderSettings<'a>,
    conn: Conn,
    /// `conn`'s session as the journal records it with each commit (none
    /// if the server would not say: then a rerun counts at once, as before).
    identity: Option<ServerSession>,
    slot: InfileSlot,
}

/// Why a chunk attempt failed, for the retry decision.
enum Failure {
    /// 1213 deadlock or 1205 lock wait timeout: rolled back, try again.
    Transient(anyhow::Error),
    /// The connection is gone; whether the commit happened is unknown if
    /// the journal shows the chunk in doubt (see `committed_before_loss`).
    Lost(anyhow::Error),
    Fatal(anyhow::Error),
}

const MAX_ATTEMPTS: u64 = 6;
/// How long a lost connection is tried again: a restarting server's crash
/// recovery, a Galera cluster forming a new Primary Component.
const RECONNECT_WAIT: Duration = Duration::from_secs(60);

impl<'a> Loader<'a> {
    pub(super) fn connect(settings: LoaderSettings<'a>) -> Result<Loader<'a>> {
        let slot: InfileSlot = Arc::new(Mutex::new(None));
        let mut conn = Self::open(settings.session, &slot)?;
        let identity = in_flight::this_session(&mut conn).ok();
        Ok(Loader {
            settings,
            conn,
            identity,
            slot,
        })
    }

    fn open(session: Session, slot: &InfileSlot) -> Result<Conn> {
        let mut conn = session.connect()?;
        conn.set_local_infile_handler(Some(infile_handler(slot.clone())));
        Ok(conn)
    }

    /// Loads one chunk, trying again (with a growing pause) while the
    /// failure is one that a new attempt can get past.
    pub(super) fn load_with_retries(
        &mut self,
        table: &LoadingTable,
        chunk: &ChunkRecord,
    ) -> Result<ChunkLoaded> {
        let mut retries = 0;
        loop {
            let err = match self.load_once(table, chunk) {
                Ok(mut loaded) => {
                    loaded.retries = retries;
                    return Ok(loaded);
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient(e)) | Err(Failure::Lost(e))
                    if retries + 1 >= MAX_ATTEMPTS =>
                {
                    return Err(e.context(format!("giving up after {MAX_ATTEMPTS} attempts")));
                }
                Err(Failure::Transient(e)) => e,
                Err(Failure::Lost(e)) => {
                    self.reconnect().with_context(|| errors::sentence(&e))?;
                    if let Some(rows) = self.committed_before_loss(table, chunk)? {
                        return Ok(ChunkLoaded {
                            rows,
                            bytes: 0,
                            duplicates: 0,
                            retries: retries + 1,
                        });
                    }
                    e
                }
            };
            retries += 1;
            let backoff = Duration::from_millis(100 << retries.min(6));
            progress::notice(&format!(
                "myspool load: chunk {:06} of {}: {}; retrying in {} ms",
                chunk.number,
                table.plan.label(),
                errors::sentence(&err),
                backoff.as_millis()
            ));
            thread::sleep(backoff);
        }
    }

    /// Reconnects, waiting for a restarting server (or a Galera node of
    /// the Primary Component) for up to a minute.
    fn reconnect(&mut self) -> Result<()> {
        let deadline = Instant::now() + RECONNECT_WAIT;
        loop {
            match Self::open(self.settings.session, &self.slot) {
                Ok(mut conn) => {
                    self.identity = in_flight::this_session(&mut conn).ok();
                    self.conn = conn;
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(e.context(format!(
                        "the target went away and did not come back within {} s",
                        RECONNECT_WAIT.as_secs()
                    )))
                }
                Err(_) => thread::sleep(Duration::from_millis(500)),
            }
        }
    }

    /// Did the commit land before the connection went? If the chunk was
    /// being committed and its key range holds its rows, it did: journaled
    /// as committed, its rows returned.
    fn committed_before_loss(
        &mut self,
        table: &LoadingTable,
        chunk: &ChunkRecord,
    ) -> Result<Option<u64>> {
        let (in_doubt, session) = table
            .journal
            .lock()
            .map(|j| {
                let state = j.state();
                (
                    state.in_doubt.contains(&chunk.number),
                    state.committing_sessions.get(&chunk.number).cloned(),
                )
            })
            .unwrap_or((false, None));
        if !in_doubt {
            return Ok(None);
        }
        // The lost session may still be committing: count once it is over.
        if let Some(session) = session {
            let what = format!("chunk {:06} of {}", chunk.number, table.plan.label());
            in_flight::wait_for_end(&mut self.conn, &session, &what)?;
        }
        let rows = chunk.written.as_ref().map_or(0, |w| w.rows);
        let found = table.plan.count_range(&mut self.conn, chunk)?;
        if found != rows {
            return Ok(None);
        }
        record(
            &table.journal,
            Event::Committed {
                chunk: chunk.number,
                rows,
                duplicates: 0,
            },
        )?;
        Ok(Some(rows))
    }

    /// One attempt: the statement, its verdict, the commit.
    fn load_once(
        &mut self,
        table: &LoadingTable,
        chunk: &ChunkRecord,
    ) -> std::result::Result<ChunkLoaded, Failure> {
        let stats = chunk.written.as_ref().ok_or_else(|| {
            Failure::Fatal(anyhow!("chunk {:06} was never written", chunk.number))
        })?;
        let name = format!("myspool/{}/{}", table.plan.entry.dir, chunk.file);
        if let Ok(mut slot) = self.slot.lock() {
            let path = table.table_dir.join(&chunk.file);
            *slot = Some(table.statement.request(&name, path, &stats.sha256));
        }
        thread::sleep(self.settings.chunk_delay);
        let req = self.run_statement(&name, &table.statement)?;
        let duplicates = match self.judge(req, stats) {
            Ok(duplicates) => duplicates,
            Err(why) => {
                let _ = self.conn.query_drop("ROLLBACK");
                return Err(Failure::Fatal(anyhow!(
                    "{why}; nothing of the chunk was committed"
                )));
            }
        };
        self.commit(&table.journal, chunk.number, stats.rows, duplicates)?;
        Ok(ChunkLoaded {
            rows: stats.rows,
            bytes: stats.bytes,
            duplicates,
            retries: 0,
        })
    }

    /// Opens the chunk's transaction and runs its `LOAD DATA`; the request
    /// as the handler left it.
    fn run_statement(
        &mut self,
        name: &str,
        statement: &LoadStatement,
    ) -> std::result::Result<InfileRequest, Failure> {
        self.conn
            .query_drop("START TRANSACTION")
            .map_err(classify)?;
        let sql = format!(
            "LOAD DATA LOCAL INFILE {} {}",
            sql::string_literal(name),
            statement.tail
        );
        let ran = self.conn.query_drop(&sql);
        let req = self.slot.lock().ok().and_then(|mut s| s.take());
        if let Err(e) = ran {
            let _ = self.conn.query_drop("ROLLBACK");
            return Err(classify(e));
        }
        req.ok_or_else(|| Failure::Fatal(anyhow!("the LOCAL INFILE request vanished")))
    }

    /// Whether the statement just run took the chunk as it is: the rows
    /// that met a duplicate key, or why the chunk must be rolled back.
    fn judge(
        &mut self,
        req: InfileRequest,
        stats: &ChunkStats,
    ) -> std::result::Result<u64, String> {
        let affected = self.conn.affected_rows();
        let info = LoadInfo::parse(&self.conn.info_str());
        let warning_count = self.conn.warnings();
        if let Some(err) = req.error {
            return Err(err);
        }
        if req.rows_sent != stats.rows {
            return Err(format!(
                "{} has {} rows, table.json says {}",
                req.path.display(),
                req.rows_sent,
                stats.rows
            ));
        }
        let warnings = if warning_count > 0 {
            show_warnings(&mut self.conn)
        } else {
            Vec::new()
        };
        let result = LoadResult {
            affected,
            info,
            warning_count: warning_count.into(),
            warnings,
        };
        verdict::judge(&result, stats.rows, self.settings.on_duplicate)
    }

    /// Commits the chunk between its two journal lines: a crash between
    /// them leaves it in doubt, and the next run counts its key range.
    fn commit(
        &mut self,
        journal: &Mutex<Journal>,
        chunk: u32,
        rows: u64,
        duplicates: u64,
    ) -> std::result::Result<(), Failure> {
        let session = self.identity.clone();
        record(journal, Event::Committing { chunk, session }).map_err(Failure::Fatal)?;
        thread::sleep(self.settings.chunk_delay);
        self.conn.query_drop("COMMIT").map_err(classify)?;
        record(
            journal,
            Event::Committed {
                chunk,
                rows,
                duplicates,
            },
        )
        .map_err(Failure::Fatal)
    }
}

/// What a failed statement means for the chunk: another attempt, a new
/// connection first, or the end of the load.
fn classify(e: mysql::Error) -> Failure {
    let message = match &e {
        mysql::Error::MySqlError(m) => m.message.clone(),
        _ => String::new(),
    };
    let e = anyhow::Error::new(e);
    match retry_kind(server_error_code(&e), &message) {
        RetryKind::Again => Failure::Transient(e),
        RetryKind::Reconnect => Failure::Lost(e),
        RetryKind::Never => Failure::Fatal(e),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RetryKind {
    /// The statement failed, the session and its transaction are gone
    /// or rolled back: try the chunk again on the same connection.
    Again,
    /// The session is gone or cannot be trusted: a new connection, then a
    /// look at the journal's table to see whether the commit got through.
    Reconnect,
    Never,
}

/// The decision behind [`classify`], by server error code (`None`: not a
/// server error — the connection broke) and, where one code means several
/// things, its message.
fn retry_kind(code: Option<u16>, message: &str) -> RetryKind {
    match code {
        // ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT: the transaction was
        // rolled back (deadlock) or the statement was (wait timeout, and
        // the loader rolls back before retrying).
        Some(1213) | Some(1205) => RetryKind::Again,
        // ER_SERVER_SHUTDOWN, MariaDB's ER_CONNECTION_KILLED, the client's
        // CR_SERVER_GONE_ERROR / CR_SERVER_LOST; MySQL 8's
        // ER_CLIENT_INTERACTION_TIMEOUT (4031, disconnected for inactivity),
        // ER_SESSION_WAS_KILLED (3169) and ER_QUERY_INTERRUPTED (1317, a
        // KILL QUERY: the session lives but what its transaction holds is
        // unknown, so it is replaced rather than trusted).
        Some(1053) | Some(1927) | Some(2006) | Some(2013) | Some(4031) | Some(3169)
        | Some(1317) => RetryKind::Reconnect,
        // Galera: ER_UNKNOWN_COM_ERROR "WSREP has not yet prepared node for
        // application use" (the node left the Primary Component, or is
        // joining) and ER_ERROR_DURING_COMMIT "Error while appending
        // streaming replication fragment (provider status: Not connected to
        // Primary Component)": the transaction is gone and this node takes
        // no writes for now. A new connection goes to a node that is ready
        // (`Session::connect`), waiting for one; if the commit got through
        // before, the journal's in-doubt chunk is counted first. 1180 is
        // also "wsrep_max_ws_rows exceeded" and an engine's failed commit:
        // those come back on every attempt.
        Some(1047) => RetryKind::Reconnect,
        Some(1180) if message.contains("Primary Component") => RetryKind::Reconnect,
        Some(_) => RetryKind::Never,
        None => RetryKind::Reconnect,
    }
}

fn record(journal: &Mutex<Journal>, event: Event) -> Result<()> {
    locked(journal)?.record(event)
}

fn show_warnings(conn: &mut Conn) -> Vec<Warning> {
    let rows: Vec<Row> = conn.query("SHOW WARNINGS LIMIT 5").unwrap_or_default();
    rows.iter()
        .filter_map(|r| {
            Some(Warning {
                code: text(r, 1).ok()??.parse().ok()?,
                message: text(r, 2).ok()??,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlocks_and_lock_waits_are_tried_again() {
        assert_eq!(retry_kind(Some(1213), ""), RetryKind::Again);
        assert_eq!(retry_kind(Some(1205), ""), RetryKind::Again);
    }

    #[test]
    fn a_lost_or_killed_session_is_replaced_on_both_servers() {
        for code in [1053, 1927, 2006, 2013, 4031, 3169, 1317] {
            assert_eq!(retry_kind(Some(code), ""), RetryKind::Reconnect, "{code}");
        }
        assert_eq!(retry_kind(None, ""), RetryKind::Reconnect);
    }

    #[test]
    fn a_galera_node_outside_the_primary_component_is_left_for_another() {
        // 1047: WSREP has not yet prepared node for application use;
        // 1180: Error while appending streaming replication fragment.
        let not_primary = "Error while appending streaming replication fragment\
                           (provider status: Not connected to Primary Component)";
        assert_eq!(retry_kind(Some(1047), ""), RetryKind::Reconnect);
        assert_eq!(retry_kind(Some(1180), not_primary), RetryKind::Reconnect);
        // The same code for a chunk over the cluster's limit: no retry helps.
        let too_big = "wsrep_max_ws_rows exceeded";
        assert_eq!(retry_kind(Some(1180), too_big), RetryKind::Never);
        // A certification conflict comes back as a deadlock.
        assert_eq!(retry_kind(Some(1213), ""), RetryKind::Again);
    }

    #[test]
    fn data_and_schema_errors_end_the_load() {
        // duplicate key, unknown column, data too long, unknown collation
        for code in [1062, 1054, 1406, 1273] {
            assert_eq!(retry_kind(Some(code), ""), RetryKind::Never, "{code}");
        }
    }
}
