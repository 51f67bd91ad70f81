//! Log output: `tracing` events, either as native journald entries or as lines on stderr.
//!
//! - Under systemd (`JOURNAL_STREAM` set, as systemd does for a service whose stderr is the
//!   journal) and with the journal's socket present, every event is sent as a native journal
//!   entry (see [`journal`]) with structured fields: `VASSAL` (the vassal's name, so
//!   `journalctl VASSAL=mysite` shows one app, the emperor's lines about it included),
//!   `WORKER_ID`, `PRIORITY` and `SYSLOG_IDENTIFIER=kaiser`. Vassals inherit the emperor's
//!   stderr and environment, so they log to the journal the same way.
//! - Otherwise one readable line per event on stderr, with the role's span (`emperor`,
//!   `vassal{name=…}`, `worker{id=…}`) on every line; timestamps are left out when stderr is
//!   the journal's stream anyway.
//!
//! `KAISER_LOG=debug` (or trace, warn, error) sets the level. `KAISER_JOURNAL_SOCKET` names
//! another socket than `/run/systemd/journal/socket`: the tests point it at a socket of their
//! own, since no journald runs there.
//!
//! What this does not do: request lines (`worker::request_log`, which sends its own native
//! entries) or output written straight to fd 1 and 2 (Python's `print`): the latter reaches
//! the journal through the stream, without structured fields, unless an emperor reads it
//! and adds `VASSAL=` (`emperor::vassal_logs`). It also holds [`error_chain`], the one way
//! an error and its causes are put on a log line.

pub mod journal;
pub mod master;
pub mod outputs;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn level() -> LevelFilter {
    match std::env::var("KAISER_LOG").ok().as_deref() {
        Some("trace") => LevelFilter::TRACE,
        Some("debug") => LevelFilter::DEBUG,
        Some("warn") => LevelFilter::WARN,
        Some("error") => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    }
}

/// An error and its causes on one line, `: `-separated, as uWSGI-style log lines want them
/// (`main` prints a fatal error's chain one cause a line instead).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `logto`: appends stdout and stderr (so every line of this process and its children) to
/// `path`, created with mode 0640 if missing, with `log-truncate` (only at the first start,
/// not in a master re-executed by a reload), `logfile-chmod` and `logfile-chown` (to the
/// configured `uid`/`gid`). Call before [`init`]: the file is plain text, so the journal's
/// stream, if stderr was one, is no longer where the lines go.
pub fn redirect_to(path: &std::path::Path, config: &crate::config::Config) -> std::io::Result<()> {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    use std::os::unix::fs::PermissionsExt as _;
    let log = &config.log;
    let truncate = log.truncate && std::env::var_os("KAISER_RELOADS").is_none();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(truncate)
        .custom_flags(libc::O_APPEND)
        .mode(0o640)
        .open(path)?;
    if let Some(mode) = log.chmod {
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    if log.chown {
        let (uid, user_gid) = match &config.uid {
            Some(user) => {
                let (uid, gid, _) = crate::sys::process::lookup_user(user)?;
                (Some(uid), Some(gid))
            }
            None => (None, None),
        };
        let gid = match &config.gid {
            Some(group) => Some(crate::sys::process::lookup_group(group)?),
            None => user_gid,
        };
        crate::sys::process::chown(path, uid, gid)?;
    }
    crate::sys::fd::dup2(file.as_fd(), 1)?;
    crate::sys::fd::dup2(file.as_fd(), 2)?;
    std::env::remove_var("JOURNAL_STREAM");
    Ok(())
}

/// `log-date`: kaiser's own lines start with the date, as C's `ctime` gives it (local time)
/// or in a strftime format, then ` - `, as uWSGI's `uwsgi_log` lines do.
struct DateTimer(Option<String>);

impl tracing_subscriber::fmt::time::FormatTime for DateTimer {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let mut date = String::new();
        let now = crate::sys::clock::unix_secs() as i64;
        crate::sys::time::strftime_local(
            self.0.as_deref().unwrap_or("%a %b %e %H:%M:%S %Y"),
            now,
            &mut date,
        );
        write!(w, "{date} -")
    }
}

/// stderr that drops what it cannot write. tracing-subscriber reports a failed write with
/// `eprintln!`, which panics when stderr itself is what failed (a pipe whose reader is gone:
/// a dead log master, an emperor or journald gone): a lost log line must not take the
/// process down with it.
struct QuietStderr;

impl std::io::Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // One event is one `write_all` of a whole formatted line.
        let _ = std::io::stderr().lock().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn init() {
    init_with_date(None)
}

/// Installs the subscriber; `date` is `log-date` (`Some(None)`: ctime, `Some(Some(f))`: the
/// strftime format `f`).
pub fn init_with_date(date: Option<Option<String>>) {
    let level = level();
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    if under_journald {
        if let Some(layer) = journal::JournalLayer::from_env() {
            tracing_subscriber::registry()
                .with(level)
                .with(layer)
                .init();
            return;
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_writer(|| QuietStderr)
        .with_target(false)
        .with_ansi(false)
        .with_max_level(level);
    match date {
        Some(format) => builder.with_timer(DateTimer(format)).init(),
        None if under_journald => builder.without_time().init(),
        None => builder.init(),
    }
}
