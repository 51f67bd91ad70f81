//! The request log's text fields reused from one request to the next on a request thread.
//!
//! Every request copies its method, URI, protocol and client address into the
//! [`RequestLog`] (the scoreboard, `log-format` and harakiri's report read them), and
//! dropping them freed four `String`s per request. The thread keeps the last request's
//! record once its line is written, and the next request copies into those strings'
//! allocations instead: no `malloc` or `free` for them after the first request.
//!
//! It must hand out a record equal to `RequestLog::default()` but for the strings' capacity:
//! nothing of the previous request may show in the next one.

use std::cell::Cell;

use super::exchange::RequestLog;

/// Longer strings (a huge URI) are not kept.
const KEEP_AT_MOST: usize = 4096;

thread_local! {
    static SPARE: Cell<Option<Box<RequestLog>>> = const { Cell::new(None) };
}

/// A fresh record, with the allocations of the thread's previous one when it has it.
pub fn fresh() -> RequestLog {
    let Some(mut old) = SPARE.with(Cell::take) else {
        return RequestLog::default();
    };
    let emptied = |s: &mut String| {
        let mut s = std::mem::take(s);
        s.clear();
        s
    };
    RequestLog {
        method: emptied(&mut old.method),
        uri: emptied(&mut old.uri),
        protocol: emptied(&mut old.protocol),
        remote_addr: emptied(&mut old.remote_addr),
        ..RequestLog::default()
    }
}

/// Keeps `log`'s strings for the thread's next request (call it on request threads only).
pub fn recycle(log: RequestLog) {
    if [&log.method, &log.uri, &log.protocol, &log.remote_addr]
        .iter()
        .any(|s| s.capacity() > KEEP_AT_MOST)
    {
        return;
    }
    SPARE.with(|spare| spare.set(Some(Box::new(log))));
}

/// `*into` = `bytes` as text (invalid UTF-8 replaced), in `into`'s allocation.
pub fn set_lossy(into: &mut String, bytes: &[u8]) {
    into.clear();
    into.push_str(&String::from_utf8_lossy(bytes));
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
