//! Running the `myspool` binary: the one runner every test uses.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of the `myspool` binary built for these integration tests.
pub fn myspool_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_myspool"))
}

/// `myspool ARGS`, stdin closed; waits for it and returns its output.
pub fn myspool<S: AsRef<str>>(args: &[S]) -> Output {
    myspool_env(args, &[])
}

/// `myspool ARGS` with extra environment variables (test hooks such as
/// `MYSPOOL_TEST_CHUNK_DELAY_MS`, or `MYSQL_PWD`).
pub fn myspool_env<S: AsRef<str>>(args: &[S], env: &[(&str, &str)]) -> Output {
    command(args, env).output().expect("running myspool")
}

/// `myspool ARGS` started in the background, stdout and stderr piped: read
/// them with `wait_with_output` (which also keeps the pipes from filling up).
pub fn spawn_myspool<S: AsRef<str>>(args: &[S], env: &[(&str, &str)]) -> Child {
    command(args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting myspool")
}

fn command<S: AsRef<str>>(args: &[S], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(myspool_bin());
    cmd.args(args.iter().map(AsRef::as_ref))
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

/// Runs `myspool ARGS` with `env`, and kills it with SIGKILL as soon as
/// `ready()` holds (polled every few ms). Returns false, without a kill, if
/// the process ended first (it must have succeeded then).
pub fn kill_9_when<S: AsRef<str> + std::fmt::Debug>(
    args: &[S],
    env: &[(&str, &str)],
    ready: impl Fn() -> bool,
) -> bool {
    let mut child = command(args, env)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting myspool");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if ready() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaping myspool");
            return true;
        }
        if child.try_wait().expect("polling myspool").is_some() {
            let out = child.wait_with_output().expect("reaping myspool");
            assert!(
                out.status.success(),
                "myspool {args:?} failed before the kill: {}",
                stderr(&out)
            );
            return false;
        }
        assert!(
            Instant::now() < deadline,
            "myspool {args:?} made no progress in 60 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What the run printed on stdout (lossily decoded).
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the run printed on stderr (lossily decoded).
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The run succeeded; otherwise panics with what it printed.
#[track_caller]
pub fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "myspool failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// The run failed, and its stderr is that one line (`myspool: error: …`).
#[track_caller]
pub fn assert_one_line_error(out: &Output) -> String {
    let err = stderr(out);
    assert!(!out.status.success(), "myspool succeeded: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    err
}

/// The `--json` summary a run printed on stdout.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(out)))
}

/// Polls `ready` every few ms until it holds; panics naming `what` if that
/// takes longer than `timeout`.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "waited {timeout:?} for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How a run started by [`run_until_killed`] ended.
pub enum Ended {
    /// Killed with SIGKILL this long after it started.
    Killed(Duration),
    /// Ended by itself this long after it started, with this output.
    Exited(Duration, Output),
}

/// Runs `myspool ARGS` with `env`, asks `kill_now(time since the start)`
/// every 2 ms, and kills it with SIGKILL as soon as that holds. Unlike
/// [`kill_9_when`], a run that ends first is returned, failed or not.
pub fn run_until_killed<S: AsRef<str> + std::fmt::Debug>(
    args: &[S],
    env: &[(&str, &str)],
    mut kill_now: impl FnMut(Duration) -> bool,
) -> Ended {
    let start = Instant::now();
    let mut child = spawn_myspool(args, env);
    loop {
        let elapsed = start.elapsed();
        if child.try_wait().expect("polling myspool").is_some() {
            let out = child.wait_with_output().expect("reaping myspool");
            return Ended::Exited(elapsed, out);
        }
        if kill_now(elapsed) {
            child.kill().expect("SIGKILL");
            child.wait().expect("reaping myspool");
            return Ended::Killed(elapsed);
        }
        assert!(
            elapsed < Duration::from_secs(300),
            "myspool {args:?} ran for 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}
