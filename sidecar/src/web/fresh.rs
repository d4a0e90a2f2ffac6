//! A value read from the database and kept in the process for a while, shared by every
//! session: for what costs a page view milliseconds to read and changes rarely.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct Fresh<T> {
    for_: Duration,
    cached: Arc<Mutex<Option<(Instant, T)>>>,
}

impl<T: Clone> Fresh<T> {
    /// Kept `for_` after it was read.
    pub fn new(for_: Duration) -> Fresh<T> {
        Fresh {
            for_,
            cached: Arc::new(Mutex::new(None)),
        }
    }

    /// The value if it was read less than `for_` ago.
    pub fn get(&self) -> Option<T> {
        // A poisoned lock (a request panicked holding it) leaves the cache unused: every
        // page view then reads the value itself, still correct.
        let cached = self.cached.lock().ok()?;
        cached
            .as_ref()
            .filter(|(at, _)| at.elapsed() < self.for_)
            .map(|(_, value)| value.clone())
    }

    /// Keeps `value`, read now.
    pub fn put(&self, value: T) {
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((Instant::now(), value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_kept_until_it_is_stale() {
        let fresh = Fresh::new(Duration::from_secs(60));
        assert_eq!(fresh.get(), None::<u8>);
        fresh.put(7);
        assert_eq!(fresh.get(), Some(7));
        let stale = Fresh::new(Duration::ZERO);
        stale.put(7);
        assert_eq!(stale.get(), None);
    }
}
