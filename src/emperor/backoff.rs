//! Crash-loop throttling: how long to wait before respawning a vassal that died before it
//! became ready.
//!
//! uWSGI 2.0 grows its blacklist delay linearly and mixes up milliseconds and microseconds
//! (reference §2.5); we follow the documented intent instead: start at `emperor-throttle`
//! (1 s), double on each further failure, never exceed `emperor-max-throttle` (3 min).

use std::time::Duration;

/// The delay before respawn attempt number `failures` (1 = the first failure).
///
/// Zero failures means "not throttled" and yields no delay.
pub fn throttle_delay(failures: u32, base: Duration, max: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    // 2^31 × anything already saturates any sensible maximum; clamp the shift so the
    // multiplication cannot overflow before `min` gets a say.
    let factor = 1u32 << (failures - 1).min(31);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(failures: u32, base_ms: u64, max_ms: u64, expected_ms: u64) {
        let got = throttle_delay(
            failures,
            Duration::from_millis(base_ms),
            Duration::from_millis(max_ms),
        );
        assert_eq!(
            got,
            Duration::from_millis(expected_ms),
            "failures={failures} base={base_ms}ms max={max_ms}ms"
        );
    }

    #[test]
    fn schedule() {
        check(0, 1000, 180_000, 0);
        check(1, 1000, 180_000, 1000);
        check(2, 1000, 180_000, 2000);
        check(3, 1000, 180_000, 4000);
        check(8, 1000, 180_000, 128_000);
        check(9, 1000, 180_000, 180_000);
        check(40, 1000, 180_000, 180_000);
        check(u32::MAX, 1000, 180_000, 180_000);
        check(1, 500, 800, 500);
        check(2, 500, 800, 800);
        check(1, 5000, 1000, 1000);
    }
}
