//! The log master: one process per vassal that is the only writer of its logs.
//!
//! uWSGI runs its log master inside the master process (or a thread of it). kaiser's master
//! is single-threaded and must never block on a disk or a slow syslog, so the log master is
//! a child process instead, forked by the vassal master before it imports the app:
//! - the vassal master and every worker have fds 1 and 2 on a `SOCK_SEQPACKET` pipe to it, so
//!   each `write(2)` (a request line, a tracing event, a Python `print`) arrives whole, tagged
//!   with the writer's pid; a writer's partial lines are joined before anything is written;
//! - workers write request lines on a second pipe, so `req-logger`, `log-req-route` and
//!   `log-req-encoder` know them apart from the rest;
//! - it routes (`log-route`), filters (`log-drain`, `log-filter`), prefixes (`log-prefix`) and
//!   encodes (`log-encoder`) each line, writes it to the loggers, and rotates (`log-maxsize`,
//!   `touch-logrotate`, SIGUSR1 from FIFO `L`) or reopens (`touch-logreopen`, SIGHUP from
//!   FIFO `l`) files between two lines, so no line is split or lost by a rotation;
//! - it outlives a graceful reload (the re-executed master finds it in `KAISER_LOG_MASTER`)
//!   and exits when every writer has closed its pipe, after writing what was queued. SIGTERM
//!   and SIGINT do not stop it: a stop signal sent to the whole group must not lose the
//!   last lines.
//!
//! It does not import Python, serve requests or read the config again on reload.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use super::outputs::{LogFile, OpenLoggerError, Output};
use crate::config::{Config, LogOptions, Route};
use crate::protocol::log_format::{encode_all, Encoder, EncoderClock, TimeFormat};
use crate::sys;
use crate::sys::seqpacket::Received;

/// Set by a master for its re-executed self: `PID,REQUEST_FD`.
pub const ENV: &str = "KAISER_LOG_MASTER";

/// The biggest message read at once (what the pipe is sized for; a longer write fails in
/// the writer).
const MAX_MESSAGE: usize = sys::seqpacket::MAX_MESSAGE;

#[derive(Debug, Clone, Copy)]
struct Running {
    pid: sys::process::Pid,
    request_fd: RawFd,
}

static RUNNING: OnceLock<Running> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum StartLogMasterError {
    #[error(transparent)]
    Open(#[from] OpenLoggerError),
    #[error("cannot create the log master's pipes")]
    Pipe(#[source] io::Error),
    #[error("cannot fork the log master")]
    Fork(#[source] sys::fork::ForkError),
}

/// Whether this vassal runs a log master: asked for, or needed by a logging option that
/// only a single writer can honour, or by a master FIFO next to a log file (its `l` and `L`
/// commands reopen and rotate that file).
pub fn uses_log_master(config: &Config) -> bool {
    config.log.needs_master()
        || config.alarm.needs_log_master()
        || (!config.master_fifo.is_empty()
            && (config.logto.is_some() || config.daemonize.is_some()))
}

/// The request pipe's fd in this process, when a log master runs.
pub fn request_pipe() -> Option<RawFd> {
    RUNNING.get().map(|running| running.request_fd)
}

/// What the FIFO's `l` and `L` ask of the log master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Reopen,
    Rotate,
}

/// Tells the log master to reopen or rotate its files. Returns false when there is none.
pub fn command(command: Command) -> bool {
    let Some(running) = RUNNING.get() else {
        return false;
    };
    let signal = match command {
        Command::Reopen => libc::SIGHUP,
        Command::Rotate => libc::SIGUSR1,
    };
    sys::signal::kill(running.pid, signal).is_ok()
}

/// The log master's pid, if one runs.
pub fn pid() -> Option<sys::process::Pid> {
    RUNNING.get().map(|running| running.pid)
}

/// The log master died: the next generation of this master (after a reload) starts a new
/// one instead of adopting it.
pub fn forget() {
    std::env::remove_var(ENV);
}

/// Starts the log master if the config needs one (or adopts the one a previous generation
/// of this master started), and points this process's fds 1 and 2 at it. Call while the
/// process has one thread, after the privilege drop and before the app is imported.
pub fn start(config: &Config) -> Result<(), StartLogMasterError> {
    if let Some(running) = std::env::var(ENV).ok().and_then(|v| parse_env(&v)) {
        let _ = RUNNING.set(running);
        // A reload reopens the log files, as it reopens `logto` without a log master: a
        // logrotate `postrotate` may rename them and then reload.
        command(Command::Reopen);
        return Ok(());
    }
    if !uses_log_master(config) {
        return Ok(());
    }
    let mut dispatch = Dispatch::open(config)?;
    let alarm_link =
        crate::alarm::Link::create(&config.alarm).map_err(StartLogMasterError::Pipe)?;
    let (general_read, general_write) =
        sys::seqpacket::pair().map_err(StartLogMasterError::Pipe)?;
    let (request_read, request_write) =
        sys::seqpacket::pair().map_err(StartLogMasterError::Pipe)?;
    match sys::fork::fork().map_err(StartLogMasterError::Fork)? {
        sys::fork::Forked::Child => {
            drop(general_write);
            drop(request_write);
            let link = alarm_link.map(crate::alarm::Link::into_log_master_end);
            dispatch.watch = crate::alarm::LogWatch::new(&config.alarm, link);
            let keep = [general_read.as_raw_fd(), request_read.as_raw_fd()];
            let code = run(dispatch, general_read, request_read, &keep, &config.log);
            sys::process::exit_now(code)
        }
        sys::fork::Forked::Parent { child } => {
            drop(dispatch);
            if let Some(link) = alarm_link {
                link.keep_master_end().map_err(StartLogMasterError::Pipe)?;
            }
            drop(general_read);
            drop(request_read);
            sys::fd::dup2(general_write.as_fd(), 1).map_err(StartLogMasterError::Pipe)?;
            sys::fd::dup2(general_write.as_fd(), 2).map_err(StartLogMasterError::Pipe)?;
            drop(general_write);
            // Kept across the re-exec of a reload, as fds 1 and 2 are.
            sys::fd::set_cloexec(request_write.as_fd(), false)
                .map_err(StartLogMasterError::Pipe)?;
            let request_fd = request_write.into_raw_fd();
            std::env::set_var(ENV, format!("{child},{request_fd}"));
            let _ = RUNNING.set(Running {
                pid: child,
                request_fd,
            });
            tracing::info!(pid = child, "log master started");
            Ok(())
        }
    }
}

fn parse_env(value: &str) -> Option<Running> {
    let (pid, fd) = value.split_once(',')?;
    Some(Running {
        pid: pid.parse().ok()?,
        request_fd: fd.parse().ok()?,
    })
}

struct Clock;

impl TimeFormat for Clock {
    fn strftime(&self, format: &str, unix_secs: i64, out: &mut String) {
        sys::time::strftime_local(format, unix_secs, out);
    }
}

impl EncoderClock for Clock {
    fn now_micros(&self) -> u64 {
        sys::clock::unix_us()
    }
}

/// Where each line goes: the loggers, the routes and the encoders.
struct Dispatch {
    /// The log file or the original stderr: where lines go when no logger is configured.
    default: Output,
    loggers: Vec<Output>,
    req_loggers: Vec<Output>,
    options: LogOptions,
    /// `log-alarm`: tries each line (`crate::alarm`).
    watch: Option<crate::alarm::LogWatch>,
}

impl Dispatch {
    fn open(config: &Config) -> Result<Dispatch, OpenLoggerError> {
        let log = &config.log;
        let main_file = log
            .logto2
            .clone()
            .or_else(|| config.logto.clone())
            .or_else(|| config.daemonize.clone());
        let default = match main_file {
            Some(path) => Output::file(LogFile::open(&path, log.backupname.clone())?),
            None => Output::stdio(),
        };
        Ok(Dispatch {
            default,
            loggers: log
                .loggers
                .iter()
                .map(|spec| Output::open(spec, &config.name))
                .collect::<Result<_, _>>()?,
            req_loggers: log
                .req_loggers
                .iter()
                .map(|spec| Output::open(spec, &config.name))
                .collect::<Result<_, _>>()?,
            options: log.clone(),
            watch: None,
        })
    }

    fn outputs(&mut self) -> impl Iterator<Item = &mut Output> {
        std::iter::once(&mut self.default)
            .chain(self.loggers.iter_mut())
            .chain(self.req_loggers.iter_mut())
    }

    /// One whole line (with its newline, unless it was cut).
    fn line(&mut self, line: &str, request: bool) {
        // Request lines are log lines to uWSGI's alarms unless `req-logger` gives them
        // loggers of their own (they then travel a pipe the alarm check does not read).
        if !request || self.req_loggers.is_empty() {
            if let Some(mut watch) = self.watch.take() {
                for text in watch.check(line) {
                    self.line(&format!("{text}\n"), false);
                }
                self.watch = Some(watch);
            }
        }
        let bare = line.strip_suffix('\n').unwrap_or(line);
        let options = &self.options;
        if !request {
            if options.drain.iter().any(|p| p.is_match(bare)) {
                return;
            }
            if !options.filter.is_empty() && !options.filter.iter().any(|p| p.is_match(bare)) {
                return;
            }
        }
        let prefixed;
        let line = match &options.prefix {
            Some(prefix) => {
                prefixed = format!("{prefix}{line}");
                prefixed.as_str()
            }
            None => line,
        };
        let encoders: &[Encoder] = if request && !options.req_encoders.is_empty() {
            &options.req_encoders
        } else {
            &options.encoders
        };
        // Request lines have loggers of their own only with `req-logger`; otherwise they
        // share the general ones, as in uWSGI.
        let own = request && !self.req_loggers.is_empty();
        let routes: &[Route] = if own {
            &options.req_routes
        } else {
            &options.routes
        };
        let loggers = if own {
            &mut self.req_loggers
        } else {
            &mut self.loggers
        };
        let maxsize = options.maxsize;
        let mut routed = false;
        for route in routes {
            if route.pattern.is_match(bare) {
                for logger in loggers
                    .iter_mut()
                    .filter(|l| l.id.as_deref() == Some(route.id.as_str()))
                {
                    logger.write(
                        &encode_all(encoders, logger.id.as_deref(), line, &Clock),
                        maxsize,
                    );
                    routed = true;
                }
            }
        }
        if routed {
            return;
        }
        let mut written = false;
        for logger in loggers.iter_mut().filter(|l| l.id.is_none()) {
            logger.write(&encode_all(encoders, None, line, &Clock), maxsize);
            written = true;
        }
        if !written {
            self.default
                .write(&encode_all(encoders, None, line, &Clock), maxsize);
        }
    }
}

/// `touch-logreopen` / `touch-logrotate`: fires when a file's mtime changes, or it appears
/// or disappears (as uWSGI's `uwsgi_check_touches`).
struct Touch {
    path: PathBuf,
    seen: Option<SystemTime>,
    rotate: bool,
}

impl Touch {
    fn new(path: &std::path::Path, rotate: bool) -> Touch {
        Touch {
            path: path.to_owned(),
            seen: mtime(path),
            rotate,
        }
    }

    fn fired(&mut self) -> bool {
        let now = mtime(&self.path);
        let fired = now != self.seen;
        self.seen = now;
        fired
    }
}

fn mtime(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Lines a writer sent without their end yet, by writer pid.
#[derive(Default)]
struct Partials {
    pending: HashMap<libc::pid_t, (Vec<u8>, Instant)>,
}

impl Partials {
    /// Joins `bytes` to what `pid` sent before and hands every whole line to `emit`.
    fn feed(&mut self, pid: libc::pid_t, bytes: &[u8], mut emit: impl FnMut(&[u8])) {
        let mut data = match self.pending.remove(&pid) {
            Some((mut pending, _)) => {
                pending.extend_from_slice(bytes);
                std::borrow::Cow::Owned(pending)
            }
            None => std::borrow::Cow::Borrowed(bytes),
        };
        let mut start = 0;
        while let Some(newline) = data[start..].iter().position(|&b| b == b'\n') {
            emit(&data[start..start + newline + 1]);
            start += newline + 1;
        }
        if start < data.len() {
            if data.len() - start >= MAX_MESSAGE {
                emit(&data[start..]);
            } else {
                let rest = data.to_mut().split_off(start);
                self.pending.insert(pid, (rest, Instant::now()));
            }
        }
    }

    /// Lines left unfinished for a second (or all, at the end) are written as they are.
    fn flush(&mut self, older_than: Duration, mut emit: impl FnMut(&[u8])) {
        let now = Instant::now();
        let stale: Vec<libc::pid_t> = self
            .pending
            .iter()
            .filter(|(_, (_, since))| now.duration_since(*since) >= older_than)
            .map(|(pid, _)| *pid)
            .collect();
        for pid in stale {
            if let Some((bytes, _)) = self.pending.remove(&pid) {
                emit(&bytes);
            }
        }
    }
}

fn run(
    mut dispatch: Dispatch,
    general: OwnedFd,
    request: OwnedFd,
    keep: &[RawFd],
    options: &LogOptions,
) -> i32 {
    let mut keep = keep.to_vec();
    keep.extend(dispatch.outputs().filter_map(|o| o.raw_fd()));
    keep.extend(dispatch.watch.as_ref().and_then(|w| w.link_fd()));
    sys::fd::close_all_except(&keep);
    let own = [
        libc::SIGHUP,
        libc::SIGUSR1,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGTSTP,
    ];
    let set = sys::signal::SigSet::of(&own);
    if sys::signal::block(&set).is_err() {
        return 1;
    }
    let Ok(signals) = sys::signal::SignalFd::new(&set) else {
        return 1;
    };
    // The vassal master's death must not lose the lines still queued: this process ends at
    // EOF, when the last writer (a worker outliving the master included) is gone.
    let mut touches: Vec<Touch> = options
        .touch_reopen
        .iter()
        .map(|p| Touch::new(p, false))
        .chain(options.touch_rotate.iter().map(|p| Touch::new(p, true)))
        .collect();
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut partials = Partials::default();
    let mut request_partials = Partials::default();
    let mut open = [true, true];
    let mut next_tick = Instant::now() + Duration::from_secs(1);
    while open.iter().any(|o| *o) {
        let pipes: [BorrowedFd<'_>; 2] = [general.as_fd(), request.as_fd()];
        let mut fds = vec![(signals.as_fd(), sys::poll::READABLE)];
        let mut which = Vec::new();
        for (index, fd) in pipes.iter().enumerate() {
            if open[index] {
                fds.push((*fd, sys::poll::READABLE));
                which.push(index);
            }
        }
        let timeout = next_tick.saturating_duration_since(Instant::now());
        let Ok(revents) = sys::poll::poll(&fds, Some(timeout)) else {
            continue;
        };
        // Signals first: a reopen or rotation asked for before these lines were read applies
        // to them (a reloaded master asks for a reopen before it logs anything).
        if revents[0] != 0 {
            while let Ok(Some(signal)) = signals.read() {
                match signal {
                    libc::SIGHUP => dispatch.outputs().for_each(Output::reopen),
                    libc::SIGUSR1 => dispatch.outputs().for_each(Output::rotate),
                    _ => {}
                }
            }
        }
        for (slot, index) in which.iter().enumerate() {
            if revents[slot + 1] == 0 {
                continue;
            }
            let is_request = *index == 1;
            loop {
                match sys::seqpacket::recv(pipes[*index], &mut buf) {
                    Ok(Received::Message { len, pid }) => {
                        let target = if is_request {
                            &mut request_partials
                        } else {
                            &mut partials
                        };
                        target.feed(pid, &buf[..len], |line| {
                            dispatch.line(&String::from_utf8_lossy(line), is_request)
                        });
                    }
                    Ok(Received::Eof) => {
                        open[*index] = false;
                        break;
                    }
                    Ok(Received::Empty) => break,
                    Err(_) => {
                        open[*index] = false;
                        break;
                    }
                }
            }
        }
        let maxsize = options.maxsize;
        dispatch.outputs().for_each(|o| o.flush(maxsize));
        if Instant::now() >= next_tick {
            next_tick = Instant::now() + Duration::from_secs(1);
            for touch in &mut touches {
                if touch.fired() {
                    if touch.rotate {
                        dispatch.outputs().for_each(Output::rotate);
                    } else {
                        dispatch.outputs().for_each(Output::reopen);
                    }
                }
            }
            dispatch.outputs().for_each(Output::resync);
            if let Some(watch) = &mut dispatch.watch {
                watch.tick();
            }
            partials.flush(Duration::from_secs(1), |line| {
                dispatch.line(&String::from_utf8_lossy(line), false)
            });
            request_partials.flush(Duration::from_secs(1), |line| {
                dispatch.line(&String::from_utf8_lossy(line), true)
            });
        }
    }
    partials.flush(Duration::ZERO, |line| {
        dispatch.line(&String::from_utf8_lossy(line), false)
    });
    request_partials.flush(Duration::ZERO, |line| {
        dispatch.line(&String::from_utf8_lossy(line), true)
    });
    dispatch.outputs().for_each(|o| o.flush(0));
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_lines_are_joined_per_writer() {
        let mut partials = Partials::default();
        let mut lines: Vec<String> = Vec::new();
        let mut emit = |l: &[u8]| lines.push(String::from_utf8_lossy(l).into_owned());
        partials.feed(1, b"a1 a", &mut emit);
        partials.feed(2, b"b1\nb2 ", &mut emit);
        partials.feed(1, b"1 end\na2\n", &mut emit);
        partials.feed(2, b"end", &mut emit);
        partials.flush(Duration::ZERO, &mut emit);
        assert_eq!(lines, ["b1\n", "a1 a1 end\n", "a2\n", "b2 end"]);
    }

    #[test]
    fn env_round_trip() {
        let running = parse_env("123,7").expect("valid");
        assert_eq!((running.pid, running.request_fd), (123, 7));
        assert!(parse_env("x").is_none());
    }
}
