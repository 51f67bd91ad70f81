//! Coalescing a burst of filesystem events into one rescan.
//!
//! An editor save is several inotify events (vim: write a temp file, rename the original to a
//! backup, rename the temp over it, chmod, delete the backup). Rescanning in the middle of the
//! burst could see the file missing and stop the vassal. So every event pushes the rescan back
//! by a short quiet period, and a bounded maximum wait keeps a file that is rewritten forever
//! from starving the rescan. Pure: time comes in as arguments.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Debouncer {
    quiet: Duration,
    max_wait: Duration,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Debouncer {
    pub fn new(quiet: Duration, max_wait: Duration) -> Self {
        Debouncer {
            quiet,
            max_wait,
            first: None,
            last: None,
        }
    }

    /// Records that something changed at `now`.
    pub fn event(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the pending burst should be acted on, if one is pending.
    pub fn deadline(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + self.quiet).min(first + self.max_wait))
    }

    /// True (and the burst is consumed) when a burst is pending and its deadline has passed.
    pub fn fire(&mut self, now: Instant) -> bool {
        match self.deadline() {
            Some(deadline) if deadline <= now => {
                self.first = None;
                self.last = None;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds events at the given millisecond offsets and polls at every millisecond up to
    /// `until`; returns the offsets at which the debouncer fired.
    fn check(events: &[u64], until: u64, expected: &[u64]) {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut debouncer = Debouncer::new(Duration::from_millis(50), Duration::from_millis(300));
        let mut fired = Vec::new();
        for ms in 0..=until {
            for _ in events.iter().filter(|&&e| e == ms) {
                debouncer.event(at(ms));
            }
            if debouncer.fire(at(ms)) {
                fired.push(ms);
            }
        }
        assert_eq!(fired, expected, "events at {events:?}");
    }

    #[test]
    fn bursts() {
        check(&[], 500, &[]);
        check(&[0], 500, &[50]);
        // An editor save: a handful of events within a few ms gives one rescan.
        check(&[10, 11, 11, 12, 15], 500, &[65]);
        check(&[0, 40, 80], 500, &[130]);
        // Two separate saves give two rescans.
        check(&[0, 200], 500, &[50, 250]);
        // A file rewritten every 20 ms still gets rescanned at the maximum wait.
        let steady: Vec<u64> = (0..30).map(|i| i * 20).collect();
        check(&steady, 700, &[300, 620]);
    }
}
