//! The PROXY protocol header (HAProxy's spec, versions 1 and 2) that a load balancer sends
//! before the client's first byte, naming the original client: `enable-proxy-protocol`.
//!
//! [`parse`] looks at the start of a connection's bytes and says whether a header is there,
//! whether more bytes are needed to tell, or where the header ends and who the client is.
//! Like the rest of `protocol/`, it borrows the buffer and does no I/O.
//!
//! Spec: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 header's first 12 bytes.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header is at most 107 bytes, CRLF included.
const V1_MAX: usize = 107;
/// v2's fixed part: signature, version/command, family/transport, length.
const V2_FIXED: usize = 16;

/// What the start of a connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxied {
    /// No PROXY header: the bytes are the request itself.
    Absent,
    /// Too few bytes to tell; read more.
    NeedMore,
    /// A header of `len` bytes; `source` is the original client, or `None` when the header
    /// names none (v1 `UNKNOWN`, v2 `LOCAL` or a non-IP family): keep the peer address.
    Header {
        len: usize,
        source: Option<SocketAddr>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseProxyError {
    #[error("PROXY v1 header longer than 107 bytes")]
    TooLong,
    #[error("malformed PROXY v1 header: {0}")]
    V1(&'static str),
    #[error("malformed PROXY v2 header: {0}")]
    V2(&'static str),
}

/// Parses a PROXY header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Proxied, ParseProxyError> {
    if starts_like(buf, b"PROXY ") {
        return if buf.len() < 6 {
            Ok(Proxied::NeedMore)
        } else {
            parse_v1(buf)
        };
    }
    if starts_like(buf, &V2_SIGNATURE) {
        return if buf.len() < V2_SIGNATURE.len() {
            Ok(Proxied::NeedMore)
        } else {
            parse_v2(buf)
        };
    }
    Ok(Proxied::Absent)
}

/// `buf` and `prefix` agree on their common length, and `buf` is not empty.
fn starts_like(buf: &[u8], prefix: &[u8]) -> bool {
    let n = buf.len().min(prefix.len());
    n > 0 && buf[..n] == prefix[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Proxied, ParseProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ParseProxyError::TooLong)
        } else {
            Ok(Proxied::NeedMore)
        };
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| ParseProxyError::V1("not ASCII"))?;
    let len = end + 2;
    let mut fields = line.split(' ');
    fields.next(); // "PROXY"
    let family = fields.next().ok_or(ParseProxyError::V1("no protocol"))?;
    if family == "UNKNOWN" {
        return Ok(Proxied::Header { len, source: None });
    }
    let (Some(source), Some(destination), Some(source_port), Some(destination_port), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(ParseProxyError::V1("expected 5 fields after `PROXY`"));
    };
    let ip: IpAddr = match family {
        "TCP4" => source
            .parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| ParseProxyError::V1("bad IPv4 source address"))?,
        "TCP6" => source
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| ParseProxyError::V1("bad IPv6 source address"))?,
        _ => return Err(ParseProxyError::V1("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    let destination_ok = match family {
        "TCP4" => destination.parse::<Ipv4Addr>().is_ok(),
        _ => destination.parse::<Ipv6Addr>().is_ok(),
    };
    if !destination_ok {
        return Err(ParseProxyError::V1("bad destination address"));
    }
    let port = |text: &str| {
        // The spec forbids leading zeros and signs; `u16::from_str` accepts `+1`.
        let plain = !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_digit())
            && (text == "0" || !text.starts_with('0'));
        plain.then(|| text.parse::<u16>().ok()).flatten()
    };
    let source_port = port(source_port).ok_or(ParseProxyError::V1("bad source port"))?;
    port(destination_port).ok_or(ParseProxyError::V1("bad destination port"))?;
    Ok(Proxied::Header {
        len,
        source: Some(SocketAddr::new(ip, source_port)),
    })
}

fn parse_v2(buf: &[u8]) -> Result<Proxied, ParseProxyError> {
    if buf.len() < V2_FIXED {
        return Ok(Proxied::NeedMore);
    }
    let version_command = buf[12];
    if version_command >> 4 != 2 {
        return Err(ParseProxyError::V2("version is not 2"));
    }
    let command = version_command & 0x0f;
    let family = buf[13];
    let length = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    let len = V2_FIXED + length;
    if buf.len() < len {
        return Ok(Proxied::NeedMore);
    }
    let body = &buf[V2_FIXED..len];
    match command {
        // LOCAL: the proxy's own connection (a health check); keep the peer address.
        0 => return Ok(Proxied::Header { len, source: None }),
        1 => {}
        _ => return Err(ParseProxyError::V2("command is neither LOCAL nor PROXY")),
    }
    let source = match family >> 4 {
        // AF_INET: source, destination (4 bytes each), source port, destination port.
        1 => {
            if body.len() < 12 {
                return Err(ParseProxyError::V2("IPv4 addresses truncated"));
            }
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let port = u16::from_be_bytes([body[8], body[9]]);
            Some(SocketAddr::new(IpAddr::V4(ip), port))
        }
        // AF_INET6: 16 bytes each, then the ports.
        2 => {
            if body.len() < 36 {
                return Err(ParseProxyError::V2("IPv6 addresses truncated"));
            }
            let octets: [u8; 16] = body[..16].try_into().expect("a 16-byte slice");
            let port = u16::from_be_bytes([body[32], body[33]]);
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        // AF_UNSPEC, AF_UNIX: no IP address to report.
        0 | 3 => None,
        _ => return Err(ParseProxyError::V2("unknown address family")),
    };
    Ok(Proxied::Header { len, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// `expected`: `absent`, `more`, `LEN from ADDR`, `LEN keep`, or `error: …`.
    fn check(input: &[u8], expected: &str) {
        let got = match parse(input) {
            Ok(Proxied::Absent) => "absent".to_string(),
            Ok(Proxied::NeedMore) => "more".to_string(),
            Ok(Proxied::Header {
                len,
                source: Some(addr),
            }) => format!("{len} from {addr}"),
            Ok(Proxied::Header { len, source: None }) => format!("{len} keep"),
            Err(err) => format!("error: {err}"),
        };
        assert_eq!(
            got,
            expected,
            "parsing {:?}",
            String::from_utf8_lossy(input)
        );
    }

    #[test]
    fn version_1() {
        check(
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n",
            "45 from 192.0.2.1:56324",
        );
        check(
            b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 80\r\n",
            "44 from [2001:db8::1]:4000",
        );
        check(b"PROXY UNKNOWN\r\n", "15 keep");
        check(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", "35 keep");
        check(b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443", "more");
        check(b"PROX", "more");
        check(b"P", "more");
        check(b"POST / HTTP/1.1\r\n", "absent");
        check(b"GET / HTTP/1.1\r\n", "absent");
        check(b"", "absent");
        check(
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",
            "error: malformed PROXY v1 header: expected 5 fields after `PROXY`",
        );
        check(
            b"PROXY TCP4 ::1 198.51.100.2 1 2\r\n",
            "error: malformed PROXY v1 header: bad IPv4 source address",
        );
        check(
            b"PROXY TCP4 192.0.2.1 198.51.100.2 070 2\r\n",
            "error: malformed PROXY v1 header: bad source port",
        );
        check(
            b"PROXY TCP4 192.0.2.1 198.51.100.2 70000 2\r\n",
            "error: malformed PROXY v1 header: bad source port",
        );
        check(
            b"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n",
            "error: malformed PROXY v1 header: protocol is not TCP4, TCP6 or UNKNOWN",
        );
        check(
            &[b"PROXY TCP4 ".as_slice(), &[b'1'; 100]].concat(),
            "error: PROXY v1 header longer than 107 bytes",
        );
    }

    #[test]
    fn version_2() {
        let ipv4 = [192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x01, 0xbb];
        let header = v2(1, 0x11, &ipv4);
        check(&header, "28 from 192.0.2.1:56324");
        check(
            &[header.as_slice(), b"GET / HTTP/1.1\r\n"].concat(),
            "28 from 192.0.2.1:56324",
        );
        check(&header[..20], "more");
        check(&header[..5], "more");
        let mut ipv6 = vec![0u8; 36];
        ipv6[0] = 0x20;
        ipv6[1] = 0x01;
        ipv6[15] = 1;
        ipv6[32..34].copy_from_slice(&8080u16.to_be_bytes());
        check(&v2(1, 0x21, &ipv6), "52 from [2001::1]:8080");
        check(&v2(0, 0x00, &[]), "16 keep");
        check(&v2(1, 0x31, &[0u8; 216]), "232 keep");
        // TLVs after the addresses are skipped with the length.
        check(
            &v2(1, 0x11, &[ipv4.as_slice(), &[0x04, 0, 1, 7]].concat()),
            "32 from 192.0.2.1:56324",
        );
        check(
            &v2(1, 0x11, &ipv4[..8]),
            "error: malformed PROXY v2 header: IPv4 addresses truncated",
        );
        check(
            &v2(3, 0x11, &ipv4),
            "error: malformed PROXY v2 header: command is neither LOCAL nor PROXY",
        );
        let mut bad_version = header.clone();
        bad_version[12] = 0x11;
        check(
            &bad_version,
            "error: malformed PROXY v2 header: version is not 2",
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_lengths_fit(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Proxied::Header { len, .. }) = parse(&bytes) {
                prop_assert!(len <= bytes.len());
            }
        }

        #[test]
        fn v1_round_trips(a in any::<[u8; 4]>(), port in any::<u16>()) {
            let ip = Ipv4Addr::from(a);
            let line = format!("PROXY TCP4 {ip} 10.0.0.1 {port} 80\r\n");
            prop_assert_eq!(
                parse(line.as_bytes()),
                Ok(Proxied::Header { len: line.len(), source: Some(SocketAddr::new(IpAddr::V4(ip), port)) })
            );
        }
    }
}
