//! `enable-proxy-protocol` on HTTP sockets: before a connection's first request, a PROXY
//! header (v1 or v2, parsed by `protocol::proxy`) is taken off its bytes and the client it
//! names becomes the connection's REMOTE_ADDR and REMOTE_PORT. As in uWSGI, the header is
//! optional: a connection that starts with a request is served as it is.
//!
//! It must not read the socket itself: `serve.rs` reads, this only looks at what was read.

use super::conn::Conn;
use super::Shared;
use crate::config::Protocol;
use crate::protocol::proxy::{self, Proxied};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Parse the request: no header is expected, or it was taken off.
    Ready,
    /// The bytes so far could still be a header: read more first.
    NeedMore,
    /// A malformed header: close the connection.
    Invalid,
}

pub(crate) fn strip(shared: &Shared, conn: &mut Conn, protocol: Protocol) -> Step {
    if conn.proxy_checked
        || !conn.fresh
        || protocol != Protocol::Http
        || !shared.settings.options.proxy_protocol
    {
        return Step::Ready;
    }
    if conn.buf.is_empty() {
        return Step::NeedMore;
    }
    match proxy::parse(&conn.buf) {
        Ok(Proxied::NeedMore) => Step::NeedMore,
        Ok(Proxied::Absent) => {
            conn.proxy_checked = true;
            Step::Ready
        }
        Ok(Proxied::Header { len, source }) => {
            conn.proxy_checked = true;
            conn.buf.drain(..len);
            if let Some(source) = source {
                tracing::trace!(peer = %conn.peer_addr, client = %source, "PROXY header");
                conn.peer_addr = source.ip().to_string();
                conn.peer_port = source.port().to_string();
            }
            Step::Ready
        }
        Err(err) => {
            tracing::warn!(peer = %conn.peer_addr, error = %err, "bad PROXY header; closing the connection");
            Step::Invalid
        }
    }
}
