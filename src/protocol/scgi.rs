//! SCGI (`scgi-socket`, `scgi-nph-socket`; python.ca/scgi/protocol.txt): a request is a
//! netstring of NUL-separated names and values (`70:CONTENT_LENGTH\0 27\0SCGI\01\0…,`),
//! followed by CONTENT_LENGTH bytes of body; the response runs until the connection closes.
//!
//! A request is parsed into a [`uwsgi::Packet`](super::uwsgi::Packet), so that the worker
//! serves it as it serves the uwsgi protocol. The response head is CGI's (`Status: 200 OK`),
//! or an HTTP status line for `scgi-nph-socket` ("non-parsed headers"), as uWSGI sends them.

use super::http::Version;
use super::response::{write_uwsgi_head, ResponseFraming};
use super::uwsgi::{Packet, PacketHeader};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseScgiError {
    #[error("invalid SCGI request: the netstring length is not a number")]
    BadLength,
    #[error("invalid SCGI request size {size} (max {max})")]
    TooLarge { size: usize, max: usize },
    #[error("invalid SCGI request: the headers do not end with `,`")]
    NoComma,
    #[error("invalid SCGI request: a header name has no value")]
    Unpaired,
    #[error("invalid SCGI request: {0}")]
    ContentLength(super::uwsgi::ParseUwsgiError),
}

/// Parses the request at the start of `buf`; `Ok(None)` until it has arrived whole.
/// `max` bounds the headers (`buffer-size`).
pub fn parse_request(buf: &[u8], max: usize) -> Result<Option<Packet<'_>>, ParseScgiError> {
    let Some(colon) = buf.iter().take(8).position(|&b| b == b':') else {
        if buf.len() >= 8 || buf.iter().any(|b| !b.is_ascii_digit()) {
            return Err(ParseScgiError::BadLength);
        }
        return Ok(None);
    };
    let size: usize = std::str::from_utf8(&buf[..colon])
        .ok()
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse().ok())
        .ok_or(ParseScgiError::BadLength)?;
    if size > max {
        return Err(ParseScgiError::TooLarge { size, max });
    }
    let start = colon + 1;
    let end = start + size;
    if buf.len() <= end {
        return Ok(None);
    }
    if buf[end] != b',' {
        return Err(ParseScgiError::NoComma);
    }
    let block = &buf[start..end];
    let block = block.strip_suffix(b"\0").unwrap_or(block);
    let mut fields = block.split(|&b| b == 0);
    let mut vars = Vec::new();
    while let Some(name) = fields.next() {
        if name.is_empty() && vars.is_empty() && block.is_empty() {
            break;
        }
        let value = fields.next().ok_or(ParseScgiError::Unpaired)?;
        if !name.is_empty() {
            vars.push((name, value));
        }
    }
    let content_length =
        super::uwsgi::content_length(&vars).map_err(ParseScgiError::ContentLength)?;
    Ok(Some(Packet {
        content_length,
        header: PacketHeader {
            modifier1: 0,
            size: size.min(usize::from(u16::MAX)) as u16,
            modifier2: 0,
        },
        vars,
        len: end + 1,
    }))
}

/// The response head: CGI's `Status:` line, or an HTTP status line with `nph`.
pub fn write_head<'h>(
    out: &mut Vec<u8>,
    nph: bool,
    version: Version,
    status: &[u8],
    headers: impl Iterator<Item = (&'h [u8], &'h [u8])> + Clone,
    framing: &ResponseFraming,
) {
    let start = out.len();
    write_uwsgi_head(out, version, status, headers, framing);
    if !nph {
        // `HTTP/1.1 200 OK` becomes `Status: 200 OK`.
        let version_len = version.as_str().len();
        out.splice(start..start + version_len, b"Status:".iter().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(vars: &[(&str, &str)]) -> Vec<u8> {
        let mut block = Vec::new();
        for (name, value) in vars {
            block.extend_from_slice(name.as_bytes());
            block.push(0);
            block.extend_from_slice(value.as_bytes());
            block.push(0);
        }
        let mut out = format!("{}:", block.len()).into_bytes();
        out.extend_from_slice(&block);
        out.push(b',');
        out
    }

    #[test]
    fn parses_the_netstring() {
        let mut bytes = request(&[
            ("CONTENT_LENGTH", "5"),
            ("SCGI", "1"),
            ("REQUEST_METHOD", "POST"),
            ("EMPTY", ""),
        ]);
        let head_len = bytes.len();
        bytes.extend_from_slice(b"hello");
        let packet = parse_request(&bytes, 4096).unwrap().unwrap();
        assert_eq!(packet.len, head_len);
        assert_eq!(packet.get(b"REQUEST_METHOD"), Some(b"POST".as_slice()));
        assert_eq!(packet.get(b"EMPTY"), Some(b"".as_slice()));
        assert_eq!(packet.vars.len(), 4);
    }

    #[test]
    fn waits_for_the_whole_head() {
        let bytes = request(&[("CONTENT_LENGTH", "0"), ("SCGI", "1")]);
        for end in 0..bytes.len() {
            assert_eq!(parse_request(&bytes[..end], 4096), Ok(None), "{end}");
        }
    }

    #[test]
    fn refuses_bad_requests() {
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\n", 4096),
            Err(ParseScgiError::BadLength)
        );
        assert_eq!(
            parse_request(b"5:ab\0cd;", 4096),
            Err(ParseScgiError::NoComma)
        );
        assert_eq!(
            parse_request(b"3:ab\0,", 4096),
            Err(ParseScgiError::Unpaired)
        );
        assert_eq!(
            parse_request(b"99999:", 4096),
            Err(ParseScgiError::TooLarge {
                size: 99999,
                max: 4096
            })
        );
    }

    #[test]
    fn heads() {
        let headers: [(&[u8], &[u8]); 1] = [(b"Content-Type", b"text/plain")];
        let mut cgi = Vec::new();
        write_head(
            &mut cgi,
            false,
            Version::Http11,
            b"200 OK",
            headers.iter().copied(),
            &ResponseFraming::Close,
        );
        assert!(
            cgi.starts_with(b"Status: 200 OK\r\nContent-Type: text/plain\r\n"),
            "{}",
            String::from_utf8_lossy(&cgi)
        );
        let mut nph = Vec::new();
        write_head(
            &mut nph,
            true,
            Version::Http11,
            b"200 OK",
            headers.iter().copied(),
            &ResponseFraming::Close,
        );
        assert!(nph.starts_with(b"HTTP/1.1 200 OK\r\n"));
    }
}
