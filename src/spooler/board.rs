//! What the spoolers share with the master and the workers, in a mapping made before fork
//! (atomics only, DESIGN.md rule 6): per spooler process its pid, whether it is running a
//! task and since when, its task count and respawns; and `set_spooler_frequency`'s value.
//! The master reads it for the stats, harakiri and `uwsgi.spooler_pid()`.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::shm::SharedWords;

mod field {
    pub const PID: usize = 0;
    pub const RUNNING: usize = 1;
    pub const TASKS: usize = 2;
    /// Unix µs when the current task started; 0 when idle.
    pub const TASK_START: usize = 3;
    pub const RESPAWNS: usize = 4;
    pub const WORDS: usize = 5;
}

/// Word 0 holds `set_spooler_frequency`'s seconds (0: the configured frequency).
const HEADER: usize = 1;

pub struct Board {
    words: SharedWords,
    slots: usize,
}

/// One spooler process's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotFigures {
    pub pid: u64,
    pub running: bool,
    pub tasks: u64,
    pub task_start_us: u64,
    pub respawns: u64,
}

impl Board {
    pub fn new(slots: usize) -> io::Result<Self> {
        Ok(Board {
            words: SharedWords::new(HEADER + slots * field::WORDS)?,
            slots,
        })
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    fn word(&self, slot: usize, offset: usize) -> Option<&AtomicU64> {
        (slot < self.slots).then(|| &self.words.words()[HEADER + slot * field::WORDS + offset])
    }

    fn set(&self, slot: usize, offset: usize, value: u64) {
        if let Some(word) = self.word(slot, offset) {
            word.store(value, Ordering::Relaxed);
        }
    }

    pub fn figures(&self, slot: usize) -> SlotFigures {
        let get = |offset| {
            self.word(slot, offset)
                .map_or(0, |w| w.load(Ordering::Relaxed))
        };
        SlotFigures {
            pid: get(field::PID),
            running: get(field::RUNNING) != 0,
            tasks: get(field::TASKS),
            task_start_us: get(field::TASK_START),
            respawns: get(field::RESPAWNS),
        }
    }

    /// The master, after forking or reaping a spooler.
    pub fn set_pid(&self, slot: usize, pid: u64) {
        self.set(slot, field::PID, pid);
        if pid == 0 {
            self.set(slot, field::RUNNING, 0);
            self.set(slot, field::TASK_START, 0);
        }
    }

    pub fn set_respawns(&self, slot: usize, respawns: u64) {
        self.set(slot, field::RESPAWNS, respawns);
    }

    /// The spooler, around each task.
    pub fn task_started(&self, slot: usize, now_us: u64) {
        self.set(slot, field::TASK_START, now_us);
        self.set(slot, field::RUNNING, 1);
    }

    pub fn task_finished(&self, slot: usize, counted: bool) {
        self.set(slot, field::RUNNING, 0);
        self.set(slot, field::TASK_START, 0);
        if counted {
            if let Some(word) = self.word(slot, field::TASKS) {
                word.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn frequency_override(&self) -> u64 {
        self.words.words()[0].load(Ordering::Relaxed)
    }

    pub fn set_frequency_override(&self, seconds: u64) {
        self.words.words()[0].store(seconds, Ordering::Relaxed);
    }
}

impl Board {
    /// A new spooler process counts its tasks from 0, as uWSGI's does.
    pub fn reset_tasks(&self, slot: usize) {
        self.set(slot, field::TASKS, 0);
    }
}
