//! Pausing (SIGTSTP, FIFO `p`) and cheap mode (`idle`, `die-on-idle`).

use super::*;

impl Master<'_> {
    /// SIGTSTP or FIFO `p`: workers stop accepting new connections (queued ones wait in the
    /// backlog; connections already open keep being served), or start again.
    pub(super) fn toggle_pause(&mut self) {
        self.paused = !self.paused;
        if self.paused {
            tracing::info!(
                "paused: workers stop accepting new connections (SIGTSTP or `p` again resumes)"
            );
        } else {
            tracing::info!("resumed: workers accept again");
        }
        // Only ready workers have their signalfd; a starting one gets the state when it is
        // ready (SIGTSTP's default action would stop it).
        for id in self.worker_ids().filter(|&id| self.worker_ready(id)) {
            if let Some(pid) = self.worker_pid(id) {
                let _ = sys::signal::kill(pid, libc::SIGTSTP);
            }
        }
    }

    /// `idle` / `die-on-idle`, checked every turn of the loop.
    pub(super) fn check_idle(&mut self, now: Instant) {
        if self.phase != Phase::Running || self.paused || self.idle.is_none() {
            return;
        }
        // Snapshots copy every core's request text: only worth it when `idle` is set.
        let (requests, busy) = self.activity();
        let Some(watch) = self.idle.as_mut() else {
            return;
        };
        if watch.tick(requests, busy, now) != IdleVerdict::Idle {
            return;
        }
        let secs = watch.limit.as_secs();
        if watch.die {
            tracing::info!(
                "workers have been inactive for more than {secs} seconds; stopping (die-on-idle)"
            );
            self.begin_stop(false, "die-on-idle");
            return;
        }
        watch.cheap = true;
        tracing::info!("workers have been inactive for more than {secs} seconds; stopping them until the next connection (cheap mode)");
        let _ = self
            .notifier
            .notify("STATUS=cheap: no workers until the next connection");
        for id in self.worker_ids() {
            self.children.cancel_respawn(Kind::Worker(id));
            if let Some(pid) = self.worker_pid(id) {
                let _ = sys::signal::kill(pid, libc::SIGTERM);
            }
        }
    }

    /// `cheap`: start in cheap mode, with no worker; the first connection brings them. The
    /// vassal is ready (its sockets accept into the backlog). False without `cheap`.
    pub(super) fn start_cheap(&mut self) -> bool {
        let Some(watch) = self.idle.as_mut().filter(|_| self.config.cheap) else {
            return false;
        };
        watch.cheap = true;
        for id in self.worker_ids() {
            self.show_cheap(id, true);
        }
        tracing::info!("cheap mode: no worker until the first connection (`cheap`)");
        self.all_ready();
        let _ = self
            .notifier
            .notify("STATUS=cheap: no workers until the next connection");
        true
    }

    /// Total requests and whether any is in flight, from the scoreboard.
    pub(super) fn activity(&self) -> (u64, bool) {
        let mut requests = 0;
        let mut busy = false;
        for id in self.worker_ids() {
            if let Some(worker) = self.scoreboard.worker(id) {
                let snapshot = worker.snapshot();
                requests += snapshot.requests;
                busy |= snapshot.busy();
            }
        }
        (requests, busy)
    }

    pub(super) fn is_cheap(&self) -> bool {
        self.idle.as_ref().is_some_and(|w| w.cheap)
    }

    /// A connection is waiting on a socket while cheap: bring the workers back. The master
    /// never accepts it; it waits in the backlog for them.
    pub(super) fn leave_cheap(&mut self) -> Result<(), RunVassalError> {
        let (requests, _) = self.activity();
        if let Some(watch) = self.idle.as_mut() {
            watch.wake(requests, Instant::now());
        }
        tracing::info!("a connection arrived: respawning the workers (leaving cheap mode)");
        // With `cheaper`, only its minimum comes back (as in uWSGI); the algorithm adds more.
        let wanted = self.config.cheaper.count.max(1);
        for id in self.worker_ids() {
            if self.worker_pid(id).is_none() && !self.keep_cheap(id, wanted) {
                self.show_cheap(id, false);
                self.spawn(id)?;
            }
        }
        Ok(())
    }
}
