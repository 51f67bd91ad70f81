//! The limits past which a worker asks its master for a replacement: `max-requests`,
//! `reload-on-rss`, `reload-on-as` (not before `min-worker-lifetime`), checked on the
//! request's own thread after each request as uWSGI does in `uwsgi_close_request`, and
//! `reload-on-exception`'s ask. A worker asks once.
//!
//! A worker over a limit does not exit on its own: the master spawns the replacement first
//! and then stops this worker gracefully, one worker at a time (the policy is the vassal's).
//! This module decides nothing about timing or order.

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::to_master::{self, Limit, ToMaster};
use super::Shared;
use crate::sys;

/// The recycling limits of one worker (0: off).
#[derive(Debug, Clone, Default)]
pub struct RecycleLimits {
    /// This worker's own figure: `max-requests` plus its delta and jitter.
    pub max_requests: u64,
    /// Bytes.
    pub reload_on_rss: u64,
    pub reload_on_as: u64,
    pub min_worker_lifetime: Duration,
}

/// Asks the master once for a replacement.
pub(crate) struct RecycleWatch {
    started: Instant,
    master_pipe: RawFd,
    asked: AtomicBool,
}

impl RecycleWatch {
    pub(super) fn new(master_pipe: RawFd) -> Self {
        RecycleWatch {
            started: Instant::now(),
            master_pipe,
            asked: AtomicBool::new(false),
        }
    }

    /// Sends `message` unless this worker asked already or is stopping anyway.
    pub(super) fn ask(&self, shared: &Shared, message: ToMaster) {
        if shared.stopping.load(Ordering::Relaxed) || self.asked.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::debug!(?message, "asking the master for a replacement");
        // SAFETY: the master's pipe stays open until this process exits.
        let master = unsafe { BorrowedFd::borrow_raw(self.master_pipe) };
        to_master::send(master, shared.pid, message);
    }
}

/// Called by a request thread after each request, with the worker's request count.
pub(crate) fn after_request(shared: &Shared, requests: u64) {
    let watch = &shared.recycling;
    if watch.asked.load(Ordering::Relaxed) || shared.stopping.load(Ordering::Relaxed) {
        return;
    }
    let limits = &shared.settings.recycle;
    if limits.max_requests == 0 && limits.reload_on_rss == 0 && limits.reload_on_as == 0 {
        // Nothing to check: no clock read, no `/proc` read.
        return;
    }
    let due = due(limits, requests, watch.started.elapsed(), || {
        sys::process::memory_bytes(shared.pid)
    });
    if let Some(message) = due {
        watch.ask(shared, message);
    }
}

/// The first limit this worker is over after `requests` requests and `lived` seconds of
/// life, if any. `memory` gives (address space, resident) bytes; it is only called when a
/// memory limit is set.
///
/// `min-worker-lifetime` protects a young worker from all three, as in uWSGI
/// (`uwsgi_close_request`), so a tiny `max-requests` cannot turn into a respawn loop.
pub fn due(
    limits: &RecycleLimits,
    requests: u64,
    lived: Duration,
    memory: impl FnOnce() -> Option<(u64, u64)>,
) -> Option<ToMaster> {
    if lived < limits.min_worker_lifetime {
        return None;
    }
    if limits.max_requests > 0 && requests >= limits.max_requests {
        return Some(ToMaster::Recycle {
            limit: Limit::MaxRequests,
            value: requests,
            max: limits.max_requests,
        });
    }
    if limits.reload_on_rss == 0 && limits.reload_on_as == 0 {
        return None;
    }
    let (size, resident) = memory()?;
    if limits.reload_on_rss > 0 && resident >= limits.reload_on_rss {
        return Some(ToMaster::Recycle {
            limit: Limit::ReloadOnRss,
            value: resident,
            max: limits.reload_on_rss,
        });
    }
    if limits.reload_on_as > 0 && size >= limits.reload_on_as {
        return Some(ToMaster::Recycle {
            limit: Limit::ReloadOnAs,
            value: size,
            max: limits.reload_on_as,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::to_master::Limit;

    const MB: u64 = 1024 * 1024;

    fn limits(max_requests: u64, rss_mb: u64, as_mb: u64, min_secs: u64) -> RecycleLimits {
        RecycleLimits {
            max_requests,
            reload_on_rss: rss_mb * MB,
            reload_on_as: as_mb * MB,
            min_worker_lifetime: Duration::from_secs(min_secs),
        }
    }

    fn check(
        limits: RecycleLimits,
        requests: u64,
        lived: u64,
        memory_mb: (u64, u64),
        expected: Option<(Limit, u64, u64)>,
    ) {
        let got = due(&limits, requests, Duration::from_secs(lived), || {
            Some((memory_mb.0 * MB, memory_mb.1 * MB))
        });
        let expected = expected.map(|(limit, value, max)| ToMaster::Recycle { limit, value, max });
        assert_eq!(
            got, expected,
            "{limits:?} after {requests} requests, {lived} s, memory {memory_mb:?} MB"
        );
    }

    #[test]
    fn limits_fire_after_min_worker_lifetime() {
        use Limit::*;
        check(limits(0, 0, 0, 0), 1_000_000, 100, (100, 100), None);
        check(limits(10, 0, 0, 0), 9, 0, (0, 0), None);
        check(
            limits(10, 0, 0, 0),
            10,
            0,
            (0, 0),
            Some((MaxRequests, 10, 10)),
        );
        check(limits(10, 0, 0, 10), 50, 9, (0, 0), None);
        check(
            limits(10, 0, 0, 10),
            50,
            10,
            (0, 0),
            Some((MaxRequests, 50, 10)),
        );
        check(limits(0, 100, 0, 0), 1, 0, (500, 99), None);
        check(
            limits(0, 100, 0, 0),
            1,
            0,
            (500, 100),
            Some((ReloadOnRss, 100 * MB, 100 * MB)),
        );
        check(
            limits(0, 100, 400, 0),
            1,
            0,
            (500, 50),
            Some((ReloadOnAs, 500 * MB, 400 * MB)),
        );
        check(limits(0, 100, 400, 5), 1, 4, (500, 500), None);
        check(
            limits(10, 100, 0, 0),
            10,
            0,
            (0, 500),
            Some((MaxRequests, 10, 10)),
        );
    }
}
