//! The request line and header section (RFC 9112 §2–§5), parsed in two passes over the
//! buffer: a fast scan that finds the end of the head and rejects bare LF, then one pass over
//! the lines that builds [`RequestHead`]. The first pass allocates nothing, so a head that
//! arrives in pieces costs only re-scans until it is complete; the second allocates the
//! headers `Vec` once, at its exact size.

use super::{lossy, Header, ParseHttpError, RequestBodyFraming, RequestHead, Version};
use crate::protocol::syntax::{
    find_byte, find_lf, is_field_value, is_request_target, is_token, is_token_byte, parse_decimal,
    trim_ows,
};

/// The most header lines a request may have (431 beyond).
pub const MAX_HEADERS: usize = 100;

/// Parses the request head at the start of `buf`.
///
/// `Ok(None)` means the head is incomplete. The result on any prefix of a stream is either
/// `Ok(None)` or the same as on the whole stream, so the caller may call this after every
/// read. Empty lines before the request line are skipped (RFC 9112 §2.2: a stray CRLF after
/// a POST body from an old client) and counted in `len`. A head longer than `max_head_len`
/// is a 414 if the request line alone does not fit, a 431 otherwise.
pub fn parse_request_head(
    buf: &[u8],
    max_head_len: usize,
) -> Result<Option<RequestHead<'_>>, ParseHttpError> {
    let window = &buf[..buf.len().min(max_head_len)];
    let mut start = 0;
    while window[start..].starts_with(b"\r\n") {
        start += 2;
    }
    check_method_prefix(&window[start..])?;
    let Some(lines) = find_head_end(window, start)? else {
        if buf.len() >= max_head_len {
            return Err(if find_lf(&window[start..]).is_none() {
                ParseHttpError::RequestLineTooLong { max: max_head_len }
            } else {
                ParseHttpError::HeadTooLarge { max: max_head_len }
            });
        }
        return Ok(None);
    };
    parse_lines(buf, lines).map(Some)
}

/// Refuses a request whose first bytes cannot start a method, before waiting for a line end
/// that may never come (a TLS handshake sent to a plain HTTP port, say).
fn check_method_prefix(buf: &[u8]) -> Result<(), ParseHttpError> {
    for &byte in buf {
        if matches!(byte, b' ' | b'\r' | b'\n') {
            break;
        }
        if !is_token_byte(byte) {
            return Err(ParseHttpError::InvalidMethod);
        }
    }
    Ok(())
}

/// Where the lines of a complete head are.
struct HeadLines {
    /// Start of the request line (after skipped empty lines).
    start: usize,
    /// Offset of the CR ending the request line.
    request_line_end: usize,
    header_count: usize,
    /// Offset just past the final CRLFCRLF.
    end: usize,
}

fn find_head_end(window: &[u8], start: usize) -> Result<Option<HeadLines>, ParseHttpError> {
    let mut line_start = start;
    let mut request_line_end = None;
    let mut header_count = 0;
    while let Some(found) = find_lf(&window[line_start..]) {
        let lf = line_start + found;
        if lf == 0 || window[lf - 1] != b'\r' {
            return Err(ParseHttpError::BareLf { offset: lf });
        }
        let cr = lf - 1;
        match request_line_end {
            // Leading empty lines were skipped, so the first line is never empty.
            None => request_line_end = Some(cr),
            Some(request_line_end) if cr == line_start => {
                return Ok(Some(HeadLines {
                    start,
                    request_line_end,
                    header_count,
                    end: lf + 1,
                }));
            }
            Some(_) => {
                header_count += 1;
                if header_count > MAX_HEADERS {
                    return Err(ParseHttpError::TooManyHeaders { max: MAX_HEADERS });
                }
            }
        }
        line_start = lf + 1;
    }
    Ok(None)
}

/// The request line split into its three parts.
struct RequestLine<'a> {
    method: &'a [u8],
    target: &'a [u8],
    path: &'a [u8],
    query: &'a [u8],
    version: Version,
}

fn parse_request_line(line: &[u8]) -> Result<RequestLine<'_>, ParseHttpError> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    if !is_token(method) {
        return Err(ParseHttpError::InvalidMethod);
    }
    let (Some(target), Some(version)) = (parts.next(), parts.next()) else {
        return Err(ParseHttpError::InvalidRequestLine);
    };
    // Visible ASCII and, for clients that send raw UTF-8 paths, obs-text; no controls, no
    // spaces, no DEL.
    if target.is_empty() || !is_request_target(target) {
        return Err(ParseHttpError::InvalidTarget);
    }
    let version = match version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(ParseHttpError::UnsupportedVersion {
                version: lossy(version),
            });
        }
        _ => return Err(ParseHttpError::InvalidVersion),
    };
    // The asterisk-form names the server itself and only OPTIONS can ask it anything
    // (RFC 9112 §3.2.4). Checked after the version, so HTTP/2's `PRI *` preface gets its 505.
    if target == b"*" && method != b"OPTIONS" {
        return Err(ParseHttpError::AsteriskWithoutOptions);
    }
    let (before_query, query) = match target.iter().position(|&b| b == b'?') {
        Some(mark) => (&target[..mark], &target[mark + 1..]),
        None => (target, &b""[..]),
    };
    let path = target_path(before_query).ok_or(ParseHttpError::InvalidTarget)?;
    Ok(RequestLine {
        method,
        target,
        path,
        query,
        version,
    })
}

/// The path of an origin-form (`/a/b`), absolute-form (`http://host/a/b`, which RFC 9112
/// §3.2.2 requires servers to accept) or asterisk-form (`*`) target.
fn target_path(target: &[u8]) -> Option<&[u8]> {
    if target.starts_with(b"/") {
        return Some(target);
    }
    if target == b"*" {
        return Some(b"");
    }
    let scheme_len = if starts_with_ignore_case(target, b"http://") {
        7
    } else if starts_with_ignore_case(target, b"https://") {
        8
    } else {
        return None;
    };
    let authority_and_path = &target[scheme_len..];
    Some(match authority_and_path.iter().position(|&b| b == b'/') {
        Some(slash) => &authority_and_path[slash..],
        None => b"/",
    })
}

fn starts_with_ignore_case(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes.len() >= prefix.len() && bytes[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Framing-relevant headers, collected while the header lines are parsed.
#[derive(Default)]
struct FramingHeaders<'a> {
    content_length: Option<u64>,
    /// The last `Transfer-Encoding` value, for error messages.
    transfer_encoding: Option<&'a [u8]>,
    chunked_count: usize,
    /// The first coding other than `chunked`, across every `Transfer-Encoding` line.
    unsupported_coding: Option<&'a [u8]>,
    /// Whether the last coding listed is `chunked` (RFC 9112 §6.3: it must be).
    chunked_last: bool,
    connection_close: bool,
    connection_keep_alive: bool,
    expect_continue: bool,
    host_seen: bool,
    content_type_seen: bool,
}

impl<'a> FramingHeaders<'a> {
    fn add(&mut self, name: &[u8], value: &'a [u8]) -> Result<(), ParseHttpError> {
        // Dispatch on length first: most headers match none of these names.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                if self.host_seen {
                    return Err(ParseHttpError::DuplicateHost);
                }
                self.host_seen = true;
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                self.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for option in value.split(|&b| b == b',').map(trim_ows) {
                    self.connection_close |= option.eq_ignore_ascii_case(b"close");
                    self.connection_keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            // A singleton field: two values would let two parsers disagree about which
            // one the body is (RFC 9110 §5.3).
            12 if name.eq_ignore_ascii_case(b"content-type") => {
                if self.content_type_seen {
                    return Err(ParseHttpError::DuplicateContentType);
                }
                self.content_type_seen = true;
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let length =
                    parse_decimal(value).ok_or_else(|| ParseHttpError::InvalidContentLength {
                        value: lossy(value),
                    })?;
                if self
                    .content_length
                    .is_some_and(|previous| previous != length)
                {
                    return Err(ParseHttpError::ConflictingContentLength);
                }
                self.content_length = Some(length);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                self.transfer_encoding = Some(value);
                // Empty list elements are allowed by the list syntax (RFC 9110 §5.6.1).
                for coding in value
                    .split(|&b| b == b',')
                    .map(trim_ows)
                    .filter(|c| !c.is_empty())
                {
                    self.chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                    if self.chunked_last {
                        self.chunked_count += 1;
                    } else if self.unsupported_coding.is_none() {
                        self.unsupported_coding = Some(coding);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn body(&self, version: Version) -> Result<RequestBodyFraming, ParseHttpError> {
        if let Some(transfer_encoding) = self.transfer_encoding {
            if self.content_length.is_some() {
                return Err(ParseHttpError::ContentLengthWithTransferEncoding);
            }
            if version == Version::Http10 {
                return Err(ParseHttpError::TransferEncodingOnHttp10);
            }
            // Without `chunked` last the body's end cannot be known: a 400 whatever the
            // codings (RFC 9112 §6.3). With it last, an unknown coding before it is a 501.
            if !self.chunked_last {
                return Err(ParseHttpError::ChunkedNotLast {
                    value: lossy(transfer_encoding),
                });
            }
            if self.chunked_count != 1 {
                return Err(ParseHttpError::InvalidTransferEncoding {
                    value: lossy(transfer_encoding),
                });
            }
            if let Some(coding) = self.unsupported_coding {
                return Err(ParseHttpError::UnsupportedTransferEncoding {
                    coding: lossy(coding),
                });
            }
            return Ok(RequestBodyFraming::Chunked);
        }
        Ok(match self.content_length {
            None | Some(0) => RequestBodyFraming::None,
            Some(length) => RequestBodyFraming::Length(length),
        })
    }
}

fn parse_lines(buf: &[u8], lines: HeadLines) -> Result<RequestHead<'_>, ParseHttpError> {
    let request_line = parse_request_line(&buf[lines.start..lines.request_line_end])?;
    let mut headers = Vec::with_capacity(lines.header_count);
    let mut framing = FramingHeaders::default();
    // The header lines, each still ending in CRLF, without the final empty line.
    let mut rest = &buf[lines.request_line_end + 2..lines.end - 2];
    while let Some(lf) = find_lf(rest) {
        let line = &rest[..lf - 1];
        rest = &rest[lf + 1..];
        // Line numbers as a person counts them, the request line being line 1.
        let line_number = headers.len() + 2;
        let header = parse_header_line(line, line_number)?;
        framing.add(header.name, header.value)?;
        headers.push(header);
    }
    let version = request_line.version;
    let body = framing.body(version)?;
    let keep_alive = match version {
        Version::Http11 => !framing.connection_close,
        Version::Http10 => framing.connection_keep_alive && !framing.connection_close,
    };
    Ok(RequestHead {
        method: request_line.method,
        target: request_line.target,
        path: request_line.path,
        query: request_line.query,
        version,
        headers,
        body,
        keep_alive,
        expect_continue: framing.expect_continue && version == Version::Http11,
        len: lines.end,
    })
}

fn parse_header_line(line: &[u8], line_number: usize) -> Result<Header<'_>, ParseHttpError> {
    let name = find_byte(b':', line).map(|colon| &line[..colon]);
    // A token admits no whitespace, so `Name : value` is refused here as RFC 9112 §5.1
    // requires, and a line starting with whitespace is a folded continuation.
    let Some(name) = name.filter(|name| is_token(name)) else {
        return Err(match line.first() {
            Some(b' ' | b'\t') => ParseHttpError::ObsFold { line: line_number },
            _ => ParseHttpError::InvalidHeaderName { line: line_number },
        });
    };
    let value = trim_ows(&line[name.len() + 1..]);
    if !is_field_value(value) {
        return Err(ParseHttpError::InvalidHeaderValue { name: lossy(name) });
    }
    Ok(Header { name, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ParseHttpError::*;

    const MAX: usize = 8192;

    fn check(input: &str, expected: Result<Option<&str>, ParseHttpError>) {
        check_bytes(input.as_bytes(), MAX, expected);
    }

    /// `expected` is a compact rendering of the head (see `render`) so cases fit on a line.
    fn check_bytes(input: &[u8], max: usize, expected: Result<Option<&str>, ParseHttpError>) {
        let got = parse_request_head(input, max).map(|head| head.map(|h| render(&h)));
        let expected = expected.map(|head| head.map(str::to_owned));
        assert_eq!(
            got,
            expected,
            "parsing {:?}",
            String::from_utf8_lossy(input)
        );
    }

    fn render(head: &RequestHead<'_>) -> String {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let mut out = format!(
            "{} {} path={} query={} {} {:?}",
            text(head.method),
            text(head.target),
            text(head.path),
            text(head.query),
            head.version.as_str(),
            head.body,
        );
        if head.keep_alive {
            out.push_str(" keep-alive");
        }
        if head.expect_continue {
            out.push_str(" continue");
        }
        for header in &head.headers {
            out.push_str(&format!(" [{}={}]", text(header.name), text(header.value)));
        }
        out.push_str(&format!(" len={}", head.len));
        out
    }

    fn ok(rendered: &str) -> Result<Option<&str>, ParseHttpError> {
        Ok(Some(rendered))
    }

    #[test]
    fn request_lines() {
        check(
            "GET / HTTP/1.1\r\n\r\n",
            ok("GET / path=/ query= HTTP/1.1 None keep-alive len=18"),
        );
        check(
            "GET / HTTP/1.0\r\n\r\n",
            ok("GET / path=/ query= HTTP/1.0 None len=18"),
        );
        check(
            "GET /a%20b?x=1&y HTTP/1.1\r\n\r\n",
            ok("GET /a%20b?x=1&y path=/a%20b query=x=1&y HTTP/1.1 None keep-alive len=29"),
        );
        check(
            "GET /?q?r HTTP/1.1\r\n\r\n",
            ok("GET /?q?r path=/ query=q?r HTTP/1.1 None keep-alive len=22"),
        );
        check(
            "GET /a? HTTP/1.1\r\n\r\n",
            ok("GET /a? path=/a query= HTTP/1.1 None keep-alive len=20"),
        );
        check(
            "OPTIONS * HTTP/1.1\r\n\r\n",
            ok("OPTIONS * path= query= HTTP/1.1 None keep-alive len=22"),
        );
        check(
            "GET http://h:8/p?q HTTP/1.1\r\n\r\n",
            ok("GET http://h:8/p?q path=/p query=q HTTP/1.1 None keep-alive len=31"),
        );
        check(
            "GET HTTPS://h HTTP/1.1\r\n\r\n",
            ok("GET HTTPS://h path=/ query= HTTP/1.1 None keep-alive len=26"),
        );
        check(
            "GET /é HTTP/1.1\r\n\r\n",
            ok("GET /é path=/é query= HTTP/1.1 None keep-alive len=20"),
        );
        check(
            "M-SEARCH~ / HTTP/1.1\r\n\r\n",
            ok("M-SEARCH~ / path=/ query= HTTP/1.1 None keep-alive len=24"),
        );
        // Stray empty lines before the request line are skipped and counted.
        check(
            "\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            ok("GET / path=/ query= HTTP/1.1 None keep-alive len=22"),
        );
        // Bytes after the head are the body or the next request.
        check(
            "GET / HTTP/1.1\r\n\r\nGET /",
            ok("GET / path=/ query= HTTP/1.1 None keep-alive len=18"),
        );

        check("GET  / HTTP/1.1\r\n\r\n", Err(InvalidTarget));
        check("GET / HTTP/1.1 \r\n\r\n", Err(InvalidVersion));
        check("GET /  HTTP/1.1\r\n\r\n", Err(InvalidVersion));
        check(" GET / HTTP/1.1\r\n\r\n", Err(InvalidMethod));
        check("GET\r\n\r\n", Err(InvalidRequestLine));
        check("GET /\r\n\r\n", Err(InvalidRequestLine));
        check("G(T / HTTP/1.1\r\n\r\n", Err(InvalidMethod));
        check("GET\t/ HTTP/1.1\r\n\r\n", Err(InvalidMethod));
        check("GET / http/1.1\r\n\r\n", Err(InvalidVersion));
        check("GET / HTTP/1.1x\r\n\r\n", Err(InvalidVersion));
        check("GET / HTTP/1\r\n\r\n", Err(InvalidVersion));
        check(
            "GET / HTTP/2.0\r\n\r\n",
            Err(UnsupportedVersion {
                version: "HTTP/2.0".into(),
            }),
        );
        check(
            "GET / HTTP/0.9\r\n\r\n",
            Err(UnsupportedVersion {
                version: "HTTP/0.9".into(),
            }),
        );
        check(
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            Err(UnsupportedVersion {
                version: "HTTP/2.0".into(),
            }),
        );
        // The asterisk-form only with OPTIONS (gunicorn's corpus:
        // rfc9112_target_asterisk_non_options_01).
        check("GET * HTTP/1.1\r\n\r\n", Err(AsteriskWithoutOptions));
        check("options * HTTP/1.1\r\n\r\n", Err(AsteriskWithoutOptions));
        check("POST * HTTP/1.1\r\n\r\n", Err(AsteriskWithoutOptions));
        check(
            "OPTIONS / HTTP/1.1\r\n\r\n",
            ok("OPTIONS / path=/ query= HTTP/1.1 None keep-alive len=22"),
        );
        check("GET a HTTP/1.1\r\n\r\n", Err(InvalidTarget));
        check("CONNECT h:443 HTTP/1.1\r\n\r\n", Err(InvalidTarget));
        check("GET ftp://h/ HTTP/1.1\r\n\r\n", Err(InvalidTarget));
        check("GET /\x7f HTTP/1.1\r\n\r\n", Err(InvalidTarget));
        check("GET /\x01 HTTP/1.1\r\n\r\n", Err(InvalidTarget));
        check("GET /\r HTTP/1.1\r\n\r\n", Err(InvalidTarget));
    }

    #[test]
    fn incomplete_heads() {
        for input in [
            "",
            "G",
            "GET",
            "GET / HTTP/1.1",
            "GET / HTTP/1.1\r",
            "GET / HTTP/1.1\r\n",
            "GET / HTTP/1.1\r\nA: b\r\n\r",
            "\r\n",
            "\r",
        ] {
            check(input, Ok(None));
        }
    }

    #[test]
    fn early_rejection_of_non_http() {
        // A TLS ClientHello starts with 0x16; no line end is needed to refuse it.
        check_bytes(b"\x16\x03\x01\x02\x00", MAX, Err(InvalidMethod));
        check("GE{", Err(InvalidMethod));
    }

    #[test]
    fn line_endings() {
        check("GET / HTTP/1.1\n\n", Err(BareLf { offset: 14 }));
        check("GET / HTTP/1.1\r\nA: b\n\r\n", Err(BareLf { offset: 20 }));
        check("GET / HTTP/1.1\r\nA: b\r\n\n", Err(BareLf { offset: 22 }));
        check("\nGET / HTTP/1.1\r\n\r\n", Err(BareLf { offset: 0 }));
        check(
            "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
            Err(InvalidHeaderValue { name: "A".into() }),
        );
        check(
            "GET / HTTP/1.1\r\n\rA: b\r\n\r\n",
            Err(InvalidHeaderName { line: 2 }),
        );
    }

    #[test]
    fn headers() {
        check(
            "GET / HTTP/1.1\r\nHost: a\r\nX-A:  b c \t\r\nX-E:\r\n\r\n",
            ok("GET / path=/ query= HTTP/1.1 None keep-alive [Host=a] [X-A=b c] [X-E=] len=46"),
        );
        check(
            "GET / HTTP/1.1\r\nX: é\t!\r\n\r\n",
            ok("GET / path=/ query= HTTP/1.1 None keep-alive [X=é\t!] len=27"),
        );
        check(
            "GET / HTTP/1.1\r\nX_Y: 1\r\nA: b: c\r\n\r\n",
            ok("GET / path=/ query= HTTP/1.1 None keep-alive [X_Y=1] [A=b: c] len=35"),
        );

        check("GET / HTTP/1.1\r\n A: b\r\n\r\n", Err(ObsFold { line: 2 }));
        check(
            "GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n",
            Err(ObsFold { line: 3 }),
        );
        check(
            "GET / HTTP/1.1\r\nA : b\r\n\r\n",
            Err(InvalidHeaderName { line: 2 }),
        );
        check(
            "GET / HTTP/1.1\r\nA\t: b\r\n\r\n",
            Err(InvalidHeaderName { line: 2 }),
        );
        check(
            "GET / HTTP/1.1\r\n: b\r\n\r\n",
            Err(InvalidHeaderName { line: 2 }),
        );
        check(
            "GET / HTTP/1.1\r\nA b\r\n\r\n",
            Err(InvalidHeaderName { line: 2 }),
        );
        check(
            "GET / HTTP/1.1\r\nA(: b\r\n\r\n",
            Err(InvalidHeaderName { line: 2 }),
        );
        check(
            "GET / HTTP/1.1\r\nA: 1\r\nB\r\n\r\n",
            Err(InvalidHeaderName { line: 3 }),
        );
        check_bytes(
            b"GET / HTTP/1.1\r\nA: b\0\r\n\r\n",
            MAX,
            Err(InvalidHeaderValue { name: "A".into() }),
        );
        check(
            "GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",
            Err(InvalidHeaderValue { name: "A".into() }),
        );
        check(
            "GET / HTTP/1.1\r\nA: \x0bb\r\n\r\n",
            Err(InvalidHeaderValue { name: "A".into() }),
        );
        check(
            "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
            Err(DuplicateHost),
        );
        check(
            "POST / HTTP/1.1\r\nContent-Type: a/b\r\ncontent-type: a/b\r\n\r\n",
            Err(DuplicateContentType),
        );
        check(
            "POST / HTTP/1.1\r\nContent-Type: a/b\r\nX: 1\r\nCONTENT-TYPE: c/d\r\n\r\n",
            Err(DuplicateContentType),
        );
        check(
            "POST / HTTP/1.1\r\nContent-Type: a/b\r\nContent-Type-X: 1\r\n\r\n",
            ok("POST / path=/ query= HTTP/1.1 None keep-alive [Content-Type=a/b] [Content-Type-X=1] len=57"),
        );
    }

    #[test]
    fn body_framing() {
        check(
            "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            ok("POST / path=/ query= HTTP/1.1 Length(5) keep-alive [Content-Length=5] len=38"),
        );
        check(
            "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
            ok("POST / path=/ query= HTTP/1.1 None keep-alive [content-length=0] len=38"),
        );
        check("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", ok("POST / path=/ query= HTTP/1.1 Length(5) keep-alive [Content-Length=5] [Content-Length=5] len=57"));
        check("POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n", ok("POST / path=/ query= HTTP/1.1 Length(18446744073709551615) keep-alive [Content-Length=18446744073709551615] len=57"));
        check("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", ok("POST / path=/ query= HTTP/1.1 Chunked keep-alive [Transfer-Encoding=chunked] len=47"));
        check("POST / HTTP/1.1\r\nTransfer-Encoding: , CHUNKED ,\r\n\r\n", ok("POST / path=/ query= HTTP/1.1 Chunked keep-alive [Transfer-Encoding=, CHUNKED ,] len=51"));

        let invalid_length = |value: &str| {
            Err(InvalidContentLength {
                value: value.into(),
            })
        };
        check(
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            Err(ConflictingContentLength),
        );
        check(
            "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
            invalid_length("5, 5"),
        );
        check(
            "POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
            invalid_length("-5"),
        );
        check(
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            invalid_length("+5"),
        );
        check(
            "POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n",
            invalid_length("0x5"),
        );
        check(
            "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
            invalid_length(""),
        );
        check(
            "POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n",
            invalid_length("18446744073709551616"),
        );
        check(
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            Err(ContentLengthWithTransferEncoding),
        );
        check(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            Err(ContentLengthWithTransferEncoding),
        );
        // `chunked` last, another coding before it: not understood, 501.
        check(
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            Err(UnsupportedTransferEncoding {
                coding: "gzip".into(),
            }),
        );
        check(
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
            Err(UnsupportedTransferEncoding {
                coding: "gzip".into(),
            }),
        );
        // Anything but `chunked` last: the body's end is unknowable, 400 (RFC 9112 §6.3;
        // gunicorn's corpus: chunked_06, chunked_08).
        let not_last = |value: &str| {
            Err(ChunkedNotLast {
                value: value.into(),
            })
        };
        check(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
            not_last("chunked, identity"),
        );
        check(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            not_last("gzip"),
        );
        check(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
            not_last("identity"),
        );
        check(
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            not_last("gzip"),
        );
        check(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
            not_last("chunked;x=1"),
        );
        check(
            "POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n",
            not_last("xchunked"),
        );
        check(
            "POST / HTTP/1.1\r\nTransfer-Encoding: identity, chunked, identity, chunked\r\n\r\n",
            Err(InvalidTransferEncoding {
                value: "identity, chunked, identity, chunked".into(),
            }),
        );
        check(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            Err(InvalidTransferEncoding {
                value: "chunked".into(),
            }),
        );
        check(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            Err(InvalidTransferEncoding {
                value: "chunked, chunked".into(),
            }),
        );
        check(
            "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
            not_last(""),
        );
        check(
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            Err(TransferEncodingOnHttp10),
        );
    }

    #[test]
    fn connection_and_expect() {
        check(
            "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
            ok("GET / path=/ query= HTTP/1.1 None [Connection=close] len=37"),
        );
        check(
            "GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n",
            ok("GET / path=/ query= HTTP/1.1 None [Connection=Upgrade, CLOSE] len=46"),
        );
        check(
            "GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
            ok("GET / path=/ query= HTTP/1.1 None keep-alive [Connection=keep-alive] len=42"),
        );
        check(
            "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
            ok("GET / path=/ query= HTTP/1.0 None keep-alive [Connection=Keep-Alive] len=42"),
        );
        check(
            "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
            ok("GET / path=/ query= HTTP/1.0 None [Connection=keep-alive, close] len=49"),
        );
        check(
            "GET / HTTP/1.0\r\nConnection: closed\r\n\r\n",
            ok("GET / path=/ query= HTTP/1.0 None [Connection=closed] len=38"),
        );
        check("PUT / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n", ok("PUT / path=/ query= HTTP/1.1 None keep-alive continue [Expect=100-Continue] len=40"));
        check(
            "PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
            ok("PUT / path=/ query= HTTP/1.0 None [Expect=100-continue] len=40"),
        );
        check(
            "PUT / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n",
            ok("PUT / path=/ query= HTTP/1.1 None keep-alive [Expect=200-ok] len=34"),
        );
    }

    #[test]
    fn size_limits() {
        let head = "GET / HTTP/1.1\r\nA: b\r\n\r\n"; // 24 bytes
        check_bytes(
            head.as_bytes(),
            24,
            ok("GET / path=/ query= HTTP/1.1 None keep-alive [A=b] len=24"),
        );
        check_bytes(head.as_bytes(), 23, Err(HeadTooLarge { max: 23 }));
        check_bytes(&head.as_bytes()[..20], 23, Ok(None));
        check_bytes(b"GET /aaaaaaaaaa", 10, Err(RequestLineTooLong { max: 10 }));
        check_bytes(b"GET / HTTP/1.1\r", 15, Err(RequestLineTooLong { max: 15 }));
        check_bytes(b"GET / HTTP/1.1\r\n", 16, Err(HeadTooLarge { max: 16 }));
        check_bytes(b"\r\n\r\n\r\n", 6, Err(RequestLineTooLong { max: 6 }));

        let many = |count: usize| format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(count));
        let max_headers = many(MAX_HEADERS);
        let parsed = parse_request_head(max_headers.as_bytes(), MAX)
            .unwrap()
            .unwrap();
        assert_eq!(parsed.headers.len(), MAX_HEADERS);
        check(
            &many(MAX_HEADERS + 1),
            Err(TooManyHeaders { max: MAX_HEADERS }),
        );
        // Refused before the head is complete, as soon as the 101st line ends.
        check(
            &many(MAX_HEADERS + 1)[..16 + 6 * (MAX_HEADERS + 1)],
            Err(TooManyHeaders { max: MAX_HEADERS }),
        );
    }

    #[test]
    fn error_statuses() {
        for (error, status) in [
            (RequestLineTooLong { max: 1 }, 414),
            (HeadTooLarge { max: 1 }, 431),
            (TooManyHeaders { max: 1 }, 431),
            (
                UnsupportedTransferEncoding {
                    coding: "gzip".into(),
                },
                501,
            ),
            (
                UnsupportedVersion {
                    version: "HTTP/2.0".into(),
                },
                505,
            ),
            (
                ChunkedNotLast {
                    value: "gzip".into(),
                },
                400,
            ),
            (DuplicateContentType, 400),
            (AsteriskWithoutOptions, 400),
            (BareLf { offset: 0 }, 400),
            (ConflictingContentLength, 400),
            (InvalidChunkSize, 400),
        ] {
            assert_eq!(error.status(), status, "{error}");
        }
    }

    #[test]
    fn header_lookup() {
        let head = parse_request_head(b"GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\n\r\n", MAX)
            .unwrap()
            .unwrap();
        assert_eq!(head.header(b"X-a"), Some(&b"1"[..]));
        assert_eq!(head.header(b"X-B"), None);
    }

    /// Requests built from parts that exercise every branch, valid and not.
    fn arb_head() -> impl Strategy<Value = Vec<u8>> {
        let line = prop::sample::select(vec![
            "Host: example.com\r\n",
            "Host: other\r\n",
            "Content-Length: 3\r\n",
            "Content-Length: 4\r\n",
            "Transfer-Encoding: chunked\r\n",
            "Transfer-Encoding: gzip\r\n",
            "Connection: close\r\n",
            "Connection: keep-alive\r\n",
            "Expect: 100-continue\r\n",
            "X_Y: z\r\n",
            "Bad Name: x\r\n",
            " folded\r\n",
            "X: a\nb\r\n",
            "X: \0\r\n",
            "\r\n",
            "\n",
            "Accept: */*\r\n",
        ]);
        let request_line = prop::sample::select(vec![
            "GET / HTTP/1.1\r\n",
            "POST /a/b?c=d HTTP/1.0\r\n",
            "\r\nGET /x HTTP/1.1\r\n",
            "GET http://h/p HTTP/1.1\r\n",
            "GET / HTTP/2.0\r\n",
            "G@T / HTTP/1.1\r\n",
            "GET /\r\n",
        ]);
        (
            request_line,
            prop::collection::vec(line, 0..8),
            prop::collection::vec(any::<u8>(), 0..6),
        )
            .prop_map(|(request_line, lines, tail)| {
                let mut out = request_line.as_bytes().to_vec();
                for line in lines {
                    out.extend_from_slice(line.as_bytes());
                }
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(&tail);
                out
            })
    }

    proptest! {
        #[test]
        fn prefixes_agree_with_the_whole(input in arb_head(), max in prop::sample::select(vec![40usize, 120, 8192])) {
            let whole = parse_request_head(&input, max);
            for cut in 0..input.len() {
                let part = parse_request_head(&input[..cut], max);
                prop_assert!(part == Ok(None) || part == whole, "prefix {:?} gave {:?}, whole gave {:?}", &input[..cut], part, whole);
            }
            if let Ok(Some(head)) = &whole {
                prop_assert!(head.len <= input.len() && head.len <= max);
                prop_assert_eq!(&input[head.len - 4..head.len], b"\r\n\r\n");
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_request_head(&input, 100);
        }
    }
}
