//! HTTP/1.x requests as `http-socket` receives them straight from clients (reference §5.2):
//! the request head ([`parse_request_head`]), chunked request bodies ([`ChunkedDecoder`]) and
//! the CGI variables a WSGI environ is built from ([`cgi_vars`]).
//!
//! The parser is strict where leniency lets two parsers disagree about where a request ends
//! (request smuggling, RFC 9112 §11.2):
//! - every line must end in CRLF; a bare LF anywhere in the head or in chunk framing is a
//!   400, never a line ending;
//! - obs-fold (a header line starting with SP/HTAB) is a 400, and so is whitespace between a
//!   header name and its colon;
//! - `Content-Length` together with `Transfer-Encoding` is a 400, as are several differing or
//!   non-numeric `Content-Length` values and `Transfer-Encoding` on an HTTP/1.0 request;
//! - `Transfer-Encoding` whose last coding is not `chunked` is a 400 (RFC 9112 §6.3); with
//!   `chunked` last, any other coding is a 501, and `chunked` twice a 400;
//! - a second `Host` or `Content-Type` header is a 400 (a missing `Host` is accepted, as
//!   uWSGI does, for old health checks);
//! - the request target `*` is accepted only with OPTIONS;
//! - a chunk-size line has no whitespace after the size unless an extension follows.
//!
//! Nothing here reads a socket; parsed values borrow the caller's buffer.

mod cgi;
mod chunked;
mod head;

pub use cgi::cgi_vars;
pub(crate) use cgi::percent_decode;
pub use chunked::{ChunkedDecoder, Decoded, MAX_TRAILERS};
pub use head::{parse_request_head, MAX_HEADERS};

use thiserror::Error;

/// The HTTP versions served. Anything else in a request line is a 505.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// The protocol name as written in a request or status line, e.g. `HTTP/1.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
        }
    }
}

/// One request header line, with optional whitespace around the value removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBodyFraming {
    /// No body: no framing header, or `Content-Length: 0`.
    None,
    /// Exactly this many bytes (never 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`; decode with [`ChunkedDecoder`].
    Chunked,
}

/// A parsed request line and header section, borrowing the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead<'a> {
    pub method: &'a [u8],
    /// The request target exactly as sent (`REQUEST_URI`).
    pub target: &'a [u8],
    /// The raw, still percent-encoded path: the target before `?`, without the scheme and
    /// authority of an absolute-form target. Empty for `*` and authority-form targets.
    pub path: &'a [u8],
    /// The target after the first `?`, possibly empty.
    pub query: &'a [u8],
    pub version: Version,
    /// Header lines in the order received; names keep their case.
    pub headers: Vec<Header<'a>>,
    pub body: RequestBodyFraming,
    /// Whether the connection may serve another request after this one (HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request (RFC 9110 §10.1.1 says to ignore it
    /// from HTTP/1.0 clients).
    pub expect_continue: bool,
    /// Bytes of the buffer the head occupies, including skipped leading empty lines and the
    /// final CRLFCRLF; the body starts here.
    pub len: usize,
}

impl<'a> RequestHead<'a> {
    /// The value of the first header with this name (ASCII case-insensitive).
    pub fn header(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value)
    }
}

/// Why a request head or chunked body was refused. Every variant means: answer with
/// [`ParseHttpError::status`] if nothing has been sent yet, then close the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseHttpError {
    #[error("request line is longer than {max} bytes")]
    RequestLineTooLong { max: usize },
    #[error("request head is longer than {max} bytes")]
    HeadTooLarge { max: usize },
    #[error("more than {max} request headers")]
    TooManyHeaders { max: usize },
    #[error("bare LF line ending at byte {offset} (lines must end in CRLF)")]
    BareLf { offset: usize },
    #[error("invalid method in request line")]
    InvalidMethod,
    #[error("malformed request line")]
    InvalidRequestLine,
    #[error("invalid request target")]
    InvalidTarget,
    #[error("invalid HTTP version in request line")]
    InvalidVersion,
    #[error("unsupported HTTP version `{version}`")]
    UnsupportedVersion { version: String },
    #[error("folded header line (obs-fold) on line {line}")]
    ObsFold { line: usize },
    #[error("invalid header name on line {line}")]
    InvalidHeaderName { line: usize },
    #[error("invalid character in the value of header `{name}`")]
    InvalidHeaderValue { name: String },
    #[error("invalid `Content-Length` `{value}`")]
    InvalidContentLength { value: String },
    #[error("several differing `Content-Length` headers")]
    ConflictingContentLength,
    #[error("both `Content-Length` and `Transfer-Encoding` are set")]
    ContentLengthWithTransferEncoding,
    #[error("unsupported transfer coding `{coding}` (only `chunked` is)")]
    UnsupportedTransferEncoding { coding: String },
    #[error("malformed `Transfer-Encoding` `{value}`")]
    InvalidTransferEncoding { value: String },
    #[error("`Transfer-Encoding` on an HTTP/1.0 request")]
    TransferEncodingOnHttp10,
    #[error("several `Host` headers")]
    DuplicateHost,
    #[error("several `Content-Type` headers")]
    DuplicateContentType,
    #[error("request target `*` with a method other than OPTIONS")]
    AsteriskWithoutOptions,
    #[error("`Transfer-Encoding` `{value}` does not end in `chunked`")]
    ChunkedNotLast { value: String },
    #[error("invalid chunk size line")]
    InvalidChunkSize,
    #[error("chunk size does not fit in 64 bits")]
    ChunkSizeOverflow,
    #[error("chunk size line or trailer line is longer than {max} bytes")]
    ChunkLineTooLong { max: usize },
    #[error("chunk data is not followed by CRLF")]
    MissingChunkTerminator,
    #[error("invalid character in a chunked trailer")]
    InvalidTrailer,
    #[error("more than {max} chunked trailer lines")]
    TooManyTrailers { max: usize },
    #[error("chunked decoder used after an error")]
    DecoderFailed,
}

impl ParseHttpError {
    /// The response status to send before closing.
    pub fn status(&self) -> u16 {
        use ParseHttpError::*;
        match self {
            RequestLineTooLong { .. } => 414,
            HeadTooLarge { .. } | TooManyHeaders { .. } => 431,
            UnsupportedTransferEncoding { .. } => 501,
            UnsupportedVersion { .. } => 505,
            BareLf { .. }
            | InvalidMethod
            | InvalidRequestLine
            | InvalidTarget
            | InvalidVersion
            | ObsFold { .. }
            | InvalidHeaderName { .. }
            | InvalidHeaderValue { .. }
            | InvalidContentLength { .. }
            | ConflictingContentLength
            | ContentLengthWithTransferEncoding
            | InvalidTransferEncoding { .. }
            | TransferEncodingOnHttp10
            | DuplicateHost
            | DuplicateContentType
            | AsteriskWithoutOptions
            | ChunkedNotLast { .. }
            | InvalidChunkSize
            | ChunkSizeOverflow
            | ChunkLineTooLong { .. }
            | MissingChunkTerminator
            | InvalidTrailer
            | TooManyTrailers { .. }
            | DecoderFailed => 400,
        }
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
