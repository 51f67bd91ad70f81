//! The log master's outputs: the log file (`logto`, `daemonize`, `logto2`) or the original
//! stderr, `file:` loggers, syslog (`/dev/log`), rsyslog (UDP) and `socket:` datagrams; and
//! what only a single writer can do to a file: rotate it past `log-maxsize` between two
//! lines, and reopen it after logrotate renamed it.
//!
//! Files are opened by the vassal master before the log master forks, so a path that cannot
//! be opened stops the vassal with its name. It does not route or encode (`master.rs`).

use std::fs::File;
use std::io::{self, Write as _};
use std::net::UdpSocket;
use std::os::unix::fs::OpenOptionsExt as _;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use crate::config::{LoggerSpec, LoggerTarget};

/// Names another socket than `/dev/log` for `syslog` (tests run without a syslog daemon).
pub const SYSLOG_SOCKET_ENV: &str = "KAISER_SYSLOG_SOCKET";

#[derive(Debug, thiserror::Error)]
pub enum OpenLoggerError {
    #[error("cannot open the log file `{}`", .path.display())]
    File {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot set up the logger `{spec}`")]
    Socket {
        spec: String,
        #[source]
        source: io::Error,
    },
}

/// A log file the log master owns: appended to, rotated and reopened by path.
pub struct LogFile {
    pub path: PathBuf,
    file: File,
    /// Bytes in the file, as far as this process knows (re-read each second, since
    /// logrotate's `copytruncate` may have emptied it).
    size: u64,
    /// `log-backupname`, for the main log file only.
    backupname: Option<PathBuf>,
    /// Whole lines not written yet: the log master writes what one turn of its loop read in
    /// one `write(2)`, and rotates only between two such writes.
    pending: Vec<u8>,
}

/// Pending bytes past this are written at once.
const FLUSH_AT: usize = 64 * 1024;

/// Opens for appending (`O_APPEND`, so lines land at the end even after logrotate's
/// `copytruncate`), creating with mode 0640 as uWSGI does; emptied first with `truncate`.
fn open_append(path: &Path, truncate: bool) -> io::Result<File> {
    // std refuses `append` with `truncate`, so O_APPEND is given as a raw flag.
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(truncate)
        .custom_flags(libc::O_APPEND)
        .mode(0o640)
        .open(path)
}

impl LogFile {
    pub fn open(path: &Path, backupname: Option<PathBuf>) -> Result<LogFile, OpenLoggerError> {
        let file = open_append(path, false).map_err(|source| OpenLoggerError::File {
            path: path.to_owned(),
            source,
        })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(LogFile {
            path: path.to_owned(),
            file,
            size,
            backupname,
            pending: Vec::with_capacity(FLUSH_AT),
        })
    }

    fn write(&mut self, bytes: &[u8], maxsize: u64) {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= FLUSH_AT {
            self.flush(maxsize);
        }
    }

    /// Writes the pending lines, then rotates if the file passed `maxsize`.
    fn flush(&mut self, maxsize: u64) {
        if !self.pending.is_empty() {
            if self.file.write_all(&self.pending).is_ok() {
                self.size += self.pending.len() as u64;
            }
            self.pending.clear();
        }
        if maxsize > 0 && self.size > maxsize {
            self.rotate();
        }
    }

    /// Re-reads the size (after a `copytruncate`).
    fn resync(&mut self) {
        if let Ok(meta) = self.file.metadata() {
            self.size = meta.len();
        }
    }

    /// The name the file gets when rotated: `log-backupname`, else `FILE.UNIXTIME`, with a
    /// `.N` suffix when that exists already (two rotations in one second must not overwrite
    /// each other's lines).
    fn backup_path(&self) -> PathBuf {
        if let Some(fixed) = &self.backupname {
            return fixed.clone();
        }
        let now = crate::sys::clock::unix_secs();
        let base = format!("{}.{now}", self.path.display());
        let mut candidate = PathBuf::from(&base);
        let mut n = 1;
        while candidate.exists() {
            candidate = PathBuf::from(format!("{base}.{n}"));
            n += 1;
        }
        candidate
    }

    /// uWSGI's rotation (`uwsgi_log_do_rotate`): a last line in the old file, rename, and a
    /// new empty file in its place. Between two lines: none is cut or lost.
    pub fn rotate(&mut self) {
        self.flush(0);
        let backup = self.backup_path();
        let mut note = String::new();
        crate::protocol::log::push_ctime(&mut note, crate::sys::clock::unix_secs() as i64);
        let _ = writeln!(
            self.file,
            "{note} - logsize: {}, triggering rotation to {}...",
            self.size,
            backup.display()
        );
        if let Err(err) = std::fs::rename(&self.path, &backup) {
            let _ = writeln!(
                self.file,
                "unable to rotate log `{}`: {err}",
                self.path.display()
            );
            return;
        }
        match open_append(&self.path, true) {
            Ok(file) => {
                self.file = file;
                self.size = 0;
            }
            Err(err) => {
                let _ = writeln!(
                    self.file,
                    "cannot open `{}` after rotation: {err}",
                    self.path.display()
                );
            }
        }
    }

    /// uWSGI's reopen (`uwsgi_log_reopen`): for logrotate's rename, then `touch-logreopen`
    /// or FIFO `l`.
    pub fn reopen(&mut self) {
        self.flush(0);
        let now = crate::sys::clock::unix_secs();
        let _ = writeln!(
            self.file,
            "[{now}] logsize: {}, triggering log-reopen...",
            self.size
        );
        match open_append(&self.path, false) {
            Ok(file) => {
                self.file = file;
                let _ = writeln!(self.file, "[{now}] {} reopened.", self.path.display());
                self.resync();
            }
            Err(err) => {
                let _ = writeln!(self.file, "cannot reopen `{}`: {err}", self.path.display());
            }
        }
    }
}

enum Kind {
    File(LogFile),
    /// fd 2 of the log master: the terminal, the journal's stream, or the emperor's pipe;
    /// whole lines written once per turn of the loop, as for files.
    Stdio(Vec<u8>),
    Syslog {
        socket: UnixDatagram,
        target: PathBuf,
        ident: String,
        facility: u8,
    },
    Rsyslog {
        socket: UdpSocket,
        ident: String,
        hostname: String,
    },
    Udp(UdpSocket),
    Unix {
        socket: UnixDatagram,
        target: PathBuf,
    },
    Journal {
        socket: UnixDatagram,
        target: PathBuf,
        vassal: String,
    },
}

/// One logger.
pub struct Output {
    /// Its name for `log-route` and encoders.
    pub id: Option<String>,
    kind: Kind,
}

impl Output {
    pub fn stdio() -> Output {
        Output {
            id: None,
            kind: Kind::Stdio(Vec::new()),
        }
    }

    pub fn file(file: LogFile) -> Output {
        Output {
            id: None,
            kind: Kind::File(file),
        }
    }

    /// Opens the logger `spec` of the vassal `vassal`.
    pub fn open(spec: &LoggerSpec, vassal: &str) -> Result<Output, OpenLoggerError> {
        let socket_error = |source| OpenLoggerError::Socket {
            spec: format!("{:?}", spec.target),
            source,
        };
        let kind = match &spec.target {
            LoggerTarget::File(path) => Kind::File(LogFile::open(path, None)?),
            LoggerTarget::Stdio => Kind::Stdio(Vec::new()),
            LoggerTarget::Syslog { ident, facility } => Kind::Syslog {
                socket: UnixDatagram::unbound().map_err(socket_error)?,
                target: std::env::var_os(SYSLOG_SOCKET_ENV)
                    .map_or_else(|| PathBuf::from("/dev/log"), PathBuf::from),
                ident: ident.clone(),
                facility: *facility,
            },
            LoggerTarget::Rsyslog { address, ident } => {
                let socket = UdpSocket::bind(("0.0.0.0", 0)).map_err(socket_error)?;
                socket.connect(address.as_str()).map_err(socket_error)?;
                Kind::Rsyslog {
                    socket,
                    ident: ident.clone(),
                    hostname: crate::sys::process::hostname(),
                }
            }
            LoggerTarget::Socket(address) if address.starts_with('/') => Kind::Unix {
                socket: UnixDatagram::unbound().map_err(socket_error)?,
                target: PathBuf::from(address),
            },
            LoggerTarget::Socket(address) => {
                let socket = UdpSocket::bind(("0.0.0.0", 0)).map_err(socket_error)?;
                socket.connect(address.as_str()).map_err(socket_error)?;
                Kind::Udp(socket)
            }
            LoggerTarget::Journal => {
                let socket = UnixDatagram::unbound().map_err(socket_error)?;
                Kind::Journal {
                    socket,
                    target: std::env::var_os(super::journal::SOCKET_ENV).map_or_else(
                        || PathBuf::from(super::journal::DEFAULT_SOCKET),
                        PathBuf::from,
                    ),
                    vassal: vassal.to_owned(),
                }
            }
        };
        Ok(Output {
            id: spec.id.clone(),
            kind,
        })
    }

    /// Writes one line (its newline included, when it has one). Stream outputs get a newline
    /// if an encoder dropped it, so each line stays a line; datagram outputs send the line
    /// without it, one datagram per line. Errors are dropped: there is nowhere to report them
    /// that is not this log.
    pub fn write(&mut self, line: &str, maxsize: u64) {
        let bare = line.strip_suffix('\n').unwrap_or(line);
        match &mut self.kind {
            Kind::File(file) => {
                if line.ends_with('\n') {
                    file.write(line.as_bytes(), maxsize);
                } else {
                    file.write(format!("{line}\n").as_bytes(), maxsize);
                }
            }
            Kind::Stdio(pending) => {
                pending.extend_from_slice(bare.as_bytes());
                pending.push(b'\n');
                if pending.len() >= FLUSH_AT {
                    flush_stderr(pending);
                }
            }
            Kind::Syslog {
                socket,
                target,
                ident,
                facility,
            } => {
                let packet = syslog_packet(*facility, None, ident, bare);
                let _ = socket.send_to(packet.as_bytes(), &*target);
            }
            Kind::Rsyslog {
                socket,
                ident,
                hostname,
            } => {
                let packet = syslog_packet(1, Some(hostname), ident, bare);
                let _ = socket.send(packet.as_bytes());
            }
            Kind::Udp(socket) => {
                let _ = socket.send(bare.as_bytes());
            }
            Kind::Unix { socket, target } => {
                let _ = socket.send_to(bare.as_bytes(), &*target);
            }
            Kind::Journal {
                socket,
                target,
                vassal,
            } => {
                let entry = super::journal::encode(&[
                    ("MESSAGE", bare),
                    ("PRIORITY", "6"),
                    ("SYSLOG_IDENTIFIER", "kaiser"),
                    ("VASSAL", vassal),
                ]);
                if socket.send_to(&entry, &*target).is_err() {
                    let _ = writeln!(io::stderr().lock(), "{bare}");
                }
            }
        }
    }

    pub fn rotate(&mut self) {
        if let Kind::File(file) = &mut self.kind {
            file.rotate();
        }
    }

    /// The fd it holds, which the log master must keep open.
    pub fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd as _;
        match &self.kind {
            Kind::File(file) => Some(file.file.as_raw_fd()),
            Kind::Stdio(_) => None,
            Kind::Syslog { socket, .. }
            | Kind::Unix { socket, .. }
            | Kind::Journal { socket, .. } => Some(socket.as_raw_fd()),
            Kind::Rsyslog { socket, .. } | Kind::Udp(socket) => Some(socket.as_raw_fd()),
        }
    }

    pub fn reopen(&mut self) {
        if let Kind::File(file) = &mut self.kind {
            file.reopen();
        }
    }

    pub fn resync(&mut self) {
        if let Kind::File(file) = &mut self.kind {
            file.flush(0);
            file.resync();
        }
    }

    /// Writes what [`Output::write`] buffered (files only; the rest is written at once), and
    /// rotates a file past `maxsize`.
    pub fn flush(&mut self, maxsize: u64) {
        match &mut self.kind {
            Kind::File(file) => file.flush(maxsize),
            Kind::Stdio(pending) => flush_stderr(pending),
            _ => {}
        }
    }
}

/// Writes and empties `pending`; a broken stderr loses the lines (there is nowhere else).
fn flush_stderr(pending: &mut Vec<u8>) {
    if !pending.is_empty() {
        let _ = io::stderr().lock().write_all(pending);
        pending.clear();
    }
}

/// An RFC 3164 message at severity info: `<PRI>Mmm dd hh:mm:ss [HOST ]IDENT[PID]: MSG`.
pub fn syslog_packet(facility: u8, hostname: Option<&str>, ident: &str, message: &str) -> String {
    let mut packet = format!("<{}>", u32::from(facility) * 8 + 6);
    crate::sys::time::strftime_local(
        "%b %e %H:%M:%S",
        crate::sys::clock::unix_secs() as i64,
        &mut packet,
    );
    packet.push(' ');
    if let Some(host) = hostname {
        packet.push_str(host);
        packet.push(' ');
    }
    packet.push_str(&format!("{ident}[{}]: {message}", std::process::id()));
    packet
}
