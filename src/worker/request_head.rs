//! A parsed request head from any protocol: an HTTP request head (`http-socket`), a uwsgi
//! packet (`socket`, behind nginx's `uwsgi_pass`), or an SCGI or FastCGI request read into
//! one. What differs between them is how the head is parsed and where each fact is found;
//! everything after parsing (static files, the app, the log line, the accounting) asks this
//! one type.
//!
//! It does not read sockets or decide anything about the request: it only answers questions
//! about the bytes parsed.

use std::borrow::Cow;

use crate::config::Protocol;
use crate::protocol::http::{self, ChunkedDecoder, RequestBodyFraming, Version};
use crate::protocol::{fastcgi, uwsgi};

use super::exchange::RequestBody;

pub(super) enum ParsedHead<'a> {
    Http(http::RequestHead<'a>),
    Uwsgi(uwsgi::Packet<'a>),
    /// An SCGI request (`scgi-socket`), read into a uwsgi packet: the same CGI variables.
    /// `true`: `scgi-nph-socket`.
    Scgi(uwsgi::Packet<'a>, bool),
    /// A uwsgi packet on a `puwsgi-socket`, whose connection carries further requests.
    Puwsgi(uwsgi::Packet<'a>),
    /// A FastCGI request (`fastcgi-socket`): its params read into a uwsgi packet, its body
    /// still in stdin records. `true`: `fastcgi-nph-socket`.
    FastCgi(fastcgi::Request<'a>, bool),
}

impl<'a> ParsedHead<'a> {
    pub fn protocol(&self) -> Protocol {
        match self {
            Self::Http(_) => Protocol::Http,
            Self::Uwsgi(_) => Protocol::Uwsgi,
            Self::Scgi(_, nph) => Protocol::Scgi { nph: *nph },
            Self::Puwsgi(_) => Protocol::Puwsgi,
            Self::FastCgi(_, nph) => Protocol::FastCgi { nph: *nph },
        }
    }

    /// Bytes of the read buffer the head occupies; the body starts there.
    pub fn len(&self) -> usize {
        match self {
            Self::Http(head) => head.len,
            Self::Uwsgi(packet)
            | Self::Scgi(packet, _)
            | Self::Puwsgi(packet)
            | Self::FastCgi(fastcgi::Request { packet, .. }, _) => packet.len,
        }
    }

    /// The request line's `(N vars in M bytes)` for a request whose CGI variables are not
    /// built (static files; over uwsgi they are the packet's own).
    pub fn log_size(&self) -> (usize, usize) {
        match self {
            Self::Http(head) => (head.headers.len() + 8, head.len),
            Self::Uwsgi(packet) | Self::Scgi(packet, _) | Self::Puwsgi(packet) => {
                (packet.vars.len(), packet.len - uwsgi::HEADER_LEN)
            }
            // The params' size, without the records' framing.
            Self::FastCgi(request, _) => (
                request.packet.vars.len(),
                usize::from(request.packet.header.size),
            ),
        }
    }

    pub fn method(&self) -> &'a [u8] {
        match self {
            Self::Http(head) => head.method,
            Self::Uwsgi(packet)
            | Self::Scgi(packet, _)
            | Self::Puwsgi(packet)
            | Self::FastCgi(fastcgi::Request { packet, .. }, _) => {
                packet.get(b"REQUEST_METHOD").unwrap_or(b"")
            }
        }
    }

    /// The FastCGI request id, over FastCGI.
    pub fn fastcgi_id(&self) -> Option<u16> {
        match self {
            Self::FastCgi(request, _) => Some(request.begin.id),
            _ => None,
        }
    }

    pub fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }

    /// The request target as sent (`REQUEST_URI`; nginx may send only `PATH_INFO`).
    pub fn uri(&self) -> &'a [u8] {
        match self {
            Self::Http(head) => head.target,
            Self::Uwsgi(packet)
            | Self::Scgi(packet, _)
            | Self::Puwsgi(packet)
            | Self::FastCgi(fastcgi::Request { packet, .. }, _) => packet
                .get(b"REQUEST_URI")
                .or_else(|| packet.get(b"PATH_INFO"))
                .unwrap_or(b""),
        }
    }

    /// The raw path: still percent-encoded over HTTP, as the front end decoded it over uwsgi.
    pub fn raw_path(&self) -> &'a [u8] {
        match self {
            Self::Http(head) => head.path,
            Self::Uwsgi(packet)
            | Self::Scgi(packet, _)
            | Self::Puwsgi(packet)
            | Self::FastCgi(fastcgi::Request { packet, .. }, _) => {
                packet.get(b"PATH_INFO").unwrap_or(b"")
            }
        }
    }

    /// `PATH_INFO`, percent-decoded.
    pub fn path_info(&self) -> Cow<'a, [u8]> {
        match self {
            Self::Http(head) => http::percent_decode(head.path),
            Self::Uwsgi(packet)
            | Self::Scgi(packet, _)
            | Self::Puwsgi(packet)
            | Self::FastCgi(fastcgi::Request { packet, .. }, _) => {
                Cow::Borrowed(packet.get(b"PATH_INFO").unwrap_or(b""))
            }
        }
    }

    /// `SERVER_PROTOCOL` as the request names it.
    pub fn protocol_name(&self) -> &'a [u8] {
        match self {
            Self::Http(head) => head.version.as_str().as_bytes(),
            Self::Uwsgi(packet)
            | Self::Scgi(packet, _)
            | Self::Puwsgi(packet)
            | Self::FastCgi(fastcgi::Request { packet, .. }, _) => {
                packet.get(b"SERVER_PROTOCOL").unwrap_or(b"HTTP/1.0")
            }
        }
    }

    pub fn version(&self) -> Version {
        match self.protocol_name() {
            b"HTTP/1.1" => Version::Http11,
            _ => Version::Http10,
        }
    }

    /// Whether the client wants the connection kept for another request. Over uwsgi the
    /// response is close-delimited, as nginx's `uwsgi_pass` expects; a `puwsgi-socket`
    /// connection is kept by definition (see `puwsgi.rs`); over FastCGI the begin record says
    /// (`FCGI_KEEP_CONN`, nginx's `fastcgi_keep_conn on`).
    pub fn keep_alive(&self) -> bool {
        match self {
            Self::Http(head) => head.keep_alive,
            Self::Puwsgi(_) => true,
            Self::Uwsgi(_) | Self::Scgi(..) => false,
            Self::FastCgi(request, _) => request.begin.keep_conn,
        }
    }

    pub fn expect_continue(&self) -> bool {
        match self {
            Self::Http(head) => head.expect_continue,
            Self::Uwsgi(_) | Self::Scgi(..) | Self::Puwsgi(_) | Self::FastCgi(..) => false,
        }
    }

    /// Whether a body follows the head.
    pub fn has_body(&self) -> bool {
        !matches!(self.body_framing(), RequestBodyFraming::None)
    }

    fn body_framing(&self) -> RequestBodyFraming {
        match self {
            Self::Http(head) => head.body,
            Self::Uwsgi(packet)
            | Self::Scgi(packet, _)
            | Self::Puwsgi(packet)
            | Self::FastCgi(fastcgi::Request { packet, .. }, _) => match packet.content_length {
                0 => RequestBodyFraming::None,
                length => RequestBodyFraming::Length(length),
            },
        }
    }

    /// The request body, still to be read; a chunked one decodes lines of at most
    /// `buffer_size` bytes.
    pub fn body(&self, buffer_size: usize) -> RequestBody {
        if let Self::FastCgi(request, _) = self {
            // nginx sends CONTENT_LENGTH empty when there is no body.
            let declared = match request.packet.get(b"CONTENT_LENGTH") {
                None | Some(b"") => None,
                Some(_) => Some(request.packet.content_length),
            };
            return RequestBody::FastCgi(fastcgi::StdinDecoder::new(request.begin.id, declared));
        }
        match self.body_framing() {
            RequestBodyFraming::None => RequestBody::None,
            RequestBodyFraming::Length(length) => RequestBody::Length(length),
            RequestBodyFraming::Chunked => RequestBody::Chunked(ChunkedDecoder::new(buffer_size)),
        }
    }

    /// A request header by its lowercase HTTP name (`b"if-none-match"`): the header over
    /// HTTP, its `HTTP_*` variable over uwsgi.
    pub fn header(&self, name: &[u8]) -> Option<&'a [u8]> {
        match self {
            Self::Http(head) => head.header(name),
            Self::Uwsgi(packet)
            | Self::Scgi(packet, _)
            | Self::Puwsgi(packet)
            | Self::FastCgi(fastcgi::Request { packet, .. }, _) => packet
                .vars
                .iter()
                .find(|(key, _)| is_cgi_header(key, name))
                .map(|&(_, value)| value),
        }
    }

    /// A variable only a front end sends (`REMOTE_ADDR`, `REMOTE_USER`, `DOCUMENT_ROOT`):
    /// `None` over HTTP, where the worker knows these itself or has none.
    pub fn front_end_var(&self, name: &[u8]) -> Option<&'a [u8]> {
        match self {
            Self::Http(_) => None,
            Self::Uwsgi(packet)
            | Self::Scgi(packet, _)
            | Self::Puwsgi(packet)
            | Self::FastCgi(fastcgi::Request { packet, .. }, _) => packet.get(name),
        }
    }
}

/// Whether `key` is the CGI variable of header `name` (`HTTP_IF_NONE_MATCH` for
/// `if-none-match`).
fn is_cgi_header(key: &[u8], name: &[u8]) -> bool {
    let Some(rest) = key.strip_prefix(b"HTTP_") else {
        return false;
    };
    rest.len() == name.len()
        && rest.iter().zip(name).all(|(&k, &n)| {
            let n = if n == b'-' {
                b'_'
            } else {
                n.to_ascii_uppercase()
            };
            k == n
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_is_found_by_its_cgi_name_over_uwsgi() {
        let check = |key: &[u8], name: &[u8], expected: bool| {
            assert_eq!(is_cgi_header(key, name), expected, "{key:?} for {name:?}");
        };
        check(b"HTTP_IF_NONE_MATCH", b"if-none-match", true);
        check(b"HTTP_HOST", b"host", true);
        check(b"HTTP_HOSTS", b"host", false);
        check(b"CONTENT_TYPE", b"content-type", false);
        check(b"HTTP_X_FORWARDED_FOR", b"x-forwarded-for", true);
    }
}
