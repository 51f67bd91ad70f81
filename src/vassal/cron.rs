//! The master's `cron`/`unique-cron`/`cron2` commands: which are due this minute, which are
//! still running (for `unique` and harakiri). The master spawns and reaps them
//! (`master/crons.rs`).

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
}

impl Crons {
    pub fn new(commands: &[CronCommand], default_harakiri: Duration) -> Self {
        Crons {
            commands: commands.to_vec(),
            default_harakiri,
            last_minute: 0,
            running: Vec::new(),
        }
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
