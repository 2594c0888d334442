//! A circuit breaker per route target: closed (traffic flows), open (the target is
//! skipped), half-open (one probe request decides). Opens on consecutive failures or on
//! the error rate over a sliding window; a long `Retry-After` rests a target the same way.

use crate::config::BreakerConfig;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Buckets the sliding window is cut into.
const BUCKETS: usize = 10;

/// The state as metrics and operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed = 0,
    HalfOpen = 1,
    Open = 2,
}

/// What an attempt on the target came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The target failed (unreachable, timed out, 5xx).
    Failure,
    /// Neither: the request was refused for its own sake (4xx), or rate limited.
    Neutral,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Which window slice this bucket counts (slice number since the breaker started).
    slice: u64,
    successes: u32,
    failures: u32,
}

#[derive(Debug)]
enum Mode {
    Closed,
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
struct Inner {
    mode: Mode,
    consecutive_failures: u32,
    buckets: [Bucket; BUCKETS],
}

/// One target's breaker; shared by every worker thread.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    started: Instant,
    slice: Duration,
    inner: Mutex<Inner>,
    /// Held open by an operator (the target drained) until closed again; applies even
    /// when the breaker itself is disabled.
    forced_open: AtomicBool,
}

/// A breaker as operators see it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BreakerSnapshot {
    pub state: &'static str,
    /// Held open by an operator.
    pub forced: bool,
    pub enabled: bool,
    pub consecutive_failures: u32,
    /// Attempts and failures in the sliding window.
    pub window_attempts: u64,
    pub window_failures: u64,
    /// How long it stays open before a probe, when open.
    pub open_for_ms: Option<u64>,
}

/// Leave to send one attempt; report how it went with [`Admission::settle`]. Dropped
/// unsettled (the client went away), a half-open probe frees its slot for the next one.
#[derive(Debug)]
pub struct Admission<'a> {
    breaker: &'a Breaker,
    probe: bool,
    settled: bool,
}

impl Breaker {
    pub fn new(config: &BreakerConfig) -> Self {
        let window = Duration::from_secs(config.window_secs.max(1));
        Self {
            config: config.clone(),
            started: Instant::now(),
            slice: window / BUCKETS as u32,
            inner: Mutex::new(Inner {
                mode: Mode::Closed,
                consecutive_failures: 0,
                buckets: [Bucket {
                    slice: u64::MAX,
                    successes: 0,
                    failures: 0,
                }; BUCKETS],
            }),
            forced_open: AtomicBool::new(false),
        }
    }

    /// Whether an attempt may go to this target now.
    pub fn admit(&self, now: Instant) -> Option<Admission<'_>> {
        if self.forced_open.load(Ordering::Relaxed) {
            return None;
        }
        if !self.config.enabled {
            return Some(self.admission(false));
        }
        let mut inner = self.inner.lock().ok()?;
        match inner.mode {
            Mode::Closed => Some(self.admission(false)),
            Mode::Open { until } if now < until => None,
            Mode::Open { .. } | Mode::HalfOpen { probing: false } => {
                inner.mode = Mode::HalfOpen { probing: true };
                Some(self.admission(true))
            }
            Mode::HalfOpen { probing: true } => None,
        }
    }

    fn admission(&self, probe: bool) -> Admission<'_> {
        Admission {
            breaker: self,
            probe,
            settled: false,
        }
    }

    /// Records the outcome of an attempt whose admission was deferred (see
    /// [`Admission::defer`]).
    pub fn settle_deferred(&self, probe: bool, outcome: Outcome) {
        if self.config.enabled {
            self.record(outcome, probe, Instant::now());
        }
    }

    /// Takes the target out of rotation until `until` (a long `Retry-After`).
    pub fn rest_until(&self, until: Instant) {
        if let Ok(mut inner) = self.inner.lock() {
            let later = match inner.mode {
                Mode::Open { until: current } => current.max(until),
                _ => until,
            };
            inner.mode = Mode::Open { until: later };
        }
    }

    /// Holds the breaker open (the target takes no traffic) until [`Breaker::close`].
    pub fn force_open(&self) {
        self.forced_open.store(true, Ordering::Relaxed);
    }

    /// Closes the breaker now, forgetting past failures (and any operator hold).
    pub fn close(&self) {
        self.forced_open.store(false, Ordering::Relaxed);
        if let Ok(mut inner) = self.inner.lock() {
            inner.mode = Mode::Closed;
            inner.consecutive_failures = 0;
            inner.buckets.iter_mut().for_each(|b| b.slice = u64::MAX);
        }
    }

    /// The breaker's state and counters.
    pub fn snapshot(&self, now: Instant) -> BreakerSnapshot {
        let forced = self.forced_open.load(Ordering::Relaxed);
        let state = self.state(now);
        let (consecutive_failures, window_attempts, window_failures, open_for_ms) = match self
            .inner
            .lock()
        {
            Ok(inner) => {
                let slice = self.slice_at(now);
                let (ok, failed) = Self::window(&inner, slice);
                let open_for = match inner.mode {
                    Mode::Open { until } if now < until => Some((until - now).as_millis() as u64),
                    _ => None,
                };
                (inner.consecutive_failures, ok + failed, failed, open_for)
            }
            Err(_) => (0, 0, 0, None),
        };
        BreakerSnapshot {
            state: match (forced, state) {
                (true, _) | (_, BreakerState::Open) => "open",
                (_, BreakerState::HalfOpen) => "half_open",
                (_, BreakerState::Closed) => "closed",
            },
            forced,
            enabled: self.config.enabled,
            consecutive_failures,
            window_attempts,
            window_failures,
            open_for_ms,
        }
    }

    fn slice_at(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.started).as_nanos() / self.slice.as_nanos().max(1))
            as u64
    }

    /// Successes and failures in the window ending at `slice`.
    fn window(inner: &Inner, slice: u64) -> (u64, u64) {
        inner
            .buckets
            .iter()
            .filter(|b| b.slice != u64::MAX && b.slice + BUCKETS as u64 > slice)
            .fold((0u64, 0u64), |(ok, failed), b| {
                (ok + u64::from(b.successes), failed + u64::from(b.failures))
            })
    }

    pub fn state(&self, now: Instant) -> BreakerState {
        if self.forced_open.load(Ordering::Relaxed) {
            return BreakerState::Open;
        }
        match self.inner.lock().map(|i| match i.mode {
            Mode::Closed => BreakerState::Closed,
            Mode::Open { until } if now < until => BreakerState::Open,
            Mode::Open { .. } | Mode::HalfOpen { .. } => BreakerState::HalfOpen,
        }) {
            Ok(state) => state,
            Err(_) => BreakerState::Open,
        }
    }

    fn record(&self, outcome: Outcome, probe: bool, now: Instant) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let slice = self.slice_at(now);
        let bucket = &mut inner.buckets[(slice % BUCKETS as u64) as usize];
        if bucket.slice != slice {
            *bucket = Bucket {
                slice,
                successes: 0,
                failures: 0,
            };
        }
        match outcome {
            Outcome::Success => bucket.successes += 1,
            Outcome::Failure => bucket.failures += 1,
            Outcome::Neutral => {}
        }
        match outcome {
            Outcome::Success => inner.consecutive_failures = 0,
            Outcome::Failure => inner.consecutive_failures += 1,
            Outcome::Neutral => {}
        }
        let open = Mode::Open {
            until: now + Duration::from_secs(self.config.open_secs),
        };
        inner.mode = match (&inner.mode, outcome) {
            (Mode::HalfOpen { .. }, Outcome::Success) if probe => {
                inner.consecutive_failures = 0;
                inner.buckets.iter_mut().for_each(|b| b.slice = u64::MAX);
                Mode::Closed
            }
            (Mode::HalfOpen { .. }, Outcome::Failure) if probe => open,
            (Mode::HalfOpen { .. }, Outcome::Neutral) if probe => Mode::HalfOpen { probing: false },
            (Mode::Closed, Outcome::Failure) if self.should_open(&inner, slice) => open,
            (Mode::Closed, _) => Mode::Closed,
            (Mode::Open { until }, _) => Mode::Open { until: *until },
            (Mode::HalfOpen { probing }, _) => Mode::HalfOpen { probing: *probing },
        };
    }

    fn should_open(&self, inner: &Inner, slice: u64) -> bool {
        if inner.consecutive_failures >= self.config.failure_threshold {
            return true;
        }
        let (ok, failed) = Self::window(inner, slice);
        let total = ok + failed;
        total >= u64::from(self.config.min_requests)
            && total > 0
            && failed as f64 / total as f64 >= self.config.error_rate
    }

    /// A deferred probe ended without an outcome: the next request may probe.
    pub fn release_probe(&self) {
        if let Ok(mut inner) = self.inner.lock()
            && matches!(inner.mode, Mode::HalfOpen { probing: true })
        {
            inner.mode = Mode::HalfOpen { probing: false };
        }
    }
}

impl Admission<'_> {
    /// Reports the attempt's outcome.
    pub fn settle(mut self, outcome: Outcome) {
        self.settled = true;
        if self.breaker.config.enabled {
            self.breaker.record(outcome, self.probe, Instant::now());
        }
    }
}

impl Admission<'_> {
    /// Hands the outcome over to whoever will know it (a stream, when it ends); returns
    /// whether this attempt is the half-open probe, for [`Breaker::settle_deferred`].
    pub fn defer(mut self) -> bool {
        self.settled = true;
        self.probe
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if !self.settled && self.probe {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            enabled: true,
            failure_threshold: 3,
            error_rate: 0.5,
            min_requests: 10,
            window_secs: 10,
            open_secs: 5,
        }
    }

    fn attempt(breaker: &Breaker, outcome: Outcome) {
        breaker
            .admit(Instant::now())
            .expect("admitted")
            .settle(outcome);
    }

    #[test]
    fn opens_after_consecutive_failures_and_recovers_through_one_probe() {
        let breaker = Breaker::new(&config());
        let now = Instant::now();
        attempt(&breaker, Outcome::Failure);
        attempt(&breaker, Outcome::Failure);
        attempt(&breaker, Outcome::Success);
        attempt(&breaker, Outcome::Failure);
        attempt(&breaker, Outcome::Failure);
        assert_eq!(
            breaker.state(now),
            BreakerState::Closed,
            "a success resets the run"
        );
        attempt(&breaker, Outcome::Failure);
        assert_eq!(breaker.state(Instant::now()), BreakerState::Open);
        assert!(breaker.admit(Instant::now()).is_none());

        let later = Instant::now() + Duration::from_secs(6);
        assert_eq!(breaker.state(later), BreakerState::HalfOpen);
        let probe = breaker.admit(later).expect("one probe");
        assert!(breaker.admit(later).is_none(), "only one probe at a time");
        probe.settle(Outcome::Failure); // reopens for open_secs from now
        let reopened = Instant::now() + Duration::from_secs(4);
        assert!(breaker.admit(reopened).is_none(), "a failed probe reopens");

        let much_later = Instant::now() + Duration::from_secs(6);
        let probe = breaker.admit(much_later).expect("probe after reopening");
        drop(probe); // the client went away: the next request probes instead
        breaker
            .admit(much_later)
            .expect("probe slot freed")
            .settle(Outcome::Success);
        assert_eq!(breaker.state(much_later), BreakerState::Closed);
        assert!(breaker.admit(much_later).is_some());
    }

    #[test]
    fn opens_on_the_error_rate_over_the_window() {
        let breaker = Breaker::new(&config());
        // Alternating: never three failures in a row, but half of ten fail.
        for i in 0..9 {
            attempt(
                &breaker,
                if i % 2 == 0 {
                    Outcome::Success
                } else {
                    Outcome::Failure
                },
            );
        }
        assert_eq!(breaker.state(Instant::now()), BreakerState::Closed);
        attempt(&breaker, Outcome::Failure);
        assert_eq!(breaker.state(Instant::now()), BreakerState::Open);
    }

    #[test]
    fn neutral_outcomes_and_disabled_breakers_never_open() {
        let breaker = Breaker::new(&config());
        for _ in 0..20 {
            attempt(&breaker, Outcome::Neutral);
        }
        assert_eq!(breaker.state(Instant::now()), BreakerState::Closed);
        let disabled = Breaker::new(&BreakerConfig {
            enabled: false,
            ..config()
        });
        for _ in 0..20 {
            attempt(&disabled, Outcome::Failure);
        }
        assert!(disabled.admit(Instant::now()).is_some());
    }

    #[test]
    fn resting_skips_the_target_until_the_time_passes() {
        let breaker = Breaker::new(&config());
        let now = Instant::now();
        breaker.rest_until(now + Duration::from_secs(2));
        assert!(breaker.admit(now).is_none());
        assert!(breaker.admit(now + Duration::from_secs(3)).is_some());
    }

    #[test]
    fn operators_hold_a_breaker_open_and_close_it() {
        let disabled = Breaker::new(&BreakerConfig {
            enabled: false,
            ..config()
        });
        let now = Instant::now();
        disabled.force_open();
        assert!(
            disabled.admit(now).is_none(),
            "held open even when disabled"
        );
        let snapshot = disabled.snapshot(now);
        assert_eq!((snapshot.state, snapshot.forced), ("open", true));
        disabled.close();
        assert!(disabled.admit(now).is_some());

        let breaker = Breaker::new(&config());
        for _ in 0..3 {
            attempt(&breaker, Outcome::Failure);
        }
        let snapshot = breaker.snapshot(Instant::now());
        assert_eq!(snapshot.state, "open");
        assert_eq!((snapshot.window_attempts, snapshot.window_failures), (3, 3));
        assert!(snapshot.open_for_ms.is_some_and(|ms| ms <= 5_000));
        breaker.close();
        let snapshot = breaker.snapshot(Instant::now());
        assert_eq!(
            (
                snapshot.state,
                snapshot.consecutive_failures,
                snapshot.window_attempts
            ),
            ("closed", 0, 0)
        );
        assert!(breaker.admit(Instant::now()).is_some());
    }
}
