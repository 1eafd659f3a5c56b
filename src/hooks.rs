//! Test hooks: settings only the tests set, read from the environment here
//! and nowhere else, so a hook means the same to every phase. None of them
//! is for users; the README does not list them.

use std::time::Duration;

/// `MYSPOOL_TEST_CHUNK_DELAY_MS`: a pause per chunk, so that a test can kill
/// myspool while a phase is in the middle of its chunks.
pub fn chunk_delay() -> Duration {
    std::env::var("MYSPOOL_TEST_CHUNK_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or_default()
}

/// A switch set with `NAME=1`.
pub fn flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v == "1")
}

/// `MYSPOOL_TEST_STOP_AT=POINT`: the process kills itself with SIGKILL when
/// it reaches the named point (as `kill -9` would, no cleanup, no flush),
/// so a test can stop it exactly between two steps. The points:
/// `swap-before-rename`, `swap-after-rename`, `swap-before-drop` (the
/// first table's swap journaled, its old table not yet dropped),
/// `swap-after-drop`.
pub fn stop_at(point: &str) {
    if std::env::var("MYSPOOL_TEST_STOP_AT").is_ok_and(|v| v == point) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &std::process::id().to_string()])
            .status();
        // `kill` is missing or failed: end as abruptly anyway.
        std::process::abort();
    }
}
