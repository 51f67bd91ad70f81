//! Request figures for Prometheus that uWSGI's scoreboard has no words for: responses by
//! status class and a request-duration histogram with fixed buckets, per worker id, plus a
//! few vassal-wide words (the health endpoint's "draining", recycles by reason).
//!
//! They live at the end of the scoreboard's shared mapping (see [`Scoreboard::metrics`]) so
//! that the scoreboard's own layout is untouched. The worker thread that finishes a request
//! adds to its worker's words with relaxed atomic increments: no lock, no system call, and a
//! worker killed halfway leaves at worst one figure a request behind. Like the scoreboard's
//! `requests`, the figures belong to the worker id and survive respawns, so they are
//! Prometheus counters (monotonic for the master's life).
//!
//! It renders nothing (`vassal/prometheus.rs` does) and decides nothing.
//!
//! [`Scoreboard::metrics`]: super::scoreboard::Scoreboard::metrics

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the duration buckets, in µs (Prometheus' default buckets). A request
/// longer than the last one is only in `+Inf`.
pub const BUCKETS_US: [u64; 11] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];

/// Status classes counted: 1xx to 5xx, then anything else (no response was sent, or a
/// status outside 100..=599).
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// Why the master replaced workers, counted in the vassal-wide words after `DRAINING`.
pub const RECYCLE_REASONS: [&str; 8] = [
    "max-requests",
    "reload-on-rss",
    "reload-on-as",
    "reload-on-exception",
    "max-worker-lifetime",
    "chain-reload",
    "workers-reload",
    "evil-memory",
];

/// Words before the first worker's: vassal-wide flags and figures.
const GLOBAL_WORDS: usize = 1 + RECYCLE_REASONS.len();
const DRAINING: usize = 0;
const RECYCLES: usize = 1;

/// Per worker id: status classes, the buckets plus `+Inf`, the sum of durations in µs.
const STATUS: usize = 0;
const BUCKET: usize = STATUS + STATUS_CLASSES.len();
const SUM_US: usize = BUCKET + BUCKETS_US.len() + 1;
const WORKER_WORDS: usize = SUM_US + 1;

/// How many words the region needs for `workers` workers.
pub fn words(workers: usize) -> usize {
    GLOBAL_WORDS + workers * WORKER_WORDS
}

/// The region, as a view over the scoreboard's words.
#[derive(Clone, Copy)]
pub struct RequestMetrics<'a> {
    words: &'a [AtomicU64],
}

/// A copy of one worker's figures, for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerMetrics {
    /// Indexed like [`STATUS_CLASSES`].
    pub status: [u64; 6],
    /// Not cumulative: `buckets[i]` counts requests in `(BUCKETS_US[i-1], BUCKETS_US[i]]`,
    /// the last one those above every bound.
    pub buckets: [u64; 12],
    pub sum_us: u64,
}

impl WorkerMetrics {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

impl<'a> RequestMetrics<'a> {
    pub fn new(words: &'a [AtomicU64]) -> Self {
        RequestMetrics { words }
    }

    fn worker_words(&self, id: u32) -> Option<&'a [AtomicU64]> {
        let index = (id as usize).checked_sub(1)?;
        let start = GLOBAL_WORDS + index * WORKER_WORDS;
        self.words.get(start..start + WORKER_WORDS)
    }

    /// The worker's side, after each request: `status` 0 means no response was sent.
    pub fn record(&self, id: u32, status: u16, duration_us: u64) {
        let Some(words) = self.worker_words(id) else {
            return;
        };
        let class = match status {
            100..=599 => usize::from(status / 100 - 1),
            _ => STATUS_CLASSES.len() - 1,
        };
        words[STATUS + class].fetch_add(1, Ordering::Relaxed);
        let bucket = BUCKETS_US
            .iter()
            .position(|bound| duration_us <= *bound)
            .unwrap_or(BUCKETS_US.len());
        words[BUCKET + bucket].fetch_add(1, Ordering::Relaxed);
        words[SUM_US].fetch_add(duration_us, Ordering::Relaxed);
    }

    pub fn snapshot(&self, id: u32) -> WorkerMetrics {
        let mut out = WorkerMetrics::default();
        let Some(words) = self.worker_words(id) else {
            return out;
        };
        for (index, value) in out.status.iter_mut().enumerate() {
            *value = words[STATUS + index].load(Ordering::Relaxed);
        }
        for (index, value) in out.buckets.iter_mut().enumerate() {
            *value = words[BUCKET + index].load(Ordering::Relaxed);
        }
        out.sum_us = words[SUM_US].load(Ordering::Relaxed);
        out
    }

    /// The master's side: the vassal is stopping and health probes must fail.
    pub fn set_draining(&self, draining: bool) {
        if let Some(word) = self.words.get(DRAINING) {
            word.store(u64::from(draining), Ordering::Relaxed);
        }
    }

    /// The master's side: a worker was replaced (or killed, `evil-memory`) for `reason`,
    /// one of [`RECYCLE_REASONS`].
    pub fn count_recycle(&self, reason: &str) {
        if let Some(index) = RECYCLE_REASONS.iter().position(|r| *r == reason) {
            self.words[RECYCLES + index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Recycles so far, indexed like [`RECYCLE_REASONS`].
    pub fn recycles(&self) -> [u64; RECYCLE_REASONS.len()] {
        std::array::from_fn(|index| self.words[RECYCLES + index].load(Ordering::Relaxed))
    }

    pub fn draining(&self) -> bool {
        self.words
            .get(DRAINING)
            .is_some_and(|word| word.load(Ordering::Relaxed) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::scoreboard::Scoreboard;

    #[test]
    fn requests_land_in_their_class_and_bucket() {
        let board = Scoreboard::new(2, 1).expect("mmap");
        let metrics = board.metrics();
        metrics.record(2, 200, 5_000);
        metrics.record(2, 404, 5_001);
        metrics.record(2, 503, 20_000_000);
        metrics.record(2, 0, 1);
        metrics.record(3, 200, 1); // no such worker: ignored
        let figures = metrics.snapshot(2);
        assert_eq!(figures.status, [0, 1, 0, 1, 1, 1]);
        assert_eq!(
            figures.buckets[0], 2,
            "5 ms and 1 µs are in the first bucket"
        );
        assert_eq!(figures.buckets[1], 1);
        assert_eq!(figures.buckets[11], 1, "20 s is only in +Inf");
        assert_eq!(figures.count(), 4);
        assert_eq!(figures.sum_us, 5_000 + 5_001 + 20_000_000 + 1);
        assert_eq!(metrics.snapshot(1), WorkerMetrics::default());
        // The region does not overlap the scoreboard's own words.
        let worker = board.worker(2).expect("worker 2").snapshot();
        assert_eq!((worker.requests, worker.exceptions), (0, 0));
        assert!(!metrics.draining());
        metrics.set_draining(true);
        assert!(board.metrics().draining());
        metrics.count_recycle("max-requests");
        metrics.count_recycle("evil-memory");
        metrics.count_recycle("no-such-reason");
        assert_eq!(metrics.recycles(), [1, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(metrics.snapshot(1), WorkerMetrics::default(), "no overlap");
    }
}
