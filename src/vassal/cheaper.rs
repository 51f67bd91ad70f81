//! The cheaper subsystem's decisions (`cheaper`, `cheaper-algo`): from what the scoreboard
//! and the listen queue show at one cycle, and the algorithm's own memory, which workers to
//! spawn and which to stop. Pure: no clock, no signals, no /proc. The master builds an
//! [`Observation`] once a cycle (a second, uWSGI's `master-interval`), calls
//! [`Cheaper::cycle`], and carries the [`Decision`] out through its ordinary spawn and
//! graceful-stop paths.
//!
//! The algorithms are uWSGI's (`core/master_utils.c`: `spare`, `spare2`, `backlog`,
//! `manual`; `plugins/cheaper_busyness`), cycle for cycle, with these deliberate differences:
//! - the bounds always hold: never fewer running workers than `cheaper` (uWSGI's FIFO `-` and
//!   `cheaper-rss-limit-hard` can go below it), never more than `processes`;
//! - a worker is stopped only if it is idle, the highest id first (uWSGI picks the oldest
//!   idle one), so the running workers stay 1..n; an algorithm's stop with no idle worker
//!   is dropped (there is load); a FIFO `-` with every worker busy stops the highest busy
//!   one, gracefully (uWSGI waits for an idle one, which under steady load never comes);
//! - busyness reads each worker's busy time from the scoreboard including the request in
//!   flight, so a request longer than a cycle counts for what it took in that cycle (uWSGI
//!   only sees finished requests and marks a worker 100% busy when it saw it busy but
//!   nothing finished).
//!
//! It does not track processes: a slot's state comes in with each observation.

use crate::config::{CheaperAlgo, CheaperConfig};

/// What one worker slot is at this cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// A worker runs (or is starting) and is not being stopped.
    Active,
    /// Cheap: no process, may be spawned.
    Cheap,
    /// Neither: being stopped, or waiting to be respawned.
    Other,
}

/// One slot as the scoreboard shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotView {
    pub state: SlotState,
    /// Any of its threads is in a request.
    pub busy: bool,
    /// An active worker that may be stopped: it accepts (a worker still starting, or
    /// replacing another, is left alone).
    pub stoppable: bool,
    /// Microseconds spent in requests by the workers of this slot so far, the ones in
    /// flight included (monotonic while the slot's worker lives).
    pub busy_us: u64,
}

/// What the master sees at one cycle.
#[derive(Debug, Clone)]
pub struct Observation {
    /// A monotonic clock in microseconds.
    pub now_us: u64,
    /// Indexed by worker id - 1.
    pub slots: Vec<SlotView>,
    /// The longest listen queue over the vassal's sockets (connections waiting for accept).
    pub backlog: u64,
    /// The running workers' total RSS in bytes, when an RSS limit is set.
    pub rss: Option<u64>,
}

impl Observation {
    fn count(&self, state: SlotState) -> u32 {
        self.slots.iter().filter(|s| s.state == state).count() as u32
    }

    fn active(&self) -> u32 {
        self.count(SlotState::Active)
    }

    fn busy(&self) -> u32 {
        self.slots
            .iter()
            .filter(|s| s.state == SlotState::Active && s.busy)
            .count() as u32
    }

    fn cheap(&self) -> u32 {
        self.count(SlotState::Cheap)
    }
}

/// What to do this cycle, and why, for the log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub algorithm: &'static str,
    /// What the algorithm saw, in words.
    pub saw: String,
    /// Worker ids to spawn (cheap slots, lowest first).
    pub spawn: Vec<u32>,
    /// Worker ids to stop gracefully (idle, highest first).
    pub stop: Vec<u32>,
    /// Something worth a log line even though nothing changes (a limit held a spawn back,
    /// a multiplier changed), or the verbose figures.
    pub note: Option<String>,
}

impl Decision {
    /// Whether the master has something to log.
    pub fn is_news(&self) -> bool {
        !self.spawn.is_empty() || !self.stop.is_empty() || self.note.is_some()
    }

    /// What was done, in words: `spawning workers 3, 4`, `stopping worker 8`, `no change`.
    pub fn did(&self) -> String {
        let list = |ids: &[u32]| {
            ids.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let plural = |ids: &[u32]| if ids.len() == 1 { "worker" } else { "workers" };
        let mut parts = Vec::new();
        if !self.spawn.is_empty() {
            parts.push(format!(
                "spawning {} {}",
                plural(&self.spawn),
                list(&self.spawn)
            ));
        }
        if !self.stop.is_empty() {
            parts.push(format!(
                "stopping {} {}",
                plural(&self.stop),
                list(&self.stop)
            ));
        }
        if parts.is_empty() {
            parts.push("no change".to_string());
        }
        if let Some(note) = &self.note {
            parts.push(note.clone());
        }
        parts.join("; ")
    }
}

/// The algorithm's verdict before the bounds: how many workers to add (positive) or remove.
struct Verdict {
    delta: i64,
    saw: String,
    note: Option<String>,
}

impl Verdict {
    fn new(delta: i64, saw: String) -> Self {
        Verdict {
            delta,
            saw,
            note: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Spare {
    overload_count: u64,
    idle_count: u64,
}

#[derive(Debug, Clone, Default)]
struct Spare2 {
    idle_count: u64,
}

#[derive(Debug, Clone)]
struct Busyness {
    /// Each slot's `busy_us` at the last measurement.
    last_values: Vec<u64>,
    /// When busyness was last measured (µs).
    tcheck: u64,
    /// When a worker was last stopped for low busyness.
    last_cheaped: Option<u64>,
    /// Before this, no worker is stopped for low busyness.
    next_cheap: u64,
    min_multi: u64,
    cheap_multi: u64,
    /// 1: spawned last, 2: stopped last (uWSGI's values).
    last_action: u8,
    tolerance_counter: u64,
    emergency_workers: u64,
    backlog_nonzero_since: Option<u64>,
}

#[derive(Debug, Clone)]
enum State {
    Spare(Spare),
    Spare2(Spare2),
    Backlog,
    Busyness(Busyness),
    Manual,
}

/// The cheaper subsystem's memory between cycles.
#[derive(Debug, Clone)]
pub struct Cheaper {
    config: CheaperConfig,
    processes: u32,
    state: State,
    /// FIFO `+`/`-` for the next cycle.
    manual: i64,
}

impl Cheaper {
    pub fn new(config: &CheaperConfig, processes: u32, now_us: u64) -> Cheaper {
        let state = match config.algo {
            CheaperAlgo::Spare => State::Spare(Spare::default()),
            CheaperAlgo::Spare2 => State::Spare2(Spare2::default()),
            CheaperAlgo::Backlog => State::Backlog,
            CheaperAlgo::Manual => State::Manual,
            CheaperAlgo::Busyness => {
                let mut busyness = Busyness {
                    last_values: vec![0; processes as usize],
                    tcheck: now_us,
                    last_cheaped: None,
                    next_cheap: 0,
                    min_multi: config.busyness.multiplier,
                    cheap_multi: config.busyness.multiplier,
                    last_action: 0,
                    tolerance_counter: 0,
                    emergency_workers: 0,
                    backlog_nonzero_since: None,
                };
                busyness.set_next_cheap_time(config, now_us);
                State::Busyness(busyness)
            }
        };
        Cheaper {
            config: config.clone(),
            processes,
            state,
            manual: 0,
        }
    }

    pub fn algorithm(&self) -> &'static str {
        self.config.algo.name()
    }

    /// The master FIFO's `+` (1) or `-` (-1), carried out at the next cycle.
    pub fn manual(&mut self, delta: i64) {
        self.manual += delta;
    }

    /// One cycle: what to spawn and what to stop.
    pub fn cycle(&mut self, seen: &Observation) -> Decision {
        let mut can_spawn = true;
        let mut forced: Option<Verdict> = None;
        let limits = &self.config;
        if let (Some(rss), true) = (seen.rss, limits.rss_limit_soft > 0) {
            if limits.rss_limit_hard > 0 && seen.active() > 1 && rss >= limits.rss_limit_hard {
                forced = Some(Verdict::new(
                    -1,
                    format!(
                        "workers' total RSS {} MB is above cheaper-rss-limit-hard ({} MB)",
                        rss >> 20,
                        limits.rss_limit_hard >> 20
                    ),
                ));
                can_spawn = false;
            } else if rss >= limits.rss_limit_soft {
                can_spawn = false;
            }
        }
        let manual = std::mem::take(&mut self.manual);
        let from_fifo = forced.is_none() && manual != 0;
        let verdict = match forced {
            Some(verdict) => verdict,
            None if from_fifo => {
                let mut verdict = Verdict::new(manual, format!("master fifo asks for {manual:+}"));
                if manual > 0 && !can_spawn {
                    verdict.delta = 0;
                    verdict.note = Some("cheaper-rss-limit-soft reached, not spawning".into());
                }
                verdict
            }
            None => self.run_algorithm(seen, can_spawn),
        };
        let mut decision = Decision {
            algorithm: if from_fifo {
                "manual"
            } else {
                self.algorithm()
            },
            saw: verdict.saw,
            note: verdict.note,
            ..Decision::default()
        };
        // The algorithms obey `can_spawn` themselves (uWSGI checks that they did).
        if verdict.delta > 0 && can_spawn {
            decision.spawn = seen
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.state == SlotState::Cheap)
                .map(|(index, _)| index as u32 + 1)
                .take(verdict.delta as usize)
                .collect();
        } else if verdict.delta < 0 {
            let wanted = verdict.delta.unsigned_abs() as usize;
            let above_floor = seen.active().saturating_sub(self.config.count) as usize;
            let stoppable = |busy: bool| {
                seen.slots
                    .iter()
                    .enumerate()
                    .rev()
                    .filter(move |(_, s)| {
                        s.state == SlotState::Active && s.stoppable && s.busy == busy
                    })
                    .map(|(index, _)| index as u32 + 1)
            };
            // Idle workers first. The operator's `-` takes a busy one when none is idle (it
            // finishes its requests first); uWSGI waits for an idle one, which under steady
            // load never comes. An algorithm's stop with every worker busy is dropped.
            let busy_too = if from_fifo {
                Some(stoppable(true))
            } else {
                None
            };
            decision.stop = stoppable(false)
                .chain(busy_too.into_iter().flatten())
                .take(wanted.min(above_floor))
                .collect();
            if from_fifo && wanted > decision.stop.len() && above_floor <= decision.stop.len() {
                decision.note = Some(format!("not below cheaper = {} workers", self.config.count));
            }
        }
        debug_assert!(decision.spawn.len() as u32 <= seen.cheap());
        debug_assert!(self.processes as usize >= seen.slots.len());
        decision
    }

    fn run_algorithm(&mut self, seen: &Observation, can_spawn: bool) -> Verdict {
        let mut verdict = run(
            &mut self.state,
            &self.config,
            self.processes,
            seen,
            can_spawn,
        );
        if !can_spawn {
            // Would it have spawned without the soft limit? Asked of a copy of its counters,
            // so that the operator learns why the count does not follow the load.
            let mut probe = self.state.clone();
            let wanted = run(&mut probe, &self.config, self.processes, seen, true);
            if wanted.delta > 0 {
                verdict.note = Some(format!(
                    "workers' total RSS {} MB is above cheaper-rss-limit-soft ({} MB), not spawning",
                    seen.rss.unwrap_or(0) >> 20,
                    self.config.rss_limit_soft >> 20
                ));
            }
        }
        verdict
    }
}

fn run(
    state: &mut State,
    config: &CheaperConfig,
    processes: u32,
    seen: &Observation,
    can_spawn: bool,
) -> Verdict {
    match state {
        State::Spare(spare) => spare.cycle(config, seen, can_spawn),
        State::Spare2(spare2) => spare2.cycle(config, seen, can_spawn),
        State::Backlog => backlog(config, seen, can_spawn),
        State::Busyness(busyness) => busyness.cycle(config, processes, seen, can_spawn),
        State::Manual => Verdict::new(0, "manual: waiting for the master fifo".into()),
    }
}

/// Seconds from the config in µs, saturating (a huge setting must not overflow the master).
fn micros(seconds: u64) -> u64 {
    seconds.saturating_mul(1_000_000)
}

/// At most `step` of the cheap slots (uWSGI's `decheaped` loop).
fn decheap(seen: &Observation, step: u32) -> i64 {
    i64::from(seen.cheap().min(step.max(1)))
}

impl Spare {
    fn cycle(&mut self, config: &CheaperConfig, seen: &Observation, can_spawn: bool) -> Verdict {
        let overload = config.overload.max(1);
        let (active, busy) = (seen.active(), seen.busy());
        if active > busy {
            self.overload_count = self.overload_count.saturating_sub(1);
        } else {
            self.overload_count += 1;
            self.idle_count = 0;
        }
        let saw = format!(
            "{busy} of {active} workers busy, overloaded for {} of {overload} cycles",
            self.overload_count
        );
        if can_spawn && self.overload_count >= overload {
            self.overload_count = 0;
            return Verdict::new(decheap(seen, config.step), saw);
        }
        if self.overload_count == 0 {
            if active > busy && active - busy == 1 {
                // Stable: exactly one spare worker.
                return Verdict::new(0, saw);
            }
            self.idle_count += 1;
            if active > config.count && self.idle_count % overload == 0 {
                let saw = format!(
                    "{} of {active} workers idle for {} cycles",
                    active - busy,
                    self.idle_count
                );
                return Verdict::new(-1, saw);
            }
        }
        Verdict::new(0, saw)
    }
}

impl Spare2 {
    fn cycle(&mut self, config: &CheaperConfig, seen: &Observation, can_spawn: bool) -> Verdict {
        let (active, busy) = (seen.active(), seen.busy());
        let idle = active - busy;
        let saw = format!(
            "{idle} idle and {busy} busy workers, {} cheap, wanting {} idle",
            seen.cheap(),
            config.count
        );
        if idle < config.count {
            self.idle_count = 0;
            if !can_spawn {
                return Verdict::new(0, saw);
            }
            let spawn = (config.count - idle).min(seen.cheap()).min(config.step());
            return Verdict::new(i64::from(spawn), saw);
        }
        if idle == config.count {
            self.idle_count = 0;
            return Verdict::new(0, saw);
        }
        self.idle_count += 1;
        if self.idle_count < config.idle {
            return Verdict::new(0, saw);
        }
        self.idle_count = 0;
        let saw = format!("{saw}, for {} cycles", config.idle);
        Verdict::new(-1, saw)
    }
}

fn backlog(config: &CheaperConfig, seen: &Observation, can_spawn: bool) -> Verdict {
    let active = seen.active();
    let saw = format!(
        "{} connections waiting in the listen queue (threshold {}), {active} workers",
        seen.backlog, config.overload
    );
    if can_spawn && seen.backlog > config.overload {
        return Verdict::new(decheap(seen, config.step), saw);
    }
    if seen.backlog < config.overload && active > config.count {
        return Verdict::new(-1, saw);
    }
    Verdict::new(0, saw)
}

impl Busyness {
    fn set_next_cheap_time(&mut self, config: &CheaperConfig, now_us: u64) {
        let multiplier = if self.emergency_workers > 0 {
            config.busyness.backlog_multiplier
        } else {
            self.cheap_multi
        };
        self.next_cheap = now_us.saturating_add(micros(config.overload.saturating_mul(multiplier)));
    }

    fn decrease_multi(&mut self, notes: &mut Vec<String>) {
        if self.cheap_multi > self.min_multi {
            self.cheap_multi -= 1;
            notes.push(format!(
                "decreasing cheaper multiplier to {}",
                self.cheap_multi
            ));
        }
    }

    fn emergency(&mut self, config: &CheaperConfig, seen: &Observation, why: String) -> Verdict {
        self.cheap_multi = self.min_multi;
        self.last_action = 1;
        let spawn = seen.cheap().min(config.busyness.backlog_step.max(1));
        self.set_next_cheap_time(config, seen.now_us);
        self.emergency_workers += u64::from(spawn);
        let mut verdict = Verdict::new(i64::from(spawn), why);
        verdict.note = Some(if spawn > 0 {
            format!("{} emergency workers running", self.emergency_workers)
        } else {
            "already at processes".to_string()
        });
        verdict
    }

    fn cycle(
        &mut self,
        config: &CheaperConfig,
        processes: u32,
        seen: &Observation,
        can_spawn: bool,
    ) -> Verdict {
        let settings = &config.busyness;
        let t = micros(config.overload.max(1));
        let now = seen.now_us;
        let active = seen.active();
        let backlog = seen.backlog;
        let backlog_alert = can_spawn && backlog > settings.backlog_alert && active < processes;
        let verdict = if now.saturating_sub(self.tcheck) >= t {
            self.tcheck = now;
            let mut total = 0;
            for (index, slot) in seen.slots.iter().enumerate() {
                let last = self.last_values.get(index).copied().unwrap_or(0);
                if slot.state == SlotState::Active {
                    total += (slot.busy_us.saturating_sub(last).saturating_mul(100) / t).min(100);
                }
                if let Some(value) = self.last_values.get_mut(index) {
                    *value = slot.busy_us;
                }
            }
            let average = if active > 0 {
                total / u64::from(active)
            } else {
                0
            };
            let saw = format!(
                "{}s average busyness of {active} workers is {average}% (min {}%, max {}%), {backlog} connections waiting",
                config.overload, settings.min, settings.max
            );
            let mut notes = Vec::new();
            if settings.verbose {
                notes.push(format!(
                    "multiplier {}, next cheap in {} s",
                    self.cheap_multi,
                    self.next_cheap.saturating_sub(now) / 1_000_000
                ));
            }
            let mut verdict = if average > settings.max {
                self.tolerance_counter = 0;
                let spawn = if can_spawn {
                    decheap(seen, config.step)
                } else {
                    0
                };
                if spawn > 0 {
                    self.last_action = 1;
                    let too_soon = self.last_cheaped.is_some_and(|at| {
                        now.saturating_sub(at) / config.overload.max(1) / 1_000_000
                            <= self.cheap_multi
                    });
                    if too_soon {
                        self.cheap_multi = self.cheap_multi.saturating_add(settings.penalty);
                        notes.push(format!(
                            "workers needed back too soon, cheaper multiplier raised to {}",
                            self.cheap_multi
                        ));
                    } else {
                        self.decrease_multi(&mut notes);
                    }
                    self.set_next_cheap_time(config, now);
                }
                Verdict::new(spawn, saw)
            } else if backlog_alert {
                self.emergency(config, seen, saw)
            } else if average < settings.min {
                if active <= 1 {
                    Verdict::new(0, saw)
                } else {
                    self.tolerance_counter = 0;
                    if active > config.count && now >= self.next_cheap {
                        if self.last_action == 2 {
                            self.decrease_multi(&mut notes);
                        }
                        self.set_next_cheap_time(config, now);
                        self.last_cheaped = Some(now);
                        self.last_action = 2;
                        self.emergency_workers = self.emergency_workers.saturating_sub(1);
                        Verdict::new(-1, saw)
                    } else {
                        Verdict::new(0, saw)
                    }
                }
            } else {
                if active > 1 {
                    self.emergency_workers = self.emergency_workers.saturating_sub(1);
                    self.tolerance_counter += 1;
                    if self.tolerance_counter >= 3 {
                        self.set_next_cheap_time(config, now);
                    } else {
                        self.next_cheap = self.next_cheap.saturating_add(micros(config.overload));
                    }
                }
                Verdict::new(0, saw)
            };
            if !notes.is_empty() {
                let mut all = notes;
                all.extend(verdict.note.take());
                verdict.note = Some(all.join("; "));
            }
            verdict
        } else if backlog_alert {
            let saw = format!(
                "{backlog} connections waiting in the listen queue (alert above {})",
                settings.backlog_alert
            );
            self.emergency(config, seen, saw)
        } else {
            Verdict::new(0, format!("{backlog} connections waiting"))
        };
        // The listen queue's non-empty timer runs every cycle. (uWSGI looks at it only
        // between two measurements, so with `cheaper-overload = 1` never.)
        if backlog == 0 {
            self.backlog_nonzero_since = None;
            return verdict;
        }
        let Some(since) = self.backlog_nonzero_since else {
            self.backlog_nonzero_since = Some(now);
            return verdict;
        };
        let waited = now.saturating_sub(since);
        if verdict.delta == 0 && can_spawn && waited >= settings.backlog_nonzero.as_micros() as u64
        {
            self.backlog_nonzero_since = Some(now);
            let saw = format!(
                "{}; the listen queue was not empty for {} s",
                verdict.saw,
                waited / 1_000_000
            );
            return self.emergency(config, seen, saw);
        }
        verdict
    }
}

#[cfg(test)]
mod tests;
