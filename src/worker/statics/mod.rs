//! Static files served by the worker itself (`static-map`, `static-map2`, `check-static`),
//! before and without Python: no GIL, no WSGI environ, a `sendfile(2)` body.
//!
//! A request is looked up in uWSGI's order (every `check-static`, then `static-map`, then
//! `static-map2`); a path that names no file falls through to the app, as in uWSGI. A path
//! that tries to leave its root (`..` above it, a NUL or a backslash, a symlink out of it
//! that `static-safe` does not allow) is answered 403 and never reaches the app (uWSGI logs
//! "security error" and passes it on). Names are resolved with `openat2(RESOLVE_BENEATH)`
//! under a handle on the root opened once, so no check-then-open race can lead outside.
//!
//! The body is sent from the request thread while the socket takes it; what a client does not
//! take at once goes to the worker's offload threads (`offload.rs`), so a slow client never
//! holds a request thread.
//!
//! The pure decisions (path folding, MIME types, 304/206/416) live in
//! `protocol::static_files`; this module does the file system and socket half. It does not
//! touch Python or the WSGI exchange.

//!
//! Looking a request up (maps, roots, index files, variants, `Expires`) is `lookup.rs`;
//! answering it (the head, the body, offloading, accounting) is `answer.rs`; with internal
//! routes configured, the request table runs before the answer, as in uWSGI (`routed.rs`);
//! over FastCGI the answer goes in records (`fastcgi.rs`).

mod answer;
mod fastcgi;
mod lookup;
mod routed;

pub use answer::{serve, Transfer};
pub use lookup::StaticFiles;
