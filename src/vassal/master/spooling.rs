//! The master's spooler hooks: fork a spooler process into its seat of the process table
//! (the table reaps it, respawns it and stops it with the vassal, as every child), and kill
//! one stuck past `spooler-harakiri` (its task stays on disk and runs again). A reload's
//! re-exec hands them over as the previous generation: they finish their task, then exit.

use super::*;
use crate::spooler::{self, PythonSource, SpoolerSetup};

impl Master<'_> {
    /// Descriptors only the master uses, closed first thing in a spooler or a mule.
    pub(super) fn master_only_fds(&self) -> Vec<RawFd> {
        let mut fds: Vec<RawFd> = vec![
            self.signals.as_fd().as_raw_fd(),
            self.ready_read.as_raw_fd(),
            self.ready_write.as_raw_fd(),
        ];
        fds.extend(self.notifier.raw_emperor_fd());
        fds.extend(self.upkeep.fifo_raw_fd());
        fds.extend(self.stats.iter().flat_map(|s| s.raw_fds()));
        fds.extend(self.sockets.iter().map(|s| s.fd.as_raw_fd()));
        fds.extend(self.gateways.iter().flat_map(|g| g.raw_fds()));
        fds
    }

    pub(super) fn spawn_spooler(&mut self, index: usize) -> Result<(), RunVassalError> {
        let forked = match &self.app {
            Some(_) => python::fork()?,
            None => sys::fork::fork()?,
        };
        match forked {
            Forked::Child => {
                let python = match &self.lazy {
                    Some((_, interpreter, module)) => PythonSource::Lazy {
                        interpreter: interpreter.clone(),
                        module: module.clone(),
                    },
                    None => PythonSource::Preloaded,
                };
                spooler::run(SpoolerSetup {
                    slot: index,
                    dir: self.spoolers.dir(index).to_path_buf(),
                    config: self.config.spooler.clone(),
                    board: Arc::clone(&self.spoolers.board),
                    master_pid: sys::process::getppid(),
                    close_fds: self.master_only_fds(),
                    python,
                })
            }
            Forked::Parent { child } => {
                let kind = Kind::Spooler(index);
                let respawns = self.children.respawns(kind);
                self.spoolers.spawned(index, child, respawns);
                self.children.insert(Entry {
                    state: State::Serving,
                    ..Entry::new(kind, child, Instant::now())
                });
                let dir = self.spoolers.dir(index).display().to_string();
                if respawns == 0 {
                    tracing::info!(pid = child, "spawned the spooler on dir {dir}");
                } else {
                    tracing::info!(pid = child, respawns, "respawned the spooler on dir {dir}");
                }
                Ok(())
            }
        }
    }

    /// When the next uWSGI timer is due, for the loop's wait. None while stopping: timers
    /// are not fired then, and a past deadline would spin the loop.
    pub(super) fn next_timer(&self) -> Option<Instant> {
        if matches!(self.phase, Phase::Stopping { .. }) {
            return None;
        }
        let due_ms = crate::signals::board()?.next_timer_ms()?;
        let now_ms = sys::clock::unix_ms();
        Some(Instant::now() + Duration::from_millis(due_ms.saturating_sub(now_ms)))
    }

    /// The stats document's `spoolers` and `caches` sections (uWSGI's keys), each when the
    /// instance has any.
    pub(super) fn stats_sections(&self) -> Vec<(&'static str, serde_json::Value)> {
        let mut sections = Vec::new();
        let caches: Vec<serde_json::Value> = python::cache_stats()
            .into_iter()
            .map(|cache| {
                serde_json::json!({
                    "name": cache.name,
                    "hash": "fnv1a",
                    "hashsize": cache.hashsize,
                    "keysize": cache.keysize,
                    "max_items": cache.max_items,
                    "blocks": cache.max_items,
                    "blocksize": cache.blocksize,
                    "items": cache.items,
                    "hits": cache.hits,
                    "miss": cache.miss,
                    "full": cache.full,
                    "last_modified_at": cache.last_modified_at,
                })
            })
            .collect();
        if !caches.is_empty() {
            sections.push(("caches", serde_json::Value::Array(caches)));
        }
        let figures = self
            .spoolers
            .figures(|index| self.children.respawns(Kind::Spooler(index)));
        if figures.is_empty() {
            return sections;
        }
        let spoolers = figures
            .into_iter()
            .map(|(dir, pid, tasks, respawns, running)| {
                serde_json::json!({
                    "dir": dir,
                    "pid": pid,
                    "tasks": tasks,
                    "respawns": respawns,
                    "running": u8::from(running),
                })
            })
            .collect();
        sections.push(("spoolers", serde_json::Value::Array(spoolers)));
        sections
    }

    /// Each turn of the loop: fire due uWSGI timers and crons, and end a task past
    /// `spooler-harakiri`.
    pub(super) fn spooler_tick(&mut self) {
        let now_us = sys::clock::unix_us();
        if let Some(board) = crate::signals::board() {
            let secs = now_us / 1_000_000;
            board.tick(now_us / 1000, &crate::signals::local_time(secs), secs / 60);
        }
        // Task starts are on `CLOCK_MONOTONIC` (`spooler/mod.rs`).
        let live = self.live(Kind::Spooler);
        for (pid, seconds) in self.spoolers.overdue(&live, sys::clock::monotonic_us()) {
            tracing::warn!(
                pid,
                seconds,
                "spooler-harakiri: a task has run too long; killing the spooler (the task stays and runs again)"
            );
            let _ = sys::signal::kill(pid, libc::SIGKILL);
        }
    }
}
