//! How every target connection is opened: the control connection and each
//! job's get the same session settings.

use anyhow::{anyhow, Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;

use crate::conn::{self, ConnSpec};

use super::LoadOptions;

/// The target server and what each of its sessions is set to.
#[derive(Clone, Copy)]
pub(super) struct Session<'a> {
    target: &'a ConnSpec,
    skip_binlog: bool,
}

impl<'a> Session<'a> {
    pub(super) fn of(opts: &'a LoadOptions) -> Session<'a> {
        Session {
            target: &opts.target,
            skip_binlog: opts.skip_binlog,
        }
    }

    /// The server as the journals name it.
    pub(super) fn endpoint(&self) -> String {
        self.target.endpoint()
    }

    /// A new connection, set up.
    pub(super) fn connect(&self) -> Result<Conn> {
        let mut conn = self.target.connect("target")?;
        setup_session(&mut conn, self.skip_binlog)?;
        Ok(conn)
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
    // Values exactly as dumped (conn::set_exact_session), explicit 0 kept in
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
