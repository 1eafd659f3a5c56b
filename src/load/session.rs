//! How every target connection is opened: the control connection and each
//! job's get the same session settings. With several `--to` (the nodes of
//! one Galera cluster) each job prefers its own node and moves to the next
//! one that is up and ready when its node goes.

use anyhow::{anyhow, Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;

use crate::conn::{self, ConnSpec};

use super::LoadOptions;

/// The target server and what each of its sessions is set to.
#[derive(Clone, Copy)]
pub(super) struct Session<'a> {
    target: &'a ConnSpec,
    /// More nodes of the target's Galera cluster (`--to` given again).
    nodes: &'a [ConnSpec],
    /// The node tried first: 0 is `target`, then `nodes`.
    prefer: usize,
    skip_binlog: bool,
}

impl<'a> Session<'a> {
    pub(super) fn of(opts: &'a LoadOptions) -> Session<'a> {
        Session {
            target: &opts.target,
            nodes: &opts.nodes,
            prefer: 0,
            skip_binlog: opts.skip_binlog,
        }
    }

    /// The same session, preferring node `n` (modulo the number of nodes):
    /// job `n` loads through it.
    pub(super) fn on_node(self, n: usize) -> Session<'a> {
        Session {
            prefer: n % (self.nodes.len() + 1),
            ..self
        }
    }

    /// Every node given, the target first.
    pub(super) fn all_nodes(&self) -> impl Iterator<Item = &'a ConnSpec> {
        std::iter::once(self.target).chain(self.nodes.iter())
    }

    /// The server as the journals name it.
    pub(super) fn endpoint(&self) -> String {
        self.target.endpoint()
    }

    /// A new connection, set up, to the preferred node or, when it cannot
    /// be reached or is not ready (a Galera node outside the Primary
    /// Component), to the next one given; the first node's error if none is.
    pub(super) fn connect(&self) -> Result<Conn> {
        let all: Vec<&ConnSpec> = self.all_nodes().collect();
        let mut first_error = None;
        for i in 0..all.len() {
            let node = all[(self.prefer + i) % all.len()];
            let opened = node.connect("target").and_then(|mut conn| {
                setup_session(&mut conn, self.skip_binlog)?;
                require_ready(&mut conn, node)?;
                Ok(conn)
            });
            match opened {
                Ok(conn) => return Ok(conn),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| anyhow!("no target node")))
    }

    /// The control connection, set up but for `--skip-binlog`: the preflight
    /// sets that itself, so that a user without the privilege gets it in the
    /// preflight's list of problems, with every other one.
    pub(super) fn connect_for_preflight(&self) -> Result<Conn> {
        let mut conn = self.target.connect("target")?;
        setup_session(&mut conn, false)?;
        Ok(conn)
    }

    /// Reconnects the control connection if the server closed it
    /// (wait_timeout, a restart). True when it did.
    pub(super) fn ensure_alive(&self, control: &mut Conn) -> Result<bool> {
        if control.ping().is_ok() {
            return Ok(false);
        }
        let lost = control.connection_id();
        *control = self.connect()?;
        // The server may not know yet that the old session is gone (behind a
        // cut cable it still waits for our next packet), and that session
        // holds this load's named locks until it ends: end it, so the locks
        // can be taken again. A user may always kill its own sessions; one
        // that already ended is "Unknown thread id", which is fine.
        let _ = control.query_drop(format!("KILL CONNECTION {lost}"));
        Ok(true)
    }
}

/// Session settings of every target connection.
fn setup_session(conn: &mut Conn, skip_binlog: bool) -> Result<()> {
    // Values exactly as dumped (conn::set_exact_session; on Galera with the
    // causality wait, so a chunk committed through another node is counted
    // and never loaded twice), explicit 0 kept in
    // an AUTO_INCREMENT column, zero dates accepted, strict conversions (which
    // LOAD DATA LOCAL turns into warnings, and warnings fail the chunk).
    // Foreign keys are not checked: tables and chunks arrive in key order,
    // not in the order the references would need.
    conn::set_exact_session(conn).context("setting up the target session")?;
    for stmt in [
        "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'",
        "SET SESSION foreign_key_checks = 0",
    ] {
        conn.query_drop(stmt)
            .with_context(|| format!("setting up the target session ({stmt})"))?;
    }
    // A long table can leave the control connection idle for hours.
    conn::keep_session_when_idle(conn).context("setting up the target session")?;
    if skip_binlog {
        self::skip_binlog(conn)?;
    }
    Ok(())
}

/// A Galera node that is not ready (`wsrep_ready` OFF: outside the Primary
/// Component, or joining) refuses every statement with 1047: not a node to
/// load through now. Other servers have no `wsrep_ready` (MySQL) or have it
/// OFF with `wsrep_on` OFF (MariaDB).
fn require_ready(conn: &mut Conn, node: &ConnSpec) -> Result<()> {
    let on: Option<(String, String)> = conn
        .query_first("SHOW VARIABLES LIKE 'wsrep_on'")
        .context("reading wsrep_on")?;
    if !on.is_some_and(|(_, v)| v.eq_ignore_ascii_case("ON")) {
        return Ok(());
    }
    let ready: Option<(String, String)> = conn
        .query_first("SHOW STATUS LIKE 'wsrep_ready'")
        .context("reading wsrep_ready")?;
    match ready {
        Some((_, v)) if !v.eq_ignore_ascii_case("ON") => Err(anyhow!(
            "Galera node {} is not ready (wsrep_ready = {v}): it is outside the Primary Component or joining",
            node.endpoint()
        )),
        _ => Ok(()),
    }
}

/// `--skip-binlog` on one session. Trying it is the only sure test of the
/// privilege (SUPER, BINLOG ADMIN, a role: it differs by server and version).
/// MySQL 8 asks for SYSTEM_VARIABLES_ADMIN or SESSION_VARIABLES_ADMIN
/// (sql_log_bin is a restricted session variable there; SUPER still works
/// but is deprecated), MariaDB for SUPER or, since 10.5.2, BINLOG ADMIN.
pub(super) fn skip_binlog(conn: &mut Conn) -> Result<()> {
    conn.query_drop("SET SESSION sql_log_bin = 0").map_err(|e| {
        anyhow!(
            "--skip-binlog needs a privilege to SET sql_log_bin that this user lacks \
             (MariaDB: BINLOG ADMIN or SUPER; MySQL 8: SYSTEM_VARIABLES_ADMIN or \
             SESSION_VARIABLES_ADMIN): {}",
            crate::errors::driver_sentence(&e)
        )
    })
}
