//! The master's `cron`/`unique-cron`/`cron2` commands: which are due this minute, and each
//! one's harakiri. The master spawns them; its process table knows which run and reaps them
//! (`master/crons.rs`). Also the file monitors (`uwsgi.add_file_monitor`): the master stats
//! each watched path at every turn of its loop and raises its signal when it changed.

use std::time::Duration;

use crate::config::CronCommand;
use crate::signals::{CronSpec, CronTime};

pub struct Crons {
    commands: Vec<CronCommand>,
    default_harakiri: Duration,
    /// The Unix minute last checked: each minute runs its commands once.
    last_minute: u64,
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

    /// The commands to start at `minute` (the Unix minute, local `time`), once per minute;
    /// a `unique` one only when it is not among `running` (command indexes).
    pub fn due(&mut self, minute: u64, time: &CronTime, running: &[usize]) -> Vec<(usize, String)> {
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
                spec.matches(time) && !(cron.unique && running.contains(index))
            })
            .map(|(index, cron)| (index, cron.command.clone()))
            .collect()
    }

    pub fn command(&self, index: usize) -> &str {
        &self.commands[index].command
    }

    /// Whether command `index`, running for `ran`, is past its harakiri (its own, else
    /// `cron-harakiri`).
    pub fn overdue(&self, index: usize, ran: Duration) -> bool {
        let limit = match self.commands[index].harakiri {
            0 => self.default_harakiri,
            seconds => Duration::from_secs(seconds),
        };
        !limit.is_zero() && ran > limit
    }
}
