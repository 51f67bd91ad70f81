//! Replacing workers one at a time: readiness hand-over, recycling requests from workers,
//! lifetimes, `evil-*` memory limits and the queued replacements of a chain reload.

use super::*;

impl Master<'_> {
    pub(super) fn slot_of_pid(&self, pid: Pid) -> Option<usize> {
        self.slots.iter().position(|s| s.pid == Some(pid))
    }

    /// A worker accepts. If it replaces others, they are told to finish and leave.
    pub(super) fn on_worker_ready(&mut self, pid: Pid) {
        let Some(index) = self.slot_of_pid(pid) else {
            return;
        };
        self.slots[index].ready = true;
        if self.paused {
            let _ = sys::signal::kill(pid, libc::SIGTSTP);
        }
        let id = self.slots[index].id;
        let kill_at = Instant::now() + self.config.worker_reload_mercy;
        let mut replaced = Vec::new();
        for retiring in self.upkeep.recycler.waiting_for(id) {
            retiring.kill_at = Some(kill_at);
            replaced.push(retiring.pid);
        }
        for old in replaced {
            tracing::info!(
                worker = id,
                old,
                new = pid,
                "worker {id} replaced: the new worker accepts, the old one finishes its requests"
            );
            let _ = sys::signal::kill(old, libc::SIGTERM);
        }
        self.upkeep.recycler.accepted(id);
        if self.upkeep.recycler.chain_done() {
            tracing::info!("chain reload complete");
        }
    }

    pub(super) fn on_recycle_request(&mut self, pid: Pid, message: ToMaster) {
        if matches!(self.phase, Phase::Stopping { .. }) {
            return;
        }
        let (Some(index), Some(cause)) = (self.slot_of_pid(pid), Cause::from_message(message))
        else {
            return;
        };
        let id = self.slots[index].id;
        if self.upkeep.recycler.request(id, cause.clone()) {
            tracing::debug!(worker = id, pid, %cause, "worker asks to be recycled; queued");
        }
    }

    /// True if `pid` was a replaced worker (now gone).
    pub(super) fn reap_retiring(&mut self, pid: Pid, how: ExitKind) -> bool {
        let retiring = &mut self.upkeep.recycler.retiring;
        let Some(position) = retiring.iter().position(|r| r.pid == pid) else {
            return false;
        };
        let old = retiring.remove(position);
        tracing::info!(worker = old.id, pid, %how, "replaced worker exited");
        true
    }

    /// The replacement in slot `index` failed to load the app (lazy-apps): the worker it
    /// was to replace takes the slot back, and queued replacements are cancelled, so a
    /// broken deploy keeps the old code serving. False if nothing was being replaced.
    pub(super) fn reinstate(&mut self, index: usize) -> bool {
        let id = self.slots[index].id;
        let recycler = &mut self.upkeep.recycler;
        let Some(position) = recycler
            .retiring
            .iter()
            .position(|r| r.id == id && r.kill_at.is_none())
        else {
            return false;
        };
        let old = recycler.retiring.remove(position);
        recycler.abort();
        tracing::error!(
            worker = id,
            pid = old.pid,
            "the replacement for worker {id} failed to load the app; the current worker keeps serving and pending replacements are cancelled"
        );
        let slot = &mut self.slots[index];
        slot.pid = Some(old.pid);
        slot.bank = old.bank;
        slot.ready = true;
        // Its lifetime starts over, so `max-worker-lifetime` does not retry at once.
        slot.spawned_at = Instant::now();
        true
    }

    /// Once per loop iteration outside a shutdown: touch files, lifetimes, memory, mercy
    /// for replaced and previous-generation workers, and the next queued replacement.
    pub(super) fn upkeep_tick(&mut self, now: Instant) -> Result<(), RunVassalError> {
        if let Phase::Checking { pid, deadline, .. } = self.phase {
            if now >= deadline {
                tracing::error!(
                    "the new configuration was not checked within reload-mercy; killing the check"
                );
                let _ = sys::signal::kill(pid, libc::SIGKILL);
                self.scoreboard.metrics().count_recycle("evil-memory");
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
        for retiring in &mut self.upkeep.recycler.retiring {
            if retiring.kill_at.is_some_and(|at| now >= at) {
                tracing::warn!(
                    worker = retiring.id,
                    pid = retiring.pid,
                    "replaced worker did not finish within worker-reload-mercy; killing it"
                );
                let _ = sys::signal::kill(retiring.pid, libc::SIGKILL);
                retiring.kill_at = Some(now + Duration::from_secs(3600));
            }
        }
        if self.upkeep.old_kill_at.is_some_and(|at| now >= at) {
            for pid in &self.old_workers {
                tracing::warn!(
                    pid,
                    "previous-generation worker did not finish within reload-mercy; killing it"
                );
                let _ = sys::signal::kill(*pid, libc::SIGKILL);
            }
            self.upkeep.old_kill_at = None;
        }
        if self.phase != Phase::Running {
            return Ok(());
        }
        self.check_lifetimes();
        self.check_evil_memory(now);
        while let Some((id, cause)) = self.upkeep.recycler.next_turn() {
            let Some(index) = self.slots.iter().position(|s| s.id == id) else {
                continue;
            };
            if self.replace_worker(index, &cause)? {
                self.upkeep.recycler.started(id);
                break;
            }
            if self.slots[index].pid.is_some() {
                // No free bank: the workers it would overlap with are still finishing.
                self.upkeep.recycler.put_back(id, cause);
                break;
            }
        }
        if self.upkeep.recycler.chain_done() {
            tracing::info!("chain reload complete");
        }
        Ok(())
    }

    pub(super) fn check_lifetimes(&mut self) {
        for slot in &self.slots {
            let Some(max) = recycle::lifetime_for(self.config, slot.id) else {
                return;
            };
            let lived = slot.spawned_at.elapsed();
            if slot.pid.is_some()
                && slot.ready
                && lived >= max
                && !self.upkeep.recycler.is_pending(slot.id)
            {
                self.upkeep
                    .recycler
                    .request(slot.id, Cause::Lifetime { lived, max });
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
        for slot in &self.slots {
            let Some(pid) = slot.pid else { continue };
            let Some(memory) = sys::process::memory_bytes(pid) else {
                continue;
            };
            if let Some(why) = recycle::evil_over(self.config, memory) {
                tracing::warn!(worker = slot.id, pid, "{why}; killing worker {}", slot.id);
                let _ = sys::signal::kill(pid, libc::SIGKILL);
                return;
            }
        }
    }

    /// Forks the replacement of the worker in slot `index`; the old one keeps serving until
    /// the new one accepts. False if the slot has no worker to replace, or if every
    /// scoreboard bank is taken by a worker still finishing (it is tried again later).
    pub(super) fn replace_worker(
        &mut self,
        index: usize,
        cause: &Cause,
    ) -> Result<bool, RunVassalError> {
        // A worker the cheaper is stopping is not replaced: its slot stays empty.
        if self.is_cheaped(index) {
            return Ok(false);
        }
        let (id, Some(pid), bank) = (
            self.slots[index].id,
            self.slots[index].pid,
            self.slots[index].bank,
        ) else {
            return Ok(false);
        };
        // The replacement needs a bank besides the one the old worker keeps.
        let spare = self.slots.iter().filter(|s| s.pid.is_some()).count()
            + self.upkeep.recycler.retiring.len();
        if spare >= self.scoreboard.banks() {
            tracing::debug!(
                worker = id,
                pid,
                retiring = self.upkeep.recycler.retiring.len(),
                "replacement of worker {id} waits for replaced workers to finish their requests"
            );
            return Ok(false);
        }
        let slot = &mut self.slots[index];
        tracing::info!(
            worker = id,
            pid,
            "recycling worker {id}: {cause}; starting its replacement first"
        );
        self.scoreboard
            .metrics()
            .count_recycle(crate::vassal::prometheus::recycle_reason(cause));
        self.upkeep.recycler.retiring.push(Retiring {
            pid,
            id,
            bank,
            kill_at: None,
        });
        slot.pid = None;
        slot.ready = false;
        slot.respawns += 1;
        self.spawn(index)?;
        Ok(true)
    }
}
