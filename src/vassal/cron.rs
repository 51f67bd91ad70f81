//! The master's `cron`/`unique-cron`/`cron2` commands: which are due this minute, which are
//! still running (for `unique` and harakiri). The master spawns and reaps them
//! (`master/crons.rs`). Also the file monitors (`uwsgi.add_file_monitor`): the master stats
//! each watched path at every turn of its loop and raises its signal when it changed.

use std::time::{Duration, Instant};

use crate::config::CronCommand;
use crate::signals::{CronSpec, CronTime};
use crate::sys::process::Pid;

pub struct Crons {
    commands: Vec<CronCommand>,
    default_harakiri: Duration,
    /// The Unix minute last checked: each minute runs its commands once.
    last_minute: u64,
    /// (command index, pid, started).
    running: Vec<(usize, Pid, Instant)>,
    /// The Unix second of the last cache sweep.
    last_second: u64,
    /// What each monitored path looked like at the last look.
    watched: std::collections::HashMap<(u8, Vec<u8>), Option<FileState>>,
}

/// Enough of `stat` to tell that a file or directory changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileState {
    modified_ns: i128,
    changed_ns: i128,
    size: u64,
    inode: u64,
}

fn file_state(path: &[u8]) -> Option<FileState> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(std::ffi::OsStr::from_bytes(path)).ok()?;
    Some(FileState {
        modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        changed_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        size: meta.size(),
        inode: meta.ino(),
    })
}

impl Crons {
    pub fn new(commands: &[CronCommand], default_harakiri: Duration) -> Self {
        Crons {
            commands: commands.to_vec(),
            default_harakiri,
            last_minute: 0,
            last_second: 0,
            running: Vec::new(),
            watched: std::collections::HashMap::new(),
        }
    }

    /// True once per Unix second.
    pub fn new_second(&mut self, second: u64) -> bool {
        std::mem::replace(&mut self.last_second, second) != second
    }

    /// The signals of the monitored paths that changed (appeared, vanished, written, touched)
    /// since the last call; a path seen for the first time is only recorded.
    pub fn changed_files(&mut self, monitors: Vec<(u8, Vec<u8>)>) -> Vec<u8> {
        let mut signals = Vec::new();
        for key in monitors {
            let now = file_state(&key.1);
            match self.watched.insert(key.clone(), now) {
                Some(before) if before != now => signals.push(key.0),
                _ => {}
            }
        }
        signals
    }

    /// The commands to start at `minute` (the Unix minute, local `time`), once per minute.
    pub fn due(&mut self, minute: u64, time: &CronTime) -> Vec<(usize, String)> {
        if self.commands.is_empty() || minute == self.last_minute {
            return Vec::new();
        }
        self.last_minute = minute;
        self.commands
            .iter()
            .enumerate()
            .filter(|(index, cron)| {
                let [minute, hour, day, month, weekday] = cron.fields;
                let spec = CronSpec {
                    minute,
                    hour,
                    day,
                    month,
                    weekday,
                };
                spec.matches(time)
                    && !(cron.unique && self.running.iter().any(|(i, _, _)| i == index))
            })
            .map(|(index, cron)| (index, cron.command.clone()))
            .collect()
    }

    pub fn started(&mut self, index: usize, pid: Pid) {
        self.running.push((index, pid, Instant::now()));
    }

    /// A reaped child that was a cron command: its command.
    pub fn finished(&mut self, pid: Pid) -> Option<String> {
        let position = self.running.iter().position(|(_, p, _)| *p == pid)?;
        let (index, _, _) = self.running.remove(position);
        Some(self.commands[index].command.clone())
    }

    /// Commands running past their harakiri (theirs, else `cron-harakiri`).
    pub fn overdue(&self, now: Instant) -> Vec<(Pid, String)> {
        self.running
            .iter()
            .filter_map(|(index, pid, started)| {
                let cron = &self.commands[*index];
                let limit = match cron.harakiri {
                    0 => self.default_harakiri,
                    seconds => Duration::from_secs(seconds),
                };
                (!limit.is_zero() && now.duration_since(*started) > limit)
                    .then(|| (*pid, cron.command.clone()))
            })
            .collect()
    }
}
