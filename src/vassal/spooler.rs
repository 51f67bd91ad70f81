//! The master's view of its spooler processes: which directory each slot serves, the shared
//! board they write, and which one has run a task past `spooler-harakiri`. Their pids,
//! respawns and stops are the process table's (`process_table.rs`); the forking is in
//! `master/spooling.rs`; the process is `crate::spooler`.
//!
//! It does not fork, signal or log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::SpoolerConfig;
use crate::spooler::queue::{PrepareSpoolerError, SpoolDirs};
use crate::spooler::{Board, Handle};
use crate::sys::process::Pid;

pub struct Spoolers {
    pub dirs: Arc<SpoolDirs>,
    pub board: Arc<Board>,
    /// The directory each slot serves.
    slots: Vec<PathBuf>,
    harakiri: Duration,
}

impl Spoolers {
    /// Creates the directories and the shared board: `spooler-processes` slots per served
    /// directory.
    pub fn new(config: &SpoolerConfig) -> Result<Self, PrepareSpoolerError> {
        let dirs = SpoolDirs::prepare(config)?;
        let slots: Vec<PathBuf> = dirs
            .dirs
            .iter()
            .filter(|dir| dir.served)
            .flat_map(|dir| (0..config.processes.max(1)).map(|_| dir.path.clone()))
            .collect();
        let board = Board::new(slots.len())?;
        Ok(Spoolers {
            dirs: Arc::new(dirs),
            board: Arc::new(board),
            slots,
            harakiri: config.harakiri,
        })
    }

    /// What `import uwsgi` is given (only when the instance has any spool directory).
    pub fn handle(&self) -> Option<Handle> {
        (!self.dirs.dirs.is_empty()).then(|| Handle {
            dirs: Arc::clone(&self.dirs),
            board: Arc::clone(&self.board),
        })
    }

    /// How many spooler processes the instance runs.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn dir(&self, index: usize) -> &Path {
        &self.slots[index]
    }

    /// Slot `index` has a new spooler, `pid`, respawned `respawns` times.
    pub fn spawned(&mut self, index: usize, pid: Pid, respawns: u64) {
        self.board.set_pid(index, pid as u64);
        self.board.set_respawns(index, respawns);
    }

    /// Slot `index`'s spooler exited.
    pub fn exited(&mut self, index: usize) {
        self.board.set_pid(index, 0);
    }

    /// Of the `live` spoolers (slot, pid), those whose current task has run longer than
    /// `spooler-harakiri`, with its seconds.
    pub fn overdue(&self, live: &[(usize, Pid)], now_us: u64) -> Vec<(Pid, u64)> {
        if self.harakiri.is_zero() {
            return Vec::new();
        }
        let limit = self.harakiri.as_micros() as u64;
        live.iter()
            .filter_map(|&(index, pid)| {
                let figures = self.board.figures(index);
                let started = figures.task_start_us;
                (figures.running && started > 0 && now_us.saturating_sub(started) > limit)
                    .then(|| (pid, now_us.saturating_sub(started) / 1_000_000))
            })
            .collect()
    }

    /// `(dir, pid, tasks, respawns, running)` per slot, for the stats document; `respawns`
    /// gives a slot's count.
    pub fn figures(&self, respawns: impl Fn(usize) -> u64) -> Vec<(String, u64, u64, u64, bool)> {
        self.slots
            .iter()
            .enumerate()
            .map(|(index, dir)| {
                let figures = self.board.figures(index);
                (
                    dir.to_string_lossy().into_owned(),
                    figures.pid,
                    figures.tasks,
                    respawns(index),
                    figures.running,
                )
            })
            .collect()
    }
}
