//! Runs one route table against one request: tests, captures, `goto`, and each action's
//! effect on the request's variables, on the response's headers, or as an answer of its own.
//!
//! Sans-I/O: what a rule needs from the machine (does a file exist, an htpasswd file's text,
//! `crypt(3)`, the clock) comes through [`Facts`]; logging, answering and serving files are
//! left to the caller, which reads the [`Verdict`] and [`Effects`].

use std::borrow::Cow;

use super::basicauth;
use super::rules::{Action, Compare, Condition, MathOp, Rule, SetVar, Step, Table, Test};
use super::template::{Func, Lookup, Template};

/// The request as the rules see and change it: its CGI variables, and the response status
/// once there is one (error, response and final routes).
///
/// The variables borrow the request's buffer until a rule changes one: routing a request
/// copies nothing it does not change.
#[derive(Debug, Clone, Default)]
pub struct RequestState<'a> {
    pub vars: Vec<Var<'a>>,
    pub status: u16,
}

impl RequestState<'_> {
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        // The last wins, as in the environ the app gets.
        self.vars
            .iter()
            .rev()
            .find(|(key, _)| key.as_ref() == name)
            .map(|(_, value)| value.as_ref())
    }

    pub fn set(&mut self, name: &[u8], value: Vec<u8>) {
        self.vars.retain(|(key, _)| key.as_ref() != name);
        self.vars
            .push((Cow::Owned(name.to_vec()), Cow::Owned(value)));
    }

    /// A copy that owns its variables.
    pub fn to_owned_state(&self) -> RequestState<'static> {
        RequestState {
            vars: self
                .vars
                .iter()
                .map(|(k, v)| (Cow::Owned(k.to_vec()), Cow::Owned(v.to_vec())))
                .collect(),
            status: self.status,
        }
    }
}

/// One request variable, borrowed from the request or set by a rule.
pub type Var<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// What rules ask of the machine.
pub trait Facts {
    fn file_kind(&self, path: &[u8]) -> FileKind;
    /// An htpasswd file's text.
    fn read_file(&self, path: &std::path::Path) -> Option<Vec<u8>>;
    /// `crypt(3)` of `password` with `setting` (a stored hash).
    fn crypt(&self, password: &[u8], setting: &[u8]) -> Option<Vec<u8>>;
    /// Unix time in microseconds.
    fn now_micros(&self) -> i64;
    fn worker_id(&self) -> u32;
    fn pid(&self) -> u32;
    fn uuid(&self) -> Vec<u8>;
    fn mime(&self, path: &[u8]) -> Option<String>;
}

/// What `stat` says of a path, for the `exists`/`isfile`/`isdir`/`islink`/`isexec`
/// conditions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileKind {
    pub exists: bool,
    pub file: bool,
    pub dir: bool,
    pub link: bool,
    pub exec: bool,
}

/// A change to the response's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    Add(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
}

/// Side effects that do not stop the request.
#[derive(Debug, Default)]
pub struct Effects {
    pub headers: Vec<HeaderEdit>,
    /// `log:` lines, to the process's log.
    pub log_lines: Vec<String>,
    pub logvars: Vec<(String, String)>,
    pub do_not_log: bool,
    pub harakiri: Option<u64>,
    /// `basicauth` let a user in, or `setuser` named one: the request line's user, as
    /// uWSGI's `wsgi_req->remote_user`.
    pub remote_user: Option<Vec<u8>>,
}

/// A response a route makes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// How routing ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on: run the app (request routes) or send the app's response (the others).
    Pass,
    /// Answer this instead of the app.
    Reply(Reply),
    /// `static:`: serve this file as a static file (type, validators, ranges).
    Static(Vec<u8>),
    /// `file:`: send this file with this status and type.
    File {
        path: Vec<u8>,
        status: Vec<u8>,
        content_type: Vec<u8>,
    },
    /// `break` without a status: stop with no answer of its own (the connection closes).
    Stop,
}

/// Runs `table`. Termination: `goto` only jumps forward, as in uWSGI.
pub fn run(
    table: &Table,
    request: &mut RequestState<'_>,
    facts: &dyn Facts,
    effects: &mut Effects,
) -> Verdict {
    let mut own = Own::default();
    let mut pc = 0;
    while pc < table.rules.len() {
        let Rule::Step(step) = &table.rules[pc] else {
            pc += 1;
            continue;
        };
        let Some(captures) = test(step, request, facts) else {
            pc += 1;
            continue;
        };
        match act(step, captures, request, facts, effects, &mut own) {
            Flow::Next => pc += 1,
            Flow::Goto(label) => {
                let target = table.rules.iter().enumerate().skip(pc + 1).find(|(_, rule)| {
                    matches!(rule, Rule::Label(name) if name.as_bytes() == label.as_slice())
                });
                match target {
                    Some((index, _)) => pc = index + 1,
                    None => {
                        effects.log_lines.push(format!(
                            "[kaiser-route] goto `{}`: no such label after this rule (goto only jumps forward)",
                            String::from_utf8_lossy(&label)
                        ));
                        return Verdict::Stop;
                    }
                }
            }
            Flow::Done(verdict) => return own.finish(verdict),
        }
    }
    own.finish(Verdict::Pass)
}

/// A response the routes build piece by piece (`clearheaders`, `send`).
#[derive(Default)]
struct Own {
    status: Option<Vec<u8>>,
    body: Vec<u8>,
    sent: bool,
}

impl Own {
    /// A route that prepared its own response and then stops answers with it.
    fn finish(self, verdict: Verdict) -> Verdict {
        if !matches!(verdict, Verdict::Pass | Verdict::Stop)
            || (self.status.is_none() && !self.sent)
        {
            return verdict;
        }
        Verdict::Reply(Reply {
            status: self.status.unwrap_or_else(|| b"200 OK".to_vec()),
            headers: Vec::new(),
            body: self.body,
        })
    }
}

enum Flow {
    Next,
    Goto(Vec<u8>),
    Done(Verdict),
}

type Captures = Vec<Option<Vec<u8>>>;

/// Whether the rule applies, with the captures its action may use.
fn test(step: &Step, request: &RequestState<'_>, facts: &dyn Facts) -> Option<Captures> {
    match &step.test {
        Test::Always => Some(Vec::new()),
        Test::Status(code) => (request.status == *code).then(Vec::new),
        Test::Match { subject, pattern } => {
            let value = request.get(subject.var().as_bytes()).unwrap_or(b"");
            // A miss, the common case, is cheaper to find without the capture slots.
            if !pattern.0.is_match(value) {
                return None;
            }
            let found = pattern.0.captures(value)?;
            Some(
                found
                    .iter()
                    .map(|group| group.map(|g| g.as_bytes().to_vec()))
                    .collect(),
            )
        }
        Test::If { condition, negate } => {
            let empty = Vec::new();
            let lookup = Context {
                request,
                captures: &empty,
                facts,
            };
            let (holds, captures) = check(condition, &lookup, facts);
            match (holds, negate) {
                (true, false) => Some(captures),
                (false, true) => Some(Vec::new()),
                _ => None,
            }
        }
    }
}

fn check(condition: &Condition, lookup: &Context<'_>, facts: &dyn Facts) -> (bool, Captures) {
    let kind = |template: &Template| facts.file_kind(&template.render(lookup));
    let holds = match condition {
        Condition::Exists(path) => kind(path).exists,
        Condition::IsFile(path) => kind(path).file,
        Condition::IsDir(path) => kind(path).dir,
        Condition::IsLink(path) => kind(path).link,
        Condition::IsExec(path) => kind(path).exec,
        Condition::Empty(value) => value.render(lookup).is_empty(),
        Condition::Regexp(value, pattern) => {
            let value = value.render(lookup);
            return match pattern.0.captures(&value) {
                Some(found) => (
                    true,
                    found
                        .iter()
                        .map(|group| group.map(|g| g.as_bytes().to_vec()))
                        .collect(),
                ),
                None => (false, Vec::new()),
            };
        }
        Condition::Compare(op, left, right) => {
            compare(*op, &left.render(lookup), &right.render(lookup))
        }
    };
    (holds, Vec::new())
}

fn compare(op: Compare, left: &[u8], right: &[u8]) -> bool {
    // `strtol`: leading digits, 0 when there are none.
    let number = |text: &[u8]| -> i64 {
        let text = String::from_utf8_lossy(text);
        let text = text.trim_start();
        let (sign, digits) = match text.strip_prefix('-') {
            Some(rest) => (-1, rest),
            None => (1, text.strip_prefix('+').unwrap_or(text)),
        };
        let end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        sign * digits[..end].parse::<i64>().unwrap_or(0)
    };
    match op {
        Compare::Equal => left == right,
        Compare::StartsWith => left.starts_with(right),
        Compare::EndsWith => left.ends_with(right),
        Compare::Contains => right.is_empty() || left.windows(right.len()).any(|w| w == right),
        Compare::Higher => number(left) > number(right),
        Compare::HigherEqual => number(left) >= number(right),
        Compare::Lower => number(left) < number(right),
        Compare::LowerEqual => number(left) <= number(right),
        Compare::Ipv4In => ip_in::<4>(left, right),
        Compare::Ipv6In => ip_in::<16>(left, right),
    }
}

/// Whether `address` is in `network` (`ADDR/PREFIX`, or one address).
fn ip_in<const N: usize>(address: &[u8], network: &[u8]) -> bool {
    let parse = |text: &str| -> Option<[u8; N]> {
        let ip: std::net::IpAddr = text.parse().ok()?;
        match ip {
            std::net::IpAddr::V4(v4) if N == 4 => v4.octets().as_slice().try_into().ok(),
            std::net::IpAddr::V6(v6) if N == 16 => v6.octets().as_slice().try_into().ok(),
            _ => None,
        }
    };
    let address = String::from_utf8_lossy(address);
    let network = String::from_utf8_lossy(network);
    let (net, prefix) = match network.split_once('/') {
        Some((net, prefix)) => match prefix.parse::<usize>() {
            Ok(prefix) if prefix <= N * 8 => (net, prefix),
            _ => return false,
        },
        None => (network.as_ref(), N * 8),
    };
    let (Some(address), Some(net)) = (parse(&address), parse(net)) else {
        return false;
    };
    (0..prefix).all(|bit| {
        let mask = 0x80u8 >> (bit % 8);
        address[bit / 8] & mask == net[bit / 8] & mask
    })
}

fn act(
    step: &Step,
    captures: Captures,
    request: &mut RequestState<'_>,
    facts: &dyn Facts,
    effects: &mut Effects,
    own: &mut Own,
) -> Flow {
    let lookup = Context {
        request,
        captures: &captures,
        facts,
    };
    let render = |template: &Template| template.render(&lookup);
    match &step.action {
        Action::Continue => Flow::Done(Verdict::Pass),
        Action::Break(None) => Flow::Done(Verdict::Stop),
        Action::Break(Some(status)) => Flow::Done(Verdict::Reply(Reply {
            status: status.clone(),
            headers: vec![(b"Content-Type".to_vec(), b"text/plain".to_vec())],
            body: Vec::new(),
        })),
        Action::Return(code) => {
            let reason = reason(*code);
            Flow::Done(Verdict::Reply(Reply {
                status: format!("{code} {reason}").into_bytes(),
                headers: vec![(b"Content-Type".to_vec(), b"text/plain".to_vec())],
                body: reason.as_bytes().to_vec(),
            }))
        }
        Action::Goto(label) => Flow::Goto(render(label)),
        Action::Log(line) => {
            effects
                .log_lines
                .push(String::from_utf8_lossy(&render(line)).into_owned());
            Flow::Next
        }
        Action::LogVar(key, value) => {
            let value = String::from_utf8_lossy(&render(value)).into_owned();
            effects.logvars.retain(|(k, _)| k != key);
            effects.logvars.push((key.clone(), value));
            Flow::Next
        }
        Action::DoNotLog => {
            effects.do_not_log = true;
            Flow::Next
        }
        Action::AddVar(key, value) => {
            let value = render(value);
            request.set(key.as_bytes(), value);
            Flow::Next
        }
        Action::Set(var, value) => {
            let mut value = render(value);
            if *var == SetVar::User {
                // uWSGI stops at the first colon, so `setuser:${…}` can take a `user:pass`.
                if let Some(colon) = value.iter().position(|&b| b == b':') {
                    value.truncate(colon);
                }
            }
            if *var == SetVar::App {
                // kaiser picks a `mount`'s app by SCRIPT_NAME; uWSGI's app id is its mountpoint.
                request.set(b"SCRIPT_NAME", value.clone());
            }
            if *var == SetVar::User {
                effects.remote_user = Some(value.clone());
            }
            request.set(var.var().as_bytes(), value);
            Flow::Next
        }
        Action::FixPathInfo => {
            let script = request.get(b"SCRIPT_NAME").unwrap_or(b"").to_vec();
            let path = request.get(b"PATH_INFO").unwrap_or(b"");
            if !script.is_empty() && path.starts_with(&script) {
                let rest = path[script.len()..].to_vec();
                request.set(b"PATH_INFO", rest);
            }
            Flow::Next
        }
        Action::Math(op, var, amount) => {
            // uWSGI stops routing when the variable does not exist.
            let Some(base) = request.get(var.as_bytes()) else {
                return Flow::Done(Verdict::Stop);
            };
            let base = compare_number(Some(base));
            let amount = amount
                .as_ref()
                .map(|amount| compare_number(Some(&render(amount))))
                .unwrap_or(1);
            let total = match op {
                MathOp::Add => base.wrapping_add(amount),
                MathOp::Sub => base.wrapping_sub(amount),
                MathOp::Mul => base.wrapping_mul(amount),
                MathOp::Div => base.checked_div(amount).unwrap_or(0),
            };
            request.set(var.as_bytes(), total.to_string().into_bytes());
            Flow::Next
        }
        Action::AddHeader(header) => {
            let header = render(header);
            if let Some(colon) = header.iter().position(|&b| b == b':') {
                let name = header[..colon].trim_ascii().to_vec();
                let value = header[colon + 1..].trim_ascii().to_vec();
                effects.headers.push(HeaderEdit::Add(name, value));
            }
            Flow::Next
        }
        Action::RemoveHeader(name) => {
            let name = render(name);
            effects.headers.push(HeaderEdit::Remove(name));
            Flow::Next
        }
        Action::ClearHeaders(status) => {
            own.status = Some(render(status));
            Flow::Next
        }
        Action::Send(text, crnl) => {
            own.body.extend_from_slice(&render(text));
            if *crnl {
                own.body.extend_from_slice(b"\r\n");
            }
            own.sent = true;
            Flow::Next
        }
        Action::Redirect(target, permanent) => {
            let (status, body): (&[u8], &[u8]) = if *permanent {
                (b"301 Moved Permanently", b"Moved Permanently")
            } else {
                (b"302 Found", b"Moved")
            };
            Flow::Done(Verdict::Reply(Reply {
                status: status.to_vec(),
                headers: vec![(b"Location".to_vec(), render(target))],
                body: body.to_vec(),
            }))
        }
        Action::Rewrite(target, last) => {
            let target = render(target);
            rewrite(request, &target);
            if *last {
                Flow::Done(Verdict::Pass)
            } else {
                Flow::Next
            }
        }
        Action::Static(path, next) => {
            let path = render(path);
            if climbs(&path) {
                Flow::Done(forbidden())
            } else if facts.file_kind(&path).file {
                Flow::Done(Verdict::Static(path))
            } else if *next {
                Flow::Next
            } else {
                Flow::Done(not_found())
            }
        }
        Action::File(spec, next) => {
            let path = render(&spec.filename);
            if climbs(&path) {
                return Flow::Done(forbidden());
            }
            if !facts.file_kind(&path).file {
                return if *next {
                    Flow::Next
                } else {
                    Flow::Done(not_found())
                };
            }
            let content_type = if spec.mime {
                facts
                    .mime(&path)
                    .map(String::into_bytes)
                    .unwrap_or_else(|| spec.content_type.clone())
            } else {
                spec.content_type.clone()
            };
            Flow::Done(Verdict::File {
                status: render(&spec.status),
                path,
                content_type,
            })
        }
        Action::BasicAuth(auth) => match basicauth::check(auth, request, facts) {
            basicauth::Check::Pass => Flow::Next,
            basicauth::Check::User(user) => {
                effects.remote_user = Some(user.clone());
                request.set(b"REMOTE_USER", user);
                Flow::Next
            }
            basicauth::Check::Refuse => Flow::Done(Verdict::Reply(Reply {
                status: b"401 Authorization Required".to_vec(),
                headers: vec![(
                    b"WWW-Authenticate".to_vec(),
                    format!("Basic realm=\"{}\"", auth.realm).into_bytes(),
                )],
                body: b"Unauthorized".to_vec(),
            })),
        },
        Action::Harakiri(seconds) => {
            if *seconds > 0 {
                effects.harakiri = Some(*seconds);
            }
            Flow::Next
        }
        Action::NoOp(_) => Flow::Next,
    }
}

fn compare_number(value: Option<&[u8]>) -> i64 {
    let text = String::from_utf8_lossy(value.unwrap_or(b""));
    text.trim().parse().unwrap_or(0)
}

/// A `..` segment: a capture (`static:/srv/files/$1`) must not lead out of the directory the
/// rule names. uWSGI serves such a path; kaiser answers 403.
fn climbs(path: &[u8]) -> bool {
    path.split(|&b| b == b'/').any(|segment| segment == b"..")
}

fn forbidden() -> Verdict {
    Verdict::Reply(Reply {
        status: b"403 Forbidden".to_vec(),
        headers: vec![(b"Content-Type".to_vec(), b"text/plain".to_vec())],
        body: b"Forbidden".to_vec(),
    })
}

fn not_found() -> Verdict {
    Verdict::Reply(Reply {
        status: b"404 Not Found".to_vec(),
        headers: vec![(b"Content-Type".to_vec(), b"text/plain".to_vec())],
        body: b"Not Found".to_vec(),
    })
}

/// `rewrite:`: the new PATH_INFO (percent-decoded) and, after a `?`, a query string that
/// goes before the request's own (uWSGI joins them with `&`).
fn rewrite(request: &mut RequestState<'_>, target: &[u8]) {
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(mark) => (&target[..mark], Some(&target[mark + 1..])),
        None => (target, None),
    };
    let old_query = request.get(b"QUERY_STRING").unwrap_or(b"").to_vec();
    let query = match query {
        Some(query) if !old_query.is_empty() => [query, b"&", &old_query].concat(),
        Some(query) => query.to_vec(),
        None => old_query,
    };
    request.set(b"PATH_INFO", percent_decode(path));
    request.set(b"QUERY_STRING", query);
}

fn percent_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%' && i + 2 < text.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(high), Some(low)) = (hex(text[i + 1]), hex(text[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

/// The reason phrase `return:` answers with.
pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Content Too Large",
        418 => "I'm a teapot",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// What a template reads while a rule runs.
struct Context<'a> {
    request: &'a RequestState<'a>,
    captures: &'a Captures,
    facts: &'a dyn Facts,
}

impl Lookup for Context<'_> {
    fn capture(&self, n: usize) -> Option<&[u8]> {
        self.captures.get(n)?.as_deref()
    }

    fn var(&self, name: &str) -> Option<&[u8]> {
        self.request.get(name.as_bytes())
    }

    fn func(&self, func: Func, arg: &str, out: &mut Vec<u8>) {
        let var = || self.request.get(arg.as_bytes());
        match func {
            Func::Cookie => {
                let cookies = self.request.get(b"HTTP_COOKIE").unwrap_or(b"");
                if let Some(value) = pair_value(cookies, b';', arg) {
                    out.extend_from_slice(value);
                }
            }
            Func::Qs => {
                let query = self.request.get(b"QUERY_STRING").unwrap_or(b"");
                if let Some(value) = pair_value(query, b'&', arg) {
                    out.extend_from_slice(value);
                }
            }
            Func::Mime => {
                if let Some(mime) = var().and_then(|path| self.facts.mime(path)) {
                    out.extend_from_slice(mime.as_bytes());
                }
            }
            Func::Uwsgi => {
                let text = match arg {
                    "wid" => self.facts.worker_id().to_string(),
                    "pid" => self.facts.pid().to_string(),
                    "uuid" => {
                        out.extend_from_slice(&self.facts.uuid());
                        return;
                    }
                    "status" => self.request.status.to_string(),
                    _ => return,
                };
                out.extend_from_slice(text.as_bytes());
            }
            Func::Time => {
                let micros = self.facts.now_micros();
                match arg {
                    "unix" => out.extend_from_slice((micros / 1_000_000).to_string().as_bytes()),
                    "micros" => out.extend_from_slice(micros.to_string().as_bytes()),
                    _ => {}
                }
            }
            Func::HttpTime => {
                let offset: i64 = arg.trim().parse().unwrap_or(0);
                let secs = self.facts.now_micros() / 1_000_000 + offset;
                out.extend_from_slice(http_date(secs).as_bytes());
            }
            Func::Base64 => {
                if let Some(value) = var() {
                    out.extend_from_slice(basicauth::base64_encode(value).as_bytes());
                }
            }
            Func::Hex => {
                if let Some(value) = var() {
                    for byte in value {
                        out.extend_from_slice(format!("{byte:02x}").as_bytes());
                    }
                }
            }
            Func::Upper => {
                if let Some(value) = var() {
                    out.extend(value.iter().map(u8::to_ascii_uppercase));
                }
            }
            Func::Lower => {
                if let Some(value) = var() {
                    out.extend(value.iter().map(u8::to_ascii_lowercase));
                }
            }
        }
    }
}

/// The value of `name` in `a=1<sep> b=2`.
fn pair_value<'a>(text: &'a [u8], separator: u8, name: &str) -> Option<&'a [u8]> {
    text.split(|&b| b == separator).find_map(|item| {
        let item = item.trim_ascii_start();
        let eq = item.iter().position(|&b| b == b'=')?;
        (&item[..eq] == name.as_bytes()).then(|| &item[eq + 1..])
    })
}

/// An HTTP date (RFC 9110 §5.6.7) without the protocol module (`routing` sits beside it).
fn http_date(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::super::rules::RouteTables;
    use super::*;

    struct NoMachine;
    impl Facts for NoMachine {
        fn file_kind(&self, path: &[u8]) -> FileKind {
            let file = path == b"/srv/www/index.html";
            FileKind {
                exists: file,
                file,
                ..FileKind::default()
            }
        }
        fn read_file(&self, _: &std::path::Path) -> Option<Vec<u8>> {
            None
        }
        fn crypt(&self, _: &[u8], _: &[u8]) -> Option<Vec<u8>> {
            None
        }
        fn now_micros(&self) -> i64 {
            784_111_777_000_000
        }
        fn worker_id(&self) -> u32 {
            3
        }
        fn pid(&self) -> u32 {
            77
        }
        fn uuid(&self) -> Vec<u8> {
            b"uuid".to_vec()
        }
        fn mime(&self, _: &[u8]) -> Option<String> {
            Some("text/html".to_string())
        }
    }

    fn request(path: &str, query: &str) -> RequestState<'static> {
        let mut state = RequestState::default();
        for (name, value) in [
            ("PATH_INFO", path),
            ("QUERY_STRING", query),
            ("HTTP_HOST", "example.com"),
            ("REMOTE_ADDR", "10.1.2.3"),
            ("HTTP_COOKIE", "a=1; sid=xyz"),
        ] {
            state.set(name.as_bytes(), value.as_bytes().to_vec());
        }
        state
    }

    /// Runs `lines` (option, value) on a request for `path`.
    fn route(lines: &[(&str, &str)], state: &mut RequestState<'_>) -> (Verdict, Effects) {
        let mut tables = RouteTables::default();
        for (key, value) in lines {
            tables.add(key, value).unwrap();
        }
        tables.check().unwrap();
        let mut effects = Effects::default();
        let verdict = run(&tables.request, state, &NoMachine, &mut effects);
        (verdict, effects)
    }

    fn reply(verdict: &Verdict) -> (String, String) {
        match verdict {
            Verdict::Reply(reply) => (
                String::from_utf8_lossy(&reply.status).into_owned(),
                String::from_utf8_lossy(&reply.body).into_owned(),
            ),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn redirect_with_captures_and_vars() {
        let mut state = request("/old/42", "");
        let (verdict, _) = route(
            &[(
                "route",
                "^/old/(\\d+)$ redirect-301:https://${HTTP_HOST}/new/$1",
            )],
            &mut state,
        );
        let Verdict::Reply(reply) = verdict else {
            panic!("{verdict:?}")
        };
        assert_eq!(reply.status, b"301 Moved Permanently");
        assert_eq!(
            reply.headers,
            vec![(b"Location".to_vec(), b"https://example.com/new/42".to_vec())]
        );
    }

    #[test]
    fn no_match_passes() {
        let mut state = request("/other", "");
        let (verdict, _) = route(&[("route", "^/old redirect:/new")], &mut state);
        assert_eq!(verdict, Verdict::Pass);
    }

    #[test]
    fn rewrite_then_later_rules_see_the_new_path() {
        let mut state = request("/foo/bar", "x=1");
        let (verdict, _) = route(
            &[
                ("route", "^/foo/(.*)$ rewrite:/index.php?page=$1"),
                ("route", "^/index.php$ addvar:SEEN=yes"),
            ],
            &mut state,
        );
        assert_eq!(verdict, Verdict::Pass);
        assert_eq!(state.get(b"PATH_INFO"), Some(b"/index.php".as_slice()));
        assert_eq!(state.get(b"QUERY_STRING"), Some(b"page=bar&x=1".as_slice()));
        assert_eq!(state.get(b"SEEN"), Some(b"yes".as_slice()));
    }

    #[test]
    fn rewrite_last_stops() {
        let mut state = request("/a", "");
        let (verdict, _) = route(
            &[
                ("route", "^/a rewrite-last:/b%20c"),
                ("route", ".* return:403"),
            ],
            &mut state,
        );
        assert_eq!(verdict, Verdict::Pass);
        assert_eq!(state.get(b"PATH_INFO"), Some(b"/b c".as_slice()));
    }

    #[test]
    fn return_and_break() {
        assert_eq!(
            reply(&route(&[("route-run", "return:403")], &mut request("/", "")).0),
            ("403 Forbidden".into(), "Forbidden".into())
        );
        assert_eq!(
            reply(&route(&[("route-run", "break:418 Teapot")], &mut request("/", "")).0),
            ("418 Teapot".into(), "".into())
        );
        assert_eq!(
            route(&[("route-run", "break:")], &mut request("/", "")).0,
            Verdict::Stop
        );
        assert_eq!(
            route(
                &[("route-run", "last:"), ("route-run", "return:500")],
                &mut request("/", "")
            )
            .0,
            Verdict::Pass
        );
    }

    #[test]
    fn goto_skips_to_its_label() {
        let (verdict, effects) = route(
            &[
                ("route-host", "^example\\.com$ goto:site"),
                ("route-run", "return:404"),
                ("route-label", "site"),
                ("route-run", "log:on ${HTTP_HOST} worker ${uwsgi[wid]}"),
            ],
            &mut request("/", ""),
        );
        assert_eq!(verdict, Verdict::Pass);
        assert_eq!(
            effects.log_lines,
            vec!["on example.com worker 3".to_string()]
        );
    }

    #[test]
    fn conditions() {
        let holds = |condition: &str| {
            let line = format!("{condition} return:403");
            route(&[("route-if", &line)], &mut request("/p", "q=1")).0 != Verdict::Pass
        };
        assert!(holds("equal:${PATH_INFO};/p"));
        assert!(!holds("equal:${PATH_INFO};/q"));
        assert!(holds("startswith:${HTTP_HOST};example"));
        assert!(holds("endswith:${HTTP_HOST};.com"));
        assert!(holds("contains:${HTTP_HOST};ample"));
        assert!(holds("regexp:${QUERY_STRING};^q=\\d$"));
        assert!(holds("empty:${HTTP_REFERER}"));
        assert!(!holds("empty:${QUERY_STRING}"));
        assert!(holds("isfile:/srv/www/index.html"));
        assert!(!holds("isdir:/srv/www/index.html"));
        assert!(holds("ishigher:10;9"));
        assert!(holds("<=:3;3"));
        assert!(holds("ipv4in:${REMOTE_ADDR};10.0.0.0/8"));
        assert!(!holds("ipv4in:${REMOTE_ADDR};192.168.0.0/16"));
        assert!(holds("ipv6in:::1;::/120"));
        assert!(holds("equal:${cookie[sid]};xyz"));
        assert!(holds("equal:${qs[q]};1"));
        let negated = route(
            &[("route-if-not", "equal:${PATH_INFO};/p return:403")],
            &mut request("/p", ""),
        );
        assert_eq!(negated.0, Verdict::Pass);
    }

    #[test]
    fn regexp_condition_captures() {
        let mut state = request("/", "user=bob");
        route(
            &[(
                "route-if",
                "regexp:${QUERY_STRING};^user=(\\w+)$ addvar:WHO=$1",
            )],
            &mut state,
        );
        assert_eq!(state.get(b"WHO"), Some(b"bob".as_slice()));
    }

    #[test]
    fn header_log_and_var_effects() {
        let mut state = request("/", "");
        let (verdict, effects) = route(
            &[
                ("route-run", "addheader:X-Served-By: kaiser ${uwsgi[pid]}"),
                ("route-run", "delheader:Server"),
                ("route-run", "logvar:who=${HTTP_HOST}"),
                ("route-run", "donotlog:"),
                ("route-run", "setpathinfo:/x"),
                ("route-run", "setuser:alice:secret"),
                ("route-run", "harakiri:7"),
                ("route-run", "addvar:N=4"),
                ("route-run", "+:N,3"),
            ],
            &mut state,
        );
        assert_eq!(verdict, Verdict::Pass);
        assert_eq!(
            effects.headers,
            vec![
                HeaderEdit::Add(b"X-Served-By".to_vec(), b"kaiser 77".to_vec()),
                HeaderEdit::Remove(b"Server".to_vec())
            ]
        );
        assert_eq!(effects.logvars, vec![("who".into(), "example.com".into())]);
        assert!(effects.do_not_log);
        assert_eq!(effects.harakiri, Some(7));
        assert_eq!(state.get(b"PATH_INFO"), Some(b"/x".as_slice()));
        assert_eq!(state.get(b"REMOTE_USER"), Some(b"alice".as_slice()));
        assert_eq!(state.get(b"N"), Some(b"7".as_slice()));
    }

    #[test]
    fn static_and_file() {
        assert_eq!(
            route(
                &[("route-run", "static:/srv/www/index.html")],
                &mut request("/", "")
            )
            .0,
            Verdict::Static(b"/srv/www/index.html".to_vec())
        );
        assert_eq!(
            reply(
                &route(
                    &[("route-run", "static:/srv/missing")],
                    &mut request("/", "")
                )
                .0
            )
            .0,
            "404 Not Found"
        );
        assert_eq!(
            reply(
                &route(
                    &[("route", "^/files/(.*)$ static:/srv/www/$1")],
                    &mut request("/files/../../etc/passwd", "")
                )
                .0
            )
            .0,
            "403 Forbidden"
        );
        assert_eq!(
            route(
                &[
                    ("route-run", "static-next:/srv/missing"),
                    ("route-run", "return:410")
                ],
                &mut request("/", "")
            )
            .0,
            Verdict::Reply(Reply {
                status: b"410 Gone".to_vec(),
                headers: vec![(b"Content-Type".to_vec(), b"text/plain".to_vec())],
                body: b"Gone".to_vec()
            })
        );
        assert_eq!(
            route(
                &[(
                    "route-run",
                    "file:filename=/srv/www/index.html,status=203 Hi,mime=1"
                )],
                &mut request("/", "")
            )
            .0,
            Verdict::File {
                path: b"/srv/www/index.html".to_vec(),
                status: b"203 Hi".to_vec(),
                content_type: b"text/html".to_vec(),
            }
        );
    }

    #[test]
    fn send_builds_a_response() {
        let (verdict, _) = route(
            &[
                ("route", "^/ping$ clearheaders:200 OK"),
                ("route", "^/ping$ send-crnl:pong"),
                ("route", "^/ping$ break:"),
            ],
            &mut request("/ping", ""),
        );
        assert_eq!(reply(&verdict), ("200 OK".into(), "pong\r\n".into()));
    }

    #[test]
    fn status_routes() {
        let mut tables = RouteTables::default();
        tables
            .add("error-route-status", "404 redirect:/missing")
            .unwrap();
        let mut effects = Effects::default();
        let mut state = request("/", "");
        state.status = 200;
        assert_eq!(
            run(&tables.error, &mut state, &NoMachine, &mut effects),
            Verdict::Pass
        );
        state.status = 404;
        assert_eq!(
            reply(&run(&tables.error, &mut state, &NoMachine, &mut effects)).0,
            "302 Found"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
