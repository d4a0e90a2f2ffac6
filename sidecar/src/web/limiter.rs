//! Throttle of failed sign-ins, counted twice: per (role, client address) and per client
//! address across all role names. A few failures are free (typos), then each further one
//! makes the next attempt wait, [`FIRST_DELAY`] doubling up to [`MAX_DELAY`]. A success, or
//! [`FORGET_AFTER`] without failures, starts a count over.
//!
//! Why not a lockout per role or per address: anyone can type wrong passwords, so a lock
//! keyed on the role alone lets a stranger keep an admin out, and one keyed on the address
//! alone locks out everyone behind the same proxy. Here an attacker slows down only guesses
//! from their own address: at one role after [`FREE_FAILURES`], at any role names (password
//! spraying) after [`FREE_ADDRESS_FAILURES`]. Someone else behind the same address waits at
//! most [`MAX_DELAY`]; the same person signing in from elsewhere does not wait at all. What
//! this does not slow is guessing from many addresses at once; `pg_hba.conf` and
//! PostgreSQL's `auth_delay` bound that at the database, which checks every password anyway.
//!
//! An IPv6 client is counted by its /64 network, which one host typically holds whole.
//!
//! Memory is bounded ([`MAX_KEYS`] per table). When a table is full, what is forgotten first
//! is what matters least for throttling: idle entries, then entries not making anyone wait,
//! fewest failures first. An entry that is making someone wait is never forgotten, so made-up
//! role names (which the address's own count slows down anyway) cannot erase a count of
//! guesses at a real one.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::clock::Clock;

/// Failures in a row at one role from one address that cost nothing.
pub const FREE_FAILURES: u32 = 3;
/// Failures in a row from one address, at any roles, that cost nothing: enough for a
/// few colleagues behind one proxy to mistype.
pub const FREE_ADDRESS_FAILURES: u32 = 20;
/// The wait after the first failure beyond the free ones; it doubles with each next one.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A key without failures for this long is forgotten.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Keys remembered at most in each table, so a flood of made-up role names or addresses
/// cannot grow memory without bound.
const MAX_KEYS: usize = 10_000;

/// The part of a client address that identifies one client: an IPv4 address, or an IPv6
/// address's /64 network (an IPv4 address mapped into IPv6 is the IPv4 address).
fn client_of(address: Option<IpAddr>) -> Option<IpAddr> {
    match address? {
        IpAddr::V4(v4) => Some(IpAddr::V4(v4)),
        IpAddr::V6(v6) => Some(match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        }),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RoleKey {
    role: String,
    address: Option<IpAddr>,
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

impl Entry {
    fn live(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last) < FORGET_AFTER
    }
}

/// The wait imposed after `failures` failures in a row of which `free` cost nothing.
fn delay_after(failures: u32, free: u32) -> Duration {
    match failures.checked_sub(free) {
        None | Some(0) => Duration::ZERO,
        Some(n) => {
            let doublings = (n - 1).min(16);
            FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
        }
    }
}

/// One table of counts: by (role, address) or by address.
struct Counts<K> {
    entries: HashMap<K, Entry>,
    free: u32,
}

impl<K: Clone + Eq + Hash> Counts<K> {
    fn new(free: u32) -> Counts<K> {
        Counts {
            entries: HashMap::new(),
            free,
        }
    }

    /// The wait left before `key` may try again, if any.
    fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        self.entries
            .get(key)
            .filter(|e| e.live(now) && now < e.next_allowed)
            .map(|e| e.next_allowed - now)
    }

    /// Counts an attempt as a failure (until it is settled).
    fn count(&mut self, key: &K, now: Instant) {
        let live = self.entries.get(key).copied().filter(|e| e.live(now));
        if live.is_none() && self.entries.len() >= MAX_KEYS && !self.make_room(now) {
            // Everything remembered is making someone wait: this key goes uncounted here
            // (the other table still counts it) rather than freeing a blocked guesser.
            return;
        }
        let failures = live.map_or(0, |e| e.failures).saturating_add(1);
        self.entries.insert(
            key.clone(),
            Entry {
                failures,
                last: now,
                next_allowed: now + delay_after(failures, self.free),
            },
        );
    }

    /// The attempt proved nothing, or was no failure: it is not counted.
    fn uncount(&mut self, key: &K, started: Instant) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.failures = entry.failures.saturating_sub(1);
            entry.next_allowed = entry.next_allowed.min(started);
        }
    }

    fn forget(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Forgets idle entries, then up to a tenth of those not making anyone wait, fewest
    /// failures and oldest first. False when nothing could be forgotten.
    fn make_room(&mut self, now: Instant) -> bool {
        self.entries.retain(|_, e| e.live(now));
        if self.entries.len() < MAX_KEYS {
            return true;
        }
        let mut idle: Vec<(K, u32, Instant)> = self
            .entries
            .iter()
            .filter(|(_, e)| now >= e.next_allowed)
            .map(|(k, e)| (k.clone(), e.failures, e.last))
            .collect();
        idle.sort_by_key(|(_, failures, last)| (*failures, *last));
        for (key, _, _) in idle.into_iter().take(MAX_KEYS / 10) {
            self.entries.remove(&key);
        }
        self.entries.len() < MAX_KEYS
    }
}

struct Tables {
    by_role: Counts<RoleKey>,
    by_address: Counts<Option<IpAddr>>,
}

/// An attempt let through by [`SignInLimiter::begin`]: counted as a failure until it is
/// settled by [`SignInLimiter::succeeded`] or [`SignInLimiter::refund`].
#[derive(Debug)]
pub struct Attempt {
    key: RoleKey,
    started: Instant,
}

#[derive(Clone)]
pub struct SignInLimiter {
    tables: Arc<Mutex<Tables>>,
    clock: Clock,
}

impl Default for SignInLimiter {
    fn default() -> SignInLimiter {
        SignInLimiter::new(Clock::System)
    }
}

impl SignInLimiter {
    /// A limiter whose waits run on `clock`.
    pub fn new(clock: Clock) -> SignInLimiter {
        SignInLimiter {
            tables: Arc::new(Mutex::new(Tables {
                by_role: Counts::new(FREE_FAILURES),
                by_address: Counts::new(FREE_ADDRESS_FAILURES),
            })),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts an attempt: refused with the time left to wait, or let through and counted as
    /// a failure straight away (under one lock), so parallel guesses cannot all slip in
    /// before the first one fails.
    pub fn begin(&self, address: Option<IpAddr>, role: &str) -> Result<Attempt, Duration> {
        self.begin_at(address, role, self.clock.now())
    }

    fn begin_at(
        &self,
        address: Option<IpAddr>,
        role: &str,
        now: Instant,
    ) -> Result<Attempt, Duration> {
        let address = client_of(address);
        let key = RoleKey {
            // A login name is not folded (`Auditor` and `auditor` are two roles), but
            // guesses at either count for both: changing the case must not buy an attacker
            // a fresh budget of guesses.
            role: role.to_lowercase(),
            address,
        };
        let mut tables = self.lock();
        let wait = [
            tables.by_role.wait(&key, now),
            tables.by_address.wait(&address, now),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        tables.by_role.count(&key, now);
        tables.by_address.count(&address, now);
        Ok(Attempt { key, started: now })
    }

    /// The password was right and the role may sign in: this role from this address starts
    /// over, and the attempt does not count against the address.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut tables = self.lock();
        tables.by_role.forget(&attempt.key);
        tables
            .by_address
            .uncount(&attempt.key.address, attempt.started);
    }

    /// The attempt proved nothing either way (the database was unreachable): it is not
    /// counted, and the next one may follow at once.
    pub fn refund(&self, attempt: Attempt) {
        let mut tables = self.lock();
        tables.by_role.uncount(&attempt.key, attempt.started);
        tables
            .by_address
            .uncount(&attempt.key.address, attempt.started);
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
        let delays: Vec<u64> = (0..12)
            .map(|n| delay_after(n, FREE_FAILURES).as_secs())
            .collect();
        assert_eq!(delays, [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(delay_after(u32::MAX, FREE_FAILURES), MAX_DELAY);
        assert_eq!(
            delay_after(FREE_ADDRESS_FAILURES, FREE_ADDRESS_FAILURES),
            Duration::ZERO
        );
        assert_eq!(
            delay_after(FREE_ADDRESS_FAILURES + 1, FREE_ADDRESS_FAILURES),
            FIRST_DELAY
        );
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
    fn spraying_many_role_names_from_one_address_is_slowed_too() {
        let limiter = SignInLimiter::default();
        let t0 = Instant::now();
        for n in 0..FREE_ADDRESS_FAILURES {
            fail(&limiter, ip("10.0.0.1"), &format!("role{n}"), 1, t0);
        }
        assert_eq!(
            limiter.begin_at(ip("10.0.0.1"), "another", t0).err(),
            None,
            "the first failure beyond the free ones is let through"
        );
        assert_eq!(
            limiter.begin_at(ip("10.0.0.1"), "yet-another", t0).err(),
            Some(FIRST_DELAY)
        );
        // Elsewhere, nobody waits.
        assert!(limiter.begin_at(ip("10.0.0.2"), "auditor", t0).is_ok());
        // Admins who sign in successfully from the address give back their attempt.
        let t1 = t0 + FIRST_DELAY;
        let attempt = limiter
            .begin_at(ip("10.0.0.1"), "auditor", t1)
            .expect("after the wait");
        limiter.succeeded(attempt);
        assert!(limiter.begin_at(ip("10.0.0.1"), "auditor", t1).is_ok());
    }

    #[test]
    fn an_ipv6_host_is_one_client_across_its_network() {
        let limiter = SignInLimiter::default();
        let t0 = Instant::now();
        for n in 0..=FREE_FAILURES {
            fail(
                &limiter,
                ip(&format!("2001:db8:1:2::{n:x}")),
                "auditor",
                1,
                t0,
            );
        }
        assert!(limiter
            .begin_at(ip("2001:db8:1:2:ffff::1"), "auditor", t0)
            .is_err());
        assert!(limiter
            .begin_at(ip("2001:db8:1:3::1"), "auditor", t0)
            .is_ok());
        assert_eq!(client_of(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
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

    #[test]
    fn a_full_table_never_forgets_a_count_that_makes_someone_wait() {
        let limiter = SignInLimiter::default();
        let t0 = Instant::now();
        fail(&limiter, ip("10.0.0.1"), "auditor", FREE_FAILURES + 1, t0);
        // Made-up names from many addresses (one each, so no address is slowed) fill the
        // table of roles several times over.
        for n in 0..(MAX_KEYS as u32 * 3) {
            let address = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + n));
            limiter
                .begin_at(Some(address), &format!("junk{n}"), t0)
                .expect("a first guess is free");
        }
        assert!(limiter.lock().by_role.entries.len() <= MAX_KEYS);
        assert_eq!(
            limiter.begin_at(ip("10.0.0.1"), "auditor", t0).err(),
            Some(FIRST_DELAY),
            "the guesses at auditor are still counted"
        );
        // Once its wait has passed it may be forgotten under pressure, but not before.
        let t1 = t0 + FIRST_DELAY;
        assert!(limiter.begin_at(ip("10.0.0.1"), "auditor", t1).is_ok());
        assert_eq!(
            limiter.begin_at(ip("10.0.0.1"), "auditor", t1).err(),
            Some(FIRST_DELAY * 2)
        );
    }

    #[test]
    fn a_wait_read_from_the_clock_ends_exactly_when_it_says() {
        let clock = Clock::manual();
        let limiter = SignInLimiter::new(clock.clone());
        for _ in 0..=FREE_FAILURES {
            limiter
                .begin(ip("10.0.0.1"), "auditor")
                .expect("within the free attempts");
        }
        let wait = limiter
            .begin(ip("10.0.0.1"), "auditor")
            .expect_err("one failure beyond the free ones");
        assert_eq!(wait, FIRST_DELAY);
        clock.advance(wait - Duration::from_nanos(1));
        assert!(limiter.begin(ip("10.0.0.1"), "auditor").is_err());
        clock.advance(Duration::from_nanos(1));
        // Once the wait has passed, the right password gets in, and the count starts over.
        let attempt = limiter
            .begin(ip("10.0.0.1"), "auditor")
            .expect("the wait is over");
        limiter.succeeded(attempt);
        for _ in 0..FREE_FAILURES {
            limiter
                .begin(ip("10.0.0.1"), "auditor")
                .expect("a fresh count");
        }
    }
}
