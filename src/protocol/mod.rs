//! Sans-I/O codecs for the wire protocols kaiser speaks: the uwsgi binary packet
//! ([`uwsgi`]), HTTP/1.1 requests ([`http`]), HTTP responses for both ([`response`]), SCGI
//! ([`scgi`]) and FastCGI ([`fastcgi`]) requests, the default request log line ([`log`]), the
//! PROXY protocol header ([`proxy`]), the decisions of static file serving
//! ([`static_files`]) and Prometheus' text exposition ([`prometheus`]).
//!
//! Nothing here touches a socket, a file, a clock or Python, and nothing here imports another
//! module of this crate: every function maps bytes to values or values to bytes, so it can be
//! unit-tested, property-tested and fuzzed alone. Parsers borrow the caller's buffer instead
//! of copying, and say "need more bytes" with `Ok(None)` rather than blocking.

pub mod fastcgi;
pub mod http;
pub mod log;
pub mod log_format;
pub mod prometheus;
pub mod proxy;
pub mod response;
pub mod scgi;
pub mod spool;
pub mod static_files;
mod syntax;
pub mod uwsgi;
