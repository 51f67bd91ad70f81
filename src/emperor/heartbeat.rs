//! `emperor-required-heartbeat = N`: a ready vassal that sent heartbeats (`heartbeat`, as
//! `WATCHDOG=1` on its channel) and then stays silent for N seconds is hung; the emperor
//! curses it (SIGKILL to its process group) and the state machine respawns it. As in uWSGI,
//! vassals that never sent a heartbeat are not judged: `heartbeat` is opt-in per vassal.
//!
//! Pure: the governor keeps the times and does the killing.

use std::time::{Duration, Instant};

/// Whether a vassal whose last heartbeat was at `last` is overdue at `now`.
pub fn overdue(last: Option<Instant>, now: Instant, tolerance: Duration) -> bool {
    match last {
        Some(last) if !tolerance.is_zero() => now.saturating_duration_since(last) > tolerance,
        _ => false,
    }
}

/// When `last`'s heartbeat becomes overdue, for the loop's timeout.
pub fn deadline(last: Option<Instant>, tolerance: Duration) -> Option<Instant> {
    match last {
        Some(last) if !tolerance.is_zero() => Some(last + tolerance + Duration::from_millis(1)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_vassals_that_beat_are_judged() {
        let now = Instant::now();
        let tolerance = Duration::from_secs(5);
        assert!(!overdue(None, now + Duration::from_secs(60), tolerance));
        assert!(!overdue(Some(now), now + Duration::from_secs(5), tolerance));
        assert!(overdue(Some(now), now + Duration::from_secs(6), tolerance));
        assert!(!overdue(
            Some(now),
            now + Duration::from_secs(60),
            Duration::ZERO
        ));
        assert!(deadline(Some(now), tolerance).is_some_and(|at| at > now + tolerance));
    }
}
