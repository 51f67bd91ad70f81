//! The emperor's event loop: one task on a current-thread tokio runtime that owns the vassal
//! table and reacts to filesystem changes, vassal messages and exits, signals, timers and
//! stats connections.
//!
//! Everything that decides lives elsewhere and is pure ([`super::state`], [`super::monitor`],
//! [`super::debounce`]); this file carries out decisions and keeps the books (timestamps,
//! pids, systemd status). It never blocks: spawning execs at once, and stats clients are
//! written to from their own tasks.

use std::collections::{BTreeMap, HashSet};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use notify::Watcher as _;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};

use super::debounce::Debouncer;
use super::heartbeat;
use super::monitor::{self, Change, FileStamp, Monitor, Snapshot};
use super::on_demand::OnDemand;
use super::sd_notify::{self, Notifier, VassalMessage};
use super::spawn::{self, SpawnRequest};
use super::state::{Action, Event, Exit, Lifecycle, State, Throttle};
use super::stats::{self, EmperorStats, VassalStats};
use super::stats_server::{self, StatsListener, StatsStream};
use super::{EmperorError, Settings};

/// How long the filesystem must be quiet before a rescan (see [`Debouncer`]).
const DEBOUNCE_QUIET: Duration = Duration::from_millis(30);
const DEBOUNCE_MAX_WAIT: Duration = Duration::from_millis(300);
/// The safety-net rescan for missed events, edits behind symlinks and directories that appear.
const RESCAN_INTERVAL: Duration = Duration::from_secs(5);
/// Without an inotify watch (limit reached, or a monitored directory that does not exist
/// yet), polling is all there is for that monitor: poll faster.
const RESCAN_INTERVAL_UNWATCHED: Duration = Duration::from_secs(1);
/// Upper bound on holding back systemd's READY=1 (start) or the end of a reload while vassals
/// are still starting; below systemd's default TimeoutStartSec of 90 s.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// After the final SIGKILLs, how long to wait for the kernel to hand us the exits.
const REAP_GRACE: Duration = Duration::from_secs(5);

/// What vassal-side tasks report to the loop. `spawn_id` tells instances of one vassal apart,
/// so a late message from a process that was replaced is recognised as stale.
#[derive(Debug)]
enum VassalReport {
    Datagram {
        spawn_id: u64,
        bytes: Vec<u8>,
    },
    Exited {
        spawn_id: u64,
        exit: Exit,
        detail: String,
    },
    /// A connection waits on an on-demand vassal's socket (`on_demand.rs`).
    Connection {
        path: PathBuf,
    },
}

struct Vassal {
    name: String,
    file_name: String,
    path: PathBuf,
    monitor_idx: usize,
    life: Lifecycle,
    stamp: FileStamp,
    spawn_id: u64,
    pid: Option<u32>,
    since: Instant,
    spawned_at: Option<Instant>,
    retry_at: Option<Instant>,
    retry_delay: Duration,
    kill_at: Option<Instant>,
    status: String,
    spawns: u64,
    born: u64,
    first_run: u64,
    last_run: u64,
    last_ready: u64,
    cursed: u64,
    first_failure: u64,
    last_failure: u64,
    /// The last `WATCHDOG=1` from this process (`heartbeat`); `None` until its first.
    last_heartbeat: Option<Instant>,
    /// `emperor-on-demand-directory`: the socket the emperor holds for it.
    on_demand: Option<OnDemand>,
}

struct MonitorState {
    monitor: Monitor,
    snapshot: Snapshot,
    watched: bool,
    /// The last scan error logged, so a missing directory is reported once, not every rescan.
    error_logged: Option<std::io::ErrorKind>,
}

struct Shutdown {
    deadline: Instant,
    killed: bool,
}

pub struct Governor {
    settings: Settings,
    program: PathBuf,
    monitors: Vec<MonitorState>,
    vassals: BTreeMap<PathBuf, Vassal>,
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
    warned: HashSet<PathBuf>,
    /// Permits for the stats clients being served (`stats_server::MAX_CLIENTS`).
    stats_clients: std::sync::Arc<tokio::sync::Semaphore>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `WATCHDOG_USEC` (honouring `WATCHDOG_PID`): we ping at half the interval, as sd_watchdog_enabled(3) advises.
fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_str()?.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec / 2))
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
    pub async fn run(settings: Settings, program: PathBuf) -> Result<(), EmperorError> {
        let mut signals = Signals::install()?;
        let stats_listener =
            match &settings.stats {
                Some(address) => Some(StatsListener::bind(address).await.map_err(|source| {
                    EmperorError::Stats {
                        address: address.clone(),
                        source,
                    }
                })?),
                None => None,
            };
        match &stats_listener {
            Some(StatsListener::Tcp(listener)) => {
                if let Ok(address) = listener.local_addr() {
                    info!(%address, "serving emperor stats (uwsgitop {address})");
                }
            }
            Some(StatsListener::Unix(_)) => {
                let address = settings.stats.as_deref().unwrap_or_default();
                info!(address, "serving emperor stats (uwsgitop {address})");
            }
            None => {}
        }
        let prometheus_listener = match &settings.prometheus {
            Some(address) => {
                let listener =
                    StatsListener::bind(address)
                        .await
                        .map_err(|source| EmperorError::Stats {
                            address: address.clone(),
                            source,
                        })?;
                if let StatsListener::Tcp(tcp) = &listener {
                    if let Ok(address) = tcp.local_addr() {
                        info!(%address, "serving emperor Prometheus metrics (/metrics)");
                    }
                } else {
                    info!(address, "serving emperor Prometheus metrics (/metrics)");
                }
                Some(listener)
            }
            None => None,
        };
        let (reports_tx, mut reports_rx) = mpsc::unbounded_channel();
        let (fs_tx, mut fs_rx) = mpsc::unbounded_channel();
        let watcher = match notify::recommended_watcher(move |event| {
            // The receiver only goes away when the loop ends.
            let _ = fs_tx.send(event);
        }) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                match inotify_limit_hint(&error) {
                    Some(hint) => {
                        error!(%error, "cannot use inotify, falling back to polling every second ({hint})")
                    }
                    None => {
                        error!(%error, "cannot use inotify, falling back to polling every second")
                    }
                }
                None
            }
        };
        let now = Instant::now();
        let mut governor = Governor {
            monitors: settings
                .monitors
                .iter()
                .map(|arg| MonitorState {
                    monitor: monitor::classify_monitor(arg),
                    snapshot: Snapshot::new(),
                    watched: false,
                    error_logged: None,
                })
                .collect(),
            settings,
            program,
            vassals: BTreeMap::new(),
            next_spawn_id: 0,
            reports: reports_tx,
            notifier: Notifier::from_env(),
            debouncer: Debouncer::new(DEBOUNCE_QUIET, DEBOUNCE_MAX_WAIT),
            next_rescan: now,
            watcher,
            shutdown: None,
            settle_deadline: Some(now + SETTLE_TIMEOUT),
            watchdog: watchdog_interval().map(|interval| (interval, now)),
            last_status: String::new(),
            warned: HashSet::new(),
            stats_clients: std::sync::Arc::new(tokio::sync::Semaphore::new(
                stats_server::MAX_CLIENTS,
            )),
        };
        for state in &governor.monitors {
            info!(monitor = state.monitor.arg(), watch = %state.monitor.watch_root().display(), "governing vassals of");
        }
        governor.notifier.send("STATUS=initializing");
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
                accepted = stats_server::accept(&stats_listener) => governor.serve_stats(accepted),
                accepted = stats_server::accept(&prometheus_listener) => governor.serve_metrics(accepted),
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
        let status = "STATUS=The Emperor is buried.";
        governor.notifier.send(status);
        info!("the emperor is buried");
        for (listener, path) in [
            (&stats_listener, &governor.settings.stats),
            (&prometheus_listener, &governor.settings.prometheus),
        ] {
            if let (Some(listener), Some(path)) = (listener, path) {
                if listener.is_path(path) {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        Ok(())
    }

    fn rescan_interval(&self) -> Duration {
        if self.watcher.is_none() || self.monitors.iter().any(|state| !state.watched) {
            RESCAN_INTERVAL_UNWATCHED
        } else {
            RESCAN_INTERVAL
        }
    }

    fn throttle(&self) -> Throttle {
        Throttle {
            base: self.settings.throttle,
            max: self.settings.max_throttle,
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
                    spawn::send_signal(-(pid as i32), libc::SIGKILL);
                }
            }
        }
        if let Some(shutdown) = &mut self.shutdown {
            if !shutdown.killed && now >= shutdown.deadline {
                shutdown.killed = true;
                for vassal in self.vassals.values() {
                    if let Some(pid) = vassal.pid {
                        warn!(vassal = %vassal.name, pid, "no mercy for vassal: SIGKILL");
                        spawn::send_signal(-(pid as i32), libc::SIGKILL);
                    }
                }
            }
        }
        if let Some((interval, last)) = &mut self.watchdog {
            if now >= *last + *interval {
                self.notifier.send("WATCHDOG=1");
                *last = now;
            }
        }
        self.check_settled(now);
        let status = self.status_line();
        if status != self.last_status {
            self.notifier.send(&format!("STATUS={status}"));
            self.last_status = status;
        }
    }

    fn status_line(&self) -> String {
        if self.shutdown.is_some() {
            return format!("stopping, {} vassals left", self.vassals.len());
        }
        let count = |wanted: &[State]| {
            self.vassals
                .values()
                .filter(|vassal| wanted.contains(&vassal.life.state))
                .count()
        };
        let mut line = format!(
            "governing {} vassals, {} ready, {} starting, {} failed",
            self.vassals.len(),
            count(&[State::Ready, State::Reloading]),
            count(&[State::Starting]),
            count(&[State::Failed, State::Throttled]),
        );
        let waiting = count(&[State::Waiting]);
        if waiting > 0 {
            line.push_str(&format!(", {waiting} waiting on demand"));
        }
        line
    }

    /// READY=1 once every vassal is ready or has failed (or the settle timeout passed), after
    /// the start and after an emperor-wide reload.
    fn check_settled(&mut self, now: Instant) {
        let Some(deadline) = self.settle_deadline else {
            return;
        };
        let unsettled = self
            .vassals
            .values()
            .filter(|vassal| matches!(vassal.life.state, State::Starting | State::Reloading))
            .count();
        if unsettled > 0 && now < deadline {
            return;
        }
        if unsettled > 0 {
            warn!(
                unsettled,
                timeout_s = SETTLE_TIMEOUT.as_secs(),
                "vassals still starting, reporting ready anyway"
            );
        }
        self.settle_deadline = None;
        let status = self.status_line();
        info!(status = %status, "emperor ready");
        self.notifier.send(&format!("READY=1\nSTATUS={status}"));
        self.last_status = status;
    }

    fn on_fs_event(&mut self, event: notify::Result<notify::Event>) {
        match event {
            Ok(event) => {
                if event.need_rescan() {
                    warn!("inotify queue overflowed, rescanning everything");
                }
                if matches!(event.kind, notify::EventKind::Access(_)) {
                    return;
                }
                debug!(kind = ?event.kind, paths = ?event.paths, "filesystem event");
            }
            Err(error) => warn!(%error, "filesystem watch error, rescanning"),
        }
        self.debouncer.event(Instant::now());
    }

    fn ensure_watched(&mut self, idx: usize) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        let state = &mut self.monitors[idx];
        if state.watched {
            return;
        }
        let mode = match &state.monitor {
            Monitor::Glob {
                recursive: true, ..
            } => notify::RecursiveMode::Recursive,
            _ => notify::RecursiveMode::NonRecursive,
        };
        let root = state.monitor.watch_root();
        match watcher.watch(root, mode) {
            Ok(()) => state.watched = true,
            Err(error) => match inotify_limit_hint(&error) {
                Some(hint) => error!(monitor = state.monitor.arg(), %error,
                        "inotify limit reached, changes are seen by polling only ({hint})"),
                None => warn!(monitor = state.monitor.arg(), %error, "cannot watch, will retry"),
            },
        }
    }

    fn rescan(&mut self) {
        for idx in 0..self.monitors.len() {
            let report = monitor::scan(&self.monitors[idx].monitor);
            let arg = self.monitors[idx].monitor.arg().to_owned();
            if let Some(error) = &report.error {
                if self.monitors[idx].error_logged != Some(error.kind()) {
                    error!(monitor = %arg, %error, "cannot read vassals");
                    self.monitors[idx].error_logged = Some(error.kind());
                }
                if error.kind() != std::io::ErrorKind::NotFound {
                    // A transient error (EMFILE, EACCES during a chmod) must not stop every
                    // vassal of this monitor: keep the last known snapshot.
                    continue;
                }
                // Gone: its inotify watch died with it; watch again when it comes back.
                if self.monitors[idx].watched {
                    if let Some(watcher) = &mut self.watcher {
                        let _ = watcher.unwatch(self.monitors[idx].monitor.watch_root());
                    }
                    self.monitors[idx].watched = false;
                }
            } else {
                if self.monitors[idx].error_logged.take().is_some() {
                    info!(monitor = %arg, "vassals readable again");
                }
                self.ensure_watched(idx);
            }
            for path in report.unsupported.iter().chain(&report.not_regular) {
                if self.warned.insert(path.clone()) {
                    if report.unsupported.contains(path) {
                        warn!(vassal = %monitor::vassal_name(path), file = %path.display(),
                            "only `.ini` vassals are supported, ignoring this file");
                    } else {
                        warn!(vassal = %monitor::vassal_name(path), file = %path.display(),
                            "not a regular file (or a dangling symlink), ignoring it");
                    }
                }
            }
            let changes = monitor::diff(
                &self.monitors[idx].snapshot,
                &report.snapshot,
                self.settings.tyrant,
            );
            for change in changes {
                match change {
                    Change::Added(path) => {
                        let stamp = report.snapshot[&path];
                        self.warned.remove(&path);
                        self.on_added(idx, path, stamp);
                    }
                    Change::Modified(path) => {
                        if let Some(vassal) =
                            self.vassals.get_mut(&path).filter(|v| v.monitor_idx == idx)
                        {
                            vassal.stamp = report.snapshot[&path];
                            info!(vassal = %vassal.name, "config changed");
                            self.feed(&path, Event::Changed);
                        }
                    }
                    Change::Removed(path) => {
                        if self
                            .vassals
                            .get(&path)
                            .is_some_and(|v| v.monitor_idx == idx)
                        {
                            info!(vassal = %monitor::vassal_name(&path), file = %path.display(), "config removed");
                            self.feed(&path, Event::Removed);
                        }
                    }
                }
            }
            self.monitors[idx].snapshot = report.snapshot;
        }
    }

    fn on_added(&mut self, monitor_idx: usize, path: PathBuf, stamp: FileStamp) {
        if let Some(vassal) = self.vassals.get_mut(&path) {
            if vassal.monitor_idx == monitor_idx {
                // Came back while its previous instance is still stopping.
                vassal.stamp = stamp;
                self.feed(&path, Event::Changed);
            } else {
                debug!(vassal = %vassal.name, "already governed through another monitor");
            }
            return;
        }
        let on_demand = self.settings.on_demand.as_ref().and_then(|source| {
            OnDemand::bind(source, &path)
                .inspect_err(|error| {
                    error!(error = %error, cause = %std::error::Error::source(error).map(ToString::to_string).unwrap_or_default(),
                        file = %path.display(), "on-demand socket: starting the vassal now instead")
                })
                .ok()
                .flatten()
        });
        let (life, action) = match &on_demand {
            Some(socket) => {
                info!(vassal = %monitor::vassal_name(&path), socket = %socket.address(),
                    "on-demand vassal: waiting for connections on its socket");
                (Lifecycle::waiting(), None)
            }
            None => {
                let (life, action) = Lifecycle::new();
                (life, Some(action))
            }
        };
        let now = Instant::now();
        let vassal = Vassal {
            name: monitor::vassal_name(&path),
            file_name: path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: path.clone(),
            monitor_idx,
            life,
            stamp,
            spawn_id: 0,
            pid: None,
            since: now,
            spawned_at: None,
            retry_at: None,
            retry_delay: Duration::ZERO,
            kill_at: None,
            status: String::new(),
            spawns: 0,
            born: 0,
            first_run: 0,
            last_run: 0,
            last_ready: 0,
            cursed: 0,
            first_failure: 0,
            last_failure: 0,
            last_heartbeat: None,
            on_demand,
        };
        info!(vassal = %vassal.name, file = %path.display(), "new vassal");
        self.vassals.insert(path.clone(), vassal);
        match action {
            Some(action) => self.apply(&path, action),
            None => self.arm_on_demand(&path),
        }
    }

    /// Runs one event through a vassal's state machine, logs the transition and carries out
    /// the action.
    fn feed(&mut self, path: &Path, event: Event) {
        let throttle = self.throttle();
        let Some(vassal) = self.vassals.get_mut(path) else {
            return;
        };
        let before = vassal.life.state;
        let action = vassal.life.handle(event, throttle);
        let after = vassal.life.state;
        let now = Instant::now();
        if before != after {
            let elapsed_ms = millis(now - vassal.since);
            let name = &vassal.name;
            let pid = vassal.pid.unwrap_or(0);
            match (before, after) {
                (State::Starting, State::Ready) => {
                    info!(vassal = %name, pid, startup_ms = elapsed_ms, status = %vassal.status, "vassal ready")
                }
                // The vassal vets a new config in a `--check-config` child before it re-execs;
                // when that fails it keeps its workers and says so in its status.
                (State::Reloading, State::Ready) if vassal.status.contains("reload failed") => {
                    warn!(vassal = %name, pid, file = %vassal.path.display(), status = %vassal.status,
                        "vassal reload failed, still serving with its previous config (the error is logged above)")
                }
                (State::Reloading, State::Ready) => {
                    info!(vassal = %name, pid, reload_ms = elapsed_ms, status = %vassal.status, "vassal reloaded")
                }
                (_, State::Reloading) => info!(vassal = %name, pid, "vassal reloading"),
                (_, State::Stopping) => info!(vassal = %name, pid, "vassal stopping"),
                (_, State::Failed) => error!(vassal = %name, file = %vassal.path.display(),
                    "vassal failed with a config error; fix the file to retry"),
                (_, State::Throttled) => {} // logged with its delay in `apply`
                (from, to) => debug!(vassal = %name, %from, %to, elapsed_ms, "vassal state"),
            }
            vassal.since = now;
            if after == State::Ready {
                vassal.last_ready = unix_now();
            }
            if after == State::Waiting {
                vassal.pid = None;
                info!(vassal = %vassal.name, "on-demand vassal exited; waiting for the next connection");
                self.arm_on_demand(path);
                return;
            }
        }
        if after != State::Throttled {
            vassal.retry_at = None;
        }
        if after != State::Stopping {
            vassal.kill_at = None;
            vassal.cursed = 0;
        }
        if after == State::Ready {
            vassal.first_failure = 0;
        }
        if after == State::Failed {
            let now = unix_now();
            if vassal.first_failure == 0 {
                vassal.first_failure = now;
            }
            vassal.last_failure = now;
        }
        if let Some(action) = action {
            self.apply(path, action);
        }
    }

    fn apply(&mut self, path: &Path, action: Action) {
        match action {
            Action::Spawn => self.spawn(path),
            Action::Reload => {
                if let Some(pid) = self.vassals.get(path).and_then(|vassal| vassal.pid) {
                    spawn::send_signal(pid as i32, libc::SIGHUP);
                }
            }
            Action::Stop => {
                let mercy = self.settings.mercy;
                if let Some(vassal) = self.vassals.get_mut(path) {
                    if let Some(pid) = vassal.pid {
                        spawn::send_signal(pid as i32, libc::SIGTERM);
                    }
                    vassal.kill_at = Some(Instant::now() + mercy);
                    vassal.cursed = unix_now();
                }
            }
            Action::RetryAfter(delay) => {
                if let Some(vassal) = self.vassals.get_mut(path) {
                    let now = unix_now();
                    if vassal.first_failure == 0 {
                        vassal.first_failure = now;
                    }
                    vassal.last_failure = now;
                    vassal.retry_delay = delay;
                    vassal.retry_at = Some(Instant::now() + delay);
                    warn!(vassal = %vassal.name, failures = vassal.life.failures, retry_in_ms = millis(delay),
                        "vassal died before it became ready, throttling its respawn");
                    if delay >= self.settings.max_throttle {
                        warn!(vassal = %vassal.name, "maximum throttle level reached");
                    }
                }
            }
            Action::Forget => {
                if let Some(vassal) = self.vassals.remove(path) {
                    info!(vassal = %vassal.name, file = %vassal.path.display(), "vassal removed");
                }
            }
        }
    }

    fn spawn(&mut self, path: &Path) {
        let Some(vassal) = self.vassals.get(path) else {
            return;
        };
        let owner = (vassal.stamp.uid, vassal.stamp.gid);
        if self.settings.tyrant && (owner.0 == 0 || owner.1 == 0) {
            error!(vassal = %vassal.name, file = %path.display(), uid = owner.0, gid = owner.1,
                "emperor-tyrant: refusing a vassal file owned by root; chown it to the user it should run as");
            self.feed(path, Event::Exited(Exit::ConfigError));
            return;
        }
        let cwd = match &self.monitors[vassal.monitor_idx].monitor {
            Monitor::Dir { dir, .. } => std::path::absolute(dir).unwrap_or_else(|_| dir.clone()),
            Monitor::Glob { .. } => path
                .parent()
                .map_or_else(|| PathBuf::from("/"), Path::to_owned),
        };
        let request = SpawnRequest {
            program: &self.program,
            config: path,
            cwd: &cwd,
            args: &self.settings.vassal_args,
            owner: self.settings.tyrant.then_some(owner),
            on_demand_fd: vassal.on_demand.as_ref().map(OnDemand::raw_fd),
        };
        match spawn::spawn(&request) {
            Ok(spawned) => {
                self.next_spawn_id += 1;
                let spawn_id = self.next_spawn_id;
                let vassal = self
                    .vassals
                    .get_mut(path)
                    .expect("checked at the top of spawn");
                let now = unix_now();
                vassal.spawn_id = spawn_id;
                vassal.pid = Some(spawned.pid);
                vassal.spawned_at = Some(Instant::now());
                vassal.since = Instant::now();
                vassal.spawns += 1;
                vassal.last_heartbeat = None;
                vassal.born = now;
                vassal.last_run = now;
                if vassal.first_run == 0 {
                    vassal.first_run = now;
                }
                vassal.status.clear();
                info!(vassal = %vassal.name, pid = spawned.pid,
                    command = %spawn::command_line(&self.program, &spawn::vassal_argv(&self.settings.vassal_args, path)),
                    "vassal starting");
                super::vassal_logs::relay(vassal.name.clone(), spawned.output);
                self.watch_vassal(spawn_id, spawned.child, spawned.channel);
            }
            Err(spawn_error) => {
                error!(vassal = %vassal.name, error = %spawn_error, cause = %std::error::Error::source(&spawn_error).map(ToString::to_string).unwrap_or_default(), "cannot start vassal");
                self.feed(path, Event::SpawnFailed);
            }
        }
    }

    /// One task reads the vassal's channel, another waits for its exit; both report to the loop.
    fn watch_vassal(&self, spawn_id: u64, mut child: tokio::process::Child, channel: OwnedFd) {
        let reports = self.reports.clone();
        match tokio::net::UnixDatagram::from_std(std::os::unix::net::UnixDatagram::from(channel)) {
            Ok(socket) => {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    // SOCK_SEQPACKET: a zero-length read is EOF, the vassal closed or exited.
                    while let Ok(len @ 1..) = socket.recv(&mut buf).await {
                        let bytes = buf[..len].to_vec();
                        if reports
                            .send(VassalReport::Datagram { spawn_id, bytes })
                            .is_err()
                        {
                            break;
                        }
                    }
                });
            }
            Err(error) => {
                warn!(%error, "cannot read the vassal's channel; its readiness will not be seen")
            }
        }
        let reports = self.reports.clone();
        tokio::spawn(async move {
            let (exit, detail) = match child.wait().await {
                Ok(status) => (Exit::from_status(status), describe(status)),
                Err(error) => (Exit::Crashed, format!("wait failed: {error}")),
            };
            let _ = reports.send(VassalReport::Exited {
                spawn_id,
                exit,
                detail,
            });
        });
    }

    fn path_of(&self, spawn_id: u64) -> Option<PathBuf> {
        self.vassals
            .values()
            .find(|vassal| vassal.spawn_id == spawn_id && vassal.pid.is_some())
            .map(|vassal| vassal.path.clone())
    }

    fn on_report(&mut self, report: VassalReport) {
        match report {
            VassalReport::Connection { path } => {
                if let Some(vassal) = self.vassals.get_mut(&path) {
                    if vassal.life.state == State::Waiting {
                        info!(vassal = %vassal.name, "connection on the on-demand socket: starting the vassal");
                    }
                }
                self.feed(&path, Event::Connection);
            }
            VassalReport::Datagram { spawn_id, bytes } => {
                let Some(path) = self.path_of(spawn_id) else {
                    return;
                };
                let mut messages = sd_notify::parse(&bytes);
                // `READY=1\nSTATUS=serving with 4 workers`: take the status first, so the
                // "vassal ready" line shows the new one.
                messages.sort_by_key(|message| !matches!(message, VassalMessage::Status(_)));
                for message in messages {
                    let vassal = self.vassals.get_mut(&path).expect("path_of found it");
                    match message {
                        VassalMessage::Ready => self.feed(&path, Event::Ready),
                        VassalMessage::Reloading => self.feed(&path, Event::Reloading),
                        VassalMessage::Status(status) => {
                            if status != vassal.status {
                                info!(vassal = %vassal.name, status = %status, "vassal status");
                                vassal.status = status;
                            }
                        }
                        VassalMessage::Stopping => {
                            debug!(vassal = %vassal.name, "vassal says it is stopping")
                        }
                        VassalMessage::MainPid(pid) => {
                            if Some(pid) != vassal.pid {
                                warn!(vassal = %vassal.name, pid, spawned = vassal.pid, "vassal reports a different MAINPID");
                            }
                        }
                        VassalMessage::Other(key, value) if key == "WATCHDOG" && value == "1" => {
                            vassal.last_heartbeat = Some(Instant::now());
                        }
                        VassalMessage::Other(key, value) => {
                            debug!(vassal = %vassal.name, key, value, "vassal message")
                        }
                    }
                }
            }
            VassalReport::Exited {
                spawn_id,
                exit,
                detail,
            } => {
                let Some(path) = self.path_of(spawn_id) else {
                    return;
                };
                let vassal = self.vassals.get_mut(&path).expect("path_of found it");
                let pid = vassal.pid.take().unwrap_or(0);
                let uptime_ms = vassal
                    .spawned_at
                    .take()
                    .map_or(0, |at| millis(at.elapsed()));
                // Workers left behind by a vassal that crashed share its process group.
                spawn::send_signal(-(pid as i32), libc::SIGKILL);
                if vassal.life.state == State::Stopping && exit == Exit::Clean {
                    info!(vassal = %vassal.name, pid, uptime_ms, "vassal stopped");
                } else {
                    let reason = match exit {
                        Exit::Clean => "exited on its own",
                        Exit::ConfigError => "config error",
                        Exit::ImportError => "app failed to import",
                        Exit::Crashed => "crashed",
                    };
                    warn!(vassal = %vassal.name, pid, uptime_ms, exit = %detail, reason, state = %vassal.life.state, "vassal exited");
                }
                self.feed(&path, Event::Exited(exit));
            }
        }
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
        self.notifier.send(&format!(
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
        self.notifier.send(&format!(
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

    fn stats(&self) -> EmperorStats {
        let now = Instant::now();
        EmperorStats {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            // SAFETY: getuid/getgid cannot fail and have no preconditions.
            uid: unsafe { libc::getuid() },
            // SAFETY: as above.
            gid: unsafe { libc::getgid() },
            cwd: std::env::current_dir()
                .map(|dir| dir.display().to_string())
                .unwrap_or_default(),
            monitors: self
                .monitors
                .iter()
                .map(|state| state.monitor.arg().to_owned())
                .collect(),
            tyrant: self.settings.tyrant,
            throttle_ms: millis(self.settings.throttle),
            vassals: self
                .vassals
                .values()
                .map(|vassal| VassalStats {
                    id: vassal.file_name.clone(),
                    config: vassal.path.display().to_string(),
                    pid: vassal.pid.unwrap_or(0),
                    state: vassal.life.state.as_str(),
                    status: vassal.status.clone(),
                    born: vassal.born,
                    last_mod: u64::try_from(vassal.stamp.mtime_sec).unwrap_or(0),
                    ready: matches!(vassal.life.state, State::Ready | State::Reloading),
                    last_ready: vassal.last_ready,
                    first_run: vassal.first_run,
                    last_run: vassal.last_run,
                    cursed: vassal.cursed,
                    uid: vassal.stamp.uid,
                    gid: vassal.stamp.gid,
                    monitor: self.monitors[vassal.monitor_idx].monitor.arg().to_owned(),
                    respawns: vassal.spawns.saturating_sub(1),
                    failures: vassal.life.failures,
                    throttle_ms: vassal.retry_at.map_or(millis(vassal.retry_delay), |at| {
                        millis(at.saturating_duration_since(now))
                    }),
                    first_failure: vassal.first_failure,
                    last_failure: vassal.last_failure,
                    on_demand: vassal
                        .on_demand
                        .as_ref()
                        .map(OnDemand::address)
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }

    fn serve_stats(&self, accepted: std::io::Result<StatsStream>) {
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                warn!(%error, "emperor-stats accept failed");
                return;
            }
        };
        let body = stats::render(&self.stats()).to_string();
        stats_server::serve(stream, body, &self.stats_clients);
    }

    /// `emperor-required-heartbeat`: SIGKILL for a ready vassal that stopped beating; its
    /// exit then goes through the state machine like any crash.
    fn curse_silent_vassals(&mut self, now: Instant) {
        let tolerance = self.settings.required_heartbeat;
        for vassal in self.vassals.values_mut() {
            if vassal.life.state != State::Ready
                || !heartbeat::overdue(vassal.last_heartbeat, now, tolerance)
            {
                continue;
            }
            let Some(pid) = vassal.pid else { continue };
            warn!(
                vassal = %vassal.name,
                pid,
                tolerance_secs = tolerance.as_secs(),
                "vassal missed its heartbeat: cursing it (SIGKILL), it will be respawned"
            );
            vassal.cursed = unix_now();
            vassal.last_heartbeat = None;
            spawn::send_signal(-(pid as i32), libc::SIGKILL);
        }
    }

    /// Watches an on-demand vassal's socket for its next connection.
    fn arm_on_demand(&mut self, path: &Path) {
        let reports = self.reports.clone();
        let Some(socket) = self
            .vassals
            .get_mut(path)
            .and_then(|v| v.on_demand.as_mut())
        else {
            return;
        };
        let owned = path.to_owned();
        if let Err(error) = socket.arm(move || {
            let _ = reports.send(VassalReport::Connection { path: owned });
        }) {
            error!(%error, socket = %socket.address(), "cannot watch the on-demand socket");
        }
    }

    fn serve_metrics(&self, accepted: std::io::Result<StatsStream>) {
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                warn!(%error, "emperor-stats-prometheus accept failed");
                return;
            }
        };
        let body = super::prometheus::render(&self.stats());
        stats_server::serve_http(
            stream,
            crate::protocol::prometheus::CONTENT_TYPE,
            body,
            &self.stats_clients,
        );
    }
}

/// Which sysctl to raise when inotify fails on a kernel limit: `inotify_init` gives EMFILE
/// at `fs.inotify.max_user_instances`, `inotify_add_watch` gives ENOSPC (notify's
/// `MaxFilesWatch`) at `fs.inotify.max_user_watches` (inotify(7), "/proc interfaces").
fn inotify_limit_hint(error: &notify::Error) -> Option<&'static str> {
    match &error.kind {
        notify::ErrorKind::MaxFilesWatch => Some(
            "raise the `fs.inotify.max_user_watches` sysctl, e.g. \
             `sysctl fs.inotify.max_user_watches=524288`",
        ),
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::ENOSPC) => Some(
            "raise the `fs.inotify.max_user_watches` sysctl, e.g. \
             `sysctl fs.inotify.max_user_watches=524288`",
        ),
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::EMFILE) => Some(
            "raise the `fs.inotify.max_user_instances` sysctl, e.g. \
             `sysctl fs.inotify.max_user_instances=1024`, or the open-file limit",
        ),
        _ => None,
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inotify_limits_name_the_sysctl_to_raise() {
        fn check(error: notify::Error, expected: Option<&str>) {
            let hint = inotify_limit_hint(&error);
            match expected {
                Some(sysctl) => assert!(
                    hint.is_some_and(|hint| hint.contains(sysctl)),
                    "{error:?}: expected a hint naming {sysctl}, got {hint:?}"
                ),
                None => assert_eq!(hint, None, "{error:?}"),
            }
        }
        let os = |code| notify::Error::io(std::io::Error::from_raw_os_error(code));
        check(
            notify::Error::new(notify::ErrorKind::MaxFilesWatch),
            Some("`fs.inotify.max_user_watches`"),
        );
        check(os(libc::ENOSPC), Some("`fs.inotify.max_user_watches`"));
        check(os(libc::EMFILE), Some("`fs.inotify.max_user_instances`"));
        check(os(libc::EACCES), None);
        check(notify::Error::path_not_found(), None);
    }
}
