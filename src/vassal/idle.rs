//! `idle` (cheap mode) and `die-on-idle`: a vassal that has served nothing for a while stops
//! its workers and watches its sockets itself; the first connection brings them back and is
//! served by them (it waits in the backlog meanwhile, so none is lost). Pure bookkeeping: the
//! master does the signalling.

use std::time::{Duration, Instant};

/// What the master should do after a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IdleVerdict {
    Active,
    /// Idle for the whole limit: go cheap (or stop, with `die-on-idle`).
    Idle,
}

#[derive(Debug)]
pub(super) struct IdleWatch {
    pub limit: Duration,
    pub die: bool,
    /// Workers are stopped and the master watches the sockets.
    pub cheap: bool,
    last_requests: u64,
    last_activity: Instant,
}

impl IdleWatch {
    pub fn new(limit: Duration, die: bool, now: Instant) -> Self {
        IdleWatch {
            limit,
            die,
            cheap: false,
            last_requests: 0,
            last_activity: now,
        }
    }

    /// `requests`: the total served by all workers (from the scoreboard); `busy`: any request
    /// is in flight. A change in either counts as activity.
    pub fn tick(&mut self, requests: u64, busy: bool, now: Instant) -> IdleVerdict {
        // A zero limit: only `cheap` asked for the watch, there is no idle timeout.
        if self.cheap || self.limit.is_zero() {
            return IdleVerdict::Active;
        }
        if busy || requests != self.last_requests {
            self.last_requests = requests;
            self.last_activity = now;
            return IdleVerdict::Active;
        }
        if now.duration_since(self.last_activity) >= self.limit {
            IdleVerdict::Idle
        } else {
            IdleVerdict::Active
        }
    }

    /// A connection arrived while cheap: the workers come back and the clock restarts.
    pub fn wake(&mut self, requests: u64, now: Instant) {
        self.cheap = false;
        self.last_requests = requests;
        self.last_activity = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_after_the_limit_without_requests_and_activity_resets_the_clock() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut watch = IdleWatch::new(Duration::from_secs(10), false, start);
        let cases = [
            (0, false, 5, IdleVerdict::Active),
            (3, false, 6, IdleVerdict::Active), // requests changed: activity at 6 s
            (3, false, 15, IdleVerdict::Active), // 9 s since activity
            (3, true, 20, IdleVerdict::Active), // busy counts as activity (at 20 s)
            (3, false, 29, IdleVerdict::Active),
            (3, false, 30, IdleVerdict::Idle),
        ];
        for (requests, busy, secs, expected) in cases {
            assert_eq!(
                watch.tick(requests, busy, at(secs)),
                expected,
                "at {secs} s with {requests} requests, busy {busy}"
            );
        }
        watch.cheap = true;
        assert_eq!(
            watch.tick(3, false, at(100)),
            IdleVerdict::Active,
            "a cheap vassal is not idle again"
        );
        watch.wake(3, at(100));
        assert!(!watch.cheap);
        assert_eq!(watch.tick(3, false, at(109)), IdleVerdict::Active);
        assert_eq!(watch.tick(3, false, at(110)), IdleVerdict::Idle);
    }
}
