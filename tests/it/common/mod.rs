//! Everything the tests share: the server harness ([`server`]), the one
//! `myspool` runner ([`run`]), dumps read back ([`dumps`]), fixtures that
//! make and move data ([`fixtures`]), table comparisons ([`compare`]), and
//! a few file-system helpers below.
#![allow(dead_code)]

pub mod compare;
pub mod dumps;
pub mod fixtures;
pub mod galera;
pub mod mysql8;
pub mod run;
pub mod server;
pub mod slurm;

use std::path::Path;
use std::process::Command;

pub use compare::*;
pub use fixtures::*;
pub use run::*;
pub use server::{replicated_pair, source_server, target_server, wait_for_replica, Server};

/// Occurrences of `needle` in the files whose name starts with `prefix`,
/// anywhere under `dir` (journals and logs of a running myspool).
pub fn count_in_files(dir: &Path, prefix: &str, needle: &str) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if e.file_name().to_string_lossy().starts_with(prefix) {
                n += std::fs::read_to_string(&p)
                    .unwrap_or_default()
                    .matches(needle)
                    .count();
            }
        }
    }
    n
}

/// Lines in `path` so far (0 if it does not exist yet): the chunks a
/// running myspool has recorded in an `export.log` or `process.log`.
pub fn line_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// `cp -a from to`.
pub fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A small tmpfs (the tests run as root), unmounted on drop.
pub struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    pub fn mount(options: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "this test needs root to mount a small tmpfs"
        );
        Tmpfs(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Grows (or shrinks) the mounted file system.
    pub fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}
