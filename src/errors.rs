//! The one place an error becomes the sentence a user reads.
//!
//! The `mysql` driver's own `Display` is its debug form
//! (`MySqlError { ERROR 1273 (HY000): Unknown collation: … }`,
//! `IoError { … }`); every message myspool prints — the final error line,
//! a retry notice, a preflight problem, a journal note — goes through
//! [`sentence`], which keeps anyhow's chain of context ("loading chunk
//! 000042 of shop.orders: …") and writes the server's part as
//! `server error 1273 (HY000): Unknown collation: …`, followed by what the
//! user can do about it where myspool knows.

use std::error::Error as StdError;
use std::fmt;

/// A refusal before anything was changed: the load's preflight (which
/// `check` runs alone) found problems, or a rerun found the target changed
/// since the journal's load. The message is the whole sentence; the type
/// only lets `main` tell it apart (exit status 3, see [`exit_code`]).
#[derive(Debug)]
pub struct Refused(pub String);

/// `verify` found chunks that differ between the dump and the target (exit
/// status 4): the comparison itself worked.
#[derive(Debug)]
pub struct Differences(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Refused {}

impl fmt::Display for Differences {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Differences {}

/// The exit status of a failed run: 3 for a refusal that touched nothing,
/// 4 for differences found by `verify`, 1 for every other failure (clap
/// exits 2 on a usage error, before any of this runs). Looks through the
/// whole chain: `copy` wraps the load's refusal in "loading: …".
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|c| c.is::<Refused>()) {
        3
    } else if err.chain().any(|c| c.is::<Differences>()) {
        4
    } else {
        1
    }
}

/// The whole chain of an error on one line, `context: context: cause`,
/// with driver errors written as sentences.
pub fn sentence(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<mysql::Error>() {
            // The driver's error is the end of the chain that matters: its
            // `source()` is the same text again without the wrapper.
            parts.push(driver_sentence(e));
            break;
        }
        parts.push(cause.to_string());
    }
    // A context that repeats its cause's text (`.with_context(|| format!("{e:#}"))`)
    // would otherwise print it twice.
    parts.dedup();
    parts.join(": ")
}

/// The same for a plain error (an `io::Error` or a driver error the
/// caller has not wrapped in anyhow).
pub fn sentence_of(err: &(dyn StdError + 'static)) -> String {
    match err.downcast_ref::<mysql::Error>() {
        Some(e) => driver_sentence(e),
        None => err.to_string(),
    }
}

/// One driver error as a sentence.
pub fn driver_sentence(e: &mysql::Error) -> String {
    match e {
        mysql::Error::MySqlError(m) => server_sentence(m.code, &m.state, &m.message),
        mysql::Error::IoError(io) => format!("connection to the server failed: {io}"),
        mysql::Error::DriverError(d) => format!("connection to the server failed: {d}"),
        mysql::Error::CodecError(c) => format!("malformed packet from the server: {c}"),
        mysql::Error::UrlError(u) => format!("bad server URL: {u}"),
        mysql::Error::TlsError(t) => format!("TLS with the server failed: {t}"),
        mysql::Error::FromRowError(_) | mysql::Error::FromValueError(_) => {
            "the server sent a value of an unexpected type".to_string()
        }
    }
}

/// `server error CODE (STATE): MESSAGE`, and a hint where one helps.
pub fn server_sentence(code: u16, state: &str, message: &str) -> String {
    let message = message.trim_end_matches('.');
    match hint(code) {
        Some(h) => format!("server error {code} ({state}): {message} ({h})"),
        None => format!("server error {code} ({state}): {message}"),
    }
}

/// What the user can do about a server error, where myspool knows.
/// Codes are shared by MySQL and MariaDB unless noted.
fn hint(code: u16) -> Option<&'static str> {
    Some(match code {
        // ER_UNKNOWN_COLLATION / ER_UNKNOWN_CHARACTER_SET: a MySQL 8
        // schema (utf8mb4_0900_ai_ci) on MariaDB, or the reverse.
        1273 | 1115 => "the target server lacks it; map it with --collation-map FROM=TO",
        // ER_ACCESS_DENIED_ERROR / ER_DBACCESS_DENIED_ERROR
        1045 => "check the user and password in the URL, MYSQL_PWD or ~/.my.cnf",
        // ER_SPECIFIC_ACCESS_DENIED_ERROR (1227) names the privilege: on
        // MySQL 8, SET sql_log_bin needs SYSTEM_VARIABLES_ADMIN or
        // SESSION_VARIABLES_ADMIN, on MariaDB SUPER or BINLOG ADMIN.
        1044 | 1142 | 1227 => "grant the privilege named here to this user, or connect as another",
        // ER_NOT_ALLOWED_COMMAND (5.7/MariaDB) and MySQL 8's
        // ER_CLIENT_LOCAL_FILES_DISABLED: LOAD DATA LOCAL is off.
        1148 | 3948 => "set local_infile=ON on the target server (MySQL 8 ships it OFF)",
        // ER_OPTION_PREVENTS_STATEMENT: read_only / super_read_only
        1290 => "the server refuses writes in this mode; load into a writable primary",
        // ER_BAD_DB_ERROR / ER_NO_SUCH_TABLE
        1049 | 1146 => "check the name, or let load create it from the dump",
        // ER_RECORD_FILE_FULL: a full disk or a table size limit
        1114 => "the target's disk or tablespace is full",
        // ER_LOCK_WAIT_TIMEOUT / ER_LOCK_DEADLOCK: retried where safe
        1205 => "another session holds a lock on these rows",
        // ER_TABLE_WITHOUT_PK (MySQL 8 with sql_require_primary_key=ON)
        3750 => "the target requires a primary key on every table (sql_require_primary_key)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn server_error(code: u16, state: &str, message: &str) -> mysql::Error {
        mysql::Error::MySqlError(mysql::MySqlError {
            state: state.to_string(),
            message: message.to_string(),
            code,
        })
    }

    #[test]
    fn a_server_error_reads_as_a_sentence_with_its_context() {
        let err: anyhow::Result<()> = Err(server_error(
            1273,
            "HY000",
            "Unknown collation: 'utf8mb4_0900_ai_ci'",
        ))
        .context("creating `m8`.`orders` from schema.sql");
        let text = sentence(&err.unwrap_err());
        assert_eq!(
            text,
            "creating `m8`.`orders` from schema.sql: server error 1273 (HY000): Unknown \
             collation: 'utf8mb4_0900_ai_ci' (the target server lacks it; map it with \
             --collation-map FROM=TO)"
        );
        assert!(!text.contains("MySqlError"));
    }

    #[test]
    fn an_error_without_a_hint_is_code_state_and_message() {
        let err = anyhow::Error::new(server_error(
            1062,
            "23000",
            "Duplicate entry '7' for key 'PRIMARY'",
        ));
        assert_eq!(
            sentence(&err),
            "server error 1062 (23000): Duplicate entry '7' for key 'PRIMARY'"
        );
    }

    #[test]
    fn mysql_8_local_infile_refusal_names_the_setting() {
        // MySQL 8.0's text for ER_CLIENT_LOCAL_FILES_DISABLED.
        let err = anyhow::Error::new(server_error(
            3948,
            "42000",
            "Loading local data is disabled; this must be enabled on both the client and server sides",
        ));
        assert!(
            sentence(&err).contains("set local_infile=ON"),
            "{}",
            sentence(&err)
        );
    }

    #[test]
    fn connection_failures_are_sentences_too() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let err = anyhow::Error::new(mysql::Error::IoError(io)).context("connecting to the target");
        assert_eq!(
            sentence(&err),
            "connecting to the target: connection to the server failed: Connection refused"
        );
    }

    #[test]
    fn a_refusal_exits_3_under_any_context_and_reads_as_its_message() {
        let err = anyhow::Error::new(Refused("nothing was loaded: x".into())).context("loading");
        assert_eq!(exit_code(&err), 3);
        assert_eq!(sentence(&err), "loading: nothing was loaded: x");
    }

    #[test]
    fn differences_exit_4_and_every_other_failure_1() {
        let diff = anyhow::Error::new(Differences("2 chunk(s) differ".into()));
        assert_eq!(exit_code(&diff), 4);
        assert_eq!(exit_code(&anyhow::anyhow!("disk full")), 1);
        let io = std::io::Error::other("refused");
        assert_eq!(exit_code(&anyhow::Error::new(io).context("reading")), 1);
    }

    #[test]
    fn plain_errors_keep_anyhows_chain() {
        let err = anyhow::anyhow!("disk full").context("writing chunk 000001");
        assert_eq!(sentence(&err), "writing chunk 000001: disk full");
    }
}
