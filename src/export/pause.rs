//! `--pause-when 'Threads_running>N'`: the export shares the source with
//! its users by stepping aside while the source is busy. Before each chunk
//! a job asks the gate; the gate reads the global status variable (`SHOW
//! GLOBAL STATUS`, on a connection of its own, at most once a second) and,
//! while the condition holds, every job waits between chunks (a chunk being
//! read is finished first). The pauses are said as they start and end and
//! counted in the summary.
//!
//! The export's own queries count: each job reading a chunk is a running
//! thread, and the gate's own `SHOW GLOBAL STATUS` is one too; so is every
//! connection of the export in `Threads_connected`. Choose N above them.

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::Conn;

use crate::conn::ConnSpec;
pub use crate::pause::Pauses;
use crate::pause::{Gate, Wording};

/// `Name>N` or `Name>=N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseWhen {
    /// A global status variable, as `SHOW GLOBAL STATUS` names it.
    pub name: String,
    /// `>=` (true) or `>`.
    pub or_equal: bool,
    pub limit: u64,
}

impl PauseWhen {
    /// Reads `--pause-when`: a status variable name (letters, digits, `_`),
    /// `>` or `>=`, a whole number; spaces around them are allowed.
    pub fn parse(text: &str) -> Result<PauseWhen> {
        let bad = || {
            anyhow::anyhow!(
                "--pause-when {text:?}: expected a global status variable, > or >=, and a whole number, e.g. 'Threads_running>40'"
            )
        };
        let (name, rest) = text.split_once('>').ok_or_else(bad)?;
        let (or_equal, number) = match rest.strip_prefix('=') {
            Some(n) => (true, n),
            None => (false, rest),
        };
        let name = name.trim();
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(bad());
        }
        let limit = number.trim().parse::<u64>().map_err(|_| bad())?;
        Ok(PauseWhen {
            name: name.to_string(),
            or_equal,
            limit,
        })
    }

    /// Whether the source is too busy, its variable being `value`.
    pub fn holds(&self, value: u64) -> bool {
        if self.or_equal {
            value >= self.limit
        } else {
            value > self.limit
        }
    }

    fn describe(&self) -> String {
        format!(
            "{}{}{}",
            self.name,
            if self.or_equal { ">=" } else { ">" },
            self.limit
        )
    }
}

/// The gate every job passes before its next chunk.
pub(super) struct PauseGate {
    when: PauseWhen,
    state: Mutex<Watch>,
}

struct Watch {
    spec: ConnSpec,
    conn: Conn,
    gate: Gate,
}

impl PauseGate {
    /// Connects to the source and reads the variable once: a name the
    /// source does not have, or whose value is no number, is refused before
    /// anything is exported.
    pub(super) fn connect(source: &ConnSpec, when: PauseWhen) -> Result<PauseGate> {
        let mut conn = source.connect("source")?;
        status_value(&mut conn, &when.name)?;
        Ok(PauseGate {
            when,
            state: Mutex::new(Watch {
                spec: source.clone(),
                conn,
                gate: Gate::default(),
            }),
        })
    }

    /// Returns once the condition does not hold (or the export is
    /// stopping). Jobs calling while one waits wait with it.
    pub(super) fn wait_while_busy(&self, abort: &AtomicBool) -> Result<()> {
        let mut watch = self
            .state
            .lock()
            .map_err(|_| anyhow::anyhow!("a reader thread panicked"))?;
        let Watch { spec, conn, gate } = &mut *watch;
        let when = &self.when;
        let busy = || {
            let value = value(spec, conn, &when.name)?;
            Ok(when
                .holds(value)
                .then(|| format!("{} is {value}", when.name)))
        };
        let say = Wording {
            pausing: |why: &str| {
                format!(
                    "myspool export: pausing: {why} (--pause-when '{}')",
                    when.describe()
                )
            },
            resuming: |seconds: f64| {
                format!(
                    "myspool export: resuming after {seconds:.0} s: --pause-when '{}' no longer holds",
                    when.describe()
                )
            },
        };
        gate.wait(abort, busy, say)
    }

    pub(super) fn pauses(&self) -> Pauses {
        self.state
            .lock()
            .map(|w| w.gate.pauses())
            .unwrap_or_default()
    }
}

/// The variable's value; a lost connection is made again once.
fn value(spec: &ConnSpec, conn: &mut Conn, name: &str) -> Result<u64> {
    match status_value(conn, name) {
        Ok(v) => Ok(v),
        Err(_) => {
            *conn = spec
                .connect("source")
                .context("connecting again to the source for --pause-when")?;
            status_value(conn, name)
        }
    }
}

fn status_value(conn: &mut Conn, name: &str) -> Result<u64> {
    let row: Option<(String, String)> = conn
        .exec_first("SHOW GLOBAL STATUS WHERE Variable_name = ?", (name,))
        .with_context(|| format!("SHOW GLOBAL STATUS for --pause-when {name}"))?;
    let Some((_, value)) = row else {
        bail!("--pause-when: the source has no global status variable {name} (see SHOW GLOBAL STATUS)");
    };
    value.trim().parse::<u64>().map_err(|_| {
        anyhow::anyhow!("--pause-when: {name} is {value:?} on the source, not a whole number")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greater_and_greater_or_equal_on_any_variable() {
        let w = PauseWhen::parse("Threads_running>40").unwrap();
        assert_eq!(
            w,
            PauseWhen {
                name: "Threads_running".into(),
                or_equal: false,
                limit: 40
            }
        );
        assert!(!w.holds(40));
        assert!(w.holds(41));
        let w = PauseWhen::parse(" Innodb_row_lock_current_waits >= 3 ").unwrap();
        assert_eq!(w.name, "Innodb_row_lock_current_waits");
        assert!(w.holds(3));
        assert!(!w.holds(2));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "Threads_running",
            "Threads_running<4",
            ">4",
            "Threads_running>",
            "Threads_running>-1",
            "Threads_running>4.5",
            "Threads running>4",
            "1abc>4",
            "Threads_running=>4",
        ] {
            assert!(PauseWhen::parse(bad).is_err(), "{bad}");
        }
    }
}
