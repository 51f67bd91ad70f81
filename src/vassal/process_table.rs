//! The vassal master's process table: one entry per live child, whatever its kind (a worker,
//! a worker being replaced, a worker of the master before a re-exec, a spooler, a mule, an
//! attached daemon, a cron command, the fastrouter's gateway), and one seat per child the
//! vassal is meant to have running (worker ids, spooler slots, mules, daemons, the gateway),
//! with that seat's respawn time, count and rule.
//!
//! Everything the master decides about its children in the same way for every kind is here,
//! once: who a reaped pid was and what its exit means for its kind ([`Kind::policy`]), when a
//! seat is filled again (`respawn.rs`: the fork-bomb guard, one per kind, or a daemon's
//! throttle), and the mercy deadlines of children told to stop (SIGKILL once the deadline
//! passes, sent once).
//!
//! It decides and keeps the books; it must not fork, signal, log or read a clock (the times
//! come in as arguments), so every decision is tested here without a process. The master
//! (`master/children.rs`) carries the decisions out; what a kind does besides (a worker's
//! scoreboard, a spooler's board, the cheaper's slots) stays with that kind.

use std::collections::HashMap;
use std::mem::Discriminant;
use std::time::{Duration, Instant};

use super::respawn::{RespawnGuard, Throttle};
use crate::config::Config;
use crate::sys::process::Pid;

/// What a child is, and which one of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A worker, by id (1-based): its seat's occupant or, while [`State::Retiring`], the
    /// worker a newer one of the same id replaces.
    Worker(u32),
    /// A child of the master that re-executed itself for a reload (a worker, spooler or mule
    /// of that generation; which one is not known after the exec). It finishes and leaves.
    Previous,
    /// A spooler, by its slot in the spooler board.
    Spooler(usize),
    /// A mule, by index (0-based; uWSGI's mule id is index + 1).
    Mule(usize),
    /// An attached daemon's process (`attach-daemon`), by the daemon's index: the daemon
    /// itself, or for a smart daemon the process kaiser started (its launcher, or the daemon
    /// when kaiser writes its pidfile). A smart daemon's pidfile may name a process that is
    /// not a child; `daemons.rs` tracks that one.
    Daemon(usize),
    /// A `cron` command, by the command's index, while it runs.
    Cron(usize),
    /// A gateway process (the `fastrouter`), by index.
    Gateway(usize),
}

/// What an exit means for a kind of child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Its seat is filled again, after the fork-bomb guard, unless the vassal is stopping.
    RespawnUnlessStopping,
    /// Nothing takes its place; its exit is only logged.
    LogOnly,
}

impl Kind {
    pub fn policy(self) -> Policy {
        match self {
            Kind::Worker(_)
            | Kind::Spooler(_)
            | Kind::Mule(_)
            | Kind::Daemon(_)
            | Kind::Gateway(_) => Policy::RespawnUnlessStopping,
            Kind::Previous | Kind::Cron(_) => Policy::LogOnly,
        }
    }

    /// Whether the vassal's stop (and a reload's re-exec) signals it with SIGTERM/SIGINT and
    /// waits for it. A cron command is left to finish on its own, as uWSGI does; a daemon
    /// gets its own stop signal, to its process group (`daemons.rs`).
    pub fn stops_with_vassal(self) -> bool {
        !matches!(self, Kind::Cron(_) | Kind::Daemon(_))
    }

    /// Kinds share a fork-bomb guard: workers die "too fast" only counting workers.
    fn family(self) -> Discriminant<Kind> {
        std::mem::discriminant(&self)
    }
}

/// Where a child is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Forked; a worker has not said it accepts yet.
    Starting,
    /// Doing its job (a worker accepts).
    Serving,
    /// No longer its seat's occupant: a replaced worker that serves until its replacement
    /// accepts, or a child of the previous master generation. It finishes and leaves.
    Retiring,
}

/// Why a child was told to stop; names the mercy in the log line of its SIGKILL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The vassal stops (`fast`: SIGINT, else SIGTERM).
    Shutdown { fast: bool },
    /// A replaced worker whose replacement accepts (`worker-reload-mercy`).
    Replaced,
    /// A child of the previous generation, once the new workers accept (`reload-mercy`).
    PreviousGeneration,
    /// The cheaper stops an idle worker (`worker-reload-mercy`).
    Cheaped,
    /// A plain daemon stopped with the vassal or for a re-exec (`reload-mercy`); its
    /// process group gets the SIGKILL.
    DaemonStop,
}

impl Why {
    /// The log line of the SIGKILL that ends this stop's mercy.
    pub fn kill_line(self) -> &'static str {
        match self {
            Why::Shutdown { .. } => "worker did not stop within worker-reload-mercy; killing it",
            Why::Replaced => {
                "replaced worker did not finish within worker-reload-mercy; killing it"
            }
            Why::PreviousGeneration => {
                "previous-generation worker did not finish within reload-mercy; killing it"
            }
            Why::Cheaped => "cheaped worker did not finish within worker-reload-mercy; killing it",
            Why::DaemonStop => "did not stop within reload-mercy; killing its process group",
        }
    }
}

/// A child told to stop: why, and when SIGKILL follows (`None` once it was sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    pub why: Why,
    pub deadline: Option<Instant>,
}

/// One live child.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub kind: Kind,
    pub pid: Pid,
    /// How many times its seat had been respawned when it was forked (0: the first).
    pub generation: u64,
    /// The scoreboard bank it writes its cores in (workers only).
    pub bank: Option<usize>,
    pub state: State,
    /// When it was forked: a worker's lifetime, a cron command's harakiri.
    pub started: Instant,
    /// Set once it was told to stop; it keeps its state meanwhile (a stopping worker that
    /// served still finishes its requests).
    pub stop: Option<Stop>,
}

impl Entry {
    pub fn new(kind: Kind, pid: Pid, started: Instant) -> Entry {
        Entry {
            kind,
            pid,
            generation: 0,
            bank: None,
            state: State::Starting,
            started,
            stop: None,
        }
    }

    /// Its seat's current child: not retiring.
    pub fn occupies(&self, kind: Kind) -> bool {
        self.kind == kind && self.state != State::Retiring
    }
}

/// What a reaped child's exit means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Its seat is to be filled again ([`ProcessTable::schedule_respawn`]); the kind may
    /// still decide otherwise (a worker the cheaper stopped, a worker whose app failed).
    Respawn,
    /// A retiring child finished.
    Retired,
    /// The vassal is stopping: nobody takes its place.
    Stopped,
    /// It ran to its end and has no seat (a cron command).
    Finished,
}

/// How a seat is filled again after a death.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// The fork-bomb guard its kind shares.
    Guard,
    /// A daemon's quick-death throttle.
    Throttle(Throttle),
}

/// Why a respawn is not at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Late {
    OnTime,
    /// Its kind dies faster than it has seats per second.
    TooFast,
    /// A daemon's `quick_deaths`-th quick death in a row.
    Throttled {
        quick_deaths: u32,
    },
}

/// What the vassal should have running: one seat per worker id, spooler slot, mule and
/// daemon.
#[derive(Debug)]
struct Seat {
    kind: Kind,
    rule: Rule,
    respawn_at: Option<Instant>,
    respawns: u64,
    /// When its last child was started (or failed to start).
    last_start: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct ProcessTable {
    entries: Vec<Entry>,
    seats: Vec<Seat>,
    guards: HashMap<Discriminant<Kind>, RespawnGuard>,
}

impl ProcessTable {
    /// A seat for each of `kinds`; `due`: filled at the first [`ProcessTable::due`] (else
    /// the caller spawns it or leaves it empty, as workers at start-up).
    pub fn add_seats(&mut self, kinds: impl IntoIterator<Item = Kind>, due: Option<Instant>) {
        for kind in kinds {
            self.add_seat(kind, Rule::Guard, due);
        }
    }

    pub fn add_seat(&mut self, kind: Kind, rule: Rule, due: Option<Instant>) {
        self.seats.push(Seat {
            kind,
            rule,
            respawn_at: due,
            respawns: 0,
            last_start: None,
        });
    }

    /// A child was forked into `entry.kind`'s seat (or has none): it is recorded with the
    /// seat's generation, and the seat's respawn is done.
    pub fn insert(&mut self, mut entry: Entry) {
        if let Some(seat) = self.seat_mut(entry.kind) {
            seat.respawn_at = None;
            seat.last_start = Some(entry.started);
            entry.generation = seat.respawns;
        }
        self.entries.push(entry);
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.entries.iter()
    }

    pub fn get(&self, pid: Pid) -> Option<&Entry> {
        self.entries.iter().find(|e| e.pid == pid)
    }

    pub fn get_mut(&mut self, pid: Pid) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.pid == pid)
    }

    /// `kind`'s seat's current child.
    pub fn occupant(&self, kind: Kind) -> Option<&Entry> {
        self.entries.iter().find(|e| e.occupies(kind))
    }

    pub fn occupant_mut(&mut self, kind: Kind) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.occupies(kind))
    }

    pub fn pid_of(&self, kind: Kind) -> Option<Pid> {
        self.occupant(kind).map(|e| e.pid)
    }

    /// Every child the vassal's stop and a reload wait for (all but cron commands).
    pub fn stopped_with_vassal(&self) -> Vec<Pid> {
        self.entries
            .iter()
            .filter(|e| e.kind.stops_with_vassal())
            .map(|e| e.pid)
            .collect()
    }

    /// A child exited: its entry, and what that means for its kind. `None` for a pid the
    /// table does not know (the caller looks elsewhere: a daemon, the log master).
    pub fn exited(&mut self, pid: Pid, vassal_stopping: bool) -> Option<(Entry, Exit)> {
        let position = self.entries.iter().position(|e| e.pid == pid)?;
        let entry = self.entries.remove(position);
        let exit = if entry.state == State::Retiring {
            Exit::Retired
        } else if entry.kind.policy() == Policy::LogOnly {
            Exit::Finished
        } else if vassal_stopping {
            Exit::Stopped
        } else {
            Exit::Respawn
        };
        Some((entry, exit))
    }

    /// Fills `kind`'s seat again by its rule: the guard (at once, unless children of its
    /// kind die faster than there are seats of it per second: then in 2 seconds), or a
    /// daemon's throttle. Returns when, and why late.
    pub fn schedule_respawn(&mut self, kind: Kind, now: Instant) -> (Instant, Late) {
        let population = self
            .seats
            .iter()
            .filter(|s| s.kind.family() == kind.family())
            .count();
        let guard = self.guards.entry(kind.family()).or_default();
        let Some(seat) = self.seats.iter_mut().find(|s| s.kind == kind) else {
            return (now, Late::OnTime);
        };
        let (at, late) = match &mut seat.rule {
            Rule::Guard => match guard.next(now, population) {
                (at, true) => (at, Late::TooFast),
                (at, false) => (at, Late::OnTime),
            },
            Rule::Throttle(throttle) => match throttle.next(seat.last_start, now) {
                (delay, 0) => (now + delay, Late::OnTime),
                (delay, quick_deaths) => (now + delay, Late::Throttled { quick_deaths }),
            },
        };
        seat.respawns += 1;
        seat.respawn_at = Some(at);
        (at, late)
    }

    /// Starting `kind`'s child at `now` failed: it is tried again as if it had died at once.
    pub fn failed_start(&mut self, kind: Kind, now: Instant) -> (Instant, Late) {
        if let Some(seat) = self.seat_mut(kind) {
            seat.last_start = Some(now);
        }
        self.schedule_respawn(kind, now)
    }

    /// Whether `kind`'s seat waits for its respawn.
    pub fn respawn_pending(&self, kind: Kind) -> bool {
        self.seats
            .iter()
            .any(|s| s.kind == kind && s.respawn_at.is_some())
    }

    /// Counts a respawn of `kind`'s seat that did not go through a death (a replacement, a
    /// cheap slot filled again).
    pub fn count_respawn(&mut self, kind: Kind) {
        if let Some(seat) = self.seat_mut(kind) {
            seat.respawns += 1;
        }
    }

    /// How many times `kind`'s seat was respawned.
    pub fn respawns(&self, kind: Kind) -> u64 {
        self.seats
            .iter()
            .find(|s| s.kind == kind)
            .map_or(0, |s| s.respawns)
    }

    /// `kind`'s seat stays empty (cheap mode, the cheaper).
    pub fn cancel_respawn(&mut self, kind: Kind) {
        if let Some(seat) = self.seat_mut(kind) {
            seat.respawn_at = None;
        }
    }

    /// No seat is filled again (the vassal stops).
    pub fn cancel_respawns(&mut self) {
        for seat in &mut self.seats {
            seat.respawn_at = None;
        }
    }

    /// Empty seats whose respawn time has come, in seat order.
    pub fn due(&self, now: Instant) -> Vec<Kind> {
        self.seats
            .iter()
            .filter(|s| s.respawn_at.is_some_and(|at| at <= now) && self.occupant(s.kind).is_none())
            .map(|s| s.kind)
            .collect()
    }

    /// Tells the child `pid` to stop: SIGKILL is due at `deadline` unless it exits first. The
    /// caller sends the stop signal itself.
    pub fn stop(&mut self, pid: Pid, why: Why, deadline: Instant) {
        if let Some(entry) = self.get_mut(pid) {
            entry.stop = Some(Stop {
                why,
                deadline: Some(deadline),
            });
        }
    }

    /// Children of the kinds `which` accepts whose mercy ran out at `now`: each returned
    /// once, to be SIGKILLed.
    pub fn past_mercy(&mut self, now: Instant, which: impl Fn(Kind) -> bool) -> Vec<Entry> {
        let mut overdue = Vec::new();
        for entry in self.entries.iter_mut().filter(|e| which(e.kind)) {
            if let Some(stop) = &mut entry.stop {
                if stop.deadline.is_some_and(|at| now >= at) {
                    stop.deadline = None;
                    overdue.push(entry.clone());
                }
            }
        }
        overdue
    }

    /// The earliest respawn or SIGKILL due, for the loop's timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        let kills = self
            .entries
            .iter()
            .filter_map(|e| e.stop.and_then(|s| s.deadline));
        let respawns = self.seats.iter().filter_map(|s| s.respawn_at);
        kills.chain(respawns).min()
    }

    fn seat_mut(&mut self, kind: Kind) -> Option<&mut Seat> {
        self.seats.iter_mut().find(|s| s.kind == kind)
    }
}

/// How long a whole reload or shutdown may take: `reload-mercy`, but never longer than one
/// worker's `worker-reload-mercy` (0 means unset, as in uWSGI).
pub fn whole_mercy(config: &Config) -> Duration {
    if config.reload_mercy.is_zero() {
        config.worker_reload_mercy
    } else {
        config.reload_mercy.min(config.worker_reload_mercy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(workers: u32, spoolers: usize) -> ProcessTable {
        let mut table = ProcessTable::default();
        table.add_seats((1..=workers).map(Kind::Worker), None);
        table.add_seats((0..spoolers).map(Kind::Spooler), Some(Instant::now()));
        table
    }

    fn serving(kind: Kind, pid: Pid) -> Entry {
        Entry {
            state: State::Serving,
            ..Entry::new(kind, pid, Instant::now())
        }
    }

    /// (kind, state, vassal stopping) → what the exit means.
    #[test]
    fn what_an_exit_means_for_each_kind() {
        let check = |kind: Kind, state: State, stopping: bool, expected: Exit| {
            let mut table = table(2, 1);
            table.insert(Entry {
                state,
                ..serving(kind, 42)
            });
            let (entry, exit) = table.exited(42, stopping).expect("a known pid");
            assert_eq!(entry.kind, kind);
            assert_eq!(exit, expected, "{kind:?} {state:?} stopping={stopping}");
            assert!(table.get(42).is_none(), "the entry is gone");
        };
        check(Kind::Worker(1), State::Serving, false, Exit::Respawn);
        check(Kind::Worker(1), State::Starting, false, Exit::Respawn);
        check(Kind::Worker(1), State::Serving, true, Exit::Stopped);
        check(Kind::Worker(1), State::Retiring, false, Exit::Retired);
        check(Kind::Worker(1), State::Retiring, true, Exit::Retired);
        check(Kind::Previous, State::Retiring, false, Exit::Retired);
        check(Kind::Spooler(0), State::Serving, false, Exit::Respawn);
        check(Kind::Spooler(0), State::Serving, true, Exit::Stopped);
        check(Kind::Mule(0), State::Serving, false, Exit::Respawn);
        check(Kind::Mule(0), State::Serving, true, Exit::Stopped);
        check(Kind::Cron(3), State::Serving, false, Exit::Finished);
        check(Kind::Cron(3), State::Serving, true, Exit::Finished);
        assert_eq!(table(1, 0).exited(7, false), None, "an unknown pid");
    }

    #[test]
    fn a_stop_waits_for_every_kind_but_cron_commands() {
        let mut table = table(1, 1);
        for (kind, pid) in [
            (Kind::Worker(1), 10),
            (Kind::Previous, 11),
            (Kind::Spooler(0), 12),
            (Kind::Mule(0), 13),
            (Kind::Cron(0), 14),
        ] {
            table.insert(serving(kind, pid));
        }
        assert_eq!(table.stopped_with_vassal(), [10, 11, 12, 13]);
    }

    #[test]
    fn a_replaced_worker_shares_its_id_but_not_its_seat() {
        let mut table = table(2, 0);
        table.insert(Entry {
            state: State::Retiring,
            bank: Some(0),
            ..serving(Kind::Worker(1), 10)
        });
        assert_eq!(table.occupant(Kind::Worker(1)), None);
        table.insert(Entry {
            bank: Some(2),
            ..serving(Kind::Worker(1), 11)
        });
        assert_eq!(table.pid_of(Kind::Worker(1)), Some(11));
        assert_eq!(table.pid_of(Kind::Worker(2)), None);
    }

    #[test]
    fn respawns_count_generations_and_share_a_guard_per_kind() {
        let mut table = table(2, 2);
        let start = Instant::now();
        // Spoolers are due at once; workers are spawned by the caller.
        assert_eq!(table.due(start), [Kind::Spooler(0), Kind::Spooler(1)]);
        table.insert(serving(Kind::Worker(1), 10));
        assert_eq!(table.get(10).unwrap().generation, 0);
        // Two deaths among two workers in a second: at once; a third: 2 s later.
        let on_time = (start, Late::OnTime);
        assert_eq!(table.schedule_respawn(Kind::Worker(1), start), on_time);
        assert_eq!(table.schedule_respawn(Kind::Worker(2), start), on_time);
        // Spoolers have their own guard.
        assert_eq!(table.schedule_respawn(Kind::Spooler(0), start), on_time);
        let late = start + Duration::from_secs(2);
        assert_eq!(
            table.schedule_respawn(Kind::Worker(1), start),
            (late, Late::TooFast)
        );
        assert_eq!(table.respawns(Kind::Worker(1)), 2);
        let due = table.due(start);
        assert!(!due.contains(&Kind::Worker(1)), "too fast: {due:?}");
        assert!(due.contains(&Kind::Worker(2)));
        // A seat with a child is not due, and the child is its seat's next generation.
        table.insert(serving(Kind::Worker(1), 11));
        assert!(!table.due(late).contains(&Kind::Worker(1)));
        assert_eq!(table.get(11).unwrap().generation, 2);
        table.cancel_respawn(Kind::Worker(2));
        assert!(!table.due(late).contains(&Kind::Worker(2)));
    }

    #[test]
    fn a_daemon_seat_follows_its_throttle() {
        let mut table = ProcessTable::default();
        let kind = Kind::Daemon(0);
        table.add_seat(kind, Rule::Throttle(Throttle::new(None)), None);
        let start = Instant::now();
        // Never started: no quick death.
        assert_eq!(table.schedule_respawn(kind, start), (start, Late::OnTime));
        table.insert(serving(kind, 20));
        let started = table.get(20).unwrap().started;
        assert_eq!(
            table.exited(20, false).map(|(_, exit)| exit),
            Some(Exit::Respawn)
        );
        let (at, late) = table.schedule_respawn(kind, started);
        assert_eq!(
            (at - started, late),
            (Duration::from_secs(1), Late::Throttled { quick_deaths: 1 })
        );
        assert!(table.respawn_pending(kind));
        let (next, late) = table.failed_start(kind, at);
        assert_eq!(
            (next - at, late),
            (Duration::from_secs(2), Late::Throttled { quick_deaths: 2 })
        );
        assert!(!table.due(at).contains(&kind));
        assert!(table.due(next).contains(&kind));
        // Daemons are stopped with their own signal, not with the workers.
        assert_eq!(table.stopped_with_vassal(), Vec::<Pid>::new());
    }

    #[test]
    fn mercy_runs_out_once_per_stop() {
        let start = Instant::now();
        let mercy = Duration::from_secs(60);
        let mut table = table(2, 0);
        table.insert(serving(Kind::Worker(1), 10));
        table.insert(serving(Kind::Worker(2), 11));
        assert_eq!(table.next_deadline(), None);
        table.stop(10, Why::Cheaped, start + mercy);
        assert_eq!(table.next_deadline(), Some(start + mercy));
        let any = |_| true;
        assert!(table.past_mercy(start, any).is_empty());
        let daemons = |kind| matches!(kind, Kind::Daemon(_));
        assert!(
            table.past_mercy(start + mercy, daemons).is_empty(),
            "a worker"
        );
        let killed = table.past_mercy(start + mercy, any);
        assert_eq!(killed.len(), 1);
        assert_eq!(
            (killed[0].pid, killed[0].stop.unwrap().why),
            (10, Why::Cheaped)
        );
        assert!(
            table.past_mercy(start + mercy * 2, any).is_empty(),
            "only once"
        );
        assert_eq!(table.next_deadline(), None);
        // A fast stop after a graceful one sets a new, earlier deadline.
        table.stop(11, Why::Shutdown { fast: false }, start + mercy);
        table.stop(
            11,
            Why::Shutdown { fast: true },
            start + Duration::from_secs(3),
        );
        assert_eq!(table.next_deadline(), Some(start + Duration::from_secs(3)));
    }

    #[test]
    fn whole_mercy_is_the_shorter_of_both_mercies() {
        let mut config = Config::default();
        assert_eq!(whole_mercy(&config), Duration::from_secs(30));
        config.reload_mercy = Duration::ZERO;
        assert_eq!(whole_mercy(&config), Duration::from_secs(60));
    }
}
