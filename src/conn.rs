//! Where a server is and how myspool talks to it: URLs, passwords, and the
//! session settings every connection gets.
//!
//! One connection per role, never shared: a connection that is streaming a
//! result set cannot run anything else ("Commands out of sync", 2014), so the
//! exporter opens one per reading job and a separate control connection.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder, SslOpts};

use crate::dialect::percent_decode;

/// A password that never shows up in `Debug`, `Display`, errors or JSON.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where the password came from, for messages (never the password itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSource {
    None,
    Url,
    Env,
    OptionFile,
}

/// A parsed `mysql://user[:password]@host[:port][/db][?options]` URL.
///
/// Options: `socket=/path` (connect through a Unix socket),
/// `connect_timeout=SECONDS`, `read_timeout=SECONDS`, `write_timeout=SECONDS`,
/// `ssl-mode=disabled|preferred|required|verify-ca|verify-identity` (default
/// preferred), `ssl-ca=/path/ca.pem`.
/// When the URL has no password, `MYSQL_PWD` is used, then the `password` of
/// the `[client]` group in `~/.my.cnf`.
#[derive(Clone, Debug)]
pub struct ConnSpec {
    pub host: String,
    pub port: u16,
    pub user: String,
    password: Option<Secret>,
    password_source: PasswordSource,
    pub database: Option<String>,
    pub socket: Option<PathBuf>,
    pub connect_timeout: Duration,
    pub read_timeout: Option<Duration>,
    pub write_timeout: Option<Duration>,
    pub ssl_mode: SslMode,
    /// CA certificate (PEM) for `verify-ca` and `verify-identity`.
    pub ssl_ca: Option<PathBuf>,
}

/// TLS, as the `mysql` client's `--ssl-mode` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP.
    Disabled,
    /// TLS when the server offers it, unverified; plain otherwise.
    #[default]
    Preferred,
    /// TLS or fail; the certificate is not checked.
    Required,
    /// TLS with a certificate signed by the CA (`ssl-ca=`, else the
    /// well-known roots); any host name.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host.
    VerifyIdentity,
}

impl SslMode {
    fn parse(text: &str) -> Option<SslMode> {
        Some(match text.to_ascii_lowercase().replace('_', "-").as_str() {
            "disabled" => SslMode::Disabled,
            "preferred" => SslMode::Preferred,
            "required" => SslMode::Required,
            "verify-ca" => SslMode::VerifyCa,
            "verify-identity" => SslMode::VerifyIdentity,
            _ => return None,
        })
    }
}

impl ConnSpec {
    /// Parses a URL. Errors never repeat the password.
    pub fn parse(url: &str) -> Result<ConnSpec> {
        let parsed = parse_server_url(url)?;
        let host = match parsed.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']').to_string(),
            _ => bail!("invalid server URL {}: no host", redact_url_text(url)),
        };
        let user = if parsed.username().is_empty() {
            "root".to_string()
        } else {
            percent_decode(parsed.username())
        };
        let (password, password_source) = find_password(parsed.password());
        let database = parsed
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .filter(|s| !s.is_empty())
            .map(percent_decode);
        let mut spec = ConnSpec {
            host,
            port: parsed.port().unwrap_or(3306),
            user,
            password,
            password_source,
            database,
            socket: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: None,
            write_timeout: None,
            ssl_mode: SslMode::Preferred,
            ssl_ca: None,
        };
        for (key, value) in parsed.query_pairs() {
            spec.set_url_option(&key, &value, url)?;
        }
        Ok(spec)
    }

    /// Applies one `?key=value` option of `url` (named, redacted, when the
    /// option is unknown).
    fn set_url_option(&mut self, key: &str, value: &str, url: &str) -> Result<()> {
        let secs = || -> Result<Duration> {
            let n: u64 = value.parse().with_context(|| {
                format!("URL option {key}={value}: expected a number of seconds")
            })?;
            Ok(Duration::from_secs(n))
        };
        match key {
            "socket" => self.socket = Some(PathBuf::from(value)),
            "connect_timeout" => self.connect_timeout = secs()?,
            "read_timeout" => self.read_timeout = Some(secs()?),
            "write_timeout" => self.write_timeout = Some(secs()?),
            "ssl-mode" | "ssl_mode" | "sslmode" => {
                self.ssl_mode = SslMode::parse(value).ok_or_else(|| {
                    anyhow::anyhow!(
                        "URL option ssl-mode={value}: expected disabled, preferred, required, verify-ca or verify-identity"
                    )
                })?
            }
            "ssl-ca" | "ssl_ca" => self.ssl_ca = Some(PathBuf::from(value)),
            other => bail!(
                "unknown URL option {other:?} in {} (known: socket, connect_timeout, read_timeout, write_timeout, ssl-mode, ssl-ca)",
                redact_url_text(url)
            ),
        }
        Ok(())
    }

    pub fn password_source(&self) -> PasswordSource {
        self.password_source
    }

    /// `host:port` (or the socket path), the server's identity in a dump.
    pub fn endpoint(&self) -> String {
        match &self.socket {
            Some(s) => format!("{}:{} (socket {})", self.host, self.port, s.display()),
            None => format!("{}:{}", self.host, self.port),
        }
    }

    /// Opens a connection. `role` names it in errors ("source", "target").
    pub fn connect(&self, role: &str) -> Result<Conn> {
        let mut opts = OptsBuilder::new()
            .ip_or_hostname(Some(self.host.clone()))
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(self.password.as_ref().map(|p| p.expose().to_string()))
            .db_name(self.database.clone())
            // The mysql crate would otherwise switch a 127.0.0.1 connection to
            // the server's Unix socket behind our back; a socket is used only
            // when the URL asks for one.
            .prefer_socket(false)
            .tcp_connect_timeout(Some(self.connect_timeout))
            .read_timeout(self.read_timeout)
            .write_timeout(self.write_timeout)
            .stmt_cache_size(Some(0))
            // The driver takes the server's max_allowed_packet as the largest
            // packet it accepts, but a server sends rows bigger than its own
            // limit (that limit is on what it reads): a 3 MB BLOB from a
            // server at 1 MiB failed the export with the driver's "Packet is
            // larger than max_allowed_packet". Accept what the protocol allows.
            .max_allowed_packet(Some(1 << 30));
        if let Some(socket) = &self.socket {
            opts = opts
                .socket(Some(socket.to_string_lossy().into_owned()))
                .prefer_socket(true);
        }
        if let Some(ca) = &self.ssl_ca {
            if !ca.is_file() {
                bail!("ssl-ca={}: no such file", ca.display());
            }
        }
        let tls = |verify_chain: bool, verify_name: bool| {
            let mut ssl = SslOpts::default()
                .with_danger_accept_invalid_certs(!verify_chain)
                .with_danger_skip_domain_validation(!verify_name);
            if let Some(ca) = &self.ssl_ca {
                ssl = ssl.with_root_cert_path(Some(ca.clone()));
            }
            ssl
        };
        let fail = |e: mysql::Error| {
            let hint = match &e {
                mysql::Error::DriverError(mysql::DriverError::TlsNotSupported) => {
                    " (the server does not offer TLS; ssl-mode=preferred or disabled connects without it)"
                }
                _ => "",
            };
            anyhow::anyhow!(
                "connecting to {self} as {role}: {}{hint}",
                crate::errors::driver_sentence(&e)
            )
        };
        match self.ssl_mode {
            SslMode::Disabled => Conn::new(opts).map_err(fail),
            SslMode::Preferred => match Conn::new(opts.clone().ssl_opts(tls(false, false))) {
                Err(mysql::Error::DriverError(mysql::DriverError::TlsNotSupported)) => {
                    Conn::new(opts).map_err(fail)
                }
                other => other.map_err(fail),
            },
            SslMode::Required => Conn::new(opts.ssl_opts(tls(false, false))).map_err(fail),
            SslMode::VerifyCa => Conn::new(opts.ssl_opts(tls(true, false))).map_err(fail),
            SslMode::VerifyIdentity => Conn::new(opts.ssl_opts(tls(true, true))).map_err(fail),
        }
    }
}

/// `mysql://user@host:port/db`, never with the password.
impl fmt::Display for ConnSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mysql://{}@", self.user)?;
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{}:{}", self.host, self.port)?;
        }
        if let Some(db) = &self.database {
            write!(f, "/{db}")?;
        }
        Ok(())
    }
}

/// The URL text with any password replaced by `***`, for error messages about
/// URLs that could not even be parsed.
pub fn redact_url_text(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "(unparseable URL)".to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{}://{masked}{}", &url[..scheme_end], &rest[at..])
        }
        None => url.to_string(),
    }
}

/// The URL parsed, and its scheme checked; errors never repeat the password.
fn parse_server_url(url: &str) -> Result<url::Url> {
    let parsed = url::Url::parse(url).map_err(|e| {
        anyhow::anyhow!(
            "invalid server URL {}: {e} (expected mysql://user[:password]@host[:port][/db])",
            redact_url_text(url)
        )
    })?;
    if parsed.scheme() != "mysql" && parsed.scheme() != "mariadb" {
        bail!(
            "invalid server URL {}: scheme must be mysql://",
            redact_url_text(url)
        );
    }
    Ok(parsed)
}

/// The password: the URL's (percent-encoded there), else `MYSQL_PWD`, else
/// the option file's, as the `mysql` client looks for it.
fn find_password(in_url: Option<&str>) -> (Option<Secret>, PasswordSource) {
    if let Some(p) = in_url {
        (Some(Secret(percent_decode(p))), PasswordSource::Url)
    } else if let Ok(p) = std::env::var("MYSQL_PWD") {
        (Some(Secret(p)), PasswordSource::Env)
    } else if let Some(p) = option_file_password() {
        (Some(Secret(p)), PasswordSource::OptionFile)
    } else {
        (None, PasswordSource::None)
    }
}

/// `password` from the `[client]` group of `~/.my.cnf`, the option file the
/// `mysql` and `mariadb` clients read.
fn option_file_password() -> Option<String> {
    let home = std::env::var_os("HOME")?;
    let text = std::fs::read_to_string(PathBuf::from(home).join(".my.cnf")).ok()?;
    let mut in_client = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_client = line == "[client]";
        } else if in_client {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == "password" {
                    let v = v.trim();
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                        .unwrap_or(v);
                    return Some(v.to_string());
                }
            }
        }
    }
    None
}

/// The session settings that keep values exact, the same for every role
/// (export reads with them, load writes with them, verify compares with
/// them): values travel as UTF-8 whatever the column's character set, and
/// TIMESTAMP values in UTC, so a dump never depends on a session's time zone.
/// On a Galera node reads wait until the node has applied what any node
/// committed before them (`wsrep_sync_wait=1`): a load counting a chunk
/// committed through another node, a verify of each node right after a
/// load. Elsewhere 0 (MariaDB) or no such variable (MySQL, skipped).
pub fn set_exact_session(conn: &mut Conn) -> Result<()> {
    for stmt in ["SET NAMES utf8mb4", "SET SESSION time_zone = '+00:00'"] {
        conn.query_drop(stmt)
            .with_context(|| format!("setting up the session ({stmt})"))?;
    }
    set_optional(conn, "wsrep_sync_wait = IF(@@wsrep_on, 1, 0)")
}

/// Lets a connection sit idle for hours without the server closing it
/// (`wait_timeout`): a reader waits between chunks behind a slow disk, a
/// load's control connection while a long table loads, and neither can
/// reconnect without losing its snapshot or its locks.
pub fn keep_session_when_idle(conn: &mut Conn) -> Result<()> {
    conn.query_drop("SET SESSION wait_timeout = GREATEST(@@wait_timeout, 28800)")
        .context("setting wait_timeout")
}

/// Sets a session variable that may not exist on this server flavour
/// (`max_statement_time` is MariaDB's, `max_execution_time` MySQL's): an
/// unknown variable (error 1193) is not an error.
pub fn set_optional(conn: &mut Conn, assignment: &str) -> Result<()> {
    match conn.query_drop(format!("SET SESSION {assignment}")) {
        Ok(()) => Ok(()),
        Err(mysql::Error::MySqlError(e)) if e.code == 1193 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("SET SESSION {assignment}")),
    }
}

/// The server's version string, e.g. `10.11.19-MariaDB-0+deb12u1`.
pub fn server_version(conn: &mut Conn) -> Result<String> {
    let v: Option<String> = conn.query_first("SELECT VERSION()")?;
    Ok(v.unwrap_or_default())
}

/// The MySQL error code of an error, if it is a server error.
pub fn server_error_code(err: &anyhow::Error) -> Option<u16> {
    err.chain()
        .find_map(|e| match e.downcast_ref::<mysql::Error>() {
            Some(mysql::Error::MySqlError(m)) => Some(m.code),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_show_the_password() {
        let spec = ConnSpec::parse("mysql://app:s%40cret@db.example:3307/shop?socket=/tmp/x.sock")
            .unwrap();
        assert_eq!(spec.user, "app");
        assert_eq!(spec.password.as_ref().unwrap().expose(), "s@cret");
        assert_eq!(spec.port, 3307);
        assert_eq!(spec.database.as_deref(), Some("shop"));
        assert_eq!(spec.socket, Some(PathBuf::from("/tmp/x.sock")));
        assert_eq!(spec.to_string(), "mysql://app@db.example:3307/shop");
        assert!(!format!("{spec:?}").contains("s%40cret"));
        assert!(!format!("{spec:?}").contains("s@cret"));
    }

    #[test]
    fn bad_urls_are_rejected_without_echoing_the_password() {
        let err = ConnSpec::parse("mysql://u:hunter2@host:notaport/").unwrap_err();
        let text = format!("{err:#}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("u:***@host"), "{text}");
        let err = ConnSpec::parse("mysql://u:hunter2@host/?bogus=1").unwrap_err();
        assert!(!format!("{err:#}").contains("hunter2"));
    }
}
