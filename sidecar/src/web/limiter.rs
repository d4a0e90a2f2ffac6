//! Rate limit of failed sign-ins, per client address and per role name: after
//! [`MAX_FAILURES`] wrong passwords within [`WINDOW`], further attempts are refused without
//! asking the database until the oldest failure is older than the window. Counting per role
//! slows guessing one role's password from many addresses; per address, guessing many roles
//! from one.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const MAX_FAILURES: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Keys remembered at most (old entries are dropped first), so a flood of made-up role
/// names cannot grow memory without bound.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    Role(String),
}

#[derive(Clone, Default)]
pub struct SignInLimiter {
    failures: Arc<Mutex<HashMap<Key, VecDeque<Instant>>>>,
    /// Serialises begin()'s check-then-count.
    attempts: Arc<Mutex<()>>,
}

impl SignInLimiter {
    fn keys(address: Option<IpAddr>, role: &str) -> Vec<Key> {
        let mut keys = vec![Key::Role(role.to_lowercase())];
        keys.extend(address.map(Key::Address));
        keys
    }

    fn wait_needed_at(
        &self,
        address: Option<IpAddr>,
        role: &str,
        now: Instant,
    ) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        Self::keys(address, role)
            .iter()
            .filter_map(|k| map.get(k))
            .filter_map(|times| {
                let recent: Vec<&Instant> = times
                    .iter()
                    .filter(|t| now.duration_since(**t) < WINDOW)
                    .collect();
                (recent.len() >= MAX_FAILURES).then(|| {
                    let oldest = recent[recent.len() - MAX_FAILURES];
                    WINDOW.saturating_sub(now.duration_since(*oldest))
                })
            })
            .max()
    }

    /// Starts an attempt: refused (with the wait) if the limit is reached, else counted as a
    /// failure straight away, under the same lock, so parallel attempts cannot all slip in
    /// before the first one fails. A successful attempt is given back with [`Self::refund`].
    pub fn begin(&self, address: Option<IpAddr>, role: &str) -> Result<Instant, Duration> {
        let now = Instant::now();
        let _guard = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(wait) = self.wait_needed_at(address, role, now) {
            return Err(wait);
        }
        self.record_failure_at(address, role, now);
        Ok(now)
    }

    /// Takes back the failure [`Self::begin`] counted, for an attempt that did not fail.
    pub fn refund(&self, address: Option<IpAddr>, role: &str, started: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for key in Self::keys(address, role) {
            if let Some(times) = map.get_mut(&key) {
                if let Some(i) = times.iter().rposition(|t| *t == started) {
                    times.remove(i);
                }
            }
        }
    }

    fn record_failure_at(&self, address: Option<IpAddr>, role: &str, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_KEYS {
            map.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
            });
            // Still full of live entries: drop the least recently failed ones, so a flood of
            // made-up names or addresses cannot wipe the count of a role under attack.
            if map.len() >= MAX_KEYS {
                let mut latest: Vec<(Key, Instant)> = map
                    .iter()
                    .filter_map(|(k, t)| t.back().map(|last| (k.clone(), *last)))
                    .collect();
                latest.sort_by_key(|(_, last)| *last);
                for (key, _) in latest.into_iter().take(MAX_KEYS / 10) {
                    map.remove(&key);
                }
            }
        }
        for key in Self::keys(address, role) {
            let times = map.entry(key).or_default();
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= WINDOW)
            {
                times.pop_front();
            }
            times.push_back(now);
            while times.len() > MAX_FAILURES {
                times.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_five_failures_and_unlocks_after_the_window() {
        let limiter = SignInLimiter::default();
        let ip: Option<IpAddr> = "127.0.0.1".parse().ok();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert_eq!(limiter.wait_needed_at(ip, "alice", t0), None, "attempt {i}");
            limiter.record_failure_at(ip, "alice", t0);
        }
        assert!(limiter.wait_needed_at(ip, "alice", t0).is_some());
        // the same role from elsewhere, and another role from here, are locked too
        assert!(limiter
            .wait_needed_at("10.0.0.1".parse().ok(), "Alice", t0)
            .is_some());
        assert!(limiter.wait_needed_at(ip, "bob", t0).is_some());
        assert_eq!(
            limiter.wait_needed_at("10.0.0.1".parse().ok(), "bob", t0),
            None
        );
        let later = t0 + WINDOW + Duration::from_secs(1);
        assert_eq!(limiter.wait_needed_at(ip, "alice", later), None);
    }

    #[test]
    fn attempts_in_flight_count_until_they_succeed() {
        let limiter = SignInLimiter::default();
        let ip: Option<IpAddr> = "127.0.0.1".parse().ok();
        let started: Vec<Instant> = (0..MAX_FAILURES)
            .map(|_| limiter.begin(ip, "carol").expect("within the limit"))
            .collect();
        // five in flight at once: a sixth waits, even before any of them has failed
        assert!(limiter.begin(ip, "carol").is_err());
        for t in started {
            limiter.refund(ip, "carol", t);
        }
        assert!(limiter.begin(ip, "carol").is_ok());
    }
}
