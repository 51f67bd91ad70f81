//! The cheaper subsystem in the master: which slots are cheap, the cycle that reads the
//! scoreboard and the listen queues into an observation for `vassal::cheaper`, and carrying
//! its decision out through the ordinary spawn and graceful-stop paths.
//!
//! A cheap slot has no worker and is never respawned by the dead-worker path; a worker the
//! cheaper stops gets SIGTERM (it finishes its requests and exits) and SIGKILL only after
//! `worker-reload-mercy`. Its slot becomes spawnable once it has exited, so a slot's
//! scoreboard area always belongs to one process. It does not decide anything itself.

use super::*;
use crate::vassal::cheaper::{Cheaper, Observation, SlotState, SlotView};

/// Set by a master before it re-execs for a reload: how many workers ran. The new master
/// starts at least that many, so a reload under load does not fall back to
/// `cheaper-initial` (uWSGI does) and let the load queue while the algorithm climbs again.
pub(super) const RUNNING_ENV: &str = "KAISER_CHEAPER_RUNNING";

/// The cheaper subsystem's state in the master.
pub(super) struct CheaperRun {
    decide: Cheaper,
    /// Per worker id - 1: kept empty (or being emptied) by the cheaper.
    cheap: Vec<bool>,
    next_cycle: Instant,
    /// The monotonic clock's origin for the decisions' microseconds.
    origin: Instant,
    /// Workers the previous master ran, across a reload.
    inherited: u32,
}

impl CheaperRun {
    /// `None` when `cheaper` is off.
    pub(super) fn new(config: &Config, now: Instant) -> Option<CheaperRun> {
        let settings = &config.cheaper;
        let inherited = std::env::var(RUNNING_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        std::env::remove_var(RUNNING_ENV);
        if !settings.enabled() {
            return None;
        }
        let processes = config.processes.max(1);
        tracing::info!(
            algorithm = settings.algo.name(),
            min = settings.count,
            max = processes,
            initial = settings.initial_workers(processes),
            step = settings.step(),
            overload = settings.overload,
            "cheaper: {} algorithm, between {} and {processes} workers, {} at start",
            settings.algo.name(),
            settings.count,
            settings.initial_workers(processes),
        );
        if settings.algo == crate::config::CheaperAlgo::Busyness {
            let b = &settings.busyness;
            tracing::info!(
                "cheaper busyness: min {}%, max {}%, overload {} s, multiplier {}, penalty {}, backlog alert {} (step {}), backlog non-zero alert {} s",
                b.min, b.max, settings.overload, b.multiplier, b.penalty, b.backlog_alert, b.backlog_step, b.backlog_nonzero.as_secs()
            );
        }
        Some(CheaperRun {
            decide: Cheaper::new(settings, processes, 0),
            cheap: vec![false; processes as usize],
            next_cycle: now + Duration::from_secs(1),
            origin: now,
            inherited,
        })
    }
}

impl CheaperRun {
    /// When the loop must wake next: the next cycle (a stopped worker's SIGKILL is the
    /// process table's).
    pub(super) fn next_deadline(&self) -> Instant {
        self.next_cycle
    }
}

impl Master<'_> {
    /// Whether worker `id`'s slot is kept cheap.
    pub(super) fn is_cheaped(&self, id: u32) -> bool {
        let index = id as usize - 1;
        self.cheaper
            .as_ref()
            .is_some_and(|run| run.cheap.get(index).copied().unwrap_or(false))
    }

    /// At start and when leaving `idle`'s cheap mode: the slots beyond the first `wanted`
    /// stay cheap (true), the others are to be spawned (false).
    pub(super) fn keep_cheap(&mut self, id: u32, wanted: u32) -> bool {
        let Some(run) = self.cheaper.as_mut() else {
            return false;
        };
        let cheap = id > wanted;
        run.cheap[id as usize - 1] = cheap;
        if let Some(entry) = self.children.occupant_mut(Kind::Worker(id)) {
            // A worker the cheaper was stopping finishes without a SIGKILL.
            entry.stop = entry.stop.filter(|stop| stop.why != Why::Cheaped);
        }
        if let Some(board) = self.scoreboard.worker(id) {
            board.set_cheap(cheap);
        }
        cheap
    }

    /// What the stats and `uwsgi.workers()` show for worker `id`: `cheap` (and pid 0) for
    /// a slot with no worker because of the cheaper or `idle`'s cheap mode.
    pub(super) fn show_cheap(&self, id: u32, cheap: bool) {
        if let Some(board) = self.scoreboard.worker(id) {
            board.set_cheap(cheap);
            if cheap && self.worker_pid(id).is_none() {
                board.set_pid(0);
            }
        }
    }

    /// How many workers run after start-up or after `idle`'s cheap mode (`cheaper-initial`,
    /// else all).
    pub(super) fn initial_workers(&self) -> u32 {
        let processes = self.processes;
        let inherited = self.cheaper.as_ref().map_or(0, |run| run.inherited);
        let initial = self.config.cheaper.initial_workers(processes);
        if inherited > initial {
            tracing::info!(
                "cheaper: starting {} workers, as many as ran before the reload",
                inherited.min(processes)
            );
        }
        initial.max(inherited.min(processes))
    }

    /// Before a re-exec: tell the next master how many workers run.
    pub(super) fn pass_running_on(&self) {
        if self.cheaper.is_some() {
            let running = self
                .worker_ids()
                .filter(|&id| self.worker_pid(id).is_some() && !self.is_cheaped(id))
                .count();
            std::env::set_var(RUNNING_ENV, running.to_string());
        }
    }

    /// The dead-worker path asks: a cheaped worker exited. It is not respawned.
    pub(super) fn reap_cheaped(&mut self, id: u32, pid: Pid, how: ExitKind) -> bool {
        if !self.is_cheaped(id) {
            return false;
        }
        if let Some(board) = self.scoreboard.worker(id) {
            board.set_pid(0);
        }
        self.children.cancel_respawn(Kind::Worker(id));
        tracing::info!(worker = id, pid, %how, "worker {id} cheaped (pid {pid} exited)");
        true
    }

    /// Master FIFO `+` / `-`: one more or one fewer worker at the next cycle.
    pub(super) fn cheaper_fifo(&mut self, delta: i64) {
        match self.cheaper.as_mut() {
            Some(run) => run.decide.manual(delta),
            None => tracing::warn!(
                "master fifo `{}`: the worker count is fixed because `cheaper` is not set; ignoring it",
                if delta > 0 { '+' } else { '-' }
            ),
        }
    }

    /// Once per cycle (a second), outside reloads, shutdowns, pause and `idle`'s cheap mode.
    pub(super) fn cheaper_tick(&mut self, now: Instant) -> Result<(), RunVassalError> {
        let Some(run) = self.cheaper.as_mut() else {
            return Ok(());
        };
        if now < run.next_cycle {
            return Ok(());
        }
        // A steady cadence: the next cycle a second after the previous one was due, not
        // after this (possibly late) wake-up.
        let next = run.next_cycle + Duration::from_secs(1);
        run.next_cycle = if next > now {
            next
        } else {
            now + Duration::from_secs(1)
        };
        if self.phase != Phase::Running || self.paused || self.is_cheap() {
            return Ok(());
        }
        let seen = self.observe(now);
        let Some(run) = self.cheaper.as_mut() else {
            return Ok(());
        };
        let decision = run.decide.cycle(&seen);
        let verbose = self.config.cheaper.busyness.verbose;
        if decision.is_news() || verbose {
            let count = |state| seen.slots.iter().filter(|s| s.state == state).count();
            tracing::info!(
                algorithm = decision.algorithm,
                active = count(SlotState::Active),
                busy = seen
                    .slots
                    .iter()
                    .filter(|s| s.state == SlotState::Active && s.busy)
                    .count(),
                cheap = count(SlotState::Cheap),
                backlog = seen.backlog,
                spawn = ?decision.spawn,
                stop = ?decision.stop,
                "cheaper {}: {}; {}",
                decision.algorithm,
                decision.saw,
                decision.did()
            );
        }
        for id in decision.stop {
            self.cheap_worker(id, now);
        }
        for id in decision.spawn {
            self.decheap(id)?;
        }
        Ok(())
    }

    fn observe(&self, now: Instant) -> Observation {
        // The scoreboard's request starts are on `CLOCK_MONOTONIC`.
        let clock_us = sys::clock::monotonic_us();
        let mut rss = 0;
        let slots = self
            .worker_ids()
            .map(|id| {
                let snapshot = self.scoreboard.worker(id).map(|w| w.snapshot());
                let state = match (self.is_cheaped(id), self.worker_pid(id)) {
                    (true, None) => SlotState::Cheap,
                    (false, Some(pid)) => {
                        if self.config.cheaper.rss_limit_soft > 0 {
                            rss += sys::process::rss_bytes(pid).unwrap_or(0);
                        }
                        SlotState::Active
                    }
                    _ => SlotState::Other,
                };
                SlotView {
                    state,
                    busy: snapshot.as_ref().is_some_and(|s| s.busy()),
                    stoppable: self.worker_ready(id) && !self.upkeep.replacements.is_pending(id),
                    busy_us: snapshot.map_or(0, |s| s.busy_time_us(clock_us)),
                }
            })
            .collect();
        let backlog = self
            .sockets
            .iter()
            .filter_map(|s| {
                sys::net::listen_queue(s.fd.as_fd())
                    .or_else(|| sys::sock_diag::unix_listen_queue(s.fd.as_fd()))
            })
            .map(|(queue, _)| u64::from(queue))
            .max()
            .unwrap_or(0);
        let origin = self.cheaper.as_ref().map_or(now, |run| run.origin);
        Observation {
            now_us: now.saturating_duration_since(origin).as_micros() as u64,
            slots,
            backlog,
            rss: (self.config.cheaper.rss_limit_soft > 0).then_some(rss),
        }
    }

    /// Stops worker `id` gracefully and keeps its slot cheap.
    fn cheap_worker(&mut self, id: u32, now: Instant) {
        let Some(pid) = self.worker_pid(id) else {
            return;
        };
        if let Some(run) = self.cheaper.as_mut() {
            run.cheap[id as usize - 1] = true;
        }
        if let Some(board) = self.scoreboard.worker(id) {
            board.set_cheap(true);
        }
        self.children.cancel_respawn(Kind::Worker(id));
        let deadline = now + self.config.worker_reload_mercy;
        self.stop_child(pid, libc::SIGTERM, Why::Cheaped, deadline);
    }

    /// Spawns a worker into worker `id`'s cheap slot.
    fn decheap(&mut self, id: u32) -> Result<(), RunVassalError> {
        if self.worker_pid(id).is_some() {
            return Ok(());
        }
        if let Some(run) = self.cheaper.as_mut() {
            run.cheap[id as usize - 1] = false;
        }
        if let Some(board) = self.scoreboard.worker(id) {
            board.set_cheap(false);
            // A slot that ran before counts a respawn, as in uWSGI.
            if board.snapshot().respawn_count > 0 {
                self.children.count_respawn(Kind::Worker(id));
            }
        }
        self.spawn(id)
    }
}
