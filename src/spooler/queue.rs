//! The spool directories on disk: preparing them, writing a task (what `uwsgi.spool()` does in
//! a worker), listing and reading tasks.
//!
//! A task is written under a hidden subdirectory (`.kaiser-writing/`) and renamed into
//! place, so a spooler never sees half a task and only the rename itself (`IN_MOVED_TO`)
//! wakes the spoolers watching the directory. The file's bytes and name are uWSGI's (`protocol::spool`).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::SpoolerConfig;
use crate::protocol::spool;
use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum PrepareSpoolerError {
    #[error("cannot create the spooler directory `{}`", .path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot map the spoolers' shared board")]
    Board(#[from] io::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("unable to find spooler `{0}`")]
    UnknownSpooler(String),
    #[error("priority `{0}` is not a number")]
    BadPriority(String),
    #[error(transparent)]
    Encode(#[from] spool::EncodeSpoolError),
    #[error("cannot write the spool file `{}`", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// One directory tasks can be written to.
#[derive(Debug, Clone)]
pub struct SpoolDir {
    /// Canonical (realpath), as uWSGI stores it and compares `spooler=` against.
    pub path: PathBuf,
    /// As configured, also accepted in `spooler=`.
    pub configured: PathBuf,
    /// Served by this instance's spooler processes (not `spooler-external`).
    pub served: bool,
}

/// Every directory of the instance: those it serves first, in configuration order, then the
/// external ones.
#[derive(Debug)]
pub struct SpoolDirs {
    pub dirs: Vec<SpoolDir>,
    pub quiet: bool,
    hostname: String,
}

/// Where a task is written before it is renamed into its spool directory.
const WRITING_DIR: &str = ".kaiser-writing";

/// Tasks this process has written, for unique names (uWSGI's `internal_counter`).
static COUNTER: AtomicU64 = AtomicU64::new(0);

impl SpoolDirs {
    /// Creates missing directories (mode 0750, as uWSGI) and resolves them.
    pub fn prepare(config: &SpoolerConfig) -> Result<Self, PrepareSpoolerError> {
        let mut dirs = Vec::new();
        let all = config
            .dirs
            .iter()
            .map(|d| (d, true))
            .chain(config.external.iter().map(|d| (d, false)));
        for (configured, served) in all {
            if !configured.is_dir() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o750)
                    .create(configured)
                    .map_err(|source| PrepareSpoolerError::Create {
                        path: configured.clone(),
                        source,
                    })?;
            }
            let path =
                fs::canonicalize(configured).map_err(|source| PrepareSpoolerError::Create {
                    path: configured.clone(),
                    source,
                })?;
            let _ = fs::DirBuilder::new()
                .mode(0o750)
                .create(path.join(WRITING_DIR));
            dirs.push(SpoolDir {
                path,
                configured: configured.clone(),
                served,
            });
        }
        Ok(SpoolDirs {
            dirs,
            quiet: config.quiet,
            hostname: sys::process::hostname(),
        })
    }

    fn find(&self, name: &[u8]) -> Option<&SpoolDir> {
        self.dirs.iter().find(|dir| {
            dir.path.as_os_str().as_encoded_bytes() == name
                || dir.configured.as_os_str().as_encoded_bytes() == name
        })
    }

    /// Writes one task and returns its path.
    pub fn write(&self, vars: &[(&[u8], &[u8])], body: &[u8]) -> Result<PathBuf, SpoolError> {
        let routing = spool::routing(vars);
        let dir = match routing.spooler {
            Some(name) => self.find(name).ok_or_else(|| {
                SpoolError::UnknownSpooler(String::from_utf8_lossy(name).into_owned())
            })?,
            None => self
                .dirs
                .first()
                .ok_or_else(|| SpoolError::UnknownSpooler(String::new()))?,
        };
        let bytes = spool::encode(vars, body)?;
        let mut target = dir.path.clone();
        if let Some(priority) = routing.priority {
            if !spool::is_priority(priority) {
                return Err(SpoolError::BadPriority(
                    String::from_utf8_lossy(priority).into_owned(),
                ));
            }
            target.push(String::from_utf8_lossy(priority).as_ref());
            // An existing directory is the common case; a real failure shows at the write.
            let _ = fs::DirBuilder::new().mode(0o750).create(&target);
        }
        let now_micros = sys::clock::unix_us();
        let name = spool::task_file_name(
            &self.hostname,
            sys::process::getpid(),
            COUNTER.fetch_add(1, Ordering::Relaxed) + 1,
            sys::file::random_u32(),
            now_micros / 1_000_000,
            (now_micros % 1_000_000) as u32,
        );
        let path = target.join(&name);
        // Written in a hidden subdirectory, which the spoolers do not watch, so that only
        // the rename into place wakes them.
        let writing = target.join(WRITING_DIR);
        let temporary = writing.join(&name);
        let mut written = write_file(&temporary, &bytes, routing.at);
        if written
            .as_ref()
            .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
        {
            // A new priority directory, or one removed by hand since start-up.
            let _ = fs::DirBuilder::new().mode(0o750).create(&writing);
            written = write_file(&temporary, &bytes, routing.at);
        }
        let written = written.and_then(|()| fs::rename(&temporary, &path));
        if let Err(source) = written {
            let _ = fs::remove_file(&temporary);
            return Err(SpoolError::Write { path, source });
        }
        if !self.quiet {
            tracing::info!(
                "[spooler] written {} bytes to file {}",
                bytes.len(),
                path.display()
            );
        }
        Ok(path)
    }

    /// The task files waiting at the top of the first served directory (uWSGI's
    /// `spooler_jobs`).
    pub fn jobs(&self) -> Vec<PathBuf> {
        let Some(dir) = self.dirs.first() else {
            return Vec::new();
        };
        let Ok(entries) = fs::read_dir(&dir.path) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(spool::TASK_PREFIX)
                    && entry.file_type().is_ok_and(|t| t.is_file())
            })
            .map(|entry| entry.path())
            .collect()
    }
}

fn write_file(path: &Path, bytes: &[u8], at: Option<u64>) -> io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    if let Some(at) = at {
        sys::file::set_times(&file, at)?;
    }
    Ok(())
}

/// A task file's arguments and body (`uwsgi.spooler_get_task`).
pub fn read_task(path: &Path) -> Option<(crate::python::SpoolVars, Vec<u8>)> {
    let bytes = fs::read(path).ok()?;
    let task = spool::decode(&bytes).ok()?;
    Some((
        task.vars
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect(),
        task.body.to_vec(),
    ))
}
