//! Counting for `rate_limit` rules: a sliding window per rule and key, user or tenant,
//! in memory (the count restarts with the process).

use super::compile::RateLimit;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Counters kept before stale ones are swept.
const SWEEP_ABOVE: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    /// Start of the current window, ms.
    start_ms: i64,
    current: u32,
    previous: u32,
}

/// Every rate-limit counter.
#[derive(Default)]
pub struct RateLimiter {
    counters: Mutex<HashMap<(Arc<str>, String), Window>>,
}

impl RateLimiter {
    /// Counts one request for `rule` and `subject` at `now_ms`; refused with the seconds
    /// to wait when the limit is reached (a refused request is not counted).
    pub fn admit(
        &self,
        rule: &Arc<str>,
        subject: &str,
        limit: &RateLimit,
        now_ms: i64,
    ) -> Result<(), u64> {
        let Ok(mut counters) = self.counters.lock() else {
            // A poisoned lock only means another request panicked mid-count: let it pass.
            return Ok(());
        };
        let window = limit.window_ms.max(1) as i64;
        if counters.len() > SWEEP_ABOVE {
            counters.retain(|_, w| now_ms - w.start_ms < 2 * window);
        }
        let entry = counters
            .entry((rule.clone(), subject.to_string()))
            .or_insert(Window {
                start_ms: now_ms - now_ms.rem_euclid(window),
                current: 0,
                previous: 0,
            });
        let elapsed_windows = (now_ms - entry.start_ms).div_euclid(window);
        if elapsed_windows >= 1 {
            entry.previous = if elapsed_windows == 1 {
                entry.current
            } else {
                0
            };
            entry.current = 0;
            entry.start_ms += elapsed_windows * window;
        }
        let into = (now_ms - entry.start_ms) as f64 / window as f64;
        let estimate = f64::from(entry.previous) * (1.0 - into) + f64::from(entry.current);
        if estimate + 1.0 > f64::from(limit.requests) {
            let wait_ms = (entry.start_ms + window - now_ms).max(1) as u64;
            return Err(wait_ms.div_ceil(1000));
        }
        entry.current += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::source::RateLimitScope;

    #[test]
    fn limits_per_subject_and_slides() {
        let limiter = RateLimiter::default();
        let rule: Arc<str> = "r".into();
        let limit = RateLimit {
            requests: 3,
            window_ms: 60_000,
            by: RateLimitScope::User,
        };
        // A window boundary (a multiple of a minute).
        let t0 = 1_800_000_000_000;
        for _ in 0..3 {
            assert!(limiter.admit(&rule, "alice", &limit, t0).is_ok());
        }
        assert_eq!(limiter.admit(&rule, "alice", &limit, t0 + 1000), Err(59));
        assert!(limiter.admit(&rule, "bob", &limit, t0 + 1000).is_ok());
        // Half-way into the next window, half of the previous count still weighs.
        assert!(limiter.admit(&rule, "alice", &limit, t0 + 90_000).is_ok());
        assert!(limiter.admit(&rule, "alice", &limit, t0 + 90_000).is_err());
        // Two windows later, all is forgotten.
        for _ in 0..3 {
            assert!(limiter.admit(&rule, "alice", &limit, t0 + 180_000).is_ok());
        }
    }
}
