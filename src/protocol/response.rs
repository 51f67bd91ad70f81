//! Serialising the app's response as HTTP/1.x, for `http-socket` clients and for nginx
//! behind `uwsgi_pass` alike (a modifier1 0 response has no uwsgi header, reference §5.1).
//!
//! The app's status and headers are untrusted: [`check_head`] refuses anything that could
//! inject a line and any `Content-Length` that is not one plain number, and [`write_head`]
//! assumes it was called. Body framing is decided here, not by the app: [`choose_framing`]
//! picks Content-Length, chunked or close, the app's hop-by-hop headers are dropped, and
//! exactly one `Content-Length`, written by kaiser, goes on the wire.

use std::fmt::Write as _;

use thiserror::Error;

use super::http::Version;
use super::syntax::{is_token, parse_decimal, trim_ows};

/// Why the app's status or headers cannot be sent. The worker answers 500 instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResponseError {
    #[error(
        "invalid status `{status}` (expected three digits, a space and a reason, like `200 OK`)"
    )]
    InvalidStatus { status: String },
    #[error("invalid response header name `{name}`")]
    InvalidHeaderName { name: String },
    #[error("response header `{name}` has CR, LF or NUL in its value")]
    InvalidHeaderValue { name: String },
    #[error("invalid response `Content-Length` `{value}`")]
    InvalidContentLength { value: String },
    #[error("conflicting response `Content-Length` values `{first}` and `{second}`")]
    ConflictingContentLength { first: u64, second: u64 },
}

/// What [`check_head`] found in the app's status and headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckedHead {
    /// The status code, 100–999.
    pub status: u16,
    /// The app's `Content-Length`, if it set one.
    pub content_length: Option<u64>,
}

/// Checks the app's status and headers before anything is sent: the status and every
/// header as [`parse_status`] and [`validate_header`] do, and the `Content-Length` headers
/// as [`content_length`] does. Any failure means a 500 instead of this head.
pub fn check_head<'a>(
    status: &[u8],
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
) -> Result<CheckedHead, ResponseError> {
    let status = parse_status(status)?;
    for (name, value) in headers.clone() {
        validate_header(name, value)?;
    }
    Ok(CheckedHead {
        status,
        content_length: content_length(headers)?,
    })
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Validates a WSGI status such as `200 OK` and returns its code (100–999).
///
/// PEP 3333 requires a reason phrase after the space; an empty one (`"200 "`) is accepted
/// because the status line stays valid HTTP.
pub fn parse_status(status: &[u8]) -> Result<u16, ResponseError> {
    let invalid = || ResponseError::InvalidStatus {
        status: lossy(status),
    };
    let [hundreds @ b'1'..=b'9', tens @ b'0'..=b'9', units @ b'0'..=b'9', b' ', reason @ ..] =
        status
    else {
        return Err(invalid());
    };
    if reason.iter().any(|&b| matches!(b, b'\r' | b'\n' | b'\0')) {
        return Err(invalid());
    }
    Ok(u16::from(hundreds - b'0') * 100 + u16::from(tens - b'0') * 10 + u16::from(units - b'0'))
}

/// Validates one of the app's response headers: the name must be a token, the value must not
/// contain CR, LF or NUL (header injection).
pub fn validate_header(name: &[u8], value: &[u8]) -> Result<(), ResponseError> {
    if !is_token(name) {
        return Err(ResponseError::InvalidHeaderName { name: lossy(name) });
    }
    if value.iter().any(|&b| matches!(b, b'\r' | b'\n' | b'\0')) {
        return Err(ResponseError::InvalidHeaderValue { name: lossy(name) });
    }
    Ok(())
}

/// The app's `Content-Length`, if it set one: digits only (no sign, no list), surrounding
/// whitespace ignored. Repeated equal values are one value; differing or non-numeric ones
/// are an error (the worker answers 500 rather than send a body the client would cut at the
/// wrong place).
pub fn content_length<'a>(
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> Result<Option<u64>, ResponseError> {
    let mut length: Option<u64> = None;
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case(b"content-length") {
            continue;
        }
        let value = trim_ows(value);
        let parsed = parse_decimal(value).ok_or_else(|| ResponseError::InvalidContentLength {
            value: lossy(value),
        })?;
        match length {
            Some(first) if first != parsed => {
                return Err(ResponseError::ConflictingContentLength {
                    first,
                    second: parsed,
                })
            }
            _ => length = Some(parsed),
        }
    }
    Ok(length)
}

/// How the response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// The app's `Content-Length`; the body must be exactly this long.
    Length(u64),
    /// `Transfer-Encoding: chunked`: use [`write_chunk`] and [`write_last_chunk`].
    Chunked,
    /// The body ends when the connection closes.
    Close,
    /// No body may be sent (1xx, 204, 304, or a response to HEAD).
    NoBody,
}

/// Decides the body framing and whether the connection stays open afterwards.
///
/// `content_length` is the app's `Content-Length`, if any; `chunked_allowed` is false for the
/// uwsgi protocol, whose responses nginx reads to the end of the connection. For `NoBody` the
/// app's `Content-Length` (the length a GET would have had) is sent unchanged.
pub fn choose_framing(
    version: Version,
    is_head: bool,
    status: u16,
    content_length: Option<u64>,
    request_keep_alive: bool,
    chunked_allowed: bool,
) -> (ResponseFraming, bool) {
    if is_head || (100..200).contains(&status) || status == 204 || status == 304 {
        return (ResponseFraming::NoBody, request_keep_alive);
    }
    match content_length {
        Some(length) => (ResponseFraming::Length(length), request_keep_alive),
        None if version == Version::Http11 && chunked_allowed => {
            (ResponseFraming::Chunked, request_keep_alive)
        }
        None => (ResponseFraming::Close, false),
    }
}

/// Headers the app may not set because they belong to this hop, which the server frames.
fn is_hop_by_hop(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"connection")
        || name.eq_ignore_ascii_case(b"transfer-encoding")
        || name.eq_ignore_ascii_case(b"keep-alive")
}

/// Appends the status line, the app's headers and the framing headers.
///
/// `status` and `headers` must have passed [`check_head`]. The app's `Connection`,
/// `Keep-Alive`, `Transfer-Encoding` and `Content-Length` headers are dropped. The framing
/// headers added are one `Content-Length` (the framing's length, or for a response without
/// a body the app's own value, which [`check_head`] made sure is one number),
/// `Transfer-Encoding: chunked` for a chunked body (RFC 9112 §6.3 forbids a length with it),
/// `Connection: close` when the connection will close, and `Connection: keep-alive` when an
/// HTTP/1.0 connection stays open.
pub fn write_head<'h>(
    out: &mut Vec<u8>,
    version: Version,
    status: &[u8],
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
    framing: &ResponseFraming,
    keep_alive: bool,
) {
    write_head_with(out, version, status, headers, framing, keep_alive, true);
}

/// [`write_head`] for a uwsgi-protocol connection, which carries one request and closes after
/// it: no `Connection` header at all, as uWSGI sends none (`proto/base.c`). nginx drops an
/// upstream's `Connection` header anyway, after parsing, looking up and hiding it: about 1,500
/// of the 24,700 instructions nginx spends per proxied Flask request (bench/README.md).
pub fn write_uwsgi_head<'h>(
    out: &mut Vec<u8>,
    version: Version,
    status: &[u8],
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
    framing: &ResponseFraming,
) {
    write_head_with(out, version, status, headers, framing, false, false);
}

fn write_head_with<'h>(
    out: &mut Vec<u8>,
    version: Version,
    status: &[u8],
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
    framing: &ResponseFraming,
    keep_alive: bool,
    announce_connection: bool,
) {
    let headers_len: usize = headers
        .clone()
        .map(|(name, value)| name.len() + value.len() + 4)
        .sum();
    out.reserve(16 + status.len() + headers_len + 32);
    out.extend_from_slice(version.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status);
    out.extend_from_slice(b"\r\n");
    let mut app_length = None;
    for (name, value) in headers {
        if is_hop_by_hop(name) {
            continue;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            app_length = app_length.or_else(|| parse_decimal(trim_ows(value)));
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    let length = match framing {
        ResponseFraming::Length(length) => Some(*length),
        ResponseFraming::NoBody => app_length,
        ResponseFraming::Chunked | ResponseFraming::Close => None,
    };
    if let Some(length) = length {
        let mut digits = [0u8; 20];
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(decimal_digits(length, &mut digits));
        out.extend_from_slice(b"\r\n");
    }
    if *framing == ResponseFraming::Chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if announce_connection && !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if announce_connection && version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// `value` in decimal, written at the end of `buf` (the one number formatted per head,
/// without `fmt`'s machinery).
fn decimal_digits(mut value: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &buf[start..];
        }
    }
}

/// Appends one chunk. Nothing for empty data, which would read as the last chunk.
pub fn write_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut size = [0u8; 16];
    let digits = hex_digits(data.len() as u64, &mut size);
    out.reserve(digits.len() + data.len() + 4);
    out.extend_from_slice(digits);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

fn hex_digits(mut value: u64, buf: &mut [u8; 16]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b"0123456789abcdef"[(value & 0xf) as usize];
        value >>= 4;
        if value == 0 {
            return &buf[start..];
        }
    }
}

/// Appends the last chunk, without trailers.
pub fn write_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

/// A complete plain-text reply that closes the connection, for errors the app never sees
/// (400, 413, 431, 500, 504, …).
pub fn simple_response(status: u16, reason: &str, body: &str) -> Vec<u8> {
    let mut head = String::with_capacity(96 + body.len());
    write!(
        head,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("writing to a String cannot fail");
    head.into_bytes()
}

/// The standard reason phrase for the statuses kaiser itself sends (RFC 9110 §15).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// The interim response to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use Version::*;

    #[test]
    fn decimal_lengths() {
        for value in [0, 7, 10, 99, 100, 1234567, u64::MAX] {
            let mut buf = [0u8; 20];
            assert_eq!(
                decimal_digits(value, &mut buf),
                value.to_string().as_bytes()
            );
        }
    }

    #[test]
    fn statuses() {
        let check = |status: &str, expected: Result<u16, ()>| {
            let got = parse_status(status.as_bytes()).map_err(|error| {
                assert_eq!(
                    error,
                    ResponseError::InvalidStatus {
                        status: status.into()
                    }
                );
            });
            assert_eq!(got, expected, "status {status:?}");
        };
        check("200 OK", Ok(200));
        check("404 Not Found", Ok(404));
        check("100 Continue", Ok(100));
        check("999 Custom", Ok(999));
        check("200 ", Ok(200));
        check("200 é\t", Ok(200));
        check("200", Err(()));
        check("200OK", Err(()));
        check("20 OK", Err(()));
        check("2000 OK", Err(()));
        check("099 Low", Err(()));
        check("abc OK", Err(()));
        check(" 200 OK", Err(()));
        check("", Err(()));
        check("200 OK\r\nX: y", Err(()));
        check("200 OK\n", Err(()));
        check("200 O\0K", Err(()));
    }

    #[test]
    fn headers() {
        let check = |name: &str, value: &str, expected: Result<(), ResponseError>| {
            assert_eq!(
                validate_header(name.as_bytes(), value.as_bytes()),
                expected,
                "header {name:?}: {value:?}"
            );
        };
        let bad_name = |name: &str| Err(ResponseError::InvalidHeaderName { name: name.into() });
        let bad_value = |name: &str| Err(ResponseError::InvalidHeaderValue { name: name.into() });
        check("Content-Type", "text/html; charset=utf-8", Ok(()));
        check("X-Empty", "", Ok(()));
        check("X-Tab", "a\tb", Ok(()));
        check("X-Utf8", "é", Ok(()));
        check("", "v", bad_name(""));
        check("X Y", "v", bad_name("X Y"));
        check("X:", "v", bad_name("X:"));
        check("X\r\nSet-Cookie", "v", bad_name("X\r\nSet-Cookie"));
        check("X", "v\r\nSet-Cookie: a=b", bad_value("X"));
        check("X", "v\n", bad_value("X"));
        check("X", "v\r", bad_value("X"));
        check("X", "v\0", bad_value("X"));
    }

    /// The status and headers as the worker hands them to [`check_head`].
    fn checked(status: &str, headers: &[(&str, &str)]) -> Result<CheckedHead, ResponseError> {
        check_head(
            status.as_bytes(),
            headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        )
    }

    #[test]
    fn content_lengths() {
        let check = |headers: &[(&str, &str)], expected: Result<Option<u64>, ResponseError>| {
            let got = checked("200 OK", headers).map(|head| head.content_length);
            assert_eq!(got, expected, "headers {headers:?}");
        };
        let invalid = |value: &str| {
            Err(ResponseError::InvalidContentLength {
                value: value.into(),
            })
        };
        let conflicting =
            |first, second| Err(ResponseError::ConflictingContentLength { first, second });
        check(&[], Ok(None));
        check(&[("Content-Type", "x")], Ok(None));
        check(&[("Content-Length", "12")], Ok(Some(12)));
        check(&[("content-length", " 12 ")], Ok(Some(12)));
        check(&[("Content-Length", "0")], Ok(Some(0)));
        check(&[("Content-Length", "007")], Ok(Some(7)));
        check(
            &[("Content-Length", "18446744073709551615")],
            Ok(Some(u64::MAX)),
        );
        check(
            &[("Content-Length", "12"), ("CONTENT-LENGTH", "12")],
            Ok(Some(12)),
        );
        check(
            &[
                ("Content-Length", "12"),
                ("X", "1"),
                ("Content-Length", "012"),
            ],
            Ok(Some(12)),
        );
        check(
            &[("Content-Length", "12"), ("Content-Length", "13")],
            conflicting(12, 13),
        );
        check(
            &[
                ("Content-Length", "5"),
                ("Content-Length", "5"),
                ("Content-Length", "6"),
            ],
            conflicting(5, 6),
        );
        check(&[("Content-Length", "")], invalid(""));
        check(&[("Content-Length", "-1")], invalid("-1"));
        check(&[("Content-Length", "+12")], invalid("+12"));
        check(&[("Content-Length", "1e3")], invalid("1e3"));
        check(&[("Content-Length", "0x10")], invalid("0x10"));
        check(&[("Content-Length", "12, 12")], invalid("12, 12"));
        check(&[("Content-Length", "1 2")], invalid("1 2"));
        check(&[("Content-Length", "١٢")], invalid("١٢"));
        check(
            &[("Content-Length", "18446744073709551616")],
            invalid("18446744073709551616"),
        );
        // An invalid one after a valid one is still refused.
        check(
            &[("Content-Length", "12"), ("Content-Length", "abc")],
            invalid("abc"),
        );
    }

    #[test]
    fn checked_heads() {
        assert_eq!(
            checked("404 Not Found", &[("Content-Length", "3")]),
            Ok(CheckedHead {
                status: 404,
                content_length: Some(3)
            })
        );
        assert_eq!(
            checked("20 OK", &[]),
            Err(ResponseError::InvalidStatus {
                status: "20 OK".into()
            })
        );
        assert_eq!(
            checked("200 OK", &[("X", "a\r\nB: c"), ("Content-Length", "x")]),
            Err(ResponseError::InvalidHeaderValue { name: "X".into() })
        );
        assert_eq!(
            checked("200 OK", &[("Content-Length", "x"), ("X Y", "1")]),
            Err(ResponseError::InvalidHeaderName { name: "X Y".into() })
        );
    }

    #[test]
    fn framing() {
        let check = |args: (Version, bool, u16, Option<u64>, bool, bool),
                     expected: (ResponseFraming, bool)| {
            let (version, is_head, status, length, keep_alive, chunked) = args;
            assert_eq!(
                choose_framing(version, is_head, status, length, keep_alive, chunked),
                expected,
                "{args:?}"
            );
        };
        use ResponseFraming::*;
        check((Http11, false, 200, Some(5), true, true), (Length(5), true));
        check((Http11, false, 200, Some(0), true, true), (Length(0), true));
        check(
            (Http11, false, 200, Some(5), false, true),
            (Length(5), false),
        );
        check((Http11, false, 200, None, true, true), (Chunked, true));
        check((Http11, false, 200, None, false, true), (Chunked, false));
        check((Http11, false, 200, None, true, false), (Close, false));
        check(
            (Http11, false, 200, Some(5), false, false),
            (Length(5), false),
        );
        check((Http10, false, 200, None, true, true), (Close, false));
        check((Http10, false, 200, Some(5), true, true), (Length(5), true));
        check(
            (Http10, false, 200, Some(5), false, true),
            (Length(5), false),
        );
        check((Http11, true, 200, None, true, true), (NoBody, true));
        check((Http11, true, 200, Some(5), true, true), (NoBody, true));
        check((Http10, true, 200, None, false, false), (NoBody, false));
        check((Http11, false, 204, None, true, true), (NoBody, true));
        check((Http11, false, 304, Some(5), true, true), (NoBody, true));
        check((Http11, false, 101, None, true, true), (NoBody, true));
        check((Http11, false, 205, None, true, true), (Chunked, true));
    }

    #[test]
    fn heads() {
        let check = |version: Version,
                     headers: &[(&str, &str)],
                     framing: ResponseFraming,
                     keep_alive: bool,
                     expected: &str| {
            let headers: Vec<(&[u8], &[u8])> = headers
                .iter()
                .map(|(n, v)| (n.as_bytes(), v.as_bytes()))
                .collect();
            let mut out = b"previous".to_vec();
            write_head(
                &mut out,
                version,
                b"200 OK",
                headers.iter().copied(),
                &framing,
                keep_alive,
            );
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("previous{expected}"),
                "{version:?} {framing:?} {keep_alive}"
            );
        };
        use ResponseFraming::*;
        let length = [("Content-Type", "text/plain"), ("Content-Length", "5")];
        check(
            Http11,
            &length,
            Length(5),
            true,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n",
        );
        check(Http11, &length, Length(5), false, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\n");
        check(Http10, &length, Length(5), true, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n");
        check(Http10, &length, Length(5), false, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\n");
        check(
            Http11,
            &[("X", "1")],
            Chunked,
            true,
            "HTTP/1.1 200 OK\r\nX: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        check(
            Http11,
            &[("X", "1")],
            Close,
            false,
            "HTTP/1.1 200 OK\r\nX: 1\r\nConnection: close\r\n\r\n",
        );
        check(
            Http11,
            &length,
            NoBody,
            true,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n",
        );
        check(Http11, &[], NoBody, true, "HTTP/1.1 200 OK\r\n\r\n");
        // The app's hop-by-hop headers never reach the wire.
        let hop = [
            ("Connection", "keep-alive"),
            ("transfer-encoding", "chunked"),
            ("Keep-Alive", "timeout=5"),
            ("Set-Cookie", "a=b"),
            ("Set-Cookie", "c=d"),
        ];
        check(
            Http11,
            &hop,
            Close,
            false,
            "HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\nSet-Cookie: c=d\r\nConnection: close\r\n\r\n",
        );
        check(
            Http11,
            &[("Content-Length", "5")],
            Chunked,
            true,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        // Exactly one Content-Length, written by kaiser: repeated app values become one, a
        // length the framing knows is added, and a body-less response keeps the app's value.
        let twice = [
            ("Content-Length", " 05"),
            ("X", "1"),
            ("content-length", "5"),
        ];
        check(
            Http11,
            &twice,
            Length(5),
            true,
            "HTTP/1.1 200 OK\r\nX: 1\r\nContent-Length: 5\r\n\r\n",
        );
        check(
            Http11,
            &twice,
            NoBody,
            true,
            "HTTP/1.1 200 OK\r\nX: 1\r\nContent-Length: 5\r\n\r\n",
        );
        check(
            Http11,
            &[("X", "1")],
            Length(0),
            false,
            "HTTP/1.1 200 OK\r\nX: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        check(
            Http10,
            &twice,
            Close,
            false,
            "HTTP/1.0 200 OK\r\nX: 1\r\nConnection: close\r\n\r\n",
        );
    }

    proptest::proptest! {
        /// Whatever mix of Content-Length headers the app sends, a head that passes
        /// `check_head` goes out with exactly the one the framing calls for.
        #[test]
        fn one_content_length_on_the_wire(
            headers in proptest::collection::vec(proptest::sample::select(vec![
                ("Content-Length", "5"),
                ("content-length", " 5 "),
                ("Content-Length", "05"),
                ("Content-Length", "6"),
                ("Content-Length", "+5"),
                ("Content-Length", ""),
                ("Content-Type", "text/plain"),
                ("Transfer-Encoding", "chunked"),
            ]), 0..5),
            is_head in proptest::bool::ANY,
            known in proptest::option::of(0u64..10),
        ) {
            let headers: Vec<(&[u8], &[u8])> =
                headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
            let Ok(checked) = check_head(b"200 OK", headers.iter().copied()) else {
                return Ok(());
            };
            let length = checked.content_length.or(known);
            let (framing, keep_alive) =
                choose_framing(Http11, is_head, 200, length, true, true);
            let mut out = Vec::new();
            write_head(&mut out, Http11, b"200 OK", headers.iter().copied(), &framing, keep_alive);
            let text = String::from_utf8(out).unwrap();
            let lines: Vec<&str> = text
                .lines()
                .filter(|line| line.to_ascii_lowercase().starts_with("content-length:"))
                .collect();
            let expected = match framing {
                ResponseFraming::Length(n) => vec![format!("Content-Length: {n}")],
                ResponseFraming::NoBody => checked
                    .content_length
                    .map(|n| format!("Content-Length: {n}"))
                    .into_iter()
                    .collect(),
                ResponseFraming::Chunked | ResponseFraming::Close => vec![],
            };
            proptest::prop_assert_eq!(lines, expected, "{}", text);
        }
    }

    #[test]
    fn chunks() {
        let check = |data: &[u8], expected: &[u8]| {
            let mut out = Vec::new();
            write_chunk(&mut out, data);
            assert_eq!(out, expected, "chunk of {} bytes", data.len());
        };
        check(b"", b"");
        check(b"hello", b"5\r\nhello\r\n");
        check(
            &[b'x'; 26],
            &[b"1a\r\n".as_slice(), &[b'x'; 26], b"\r\n"].concat(),
        );
        check(
            &[b'x'; 4096],
            &[b"1000\r\n".as_slice(), &[b'x'; 4096], b"\r\n"].concat(),
        );
        let mut out = Vec::new();
        write_last_chunk(&mut out);
        assert_eq!(out, b"0\r\n\r\n");
        let mut buf = [0; 16];
        assert_eq!(hex_digits(u64::MAX, &mut buf), b"ffffffffffffffff");
        assert_eq!(hex_digits(0, &mut buf), b"0");
    }

    #[test]
    fn simple_responses() {
        assert_eq!(
            String::from_utf8(simple_response(400, reason_phrase(400), "bad request\n")).unwrap(),
            "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad request\n"
        );
        assert_eq!(
            String::from_utf8(simple_response(504, "Gateway Timeout", "")).unwrap(),
            "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(reason_phrase(431), "Request Header Fields Too Large");
        assert_eq!(reason_phrase(299), "Unknown");
    }
}
