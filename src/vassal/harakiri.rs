//! The master's side of harakiri: find requests running past `harakiri` (or past the
//! app's `uwsgi.set_user_harakiri`) on the scoreboard, and end their worker in two steps.
//!
//! 1. Graceful phase: log uWSGI's `*** HARAKIRI ON WORKER …` block naming each stuck core
//!    with its request, mark those cores in the scoreboard and send the worker SIGUSR2.
//!    The worker answers their clients 504 and logs their Python stacks
//!    (`worker/harakiri.rs`); its other threads keep serving.
//! 2. After `harakiri-graceful-timeout`, SIGKILL; the master's usual respawn follows. If
//!    every condemned request finished during the grace, the worker is spared: it is
//!    healthy again and killing it would only cut its other requests.
//!
//! Checked on every turn of the master's loop (at least once a second), so a deadline is
//! noticed within a second, as in uWSGI. Every live process is checked in its own
//! scoreboard bank, workers being replaced as well as their replacements. Deadlines are on
//! `CLOCK_MONOTONIC`, so an NTP step does not condemn every busy worker. This module does
//! not respawn anything.

use std::time::{Duration, Instant};

use crate::sys;
use crate::sys::clock;
use crate::sys::process::Pid;
use crate::worker::scoreboard::{CoreSnapshot, Scoreboard};

#[derive(Debug, Clone)]
pub struct HarakiriSettings {
    pub timeout: Option<Duration>,
    pub grace: Duration,
    pub verbose: bool,
    /// `harakiri-queue-threshold`: a stuck request is ended only while the listen queue
    /// holds at least this many connections (0: always).
    pub queue_threshold: u64,
}

/// One live worker process, as the master knows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Live {
    pub id: u32,
    pub pid: Pid,
    /// Its scoreboard bank.
    pub bank: usize,
}

/// A worker in its graceful phase.
#[derive(Debug)]
struct Condemned {
    id: u32,
    pid: Pid,
    bank: usize,
    kill_at: Instant,
    /// SIGKILL sent; the entry stays until the master reaps the pid, so that the stuck
    /// request is not condemned a second time meanwhile.
    killed: bool,
    /// `(core, request start)` of each stuck request.
    requests: Vec<(usize, u64)>,
}

pub struct Harakiri {
    settings: HarakiriSettings,
    condemned: Vec<Condemned>,
    /// The listen queue last measured, for `queue_threshold`.
    backlog: u64,
    /// Workers whose harakiri was skipped for the threshold, each logged once.
    skipped: Vec<Pid>,
}

impl Harakiri {
    pub fn new(settings: HarakiriSettings) -> Self {
        Harakiri {
            settings,
            condemned: Vec::new(),
            backlog: 0,
            skipped: Vec::new(),
        }
    }

    /// The deepest listen queue now, for `harakiri-queue-threshold`.
    pub fn set_backlog(&mut self, backlog: u64) {
        self.backlog = backlog;
    }

    /// When the loop must wake next for a pending kill.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.condemned
            .iter()
            .filter(|c| !c.killed)
            .map(|c| c.kill_at)
            .min()
    }

    /// One check of every live worker process.
    pub fn check(&mut self, scoreboard: &Scoreboard, workers: &[Live]) {
        let now = Instant::now();
        let now_us = clock::monotonic_us();
        self.condemned
            .retain(|c| workers.iter().any(|w| w.pid == c.pid));
        self.skipped
            .retain(|pid| workers.iter().any(|w| w.pid == *pid));
        self.finish_graceful(scoreboard, now);
        for &Live { id, pid, bank } in workers {
            if self.condemned.iter().any(|c| c.pid == pid) {
                continue;
            }
            let Some(slot) = scoreboard.process(id, bank) else {
                continue;
            };
            let snapshot = slot.snapshot();
            let stuck: Vec<&CoreSnapshot> = snapshot
                .cores
                .iter()
                .filter(|core| self.past_deadline(core, now_us))
                .collect();
            if stuck.is_empty() {
                continue;
            }
            let threshold = self.settings.queue_threshold;
            if threshold > 0 && self.backlog < threshold {
                // uWSGI's `uwsgi_master_check_harakiri`: no queue pressure, no harakiri.
                if !self.skipped.contains(&pid) {
                    self.skipped.push(pid);
                    tracing::warn!(
                        "HARAKIRI: Skipping harakiri on worker {id}. Listen queue is smaller than the threshold ({} < {threshold})",
                        self.backlog
                    );
                }
                continue;
            }
            self.condemn(scoreboard, Live { id, pid, bank }, &stuck, now);
        }
    }

    fn past_deadline(&self, core: &CoreSnapshot, now_us: u64) -> bool {
        if !core.in_request || core.request_start_us == 0 {
            return false;
        }
        let from_option = self
            .settings
            .timeout
            .map(|t| core.request_start_us.saturating_add(t.as_micros() as u64));
        let from_app = (core.user_deadline_us != 0).then_some(core.user_deadline_us);
        match (from_option, from_app) {
            (Some(a), Some(b)) => now_us >= a.min(b),
            (Some(deadline), None) | (None, Some(deadline)) => now_us >= deadline,
            (None, None) => false,
        }
    }

    fn condemn(
        &mut self,
        scoreboard: &Scoreboard,
        Live { id, pid, bank }: Live,
        stuck: &[&CoreSnapshot],
        now: Instant,
    ) {
        let graceful = !self.settings.grace.is_zero();
        tracing::error!(
            "*** HARAKIRI ON WORKER {id} (pid: {pid}, try: 1, graceful: {}) ***",
            if graceful { "yes" } else { "no" }
        );
        if self.settings.verbose {
            log_verbose(pid, stuck);
        }
        tracing::error!("HARAKIRI !!! worker {id} status !!!");
        for core in stuck {
            tracing::error!(
                "HARAKIRI [core {}] {} - {} since {} (thread {}, running {:.1} s)",
                core.id,
                if core.remote.is_empty() {
                    "-"
                } else {
                    &core.remote
                },
                core.request,
                clock::unix_us_of(core.request_start_us) / 1_000_000,
                core.tid,
                clock::monotonic_us().saturating_sub(core.request_start_us) as f64 / 1e6,
            );
        }
        tracing::error!("HARAKIRI !!! end of worker {id} status !!!");
        let first = stuck.first().map(|c| c.id).unwrap_or(0);
        tracing::error!("HARAKIRI triggered by worker {id} core {first} !!!");
        if let Some(slot) = scoreboard.process(id, bank) {
            slot.count_harakiri();
            for core in stuck {
                if let Some(core_slot) = slot.core(core.id) {
                    core_slot.condemn(core.request_start_us);
                }
            }
        }
        let signal = if graceful {
            libc::SIGUSR2
        } else {
            libc::SIGKILL
        };
        let _ = sys::signal::kill(pid, signal);
        self.condemned.push(Condemned {
            id,
            pid,
            bank,
            kill_at: now + self.settings.grace,
            killed: !graceful,
            requests: stuck.iter().map(|c| (c.id, c.request_start_us)).collect(),
        });
    }

    /// Kills workers whose grace ran out, and spares those whose stuck requests all ended.
    fn finish_graceful(&mut self, scoreboard: &Scoreboard, now: Instant) {
        self.condemned.retain_mut(|condemned| {
            if condemned.killed {
                return true;
            }
            let still_stuck = scoreboard
                .process(condemned.id, condemned.bank)
                .is_some_and(|slot| {
                condemned.requests.iter().any(|&(core, start)| {
                    slot.core(core).is_some_and(|c| {
                        let snapshot = c.snapshot(core);
                        snapshot.in_request && snapshot.request_start_us == start
                    })
                })
            });
            if !still_stuck {
                tracing::warn!(
                    "HARAKIRI: worker {} (pid: {}) finished its stuck request during the grace period; not killing it",
                    condemned.id,
                    condemned.pid
                );
                return false;
            }
            if now < condemned.kill_at {
                return true;
            }
            tracing::error!(
                "*** HARAKIRI ON WORKER {} (pid: {}, try: 2, graceful: no) *** killing it (SIGKILL) after harakiri-graceful-timeout",
                condemned.id,
                condemned.pid
            );
            let _ = sys::signal::kill(condemned.pid, libc::SIGKILL);
            condemned.killed = true;
            true
        });
    }
}

/// `harakiri-verbose`: what the stuck threads are doing in the kernel. uWSGI shows the
/// process's main thread; we show each stuck request thread.
fn log_verbose(pid: Pid, stuck: &[&CoreSnapshot]) {
    for core in stuck {
        let task = format!("/proc/{pid}/task/{}", core.tid);
        let read = |name: &str| {
            std::fs::read_to_string(format!("{task}/{name}"))
                .map(|text| text.trim().to_string())
                .unwrap_or_else(|e| format!("({e})"))
        };
        tracing::error!(
            "HARAKIRI: -- syscall> {} (core {}, thread {})",
            read("syscall"),
            core.id,
            core.tid
        );
        tracing::error!(
            "HARAKIRI: -- wchan> {} (core {}, thread {})",
            read("wchan"),
            core.id,
            core.tid
        );
    }
}
