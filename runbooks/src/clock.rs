//! Time for on-call delivery: every decision that depends on "now" (retry backoff, quiet hours,
//! rate limits, escalation deadlines, link expiry) asks a [`Clock`], so tests drive time with a
//! [`ManualClock`] instead of sleeping.
//!
//! Times are microseconds since the Unix epoch (UTC), like the alert tables.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A source of the current time.
///
/// # Example
/// ```
/// use ztlake_runbooks::{Clock, ManualClock};
/// let clock = ManualClock::new(1_700_000_000_000_000);
/// clock.advance(std::time::Duration::from_secs(60));
/// assert_eq!(clock.now(), 1_700_000_060_000_000);
/// ```
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in µs since the epoch.
    fn now(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        chrono::Utc::now().timestamp_micros()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// A clock showing `now` (µs since the epoch).
    pub fn new(now: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock { now: AtomicI64::new(now) })
    }

    /// Set the time.
    pub fn set(&self, now: i64) {
        self.now.store(now, Ordering::SeqCst);
    }

    /// Move the time forward.
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(micros(by), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// A duration in µs, saturating.
pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// RFC 3339 text of a µs time.
pub(crate) fn rfc3339(t: i64) -> String {
    ztlake_detections::alert::rfc3339(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_time_moves_only_when_told() {
        let c = ManualClock::new(10);
        assert_eq!(c.now(), 10);
        c.advance(Duration::from_millis(2));
        assert_eq!(c.now(), 2_010);
        c.set(5);
        assert_eq!(c.now(), 5);
        assert!(SystemClock.now() > 1_600_000_000_000_000);
        assert_eq!(micros(Duration::MAX), i64::MAX);
    }
}
