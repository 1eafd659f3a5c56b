//! The server harness: real, throwaway MariaDB servers.
//!
//! Every server lives in its own temporary directory under
//! `std::env::temp_dir()` (datadir, unix socket, pid file, error log) and
//! listens on a free TCP port on 127.0.0.1. `root` has no password.
//!
//! * [`Server::shared`] — one server per distinct (sorted) option set per test
//!   process, started on first use and reused by every test of every module
//!   (they all run in the one `it` binary): a test that changes a server's
//!   global state (`SET GLOBAL`, users, fixed database names) takes a private
//!   server or names that no other test uses.
//! * [`Server::start`] — a private server, killed and removed on `Drop`; it
//!   can be `kill`ed, `stop`ped and `restart`ed for fault tests.
//!
//! No leaks, even though shared servers sit in statics that are never
//! dropped: each server is run by a small bash supervisor (in its own process
//! group, so a terminal Ctrl-C does not reach it) whose stdin is a pipe held
//! open by the test process. Commands arrive on that pipe; when it closes —
//! `Drop`, normal exit, panic, SIGKILL of the test process — the supervisor
//! kills mariadbd with SIGKILL and deletes the whole temporary directory.
//!
//! Datadirs are copies of one template made per test process with
//! `mariadb-install-db` (a copy takes milliseconds, an install ~0.6 s); options
//! that only work at install time (`--innodb-page-size`,
//! `--lower-case-table-names`, ...) get a private install. Each server has a
//! private `--tmpdir`, a 16 MiB redo log and a 64 MiB buffer pool, allows
//! `LOAD DATA LOCAL INFILE` (`--local-infile=1`, overridable), and is ready
//! ~0.15 s after launch on an idle machine.
//!
//! Environment overrides: `MYSPOOL_TEST_MARIADBD`, `MYSPOOL_TEST_INSTALL_DB`
//! (paths of the server and the datadir installer).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use mysql::{Conn, Opts, OptsBuilder, Value};

/// Redo log size, given both to `mariadb-install-db` and `mariadbd` so that no
/// resize happens at startup (the 10.11 default is 96 MiB per datadir).
const REDO_LOG_SIZE: &str = "16M";
/// How long a server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a start is retried when the chosen port turned out to be taken.
const PORT_ATTEMPTS: usize = 5;
/// Options that must already be given to `mariadb-install-db`: a server with
/// one of them gets its own install instead of a copy of the template.
const INSTALL_TIME_OPTIONS: &[&str] = &[
    "innodb-page-size",
    "innodb-data-file-path",
    "innodb-undo-tablespaces",
    "innodb-checksum-algorithm",
    "lower-case-table-names",
    "character-set-server",
    "collation-server",
];

/// The supervisor. Arguments: `$1` = directory to delete at the end, the rest
/// = the mariadbd command line without `--port`. Stdin commands (one per
/// line): `start PORT` → launches mariadbd and answers `pid N`; `kill` →
/// SIGKILL and reap it; `stop` → SIGTERM (clean shutdown; SIGKILL after
/// 60 s) and reap it; both answer `done`. End of input (the test process dropped the server or exited
/// in any way) → SIGKILL mariadbd, delete the directory, exit.
const SUPERVISOR: &str = r#"
dir=$1; shift
pid=
trap '' INT
reap() {
  if [ -n "$pid" ]; then
    kill "$1" "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    pid=
  fi
}
while IFS= read -r cmd; do
  case $cmd in
    "start "*)
      reap -9
      "$@" "--port=${cmd#start }" </dev/null >>"$dir/mariadbd.out" 2>&1 &
      pid=$!
      echo "pid $pid" ;;
    kill) reap -9; echo done ;;
    stop)
      if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null
        n=0
        while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 600 ]; do sleep 0.1; n=$((n + 1)); done
      fi
      reap -9; echo done ;;
  esac
done
reap -9
rm -rf -- "$dir"
"#;

/// A throwaway MariaDB server. See the module documentation.
pub struct Server {
    dir: PathBuf,
    port: u16,
    options: Vec<String>,
    supervisor: Option<Supervisor>,
    /// pid of the running mariadbd, if any.
    pid: Option<u32>,
}

struct Supervisor {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Supervisor {
    /// Sends one command and returns the one-line answer.
    fn call(&mut self, cmd: &str) -> String {
        let stdin = self.stdin.as_mut().expect("supervisor already closed");
        writeln!(stdin, "{cmd}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("mariadbd supervisor: sending {cmd:?}: {e}"));
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("mariadbd supervisor: answer to {cmd:?}: {e}"));
        assert!(n > 0, "mariadbd supervisor died while handling {cmd:?}");
        line.trim_end().to_string()
    }

    /// Closes the pipe (the supervisor then kills mariadbd and deletes the
    /// directory) and waits until that is done.
    fn shut_down(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

type SharedSlot = Arc<OnceLock<Arc<Server>>>;

fn shared_registry() -> &'static Mutex<HashMap<Vec<String>, SharedSlot>> {
    static REGISTRY: OnceLock<Mutex<HashMap<Vec<String>, SharedSlot>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl Server {
    /// The process-wide server for this option set (order does not matter),
    /// started on first use. It lives until the test process exits, and is
    /// then killed and its directory removed. Never `kill`/`stop` it: tests
    /// share it. Isolate tests with [`Server::fresh_db`].
    pub fn shared(options: &[&str]) -> Arc<Server> {
        let mut key: Vec<String> = options.iter().map(|s| s.to_string()).collect();
        key.sort();
        let slot = {
            let mut registry = shared_registry()
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            Arc::clone(registry.entry(key.clone()).or_default())
        };
        // Started outside the registry lock: different option sets start in
        // parallel, callers of the same one wait for the first.
        Arc::clone(slot.get_or_init(|| Arc::new(Server::launch(key))))
    }

    /// A private server with these extra mariadbd options, killed and its
    /// directory removed on `Drop`.
    pub fn start(options: &[&str]) -> Server {
        Server::start_prepared(options, |_| {})
    }

    /// [`Server::start`], with `prepare` run on the server's directory once
    /// its datadir is in place and before mariadbd first starts (the Galera
    /// fixture opens it to the SST daemon there).
    pub fn start_prepared(options: &[&str], prepare: impl FnOnce(&Path)) -> Server {
        Server::launch_prepared(options.iter().map(|s| s.to_string()).collect(), prepare)
    }

    fn launch(options: Vec<String>) -> Server {
        Server::launch_prepared(options, |_| {})
    }

    fn launch_prepared(options: Vec<String>, prepare: impl FnOnce(&Path)) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("myspool-test-")
            .tempdir_in(std::env::temp_dir())
            .expect("creating the server's temporary directory")
            .keep();
        std::fs::create_dir(dir.join("tmp")).expect("creating the server's tmpdir");
        // From here on the supervisor owns the directory.
        let supervisor = spawn_supervisor(&dir, &options);
        let mut server = Server {
            dir,
            port: 0,
            options,
            supervisor: Some(supervisor),
            pid: None,
        };
        server.install_datadir();
        prepare(&server.dir);
        let mut attempt = 0;
        loop {
            attempt += 1;
            server.port = free_port();
            match server.boot() {
                Ok(()) => return server,
                Err(BootError::PortTaken) if attempt < PORT_ATTEMPTS => continue,
                Err(e) => panic!("{}", server.boot_failure(e)),
            }
        }
    }

    /// `mysql://root@127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's unix socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("mysqld.sock")
    }

    pub fn datadir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server's private `--tmpdir`.
    pub fn tmpdir(&self) -> PathBuf {
        self.dir.join("tmp")
    }

    /// The server's error log.
    pub fn error_log(&self) -> PathBuf {
        self.dir.join("error.log")
    }

    /// The extra mariadbd options this server was started with.
    pub fn options(&self) -> &[String] {
        &self.options
    }

    /// A new TCP connection as root (retries for a few seconds).
    pub fn conn(&self) -> Conn {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.try_conn() {
                Ok(conn) => return conn,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!(
                    "cannot connect to {}: {e}\n{}",
                    self.url(),
                    self.error_log_tail(30)
                ),
            }
        }
    }

    fn try_conn(&self) -> Result<Conn, mysql::Error> {
        let opts = OptsBuilder::new()
            .ip_or_hostname(Some("127.0.0.1"))
            .tcp_port(self.port)
            .user(Some("root"))
            .prefer_socket(false)
            .tcp_connect_timeout(Some(Duration::from_secs(5)));
        Conn::new(Opts::from(opts))
    }

    /// Runs a batch of `;`-separated statements; panics with the SQL and the
    /// error if any of them fails.
    pub fn query(&self, sql: &str) {
        self.query_rows(sql);
    }

    /// Runs `sql` and returns the rows of all its result sets, each value as
    /// the server sent it in the text protocol (`None` = NULL).
    pub fn query_rows(&self, sql: &str) -> Vec<Vec<Option<Vec<u8>>>> {
        run_rows(&mut self.conn(), sql)
            .unwrap_or_else(|e| panic!("query failed on {}: {e}\nSQL: {sql}", self.url()))
    }

    /// One status variable's value, or the error: for polling a server that
    /// may drop its clients meanwhile (a Galera node joining by SST).
    pub fn try_status(&self, name: &str) -> Result<Option<String>, mysql::Error> {
        let mut conn = self.try_conn()?;
        let row: Option<(String, Option<String>)> =
            conn.query_first(format!("SHOW STATUS LIKE '{name}'"))?;
        Ok(row.and_then(|(_, v)| v))
    }

    /// Like [`Server::query_rows`], values decoded as UTF-8 (lossily).
    pub fn query_strings(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.query_rows(sql)
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned()))
                    .collect()
            })
            .collect()
    }

    /// First column of the first row; `None` if it is NULL or there is no row.
    pub fn scalar(&self, sql: &str) -> Option<String> {
        self.query_strings(sql)
            .into_iter()
            .next()
            .and_then(|row| row.into_iter().next())
            .flatten()
    }

    /// Creates a database with a name unique to this call and process
    /// (`{prefix}_{pid}_{n}`) and returns the name. Use it to isolate tests
    /// sharing a server. `prefix` should be a plain identifier. The database
    /// is utf8mb4, as packaged servers default to (`--no-defaults` gives latin1).
    pub fn fresh_db(&self, prefix: &str) -> String {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}_{}_{n}", std::process::id());
        self.query(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"));
        name
    }

    /// SIGKILLs mariadbd, as a crash would; the datadir stays for `restart`.
    pub fn kill(&mut self) {
        self.supervisor_mut().call("kill");
        self.pid = None;
    }

    /// Shuts mariadbd down cleanly (SIGTERM, waits for it to exit); the
    /// datadir stays for `restart`.
    pub fn stop(&mut self) {
        self.supervisor_mut().call("stop");
        self.pid = None;
    }

    /// Starts mariadbd again on the same datadir, port and options (after
    /// `kill` or `stop`; a running one is killed first) and waits until it
    /// accepts connections. Crash recovery happens here.
    pub fn restart(&mut self) {
        // The port was ours a moment ago, but give it a few tries in case a
        // stray connection or someone else holds it.
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            match self.boot() {
                Ok(()) => return,
                Err(BootError::PortTaken) => {
                    last = Some(BootError::PortTaken);
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => {
                    last = Some(e);
                    break;
                }
            }
        }
        let err = last.expect("at least one attempt");
        panic!("restart: {}", self.boot_failure(err));
    }

    /// Whether a mariadbd started by this handle is still running.
    pub fn is_running(&self) -> bool {
        self.pid.is_some_and(process_alive)
    }

    /// The last `n` lines of the server's error log (for diagnostics).
    pub fn error_log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.error_log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(n);
        format!(
            "--- last lines of {} ---\n{}",
            self.error_log().display(),
            lines[start..].join("\n")
        )
    }

    fn supervisor_mut(&mut self) -> &mut Supervisor {
        self.supervisor.as_mut().expect("server supervisor is gone")
    }

    /// A new datadir: a copy of the process-wide template (one
    /// `mariadb-install-db` per test process), or a fresh install when the
    /// options include ones that only take effect at install time.
    fn install_datadir(&mut self) {
        let install_time: Vec<String> = self
            .options
            .iter()
            .filter(|o| {
                let name = o.trim_start_matches('-').replace('_', "-");
                INSTALL_TIME_OPTIONS.iter().any(|p| name.starts_with(p))
            })
            .cloned()
            .collect();
        if install_time.is_empty() {
            copy_dir_all(template_datadir(), &self.datadir());
        } else {
            install_db(&self.datadir(), &self.tmpdir(), &install_time);
        }
    }

    /// Starts mariadbd on `self.port` and waits until it accepts connections.
    fn boot(&mut self) -> Result<(), BootError> {
        let log_len = std::fs::metadata(self.error_log()).map_or(0, |m| m.len());
        let port = self.port;
        let answer = self.supervisor_mut().call(&format!("start {port}"));
        let pid: u32 = answer
            .strip_prefix("pid ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected supervisor answer {answer:?}"));
        self.pid = Some(pid);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(mut conn) = self.try_conn() {
                // Make sure it is ours, not another server that grabbed the
                // port between free_port() and our bind.
                let socket: Option<String> = conn.query_first("SELECT @@socket").ok().flatten();
                if socket.as_deref() == Some(&*self.socket().to_string_lossy()) {
                    return Ok(());
                }
            }
            if !process_alive(pid) {
                self.supervisor_mut().call("kill"); // reap it
                self.pid = None;
                let log = std::fs::read(self.error_log()).unwrap_or_default();
                let new = String::from_utf8_lossy(&log[(log_len as usize).min(log.len())..]);
                if new.contains("Address already in use") || new.contains("error: 98") {
                    return Err(BootError::PortTaken);
                }
                return Err(BootError::Exited);
            }
            if Instant::now() > deadline {
                self.supervisor_mut().call("kill");
                self.pid = None;
                return Err(BootError::Timeout);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn boot_failure(&self, err: BootError) -> String {
        let what = match err {
            BootError::PortTaken => "could not get a free port",
            BootError::Exited => "mariadbd exited during startup",
            BootError::Timeout => "mariadbd did not accept connections in time",
        };
        format!(
            "{what} (port {}, options {:?}, dir {})\n{}",
            self.port,
            self.options,
            self.dir.display(),
            self.error_log_tail(40)
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.shut_down();
        }
        // Normally already gone (the supervisor removes it).
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `mariadb-install-db` into `datadir`; panics with its output on failure.
fn install_db(datadir: &Path, tmpdir: &Path, extra: &[String]) {
    let out = Command::new(install_db_path())
        .arg("--no-defaults")
        .arg(format!("--datadir={}", datadir.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        // Concurrent installs sharing /tmp fail (see spawn_supervisor).
        .arg(format!("--tmpdir={}", tmpdir.display()))
        .arg(format!("--innodb-log-file-size={REDO_LOG_SIZE}"))
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("running mariadb-install-db");
    if !out.status.success() {
        panic!(
            "mariadb-install-db failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A datadir installed once per test process and copied for every server
/// (a copy takes a few ms, an install ~0.6 s). Deleted at process exit by a
/// supervisor that never starts a server.
fn template_datadir() -> &'static Path {
    static TEMPLATE: OnceLock<(PathBuf, Mutex<Supervisor>)> = OnceLock::new();
    let (datadir, _janitor) = TEMPLATE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("myspool-test-template-")
            .tempdir_in(std::env::temp_dir())
            .expect("creating the template directory")
            .keep();
        // The janitor first: if the install panics, dropping it closes the
        // pipe and it deletes the directory; the next caller tries again.
        let janitor = spawn_supervisor(&dir, &[]);
        std::fs::create_dir(dir.join("tmp")).expect("creating the template tmpdir");
        install_db(&dir.join("data"), &dir.join("tmp"), &[]);
        (dir.join("data"), Mutex::new(janitor))
    });
    datadir
}

fn copy_dir_all(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.expect("reading a template entry");
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().expect("template file type").is_dir() {
            copy_dir_all(&src, &dst);
        } else {
            std::fs::copy(&src, &dst)
                .unwrap_or_else(|e| panic!("copying {} to {}: {e}", src.display(), dst.display()));
        }
    }
}

#[derive(Debug)]
enum BootError {
    PortTaken,
    Exited,
    Timeout,
}

fn spawn_supervisor(dir: &Path, options: &[String]) -> Supervisor {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(SUPERVISOR)
        .arg("myspool-test-mariadbd") // $0
        .arg(dir)
        .arg(mariadbd_path())
        .arg("--no-defaults")
        .arg(format!("--datadir={}", dir.join("data").display()))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
        .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
        .arg(format!("--log-error={}", dir.join("error.log").display()))
        // A private tmpdir: at startup a server deletes every `#sql*` file in
        // its tmpdir, i.e. the temporary tables of other servers sharing it
        // (concurrent mariadb-install-db runs fail because of that).
        .arg(format!("--tmpdir={}", dir.join("tmp").display()))
        .arg("--innodb-buffer-pool-size=64M")
        .arg(format!("--innodb-log-file-size={REDO_LOG_SIZE}"))
        .arg("--skip-name-resolve")
        .arg("--local-infile=1");
    if running_as_root() {
        cmd.arg("--user=root");
    }
    // Last, so that they override the defaults above.
    cmd.args(options)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Own process group: Ctrl-C on the test run must not kill the
        // supervisor before the pipe closes and it can clean up.
        .process_group(0);
    let mut child = cmd
        .spawn()
        .expect("spawning bash for the mariadbd supervisor");
    let stdin = child.stdin.take();
    let stdout = BufReader::new(child.stdout.take().expect("supervisor stdout"));
    Supervisor {
        child,
        stdin,
        stdout,
    }
}

fn run_rows(conn: &mut Conn, sql: &str) -> Result<Vec<Vec<Option<Vec<u8>>>>, mysql::Error> {
    let mut rows = Vec::new();
    let mut result = conn.query_iter(sql)?;
    // Walk every result set: an error in a later statement of a batch only
    // shows up there.
    while let Some(set) = result.iter() {
        for row in set {
            rows.push(row?.unwrap().into_iter().map(value_bytes).collect());
        }
    }
    Ok(rows)
}

fn value_bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(b),
        // The text protocol only sends bytes; keep the rest for completeness.
        Value::Int(i) => Some(i.to_string().into_bytes()),
        Value::UInt(u) => Some(u.to_string().into_bytes()),
        Value::Float(f) => Some(f.to_string().into_bytes()),
        Value::Double(d) => Some(d.to_string().into_bytes()),
        other => Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
    }
}

/// A port that was free a moment ago (bind 127.0.0.1:0, read it, release it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// Alive = exists and is not a zombie.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn mariadbd_path() -> PathBuf {
    find_program("MYSPOOL_TEST_MARIADBD", &["mariadbd", "mysqld"])
}

fn install_db_path() -> PathBuf {
    find_program(
        "MYSPOOL_TEST_INSTALL_DB",
        &["mariadb-install-db", "mysql_install_db"],
    )
}

/// `$env_var` if set, else the first of `names` found on PATH or in the
/// sbin directories (often not on a non-root PATH).
fn find_program(env_var: &str, names: &[&str]) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for extra in ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"] {
        dirs.push(PathBuf::from(extra));
    }
    for name in names {
        for dir in &dirs {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "none of {names:?} found (PATH, /usr/sbin, /usr/local/sbin); install MariaDB \
         (apt-get install -y mariadb-server mariadb-client) or set {env_var}"
    );
}

/// The usual source server: defaults (lock mode 1, no binlog).
pub fn source_server() -> Arc<Server> {
    Server::shared(&[])
}

/// The usual target: lock mode 2 with a row-based binlog, the setting under
/// which parallel loads into AUTO_INCREMENT tables are allowed.
pub fn target_server() -> Arc<Server> {
    Server::shared(&[
        "--innodb-autoinc-lock-mode=2",
        "--log-bin",
        "--binlog-format=ROW",
    ])
}

/// A private primary (binlog on, row format, server-id 1) and its private
/// replica (server-id 2), replicating everything from the primary's first
/// binlog on: `(primary, replica)`, the replica running.
pub fn replicated_pair() -> (Server, Server) {
    let primary = Server::start(&[
        "--server-id=1",
        "--log-bin=primary-bin",
        "--binlog-format=ROW",
        "--innodb-autoinc-lock-mode=2",
    ]);
    let replica = Server::start(&["--server-id=2", "--relay-log=replica-relay"]);
    replica.query(&format!(
        "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, MASTER_USER='root', \
         MASTER_USE_GTID=no, MASTER_LOG_FILE='primary-bin.000001', MASTER_LOG_POS=4; START SLAVE",
        primary.port()
    ));
    primary.query("CREATE DATABASE replicated_ping; DROP DATABASE replicated_ping");
    wait_for_replica(&replica);
    (primary, replica)
}

impl Server {
    /// A replica's `Seconds_Behind_Master` (None: NULL, replication stopped).
    pub fn replica_lag(&self) -> Option<u64> {
        let mut conn = self.conn();
        let row: mysql::Row = conn
            .query_first("SHOW SLAVE STATUS")
            .expect("SHOW SLAVE STATUS")
            .expect("not a replica");
        row.get_opt::<Option<u64>, _>("Seconds_Behind_Master")
            .and_then(Result::ok)
            .flatten()
    }

    /// A replica's SQL thread applies events only `seconds` after the
    /// primary wrote them (0: at once), replication restarted.
    pub fn set_replica_delay(&self, seconds: u64) {
        self.query(&format!(
            "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY={seconds}; START SLAVE"
        ));
    }
}

/// Waits until the replica runs and has applied all it received.
pub fn wait_for_replica(replica: &Server) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = replica.query_strings(
            "SELECT 1 FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'SLAVE_RUNNING' AND VARIABLE_VALUE = 'ON'",
        );
        if !status.is_empty() && replica.replica_lag() == Some(0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the replica did not catch up in 60 s\n{}",
            replica.error_log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
