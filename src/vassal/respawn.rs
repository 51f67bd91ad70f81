//! The fork-bomb guard every kind of child shares (workers, spoolers, mules): a child that
//! died is respawned at once, unless children of that kind die faster than there are of them
//! per second; then the respawn waits 2 seconds (uWSGI's `respawning too fast`).
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
}
