//! What a worker tells its master: it is ready, or it is over a limit and asks for its
//! replacement.
//!
//! Workers share one pipe to the master. Each message is a fixed-size record written with a
//! single `write(2)`; records are far below `PIPE_BUF`, so writes from many workers never
//! interleave (pipe(7)), and a record names the sender by pid, so the master never confuses
//! a worker with its replacement (both have the same worker id during a reload).
//!
//! It decides nothing: when to ask is `limits.rs`'s, what to do about it the master's.

use std::os::fd::BorrowedFd;

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

#[cfg(test)]
mod tests {
    use super::*;

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
