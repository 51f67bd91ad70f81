//! Sans-I/O codecs for the wire protocols kaiser speaks: the uwsgi binary packet
//! ([`uwsgi`]), HTTP/1.1 requests ([`http`]), HTTP responses for both ([`response`]), the
//! default request log line ([`log`]) and Prometheus' text exposition ([`prometheus`]).
//!
//! Nothing here touches a socket, a file, a clock or Python, and nothing here imports another
//! module of this crate: every function maps bytes to values or values to bytes, so it can be
//! unit-tested, property-tested and fuzzed alone. Parsers borrow the caller's buffer instead
//! of copying, and say "need more bytes" with `Ok(None)` rather than blocking.

pub mod http;
pub mod log;
pub mod prometheus;
pub mod response;
mod syntax;
pub mod uwsgi;
