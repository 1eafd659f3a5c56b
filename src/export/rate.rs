//! `--max-rate`: the export's pace, shared by all its jobs. Every block of
//! CSV passes the one token bucket before it is written, so the CSV bytes
//! the export produces (what it reads from the source, about) average at
//! most the limit over the run.
//!
//! The bucket holds at most a tenth of a second of bytes, and starts
//! empty: a job waits as soon as it is ahead, and a pause (a slow query,
//! a chunk's start) earns no more than that tenth of a second of catch-up.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// A token bucket: `rate` bytes a second, up to `burst` saved.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    /// Negative: bytes passed ahead of the rate, to be waited off.
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    pub fn new(bytes_per_second: u64) -> TokenBucket {
        let rate = bytes_per_second.max(1) as f64;
        TokenBucket {
            rate,
            burst: rate / 10.0,
            tokens: 0.0,
            last: None,
        }
    }

    /// Takes `bytes` at `now`: how long to wait before passing them on.
    /// Bytes always pass (a block bigger than the bucket too); the wait is
    /// what puts the pass back on the rate.
    pub fn take(&mut self, now: Instant, bytes: u64) -> Duration {
        if let Some(last) = self.last {
            let earned = now.saturating_duration_since(last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + earned).min(self.burst);
        }
        self.last = Some(now);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// The bucket the writer threads of one export share.
#[derive(Debug)]
pub(super) struct RateLimit(Mutex<TokenBucket>);

impl RateLimit {
    pub(super) fn new(bytes_per_second: u64) -> RateLimit {
        RateLimit(Mutex::new(TokenBucket::new(bytes_per_second)))
    }

    /// Waits until `bytes` may pass. The lock is not held while waiting,
    /// so the jobs take turns rather than queue behind a sleeper.
    pub(super) fn pass(&self, bytes: usize) {
        let wait = match self.0.lock() {
            Ok(mut bucket) => bucket.take(Instant::now(), bytes as u64),
            Err(_) => return,
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

/// `10M`, `500K`, `1G`, `2000000`: bytes a second (K, M, G are 1024-fold,
/// as in the chunk sizes; a trailing `B` or `/s` may follow).
pub fn parse_rate(text: &str) -> Result<u64> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let t = t.strip_suffix(['B', 'b']).unwrap_or(t);
    let (number, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, ' '),
    };
    let factor: u64 = match unit {
        ' ' => 1,
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        _ => bail!("--max-rate {text:?}: the unit must be K, M or G (bytes a second, e.g. 10M)"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .ok()
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--max-rate {text:?} is not a rate: give bytes a second, e.g. 10M or 500K"
            )
        })?;
    let rate = value * factor as f64;
    if rate < 1.0 || rate > u64::MAX as f64 {
        bail!("--max-rate {text:?} is out of range");
    }
    Ok(rate as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_with_their_units() {
        assert_eq!(parse_rate("10M").unwrap(), 10 << 20);
        assert_eq!(parse_rate("500K").unwrap(), 500 << 10);
        assert_eq!(parse_rate("500k").unwrap(), 500 << 10);
        assert_eq!(parse_rate("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_rate("2MB/s").unwrap(), 2 << 20);
        assert_eq!(parse_rate("123456").unwrap(), 123_456);
        for bad in ["", "M", "10X", "-1M", "0", "fast"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    /// Blocks taken as fast as the bucket allows: the time they take is
    /// the bytes at the rate, whatever the block size.
    #[test]
    fn a_steady_stream_is_held_to_the_rate() {
        for block in [1_000u64, 64 << 10, 1 << 20] {
            let mut bucket = TokenBucket::new(1 << 20);
            let start = Instant::now();
            let mut now = start;
            let mut bytes = 0;
            while bytes < 10 << 20 {
                now += bucket.take(now, block);
                bytes += block;
            }
            let seconds = (now - start).as_secs_f64();
            let rate = bytes as f64 / seconds;
            let expected = bytes as f64 / (1 << 20) as f64;
            assert!((seconds - expected).abs() < 1e-6, "{block}: {seconds}");
            assert!(rate <= (1 << 20) as f64 * 1.1, "{block}: {rate}");
        }
    }

    #[test]
    fn an_idle_moment_earns_at_most_a_tenth_of_a_second() {
        let mut bucket = TokenBucket::new(1000);
        let start = Instant::now();
        assert_eq!(bucket.take(start, 0), Duration::ZERO);
        let later = start + Duration::from_secs(60);
        // 100 bytes saved, not 60 000.
        assert_eq!(bucket.take(later, 100), Duration::ZERO);
        assert_eq!(bucket.take(later, 100), Duration::from_millis(100));
    }

    #[test]
    fn the_first_bytes_wait_too() {
        let mut bucket = TokenBucket::new(1000);
        assert_eq!(bucket.take(Instant::now(), 500), Duration::from_millis(500));
    }
}
