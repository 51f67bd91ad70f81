//! The master's side of the process table (`vassal/process_table.rs`), written once for
//! every kind of child: the `waitpid` loop and who a reaped pid was, what its exit does
//! (each kind's policy, plus the worker's own cases), filling seats whose respawn is due,
//! and stop-with-mercy (the stop signal now, SIGKILL once the mercy has run out).
//!
//! A new kind of child gets a `Kind` in the table, a `spawn_*` for `respawn_due`, and a log
//! line in `on_exit`; it does not get its own reaping, respawn or mercy code. This module
//! does not decide when a worker is needed (the loop, recycling and the cheaper do).

use super::*;

impl Master<'_> {
    pub(super) fn worker_ids(&self) -> std::ops::RangeInclusive<u32> {
        1..=self.processes
    }

    /// Worker `id`'s current process (not one it replaces).
    pub(super) fn worker_pid(&self, id: u32) -> Option<Pid> {
        self.children.pid_of(Kind::Worker(id))
    }

    /// Worker `id` has a process that accepts.
    pub(super) fn worker_ready(&self, id: u32) -> bool {
        self.children
            .occupant(Kind::Worker(id))
            .is_some_and(|e| e.state == State::Serving)
    }

    /// Any worker process, current, replaced or of the previous generation.
    pub(super) fn any_worker_alive(&self) -> bool {
        self.children
            .entries()
            .any(|e| matches!(e.kind, Kind::Worker(_) | Kind::Previous))
    }

    pub(super) fn reap(&mut self) -> Result<(), RunVassalError> {
        while let Some((pid, how)) = sys::process::try_wait_any()? {
            if let Phase::Checking { pid: checker, .. } = self.phase {
                if pid == checker {
                    self.on_check_done(how)?;
                    continue;
                }
            }
            let stopping = matches!(self.phase, Phase::Stopping { .. });
            if let Some((entry, exit)) = self.children.exited(pid, stopping) {
                self.on_exit(entry, exit, how);
                continue;
            }
            if crate::logging::master::pid() == Some(pid) {
                // Every line written since went nowhere; a reload starts a new log master.
                crate::logging::master::forget();
                tracing::error!(pid, %how, "the log master died; reloading to start a new one");
                self.begin_reload(false)?;
                continue;
            }
        }
        Ok(())
    }

    /// A child in the table exited; `exit` is what the table made of it.
    fn on_exit(&mut self, entry: Entry, exit: Exit, how: ExitKind) {
        let pid = entry.pid;
        match (entry.kind, exit) {
            (Kind::Worker(id), Exit::Retired) => {
                tracing::info!(worker = id, pid, %how, "replaced worker exited")
            }
            (Kind::Worker(id), Exit::Stopped) => {
                tracing::info!(worker = id, pid, %how, "worker stopped")
            }
            (Kind::Worker(id), _) => self.on_worker_exit(id, &entry, how),
            (Kind::Previous, _) => {
                tracing::info!(pid, %how, "previous-generation worker finished")
            }
            (Kind::Spooler(index), exit) => {
                self.spoolers.exited(index);
                if exit == Exit::Stopped {
                    tracing::info!(pid, %how, "spooler stopped");
                    return;
                }
                if how == ExitKind::Code(0) {
                    tracing::info!(pid, "spooler exited (recycled), respawning");
                } else {
                    tracing::warn!(pid, %how, "OOOPS the spooler is no more...trying respawn...");
                }
                self.schedule_respawn(entry.kind);
            }
            (Kind::Mule(index), Exit::Stopped) => {
                tracing::info!(mule = index + 1, pid, %how, "mule stopped")
            }
            (Kind::Mule(index), _) => {
                tracing::warn!(mule = index + 1, pid, %how, "mule ended, respawning");
                self.schedule_respawn(entry.kind);
            }
            (Kind::Daemon(index), exit) => self.on_daemon_exit(index, pid, how, exit),
            (Kind::Gateway(_), Exit::Stopped) => tracing::info!(pid, %how, "fastrouter stopped"),
            (Kind::Gateway(_), _) => {
                tracing::warn!(pid, %how, "the fastrouter died, respawning");
                self.schedule_respawn(entry.kind);
            }
            (Kind::Cron(index), _) => {
                let command = self.crons.command(index);
                tracing::info!(pid, %how, command, "cron: the command finished");
            }
        }
    }

    /// A current worker died while the vassal runs: respawned, unless its app failed to
    /// load, the vassal is in cheap mode or the cheaper emptied its slot.
    fn on_worker_exit(&mut self, id: u32, entry: &Entry, how: ExitKind) {
        let pid = entry.pid;
        let was_ready = entry.state == State::Serving;
        if how == ExitKind::Code(worker::EXIT_FAILED_APP) && !was_ready && self.reinstate(id) {
            return;
        }
        if how == ExitKind::Code(worker::EXIT_FAILED_APP) && !was_ready {
            tracing::error!(
                worker = id,
                "the app failed to load in a worker (lazy-apps); shutting down"
            );
            self.exit_code = exit::FAILED_APP;
            self.begin_stop(true, "app failed to load");
            return;
        }
        if self.is_cheap() {
            tracing::info!(worker = id, pid, %how, "worker stopped (cheap mode)");
            self.show_cheap(id, true);
            return;
        }
        if self.reap_cheaped(id, pid, how) {
            return;
        }
        self.alarm_on_worker_death(id, pid, how);
        match how {
            ExitKind::Code(0) => {
                tracing::info!(worker = id, pid, "worker exited (recycled), respawning")
            }
            _ => tracing::warn!(worker = id, pid, %how, "worker died, respawning"),
        }
        self.schedule_respawn(Kind::Worker(id));
    }

    /// Fills `kind`'s seat again, at once unless its kind dies too fast (uWSGI's fork-bomb
    /// guard, `worker respawning too fast`). Daemons schedule theirs in `daemons.rs`.
    pub(super) fn schedule_respawn(&mut self, kind: Kind) {
        let (_, late) = self.children.schedule_respawn(kind, Instant::now());
        if late == Late::TooFast && matches!(kind, Kind::Worker(_)) {
            tracing::warn!("workers are respawning too fast; waiting 2 seconds");
        }
    }

    /// Every seat whose respawn time has come gets its child.
    pub(super) fn respawn_due(&mut self, now: Instant) -> Result<(), RunVassalError> {
        for kind in self.children.due(now) {
            match kind {
                Kind::Worker(id) => self.spawn(id)?,
                Kind::Spooler(index) => self.spawn_spooler(index)?,
                Kind::Mule(index) => self.spawn_mule(index)?,
                Kind::Gateway(index) => self.spawn_gateway(index)?,
                Kind::Daemon(index) => self.attached.daemons.spawn(index, &mut self.children, now),
                Kind::Previous | Kind::Cron(_) => {}
            }
        }
        Ok(())
    }

    /// `(index, pid)` of each live child of a kind, e.g. `Kind::Mule`.
    pub(super) fn live(&self, of_kind: fn(usize) -> Kind) -> Vec<(usize, Pid)> {
        self.children
            .entries()
            .filter_map(|e| match e.kind {
                Kind::Spooler(index) | Kind::Mule(index) | Kind::Cron(index)
                    if e.kind == of_kind(index) =>
                {
                    Some((index, e.pid))
                }
                _ => None,
            })
            .collect()
    }

    /// Sends `signal` to the child `pid` and gives it until `deadline` to exit.
    pub(super) fn stop_child(
        &mut self,
        pid: Pid,
        signal: libc::c_int,
        why: Why,
        deadline: Instant,
    ) {
        self.children.stop(pid, why, deadline);
        let _ = sys::signal::kill(pid, signal);
    }

    /// SIGKILL to each child whose mercy ran out, with the line that names that mercy.
    pub(super) fn mercy_tick(&mut self, now: Instant) {
        for entry in self.children.past_mercy(now, |_| true) {
            let pid = entry.pid;
            if let Kind::Daemon(index) = entry.kind {
                // Its process group, with the daemon's command in the line.
                self.attached.daemons.kill_past_mercy(index, pid);
                continue;
            }
            if let Some(stop) = entry.stop {
                tracing::warn!(pid, kind = ?entry.kind, "{}", stop.why.kill_line());
            }
            let _ = sys::signal::kill(pid, libc::SIGKILL);
        }
    }

    /// The new workers accept: the previous generation's children are told to finish, and
    /// get SIGKILL after `reload-mercy`.
    pub(super) fn stop_previous_generation(&mut self) {
        let previous: Vec<(Pid, bool)> = self
            .children
            .entries()
            .filter(|e| e.kind == Kind::Previous)
            .map(|e| (e.pid, e.stop.is_some()))
            .collect();
        if previous.is_empty() {
            return;
        }
        let pids: Vec<Pid> = previous.iter().map(|(pid, _)| *pid).collect();
        tracing::info!(old = ?pids, "new workers accept; stopping the previous generation gracefully");
        let deadline = Instant::now() + crate::vassal::process_table::whole_mercy(self.config);
        for (pid, told) in previous {
            if told {
                let _ = sys::signal::kill(pid, libc::SIGTERM);
            } else {
                self.stop_child(pid, libc::SIGTERM, Why::PreviousGeneration, deadline);
            }
        }
    }
}
