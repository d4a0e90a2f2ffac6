//! Throttle of failed sign-ins, per (role, client address): a few wrong passwords are free
//! (typos), then each further one makes that role wait before its next attempt from that
//! address, [`FIRST_DELAY`] doubling up to [`MAX_DELAY`]. A success, or
//! [`FORGET_AFTER`] without failures, starts the count over.
//!
//! Why not a lockout per role or per address: anyone can type wrong passwords, so a lock
//! keyed on the role alone lets a stranger keep an admin out, and one keyed on the address
//! alone locks out everyone behind the same proxy. Keyed on both, an attacker only slows
//! down their own guesses at one role: the same person signing in from elsewhere is not
//! affected, and from the same address waits at most [`MAX_DELAY`]. What this does not
//! slow is guessing from many addresses at once; `pg_hba.conf` and PostgreSQL's
//! `auth_delay` bound that at the database, which checks every password anyway.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failures in a row that cost nothing.
pub const FREE_FAILURES: u32 = 3;
/// The wait after the first failure beyond the free ones; it doubles with each next one.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A key without failures for this long is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Keys remembered at most (the longest idle are dropped first), so a flood of made-up role
/// names cannot grow memory without bound.
const MAX_KEYS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    role: String,
    address: Option<IpAddr>,
}

impl Key {
    fn new(address: Option<IpAddr>, role: &str) -> Key {
        Key {
            // PostgreSQL folds unquoted role names; guesses at `Auditor` count for `auditor`.
            role: role.to_lowercase(),
            address,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Failures in a row, including attempts still in flight.
    failures: u32,
    /// The latest failure (or attempt begun).
    last: Instant,
    /// No attempt before this.
    next_allowed: Instant,
}

/// The wait imposed after `failures` failures in a row.
pub fn delay_after(failures: u32) -> Duration {
    match failures.checked_sub(FREE_FAILURES) {
        None | Some(0) => Duration::ZERO,
        Some(n) => {
            let doublings = (n - 1).min(16);
            FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
        }
    }
}

/// An attempt let through by [`SignInLimiter::begin`]: counted as a failure until it is
/// settled by [`SignInLimiter::succeeded`] or [`SignInLimiter::refund`].
#[derive(Debug)]
pub struct Attempt {
    key: Key,
    started: Instant,
}

#[derive(Clone, Default)]
pub struct SignInLimiter {
    entries: Arc<Mutex<HashMap<Key, Entry>>>,
}

impl SignInLimiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts an attempt: refused with the time left to wait, or let through and counted as
    /// a failure straight away (under one lock), so parallel guesses cannot all slip in
    /// before the first one fails.
    pub fn begin(&self, address: Option<IpAddr>, role: &str) -> Result<Attempt, Duration> {
        self.begin_at(address, role, Instant::now())
    }

    fn begin_at(
        &self,
        address: Option<IpAddr>,
        role: &str,
        now: Instant,
    ) -> Result<Attempt, Duration> {
        let key = Key::new(address, role);
        let mut map = self.lock();
        let live = map
            .get(&key)
            .copied()
            .filter(|e| now.saturating_duration_since(e.last) < FORGET_AFTER);
        if let Some(entry) = live {
            if now < entry.next_allowed {
                return Err(entry.next_allowed - now);
            }
        }
        if live.is_none() && map.len() >= MAX_KEYS {
            Self::evict(&mut map, now);
        }
        let failures = live.map_or(0, |e| e.failures).saturating_add(1);
        map.insert(
            key.clone(),
            Entry {
                failures,
                last: now,
                next_allowed: now + delay_after(failures),
            },
        );
        Ok(Attempt { key, started: now })
    }

    /// The password was right: this role from this address starts over.
    pub fn succeeded(&self, attempt: Attempt) {
        self.lock().remove(&attempt.key);
    }

    /// The attempt proved nothing either way (the database was unreachable): it is not
    /// counted, and the next one may follow at once.
    pub fn refund(&self, attempt: Attempt) {
        let mut map = self.lock();
        if let Some(entry) = map.get_mut(&attempt.key) {
            entry.failures = entry.failures.saturating_sub(1);
            entry.next_allowed = entry.next_allowed.min(attempt.started);
        }
    }

    /// Makes room: forgets idle keys, then, if still full, the tenth that failed longest ago.
    fn evict(map: &mut HashMap<Key, Entry>, now: Instant) {
        map.retain(|_, e| now.saturating_duration_since(e.last) < FORGET_AFTER);
        if map.len() >= MAX_KEYS {
            let mut by_age: Vec<(Key, Instant)> =
                map.iter().map(|(k, e)| (k.clone(), e.last)).collect();
            by_age.sort_by_key(|(_, last)| *last);
            for (key, _) in by_age.into_iter().take(MAX_KEYS / 10) {
                map.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    /// Fails `n` attempts at `t`, each allowed.
    fn fail(limiter: &SignInLimiter, address: Option<IpAddr>, role: &str, n: u32, t: Instant) {
        for i in 0..n {
            limiter
                .begin_at(address, role, t)
                .unwrap_or_else(|wait| panic!("attempt {i} refused, wait {wait:?}"));
        }
    }

    #[test]
    fn delays_grow_exponentially_to_a_small_cap() {
        let delays: Vec<u64> = (0..12).map(|n| delay_after(n).as_secs()).collect();
        assert_eq!(delays, [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(delay_after(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn failures_slow_down_one_role_from_one_address_only() {
        let limiter = SignInLimiter::default();
        let t0 = Instant::now();
        fail(&limiter, ip("10.0.0.1"), "auditor", FREE_FAILURES + 1, t0);
        assert_eq!(
            limiter.begin_at(ip("10.0.0.1"), "Auditor", t0).err(),
            Some(FIRST_DELAY)
        );
        // The same role from elsewhere, and another role from here: no wait.
        assert!(limiter.begin_at(ip("10.0.0.2"), "auditor", t0).is_ok());
        assert!(limiter.begin_at(ip("10.0.0.1"), "bob", t0).is_ok());
        // After the delay, another attempt; the next delay is twice as long.
        assert!(limiter
            .begin_at(ip("10.0.0.1"), "auditor", t0 + FIRST_DELAY)
            .is_ok());
        assert_eq!(
            limiter
                .begin_at(ip("10.0.0.1"), "auditor", t0 + FIRST_DELAY)
                .err(),
            Some(FIRST_DELAY * 2)
        );
    }

    #[test]
    fn even_endless_failures_never_wait_longer_than_the_cap() {
        let limiter = SignInLimiter::default();
        let mut t = Instant::now();
        for _ in 0..100 {
            match limiter.begin_at(ip("10.0.0.1"), "auditor", t) {
                Ok(_) => {}
                Err(wait) => {
                    assert!(wait <= MAX_DELAY, "{wait:?}");
                    t += wait;
                }
            }
        }
        assert!(limiter
            .begin_at(ip("10.0.0.1"), "auditor", t + MAX_DELAY)
            .is_ok());
    }

    #[test]
    fn success_and_time_start_over() {
        let limiter = SignInLimiter::default();
        let t0 = Instant::now();
        fail(&limiter, ip("10.0.0.1"), "auditor", FREE_FAILURES, t0);
        let attempt = limiter
            .begin_at(ip("10.0.0.1"), "auditor", t0)
            .expect("allowed");
        limiter.succeeded(attempt);
        fail(&limiter, ip("10.0.0.1"), "auditor", FREE_FAILURES, t0);

        fail(&limiter, ip("10.0.0.9"), "carol", FREE_FAILURES + 1, t0);
        assert!(limiter.begin_at(ip("10.0.0.9"), "carol", t0).is_err());
        fail(
            &limiter,
            ip("10.0.0.9"),
            "carol",
            FREE_FAILURES,
            t0 + FORGET_AFTER,
        );
    }

    #[test]
    fn attempts_in_flight_count_until_settled() {
        let limiter = SignInLimiter::default();
        let t0 = Instant::now();
        let started: Vec<Attempt> = (0..=FREE_FAILURES)
            .map(|_| {
                limiter
                    .begin_at(ip("10.0.0.1"), "carol", t0)
                    .expect("within the free attempts")
            })
            .collect();
        // All in flight at once: the next waits, even before any of them has failed.
        assert!(limiter.begin_at(ip("10.0.0.1"), "carol", t0).is_err());
        for attempt in started {
            limiter.refund(attempt);
        }
        assert!(limiter.begin_at(ip("10.0.0.1"), "carol", t0).is_ok());
    }
}
