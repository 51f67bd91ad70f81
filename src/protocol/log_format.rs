//! uWSGI's `log-format` (`core/logging.c:uwsgi_build_log_format`, reference §7.2) compiled once
//! into a [`LogTemplate`], then rendered per request into a caller's reusable buffer; and the
//! log encoders (`log-encoder`, `log-req-encoder`: `prefix`, `suffix`, `nl`, `format`, `json`)
//! compiled the same way into an [`Encoder`].
//!
//! Pure: the caller hands in every value, and formats dates through [`TimeFormat`] (it owns
//! the clock and the time zone). It does not decide whether a request is logged (that is
//! [`super::log::LogConditions`]) nor where the line goes.
//!
//! As uWSGI: a `%(name)` chunk that renders empty prints `-`; an unknown name is a logvar
//! (`uwsgi.set_logvar`), `-` when the app set none; `%(var.NAME)` is the request variable
//! NAME. Unlike uWSGI, control characters and invalid UTF-8 in request-supplied values are
//! escaped as `\xNN`, as in the default line, so a crafted header cannot forge a log line.

use std::fmt::Write as _;

/// One variable of a log format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    Uri,
    Method,
    User,
    Addr,
    Host,
    Proto,
    Uagent,
    Referer,
    Status,
    /// Response body bytes.
    Rsize,
    /// Response head bytes.
    Hsize,
    /// Head and body.
    Size,
    /// The request's Content-Length.
    Cl,
    Micros,
    Msecs,
    /// Seconds, as a float.
    Secs,
    /// kaiser's name for the default line's time: milliseconds, or microseconds with
    /// `log-micros` (uWSGI 2.0 has no `%(rt)` and prints `-`).
    Rt,
    /// Start of the request, epoch milliseconds.
    Tmsecs,
    /// Start of the request, epoch microseconds.
    Tmicros,
    /// Start of the request, epoch seconds.
    Time,
    /// Start of the request, `%d/%b/%Y:%H:%M:%S %z` in local time.
    Ltime,
    /// Start of the request, in `log-date`'s strftime format with `log-format-strftime`, else
    /// as `ltime`.
    Ftime,
    /// Start of the request, as C's `ctime` (UTC, as the default line).
    Ctime,
    /// Now, epoch seconds.
    Epoch,
    Pid,
    Wid,
    Switches,
    Vars,
    Core,
    Vsz,
    Rss,
    VszM,
    RssM,
    Pktsize,
    Modifier1,
    Modifier2,
    Headers,
    Werr,
    Rerr,
    Ioerr,
    /// `%(var.NAME)`: the request variable NAME (`HTTP_X_REQUEST_ID`, …).
    RequestVar(String),
    /// `%(metric.NAME)`: kaiser has no metrics subsystem, so `-`.
    Metric(String),
    /// Any other name: a logvar the app set with `uwsgi.set_logvar`.
    LogVar(String),
}

impl Var {
    fn from_name(name: &str) -> Var {
        match name {
            "uri" => Var::Uri,
            "method" => Var::Method,
            "user" => Var::User,
            "addr" => Var::Addr,
            "host" => Var::Host,
            "proto" => Var::Proto,
            "uagent" => Var::Uagent,
            "referer" => Var::Referer,
            "status" => Var::Status,
            "rsize" => Var::Rsize,
            "hsize" => Var::Hsize,
            "size" => Var::Size,
            "cl" => Var::Cl,
            "micros" => Var::Micros,
            "msecs" => Var::Msecs,
            "secs" => Var::Secs,
            "rt" => Var::Rt,
            "tmsecs" => Var::Tmsecs,
            "tmicros" => Var::Tmicros,
            "time" => Var::Time,
            "ltime" => Var::Ltime,
            "ftime" => Var::Ftime,
            "ctime" => Var::Ctime,
            "epoch" => Var::Epoch,
            "pid" => Var::Pid,
            "wid" => Var::Wid,
            "switches" => Var::Switches,
            "vars" => Var::Vars,
            "core" => Var::Core,
            "vsz" => Var::Vsz,
            "rss" => Var::Rss,
            "vszM" => Var::VszM,
            "rssM" => Var::RssM,
            "pktsize" => Var::Pktsize,
            "modifier1" => Var::Modifier1,
            "modifier2" => Var::Modifier2,
            "headers" => Var::Headers,
            "werr" => Var::Werr,
            "rerr" => Var::Rerr,
            "ioerr" => Var::Ioerr,
            _ => {
                if let Some(var) = name.strip_prefix("var.") {
                    Var::RequestVar(var.to_owned())
                } else if let Some(metric) = name.strip_prefix("metric.") {
                    Var::Metric(metric.to_owned())
                } else {
                    Var::LogVar(name.to_owned())
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Chunk {
    Text(String),
    Var(Var),
    /// `%(var.NAME)`, by its index in [`LogTemplate::request_vars`].
    RequestVar(usize),
}

/// A parsed `log-format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTemplate {
    chunks: Vec<Chunk>,
    request_vars: Vec<String>,
}

/// Formats a time for `%(ltime)` and `%(ftime)`: `strftime(format, localtime(unix_secs))`.
pub trait TimeFormat {
    fn strftime(&self, format: &str, unix_secs: i64, out: &mut String);
}

/// Everything a template can print about one finished request. Strings are as they came
/// from the wire.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestRecord<'a> {
    pub uri: &'a [u8],
    pub method: &'a [u8],
    pub user: &'a [u8],
    pub addr: &'a [u8],
    pub host: &'a [u8],
    pub proto: &'a [u8],
    pub uagent: &'a [u8],
    pub referer: &'a [u8],
    pub status: u16,
    pub body_bytes: u64,
    pub header_bytes: u64,
    pub header_count: usize,
    pub content_length: u64,
    pub micros: u64,
    /// `log-micros`, for `%(rt)`.
    pub rt_in_micros: bool,
    pub start_unix_micros: u64,
    pub now_unix_secs: u64,
    pub pid: u32,
    pub worker_id: usize,
    pub core: usize,
    pub switches: u64,
    pub var_count: usize,
    pub packet_size: usize,
    pub modifier1: u8,
    pub modifier2: u8,
    /// The worker's address space and resident set in bytes, when the template asks.
    pub memory: Option<(u64, u64)>,
    pub read_errors: u32,
    pub write_errors: u32,
    /// `log-format-strftime` with a `log-date` format: what `%(ftime)` uses.
    pub ftime_format: Option<&'a str>,
    /// The values of the template's `%(var.NAME)`, in [`LogTemplate::request_vars`] order.
    pub request_vars: &'a [Option<&'a [u8]>],
    /// `uwsgi.set_logvar` values.
    pub logvars: &'a [(String, String)],
}

/// Which costly values a template reads, so the worker gathers only those.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    pub memory: bool,
    /// HTTP_HOST, HTTP_USER_AGENT, HTTP_REFERER, CONTENT_LENGTH.
    pub headers: bool,
}

impl LogTemplate {
    /// Compiles a format as uWSGI does: `%(name)` is a variable, everything else is text
    /// (a `%` not followed by `(`, or a `%(` never closed, stays literal). It cannot fail.
    pub fn parse(format: &str) -> LogTemplate {
        let mut chunks = Vec::new();
        let mut request_vars: Vec<String> = Vec::new();
        let mut text = String::new();
        let mut rest = format;
        while let Some(at) = rest.find("%(") {
            let after = &rest[at + 2..];
            match after.find(')') {
                Some(close) if close > 0 => {
                    text.push_str(&rest[..at]);
                    if !text.is_empty() {
                        chunks.push(Chunk::Text(std::mem::take(&mut text)));
                    }
                    chunks.push(match Var::from_name(&after[..close]) {
                        Var::RequestVar(name) => {
                            let index = match request_vars.iter().position(|n| *n == name) {
                                Some(index) => index,
                                None => {
                                    request_vars.push(name);
                                    request_vars.len() - 1
                                }
                            };
                            Chunk::RequestVar(index)
                        }
                        var => Chunk::Var(var),
                    });
                    rest = &after[close + 1..];
                }
                _ => {
                    text.push_str(&rest[..at + 2]);
                    rest = after;
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            chunks.push(Chunk::Text(text));
        }
        LogTemplate {
            chunks,
            request_vars,
        }
    }

    /// The names of the `%(var.NAME)` chunks, in order of first use: the order of
    /// [`RequestRecord::request_vars`].
    pub fn request_vars(&self) -> &[String] {
        &self.request_vars
    }

    pub fn needs(&self) -> Needs {
        let mut needs = Needs::default();
        for chunk in &self.chunks {
            match chunk {
                Chunk::Var(Var::Vsz | Var::Rss | Var::VszM | Var::RssM) => needs.memory = true,
                Chunk::Var(Var::Host | Var::Uagent | Var::Referer | Var::Cl) => {
                    needs.headers = true
                }
                _ => {}
            }
        }
        needs
    }

    /// Appends the line for `record`, newline included.
    pub fn render(&self, record: &RequestRecord<'_>, time: &dyn TimeFormat, out: &mut String) {
        for chunk in &self.chunks {
            let start = out.len();
            match chunk {
                Chunk::Text(text) => out.push_str(text),
                Chunk::RequestVar(index) => {
                    let value = record.request_vars.get(*index).copied().flatten();
                    push_escaped(out, value.unwrap_or(b""));
                    if out.len() == start {
                        out.push('-');
                    }
                }
                Chunk::Var(var) => {
                    render_var(var, record, time, out);
                    if out.len() == start {
                        out.push('-');
                    }
                }
            }
        }
        out.push('\n');
    }
}

fn render_var(var: &Var, r: &RequestRecord<'_>, time: &dyn TimeFormat, out: &mut String) {
    const MB: u64 = 1024 * 1024;
    let start_secs = (r.start_unix_micros / 1_000_000) as i64;
    let text = match var {
        Var::Uri => Some(r.uri),
        Var::Method => Some(r.method),
        Var::User => Some(r.user),
        Var::Addr => Some(r.addr),
        Var::Host => Some(r.host),
        Var::Proto => Some(r.proto),
        Var::Uagent => Some(r.uagent),
        Var::Referer => Some(r.referer),
        _ => None,
    };
    if let Some(text) = text {
        push_escaped(out, text);
        return;
    }
    let number: u64 = match var {
        Var::Ltime => return time.strftime("%d/%b/%Y:%H:%M:%S %z", start_secs, out),
        Var::Ftime => {
            let format = r.ftime_format.unwrap_or("%d/%b/%Y:%H:%M:%S %z");
            return time.strftime(format, start_secs, out);
        }
        Var::Ctime => return super::log::push_ctime(out, start_secs),
        Var::Secs => {
            let _ = write!(out, "{:.6}", r.micros as f64 / 1_000_000.0);
            return;
        }
        // Compiled into `Chunk::RequestVar`; kaiser has no metrics.
        Var::RequestVar(_) | Var::Metric(_) => return,
        Var::LogVar(name) => {
            if let Some((_, value)) = r.logvars.iter().find(|(k, _)| k == name) {
                push_escaped(out, value.as_bytes());
            }
            return;
        }
        Var::Status => u64::from(r.status),
        Var::Rsize => r.body_bytes,
        Var::Hsize => r.header_bytes,
        Var::Size => r.body_bytes + r.header_bytes,
        Var::Cl => r.content_length,
        Var::Micros => r.micros,
        Var::Msecs => r.micros / 1000,
        Var::Rt if r.rt_in_micros => r.micros,
        Var::Rt => r.micros / 1000,
        Var::Tmsecs => r.start_unix_micros / 1000,
        Var::Tmicros => r.start_unix_micros,
        Var::Time => start_secs as u64,
        Var::Epoch => r.now_unix_secs,
        Var::Pid => u64::from(r.pid),
        Var::Wid => r.worker_id as u64,
        Var::Switches => r.switches,
        Var::Vars => r.var_count as u64,
        Var::Core => r.core as u64,
        Var::Vsz => r.memory.map_or(0, |m| m.0),
        Var::Rss => r.memory.map_or(0, |m| m.1),
        Var::VszM => r.memory.map_or(0, |m| m.0 / MB),
        Var::RssM => r.memory.map_or(0, |m| m.1 / MB),
        Var::Pktsize => r.packet_size as u64,
        Var::Modifier1 => u64::from(r.modifier1),
        Var::Modifier2 => u64::from(r.modifier2),
        Var::Headers => r.header_count as u64,
        Var::Werr => u64::from(r.write_errors),
        Var::Rerr => u64::from(r.read_errors),
        Var::Ioerr => u64::from(r.read_errors + r.write_errors),
        Var::Uri
        | Var::Method
        | Var::User
        | Var::Addr
        | Var::Host
        | Var::Proto
        | Var::Uagent
        | Var::Referer => unreachable!("text variables returned above"),
    };
    // `write!` to a String cannot fail.
    let _ = write!(out, "{number}");
}

/// Appends `bytes` as text, with control characters and invalid UTF-8 as `\xNN`.
pub fn push_escaped(out: &mut String, bytes: &[u8]) {
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        if !valid.chars().any(char::is_control) {
            out.push_str(valid);
        } else {
            for c in valid.chars() {
                if c.is_control() && (c as u32) < 0x100 {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                } else {
                    out.push(c);
                }
            }
        }
        for &byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
}

/// Appends `text` JSON-escaped (without quotes): `"`, `\` and control characters.
pub fn push_json_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// What an encoder's `${…}` can name (uWSGI's `format` and `json` encoders).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// The line without its trailing newline.
    Msg,
    /// The line with it.
    MsgNl,
    /// Now, epoch seconds.
    Unix,
    /// Now, epoch microseconds.
    Micros,
    /// Now, epoch milliseconds.
    Millis,
    Strftime(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum EncoderKind {
    Prefix(String),
    Suffix(String),
    Newline,
    Format(Vec<Piece>),
    Json(Vec<Piece>),
}

/// One `log-encoder`/`log-req-encoder`: `NAME[:LOGGER][ ARGS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoder {
    kind: EncoderKind,
    /// Only for the logger with this id (`json:mylogger …`).
    pub only_for: Option<String>,
}

/// The clock an encoder reads, with local-time formatting.
pub trait EncoderClock: TimeFormat {
    fn now_micros(&self) -> u64;
}

/// `json` with no template: one JSON object per line with the time and the line.
pub const DEFAULT_JSON: &str = r#"{"unix":${unix},"msg":"${msg}"}"#;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseEncoderError {
    #[error("unknown log encoder `{0}` (kaiser has prefix, suffix, nl, format and json)")]
    Unknown(String),
    #[error("the `{0}` log encoder (compression) is not supported: compress the log files instead (logrotate's `compress`)")]
    Compression(String),
}

impl Encoder {
    pub fn parse(spec: &str) -> Result<Encoder, ParseEncoderError> {
        let (head, args) = spec.split_once(' ').unwrap_or((spec, ""));
        let (name, only_for) = match head.split_once(':') {
            Some((name, id)) => (name, Some(id.to_owned())),
            None => (head, None),
        };
        let kind = match name {
            "prefix" => EncoderKind::Prefix(args.to_owned()),
            "suffix" => EncoderKind::Suffix(args.to_owned()),
            "nl" => EncoderKind::Newline,
            "format" => EncoderKind::Format(parse_pieces(args)),
            "json" if args.trim().is_empty() => EncoderKind::Json(parse_pieces(DEFAULT_JSON)),
            "json" => EncoderKind::Json(parse_pieces(args)),
            "gzip" | "compress" => return Err(ParseEncoderError::Compression(name.to_owned())),
            other => return Err(ParseEncoderError::Unknown(other.to_owned())),
        };
        Ok(Encoder { kind, only_for })
    }

    /// Whether this encoder applies to lines for the logger `logger_id`.
    pub fn applies_to(&self, logger_id: Option<&str>) -> bool {
        match &self.only_for {
            None => true,
            Some(id) => logger_id == Some(id.as_str()),
        }
    }

    /// Encodes `line` (as read: usually with its newline) into `out`.
    pub fn encode(&self, line: &str, clock: &dyn EncoderClock, out: &mut String) {
        let msg = line.strip_suffix('\n').unwrap_or(line);
        match &self.kind {
            EncoderKind::Prefix(prefix) => {
                out.push_str(prefix);
                out.push_str(line);
            }
            EncoderKind::Suffix(suffix) => {
                out.push_str(line);
                out.push_str(suffix);
            }
            EncoderKind::Newline => {
                out.push_str(line);
                out.push('\n');
            }
            EncoderKind::Format(pieces) | EncoderKind::Json(pieces) => {
                let json = matches!(self.kind, EncoderKind::Json(_));
                let push = |out: &mut String, text: &str| {
                    if json {
                        push_json_escaped(out, text);
                    } else {
                        out.push_str(text);
                    }
                };
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => out.push_str(text),
                        Piece::Msg => push(out, msg),
                        Piece::MsgNl => push(out, line),
                        Piece::Unix => {
                            let _ = write!(out, "{}", clock.now_micros() / 1_000_000);
                        }
                        Piece::Micros => {
                            let _ = write!(out, "{}", clock.now_micros());
                        }
                        Piece::Millis => {
                            let _ = write!(out, "{}", clock.now_micros() / 1000);
                        }
                        Piece::Strftime(format) => {
                            let mut date = String::new();
                            let now = (clock.now_micros() / 1_000_000) as i64;
                            clock.strftime(format, now, &mut date);
                            push(out, &date);
                        }
                    }
                }
            }
        }
    }
}

/// Splits `a ${msg} b` into pieces; an unknown or unclosed `${…}` stays text.
fn parse_pieces(args: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = args;
    while let Some(at) = rest.find("${") {
        let after = &rest[at + 2..];
        let Some(close) = after.find('}') else {
            break;
        };
        let name = &after[..close];
        let piece = match name {
            "msg" => Some(Piece::Msg),
            "msgnl" => Some(Piece::MsgNl),
            "unix" => Some(Piece::Unix),
            "micros" => Some(Piece::Micros),
            "millis" => Some(Piece::Millis),
            _ => name
                .strip_prefix("strftime:")
                .map(|f| Piece::Strftime(f.to_owned())),
        };
        match piece {
            Some(piece) => {
                text.push_str(&rest[..at]);
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(piece);
            }
            None => text.push_str(&rest[..at + 3 + close]),
        }
        rest = &after[close + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    pieces
}

/// Runs `line` through the encoders that apply to `logger_id`, in order (borrowed when
/// none does).
pub fn encode_all<'a>(
    encoders: &[Encoder],
    logger_id: Option<&str>,
    line: &'a str,
    clock: &dyn EncoderClock,
) -> std::borrow::Cow<'a, str> {
    let mut current = std::borrow::Cow::Borrowed(line);
    for encoder in encoders.iter().filter(|e| e.applies_to(logger_id)) {
        let mut next = String::with_capacity(current.len() + 64);
        encoder.encode(&current, clock, &mut next);
        current = std::borrow::Cow::Owned(next);
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    /// UTC with a few strftime directives: enough to check which format is used.
    struct FixedClock;
    impl TimeFormat for FixedClock {
        fn strftime(&self, format: &str, unix_secs: i64, out: &mut String) {
            let _ = write!(out, "<{format}@{unix_secs}>");
        }
    }
    impl EncoderClock for FixedClock {
        fn now_micros(&self) -> u64 {
            1_700_000_000_123_456
        }
    }

    fn record<'a>() -> RequestRecord<'a> {
        RequestRecord {
            uri: b"/a?b=1",
            method: b"GET",
            user: b"",
            addr: b"127.0.0.1",
            host: b"example.org",
            proto: b"HTTP/1.1",
            uagent: b"curl/8",
            referer: b"",
            status: 200,
            body_bytes: 12,
            header_bytes: 40,
            header_count: 2,
            content_length: 0,
            micros: 1_500,
            rt_in_micros: false,
            start_unix_micros: 1_795_381_161_000_042,
            now_unix_secs: 1_795_381_162,
            pid: 42,
            worker_id: 3,
            core: 1,
            switches: 1,
            var_count: 20,
            packet_size: 300,
            memory: Some((100 * 1024 * 1024, 20 * 1024 * 1024)),
            ..RequestRecord::default()
        }
    }

    fn check(format: &str, record: RequestRecord<'_>, expected: &str) {
        let mut out = String::new();
        LogTemplate::parse(format).render(&record, &FixedClock, &mut out);
        assert_eq!(out, format!("{expected}\n"), "format {format:?}");
    }

    #[test]
    fn apache_combined() {
        check(
            r#"%(addr) - %(user) [%(ctime)] "%(method) %(uri) %(proto)" %(status) %(size) "%(referer)" "%(uagent)""#,
            record(),
            r#"127.0.0.1 - - [Sun Nov 22 20:59:21 2026] "GET /a?b=1 HTTP/1.1" 200 52 "-" "curl/8""#,
        );
    }

    #[test]
    fn every_variable() {
        let r = record();
        let cases: &[(&str, &str)] = &[
            ("uri", "/a?b=1"),
            ("method", "GET"),
            ("user", "-"),
            ("addr", "127.0.0.1"),
            ("host", "example.org"),
            ("proto", "HTTP/1.1"),
            ("uagent", "curl/8"),
            ("referer", "-"),
            ("status", "200"),
            ("rsize", "12"),
            ("hsize", "40"),
            ("size", "52"),
            ("cl", "0"),
            ("micros", "1500"),
            ("msecs", "1"),
            ("secs", "0.001500"),
            ("rt", "1"),
            ("tmsecs", "1795381161000"),
            ("tmicros", "1795381161000042"),
            ("time", "1795381161"),
            ("ltime", "<%d/%b/%Y:%H:%M:%S %z@1795381161>"),
            ("ftime", "<%d/%b/%Y:%H:%M:%S %z@1795381161>"),
            ("ctime", "Sun Nov 22 20:59:21 2026"),
            ("epoch", "1795381162"),
            ("pid", "42"),
            ("wid", "3"),
            ("switches", "1"),
            ("vars", "20"),
            ("core", "1"),
            ("vsz", "104857600"),
            ("rss", "20971520"),
            ("vszM", "100"),
            ("rssM", "20"),
            ("pktsize", "300"),
            ("modifier1", "0"),
            ("modifier2", "0"),
            ("headers", "2"),
            ("werr", "0"),
            ("rerr", "0"),
            ("ioerr", "0"),
            ("metric.foo", "-"),
            ("unknown_logvar", "-"),
            ("var.HTTP_X_ID", "-"),
        ];
        for (name, expected) in cases {
            check(&format!("%({name})"), r, expected);
        }
        check(
            "%(rt) %(ftime)",
            RequestRecord {
                rt_in_micros: true,
                ftime_format: Some("%Y"),
                ..r
            },
            "1500 <%Y@1795381161>",
        );
    }

    #[test]
    fn request_vars_and_logvars() {
        let values: [Option<&[u8]>; 2] = [Some(b"abc"), None];
        let logvars = [("user_id".to_owned(), "7".to_owned())];
        check(
            "%(var.HTTP_X_ID) %(var.MISSING) %(var.HTTP_X_ID) %(user_id)",
            RequestRecord {
                request_vars: &values,
                logvars: &logvars,
                ..record()
            },
            "abc - abc 7",
        );
        assert_eq!(
            LogTemplate::parse("%(var.A)%(var.B)%(var.A)").request_vars(),
            ["A", "B"]
        );
    }

    #[test]
    fn literal_percent_and_unclosed_chunks() {
        check("100% %(status)", record(), "100% 200");
        check("%(status", record(), "%(status");
        check("%() %(status)x", record(), "%() 200x");
        check("", record(), "");
    }

    #[test]
    fn request_values_cannot_forge_lines() {
        check(
            "%(uri)",
            RequestRecord {
                uri: b"/a\nfake\xff",
                ..record()
            },
            "/a\\x0afake\\xff",
        );
    }

    #[test]
    fn needs() {
        assert_eq!(LogTemplate::parse("%(status)").needs(), Needs::default());
        assert!(LogTemplate::parse("%(rssM)").needs().memory);
        assert!(LogTemplate::parse("%(host)").needs().headers);
    }

    fn encode(specs: &[&str], line: &str) -> String {
        let encoders: Vec<Encoder> = specs
            .iter()
            .map(|s| Encoder::parse(s).expect("valid encoder"))
            .collect();
        encode_all(&encoders, None, line, &FixedClock).into_owned()
    }

    #[test]
    fn encoders() {
        assert_eq!(encode(&["prefix [x] "], "a\n"), "[x] a\n");
        assert_eq!(encode(&["suffix !"], "a"), "a!");
        assert_eq!(encode(&["nl"], "a"), "a\n");
        assert_eq!(
            encode(
                &["format ${unix} ${millis} ${micros} ${msg}|${bad}|${strftime:%Y}"],
                "a\n"
            ),
            "1700000000 1700000000123 1700000000123456 a|${bad}|<%Y@1700000000>"
        );
        assert_eq!(
            encode(&["json {\"m\":\"${msg}\"}", "nl"], "say \"hi\"\\\t\u{1}\n"),
            "{\"m\":\"say \\\"hi\\\"\\\\\\t\\u0001\"}\n"
        );
        assert_eq!(
            encode(&["json"], "a\n"),
            "{\"unix\":1700000000,\"msg\":\"a\"}"
        );
    }

    #[test]
    fn encoders_for_one_logger() {
        let encoder = Encoder::parse("prefix:main > ").unwrap();
        assert!(encoder.applies_to(Some("main")));
        assert!(!encoder.applies_to(None));
        assert!(!encoder.applies_to(Some("other")));
        assert_eq!(
            Encoder::parse("gzip"),
            Err(ParseEncoderError::Compression("gzip".into()))
        );
        assert!(matches!(
            Encoder::parse("yaml"),
            Err(ParseEncoderError::Unknown(_))
        ));
    }

    #[test]
    fn json_lines_are_valid_json() {
        let line = encode(&["json"], "GET /\u{7f}\"\\ \u{0}\u{1f} é\n");
        let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(value["msg"], "GET /\u{7f}\"\\ \u{0}\u{1f} é");
    }
}
