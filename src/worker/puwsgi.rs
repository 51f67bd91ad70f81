//! Persistent uwsgi (`puwsgi-socket`): uwsgi packets one after another on one connection.
//!
//! A request is parsed like any uwsgi packet (`ParsedHead::Puwsgi`) and served on the one
//! request path; what differs is only that its connection is kept:
//! - a request's body is `CONTENT_LENGTH` bytes right after its packet, and the next packet
//!   follows the body. A body the app did not read is drained before the next packet is
//!   parsed, or the connection closes (the exchange's `into_parts`). uWSGI's puwsgi has no
//!   request bodies at all and parses whatever follows a packet as the next packet, which lets
//!   a body smuggle a packet in (unbit/uwsgi#2336); here a body is always a body.
//! - the response is what uWSGI writes on a puwsgi socket, the same bytes as over `socket`
//!   (an HTTP status line, the headers, the body), with nothing framing it: the client finds
//!   its end by `Content-Length`. So the connection is kept only after a response whose
//!   length is known (the app's `Content-Length`, a body given whole, or no body: HEAD, 204,
//!   304); any other response ends when the connection closes, as over `socket`. It is never
//!   chunked: a uwsgi client does not expect it.
//! - between requests the connection is parked like an HTTP keep-alive one (other
//!   connections get their turn), closed when idle for `socket-timeout` (uWSGI waits that
//!   long for the next packet), and closed when the worker stops (`accept::stop_accepting`);
//!   a request already under way is answered first.
//! - a malformed packet closes its connection only (`serve::refuse`).
//!
//! It does not parse packets (`protocol::uwsgi`) or write responses (`exchange/`).

use std::time::Duration;

use super::Shared;
use crate::config::Protocol;

/// How long a connection of `listener` may wait for its next request: `socket-timeout` on a
/// `puwsgi-socket`, as uWSGI's `uwsgi_proto_puwsgi_accept` waits for the next packet; the
/// HTTP keep-alive timeout elsewhere.
pub(super) fn idle_timeout(shared: &Shared, listener: usize) -> Duration {
    match shared.listeners[listener].protocol {
        Protocol::Puwsgi => shared.settings.socket_timeout,
        _ => shared.settings.keepalive_timeout,
    }
}
