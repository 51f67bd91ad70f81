//! How long one request may keep its thread waiting on a slow client: `socket-timeout`
//! bounds each wait, and a [`Budget`] bounds their sum, once for the request body and once
//! for the response. Without it a client that sends (or reads) one byte every few seconds
//! holds a request thread for as long as it likes.
//!
//! The budget is `transfer-timeout` plus 1/`transfer-min-rate` seconds per byte moved (the
//! idea of Apache's `RequestReadTimeout … MinRate`), so a large upload or download from a slow
//! but steady client goes on while a trickle is cut. Only time spent blocked on the client
//! counts: the app's own time between reads or writes is harakiri's business.
//!
//! Pure bookkeeping: it makes no system call and reads no clock; the caller measures.

use std::time::Duration;

/// `transfer-timeout` and `transfer-min-rate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransferLimit {
    /// The waiting allowed before any byte moved (zero: no total deadline).
    pub timeout: Duration,
    /// Bytes a second; each byte moved adds 1/rate seconds (0: none).
    pub min_rate: u64,
}

/// One direction's waiting so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Budget {
    spent: Duration,
    moved: u64,
}

impl Budget {
    /// Bytes that crossed the socket.
    pub fn moved(&mut self, bytes: usize) {
        self.moved = self.moved.saturating_add(bytes as u64);
    }

    /// Time spent blocked on the client.
    pub fn spent(&mut self, waited: Duration) {
        self.spent = self.spent.saturating_add(waited);
    }

    /// How long the next wait may last at most: `None` when there is no total deadline,
    /// `Some(ZERO)` once it has passed.
    pub fn left(&self, limit: TransferLimit) -> Option<Duration> {
        if limit.timeout.is_zero() {
            return None;
        }
        let earned = match limit.min_rate {
            0 => Duration::ZERO,
            rate => Duration::try_from_secs_f64(self.moved as f64 / rate as f64)
                .unwrap_or(Duration::MAX),
        };
        Some(
            limit
                .timeout
                .saturating_add(earned)
                .saturating_sub(self.spent),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets() {
        let check =
            |timeout_s: u64, rate: u64, moved: usize, spent_ms: u64, expected: Option<u64>| {
                let limit = TransferLimit {
                    timeout: Duration::from_secs(timeout_s),
                    min_rate: rate,
                };
                let mut budget = Budget::default();
                budget.moved(moved);
                budget.spent(Duration::from_millis(spent_ms));
                assert_eq!(
                    budget.left(limit).map(|left| left.as_millis() as u64),
                    expected,
                    "{limit:?}, {moved} bytes moved, {spent_ms} ms spent"
                );
            };
        check(0, 1024, 0, 1_000_000, None);
        check(60, 1024, 0, 0, Some(60_000));
        check(60, 1024, 0, 59_000, Some(1_000));
        check(60, 1024, 0, 61_000, Some(0));
        // A steady client earns its time: 10 KiB buys 10 s more at 1 KiB/s.
        check(60, 1024, 10 * 1024, 65_000, Some(5_000));
        check(60, 0, 10 * 1024, 65_000, Some(0));
        check(2, 1_000_000, 500_000, 1_000, Some(1_500));
        // Huge figures saturate rather than overflow.
        let mut budget = Budget::default();
        budget.moved(usize::MAX);
        budget.moved(usize::MAX);
        let limit = TransferLimit {
            timeout: Duration::MAX,
            min_rate: 1,
        };
        assert_eq!(budget.left(limit), Some(Duration::MAX));
    }
}
