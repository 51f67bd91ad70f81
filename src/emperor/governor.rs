//! The emperor's event loop: one task on a current-thread tokio runtime that owns the vassal
//! table and reacts to filesystem changes, vassal messages and exits, signals, timers and
//! stats connections.
//!
//! Everything that decides lives elsewhere and is pure ([`super::state`], [`super::monitor`],
//! [`super::debounce`]). This file holds the loop itself: what it waits on, its timers, and
//! the emperor-wide orders (reload all, stop all, the SIGUSR1 table). What the loop carries
//! out is split by idea into its children: [`vassal`] (a vassal's record and transitions),
//! [`watch`] (inotify and rescans), [`serving`] (the stats and metrics listeners) and
//! [`systemd`] (status, readiness, watchdog). It does not wait on vassals: spawning execs at
//! once, stats clients are written to from their own tasks, and `emperor-on-demand-exec`'s
//! command runs on a task whose answer comes back as a report (`on_demand.rs`).

mod serving;
mod systemd;
mod vassal;
mod watch;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::debounce::Debouncer;
use super::heartbeat;
use super::state::{Event, State, Throttle};
use super::stats_server;
use super::{EmperorError, Settings};
use crate::sys::notify::Notifier;
use serving::Listeners;
use systemd::{watchdog_interval, NOTIFY_RETRY, SETTLE_TIMEOUT};
use vassal::{Vassal, VassalReport};
use watch::{MonitorState, DEBOUNCE_MAX_WAIT, DEBOUNCE_QUIET};

/// After the final SIGKILLs, how long to wait for the kernel to hand us the exits.
const REAP_GRACE: Duration = Duration::from_secs(5);

struct Shutdown {
    deadline: Instant,
    killed: bool,
}

pub struct Governor {
    settings: Settings,
    monitors: Vec<MonitorState>,
    vassals: BTreeMap<PathBuf, Vassal>,
    /// New vassal files whose `emperor-on-demand-exec` answer is awaited, with their monitor.
    on_demand_asking: std::collections::HashMap<PathBuf, usize>,
    next_spawn_id: u64,
    reports: mpsc::UnboundedSender<VassalReport>,
    notifier: Notifier,
    debouncer: Debouncer,
    next_rescan: Instant,
    watcher: Option<notify::RecommendedWatcher>,
    shutdown: Option<Shutdown>,
    /// Until when systemd is kept waiting for READY=1 (at start, and after RELOADING=1).
    settle_deadline: Option<Instant>,
    watchdog: Option<(Duration, Instant)>,
    last_status: String,
    /// sd_notify messages waiting for room in `NOTIFY_SOCKET`'s queue (`systemd.rs`).
    notify_pending: std::collections::VecDeque<String>,
    warned: HashSet<PathBuf>,
    /// Permits for the stats clients being served (`stats_server::MAX_CLIENTS`).
    stats_clients: std::sync::Arc<tokio::sync::Semaphore>,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

struct Signals {
    hup: Signal,
    term: Signal,
    quit: Signal,
    int: Signal,
    usr1: Signal,
}

impl Signals {
    fn install() -> Result<Self, EmperorError> {
        let install = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|source| EmperorError::Signal {
                signal: name,
                source,
            })
        };
        Ok(Signals {
            hup: install(SignalKind::hangup(), "SIGHUP")?,
            term: install(SignalKind::terminate(), "SIGTERM")?,
            quit: install(SignalKind::quit(), "SIGQUIT")?,
            int: install(SignalKind::interrupt(), "SIGINT")?,
            usr1: install(SignalKind::user_defined1(), "SIGUSR1")?,
        })
    }
}

impl Governor {
    pub async fn run(settings: Settings) -> Result<(), EmperorError> {
        let mut signals = Signals::install()?;
        let listeners = Listeners::bind(&settings.stats, &settings.prometheus).await?;
        let (reports_tx, mut reports_rx) = mpsc::unbounded_channel();
        let (fs_tx, mut fs_rx) = mpsc::unbounded_channel();
        let watcher = watch::watcher(fs_tx);
        let now = Instant::now();
        let mut governor = Governor {
            monitors: settings
                .monitors
                .iter()
                .map(|arg| MonitorState::new(arg))
                .collect(),
            settings,
            vassals: BTreeMap::new(),
            on_demand_asking: std::collections::HashMap::new(),
            next_spawn_id: 0,
            reports: reports_tx,
            notifier: Notifier::systemd_from_env(),
            debouncer: Debouncer::new(DEBOUNCE_QUIET, DEBOUNCE_MAX_WAIT),
            next_rescan: now,
            watcher,
            shutdown: None,
            settle_deadline: Some(now + SETTLE_TIMEOUT),
            watchdog: watchdog_interval().map(|interval| (interval, now)),
            last_status: String::new(),
            notify_pending: std::collections::VecDeque::new(),
            warned: HashSet::new(),
            stats_clients: std::sync::Arc::new(tokio::sync::Semaphore::new(
                stats_server::MAX_CLIENTS,
            )),
        };
        for state in &governor.monitors {
            info!(monitor = state.monitor.arg(), watch = %state.monitor.watch_root().display(), "governing vassals of");
        }
        governor.notify_systemd("STATUS=initializing");
        governor.rescan();
        governor.next_rescan = Instant::now() + governor.rescan_interval();

        loop {
            governor.after_event(Instant::now());
            if governor.is_finished(Instant::now()) {
                break;
            }
            let deadline = governor.next_deadline();
            tokio::select! {
                Some(event) = fs_rx.recv() => governor.on_fs_event(event),
                Some(report) = reports_rx.recv() => governor.on_report(report),
                _ = signals.hup.recv() => governor.reload_all(),
                _ = signals.term.recv() => governor.begin_shutdown("SIGTERM"),
                _ = signals.quit.recv() => governor.begin_shutdown("SIGQUIT"),
                _ = signals.int.recv() => governor.begin_shutdown("SIGINT"),
                _ = signals.usr1.recv() => governor.log_table(),
                accepted = stats_server::accept(&listeners.stats) => governor.serve_stats(accepted),
                accepted = stats_server::accept(&listeners.prometheus) => governor.serve_metrics(accepted),
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
        let status = "STATUS=The Emperor is buried.";
        governor.notify_systemd(status);
        info!("the emperor is buried");
        listeners.remove_paths(&governor.settings.stats, &governor.settings.prometheus);
        Ok(())
    }

    /// With `emperor-no-blacklist` the delay stays at `emperor-throttle` instead of doubling.
    fn throttle(&self) -> Throttle {
        Throttle {
            base: self.settings.throttle,
            max: if self.settings.no_blacklist {
                self.settings.throttle
            } else {
                self.settings.max_throttle
            },
        }
    }

    fn next_deadline(&self) -> Instant {
        let mut deadline = self.next_rescan;
        let mut consider = |candidate: Option<Instant>| {
            if let Some(candidate) = candidate {
                deadline = deadline.min(candidate);
            }
        };
        consider(self.debouncer.deadline());
        consider(self.settle_deadline);
        consider(self.watchdog.map(|(interval, last)| last + interval));
        if !self.notify_pending.is_empty() {
            consider(Some(Instant::now() + NOTIFY_RETRY));
        }
        consider(self.shutdown.as_ref().map(|shutdown| {
            if shutdown.killed {
                shutdown.deadline + REAP_GRACE
            } else {
                shutdown.deadline
            }
        }));
        for vassal in self.vassals.values() {
            consider(vassal.retry_at);
            consider(vassal.kill_at);
            if vassal.life.state == State::Ready {
                consider(heartbeat::deadline(
                    vassal.last_heartbeat,
                    self.settings.required_heartbeat,
                ));
            }
        }
        deadline
    }

    fn is_finished(&self, now: Instant) -> bool {
        match &self.shutdown {
            Some(_) if self.vassals.is_empty() => true,
            Some(shutdown) if shutdown.killed && now >= shutdown.deadline + REAP_GRACE => {
                error!(
                    left = self.vassals.len(),
                    "vassals did not exit even after SIGKILL, giving up on them"
                );
                true
            }
            _ => false,
        }
    }

    /// Timers, rescans and systemd bookkeeping, run after every wake-up.
    fn after_event(&mut self, now: Instant) {
        self.curse_silent_vassals(now);
        if self.shutdown.is_none() && (self.debouncer.fire(now) || now >= self.next_rescan) {
            self.rescan();
            self.next_rescan = Instant::now() + self.rescan_interval();
        }
        let due: Vec<PathBuf> = self
            .vassals
            .values()
            .filter(|vassal| vassal.retry_at.is_some_and(|at| at <= now))
            .map(|vassal| vassal.path.clone())
            .collect();
        for path in due {
            if let Some(vassal) = self.vassals.get_mut(&path) {
                vassal.retry_at = None;
            }
            self.feed(&path, Event::RetryDue);
        }
        for vassal in self.vassals.values_mut() {
            if vassal.kill_at.is_some_and(|at| at <= now) {
                vassal.kill_at = None;
                if let Some(pid) = vassal.pid {
                    warn!(vassal = %vassal.name, pid, mercy_s = self.settings.mercy.as_secs(), "vassal ignored the stop, no mercy: SIGKILL");
                    vassal::signal_vassal(-(pid as i32), libc::SIGKILL);
                }
            }
        }
        if let Some(shutdown) = &mut self.shutdown {
            if !shutdown.killed && now >= shutdown.deadline {
                shutdown.killed = true;
                for vassal in self.vassals.values() {
                    if let Some(pid) = vassal.pid {
                        warn!(vassal = %vassal.name, pid, "no mercy for vassal: SIGKILL");
                        vassal::signal_vassal(-(pid as i32), libc::SIGKILL);
                    }
                }
            }
        }
        self.tell_systemd(now);
    }

    fn reload_all(&mut self) {
        if self.shutdown.is_some() {
            info!("SIGHUP ignored while stopping");
            return;
        }
        info!(
            vassals = self.vassals.len(),
            "SIGHUP: reloading all vassals"
        );
        self.notify_systemd(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading all vassals",
            crate::sys::clock::monotonic_us()
        ));
        self.settle_deadline = Some(Instant::now() + SETTLE_TIMEOUT);
        let paths: Vec<PathBuf> = self.vassals.keys().cloned().collect();
        for path in paths {
            self.feed(&path, Event::ReloadAll);
        }
    }

    fn begin_shutdown(&mut self, signal: &'static str) {
        if let Some(shutdown) = &self.shutdown {
            let left = shutdown.deadline.saturating_duration_since(Instant::now());
            info!(signal, mercyless_in_s = left.as_secs(), "already stopping");
            return;
        }
        let mercy = self.settings.mercy;
        info!(
            signal,
            vassals = self.vassals.len(),
            mercy_s = mercy.as_secs(),
            "stopping all vassals"
        );
        self.notify_systemd(&format!(
            "STOPPING=1\nSTATUS=stopping {} vassals",
            self.vassals.len()
        ));
        self.shutdown = Some(Shutdown {
            deadline: Instant::now() + mercy,
            killed: false,
        });
        self.settle_deadline = None;
        let paths: Vec<PathBuf> = self.vassals.keys().cloned().collect();
        for path in paths {
            self.feed(&path, Event::StopAll);
        }
    }

    fn log_table(&self) {
        info!(vassals = self.vassals.len(), status = %self.status_line(), "vassal table");
        for vassal in self.vassals.values() {
            info!(
                vassal = %vassal.name,
                state = %vassal.life.state,
                pid = vassal.pid.unwrap_or(0),
                for_s = vassal.since.elapsed().as_secs(),
                respawns = vassal.spawns.saturating_sub(1),
                failures = vassal.life.failures,
                status = %vassal.status,
                file = %vassal.path.display(),
                "vassal"
            );
        }
    }
}
