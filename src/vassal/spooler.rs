//! The master's view of its spooler processes: which directory each serves, its pid, when a
//! dead one is respawned (with the same fork-bomb guard as workers), and which one has run a
//! task past `spooler-harakiri`. The forking itself is in `master/spooling.rs`; the process
//! is `crate::spooler`.
//!
//! It does not fork, signal or log on its own behalf beyond what it is asked to decide.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::SpoolerConfig;
use crate::spooler::queue::{PrepareSpoolerError, SpoolDirs};
use crate::spooler::{Board, Handle};
use crate::sys::process::Pid;

#[derive(Debug)]
struct Slot {
    dir: PathBuf,
    pid: Option<Pid>,
    respawn_at: Option<Instant>,
    respawns: u64,
}

pub struct Spoolers {
    pub dirs: Arc<SpoolDirs>,
    pub board: Arc<Board>,
    slots: Vec<Slot>,
    respawns: super::respawn::RespawnGuard,
    harakiri: Duration,
}

impl Spoolers {
    /// Creates the directories and the shared board: `spooler-processes` slots per served
    /// directory.
    pub fn new(config: &SpoolerConfig) -> Result<Self, PrepareSpoolerError> {
        let dirs = SpoolDirs::prepare(config)?;
        let slots: Vec<Slot> = dirs
            .dirs
            .iter()
            .filter(|dir| dir.served)
            .flat_map(|dir| {
                (0..config.processes.max(1)).map(|_| Slot {
                    dir: dir.path.clone(),
                    pid: None,
                    respawn_at: Some(Instant::now()),
                    respawns: 0,
                })
            })
            .collect();
        let board = Board::new(slots.len())?;
        Ok(Spoolers {
            dirs: Arc::new(dirs),
            board: Arc::new(board),
            slots,
            respawns: Default::default(),
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

    pub fn pids(&self) -> impl Iterator<Item = Pid> + '_ {
        self.slots.iter().filter_map(|s| s.pid)
    }

    pub fn dir(&self, index: usize) -> &PathBuf {
        &self.slots[index].dir
    }

    pub fn respawns(&self, index: usize) -> u64 {
        self.slots[index].respawns
    }

    pub fn spawned(&mut self, index: usize, pid: Pid) {
        let slot = &mut self.slots[index];
        slot.pid = Some(pid);
        slot.respawn_at = None;
        self.board.set_pid(index, pid as u64);
        self.board.set_respawns(index, slot.respawns);
    }

    /// A child exited: `Some(slot)` if it was a spooler. Unless `respawn` is false (the
    /// vassal is stopping), it is respawned at once, or after 2 s when spoolers die faster
    /// than one per slot per second.
    pub fn exited(&mut self, pid: Pid, respawn: bool) -> Option<usize> {
        let index = self.slots.iter().position(|s| s.pid == Some(pid))?;
        self.board.set_pid(index, 0);
        let now = Instant::now();
        let slot = &mut self.slots[index];
        slot.pid = None;
        if !respawn {
            return Some(index);
        }
        slot.respawns += 1;
        let (at, _) = self.respawns.next(now, self.slots.len());
        self.slots[index].respawn_at = Some(at);
        Some(index)
    }

    /// Slots whose respawn time has come.
    pub fn due(&self, now: Instant) -> Vec<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.pid.is_none() && s.respawn_at.is_some_and(|at| at <= now))
            .map(|(index, _)| index)
            .collect()
    }

    /// Spoolers whose current task has run longer than `spooler-harakiri`.
    pub fn overdue(&self, now_us: u64) -> Vec<(Pid, u64)> {
        if self.harakiri.is_zero() {
            return Vec::new();
        }
        let limit = self.harakiri.as_micros() as u64;
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(index, slot)| {
                let pid = slot.pid?;
                let figures = self.board.figures(index);
                let started = figures.task_start_us;
                (figures.running && started > 0 && now_us.saturating_sub(started) > limit)
                    .then(|| (pid, now_us.saturating_sub(started) / 1_000_000))
            })
            .collect()
    }

    /// `(dir, pid, tasks, respawns, running)` per slot, for the stats document.
    pub fn figures(&self) -> Vec<(String, u64, u64, u64, bool)> {
        self.slots
            .iter()
            .enumerate()
            .map(|(index, slot)| {
                let figures = self.board.figures(index);
                (
                    slot.dir.to_string_lossy().into_owned(),
                    figures.pid,
                    figures.tasks,
                    slot.respawns,
                    figures.running,
                )
            })
            .collect()
    }
}
