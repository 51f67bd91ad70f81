//! The hand-over from a worker to its replacement, one worker at a time: the replacement is
//! forked first and the old process (retiring, in the process table) is told to finish once
//! the new one accepts. Also what starts a replacement: recycling requests from workers,
//! lifetimes, `evil-*` memory limits and the queued replacements of a chain reload. The
//! policy (limits, causes, the queue) is `vassal/replacement.rs`.

use super::*;

impl Master<'_> {
    /// The worker id whose current process is `pid` (not one it replaces).
    pub(super) fn worker_of_pid(&self, pid: Pid) -> Option<u32> {
        match self.children.get(pid) {
            Some(entry) if entry.state != State::Retiring => match entry.kind {
                Kind::Worker(id) => Some(id),
                _ => None,
            },
            _ => None,
        }
    }

    /// A worker accepts. If it replaces others, they are told to finish and leave.
    pub(super) fn on_worker_ready(&mut self, pid: Pid) {
        let Some(id) = self.worker_of_pid(pid) else {
            return;
        };
        if let Some(entry) = self.children.get_mut(pid) {
            entry.state = State::Serving;
        }
        if self.paused {
            let _ = sys::signal::kill(pid, libc::SIGTSTP);
        }
        let kill_at = Instant::now() + self.config.worker_reload_mercy;
        for old in self.replaced_still_serving(id) {
            tracing::info!(
                worker = id,
                old,
                new = pid,
                "worker {id} replaced: the new worker accepts, the old one finishes its requests"
            );
            self.stop_child(old, libc::SIGTERM, Why::Replaced, kill_at);
        }
        self.upkeep.replacements.accepted(id);
        if self.upkeep.replacements.chain_done() {
            tracing::info!("chain reload complete");
        }
    }

    /// The replaced processes of worker `id` not yet told to stop.
    fn replaced_still_serving(&self, id: u32) -> Vec<Pid> {
        self.children
            .entries()
            .filter(|e| {
                e.kind == Kind::Worker(id) && e.state == State::Retiring && e.stop.is_none()
            })
            .map(|e| e.pid)
            .collect()
    }

    pub(super) fn on_recycle_request(&mut self, pid: Pid, message: ToMaster) {
        if matches!(self.phase, Phase::Stopping { .. }) {
            return;
        }
        let (Some(id), Some(cause)) = (self.worker_of_pid(pid), Cause::from_message(message))
        else {
            return;
        };
        if self.upkeep.replacements.request(id, cause.clone()) {
            tracing::debug!(worker = id, pid, %cause, "worker asks to be recycled; queued");
        }
    }

    /// The replacement of worker `id` failed to load the app (lazy-apps): the process it
    /// was to replace takes the seat back, and queued replacements are cancelled, so a
    /// broken deploy keeps the old code serving. False if nothing was being replaced.
    pub(super) fn reinstate(&mut self, id: u32) -> bool {
        let Some(&old) = self.replaced_still_serving(id).first() else {
            return false;
        };
        self.upkeep.replacements.abort();
        tracing::error!(
            worker = id,
            pid = old,
            "the replacement for worker {id} failed to load the app; the current worker keeps serving and pending replacements are cancelled"
        );
        if let Some(entry) = self.children.get_mut(old) {
            entry.state = State::Serving;
            // Its lifetime starts over, so `max-worker-lifetime` does not retry at once.
            entry.started = Instant::now();
        }
        true
    }

    /// Once per loop iteration outside a shutdown: the config check's deadline, touch files,
    /// lifetimes, memory, and the next queued replacement (the mercy of replaced and
    /// previous-generation workers is the process table's, `children.rs`).
    pub(super) fn upkeep_tick(&mut self, now: Instant) -> Result<(), RunVassalError> {
        if let Phase::Checking { pid, deadline, .. } = self.phase {
            if now >= deadline {
                tracing::error!(
                    "the new configuration was not checked within reload-mercy; killing the check"
                );
                let _ = sys::signal::kill(pid, libc::SIGKILL);
            }
        }
        for (action, path) in self.upkeep.touches.changed() {
            tracing::info!(path = %path.display(), "{}: `{}` was touched", action.option(), path.display());
            match action {
                TouchAction::Reload => self.begin_reload(false)?,
                TouchAction::ChainReload => self.chain_reload(),
                TouchAction::WorkersReload => self.workers_reload()?,
                TouchAction::BrutalReload => self.begin_reload(true)?,
                TouchAction::Signal(signal) => {
                    if !crate::signals::board().is_some_and(|board| board.raise(signal)) {
                        tracing::warn!(
                            signal,
                            "touch-signal: no handler is registered for the uWSGI signal"
                        );
                    }
                }
            }
        }
        if self.phase != Phase::Running {
            return Ok(());
        }
        self.check_lifetimes();
        self.check_evil_memory(now);
        while let Some((id, cause)) = self.upkeep.replacements.next_turn() {
            if !self.worker_ids().contains(&id) {
                continue;
            }
            if self.replace_worker(id, &cause)? {
                self.upkeep.replacements.started(id);
                break;
            }
            if self.worker_pid(id).is_some() {
                // No free bank: the workers it would overlap with are still finishing.
                self.upkeep.replacements.put_back(id, cause);
                break;
            }
        }
        if self.upkeep.replacements.chain_done() {
            tracing::info!("chain reload complete");
        }
        Ok(())
    }

    pub(super) fn check_lifetimes(&mut self) {
        for id in self.worker_ids() {
            let Some(max) = replacement::lifetime_for(self.config, id) else {
                return;
            };
            let Some(entry) = self.children.occupant(Kind::Worker(id)) else {
                continue;
            };
            let lived = entry.started.elapsed();
            if entry.state == State::Serving
                && lived >= max
                && !self.upkeep.replacements.is_pending(id)
            {
                self.upkeep
                    .replacements
                    .request(id, Cause::Lifetime { lived, max });
            }
        }
    }

    /// `evil-reload-on-rss`/`-as`: at most once a second, SIGKILL one worker over the
    /// limit (it is respawned as any dead worker). A hard limit, so no grace.
    pub(super) fn check_evil_memory(&mut self, now: Instant) {
        if self.config.evil_reload_on_rss == 0 && self.config.evil_reload_on_as == 0 {
            return;
        }
        if now < self.upkeep.next_memory_check {
            return;
        }
        self.upkeep.next_memory_check = now + Duration::from_secs(1);
        for id in self.worker_ids() {
            let Some(pid) = self.worker_pid(id) else {
                continue;
            };
            let Some(memory) = sys::process::memory_bytes(pid) else {
                continue;
            };
            if let Some(why) = replacement::evil_over(self.config, memory) {
                tracing::warn!(worker = id, pid, "{why}; killing worker {id}");
                let _ = sys::signal::kill(pid, libc::SIGKILL);
                self.scoreboard.metrics().count_recycle("evil-memory");
                return;
            }
        }
    }

    /// Forks the replacement of worker `id`; the old process keeps serving until the new
    /// one accepts. False if the worker has no process to replace, or if every scoreboard
    /// bank is taken by a worker still finishing (it is tried again later).
    pub(super) fn replace_worker(
        &mut self,
        id: u32,
        cause: &Cause,
    ) -> Result<bool, RunVassalError> {
        // A worker the cheaper is stopping is not replaced: its slot stays empty.
        if self.is_cheaped(id) {
            return Ok(false);
        }
        let Some(pid) = self.worker_pid(id) else {
            return Ok(false);
        };
        // The replacement needs a bank besides the one the old worker keeps.
        let workers = |e: &&Entry| matches!(e.kind, Kind::Worker(_));
        let spare = self.children.entries().filter(workers).count();
        if spare >= self.scoreboard.banks() {
            tracing::debug!(
                worker = id,
                pid,
                retiring = self
                    .children
                    .entries()
                    .filter(workers)
                    .filter(|e| e.state == State::Retiring)
                    .count(),
                "replacement of worker {id} waits for replaced workers to finish their requests"
            );
            return Ok(false);
        }
        tracing::info!(
            worker = id,
            pid,
            "recycling worker {id}: {cause}; starting its replacement first"
        );
        self.scoreboard
            .metrics()
            .count_recycle(crate::vassal::prometheus::recycle_reason(cause));
        if let Some(entry) = self.children.get_mut(pid) {
            entry.state = State::Retiring;
        }
        self.children.count_respawn(Kind::Worker(id));
        self.spawn(id)?;
        Ok(true)
    }
}
