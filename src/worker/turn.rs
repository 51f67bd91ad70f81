//! Giving the core away between requests rather than in the middle of one.
//!
//! Workers often share a core: more processes than cores is the usual setting, and a busy
//! vassal keeps them all runnable. The kernel then takes the core from a worker when its
//! slice runs out, at the next timer tick (every 4 ms at `HZ=250`), wherever the worker is —
//! often in the middle of a request, which then waits out the sibling's whole slice too. That
//! set the p99: 5 ms with Flask and two workers on one core, against a 0.8 ms median.
//!
//! So a request thread that has used [`TURN`] of CPU since it last gave way calls
//! `sched_yield` between two events, unless it is saturated (see `serve::thread_loop`). If
//! another task is waiting for the core it runs now, while this thread sits between requests;
//! if none is, the call returns at once. The thread's CPU
//! clock is a system call, so it is read only once the wall clock says a turn may be over
//! (CPU time cannot run ahead of wall time): at most once per millisecond of serving.

use std::time::{Duration, Instant};

use crate::sys;

/// How much CPU a request thread uses before it lets a waiting task have the core: well
/// inside the 4 ms between ticks, so that the hand-over happens here, between requests.
pub const TURN: Duration = Duration::from_millis(1);

pub struct Turn {
    wall_mark: Instant,
    cpu_mark: Duration,
}

impl Turn {
    pub fn new() -> Self {
        Turn {
            wall_mark: Instant::now(),
            cpu_mark: sys::process::thread_cpu_time(),
        }
    }

    /// Called by a request thread between two events: yields the core if its turn is over.
    pub fn between_requests(&mut self) {
        if self.over(Instant::now(), sys::process::thread_cpu_time) {
            std::thread::yield_now();
        }
    }

    /// Whether this thread has used a turn of CPU since the last check that read the clock.
    /// Each such check starts a new turn: a thread that mostly waits never yields.
    fn over(&mut self, now: Instant, cpu_time: impl FnOnce() -> Duration) -> bool {
        if now.duration_since(self.wall_mark) < TURN {
            return false;
        }
        let cpu = cpu_time();
        let used = cpu.saturating_sub(self.cpu_mark);
        self.wall_mark = now;
        self.cpu_mark = cpu;
        used >= TURN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn_at(start: Instant) -> Turn {
        Turn {
            wall_mark: start,
            cpu_mark: Duration::from_millis(100),
        }
    }

    #[test]
    fn the_cpu_clock_is_not_read_within_a_millisecond_of_wall_time() {
        let start = Instant::now();
        let mut turn = turn_at(start);
        let early = start + Duration::from_micros(999);
        assert!(!turn.over(early, || panic!("read the CPU clock too early")));
    }

    #[test]
    fn a_thread_that_served_for_a_turn_yields_and_starts_a_new_one() {
        let start = Instant::now();
        let mut turn = turn_at(start);
        let cpu = Duration::from_millis(101);
        assert!(turn.over(start + TURN, || cpu));
        // The next turn counts from here: half a millisecond more is not a turn.
        let later = start + TURN * 2;
        assert!(!turn.over(later, || cpu + Duration::from_micros(500)));
    }

    #[test]
    fn a_thread_that_mostly_waited_does_not_yield() {
        let start = Instant::now();
        let mut turn = turn_at(start);
        // 20 ms have passed, but the thread ran for 0.3 ms of them (it slept in epoll_wait).
        assert!(
            !turn.over(start + Duration::from_millis(20), || Duration::from_micros(
                100_300
            ))
        );
        // Then it serves without a pause for a turn: now it yields.
        let busy = start + Duration::from_millis(21);
        assert!(turn.over(busy, || Duration::from_micros(101_300)));
    }
}
