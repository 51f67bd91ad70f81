//! FastCGI (`fastcgi-socket`, `fastcgi-nph-socket`; the FastCGI 1.0 specification, nginx's
//! `fastcgi_pass`): a connection carries records of an 8-byte header (version 1, type,
//! request id, content length, padding length) and up to 65535 bytes of content.
//!
//! A request is `FCGI_BEGIN_REQUEST`, then the `FCGI_PARAMS` stream (name-value pairs with
//! 1- or 4-byte lengths, ended by an empty `FCGI_PARAMS`), then the `FCGI_STDIN` stream (the
//! body, ended by an empty `FCGI_STDIN`). [`parse_request`] reads the head into a
//! [`uwsgi::Packet`](super::uwsgi::Packet), so the worker serves it as it serves the uwsgi
//! protocol; [`StdinDecoder`] unwraps the body; the response goes back as `FCGI_STDOUT`
//! records ([`stdout_header`]) with CGI's head (`Status: 200 OK`, or an HTTP status line
//! for `fastcgi-nph-socket`), then an empty `FCGI_STDOUT` and `FCGI_END_REQUEST`
//! ([`end_request`]). `FCGI_KEEP_CONN` in the begin record keeps the connection for the next
//! request; without it the connection closes after the response.
//!
//! As in uWSGI, one connection carries one request at a time (`FCGI_MPXS_CONNS` is 0: records
//! of a second request id close the connection), only the responder role is served, and a
//! name-value pair must lie within one `FCGI_PARAMS` record (nginx sends them all in one).
//! Management records (request id 0) are answered by [`management`]: `FCGI_GET_VALUES` with
//! `FCGI_GET_VALUES_RESULT`, anything else with `FCGI_UNKNOWN_TYPE`.
//!
//! Nothing here does I/O: it maps bytes to values and values to bytes.

use super::uwsgi::{Packet, PacketHeader};

/// Bytes of a record header.
pub const HEADER_LEN: usize = 8;
/// The most content one record carries.
pub const MAX_CONTENT: usize = u16::MAX as usize;
/// The only protocol version there is.
const VERSION: u8 = 1;
/// `FCGI_KEEP_CONN` in the begin record's flags.
const KEEP_CONN: u8 = 1;
/// The begin record's role: a responder answers a request (the others, authorizer and
/// filter, are not served).
const RESPONDER: u16 = 1;

/// Record types, as numbered on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordType {
    BeginRequest = 1,
    AbortRequest = 2,
    EndRequest = 3,
    Params = 4,
    Stdin = 5,
    Stdout = 6,
    Stderr = 7,
    Data = 8,
    GetValues = 9,
    GetValuesResult = 10,
    UnknownType = 11,
}

/// One record's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    kind: u8,
    id: u16,
    content: usize,
    padding: usize,
}

impl Header {
    /// Decodes the header at the start of `buf`; `Ok(None)` until 8 bytes have arrived.
    fn decode(buf: &[u8]) -> Result<Option<Self>, ParseFastCgiError> {
        let Some(bytes) = buf.get(..HEADER_LEN) else {
            return Ok(None);
        };
        if bytes[0] != VERSION {
            return Err(ParseFastCgiError::Version { version: bytes[0] });
        }
        Ok(Some(Header {
            kind: bytes[1],
            id: u16::from_be_bytes([bytes[2], bytes[3]]),
            content: usize::from(u16::from_be_bytes([bytes[4], bytes[5]])),
            padding: usize::from(bytes[6]),
        }))
    }

    /// Bytes of the whole record: header, content and padding.
    fn total(&self) -> usize {
        HEADER_LEN + self.content + self.padding
    }
}

/// Why a FastCGI connection was closed. Every variant means the stream position is lost or
/// the peer wants what kaiser does not do, so the connection closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseFastCgiError {
    #[error("invalid FastCGI record: version {version} (only 1 exists)")]
    Version { version: u8 },
    #[error(
        "invalid FastCGI request: it starts with a record of type {kind}, not FCGI_BEGIN_REQUEST"
    )]
    NoBegin { kind: u8 },
    #[error("invalid FastCGI request: FCGI_BEGIN_REQUEST has {len} content bytes (8 expected)")]
    BeginLength { len: usize },
    #[error("invalid FastCGI request: request id 0 is for management records")]
    ZeroId,
    #[error("FastCGI role {role} is not served (only the responder role, 1)")]
    Role { role: u16 },
    #[error("a record of FastCGI request {other} arrived while request {id} was open on the connection (multiplexing is not supported)")]
    Multiplexed { id: u16, other: u16 },
    #[error("invalid FastCGI request: a name-value pair in FCGI_PARAMS runs past its record")]
    PairPastRecord,
    #[error("invalid FastCGI request: the params take more than {max} bytes (buffer-size)")]
    TooLarge { max: usize },
    #[error("too many FastCGI params (max {max})")]
    TooManyVars { max: usize },
    #[error("invalid FastCGI request: {0}")]
    ContentLength(super::uwsgi::ParseUwsgiError),
    #[error("the FastCGI client aborted request {id}")]
    Aborted { id: u16 },
    #[error(
        "the FastCGI stdin stream ended after {got} of the {declared} bytes of CONTENT_LENGTH"
    )]
    ShortBody { got: u64, declared: u64 },
}

/// What `FCGI_BEGIN_REQUEST` said about the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Begin {
    /// The request id every record of the request, and of its response, carries.
    pub id: u16,
    /// `FCGI_KEEP_CONN`: the connection carries another request after this one.
    pub keep_conn: bool,
}

/// A request head: the begin record and the params, read into a uwsgi packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub begin: Begin,
    /// The params as CGI variables. `len` is the bytes of the head (begin and params
    /// records); the stdin records follow. `header.size` is the params' size, for the log.
    pub packet: Packet<'a>,
}

/// Parses the request head at the start of `buf`: the begin record and the params stream,
/// up to and including its empty closing record (or, as uWSGI reads it, up to the first stdin
/// record). `Ok(None)` until it has arrived whole. `max` bounds the params' content
/// (`buffer-size`); the head's records, headers and padding included, take at most twice
/// that, so a head is refused as soon as a record header shows it would be larger.
pub fn parse_request(buf: &[u8], max: usize) -> Result<Option<Request<'_>>, ParseFastCgiError> {
    let Some(first) = Header::decode(buf)? else {
        return Ok(None);
    };
    if first.kind != RecordType::BeginRequest as u8 {
        return Err(ParseFastCgiError::NoBegin { kind: first.kind });
    }
    if first.content != 8 {
        return Err(ParseFastCgiError::BeginLength { len: first.content });
    }
    if first.id == 0 {
        return Err(ParseFastCgiError::ZeroId);
    }
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + 8) else {
        return Ok(None);
    };
    let role = u16::from_be_bytes([body[0], body[1]]);
    if role != RESPONDER {
        return Err(ParseFastCgiError::Role { role });
    }
    let begin = Begin {
        id: first.id,
        keep_conn: body[2] & KEEP_CONN != 0,
    };
    let head_limit = 2 * max + 2 * HEADER_LEN + 8;
    let mut pos = first.total();
    let mut params_size = 0usize;
    let mut vars = Vec::with_capacity(32);
    let end = loop {
        if pos > buf.len() {
            return Ok(None);
        }
        let Some(header) = Header::decode(&buf[pos..])? else {
            return Ok(None);
        };
        if header.id != begin.id {
            if header.id == 0 {
                // A management record in the middle of a request: nothing to do with it.
                check_head_size(pos, &header, head_limit, max)?;
                pos += header.total();
                continue;
            }
            return Err(ParseFastCgiError::Multiplexed {
                id: begin.id,
                other: header.id,
            });
        }
        match header.kind {
            kind if kind == RecordType::Stdin as u8 => break pos,
            kind if kind == RecordType::AbortRequest as u8 => {
                return Err(ParseFastCgiError::Aborted { id: begin.id });
            }
            kind if kind == RecordType::BeginRequest as u8 => {
                return Err(ParseFastCgiError::Multiplexed {
                    id: begin.id,
                    other: header.id,
                });
            }
            _ => {}
        }
        check_head_size(pos, &header, head_limit, max)?;
        let is_params = header.kind == RecordType::Params as u8;
        if is_params {
            params_size += header.content;
            if params_size > max {
                return Err(ParseFastCgiError::TooLarge { max });
            }
            if header.content == 0 {
                if buf.len() < pos + header.total() {
                    return Ok(None);
                }
                break pos + header.total();
            }
            let Some(content) = buf.get(pos + HEADER_LEN..pos + HEADER_LEN + header.content) else {
                return Ok(None);
            };
            read_pairs(content, &mut vars)?;
        }
        pos += header.total();
    };
    let content_length =
        super::uwsgi::content_length(&vars).map_err(ParseFastCgiError::ContentLength)?;
    Ok(Some(Request {
        begin,
        packet: Packet {
            header: PacketHeader {
                modifier1: 0,
                size: params_size.min(usize::from(u16::MAX)) as u16,
                modifier2: 0,
            },
            vars,
            len: end,
            content_length,
        },
    }))
}

/// Refuses a head whose records (this one included) would take more than `head_limit`.
fn check_head_size(
    pos: usize,
    header: &Header,
    head_limit: usize,
    max: usize,
) -> Result<(), ParseFastCgiError> {
    if pos + header.total() > head_limit {
        return Err(ParseFastCgiError::TooLarge { max });
    }
    Ok(())
}

/// Appends the name-value pairs of one params record's content to `vars`. A pair with an
/// empty name is dropped (no CGI variable can have it).
fn read_pairs<'a>(
    mut content: &'a [u8],
    vars: &mut Vec<(&'a [u8], &'a [u8])>,
) -> Result<(), ParseFastCgiError> {
    while !content.is_empty() {
        let (name_len, rest) = pair_length(content)?;
        let (value_len, rest) = pair_length(rest)?;
        if rest.len() < name_len || rest.len() - name_len < value_len {
            return Err(ParseFastCgiError::PairPastRecord);
        }
        let (name, rest) = rest.split_at(name_len);
        let (value, rest) = rest.split_at(value_len);
        if !name.is_empty() {
            if vars.len() == super::uwsgi::MAX_VARS {
                return Err(ParseFastCgiError::TooManyVars {
                    max: super::uwsgi::MAX_VARS,
                });
            }
            vars.push((name, value));
        }
        content = rest;
    }
    Ok(())
}

/// A name or value length: one byte below 128, else four bytes with the top bit set.
fn pair_length(buf: &[u8]) -> Result<(usize, &[u8]), ParseFastCgiError> {
    match buf {
        [short, rest @ ..] if *short < 0x80 => Ok((usize::from(*short), rest)),
        [a, b, c, d, rest @ ..] => Ok((
            (u32::from_be_bytes([*a, *b, *c, *d]) & 0x7fff_ffff) as usize,
            rest,
        )),
        _ => Err(ParseFastCgiError::PairPastRecord),
    }
}

/// Unwraps a request's `FCGI_STDIN` stream into its body, as a resumable state machine: feed
/// it whatever bytes arrived, get body bytes appended to a `Vec` and the bytes used, so the
/// caller knows where the connection's next request begins.
///
/// With a `CONTENT_LENGTH`, the body is that many bytes: stdin bytes past it are dropped, and
/// a stream that ends short of it is an error. Records of other types for the request
/// (`FCGI_DATA`, a late `FCGI_PARAMS`) and management records are skipped; a new request or
/// `FCGI_ABORT_REQUEST` is an error (the connection closes).
#[derive(Debug, Clone)]
pub struct StdinDecoder {
    id: u16,
    declared: Option<u64>,
    delivered: u64,
    state: StdinState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StdinState {
    /// At a record header.
    Header,
    /// Inside a record's content; `body`: it is the request's stdin.
    Content {
        left: usize,
        padding: usize,
        body: bool,
    },
    Padding {
        left: usize,
    },
    /// The empty stdin record was read.
    Done,
}

/// What one call to [`StdinDecoder::decode`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input used. Less than the input when `done` (the rest belongs to the next
    /// request) or when `max` body bytes were produced.
    pub consumed: usize,
    /// The empty stdin record has been read.
    pub done: bool,
}

impl StdinDecoder {
    /// The decoder of request `id`'s stdin, `declared` its `CONTENT_LENGTH` if it sent one.
    pub fn new(id: u16, declared: Option<u64>) -> Self {
        Self {
            id,
            declared,
            delivered: 0,
            state: StdinState::Header,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == StdinState::Done
    }

    /// The body length the request declared (`CONTENT_LENGTH`).
    pub fn declared(&self) -> Option<u64> {
        self.declared
    }

    /// Decodes from `input`, appending at most `max` body bytes to `out`.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max: usize,
    ) -> Result<Decoded, ParseFastCgiError> {
        let mut pos = 0;
        let mut produced = 0;
        loop {
            match self.state {
                StdinState::Done => break,
                StdinState::Header => {
                    let Some(header) = Header::decode(&input[pos..])? else {
                        break;
                    };
                    if header.id != self.id && header.id != 0 {
                        return Err(ParseFastCgiError::Multiplexed {
                            id: self.id,
                            other: header.id,
                        });
                    }
                    let ours = header.id == self.id;
                    if ours && header.kind == RecordType::AbortRequest as u8 {
                        return Err(ParseFastCgiError::Aborted { id: self.id });
                    }
                    if ours && header.kind == RecordType::BeginRequest as u8 {
                        return Err(ParseFastCgiError::Multiplexed {
                            id: self.id,
                            other: header.id,
                        });
                    }
                    let stdin = ours && header.kind == RecordType::Stdin as u8;
                    if stdin && header.content == 0 {
                        // The end of the stream: its padding too, so that the next request
                        // starts right after what was consumed.
                        if input.len() - pos < header.total() {
                            break;
                        }
                        if let Some(declared) = self.declared {
                            if self.delivered < declared {
                                return Err(ParseFastCgiError::ShortBody {
                                    got: self.delivered,
                                    declared,
                                });
                            }
                        }
                        pos += header.total();
                        self.state = StdinState::Done;
                        break;
                    }
                    pos += HEADER_LEN;
                    self.state = StdinState::Content {
                        left: header.content,
                        padding: header.padding,
                        body: stdin,
                    };
                }
                StdinState::Content {
                    left,
                    padding,
                    body,
                } => {
                    let available = left.min(input.len() - pos);
                    let take = if body {
                        available.min(max - produced)
                    } else {
                        available
                    };
                    if take == 0 && left > 0 {
                        break;
                    }
                    if body {
                        // Within CONTENT_LENGTH to the app, past it dropped.
                        let room = self
                            .declared
                            .map_or(take as u64, |d| d.saturating_sub(self.delivered))
                            .min(take as u64) as usize;
                        out.extend_from_slice(&input[pos..pos + room]);
                        self.delivered += room as u64;
                        produced += take;
                    }
                    pos += take;
                    self.state = if take == left {
                        StdinState::Padding { left: padding }
                    } else {
                        StdinState::Content {
                            left: left - take,
                            padding,
                            body,
                        }
                    };
                }
                StdinState::Padding { left } => {
                    let take = left.min(input.len() - pos);
                    pos += take;
                    if take < left {
                        self.state = StdinState::Padding { left: left - take };
                        break;
                    }
                    self.state = StdinState::Header;
                }
            }
            if produced == max && max > 0 {
                break;
            }
        }
        Ok(Decoded {
            consumed: pos,
            done: self.state == StdinState::Done,
        })
    }
}

/// The header of an `FCGI_STDOUT` record of `len` bytes (at most [`MAX_CONTENT`]) for
/// request `id`, without padding, as uWSGI and nginx send them.
pub fn stdout_header(id: u16, len: usize) -> [u8; HEADER_LEN] {
    debug_assert!(len <= MAX_CONTENT, "a record carries at most 65535 bytes");
    record_header(RecordType::Stdout, id, len as u16)
}

fn record_header(kind: RecordType, id: u16, len: u16) -> [u8; HEADER_LEN] {
    let [id_hi, id_lo] = id.to_be_bytes();
    let [len_hi, len_lo] = len.to_be_bytes();
    [VERSION, kind as u8, id_hi, id_lo, len_hi, len_lo, 0, 0]
}

/// The end of a response: the empty `FCGI_STDOUT` that closes the stream, then
/// `FCGI_END_REQUEST` (application status 0, `FCGI_REQUEST_COMPLETE`).
pub fn end_request(id: u16) -> [u8; 3 * HEADER_LEN] {
    let mut out = [0u8; 3 * HEADER_LEN];
    out[..HEADER_LEN].copy_from_slice(&stdout_header(id, 0));
    out[HEADER_LEN..2 * HEADER_LEN].copy_from_slice(&record_header(RecordType::EndRequest, id, 8));
    // The body (app status, protocol status, reserved) is all zeros.
    out
}

/// What [`management`] found at the start of a connection's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Management {
    /// The bytes start with something else (a request), or nothing yet.
    None,
    /// A management record has begun arriving: read more.
    NeedMore,
    /// A management record of `consumed` bytes, answered with `reply`.
    Answered { consumed: usize, reply: Vec<u8> },
}

/// Answers the management record (request id 0) at the start of `buf`, if there is one:
/// `FCGI_GET_VALUES` with `FCGI_GET_VALUES_RESULT` (`FCGI_MAX_CONNS` and `FCGI_MAX_REQS`:
/// `capacity`; `FCGI_MPXS_CONNS`: 0), any other type with `FCGI_UNKNOWN_TYPE`.
///
/// Bytes that are no record at all are left to [`parse_request`] to refuse.
pub fn management(buf: &[u8], capacity: usize) -> Result<Management, ParseFastCgiError> {
    if buf.first() != Some(&VERSION) {
        return Ok(Management::None);
    }
    let Some(header) = Header::decode(buf)? else {
        return Ok(Management::NeedMore);
    };
    if header.id != 0 {
        return Ok(Management::None);
    }
    let Some(content) = buf.get(HEADER_LEN..HEADER_LEN + header.content) else {
        return Ok(Management::NeedMore);
    };
    if buf.len() < header.total() {
        return Ok(Management::NeedMore);
    }
    let mut reply = Vec::new();
    if header.kind == RecordType::GetValues as u8 {
        let mut asked = Vec::new();
        read_pairs(content, &mut asked)?;
        let capacity = capacity.to_string();
        let mut pairs = Vec::new();
        for (name, _) in asked {
            let value = match name {
                b"FCGI_MAX_CONNS" | b"FCGI_MAX_REQS" => capacity.as_bytes(),
                b"FCGI_MPXS_CONNS" => b"0".as_slice(),
                _ => continue,
            };
            write_pair(&mut pairs, name, value);
        }
        let len = pairs.len().min(MAX_CONTENT);
        reply.extend_from_slice(&record_header(RecordType::GetValuesResult, 0, len as u16));
        reply.extend_from_slice(&pairs[..len]);
    } else {
        reply.extend_from_slice(&record_header(RecordType::UnknownType, 0, 8));
        reply.extend_from_slice(&[header.kind, 0, 0, 0, 0, 0, 0, 0]);
    }
    Ok(Management::Answered {
        consumed: header.total(),
        reply,
    })
}

/// Appends one name-value pair.
fn write_pair(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    for len in [name.len(), value.len()] {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
        }
    }
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests;
