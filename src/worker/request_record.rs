//! A request's log record: what its request line, `log-format`, the scoreboard and harakiri's
//! report need to know of it, and the record's reuse from one request to the next.
//!
//! Every request copies its method, URI, protocol and client address into the
//! [`RequestLog`], and dropping them freed four `String`s per request. The thread keeps the
//! last request's record once its line is written, and the next request copies into those
//! strings' allocations instead: no `malloc` or `free` for them after the first request.
//! [`fresh`] must hand out a record equal to `RequestLog::default()` but for the strings'
//! capacity: nothing of the previous request may show in the next one.
//!
//! It does not write lines or decide whether one is written (`request_log.rs`).

use std::cell::Cell;
use std::time::Duration;

use crate::sys;

/// What the request log line needs.
#[derive(Default)]
pub struct RequestLog {
    pub method: String,
    pub uri: String,
    pub protocol: String,
    pub remote_addr: String,
    pub remote_user: String,
    pub var_count: usize,
    pub packet_size: usize,
    pub status: u16,
    pub body_bytes: u64,
    pub header_count: usize,
    pub header_bytes: usize,
    pub start_unix: u64,
    pub elapsed: Duration,
    /// The body went out with `sendfile(2)`.
    pub via_sendfile: bool,
    /// The body was left to an offload thread (static files).
    pub via_offload: bool,
    /// Reading the body or writing the response failed.
    pub io_error: bool,
    /// The request's `X-Forwarded-For`, for `log-x-forwarded-for` (empty: none, or off).
    pub forwarded_for: String,
    /// When the request started, in microseconds since the epoch (`%(tmicros)`).
    pub start_unix_micros: u64,
    /// What only a `log-format` prints, kept only when it does (`request_log::capture`).
    pub extra: Option<Box<ExtraLogFields>>,
}

/// Request fields the default line does not print.
#[derive(Debug, Default)]
pub struct ExtraLogFields {
    pub host: Vec<u8>,
    pub user_agent: Vec<u8>,
    pub referer: Vec<u8>,
    pub content_length: u64,
    /// In the order of `LogTemplate::request_vars`.
    pub request_vars: Vec<Option<Vec<u8>>>,
}

/// How the request line is written: `log-micros`, `memory-report`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LineFormat {
    pub micros: bool,
    pub memory_report: bool,
}

impl RequestLog {
    /// What `log-4xx`, `log-slow` and the like decide on.
    pub fn facts(&self, asked: bool) -> crate::protocol::log::RequestFacts {
        crate::protocol::log::RequestFacts {
            status: self.status,
            body_bytes: self.body_bytes,
            msecs: self.elapsed.as_millis() as u64,
            via_sendfile: self.via_sendfile,
            io_error: self.io_error,
            asked,
        }
    }

    /// Appends uWSGI's default line of a request served on request thread `core`.
    pub fn format_default(
        &self,
        pid: sys::process::Pid,
        total_requests: u64,
        core: usize,
        format: LineFormat,
        text: &mut String,
    ) {
        let remote_addr = if self.forwarded_for.is_empty() {
            &self.remote_addr
        } else {
            &self.forwarded_for
        };
        let line = crate::protocol::log::RequestLogLine {
            pid: pid as u32,
            app_id: 0,
            app_requests: total_requests as i64,
            total_requests,
            remote_addr: remote_addr.as_bytes(),
            remote_user: self.remote_user.as_bytes(),
            var_count: self.var_count,
            packet_size: self.packet_size,
            start_unix_secs: self.start_unix as i64,
            method: self.method.as_bytes(),
            uri: self.uri.as_bytes(),
            body_bytes: self.body_bytes,
            msecs: self.elapsed.as_millis() as u64,
            micros: format.micros.then_some(self.elapsed.as_micros() as u64),
            memory: if format.memory_report {
                sys::process::memory_bytes(pid)
            } else {
                None
            },
            via_sendfile: self.via_sendfile,
            via_offload: self.via_offload,
            protocol: self.protocol.as_bytes(),
            status: self.status,
            header_count: self.header_count,
            header_bytes: self.header_bytes as u64,
            switches: 1,
            core,
        };
        line.format(text);
    }
}

/// Longer strings (a huge URI) are not kept.
const KEEP_AT_MOST: usize = 4096;

thread_local! {
    static SPARE: Cell<Option<[String; 4]>> = const { Cell::new(None) };
}

/// A fresh record, with the allocations of the thread's previous one when it has it.
pub fn fresh() -> RequestLog {
    let Some([mut method, mut uri, mut protocol, mut remote_addr]) = SPARE.with(Cell::take) else {
        return RequestLog::default();
    };
    for s in [&mut method, &mut uri, &mut protocol, &mut remote_addr] {
        s.clear();
    }
    RequestLog {
        method,
        uri,
        protocol,
        remote_addr,
        ..RequestLog::default()
    }
}

/// Keeps `log`'s strings for the thread's next request (call it on request threads only).
pub fn recycle(log: RequestLog) {
    let strings = [log.method, log.uri, log.protocol, log.remote_addr];
    if strings.iter().any(|s| s.capacity() > KEEP_AT_MOST) {
        return;
    }
    SPARE.with(|spare| spare.set(Some(strings)));
}

/// `*into` = `bytes` as text (invalid UTF-8 replaced), in `into`'s allocation.
pub fn set_lossy(into: &mut String, bytes: &[u8]) {
    into.clear();
    // `from_utf8` checks ASCII a word at a time; request lines nearly always are.
    match std::str::from_utf8(bytes) {
        Ok(text) => into.push_str(text),
        Err(_) => into.push_str(&String::from_utf8_lossy(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_record_is_empty_and_keeps_no_field_of_the_last_request() {
        let mut log = fresh();
        log.method.push_str("POST");
        log.uri.push_str("/secret?token=1");
        log.remote_addr.push_str("10.0.0.1");
        log.status = 500;
        log.body_bytes = 99;
        let buffer = log.uri.as_ptr();
        recycle(log);
        let again = fresh();
        assert!(again.method.is_empty() && again.uri.is_empty() && again.remote_addr.is_empty());
        assert_eq!((again.status, again.body_bytes), (0, 0));
        assert_eq!(again.uri.as_ptr(), buffer, "the URI's allocation is reused");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut s = String::from("old");
        set_lossy(&mut s, b"GET\xff");
        assert_eq!(s, "GET\u{fffd}");
    }
}
