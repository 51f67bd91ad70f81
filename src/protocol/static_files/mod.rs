//! The pure half of static file serving (`static-map`, `check-static`, …): which file a
//! request path names, its `Content-Type`, and what to answer given the file's size and
//! modification time and the request's conditional and range headers.
//!
//! Nothing here opens a file, reads a clock or touches a socket: the worker
//! (`worker/statics/`) resolves paths on the file system and sends the bytes, and passes
//! the facts (a `stat`, the time now) in. That keeps every security and HTTP decision
//! testable from tables of cases.

pub mod conditional;
pub mod date;
pub mod mime;
pub mod path;
