//! A spooler: a process forked from the vassal master that runs the tasks written into one
//! spool directory, each through the app's `uwsgi.spooler` (reference §8.4).
//!
//! A task is never lost: a task file is locked (an open-file-description lock, which the
//! kernel drops when the process dies) while it runs and removed only after `SPOOL_OK`, so a
//! spooler killed mid-task leaves the file for its replacement, and several spoolers on one
//! directory never run the same task twice. A new task wakes the spooler at once: it watches
//! its directory with inotify (the writer's rename is the event) instead of waiting for
//! `spooler-frequency`, which only bounds how long a task dated in the future or left by a
//! foreign writer may wait.
//!
//! This module does not decide when spoolers start or stop: the master forks, respawns and
//! stops them (`vassal/spooler.rs`). It runs no request and opens no socket.

mod board;
pub mod queue;

pub use board::{Board, SlotFigures};

use std::fs;
use std::os::fd::{AsFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::SpoolerConfig;
use crate::logging::error_chain;
use crate::protocol::spool;
use crate::python::{self, InterpreterOptions, ModuleInfo, TaskVerdict};
use crate::sys;
use queue::SpoolDirs;

/// What `import uwsgi` reaches: the directories and the shared board.
pub struct Handle {
    pub dirs: Arc<SpoolDirs>,
    pub board: Arc<Board>,
}

impl python::SpoolerApi for Handle {
    fn dirs(&self) -> Vec<String> {
        self.dirs
            .dirs
            .iter()
            .map(|d| d.path.to_string_lossy().into_owned())
            .collect()
    }

    fn spool(&self, vars: python::SpoolVars, body: Vec<u8>) -> Result<String, String> {
        let borrowed: Vec<(&[u8], &[u8])> = vars
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        self.dirs
            .write(&borrowed, &body)
            .map(|path| path.to_string_lossy().into_owned())
            .map_err(|err| error_chain(&err))
    }

    fn jobs(&self) -> Vec<String> {
        self.dirs
            .jobs()
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    }

    fn pids(&self) -> Vec<i32> {
        (0..self.board.slots())
            .map(|slot| self.board.figures(slot).pid as i32)
            .collect()
    }

    fn set_frequency(&self, seconds: u64) {
        self.board.set_frequency_override(seconds);
    }

    fn read_task(&self, path: &str) -> Option<(python::SpoolVars, Vec<u8>)> {
        queue::read_task(Path::new(path))
    }
}

/// How the spooler gets Python: forked with the app (preload), or starting its own
/// interpreter (`lazy-apps`: the master has none), which then only has `spooler-import`.
pub enum PythonSource {
    Preloaded,
    Lazy {
        interpreter: InterpreterOptions,
        module: ModuleInfo,
    },
}

pub struct SpoolerSetup {
    /// This process's slot in the board.
    pub slot: usize,
    /// The directory it serves (canonical).
    pub dir: PathBuf,
    pub config: SpoolerConfig,
    pub board: Arc<Board>,
    pub master_pid: sys::process::Pid,
    /// Master-only descriptors (signalfd, pipes, listening sockets) to close first.
    pub close_fds: Vec<RawFd>,
    pub python: PythonSource,
}

/// Signals the loop reads from its signalfd. SIGINT is left at its default: a fast stop
/// kills the spooler at once, even mid-task (the task runs again later).
const HANDLED_SIGNALS: [libc::c_int; 4] =
    [libc::SIGTERM, libc::SIGQUIT, libc::SIGHUP, libc::SIGUSR1];

/// Runs the spooler in the freshly forked child. Never returns.
pub fn run(setup: SpoolerSetup) -> ! {
    sys::process::become_child_of(setup.master_pid, &setup.close_fds);
    let pid = sys::process::getpid();
    let span = tracing::info_span!("spooler", dir = %setup.dir.display(), pid);
    let _entered = span.enter();
    python::set_i_am_the_spooler();
    // `ps -o comm` tells it from a worker (uWSGI names it "uWSGI spooler").
    sys::process::set_name("kaiser spooler");
    python::set_spooler_signal_slot(setup.slot);
    // uWSGI runs its spoolers at the lowest priority, so tasks take what the workers leave.
    sys::process::lower_priority(19);
    let code = match serve(setup) {
        Ok(()) => 0,
        Err(err) => {
            tracing::error!("spooler failed: {}", error_chain(&err));
            1
        }
    };
    sys::process::exit_now(code)
}

#[derive(Debug, thiserror::Error)]
enum RunSpoolerError {
    #[error(transparent)]
    Init(#[from] python::InitPythonError),
    #[error("python setup failed: {0}")]
    Python(String),
    #[error("cannot watch `{}`", .dir.display())]
    Watch {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("system call failed")]
    Io(#[from] std::io::Error),
}

fn serve(setup: SpoolerSetup) -> Result<(), RunSpoolerError> {
    if let PythonSource::Lazy {
        interpreter,
        module,
    } = &setup.python
    {
        python::initialize(interpreter)?;
        python::install_uwsgi_module(module.clone())
            .map_err(|e| RunSpoolerError::Python(e.to_string()))?;
    }
    if let Err(err) = python::import_spooler_modules(&setup.config.imports) {
        tracing::error!("{err}");
    }
    python::run_post_fork_hook();
    let handled = sys::signal::SigSet::of(&HANDLED_SIGNALS);
    sys::signal::block(&handled)?;
    let signals = sys::signal::SignalFd::new(&handled)?;
    let inotify = sys::inotify::Inotify::new()?;
    inotify
        .watch(&setup.dir, sys::inotify::ARRIVALS)
        .map_err(|source| RunSpoolerError::Watch {
            dir: setup.dir.clone(),
            source,
        })?;
    setup.board.reset_tasks(setup.slot);
    tracing::info!("spooler ready");
    let mut spooler = Spooler {
        setup: &setup,
        inotify: &inotify,
        signals: &signals,
        stop: false,
        done_tasks: 0,
    };
    let mut scan_now = true;
    let mut next_scan = Instant::now();
    loop {
        if scan_now || Instant::now() >= next_scan {
            let _ = std::env::set_current_dir(&setup.dir);
            let scan = spooler.scan_dir(&setup.dir);
            if spooler.stop {
                return Ok(());
            }
            let frequency = match setup.board.frequency_override() {
                0 => setup.config.frequency,
                seconds => Duration::from_secs(seconds),
            };
            let mut wait = frequency;
            if scan.busy {
                // A file another process is writing (uWSGI's writers lock it meanwhile)
                // or running: look again soon rather than after a whole frequency.
                wait = wait.min(Duration::from_secs(1));
            }
            if let Some(due) = scan.next_due {
                let until = Duration::from_secs(due.saturating_sub(sys::clock::unix_secs()));
                wait = wait.min(until.max(Duration::from_millis(100)));
            }
            next_scan = Instant::now() + wait;
        }
        // Wake at least every second for uWSGI signals aimed at the spooler; a rescan
        // happens only when a task arrives or `next_scan` comes.
        let wait = next_scan
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(1));
        let revents = sys::poll::poll(
            &[
                (signals.as_fd(), sys::poll::READABLE),
                (inotify.as_fd(), sys::poll::READABLE),
            ],
            Some(wait),
        )?;
        scan_now = false;
        if revents[1] != 0 {
            inotify.drain();
            scan_now = true;
        }
        if revents[0] != 0 {
            spooler.read_signals();
            // SIGUSR1 is uWSGI's way to wake a spooler.
            scan_now = true;
            if spooler.stop {
                return Ok(());
            }
        }
        python::dispatch_uwsgi_signals();
    }
}

struct Spooler<'a> {
    setup: &'a SpoolerSetup,
    inotify: &'a sys::inotify::Inotify,
    signals: &'a sys::signal::SignalFd,
    /// SIGTERM/SIGQUIT arrived: finish the running task, then exit.
    stop: bool,
    done_tasks: u64,
}

/// What a scan saw besides the tasks it ran.
#[derive(Debug, Default)]
struct Scan {
    /// A task file was locked by another process or not completely written.
    busy: bool,
    /// The earliest `at` of a task dated in the future (Unix seconds).
    next_due: Option<u64>,
}

impl Spooler<'_> {
    fn read_signals(&mut self) {
        while let Ok(Some(sig)) = self.signals.read() {
            match sig {
                libc::SIGTERM | libc::SIGQUIT => {
                    tracing::info!(signal = sys::signal::name(sig), "spooler stopping");
                    self.stop = true;
                }
                // SIGUSR1 is uWSGI's wake-up: any signal ends the wait. SIGHUP is ignored, as
                // in uWSGI: the master stops and replaces spoolers itself on reload.
                _ => {}
            }
        }
    }

    /// Runs every task ready in `dir` (and its numbered priority directories).
    fn scan_dir(&mut self, dir: &Path) -> Scan {
        let mut scan = Scan::default();
        self.scan_into(dir, &mut scan);
        scan
    }

    fn scan_into(&mut self, dir: &Path, scan: &mut Scan) {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) => {
                tracing::error!(dir = %dir.display(), "cannot read the spool directory: {err}");
                return;
            }
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        if self.setup.config.ordered {
            names.sort_by(|a, b| spool::version_cmp(a, b));
        }
        for name in names {
            if self.stop {
                return;
            }
            let path = dir.join(&name);
            if spool::is_priority(name.as_bytes()) {
                // uWSGI descends into priority directories only with `spooler-ordered`, so
                // without it a task spooled with a priority never ran; kaiser runs them.
                if path.is_dir() {
                    let _ = self.inotify.watch(&path, sys::inotify::ARRIVALS);
                    self.scan_into(&path, scan);
                }
                continue;
            }
            if !name.starts_with(spool::TASK_PREFIX) {
                continue;
            }
            self.manage(dir, &name, scan);
            // A stop that arrived during the task ends the scan here.
            self.read_signals();
        }
    }

    /// Runs one task file if it is due and nobody else holds it.
    fn manage(&mut self, dir: &Path, name: &str, scan: &mut Scan) {
        let path = dir.join(name);
        // O_NOFOLLOW: a symlink named like a task is not one (uWSGI checks with lstat).
        let Ok(mut file) = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        else {
            return;
        };
        let Ok(meta) = file.metadata() else {
            return;
        };
        if !meta.file_type().is_file() {
            return;
        }
        let mtime = meta.mtime().max(0) as u64;
        if mtime > sys::clock::unix_secs() {
            scan.next_due = Some(scan.next_due.map_or(mtime, |due| due.min(mtime)));
            return;
        }
        match sys::file::try_lock_file(&file) {
            Ok(true) => {}
            Ok(false) => {
                scan.busy = true;
                return;
            }
            Err(err) => {
                tracing::warn!(task = name, "cannot lock the task file: {err}");
                return;
            }
        }
        // Another spooler may have finished and removed it between our listing and our
        // lock: then the name is gone, or names a new file.
        let same = fs::symlink_metadata(&path)
            .is_ok_and(|now| now.ino() == meta.ino() && now.dev() == meta.dev());
        if !same {
            return;
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        if std::io::Read::read_to_end(&mut file, &mut bytes).is_err() {
            return;
        }
        let task = match spool::decode(&bytes) {
            Ok(task) => task,
            Err(spool::DecodeSpoolError::Truncated { .. }) => {
                scan.busy = true;
                return;
            }
            Err(err) => {
                tracing::error!(task = name, "not a valid spool file, leaving it: {err}");
                return;
            }
        };
        let setup = self.setup;
        let quiet = setup.config.quiet;
        let dir_text = setup.dir.display();
        let pid = sys::process::getpid();
        if !quiet {
            tracing::info!("[spooler {dir_text} pid: {pid}] managing request {name} ...");
        }
        if let Some(chdir) = &setup.config.chdir {
            if let Err(err) = std::env::set_current_dir(chdir) {
                tracing::error!(dir = %chdir.display(), "spooler-chdir failed: {err}");
            }
        }
        let started = std::time::Instant::now();
        // On `CLOCK_MONOTONIC`: `spooler-harakiri` must not fire on an NTP step.
        setup
            .board
            .task_started(setup.slot, crate::sys::clock::monotonic_us());
        let verdict = python::run_spooler_task(name, &task.vars, task.body);
        let counted = !matches!(verdict, TaskVerdict::Ignored | TaskVerdict::NoHandler);
        // Counted before the file goes: whoever sees the queue without it (a stats reader)
        // must see the task among the spooler's finished ones.
        setup.board.task_finished(setup.slot, counted);
        match verdict {
            TaskVerdict::Done => {
                // Removed while still locked: no other spooler can start it meanwhile.
                if let Err(err) = fs::remove_file(&path) {
                    tracing::error!(task = name, "cannot remove the finished task: {err}");
                }
                if !quiet {
                    tracing::info!(
                        "[spooler {dir_text} pid: {pid}] done with task {name} after {} seconds",
                        started.elapsed().as_secs()
                    );
                }
            }
            TaskVerdict::NoHandler => tracing::error!(
                "unable to find the spooler function, have you loaded it into the spooler process ?"
            ),
            TaskVerdict::Retry | TaskVerdict::Ignored | TaskVerdict::Other(_) => {}
        }
        // The lock goes with the file.
        drop(file);
        if setup.config.chdir.is_some() {
            let _ = std::env::set_current_dir(dir);
        }
        if counted {
            self.done_tasks += 1;
            let max = setup.config.max_tasks;
            if max > 0 && self.done_tasks >= max {
                tracing::info!(
                    "[spooler {dir_text} pid: {pid}] maximum number of tasks reached ({max}) recycling ..."
                );
                sys::process::exit_now(0);
            }
        }
    }
}
