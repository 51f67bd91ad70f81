//! The uwsgi binary protocol as nginx's `uwsgi_pass` speaks it (reference §5.1): a 4-byte
//! header (`modifier1`, little-endian `u16` size, `modifier2`) followed by `size` bytes of
//! variables, each `u16le keylen, key, u16le vallen, value`. The request body follows the
//! packet and is `CONTENT_LENGTH` bytes long; reading it is the caller's job.
//!
//! Only `modifier1 = 0` (WSGI) is served. The response to such a request carries no uwsgi
//! header: it is plain HTTP, written by [`super::response`].
//!
//! This module does not read sockets and does not copy: a parsed [`Packet`] borrows the
//! caller's buffer.

use thiserror::Error;

use super::syntax::parse_decimal;

/// Bytes in the fixed packet header.
pub const HEADER_LEN: usize = 4;

/// The most variables one packet may carry. uWSGI's `max-vars` (64) bounds its iovec
/// array at roughly 128 key/value pairs; nginx's `uwsgi_params` plus the request headers of a
/// normal browser stay far below that.
pub const MAX_VARS: usize = 128;

/// `modifier1` values, as listed in uWSGI's `Protocol.rst`. Only [`Modifier1::Wsgi`] is
/// served; the others exist so that logs and tests can name what a peer sent.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Modifier1 {
    /// WSGI/Python; nginx's `uwsgi_modifier1` defaults to it.
    Wsgi = 0,
    Psgi = 5,
    Lua = 6,
    Rack = 7,
    Jvm = 8,
    Cgi = 9,
    Php = 14,
    SpoolerFile = 17,
    RawEval = 22,
    HttpResponse = 72,
    Signal = 110,
    Cache = 111,
    EmperorConfig = 115,
    Rpc = 173,
}

impl Modifier1 {
    /// The known modifier with this wire value, if any.
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0 => Self::Wsgi,
            5 => Self::Psgi,
            6 => Self::Lua,
            7 => Self::Rack,
            8 => Self::Jvm,
            9 => Self::Cgi,
            14 => Self::Php,
            17 => Self::SpoolerFile,
            22 => Self::RawEval,
            72 => Self::HttpResponse,
            110 => Self::Signal,
            111 => Self::Cache,
            115 => Self::EmperorConfig,
            173 => Self::Rpc,
            _ => return None,
        })
    }
}

/// The fixed 4-byte header of a uwsgi packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketHeader {
    pub modifier1: u8,
    /// Length of the vars block that follows the header (little-endian on the wire).
    pub size: u16,
    pub modifier2: u8,
}

impl PacketHeader {
    /// Decodes the header from the first [`HEADER_LEN`] bytes, or `None` if there are fewer.
    pub fn decode(buf: &[u8]) -> Option<Self> {
        match *buf {
            [modifier1, size_lo, size_hi, modifier2, ..] => Some(Self {
                modifier1,
                size: u16::from_le_bytes([size_lo, size_hi]),
                modifier2,
            }),
            _ => None,
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let [size_lo, size_hi] = self.size.to_le_bytes();
        [self.modifier1, size_lo, size_hi, self.modifier2]
    }
}

/// One variable: key and value, borrowed from the packet.
pub type Var<'a> = (&'a [u8], &'a [u8]);

/// A parsed request packet, borrowing the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    pub header: PacketHeader,
    /// The variables in wire order. Keys are never empty; values may be.
    pub vars: Vec<Var<'a>>,
    /// Bytes of the buffer the packet occupies (`HEADER_LEN + size`); the body starts here.
    pub len: usize,
    /// The request body length from `CONTENT_LENGTH`, checked while parsing (see
    /// [`content_length`]).
    pub content_length: u64,
}

impl<'a> Packet<'a> {
    /// The value of the first variable named `key` (case-sensitive, like CGI).
    pub fn get(&self, key: &[u8]) -> Option<&'a [u8]> {
        get(&self.vars, key)
    }
}

fn get<'a>(vars: &[Var<'a>], key: &[u8]) -> Option<&'a [u8]> {
    vars.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
}

/// The request body length from `CONTENT_LENGTH`. nginx's `uwsgi_params` always sends the
/// variable and leaves it empty when the request has no body, so a missing or empty value is
/// 0; anything but digits refuses the packet (the body's end would be a guess).
pub(super) fn content_length(vars: &[Var<'_>]) -> Result<u64, ParseUwsgiError> {
    match get(vars, b"CONTENT_LENGTH") {
        None | Some(b"") => Ok(0),
        Some(value) => parse_decimal(value).ok_or_else(|| ParseUwsgiError::InvalidContentLength {
            value: String::from_utf8_lossy(value).into_owned(),
        }),
    }
}

/// Why a uwsgi packet was refused. Every variant means the connection must be closed: the
/// protocol has no way to report an error to the peer, and the stream position is lost.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseUwsgiError {
    /// uWSGI's wording, so that operators grepping for it find it.
    #[error("invalid request block size: {size} (max {max})")]
    TooLarge { size: u16, max: usize },
    #[error("uwsgi key cannot be null (var {index})")]
    EmptyKey { index: usize },
    #[error("uwsgi var {index} runs past the end of the {size}-byte packet")]
    VarPastEnd { index: usize, size: u16 },
    #[error("too many uwsgi vars (max {max})")]
    TooManyVars { max: usize },
    #[error("unsupported uwsgi modifier1 {modifier1} (only 0, WSGI, is served)")]
    UnsupportedModifier1 { modifier1: u8 },
    #[error("invalid `CONTENT_LENGTH` `{value}`")]
    InvalidContentLength { value: String },
}

/// Why [`encode_packet`] could not build a packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeUwsgiError {
    #[error("uwsgi var {index} has an empty key")]
    EmptyKey { index: usize },
    #[error("uwsgi var {index} is {len} bytes long (max 65535)")]
    FieldTooLong { index: usize, len: usize },
    #[error("uwsgi vars take {size} bytes (max 65535)")]
    PacketTooLarge { size: usize },
}

/// Parses one request packet from the start of `buf`.
///
/// `Ok(None)` means more bytes are needed. The size is checked against `buffer_size` as soon
/// as the header has arrived, so an oversized packet is refused before it is buffered.
pub fn parse_packet(buf: &[u8], buffer_size: usize) -> Result<Option<Packet<'_>>, ParseUwsgiError> {
    parse_packet_with_limit(buf, buffer_size, MAX_VARS)
}

/// [`parse_packet`] with an explicit limit on the number of variables.
pub fn parse_packet_with_limit(
    buf: &[u8],
    buffer_size: usize,
    max_vars: usize,
) -> Result<Option<Packet<'_>>, ParseUwsgiError> {
    let Some(header) = PacketHeader::decode(buf) else {
        return Ok(None);
    };
    if usize::from(header.size) > buffer_size {
        return Err(ParseUwsgiError::TooLarge {
            size: header.size,
            max: buffer_size,
        });
    }
    if header.modifier1 != Modifier1::Wsgi as u8 {
        return Err(ParseUwsgiError::UnsupportedModifier1 {
            modifier1: header.modifier1,
        });
    }
    let len = HEADER_LEN + usize::from(header.size);
    let Some(block) = buf.get(HEADER_LEN..len) else {
        return Ok(None);
    };
    let vars = parse_vars(block, header.size, max_vars)?;
    let content_length = content_length(&vars)?;
    Ok(Some(Packet {
        header,
        vars,
        len,
        content_length,
    }))
}

pub fn parse_vars(
    mut block: &[u8],
    size: u16,
    max_vars: usize,
) -> Result<Vec<Var<'_>>, ParseUwsgiError> {
    // nginx sends ~15 params plus one per request header; 32 avoids regrowth for most requests.
    let mut vars = Vec::with_capacity(32);
    while !block.is_empty() {
        let index = vars.len();
        if index == max_vars {
            return Err(ParseUwsgiError::TooManyVars { max: max_vars });
        }
        let past_end = ParseUwsgiError::VarPastEnd { index, size };
        let (key, rest) = take_field(block).ok_or(past_end.clone())?;
        if key.is_empty() {
            return Err(ParseUwsgiError::EmptyKey { index });
        }
        let (value, rest) = take_field(rest).ok_or(past_end)?;
        vars.push((key, value));
        block = rest;
    }
    Ok(vars)
}

/// Splits `u16le len, bytes[len]` off the front of `buf`.
fn take_field(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let [lo, hi, rest @ ..] = buf else {
        return None;
    };
    let len = usize::from(u16::from_le_bytes([*lo, *hi]));
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// Builds a packet: header followed by the vars block. Used by tests, fuzzing and test
/// clients; the server never sends uwsgi packets.
pub fn encode_packet(
    modifier1: u8,
    modifier2: u8,
    vars: &[(&[u8], &[u8])],
) -> Result<Vec<u8>, EncodeUwsgiError> {
    let mut size = 0usize;
    for (index, (key, value)) in vars.iter().enumerate() {
        if key.is_empty() {
            return Err(EncodeUwsgiError::EmptyKey { index });
        }
        for field in [key, value] {
            if field.len() > usize::from(u16::MAX) {
                return Err(EncodeUwsgiError::FieldTooLong {
                    index,
                    len: field.len(),
                });
            }
            size += 2 + field.len();
        }
    }
    let size16 = u16::try_from(size).map_err(|_| EncodeUwsgiError::PacketTooLarge { size })?;
    let mut out = Vec::with_capacity(HEADER_LEN + size);
    out.extend_from_slice(
        &PacketHeader {
            modifier1,
            size: size16,
            modifier2,
        }
        .encode(),
    );
    for (key, value) in vars {
        for field in [key, value] {
            let len = u16::try_from(field.len()).expect("field lengths were checked above");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(field);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Builds `header + block` where `block` is raw vars bytes, so malformed blocks can be
    /// written by hand.
    fn raw(modifier1: u8, block: &[u8]) -> Vec<u8> {
        let mut out = PacketHeader {
            modifier1,
            size: block.len() as u16,
            modifier2: 0,
        }
        .encode()
        .to_vec();
        out.extend_from_slice(block);
        out
    }

    type Vars = &'static [(&'static [u8], &'static [u8])];

    fn check(buf: &[u8], buffer_size: usize, expected: Result<Option<Vars>, ParseUwsgiError>) {
        let got = parse_packet(buf, buffer_size);
        let got = got.map(|packet| packet.map(|p| p.vars));
        let expected = expected.map(|vars| vars.map(|v| v.to_vec()));
        assert_eq!(
            got, expected,
            "parsing {buf:?} with buffer-size {buffer_size}"
        );
    }

    #[test]
    fn parse_cases() {
        use ParseUwsgiError::*;
        let ok = |vars: Vars| Ok(Some(vars));
        // Complete packets.
        check(&raw(0, b""), 4096, ok(&[]));
        check(&raw(0, b"\x01\x00a\x01\x00b"), 4096, ok(&[(b"a", b"b")]));
        check(&raw(0, b"\x01\x00a\x00\x00"), 4096, ok(&[(b"a", b"")]));
        check(
            &raw(0, b"\x01\x00a\x00\x00\x02\x00bc\x03\x00def"),
            4096,
            ok(&[(b"a", b""), (b"bc", b"def")]),
        );
        // Bytes past the packet are the body and do not belong to it.
        check(
            &[raw(0, b"\x01\x00a\x01\x00b").as_slice(), b"BODY"].concat(),
            4096,
            ok(&[(b"a", b"b")]),
        );
        // Incomplete.
        check(b"", 4096, Ok(None));
        check(b"\x00\x05\x00", 4096, Ok(None));
        check(b"\x00\x05\x00\x00\x01\x00", 4096, Ok(None));
        // The size limit is inclusive and checked before the block arrives.
        check(&raw(0, b"\x01\x00a\x01\x00b"), 6, ok(&[(b"a", b"b")]));
        check(
            &raw(0, b"\x01\x00a\x01\x00b"),
            5,
            Err(TooLarge { size: 6, max: 5 }),
        );
        check(
            b"\x00\xff\xff\x00",
            4096,
            Err(TooLarge {
                size: 65535,
                max: 4096,
            }),
        );
        // Other modifiers are refused as soon as the header is in.
        check(
            b"\x05\x00\x00\x00",
            4096,
            Err(UnsupportedModifier1 { modifier1: 5 }),
        );
        check(
            b"\x48\x10\x00\x00",
            4096,
            Err(UnsupportedModifier1 { modifier1: 72 }),
        );
        // Malformed blocks.
        check(
            &raw(0, b"\x00\x00\x01\x00b"),
            4096,
            Err(EmptyKey { index: 0 }),
        );
        check(
            &raw(0, b"\x01\x00a\x00\x00\x00\x00\x00\x00"),
            4096,
            Err(EmptyKey { index: 1 }),
        );
        check(
            &raw(0, b"\x01"),
            4096,
            Err(VarPastEnd { index: 0, size: 1 }),
        );
        check(
            &raw(0, b"\x05\x00ab"),
            4096,
            Err(VarPastEnd { index: 0, size: 4 }),
        );
        check(
            &raw(0, b"\x01\x00a"),
            4096,
            Err(VarPastEnd { index: 0, size: 3 }),
        );
        check(
            &raw(0, b"\x01\x00a\x01"),
            4096,
            Err(VarPastEnd { index: 0, size: 4 }),
        );
        check(
            &raw(0, b"\x01\x00a\x02\x00b"),
            4096,
            Err(VarPastEnd { index: 0, size: 6 }),
        );
        check(
            &raw(0, b"\x01\x00a\x00\x00\x01"),
            4096,
            Err(VarPastEnd { index: 1, size: 6 }),
        );
    }

    #[test]
    fn var_limit() {
        let vars: Vec<(&[u8], &[u8])> = vec![(b"k", b"v"); MAX_VARS + 1];
        let buf = encode_packet(0, 0, &vars).unwrap();
        assert_eq!(
            parse_packet(&buf, 65535),
            Err(ParseUwsgiError::TooManyVars { max: MAX_VARS })
        );
        let buf = encode_packet(0, 0, &vars[..MAX_VARS]).unwrap();
        assert_eq!(
            parse_packet(&buf, 65535).unwrap().unwrap().vars.len(),
            MAX_VARS
        );
        assert_eq!(
            parse_packet_with_limit(&buf, 65535, 3),
            Err(ParseUwsgiError::TooManyVars { max: 3 })
        );
    }

    #[test]
    fn packet_accessors() {
        let buf = encode_packet(
            0,
            7,
            &[(b"CONTENT_LENGTH", b"12"), (b"A", b"1"), (b"A", b"2")],
        )
        .unwrap();
        let packet = parse_packet(&buf, 4096).unwrap().unwrap();
        assert_eq!(packet.len, buf.len());
        assert_eq!(
            packet.header,
            PacketHeader {
                modifier1: 0,
                size: (buf.len() - HEADER_LEN) as u16,
                modifier2: 7
            }
        );
        assert_eq!(packet.get(b"A"), Some(&b"1"[..]));
        assert_eq!(packet.get(b"a"), None);
        assert_eq!(packet.content_length, 12);

        let check_cl = |value: Option<&[u8]>, expected: Result<u64, ParseUwsgiError>| {
            let vars: Vec<(&[u8], &[u8])> = value
                .map(|v| (&b"CONTENT_LENGTH"[..], v))
                .into_iter()
                .collect();
            let buf = encode_packet(0, 0, &vars).unwrap();
            let parsed = parse_packet(&buf, 4096).map(|packet| packet.unwrap().content_length);
            assert_eq!(parsed, expected, "CONTENT_LENGTH {value:?}");
        };
        let invalid = |value: &str| {
            Err(ParseUwsgiError::InvalidContentLength {
                value: value.into(),
            })
        };
        check_cl(None, Ok(0));
        check_cl(Some(b""), Ok(0));
        check_cl(Some(b"0"), Ok(0));
        check_cl(Some(b"18446744073709551615"), Ok(u64::MAX));
        check_cl(
            Some(b"18446744073709551616"),
            invalid("18446744073709551616"),
        );
        check_cl(Some(b"-1"), invalid("-1"));
        check_cl(Some(b" 1"), invalid(" 1"));
        check_cl(Some(b"1x"), invalid("1x"));
    }

    #[test]
    fn encode_cases() {
        use EncodeUwsgiError::*;
        assert_eq!(encode_packet(0, 0, &[]), Ok(vec![0, 0, 0, 0]));
        assert_eq!(
            encode_packet(9, 3, &[(b"ab", b"c")]),
            Ok(b"\x09\x07\x00\x03\x02\x00ab\x01\x00c".to_vec())
        );
        assert_eq!(
            encode_packet(0, 0, &[(b"a", b""), (b"", b"x")]),
            Err(EmptyKey { index: 1 })
        );
        let long = vec![b'x'; 65536];
        assert_eq!(
            encode_packet(0, 0, &[(b"a", &long)]),
            Err(FieldTooLong {
                index: 0,
                len: 65536
            })
        );
        assert_eq!(
            encode_packet(0, 0, &[(&long, b"")]),
            Err(FieldTooLong {
                index: 0,
                len: 65536
            })
        );
        let half = vec![b'x'; 40000];
        assert_eq!(
            encode_packet(0, 0, &[(b"a", &half), (b"b", &half)]),
            Err(PacketTooLarge { size: 80010 })
        );
    }

    #[test]
    fn modifier1_round_trips() {
        for value in 0..=u8::MAX {
            if let Some(modifier) = Modifier1::from_u8(value) {
                assert_eq!(modifier as u8, value);
            }
        }
        assert_eq!(Modifier1::from_u8(173), Some(Modifier1::Rpc));
        assert_eq!(Modifier1::from_u8(1), None);
    }

    #[test]
    fn error_messages_match_uwsgi() {
        assert_eq!(
            ParseUwsgiError::TooLarge {
                size: 5000,
                max: 4096
            }
            .to_string(),
            "invalid request block size: 5000 (max 4096)"
        );
    }

    fn arb_vars() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
        prop::collection::vec(
            (
                prop::collection::vec(any::<u8>(), 1..20),
                prop::collection::vec(any::<u8>(), 0..40),
            ),
            0..40,
        )
    }

    proptest! {
        #[test]
        fn encode_then_parse_round_trips(vars in arb_vars(), modifier2 in any::<u8>(), body in prop::collection::vec(any::<u8>(), 0..8)) {
            let borrowed: Vec<(&[u8], &[u8])> = vars.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
            let packet = encode_packet(0, modifier2, &borrowed).unwrap();
            let mut buf = packet.clone();
            buf.extend_from_slice(&body);
            let parsed = parse_packet(&buf, 65535).unwrap().unwrap();
            prop_assert_eq!(parsed.len, packet.len());
            prop_assert_eq!(parsed.header.modifier2, modifier2);
            prop_assert_eq!(&parsed.vars, &borrowed);
            // Every strict prefix is incomplete, never an error.
            for cut in 0..packet.len() {
                prop_assert_eq!(parse_packet(&buf[..cut], 65535), Ok(None));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some(packet)) = parse_packet(&buf, 4096) {
                prop_assert!(packet.len <= buf.len());
            }
        }
    }
}
