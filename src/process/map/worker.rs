//! What answers the rows of a batch: a long-lived `sh -c CMD` child (one
//! per worker slot, restarted when it ends), or a Rust [`RowTransform`].
//!
//! The child gets one JSON object per line on stdin from a writer thread
//! (so that a child that answers while it reads never deadlocks with us),
//! its answers are read here line by line, in order, and its stderr goes to
//! a bounded file of its slot.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};

use super::protocol::{parse_answer, Answer};
use super::queue::Batch;
use crate::dialect::Field;
use crate::process::command::last_line;
use crate::process::jsonl;
use crate::process::transform::RowTransform;

/// Why a batch was not fully answered.
#[derive(Debug)]
pub enum Failure {
    /// The worker ended before answering every row (exited, crashed, was
    /// killed); `how` says how. Its unanswered rows are sent again.
    Died { how: String },
    /// Out of protocol, or trouble of our own: the run stops.
    Fatal(anyhow::Error),
}

/// One worker slot.
pub trait RowWorker: Send {
    /// Answers the rows of `batch` (whose columns are `header`) into
    /// `answers`, in order; on a failure, `answers` holds those answered.
    fn answer(
        &mut self,
        batch: &Batch,
        header: &[String],
        answers: &mut Vec<Answer>,
    ) -> Result<(), Failure>;
    /// No more rows: ends the worker, checking it owed nothing.
    fn finish(&mut self) -> Result<()>;
    /// Where its stderr is kept, if anywhere.
    fn stderr_path(&self) -> Option<&Path>;
    /// Processes started so far (restarts included).
    fn starts(&self) -> u64 {
        0
    }
}

/// The stderr file of a slot is cut to this size (the older part is kept
/// as `worker-NN.stderr.1`), so a chatty command cannot fill the disk.
const STDERR_LIMIT: u64 = 1024 * 1024;

/// A `sh -c CMD` worker.
pub struct CommandWorker {
    id: usize,
    cmd: String,
    stderr_path: PathBuf,
    /// Set while the queue has nothing to give: a child that holds rows
    /// then gets its input closed (see `queue`).
    starved: Arc<AtomicBool>,
    running: Option<Running>,
    json: Vec<u8>,
    line: Vec<u8>,
    starts: u64,
}

struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
    to_stdin: Option<Sender<Vec<u8>>>,
    writer: JoinHandle<()>,
    stderr: JoinHandle<()>,
    /// The child's stdin was closed because the queue was starved.
    closed_by_us: Arc<AtomicBool>,
    /// Rows are sent and not all answered.
    awaiting: Arc<AtomicBool>,
    /// Answer lines read so far, for messages.
    lines: u64,
}

impl CommandWorker {
    pub fn new(id: usize, cmd: &str, out_root: &Path, starved: Arc<AtomicBool>) -> CommandWorker {
        CommandWorker {
            id,
            cmd: cmd.to_string(),
            stderr_path: out_root.join(crate::dump::worker_stderr_file_name(id)),
            starved,
            running: None,
            json: Vec::new(),
            line: Vec::new(),
            starts: 0,
        }
    }

    fn spawn(&mut self) -> Result<Running> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.cmd)
            .env("MYSPOOL_WORKER", self.id.to_string())
            .env("MYSPOOL_FORMAT", "jsonl")
            // Python buffers a pipe: without this a script that forgot to
            // flush would hold its answers while we wait for them.
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("worker {}: starting sh -c {:?}", self.id, self.cmd))?;
        let missing = || anyhow!("worker {}: no pipe to the command", self.id);
        let stdin = child.stdin.take().ok_or_else(missing)?;
        let stdout = child.stdout.take().ok_or_else(missing)?;
        let stderr = child.stderr.take().ok_or_else(missing)?;
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let closed_by_us = Arc::new(AtomicBool::new(false));
        let awaiting = Arc::new(AtomicBool::new(false));
        let (closed, waiting, starved) =
            (closed_by_us.clone(), awaiting.clone(), self.starved.clone());
        let writer = thread::spawn(move || {
            let mut stdin = stdin;
            loop {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    // A write error is the child gone: its stdout says so.
                    Ok(buf) => {
                        if stdin.write_all(&buf).and_then(|_| stdin.flush()).is_err() {
                            return;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        if !(waiting.load(Ordering::SeqCst) && starved.load(Ordering::SeqCst)) {
                            continue;
                        }
                        // `awaiting` is set after a batch is sent: one may
                        // have come since the timeout.
                        match rx.try_recv() {
                            Ok(buf) => {
                                if stdin.write_all(&buf).and_then(|_| stdin.flush()).is_err() {
                                    return;
                                }
                            }
                            Err(_) => {
                                closed.store(true, Ordering::SeqCst);
                                return;
                            }
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        });
        let path = self.stderr_path.clone();
        let stderr = thread::spawn(move || copy_bounded(stderr, &path, STDERR_LIMIT));
        self.starts += 1;
        Ok(Running {
            child,
            stdout: BufReader::with_capacity(64 * 1024, stdout),
            to_stdin: Some(tx),
            writer,
            stderr,
            closed_by_us,
            awaiting,
            lines: 0,
        })
    }

    /// Ends the running child (its input closed), reading what it still
    /// writes: a line it was not asked for is out of protocol.
    fn reap(&mut self, mut r: Running) -> Result<ExitStatus> {
        drop(r.to_stdin.take());
        let mut extra = 0u64;
        let mut line = Vec::new();
        loop {
            line.clear();
            match r.stdout.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line.iter().all(u8::is_ascii_whitespace) => {}
                Ok(_) => extra += 1,
            }
        }
        let status = r
            .child
            .wait()
            .with_context(|| format!("worker {}: waiting", self.id))?;
        let _ = r.writer.join();
        let _ = r.stderr.join();
        if extra > 0 {
            return Err(anyhow!(
                "worker {} wrote {extra} line(s) more than the rows it was sent (after its output line {})",
                self.id,
                r.lines
            ));
        }
        Ok(status)
    }

    /// How a child that ended says it ended, for messages.
    fn how(&self, status: io::Result<ExitStatus>) -> String {
        let tail = read_tail(&self.stderr_path);
        let ended = match status {
            Ok(s) => describe(s),
            Err(e) => format!("could not be waited for ({e})"),
        };
        match tail.is_empty() {
            true => ended,
            false => format!("{ended} (stderr: {tail})"),
        }
    }

    fn send(&mut self, batch: &Batch, header: &[String]) -> Result<(), Failure> {
        let r = self
            .running
            .as_mut()
            .ok_or_else(|| Failure::Fatal(anyhow!("no worker")))?;
        if !r.stdout.buffer().is_empty() {
            return Err(Failure::Fatal(anyhow!(
                "worker {} wrote a line it was not asked for (after its output line {})",
                self.id,
                r.lines
            )));
        }
        self.json.clear();
        for row in &batch.rows {
            serde_json::to_writer(&mut self.json, &jsonl::object_of(header, row))
                .map_err(|e| Failure::Fatal(e.into()))?;
            self.json.push(b'\n');
        }
        let buf = std::mem::take(&mut self.json);
        // A send error is the writer gone, the child with it: read on.
        let _ = r.to_stdin.as_ref().map(|tx| tx.send(buf));
        r.awaiting.store(true, Ordering::SeqCst);
        Ok(())
    }
}

impl RowWorker for CommandWorker {
    fn answer(
        &mut self,
        batch: &Batch,
        header: &[String],
        answers: &mut Vec<Answer>,
    ) -> Result<(), Failure> {
        if let Some(r) = self.running.take_if(|r| r.writer.is_finished()) {
            // Its input was closed (the queue ran dry) or it died idle.
            self.reap(r).map_err(Failure::Fatal)?;
        }
        if self.running.is_none() {
            self.running = Some(self.spawn().map_err(Failure::Fatal)?);
        }
        self.send(batch, header)?;
        while answers.len() < batch.rows.len() {
            match self.read_answer(batch, answers.len())? {
                Some(a) => answers.push(a),
                None => return Err(self.ended(batch, answers.len())),
            }
        }
        if let Some(r) = &self.running {
            r.awaiting.store(false, Ordering::SeqCst);
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        match self.running.take() {
            Some(r) => self.reap(r).map(|_| ()),
            None => Ok(()),
        }
    }

    fn stderr_path(&self) -> Option<&Path> {
        Some(&self.stderr_path)
    }

    fn starts(&self) -> u64 {
        self.starts
    }
}

impl CommandWorker {
    /// The answer to row `i` of the batch; `None` at the end of the output.
    fn read_answer(&mut self, batch: &Batch, i: usize) -> Result<Option<Answer>, Failure> {
        let id = self.id;
        let r = self
            .running
            .as_mut()
            .ok_or_else(|| Failure::Fatal(anyhow!("no worker")))?;
        self.line.clear();
        let n = r.stdout.read_until(b'\n', &mut self.line).unwrap_or(0);
        if n == 0 {
            return Ok(None);
        }
        r.lines += 1;
        let answer = parse_answer(&self.line).map_err(|e| {
            Failure::Fatal(anyhow!(
                "worker {id}, row {} of the chunk (its output line {}): {e}",
                batch.first + i as u64 + 1,
                r.lines
            ))
        });
        // A 1 MiB row leaves a 1 MiB buffer: not kept for every worker.
        if self.line.capacity() > 256 * 1024 {
            self.line = Vec::new();
        }
        answer.map(Some)
    }

    /// The child's output ended with `answered` rows of the batch answered.
    fn ended(&mut self, batch: &Batch, answered: usize) -> Failure {
        let Some(mut r) = self.running.take() else {
            return Failure::Fatal(anyhow!("no worker"));
        };
        drop(r.to_stdin.take());
        let status = r.child.wait();
        let _ = r.writer.join();
        let _ = r.stderr.join();
        let closed = r.closed_by_us.load(Ordering::SeqCst);
        if closed && status.as_ref().is_ok_and(|s| s.success()) {
            return Failure::Fatal(anyhow!(
                "worker {} exited when its input ended, having answered {answered} of the {} rows it was sent (rows {}-{} of the chunk): it must write exactly one line per row",
                self.id,
                batch.rows.len(),
                batch.first + 1,
                batch.first + batch.rows.len() as u64
            ));
        }
        let how = self.how(status);
        note_in_stderr(
            &self.stderr_path,
            &format!(
                "myspool: worker {} {how}, with row {} of the chunk unanswered; restarting it",
                self.id,
                batch.first + answered as u64 + 1
            ),
        );
        Failure::Died { how }
    }
}

impl Drop for CommandWorker {
    fn drop(&mut self) {
        if let Some(mut r) = self.running.take() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

/// "exited with status 3", "was killed by signal 9".
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => "ended".into(),
    }
}

/// The last line of a stderr file.
fn read_tail(path: &Path) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut tail = Vec::new();
    let _ = io::Seek::seek(&mut f, io::SeekFrom::Start(len.saturating_sub(2000)));
    let _ = f.read_to_end(&mut tail);
    last_line(&tail)
}

/// Appends a line of ours to a worker's stderr file.
fn note_in_stderr(path: &Path, text: &str) {
    if let Ok(mut f) = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
    {
        let _ = writeln!(f, "{text}");
    }
}

/// Copies a child's stderr into `path`, starting over (the older part kept
/// as `path.1`) each time the file passes `limit`.
fn copy_bounded(mut from: impl Read, path: &Path, limit: u64) {
    let open = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
    };
    let Ok(mut file) = open() else {
        let _ = io::copy(&mut from, &mut io::sink());
        return;
    };
    let mut size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if size >= limit {
            let mut old = path.as_os_str().to_owned();
            old.push(".1");
            let _ = fs::rename(path, &old);
            match open() {
                Ok(f) => (file, size) = (f, 0),
                Err(_) => return,
            }
        }
        let _ = file.write_all(&buf[..n]);
        size += n as u64;
    }
}

/// A Rust [`RowTransform`] as a worker: `Err` from `transform` rejects the
/// row (its message is the reason), and so does a panic.
pub struct TransformWorker<'a> {
    pub transform: &'a dyn RowTransform,
    columns: Option<(Vec<String>, Vec<String>)>,
}

impl<'a> TransformWorker<'a> {
    pub fn new(transform: &'a dyn RowTransform) -> TransformWorker<'a> {
        TransformWorker {
            transform,
            columns: None,
        }
    }

    /// The output columns of a table's header (asked once per header).
    fn columns(&mut self, header: &[String]) -> Result<Vec<String>, Failure> {
        if let Some((h, c)) = &self.columns {
            if h == header {
                return Ok(c.clone());
            }
        }
        let c = self.transform.columns(header).map_err(Failure::Fatal)?;
        self.columns = Some((header.to_vec(), c.clone()));
        Ok(c)
    }
}

impl RowWorker for TransformWorker<'_> {
    fn answer(
        &mut self,
        batch: &Batch,
        header: &[String],
        answers: &mut Vec<Answer>,
    ) -> Result<(), Failure> {
        let columns = self.columns(header)?;
        for row in &batch.rows {
            let mut out: Vec<Vec<Field>> = Vec::new();
            let t = self.transform;
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                t.transform(header, row.clone(), &mut |r| out.push(r))
            }));
            answers.push(match result {
                Ok(Ok(())) => {
                    let mut objects: Vec<_> =
                        out.iter().map(|r| jsonl::object_of(&columns, r)).collect();
                    match objects.len() {
                        0 => Answer::Drop,
                        1 => Answer::Row(objects.remove(0)),
                        _ => Answer::Rows(objects),
                    }
                }
                Ok(Err(e)) => Answer::Reject(format!("{e:#}")),
                Err(_) => Answer::Reject("the transform panicked on this row".into()),
            });
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }

    fn stderr_path(&self) -> Option<&Path> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn how_a_worker_ended_is_said_plainly() {
        assert_eq!(
            describe(ExitStatus::from_raw(3 << 8)),
            "exited with status 3"
        );
        assert_eq!(describe(ExitStatus::from_raw(9)), "was killed by signal 9");
    }

    #[test]
    fn a_workers_stderr_file_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker-01.stderr");
        let text = vec![b'x'; 10_000];
        copy_bounded(&text[..], &path, 3000);
        let now = fs::metadata(&path).unwrap().len();
        let old = fs::metadata(dir.path().join("worker-01.stderr.1"))
            .unwrap()
            .len();
        assert!(now <= 8192 && old <= 3000 + 8192, "{now} {old}");
    }
}
