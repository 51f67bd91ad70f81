//! The two clocks kaiser reads: wall time (Unix µs), for logs, stats and uWSGI's figures,
//! and `CLOCK_MONOTONIC` (µs), for deadlines. `CLOCK_MONOTONIC` is one clock for every
//! process of the machine, so a worker may write a start time that its master compares
//! with its own reading; an NTP step moves wall time, never this one.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Unix time in µs (a vDSO call, no system call).
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    unix_us() / 1_000
}

/// Unix time in whole seconds.
pub fn unix_secs() -> u64 {
    unix_us() / 1_000_000
}

/// `CLOCK_MONOTONIC` in µs (a vDSO call): the same clock in every process of the machine.
pub fn monotonic_us() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

/// An [`Instant`] as a [`monotonic_us`] reading, without reading the clock again: `Instant`
/// is `CLOCK_MONOTONIC` on Linux, so the two differ by a constant, taken once per process
/// (to within the few hundred nanoseconds between its two readings). A request's start is
/// read once, as an `Instant`, and the scoreboard's µs are derived from it: each clock read
/// is a vDSO call of about 60 instructions, and a request made six of them.
pub fn monotonic_us_at(instant: Instant) -> u64 {
    static BASE: OnceLock<(Instant, u64)> = OnceLock::new();
    let &(base, base_us) = BASE.get_or_init(|| (Instant::now(), monotonic_us()));
    match instant.checked_duration_since(base) {
        Some(after) => base_us.saturating_add(after.as_micros() as u64),
        None => base_us.saturating_sub((base - instant).as_micros() as u64),
    }
}

/// The wall time at which something happened `monotonic` (a [`monotonic_us`] reading),
/// for display.
pub fn unix_us_of(monotonic: u64) -> u64 {
    unix_us().saturating_sub(monotonic_us().saturating_sub(monotonic))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_instant_converts_to_the_monotonic_clock_it_was_read_from() {
        let before = monotonic_us();
        let now = Instant::now();
        let after = monotonic_us();
        let converted = monotonic_us_at(now);
        // Within the reads around it, give or take the base's own skew.
        assert!(
            converted + 50 >= before && converted <= after + 50,
            "{before} {converted} {after}"
        );
        // Earlier and later instants keep their distance.
        let earlier = now - Duration::from_millis(1500);
        assert!((converted - monotonic_us_at(earlier)).abs_diff(1_500_000) <= 1);
        assert!(
            (monotonic_us_at(now + Duration::from_secs(2)) - converted).abs_diff(2_000_000) <= 1
        );
    }
}
