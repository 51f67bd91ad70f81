//! What a worker tells its master, and the recycling limits a worker checks on itself.
//!
//! Workers share one pipe to the master. Each message is a fixed-size record written with a
//! single `write(2)`; records are far below `PIPE_BUF`, so writes from many workers never
//! interleave (pipe(7)), and a record names the sender by pid, so the master never confuses
//! a worker with its replacement (both have the same worker id during a reload).
//!
//! A worker over a limit does not exit on its own: it asks the master, which spawns the
//! replacement first and then stops this worker gracefully, one worker at a time (the policy
//! is in `vassal/recycle.rs`). This module decides nothing about timing or order.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use super::Limits;
use crate::sys;
use crate::sys::process::Pid;

/// The limit a worker found itself over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Limit {
    MaxRequests = 1,
    ReloadOnRss = 2,
    ReloadOnAs = 3,
    /// `reload-on-exception`: the app raised (`value` is the worker's request count).
    Exception = 4,
}

impl Limit {
    fn from_code(code: u8) -> Option<Limit> {
        match code {
            1 => Some(Limit::MaxRequests),
            2 => Some(Limit::ReloadOnRss),
            3 => Some(Limit::ReloadOnAs),
            4 => Some(Limit::Exception),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToMaster {
    /// The worker accepts connections.
    Ready,
    /// The worker is over `limit`: `value` (requests or bytes) against `max`.
    Recycle { limit: Limit, value: u64, max: u64 },
}

/// kind, limit, two spare bytes, pid (u32), value (u64), max (u64); little-endian.
pub const RECORD_LEN: usize = 24;

const KIND_READY: u8 = 1;
const KIND_RECYCLE: u8 = 2;

pub fn encode(pid: Pid, message: ToMaster) -> [u8; RECORD_LEN] {
    let mut record = [0u8; RECORD_LEN];
    let (kind, limit, value, max) = match message {
        ToMaster::Ready => (KIND_READY, 0, 0, 0),
        ToMaster::Recycle { limit, value, max } => (KIND_RECYCLE, limit as u8, value, max),
    };
    record[0] = kind;
    record[1] = limit;
    record[4..8].copy_from_slice(&(pid as u32).to_le_bytes());
    record[8..16].copy_from_slice(&value.to_le_bytes());
    record[16..24].copy_from_slice(&max.to_le_bytes());
    record
}

pub fn decode(record: &[u8; RECORD_LEN]) -> Option<(Pid, ToMaster)> {
    let word = |range: std::ops::Range<usize>| {
        u64::from_le_bytes(record[range].try_into().expect("an 8-byte range"))
    };
    let pid = u32::from_le_bytes(record[4..8].try_into().expect("a 4-byte range")) as Pid;
    let message = match record[0] {
        KIND_READY => ToMaster::Ready,
        KIND_RECYCLE => ToMaster::Recycle {
            limit: Limit::from_code(record[1])?,
            value: word(8..16),
            max: word(16..24),
        },
        _ => return None,
    };
    Some((pid, message))
}

/// Sends one record to the master. A failure is logged and otherwise ignored: a master that
/// is gone takes this worker with it (`PDEATHSIG`).
pub fn send(fd: BorrowedFd<'_>, pid: Pid, message: ToMaster) {
    if let Err(err) = sys::fd::write(fd, &encode(pid, message)) {
        tracing::warn!(error = %err, ?message, "cannot write to the master's pipe");
    }
}

/// The first limit this worker is over after `requests` requests and `lived` seconds of
/// life, if any. `memory` gives (address space, resident) bytes; it is only called when a
/// memory limit is set.
///
/// `min-worker-lifetime` protects a young worker from all three, as in uWSGI
/// (`uwsgi_close_request`), so a tiny `max-requests` cannot turn into a respawn loop.
pub fn due(
    limits: &Limits,
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

    const MB: u64 = 1024 * 1024;

    fn limits(max_requests: u64, rss_mb: u64, as_mb: u64, min_secs: u64) -> Limits {
        Limits {
            request_log: Default::default(),
            buffer_size: 4096,
            socket_timeout: Duration::from_secs(4),
            keepalive_timeout: Duration::from_secs(30),
            disable_logging: false,
            log_conditions: Default::default(),
            disable_write_exception: false,
            manage_script_name: false,
            add_headers: std::sync::Arc::from(Vec::new()),
            line_format: Default::default(),
            log_x_forwarded_for: false,
            post_buffering: 0,
            limit_post: 0,
            max_connections: 0,
            limit_post_default: 0,
            transfer: Default::default(),
            max_requests,
            reload_on_rss: rss_mb * MB,
            reload_on_as: as_mb * MB,
            min_worker_lifetime: Duration::from_secs(min_secs),
            options: Default::default(),
            statics: Default::default(),
            health_check_path: None,
            routes: None,
        }
    }

    fn check(
        limits: Limits,
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

    #[test]
    fn records_round_trip() {
        for message in [
            ToMaster::Ready,
            ToMaster::Recycle {
                limit: Limit::MaxRequests,
                value: 1001,
                max: 1000,
            },
            ToMaster::Recycle {
                limit: Limit::ReloadOnRss,
                value: u64::MAX,
                max: 7,
            },
            ToMaster::Recycle {
                limit: Limit::ReloadOnAs,
                value: 0,
                max: 0,
            },
        ] {
            assert_eq!(
                decode(&encode(4_194_303, message)),
                Some((4_194_303, message))
            );
        }
        let mut garbage = encode(1, ToMaster::Ready);
        garbage[0] = 9;
        assert_eq!(decode(&garbage), None);
        let mut bad_limit = encode(
            1,
            ToMaster::Recycle {
                limit: Limit::MaxRequests,
                value: 1,
                max: 1,
            },
        );
        bad_limit[1] = 0;
        assert_eq!(decode(&bad_limit), None);
    }
}
