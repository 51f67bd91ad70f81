//! Where and how a worker writes its request lines: uWSGI's default line or the compiled
//! `log-format`, rendered into a per-thread buffer that is reused (no allocation per request
//! once it has grown), then written with one `write(2)` so lines never interleave:
//! - to fd 2 (stderr, the `logto` file, or the log master's pipe when `log-master` is on);
//! - to the log master's request pipe when `req-logger` is configured;
//! - to journald as a native entry (`VASSAL=`, `WORKER_ID=`, `PRIORITY=` from the status)
//!   when the vassal runs under journald without a log master.
//!
//! It does not decide whether a request is logged (`protocol::log::LogConditions`) and does
//! not format anything itself (`protocol::log`, `protocol::log_format`).

use std::cell::RefCell;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;

use super::request_record::{LineFormat, RequestLog};
use crate::protocol::log_format::{LogTemplate, RequestRecord, TimeFormat};
use crate::sys;

/// Where request lines go.
#[derive(Debug, Clone)]
pub enum Sink {
    /// fd 2.
    Stderr,
    /// The log master's request pipe (`req-logger`), inherited at this number.
    Fd(RawFd),
    /// journald's native socket.
    Journal { path: PathBuf, vassal: Arc<str> },
}

/// How this worker writes request lines; built once by the master for each worker.
#[derive(Debug, Clone)]
pub struct Settings {
    pub template: Option<Arc<LogTemplate>>,
    /// `log-format-strftime` with a `log-date` format.
    pub ftime_format: Option<Arc<str>>,
    pub sink: Sink,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            template: None,
            ftime_format: None,
            sink: Sink::Stderr,
        }
    }
}

impl Settings {
    pub fn from_config(config: &crate::config::Config, req_pipe: Option<RawFd>) -> Settings {
        let log = &config.log;
        let sink = match req_pipe {
            Some(fd) => Sink::Fd(fd),
            None if !log.needs_master() => match crate::logging::journal::native_socket() {
                Some(path) => Sink::Journal {
                    path,
                    vassal: config.name.as_str().into(),
                },
                None => Sink::Stderr,
            },
            None => Sink::Stderr,
        };
        Settings {
            template: log.format.clone().map(Arc::new),
            ftime_format: log
                .format_strftime
                .then(|| log.date_format.as_deref().map(Arc::from))
                .flatten(),
            sink,
        }
    }

    /// Whether the request's Host, User-Agent, Referer and Content-Length must be kept.
    pub fn needs_headers(&self) -> bool {
        self.template.as_ref().is_some_and(|t| t.needs().headers)
    }

    /// The `%(var.NAME)` names the template prints.
    pub fn request_vars(&self) -> &[String] {
        self.template.as_ref().map_or(&[], |t| t.request_vars())
    }
}

/// Keeps from the request's variables what the template prints (nothing for the default
/// line). Called once per request with its CGI variables or uwsgi packet.
pub fn capture<'a>(
    settings: &Settings,
    log: &mut RequestLog,
    vars: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) {
    let wanted = settings.request_vars();
    if !settings.needs_headers() && wanted.is_empty() {
        return;
    }
    let extra = log.extra.get_or_insert_with(Default::default);
    extra.request_vars = vec![None; wanted.len()];
    for (name, value) in vars {
        let slot = match name {
            b"HTTP_HOST" => Some(&mut extra.host),
            b"HTTP_USER_AGENT" => Some(&mut extra.user_agent),
            b"HTTP_REFERER" => Some(&mut extra.referer),
            _ => None,
        };
        if let Some(slot) = slot {
            *slot = value.to_vec();
        }
        if name == b"CONTENT_LENGTH" {
            extra.content_length = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
        }
        if let Some(index) = wanted.iter().position(|w| w.as_bytes() == name) {
            extra.request_vars[index] = Some(value.to_vec());
        }
    }
}

struct LocalTime;

impl TimeFormat for LocalTime {
    fn strftime(&self, format: &str, unix_secs: i64, out: &mut String) {
        sys::time::strftime_local(format, unix_secs, out);
    }
}

thread_local! {
    /// The line being built, reused by each request of this thread.
    static LINE: RefCell<String> = RefCell::new(String::with_capacity(512));
    /// This thread's socket to journald.
    static JOURNAL: std::cell::OnceCell<Option<UnixDatagram>> = const { std::cell::OnceCell::new() };
}

/// Non-blocking: a journald that falls behind must not hold a request thread; the line then
/// goes to stderr (the journal's stream) instead.
fn journal_socket() -> Option<UnixDatagram> {
    let socket = UnixDatagram::unbound().ok()?;
    socket.set_nonblocking(true).ok()?;
    Some(socket)
}

/// What identifies the request's worker in its line.
pub struct Origin {
    pub pid: sys::process::Pid,
    pub worker_id: u32,
    pub total_requests: u64,
    pub core: usize,
    /// `uwsgi.set_logvar` values of the request.
    pub logvars: Vec<(String, String)>,
}

/// Writes the line of a finished request.
pub fn write(settings: &Settings, format: LineFormat, log: &RequestLog, origin: &Origin) {
    LINE.with(|line| {
        let mut line = line.borrow_mut();
        line.clear();
        match &settings.template {
            Some(template) => render(settings, template, format, log, origin, &mut line),
            None => log.format_default(
                origin.pid,
                origin.total_requests,
                origin.core,
                format,
                &mut line,
            ),
        }
        if !line.ends_with('\n') {
            line.push('\n');
        }
        send(settings, log.status, origin.worker_id, &line);
    });
}

fn render(
    settings: &Settings,
    template: &LogTemplate,
    format: LineFormat,
    log: &RequestLog,
    origin: &Origin,
    line: &mut String,
) {
    let addr = if log.forwarded_for.is_empty() {
        &log.remote_addr
    } else {
        &log.forwarded_for
    };
    let extra = log.extra.as_deref();
    let request_vars: Vec<Option<&[u8]>> = extra
        .map(|e| e.request_vars.iter().map(|v| v.as_deref()).collect())
        .unwrap_or_default();
    let record = RequestRecord {
        uri: log.uri.as_bytes(),
        method: log.method.as_bytes(),
        user: log.remote_user.as_bytes(),
        addr: addr.as_bytes(),
        host: extra.map_or(&[][..], |e| &e.host),
        proto: log.protocol.as_bytes(),
        uagent: extra.map_or(&[][..], |e| &e.user_agent),
        referer: extra.map_or(&[][..], |e| &e.referer),
        status: log.status,
        body_bytes: log.body_bytes,
        header_bytes: log.header_bytes as u64,
        header_count: log.header_count,
        content_length: extra.map_or(0, |e| e.content_length),
        micros: log.elapsed.as_micros() as u64,
        rt_in_micros: format.micros,
        start_unix_micros: log.start_unix_micros,
        now_unix_secs: sys::clock::unix_secs(),
        pid: origin.pid as u32,
        worker_id: origin.worker_id as usize,
        core: origin.core,
        switches: 1,
        var_count: log.var_count,
        packet_size: log.packet_size,
        modifier1: 0,
        modifier2: 0,
        memory: if template.needs().memory {
            sys::process::memory_bytes(origin.pid)
        } else {
            None
        },
        read_errors: u32::from(log.io_error && log.status == 0),
        write_errors: u32::from(log.io_error && log.status != 0),
        ftime_format: settings.ftime_format.as_deref(),
        request_vars: &request_vars,
        logvars: &origin.logvars,
    };
    template.render(&record, &LocalTime, line);
}

fn send(settings: &Settings, status: u16, worker_id: u32, line: &str) {
    match &settings.sink {
        Sink::Stderr => write_fd(2, line),
        Sink::Fd(fd) => write_fd(*fd, line),
        Sink::Journal { path, vassal } => {
            let priority = match status {
                500..=599 => "4",
                _ => "6",
            };
            let worker = worker_id.to_string();
            let entry = crate::logging::journal::encode(&[
                ("MESSAGE", line.trim_end_matches('\n')),
                ("PRIORITY", priority),
                ("SYSLOG_IDENTIFIER", "kaiser"),
                ("VASSAL", vassal),
                ("WORKER_ID", &worker),
                ("KAISER_REQUEST", "1"),
            ]);
            let sent = JOURNAL.with(|socket| match socket.get_or_init(journal_socket) {
                Some(socket) => socket.send_to(&entry, path).is_ok(),
                None => false,
            });
            if !sent {
                // journald is gone: the line must not be lost.
                write_fd(2, line);
            }
        }
    }
}

fn write_fd(fd: RawFd, line: &str) {
    // SAFETY: the fd (2, or the request pipe the master handed over) stays open for the life
    // of the worker.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = sys::fd::write(fd, line.as_bytes());
}
