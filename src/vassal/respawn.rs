//! When a dead child is started again, by one of two rules (the process table gives each
//! seat one):
//! - the fork-bomb guard of forked children (workers, spoolers, mules): at once, unless
//!   children of that kind die faster than there are of them per second; then the respawn
//!   waits 2 seconds (uWSGI's `respawning too fast`);
//! - the throttle of attached daemons: a daemon that dies within 3 seconds of its start
//!   waits before its next start, one second more for each such quick death in a row
//!   (capped by `max_throttle`, else 300 s); one that ran longer restarts at once. uWSGI grows
//!   the delay with the total number of respawns instead, so a daemon that crashed often
//!   long ago waits long for a new quick crash; counting quick deaths in a row keeps the
//!   bound and forgets old history.
//!
//! It only answers when; the caller forks.

use std::time::{Duration, Instant};

/// How long a too-fast respawn waits.
const PENALTY: Duration = Duration::from_secs(2);

/// The deaths of one kind of child during the last second.
#[derive(Debug, Default)]
pub struct RespawnGuard {
    deaths: Vec<Instant>,
}

impl RespawnGuard {
    /// A child of a kind that has `population` slots died at `now`: when to respawn it, and
    /// whether that is late because they die too fast.
    pub fn next(&mut self, now: Instant, population: usize) -> (Instant, bool) {
        self.deaths
            .retain(|t| now.duration_since(*t) < Duration::from_secs(1));
        self.deaths.push(now);
        if self.deaths.len() > population {
            (now + PENALTY, true)
        } else {
            (now, false)
        }
    }
}

/// A daemon that dies within this long of its start counts as a quick death.
const QUICK_DEATH: Duration = Duration::from_secs(3);
/// uWSGI's cap on the throttle when `max_throttle` is not set.
const MAX_THROTTLE: Duration = Duration::from_secs(300);

/// The quick deaths in a row of one daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttle {
    cap: Duration,
    quick_deaths: u32,
}

impl Throttle {
    /// `max_throttle`: the longest wait (300 s when unset).
    pub fn new(max_throttle: Option<Duration>) -> Self {
        Throttle {
            cap: max_throttle.unwrap_or(MAX_THROTTLE),
            quick_deaths: 0,
        }
    }

    /// A child started at `started` died at `now`: how long its restart waits, and how many
    /// quick deaths in a row that makes (0: it ran long enough, it restarts at once).
    pub fn next(&mut self, started: Option<Instant>, now: Instant) -> (Duration, u32) {
        let quick = started.is_some_and(|at| now.duration_since(at) <= QUICK_DEATH);
        if !quick {
            self.quick_deaths = 0;
            return (Duration::ZERO, 0);
        }
        self.quick_deaths += 1;
        let delay = Duration::from_secs(self.quick_deaths.into()).min(self.cap);
        (delay, self.quick_deaths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_deaths_than_children_in_a_second_wait() {
        let mut guard = RespawnGuard::default();
        let start = Instant::now();
        assert_eq!(guard.next(start, 2), (start, false));
        assert_eq!(guard.next(start, 2), (start, false));
        assert_eq!(guard.next(start, 2), (start + PENALTY, true));
        // A second later the earlier deaths no longer count.
        let later = start + Duration::from_secs(2);
        assert_eq!(guard.next(later, 2), (later, false));
    }

    /// Started at `start`, died `lived` seconds later: the delay before its next start.
    fn delay_after(throttle: &mut Throttle, start: Instant, lived: u64) -> u64 {
        let (delay, _) = throttle.next(Some(start), start + Duration::from_secs(lived));
        delay.as_secs()
    }

    #[test]
    fn quick_deaths_in_a_row_wait_longer_and_a_long_run_resets() {
        let mut throttle = Throttle::new(None);
        let t = Instant::now();
        let delays: Vec<u64> = (0..4).map(|_| delay_after(&mut throttle, t, 0)).collect();
        assert_eq!(delays, [1, 2, 3, 4]);
        assert_eq!(
            delay_after(&mut throttle, t, 60),
            0,
            "ran a minute: restarts at once"
        );
        assert_eq!(
            delay_after(&mut throttle, t, 1),
            1,
            "the count starts again"
        );
        assert_eq!(throttle.next(None, t), (Duration::ZERO, 0), "never started");

        let mut capped = Throttle::new(Some(Duration::from_secs(2)));
        let delays: Vec<u64> = (0..4).map(|_| delay_after(&mut capped, t, 0)).collect();
        assert_eq!(delays, [1, 2, 2, 2], "max_throttle caps the delay");
    }
}
