//! Counting guest-triggered events with rate-limited logging: a guest cannot flood the
//! log, and the counts stay exact.

use std::sync::atomic::{AtomicU64, Ordering};

/// How many events are logged one by one before only every 1000th is.
const LOG_FIRST: u64 = 8;

/// A count of one kind of guest-triggered event.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Counts one event; returns the count and whether this one should be logged.
    pub(crate) fn tick(&self) -> (u64, bool) {
        let n = self.0.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        (n, n <= LOG_FIRST || n.is_multiple_of(1000))
    }

    /// The events so far.
    pub(crate) fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_eight_then_every_thousandth() {
        let c = Counter::default();
        let logged: Vec<u64> = (0..3000)
            .filter_map(|_| match c.tick() {
                (n, true) => Some(n),
                _ => None,
            })
            .collect();
        assert_eq!(logged, [1, 2, 3, 4, 5, 6, 7, 8, 1000, 2000, 3000]);
        assert_eq!(c.count(), 3000);
    }
}
