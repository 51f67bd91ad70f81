//! The two clocks kaiser reads: wall time (Unix µs), for logs, stats and uWSGI's figures,
//! and `CLOCK_MONOTONIC` (µs), for deadlines. `CLOCK_MONOTONIC` is one clock for every
//! process of the machine, so a worker may write a start time that its master compares
//! with its own reading; an NTP step moves wall time, never this one.

use std::time::{SystemTime, UNIX_EPOCH};

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

/// The wall time at which something happened `monotonic` (a [`monotonic_us`] reading),
/// for display.
pub fn unix_us_of(monotonic: u64) -> u64 {
    unix_us().saturating_sub(monotonic_us().saturating_sub(monotonic))
}
