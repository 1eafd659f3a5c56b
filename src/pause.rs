//! Pausing between chunks while something holds on a server: the export's
//! `--pause-when` (a status variable of the source) and the load's
//! `--max-replica-lag` (the replicas' lag) are the same mechanism over
//! different questions. Every job passes the gate before its next chunk;
//! one job asks at a time (the others wait for its answer, behind the
//! caller's lock), at most once a [`POLL`]; while the answer is "wait",
//! every job waits; the pause is said when it starts and ends, and counted.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use crate::progress;

/// How often the server is asked, at most.
pub const POLL: Duration = Duration::from_secs(1);

/// What the pauses took, for the summary.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Pauses {
    pub count: u64,
    pub seconds: f64,
}

/// When the condition was last found clear, and the pauses so far.
#[derive(Debug, Default)]
pub struct Gate {
    last_ok: Option<Instant>,
    pauses: Pauses,
}

/// The two lines a pause is said with.
pub struct Wording<P, R> {
    /// From why it pauses (what `busy` answered).
    pub pausing: P,
    /// From how many seconds it paused.
    pub resuming: R,
}

impl Gate {
    /// Returns once `busy` answers `None` (nothing to wait for) or `abort`
    /// is set; `busy` answers why to wait otherwise. Clear within the last
    /// [`POLL`]: returns at once without asking.
    pub fn wait<P, R>(
        &mut self,
        abort: &AtomicBool,
        mut busy: impl FnMut() -> Result<Option<String>>,
        say: Wording<P, R>,
    ) -> Result<()>
    where
        P: Fn(&str) -> String,
        R: Fn(f64) -> String,
    {
        if self.last_ok.is_some_and(|t| t.elapsed() < POLL) {
            return Ok(());
        }
        let mut paused: Option<Instant> = None;
        while let Some(why) = busy()? {
            if paused.is_none() {
                progress::notice(&(say.pausing)(&why));
                paused = Some(Instant::now());
                self.pauses.count += 1;
            }
            if abort.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(POLL);
        }
        if let Some(since) = paused {
            let seconds = since.elapsed().as_secs_f64();
            self.pauses.seconds += seconds;
            progress::notice(&(say.resuming)(seconds));
        }
        self.last_ok = Some(Instant::now());
        Ok(())
    }

    pub fn pauses(&self) -> Pauses {
        self.pauses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wording() -> Wording<impl Fn(&str) -> String, impl Fn(f64) -> String> {
        Wording {
            pausing: |why: &str| format!("pausing: {why}"),
            resuming: |s: f64| format!("resuming after {s:.0} s"),
        }
    }

    #[test]
    fn a_pause_is_counted_once_and_a_clear_answer_is_trusted_for_a_poll() {
        let mut gate = Gate::default();
        let stop = AtomicBool::new(true);
        let mut asked = 0;
        // Busy, but stopping: one pause counted, no wait.
        gate.wait(
            &stop,
            || {
                asked += 1;
                Ok(Some("busy".to_string()))
            },
            wording(),
        )
        .unwrap();
        assert_eq!((asked, gate.pauses().count), (1, 1));
        // Right after, within POLL: not asked again.
        gate.wait(&stop, || unreachable!("asked within POLL"), wording())
            .unwrap();
        assert_eq!(gate.pauses().count, 1);
    }

    #[test]
    fn nothing_to_wait_for_is_no_pause() {
        let mut gate = Gate::default();
        gate.wait(&AtomicBool::new(false), || Ok(None), wording())
            .unwrap();
        assert_eq!(gate.pauses().count, 0);
        assert_eq!(gate.pauses().seconds, 0.0);
    }
}
