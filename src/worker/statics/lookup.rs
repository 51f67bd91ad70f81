//! Looking a request up in the static files: `check-static`, `static-map` and `static-map2`
//! roots opened beneath their handle, index files, compressed variants, `static-expires`.
//!
//! It does not write to the connection (`answer.rs`).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::config::{ExpiresOn, FileServeMode, StaticConfig, StaticMapKind};
use crate::protocol::static_files::conditional::{self, Conditions, FileFacts};
use crate::protocol::static_files::mime::MimeTypes;
use crate::protocol::static_files::path::{self, MapKind};
use crate::sys;

const DEFAULT_MIME_FILE: &str = "/etc/mime.types";

/// The static file settings of one worker, with its roots opened.
pub struct StaticFiles {
    maps: Vec<Mapping>,
    index: Vec<String>,
    skip_ext: Vec<String>,
    /// `static-safe`, canonical.
    safe: Vec<PathBuf>,
    pub(super) mime: MimeTypes,
    expires: Vec<Expires>,
    gzip_all: bool,
    gzip_patterns: Vec<regex::bytes::Regex>,
    gzip_dirs: Vec<String>,
    gzip_suffixes: Vec<String>,
    pub(super) file_serve_mode: Option<FileServeMode>,
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

pub(super) enum Lookup<'s> {
    /// Not a static file: the app answers.
    Pass,
    Forbidden,
    Found(Found<'s>),
}

pub(super) struct Found<'s> {
    pub(super) file: File,
    pub(super) facts: FileFacts,
    /// The file's path as kaiser sees it (root + folded request path): what `static-expires`
    /// matches and whose extension gives the type.
    pub(super) path: PathBuf,
    /// For a file under a root directory: that root's handle and path, and the file's
    /// name relative to it, to open variants beneath the root too.
    pub(super) beneath: Option<(&'s OwnedFd, &'s Path, Vec<u8>)>,
    pub(super) encoding: Option<&'static str>,
    pub(super) has_variants: bool,
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

    pub(super) fn lookup(&self, request: &StaticRequest<'_>) -> Lookup<'_> {
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
    pub(super) fn expires(
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
