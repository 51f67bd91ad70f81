//! Static files served by the worker itself (`static-map`, `static-map2`, `check-static`),
//! before and without Python: no GIL, no WSGI environ, a `sendfile(2)` body.
//!
//! A request is looked up in uWSGI's order (every `check-static`, then `static-map`, then
//! `static-map2`); a path that names no file falls through to the app, as in uWSGI. A path
//! that tries to leave its root (`..` above it, a NUL or a backslash, a symlink out of it
//! that `static-safe` does not allow) is answered 403 and never reaches the app (uWSGI logs
//! "security error" and passes it on). Names are resolved with `openat2(RESOLVE_BENEATH)`
//! under a handle on the root opened once, so no check-then-open race can lead outside.
//!
//! The body is sent from the request thread while the socket takes it; what a client does not
//! take at once goes to the worker's offload threads (`offload.rs`), so a slow client never
//! holds a request thread.
//!
//! The pure decisions (path folding, MIME types, 304/206/416) live in
//! `protocol::static_files`; this module does the file system and socket half. It does not
//! touch Python or the WSGI exchange.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::exchange::RequestLog;
use super::serve::{current_core, Conn};
use super::Shared;
use crate::config::{ExpiresOn, FileServeMode, StaticConfig, StaticMapKind};
use crate::protocol::http::{self, Version};
use crate::protocol::response;
use crate::protocol::static_files::conditional::{self, Conditions, FileFacts};
use crate::protocol::static_files::mime::{self, MimeTypes};
use crate::protocol::static_files::path::{self, MapKind};
use crate::protocol::uwsgi;
use crate::sys;

const DEFAULT_MIME_FILE: &str = "/etc/mime.types";

/// The static file settings of one worker, with its roots opened.
pub struct StaticFiles {
    maps: Vec<Mapping>,
    index: Vec<String>,
    skip_ext: Vec<String>,
    /// `static-safe`, canonical.
    safe: Vec<PathBuf>,
    mime: MimeTypes,
    expires: Vec<Expires>,
    gzip_all: bool,
    gzip_patterns: Vec<regex::bytes::Regex>,
    gzip_dirs: Vec<String>,
    gzip_suffixes: Vec<String>,
    file_serve_mode: Option<FileServeMode>,
    /// `check-static-docroot`.
    docroot: bool,
}

struct Mapping {
    kind: MapKind,
    mountpoint: Vec<u8>,
    target: PathBuf,
    /// Resolved on first use that finds it (a root created after start-up still works; uWSGI
    /// resolves on first use too).
    root: OnceLock<Root>,
}

enum Root {
    Dir { handle: OwnedFd, path: PathBuf },
    File { path: PathBuf },
}

struct Expires {
    on: ExpiresOn,
    mime: String,
    pattern: Option<regex::bytes::Regex>,
    seconds: i64,
    from_mtime: bool,
}

/// What a request asks of the static files.
pub struct StaticRequest<'a> {
    pub method: &'a [u8],
    /// Percent-decoded.
    pub path_info: &'a [u8],
    pub uri: &'a [u8],
    pub conditions: Conditions<'a>,
    pub accept_encoding: Option<&'a [u8]>,
    /// `DOCUMENT_ROOT`, from the uwsgi protocol only (for `check-static-docroot`).
    pub document_root: Option<&'a [u8]>,
}

enum Lookup<'s> {
    /// Not a static file: the app answers.
    Pass,
    Forbidden,
    Found(Found<'s>),
}

struct Found<'s> {
    file: File,
    facts: FileFacts,
    /// The file's path as kaiser sees it (root + folded request path): what `static-expires`
    /// matches and whose extension gives the type.
    path: PathBuf,
    /// For a file under a root directory: that root's handle and path, and the file's
    /// name relative to it, to open variants beneath the root too.
    beneath: Option<(&'s OwnedFd, &'s Path, Vec<u8>)>,
    encoding: Option<&'static str>,
    has_variants: bool,
}

impl StaticFiles {
    /// Builds the worker's view; `None` when no static option is set. Reads the MIME files
    /// (a missing default one is not an error: the built-in table serves).
    pub fn new(config: &StaticConfig) -> Option<Self> {
        if !config.enabled() {
            return None;
        }
        let mut mime = MimeTypes::default();
        let files: Vec<PathBuf> = if config.mime_files.is_empty() {
            vec![PathBuf::from(DEFAULT_MIME_FILE)]
        } else {
            config.mime_files.clone()
        };
        for file in &files {
            match std::fs::read_to_string(file) {
                Ok(text) => mime.add_file_text(&text),
                Err(err) if config.mime_files.is_empty() => {
                    tracing::debug!(file = %file.display(), error = %err, "no system mime.types; using the built-in table")
                }
                Err(err) => {
                    tracing::warn!(file = %file.display(), error = %err, "cannot read mimefile; using the built-in table")
                }
            }
        }
        mime.add_builtin();
        let compile = |pattern: &str| regex::bytes::Regex::new(pattern).ok();
        let statics = StaticFiles {
            maps: config
                .maps
                .iter()
                .map(|map| Mapping {
                    kind: match map.kind {
                        StaticMapKind::Check => MapKind::Check,
                        StaticMapKind::Strip => MapKind::Strip,
                        StaticMapKind::Append => MapKind::Append,
                    },
                    mountpoint: map.mountpoint.as_bytes().to_vec(),
                    target: map.target.clone(),
                    root: OnceLock::new(),
                })
                .collect(),
            index: config.index.clone(),
            skip_ext: config.skip_ext.clone(),
            safe: config
                .safe
                .iter()
                .map(|dir| std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()))
                .collect(),
            mime,
            expires: config
                .expires
                .iter()
                .map(|rule| Expires {
                    on: rule.on,
                    mime: rule.pattern.clone(),
                    pattern: (rule.on != ExpiresOn::Type)
                        .then(|| compile(&rule.pattern))
                        .flatten(),
                    seconds: rule.seconds.min(i64::MAX as u64) as i64,
                    from_mtime: rule.from_mtime,
                })
                .collect(),
            gzip_all: config.gzip_all,
            gzip_patterns: config
                .gzip_patterns
                .iter()
                .filter_map(|p| compile(p))
                .collect(),
            gzip_dirs: config.gzip_dirs.clone(),
            gzip_suffixes: config.gzip_suffixes.clone(),
            file_serve_mode: config.file_serve_mode,
            docroot: config.docroot,
        };
        for map in &statics.maps {
            if map.root().is_none() {
                tracing::warn!(root = %map.target.display(), "static root not found; requests for it go to the app until it exists");
            }
        }
        Some(statics)
    }

    fn lookup(&self, request: &StaticRequest<'_>) -> Lookup<'_> {
        if request.method != b"GET" && request.method != b"HEAD" {
            return Lookup::Pass;
        }
        if path::has_suffix(request.path_info, &self.skip_ext) {
            return Lookup::Pass;
        }
        for map in &self.maps {
            let Some(rest) = path::mapped(map.kind, &map.mountpoint, request.path_info) else {
                continue;
            };
            let Some(root) = map.root() else {
                continue;
            };
            let found = match root {
                Root::File { path } => {
                    if !rest.is_empty() {
                        continue;
                    }
                    match sys::file::open_no_follow(path).map(classify) {
                        Ok(Opened::File(file, facts)) => Found {
                            file,
                            facts,
                            path: path.clone(),
                            beneath: None,
                            encoding: None,
                            has_variants: false,
                        },
                        _ => continue,
                    }
                }
                Root::Dir { handle, path } => {
                    let relative = match path::normalize(rest) {
                        Ok(relative) => relative,
                        Err(refusal) => {
                            tracing::warn!(path = %String::from_utf8_lossy(request.path_info).escape_debug(), reason = ?refusal, "static path refused");
                            return Lookup::Forbidden;
                        }
                    };
                    match self.open_in(handle, path, &relative) {
                        Lookup::Pass => continue,
                        Lookup::Found(found) => found,
                        Lookup::Forbidden => return Lookup::Forbidden,
                    }
                }
            };
            return self.with_variant(found, request);
        }
        match request.document_root {
            Some(docroot) if self.docroot && !docroot.is_empty() => {
                self.lookup_docroot(docroot, request)
            }
            _ => Lookup::Pass,
        }
    }

    /// `check-static-docroot`: the request's `DOCUMENT_ROOT` (set by the front end, nginx's
    /// `$document_root`) is a root like any other, opened for this request only.
    fn lookup_docroot(&self, docroot: &[u8], request: &StaticRequest<'_>) -> Lookup<'static> {
        let Ok(root) = std::fs::canonicalize(std::ffi::OsStr::from_bytes(docroot)) else {
            return Lookup::Pass;
        };
        let Ok(handle) = sys::file::open_dir_handle(&root) else {
            return Lookup::Pass;
        };
        let relative = match path::normalize(request.path_info) {
            Ok(relative) => relative,
            Err(refusal) => {
                tracing::warn!(path = %String::from_utf8_lossy(request.path_info).escape_debug(), reason = ?refusal, "static path refused");
                return Lookup::Forbidden;
            }
        };
        let found = match self.open_in(&handle, &root, &relative) {
            Lookup::Found(found) => found,
            Lookup::Forbidden => return Lookup::Forbidden,
            Lookup::Pass => return Lookup::Pass,
        };
        // The handle closes with this call; a variant is opened by its path instead.
        let Found {
            file, facts, path, ..
        } = found;
        let found = Found {
            file,
            facts,
            path,
            beneath: None,
            encoding: None,
            has_variants: false,
        };
        self.with_variant(found, request)
    }

    /// Opens `relative` under a root directory: the file, or a directory's index file.
    fn open_in<'s>(&self, handle: &'s OwnedFd, root: &'s Path, relative: &[u8]) -> Lookup<'s> {
        let (file, facts, relative) = match self.open_beneath(handle, root, relative) {
            Opened::File(file, facts) => (file, facts, relative.to_vec()),
            Opened::Dir => {
                let mut found = None;
                for index in &self.index {
                    let mut candidate = relative.to_vec();
                    if !candidate.is_empty() {
                        candidate.push(b'/');
                    }
                    candidate.extend_from_slice(index.as_bytes());
                    match self.open_beneath(handle, root, &candidate) {
                        Opened::File(file, facts) => {
                            found = Some((file, facts, candidate));
                            break;
                        }
                        Opened::Forbidden => return Lookup::Forbidden,
                        Opened::Dir | Opened::Missing => {}
                    }
                }
                match found {
                    Some(found) => found,
                    None => return Lookup::Pass,
                }
            }
            Opened::Missing => return Lookup::Pass,
            Opened::Forbidden => return Lookup::Forbidden,
        };
        // uWSGI checks `static-skip-ext` again on the name actually served (an index file).
        if path::has_suffix(&relative, &self.skip_ext) {
            return Lookup::Pass;
        }
        Lookup::Found(Found {
            file,
            facts,
            path: root.join(std::ffi::OsStr::from_bytes(&relative)),
            beneath: Some((handle, root, relative)),
            encoding: None,
            has_variants: false,
        })
    }

    fn open_beneath(&self, handle: &OwnedFd, root: &Path, relative: &[u8]) -> Opened {
        match sys::file::open_beneath(handle.as_fd(), relative) {
            Ok(fd) => classify(fd),
            Err(err) => match err.raw_os_error() {
                Some(libc::EXDEV | libc::ELOOP | libc::ENOSYS) => self.open_escaped(root, relative),
                Some(libc::EACCES) => Opened::Forbidden,
                _ => Opened::Missing,
            },
        }
    }

    /// A name that leads out of its root through a symlink (or a kernel without openat2):
    /// allowed only when its fully resolved path is inside the root or a `static-safe`
    /// directory.
    fn open_escaped(&self, root: &Path, relative: &[u8]) -> Opened {
        let wanted = root.join(std::ffi::OsStr::from_bytes(relative));
        let Ok(real) = std::fs::canonicalize(&wanted) else {
            return Opened::Missing;
        };
        let real_bytes = real.as_os_str().as_bytes();
        let allowed = path::is_within(real_bytes, root.as_os_str().as_bytes())
            || self
                .safe
                .iter()
                .any(|dir| path::is_within(real_bytes, dir.as_os_str().as_bytes()));
        if !allowed {
            tracing::warn!(path = %wanted.display(), resolved = %real.display(), "static file outside its root and every static-safe directory; refused");
            return Opened::Forbidden;
        }
        match sys::file::open_no_follow(&real) {
            Ok(fd) => classify(fd),
            Err(err) if err.raw_os_error() == Some(libc::EACCES) => Opened::Forbidden,
            Err(_) => Opened::Missing,
        }
    }

    /// Swaps in `FILE.br` or `FILE.gz` when the rules ask for it and the client takes it.
    fn with_variant<'s>(&self, mut found: Found<'s>, request: &StaticRequest<'_>) -> Lookup<'s> {
        let path_bytes = found.path.as_os_str().as_bytes();
        let wanted = self.gzip_all
            || self
                .gzip_dirs
                .iter()
                .any(|dir| path_bytes.starts_with(dir.as_bytes()))
            || self
                .gzip_suffixes
                .iter()
                .any(|suffix| path_bytes.ends_with(suffix.as_bytes()))
            || self.gzip_patterns.iter().any(|re| re.is_match(path_bytes));
        if !wanted {
            return Lookup::Found(found);
        }
        found.has_variants = true;
        let Some(accept) = request.accept_encoding else {
            return Lookup::Found(found);
        };
        for (coding, suffix) in [("br", ".br"), ("gzip", ".gz")] {
            if !conditional::accepts_encoding(accept, coding) {
                continue;
            }
            let opened = match &found.beneath {
                Some((handle, root, relative)) => {
                    let mut name = relative.clone();
                    name.extend_from_slice(suffix.as_bytes());
                    self.open_beneath(handle, root, &name)
                }
                None => {
                    let mut variant = found.path.clone().into_os_string();
                    variant.push(suffix);
                    sys::file::open_no_follow(Path::new(&variant))
                        .map(classify)
                        .unwrap_or(Opened::Missing)
                }
            };
            if let Opened::File(file, facts) = opened {
                found.file = file;
                found.facts = facts;
                found.encoding = Some(coding);
                break;
            }
        }
        Lookup::Found(found)
    }

    /// `Expires` from the first rule that matches, in uWSGI's order: file path, `PATH_INFO`,
    /// `REQUEST_URI`, then MIME type.
    fn expires(
        &self,
        found: &Found,
        request: &StaticRequest<'_>,
        mime: Option<&str>,
        now: i64,
    ) -> Option<i64> {
        for on in [
            ExpiresOn::File,
            ExpiresOn::PathInfo,
            ExpiresOn::Uri,
            ExpiresOn::Type,
        ] {
            for from_mtime in [false, true] {
                for rule in self
                    .expires
                    .iter()
                    .filter(|r| r.on == on && r.from_mtime == from_mtime)
                {
                    let matched = match (on, &rule.pattern) {
                        (ExpiresOn::Type, _) => mime == Some(rule.mime.as_str()),
                        (ExpiresOn::File, Some(re)) => {
                            re.is_match(found.path.as_os_str().as_bytes())
                        }
                        (ExpiresOn::PathInfo, Some(re)) => re.is_match(request.path_info),
                        (ExpiresOn::Uri, Some(re)) => re.is_match(request.uri),
                        _ => false,
                    };
                    if matched {
                        let base = if from_mtime { found.facts.mtime } else { now };
                        return Some(base.saturating_add(rule.seconds));
                    }
                }
            }
        }
        None
    }
}

impl Mapping {
    fn root(&self) -> Option<&Root> {
        if let Some(root) = self.root.get() {
            return Some(root);
        }
        let path = std::fs::canonicalize(&self.target).ok()?;
        let root = if path.is_dir() {
            Root::Dir {
                handle: sys::file::open_dir_handle(&path).ok()?,
                path,
            }
        } else if self.kind == MapKind::Strip {
            Root::File { path }
        } else {
            return None;
        };
        let _ = self.root.set(root);
        self.root.get()
    }
}

enum Opened {
    File(File, FileFacts),
    Dir,
    Missing,
    Forbidden,
}

/// What an open descriptor is: a regular file with its facts, a directory, or anything
/// else (a device, a FIFO), which is never served.
fn classify(fd: OwnedFd) -> Opened {
    let file = File::from(fd);
    let Ok(meta) = file.metadata() else {
        return Opened::Missing;
    };
    if meta.is_dir() {
        return Opened::Dir;
    }
    if !meta.is_file() {
        return Opened::Missing;
    }
    let facts = FileFacts {
        size: meta.len(),
        mtime: meta.mtime(),
    };
    Opened::File(file, facts)
}

/// The bytes of a static answer still to go out: the head, then a range of the file.
pub struct Transfer {
    head: Vec<u8>,
    head_sent: usize,
    file: Option<File>,
    offset: i64,
    remaining: u64,
}

impl Transfer {
    /// Sends what the socket takes. `Ok(true)`: all sent; `Ok(false)`: the socket is full.
    pub fn advance(&mut self, socket: std::os::fd::BorrowedFd<'_>) -> io::Result<bool> {
        while self.head_sent < self.head.len() {
            let rest = &self.head[self.head_sent..];
            let sent = if self.remaining > 0 {
                sys::fd::send_more(socket, rest)
            } else {
                sys::fd::send(socket, rest)
            };
            match sent {
                Ok(n) => self.head_sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        while self.remaining > 0 {
            let Some(file) = self.file.as_ref() else {
                break;
            };
            let chunk = self.remaining.min(1 << 30) as usize;
            match sys::fd::sendfile(socket, file.as_fd(), &mut self.offset, chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the static file shrank while it was being sent",
                    ))
                }
                Ok(n) => self.remaining -= n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.file = None;
        Ok(true)
    }
}

/// Serves an HTTP request from the static files, or gives the connection back (`Err`) when
/// the app should answer. `Ok` holds the connection if it stays open for another request.
#[expect(
    clippy::result_large_err,
    reason = "the connection goes back to the caller by value when the request is not for a static file: boxing it would allocate on every request"
)]
pub fn serve_http(
    shared: &Shared,
    conn: Conn,
    head: &http::RequestHead<'_>,
) -> Result<Option<Conn>, Conn> {
    let Some(statics) = shared.statics.as_ref() else {
        return Err(conn);
    };
    if head.body != http::BodyFraming::None {
        return Err(conn);
    }
    let path_info = http::percent_decode(head.path);
    let header = |name: &str| {
        head.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|h| h.value)
    };
    let request = StaticRequest {
        method: head.method,
        path_info: &path_info,
        uri: head.target,
        conditions: Conditions {
            if_modified_since: header("if-modified-since"),
            if_none_match: header("if-none-match"),
            range: header("range"),
            if_range: header("if-range"),
        },
        accept_encoding: header("accept-encoding"),
        document_root: None,
    };
    let started = Instant::now();
    let lookup = statics.lookup(&request);
    if matches!(lookup, Lookup::Pass) {
        return Err(conn);
    }
    let log = RequestLog {
        method: String::from_utf8_lossy(head.method).into_owned(),
        uri: String::from_utf8_lossy(head.target).into_owned(),
        protocol: head.version.as_str().to_string(),
        remote_addr: conn.peer_addr.clone(),
        var_count: head.headers.len() + 8,
        packet_size: head.len,
        forwarded_for: forwarded_for(shared, header("x-forwarded-for")),
        ..RequestLog::default()
    };
    let answer = Answer {
        version: head.version,
        is_head: head.method == b"HEAD",
        keep_alive: head.keep_alive && !shared.stopping.load(Ordering::Acquire),
        protocol_http: true,
    };
    Ok(respond(
        shared, statics, conn, lookup, &request, answer, log, started,
    ))
}

/// Serves a uwsgi-protocol request from the static files, or gives the connection back.
/// The connection closes after the answer, as nginx's `uwsgi_pass` expects.
#[expect(
    clippy::result_large_err,
    reason = "the connection goes back to the caller by value when the request is not for a static file: boxing it would allocate on every request"
)]
pub fn serve_uwsgi(shared: &Shared, conn: Conn, packet: &uwsgi::Packet<'_>) -> Result<(), Conn> {
    let Some(statics) = shared.statics.as_ref() else {
        return Err(conn);
    };
    let find = |name: &[u8]| {
        packet
            .vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
    };
    let has_body = find(b"CONTENT_LENGTH")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0);
    if has_body {
        return Err(conn);
    }
    let method = find(b"REQUEST_METHOD").unwrap_or(b"");
    let uri = find(b"REQUEST_URI")
        .or_else(|| find(b"PATH_INFO"))
        .unwrap_or(b"");
    let request = StaticRequest {
        method,
        path_info: find(b"PATH_INFO").unwrap_or(b""),
        uri,
        conditions: Conditions {
            if_modified_since: find(b"HTTP_IF_MODIFIED_SINCE"),
            if_none_match: find(b"HTTP_IF_NONE_MATCH"),
            range: find(b"HTTP_RANGE"),
            if_range: find(b"HTTP_IF_RANGE"),
        },
        accept_encoding: find(b"HTTP_ACCEPT_ENCODING"),
        document_root: find(b"DOCUMENT_ROOT"),
    };
    let started = Instant::now();
    let lookup = statics.lookup(&request);
    if matches!(lookup, Lookup::Pass) {
        return Err(conn);
    }
    let protocol = find(b"SERVER_PROTOCOL").unwrap_or(b"HTTP/1.0");
    let version = if protocol == b"HTTP/1.1" {
        Version::Http11
    } else {
        Version::Http10
    };
    let log = RequestLog {
        method: String::from_utf8_lossy(method).into_owned(),
        uri: String::from_utf8_lossy(uri).into_owned(),
        protocol: String::from_utf8_lossy(protocol).into_owned(),
        remote_addr: String::from_utf8_lossy(find(b"REMOTE_ADDR").unwrap_or(b"")).into_owned(),
        remote_user: String::from_utf8_lossy(find(b"REMOTE_USER").unwrap_or(b"")).into_owned(),
        var_count: packet.vars.len(),
        packet_size: packet.len - uwsgi::HEADER_LEN,
        forwarded_for: forwarded_for(shared, find(b"HTTP_X_FORWARDED_FOR")),
        ..RequestLog::default()
    };
    let answer = Answer {
        version,
        is_head: method == b"HEAD",
        keep_alive: false,
        protocol_http: false,
    };
    if let Some(conn) = respond(
        shared, statics, conn, lookup, &request, answer, log, started,
    ) {
        drop(conn);
    }
    Ok(())
}

/// `log-x-forwarded-for`: the address the request line shows instead of the peer's.
fn forwarded_for(shared: &Shared, header: Option<&[u8]>) -> String {
    match header {
        Some(value) if shared.limits.log_x_forwarded_for => {
            String::from_utf8_lossy(value).into_owned()
        }
        _ => String::new(),
    }
}

#[derive(Clone, Copy)]
struct Answer {
    version: Version,
    is_head: bool,
    keep_alive: bool,
    protocol_http: bool,
}

#[expect(
    clippy::too_many_arguments,
    reason = "the two protocols' entry points hand over every fact of the request once"
)]
fn respond(
    shared: &Shared,
    statics: &StaticFiles,
    conn: Conn,
    lookup: Lookup,
    request: &StaticRequest<'_>,
    answer: Answer,
    mut log: RequestLog,
    started: Instant,
) -> Option<Conn> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    log.start_unix = now.max(0) as u64;
    let mut head = Vec::with_capacity(384);
    let (transfer, keep_alive) = match lookup {
        Lookup::Pass => unreachable!("the callers pass these to the app"),
        Lookup::Forbidden => {
            let body = b"forbidden\n";
            let headers: Vec<(&[u8], &[u8])> =
                vec![(b"Content-Type", b"text/plain"), (b"Content-Length", b"10")];
            let (framing, keep_alive) = response::choose_framing(
                answer.version,
                answer.is_head,
                403,
                Some(body.len() as u64),
                answer.keep_alive,
                false,
            );
            write_head(
                &mut head,
                &answer,
                b"403 Forbidden",
                &headers,
                &framing,
                keep_alive,
            );
            log.header_count = headers.len();
            log.header_bytes = head.len();
            log.status = 403;
            if !answer.is_head {
                head.extend_from_slice(body);
                log.body_bytes = body.len() as u64;
            }
            (
                Transfer {
                    head,
                    head_sent: 0,
                    file: None,
                    offset: 0,
                    remaining: 0,
                },
                keep_alive,
            )
        }
        Lookup::Found(found) => {
            let decision = conditional::decide(found.facts, &request.conditions);
            let name = found.path.as_os_str().as_bytes();
            let mime = statics.mime.lookup(name);
            let content_type = mime.map(mime::content_type);
            let extras = conditional::Extras {
                content_type: content_type.as_deref(),
                encoding: found.encoding,
                expires: statics.expires(&found, request, mime, now),
                vary: found.has_variants,
            };
            let plan = match statics.file_serve_mode {
                None => conditional::plan(decision, found.facts, &extras),
                Some(mode) => {
                    let header: &'static [u8] = match mode {
                        FileServeMode::XAccelRedirect => b"X-Accel-Redirect",
                        FileServeMode::XSendfile => b"X-Sendfile",
                    };
                    let path = found.path.to_string_lossy();
                    conditional::plan_handoff(decision, found.facts, &extras, header, &path)
                }
            };
            let code = response::parse_status(plan.status).unwrap_or(200);
            let length = plan.body.map(|(_, length)| length);
            let (framing, keep_alive) = response::choose_framing(
                answer.version,
                answer.is_head,
                code,
                length,
                answer.keep_alive,
                false,
            );
            let headers: Vec<(&[u8], &[u8])> = plan
                .headers
                .iter()
                .map(|(name, value)| (*name, value.as_bytes()))
                .chain(
                    shared
                        .limits
                        .add_headers
                        .iter()
                        .map(|(n, v)| (n.as_slice(), v.as_slice())),
                )
                .collect();
            write_head(
                &mut head,
                &answer,
                plan.status,
                &headers,
                &framing,
                keep_alive,
            );
            log.header_count = headers.len();
            log.header_bytes = head.len();
            log.status = code;
            let (offset, remaining) = match (plan.body, &framing) {
                (Some((offset, length)), response::Framing::Length(_)) => (offset, length),
                _ => (0, 0),
            };
            log.body_bytes = remaining;
            log.via_sendfile = remaining > 0;
            (
                Transfer {
                    head,
                    head_sent: 0,
                    file: (remaining > 0).then_some(found.file),
                    offset: offset as i64,
                    remaining,
                },
                keep_alive,
            )
        }
    };
    let mut transfer = transfer;
    let outcome = transfer.advance(conn.fd.as_fd());
    let offloaded = matches!(outcome, Ok(false));
    log.via_offload = offloaded && shared.offload.is_some();
    if log.via_offload {
        log.via_sendfile = false;
    }
    log.io_error = outcome.is_err();
    log.elapsed = started.elapsed();
    account(shared, &log);
    match outcome {
        Ok(true) => finish(shared, conn, keep_alive),
        Ok(false) => {
            let job = super::offload::Job {
                conn,
                transfer,
                keep_alive: keep_alive && answer.protocol_http,
                timeout: shared.limits.socket_timeout,
            };
            match shared.offload.as_ref() {
                Some(offload) => {
                    offload.submit(job);
                    None
                }
                // Without offload threads (none configured cannot happen with static maps,
                // but keep the request thread correct) the body is sent here.
                None => super::offload::send_blocking(job)
                    .and_then(|(conn, keep)| finish(shared, conn, keep)),
            }
        }
        Err(err) => {
            tracing::debug!(error = %err, "static file transfer failed; closing the connection");
            None
        }
    }
}

/// After a complete answer: the connection for the next request, or closed.
/// The response head as the protocol wants it: over the uwsgi protocol no `Connection`
/// header, as uWSGI sends none and nginx would parse it for nothing (`write_uwsgi_head`).
fn write_head(
    out: &mut Vec<u8>,
    answer: &Answer,
    status: &[u8],
    headers: &[(&[u8], &[u8])],
    framing: &response::Framing,
    keep_alive: bool,
) {
    if answer.protocol_http {
        response::write_head(out, answer.version, status, headers, framing, keep_alive);
    } else {
        response::write_uwsgi_head(out, answer.version, status, headers, framing);
    }
}

fn finish(shared: &Shared, mut conn: Conn, keep_alive: bool) -> Option<Conn> {
    if !keep_alive || shared.stopping.load(Ordering::Acquire) {
        return None;
    }
    conn.partial = !conn.buf.is_empty();
    conn.fresh = false;
    conn.last_active = Instant::now();
    Some(conn)
}

/// Counts the request (worker and core figures, `static_requests`, `offloaded_requests`),
/// runs the recycling check and writes the request line.
fn account(shared: &Shared, log: &RequestLog) {
    let total = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let core = current_core();
    if let Some(slot) = shared.slot().and_then(|w| w.core(core?)) {
        slot.end_request();
        slot.count_static(log.via_offload);
    }
    super::serve::account(
        shared,
        log,
        super::serve::Finished {
            total,
            core,
            app_error: false,
            asked: false,
            logvars: Vec::new(),
            silenced: false,
        },
    );
    super::after_request(shared, total);
}
