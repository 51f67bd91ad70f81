//! A strict HTTP/1.1 client over a raw stream, for checking what a server really sends.
//!
//! Strict on purpose: it rejects what a lenient client would paper over (bare LF line ends,
//! both Content-Length and Transfer-Encoding, conflicting lengths, bad chunk framing), and it
//! reports how the body was framed, so tests can assert the framing itself. Every read has a
//! timeout ([`IO_TIMEOUT`]); every error says what was being read and what arrived.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::wait::START_TIMEOUT;

/// The longest any single read may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// A byte stream the client can talk over: TCP or unix.
pub trait Connection: Read + Write {
    fn set_io_timeout(&self, timeout: Duration) -> io::Result<()>;
    fn shutdown_write(&self) -> io::Result<()>;
}

impl Connection for TcpStream {
    fn set_io_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

impl Connection for UnixStream {
    fn set_io_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }

    fn shutdown_write(&self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

/// Header or trailer fields, in order, names as sent.
pub type Fields = Vec<(String, String)>;

/// How a response's body was delimited on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body by definition: a HEAD request, or a 1xx, 204 or 304 status.
    None,
    ContentLength(u64),
    Chunked,
    /// Neither length nor chunking: the body ran until the server closed the connection.
    UntilClose,
}

#[derive(Debug, Clone)]
pub struct Response {
    /// `HTTP/1.1` or `HTTP/1.0` as sent.
    pub version: String,
    pub status: u16,
    pub reason: String,
    /// In the order received, names as sent.
    pub headers: Fields,
    /// The decoded body (chunking removed).
    pub body: Vec<u8>,
    pub framing: BodyFraming,
    /// Trailer fields of a chunked body.
    pub trailers: Fields,
    /// Interim (1xx) statuses that preceded this response, e.g. `[100]`.
    pub interim: Vec<u16>,
}

impl Response {
    /// The first header named `name` (case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Every header named `name`, in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl fmt::Display for Response {
    /// The response roughly as it was on the wire, body cut at 2 KiB: for failure messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {} {}", self.version, self.status, self.reason)?;
        for (name, value) in &self.headers {
            writeln!(f, "{name}: {value}")?;
        }
        writeln!(f, "[{:?}, {} body bytes]", self.framing, self.body.len())?;
        write!(f, "{}", preview(&self.body))
    }
}

/// One client connection; keeps unread bytes between responses, so keep-alive and pipelined
/// requests work.
pub struct HttpConn<S: Connection> {
    stream: S,
    buffer: Vec<u8>,
    eof: bool,
}

impl<S: Connection> HttpConn<S> {
    /// Wraps `stream`, setting [`IO_TIMEOUT`] on its reads and writes.
    pub fn new(stream: S) -> HttpConn<S> {
        stream
            .set_io_timeout(IO_TIMEOUT)
            .expect("setting socket timeouts");
        HttpConn {
            stream,
            buffer: Vec::new(),
            eof: false,
        }
    }

    pub fn stream(&self) -> &S {
        &self.stream
    }

    pub fn into_inner(self) -> S {
        self.stream
    }

    /// Writes `raw` as is (one request, several pipelined ones, or a part of one).
    pub fn send(&mut self, raw: &[u8]) -> Result<(), String> {
        self.stream
            .write_all(raw)
            .and_then(|()| self.stream.flush())
            .map_err(|error| format!("sending {} request bytes failed: {error}", raw.len()))
    }

    /// Sends `raw` and reads its response, skipping (and recording in `interim`) any
    /// `100 Continue`-style interim responses. A `HEAD` request is read as having no body.
    pub fn request(&mut self, raw: &[u8]) -> Result<Response, String> {
        self.send(raw)?;
        let head_request = raw.starts_with(b"HEAD ");
        let mut interim = Vec::new();
        loop {
            let mut response = self.read_response(head_request)?;
            if (100..200).contains(&response.status) && response.status != 101 {
                interim.push(response.status);
                continue;
            }
            response.interim = interim;
            return Ok(response);
        }
    }

    /// Reads the next response (an interim 1xx one included). `head_request` says whether
    /// it answers a HEAD, which has no body whatever its headers say.
    pub fn read_response(&mut self, head_request: bool) -> Result<Response, String> {
        let head = self.read_head()?;
        let mut response = parse_head(&head)?;
        response.framing = framing(&response, head_request)?;
        match response.framing {
            BodyFraming::None => {}
            BodyFraming::ContentLength(length) => {
                let length = usize::try_from(length).expect("test bodies fit in memory");
                response.body = self
                    .read_exact(length)
                    .map_err(|error| format!("{error}\nresponse head:\n{response}"))?;
            }
            BodyFraming::Chunked => {
                let (body, trailers) = self
                    .read_chunked()
                    .map_err(|error| format!("{error}\nresponse head:\n{response}"))?;
                response.body = body;
                response.trailers = trailers;
            }
            BodyFraming::UntilClose => {
                while !self.eof {
                    self.fill("a body delimited by the connection closing")?;
                }
                response.body = std::mem::take(&mut self.buffer);
            }
        }
        Ok(response)
    }

    /// Succeeds if the server closes the connection within `timeout` without sending
    /// anything more.
    pub fn expect_closed(&mut self, timeout: Duration) -> Result<(), String> {
        self.stream
            .set_io_timeout(timeout)
            .expect("setting socket timeouts");
        let result = loop {
            if !self.buffer.is_empty() {
                break Err(format!(
                    "expected the connection to be closed, but the server sent more:\n{}",
                    preview(&self.buffer)
                ));
            }
            if self.eof {
                break Ok(());
            }
            if let Err(error) = self.fill("the end of the connection") {
                break Err(error);
            }
        };
        self.stream
            .set_io_timeout(IO_TIMEOUT)
            .expect("setting socket timeouts");
        result
    }

    /// Reads more bytes into the buffer; sets `eof` when the peer closed.
    fn fill(&mut self, reading: &str) -> Result<(), String> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.buffer.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(format!(
                        "timed out reading {reading}; received so far (unparsed):\n{}",
                        preview(&self.buffer)
                    ));
                }
                Err(error) if error.kind() == io::ErrorKind::ConnectionReset => {
                    // A reset is how a server that closes with unread input ends a
                    // connection; for framing it is the same as a close.
                    self.eof = true;
                    return Ok(());
                }
                Err(error) => {
                    return Err(format!(
                        "reading {reading} failed: {error}; received so far:\n{}",
                        preview(&self.buffer)
                    ))
                }
            }
        }
    }

    fn read_head(&mut self) -> Result<Vec<u8>, String> {
        loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                let head: Vec<u8> = self.buffer.drain(..end + 4).collect();
                return Ok(head);
            }
            if self.buffer.len() > MAX_HEAD {
                return Err(format!(
                    "response head longer than {MAX_HEAD} bytes:\n{}",
                    preview(&self.buffer)
                ));
            }
            if self.eof {
                let hint = if find(&self.buffer, b"\n\n").is_some() {
                    " (it has a blank line ending in a bare LF: lines must end in CRLF)"
                } else {
                    ""
                };
                return Err(if self.buffer.is_empty() {
                    "the server closed the connection without sending a response".to_owned()
                } else {
                    format!(
                        "the server closed the connection in the middle of a response head{hint}:\n{}",
                        preview(&self.buffer)
                    )
                });
            }
            self.fill("a response head")?;
        }
    }

    fn read_exact(&mut self, length: usize) -> Result<Vec<u8>, String> {
        while self.buffer.len() < length {
            if self.eof {
                return Err(format!(
                    "the server closed the connection after {} of {length} body bytes",
                    self.buffer.len()
                ));
            }
            self.fill(&format!("a body of {length} bytes"))?;
        }
        Ok(self.buffer.drain(..length).collect())
    }

    fn read_line(&mut self, reading: &str) -> Result<Vec<u8>, String> {
        loop {
            if let Some(end) = find(&self.buffer, b"\r\n") {
                let line: Vec<u8> = self.buffer.drain(..end + 2).take(end).collect();
                return Ok(line);
            }
            if self.buffer.len() > 8192 {
                return Err(format!("{reading} is longer than 8 KiB"));
            }
            if self.eof {
                return Err(format!(
                    "the server closed the connection while sending {reading}; got:\n{}",
                    preview(&self.buffer)
                ));
            }
            self.fill(reading)?;
        }
    }

    fn read_chunked(&mut self) -> Result<(Vec<u8>, Fields), String> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line("a chunk-size line")?;
            let line = String::from_utf8_lossy(&line).into_owned();
            let size_text = line
                .split(';')
                .next()
                .unwrap_or("")
                .trim_end_matches([' ', '\t']);
            let size = usize::from_str_radix(size_text, 16)
                .ok()
                .filter(|_| !size_text.is_empty() && !size_text.starts_with('+'))
                .ok_or_else(|| {
                    format!(
                        "bad chunk-size line {line:?} after {} body bytes",
                        body.len()
                    )
                })?;
            if size == 0 {
                break;
            }
            body.extend(self.read_exact(size)?);
            let end = self.read_exact(2)?;
            if end != b"\r\n" {
                return Err(format!(
                    "chunk of {size} bytes not followed by CRLF but by {:?}",
                    String::from_utf8_lossy(&end)
                ));
            }
        }
        let mut trailers = Vec::new();
        loop {
            let line = self.read_line("the chunked trailer section")?;
            if line.is_empty() {
                return Ok((body, trailers));
            }
            trailers.push(parse_field(&line)?);
        }
    }
}

fn parse_head(head: &[u8]) -> Result<Response, String> {
    let text = std::str::from_utf8(head)
        .map_err(|_| format!("response head is not UTF-8:\n{}", preview(head)))?;
    let mut lines = text[..text.len() - 4].split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    let reason = parts.next().unwrap_or("");
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0")
        || code.len() != 3
        || !code.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(format!("bad status line {status_line:?}"));
    }
    let mut headers = Vec::new();
    for line in lines {
        if line.contains('\n') || line.contains('\r') {
            return Err(format!(
                "header line {line:?} has a bare CR or LF:\n{}",
                preview(head)
            ));
        }
        headers.push(parse_field(line.as_bytes())?);
    }
    Ok(Response {
        version: version.to_owned(),
        status: code.parse().expect("three ASCII digits"),
        reason: reason.to_owned(),
        headers,
        body: Vec::new(),
        framing: BodyFraming::None,
        trailers: Vec::new(),
        interim: Vec::new(),
    })
}

fn parse_field(line: &[u8]) -> Result<(String, String), String> {
    let text = String::from_utf8_lossy(line);
    let Some((name, value)) = text.split_once(':') else {
        return Err(format!("header line without a colon: {text:?}"));
    };
    let is_token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(is_token) {
        return Err(format!("bad header name in {text:?}"));
    }
    Ok((name.to_owned(), value.trim_matches([' ', '\t']).to_owned()))
}

/// RFC 9112 §6.3, strictly.
fn framing(response: &Response, head_request: bool) -> Result<BodyFraming, String> {
    let status = response.status;
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(BodyFraming::None);
    }
    let transfer_encoding = response.headers_named("Transfer-Encoding");
    let lengths = response.headers_named("Content-Length");
    if !transfer_encoding.is_empty() && !lengths.is_empty() {
        return Err(format!(
            "response has both Transfer-Encoding and Content-Length:\n{response}"
        ));
    }
    if let Some(last) = transfer_encoding.last() {
        let chunked = last
            .rsplit(',')
            .next()
            .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
        return Ok(if chunked {
            BodyFraming::Chunked
        } else {
            BodyFraming::UntilClose
        });
    }
    let mut length = None;
    for value in lengths.iter().flat_map(|value| value.split(',')) {
        let parsed: u64 = value
            .trim()
            .parse()
            .map_err(|_| format!("bad Content-Length {value:?}:\n{response}"))?;
        if length.is_some_and(|known| known != parsed) {
            return Err(format!("conflicting Content-Length values:\n{response}"));
        }
        length = Some(parsed);
    }
    Ok(match length {
        Some(length) => BodyFraming::ContentLength(length),
        None => BodyFraming::UntilClose,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Up to 2 KiB of `bytes`, escaped, for failure messages.
pub(super) fn preview(bytes: &[u8]) -> String {
    const LIMIT: usize = 2048;
    let shown = &bytes[..bytes.len().min(LIMIT)];
    let mut text = String::new();
    for chunk in shown.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\r' => text.push_str("\\r"),
                '\n' => text.push_str("\\n\n"),
                c if c.is_control() && c != '\t' => text.push_str(&c.escape_default().to_string()),
                c => text.push(c),
            }
        }
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02x}"));
        }
    }
    if bytes.len() > LIMIT {
        text.push_str(&format!("… ({} more bytes)", bytes.len() - LIMIT));
    }
    text
}

/// A request as bytes: `METHOD TARGET HTTP/1.1`, the given headers, `Host: localhost` unless
/// given, and `Content-Length` when there is a body and neither Content-Length nor
/// Transfer-Encoding is given (so a test can send a chunked body it framed itself).
pub fn request_bytes(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let has = |name: &str| {
        headers
            .iter()
            .any(|(key, _)| key.eq_ignore_ascii_case(name))
    };
    let mut raw = format!("{method} {target} HTTP/1.1\r\n");
    if !has("Host") {
        raw.push_str("Host: localhost\r\n");
    }
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() && !has("Content-Length") && !has("Transfer-Encoding") {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut raw = raw.into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// Sends one request on a fresh `stream` and reads its response.
pub fn http_request<S: Connection>(stream: S, raw: &[u8]) -> Result<Response, String> {
    HttpConn::new(stream).request(raw)
}

/// `GET target` with `Connection: close` over a new TCP connection to `addr`.
pub fn http_get(addr: SocketAddr, target: &str) -> Result<Response, String> {
    let stream = TcpStream::connect_timeout(&addr, START_TIMEOUT)
        .map_err(|error| format!("cannot connect to {addr}: {error}"))?;
    http_request(
        stream,
        &request_bytes("GET", target, &[("Connection", "close")], b""),
    )
    .map_err(|error| format!("GET {target} from {addr}: {error}"))
}

/// `GET target` with `Connection: close` over a new connection to the unix socket `path`.
pub fn http_get_unix(path: &Path, target: &str) -> Result<Response, String> {
    let stream = UnixStream::connect(path)
        .map_err(|error| format!("cannot connect to {}: {error}", path.display()))?;
    http_request(
        stream,
        &request_bytes("GET", target, &[("Connection", "close")], b""),
    )
    .map_err(|error| format!("GET {target} from {}: {error}", path.display()))
}
