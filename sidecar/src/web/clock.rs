//! The time the dashboard's sessions (idle expiry) and sign-in throttle (waits) go by, read
//! through [`Clock`] so that their unit tests can move time on instead of sleeping. The server
//! only ever runs on the system clock: the manual one exists in test builds alone, so nothing
//! a client sends can move the server's time.

#[cfg(test)]
use std::sync::{Arc, Mutex};
#[cfg(test)]
use std::time::Duration;
use std::time::Instant;

#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// `Instant::now()`.
    #[default]
    System,
    /// A time that stands still until a test moves it.
    #[cfg(test)]
    Manual(Arc<Mutex<Instant>>),
}

impl Clock {
    pub fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            #[cfg(test)]
            Clock::Manual(now) => *now.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

#[cfg(test)]
impl Clock {
    /// A manual clock, starting at the present.
    pub fn manual() -> Clock {
        Clock::Manual(Arc::new(Mutex::new(Instant::now())))
    }

    /// Moves a manual clock on (every clone of it sees the new time).
    pub fn advance(&self, by: Duration) {
        match self {
            Clock::System => panic!("the system clock cannot be moved"),
            Clock::Manual(now) => *now.lock().unwrap_or_else(|e| e.into_inner()) += by,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_its_clones_follow() {
        let clock = Clock::manual();
        let copy = clock.clone();
        let t0 = clock.now();
        assert_eq!(copy.now(), t0);
        clock.advance(Duration::from_secs(5));
        assert_eq!(copy.now(), t0 + Duration::from_secs(5));
    }
}
