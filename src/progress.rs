//! Progress of a long phase: a bar on a terminal, plain periodic lines
//! otherwise (a log file or CI output should not fill with bar redraws).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Every bar of the process: `copy` runs its phases at the same time, and
/// their bars must stack instead of drawing over each other.
fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4)))
}

/// Prints a line on stderr above the bars of every phase, so that a library
/// message (a warning, a retry) does not tear a bar being drawn. Callable
/// from any thread, with or without a `Progress` at hand.
pub fn notice(message: &str) {
    bars().suspend(|| eprintln!("{message}"));
}

/// Set by `--quiet`: [`info`] says nothing.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences [`info`] for the rest of the process (`--quiet`: only warnings
/// and errors).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// A message that is neither a warning nor an error ("already loaded,
/// nothing to do"): printed as [`notice`] unless `--quiet`.
pub fn info(message: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        notice(message);
    }
}

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    Bar,
    Plain,
    /// Nothing but warnings.
    Quiet,
}

/// Progress of one phase, counted in rows and bytes.
pub struct Progress {
    label: &'static str,
    bar: Option<ProgressBar>,
    plain: bool,
    total_rows: u64,
    started: Instant,
    last_line: Instant,
    interval: Duration,
    rows: u64,
    bytes: u64,
    /// Rows done before this run (counted in `rows`, not in the rate).
    base_rows: u64,
    /// Extra words for the line, e.g. "3 chunks in flight".
    note: String,
}

impl Progress {
    pub fn new(mode: ProgressMode, label: &'static str, total_rows: u64) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let (bar, plain) = match mode {
            ProgressMode::Quiet => (None, false),
            ProgressMode::Plain => (None, true),
            ProgressMode::Auto if !terminal => (None, true),
            ProgressMode::Auto | ProgressMode::Bar => {
                let bar = bars().add(ProgressBar::new(total_rows.max(1)));
                let style = ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows  {msg}  ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style);
                bar.set_prefix(label);
                (Some(bar), false)
            }
        };
        let interval = std::env::var("MYSPOOL_PROGRESS_INTERVAL")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(10));
        let now = Instant::now();
        Progress {
            label,
            bar,
            plain,
            total_rows,
            started: now,
            last_line: now,
            interval,
            rows: 0,
            bytes: 0,
            base_rows: 0,
            note: String::new(),
        }
    }

    /// Sets the extra words shown with the counts.
    pub fn set_note(&mut self, note: String) {
        self.note = note;
    }

    /// Counts `rows` done by earlier runs: shown in the position, left out
    /// of the rate and the ETA.
    pub fn start_at(&mut self, rows: u64) {
        self.base_rows = rows;
        self.rows = rows;
        if let Some(bar) = &self.bar {
            bar.set_position(rows);
            bar.reset_eta();
        }
    }

    /// Adds to the running totals.
    pub fn add(&mut self, rows: u64, bytes: u64) {
        self.set(self.rows + rows, self.bytes + bytes);
    }

    /// Sets the running totals (rows and bytes done so far in this run).
    pub fn set(&mut self, rows: u64, bytes: u64) {
        self.rows = rows;
        self.bytes = bytes;
        let rate = self.bytes_per_sec();
        if let Some(bar) = &self.bar {
            if rows > bar.length().unwrap_or(0) {
                bar.set_length(rows);
            }
            bar.set_position(rows);
            // Row mode counts rows, not bytes.
            bar.set_message(match bytes {
                0 => format!("{:.1} rows/s  {}", self.rows_per_sec(), self.note),
                _ => format!("{}  {}/s", human_bytes(bytes), human_bytes(rate as u64)),
            });
        } else if self.plain && self.last_line.elapsed() >= self.interval {
            self.last_line = Instant::now();
            // A log line says when: runs from cron are read the next morning.
            eprintln!("{} {}", crate::dump::utc_now(), self.line());
        }
    }

    fn bytes_per_sec(&self) -> f64 {
        let secs = self.started.elapsed().as_secs_f64();
        if secs > 0.0 {
            self.bytes as f64 / secs
        } else {
            0.0
        }
    }

    /// Rows per second in this run.
    fn rows_per_sec(&self) -> f64 {
        let secs = self.started.elapsed().as_secs_f64();
        match secs > 0.0 {
            true => self.rows.saturating_sub(self.base_rows) as f64 / secs,
            false => 0.0,
        }
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64();
        let pct = if self.total_rows > 0 {
            format!(
                " ({:.1}%)",
                100.0 * self.rows as f64 / self.total_rows as f64
            )
        } else {
            String::new()
        };
        let done_now = self.rows.saturating_sub(self.base_rows);
        let eta = if done_now > 0 && self.total_rows > self.rows && secs > 0.0 {
            let left = (self.total_rows - self.rows) as f64 * secs / done_now as f64;
            format!(", ETA {}", human_duration(left))
        } else {
            String::new()
        };
        let speed = match self.bytes {
            0 => format!("{:.1} rows/s", self.rows_per_sec()),
            _ => format!(
                "{}, {}/s",
                human_bytes(self.bytes),
                human_bytes(self.bytes_per_sec() as u64)
            ),
        };
        format!(
            "myspool {}: {}/{} rows{pct}, {speed}{eta}{}",
            self.label,
            self.rows,
            self.total_rows,
            if self.note.is_empty() {
                String::new()
            } else {
                format!(", {}", self.note)
            }
        )
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub fn human_duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Peak resident memory of this process so far (`VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
