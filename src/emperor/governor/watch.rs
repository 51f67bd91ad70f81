//! Turning the filesystem into vassal events: inotify watches on each monitor's root
//! (re-armed when a directory comes back), debounced rescans plus a periodic safety-net
//! rescan, and the diff of each monitor's snapshot fed to the vassals' state machines.
//!
//! What counts as a vassal and how snapshots differ is decided in [`crate::emperor::monitor`];
//! this file only carries it out. It must not spawn or signal anything itself: every change
//! goes through [`Governor::feed`] or [`Governor::on_added`].

use std::time::{Duration, Instant};

use notify::Watcher as _;
use tracing::{debug, error, info, warn};

use super::Governor;
use crate::emperor::monitor::{self, Change, Monitor, Snapshot};
use crate::emperor::state::Event;

/// How long the filesystem must be quiet before a rescan (see [`crate::emperor::debounce::Debouncer`]).
pub(super) const DEBOUNCE_QUIET: Duration = Duration::from_millis(30);
pub(super) const DEBOUNCE_MAX_WAIT: Duration = Duration::from_millis(300);
/// The safety-net rescan for missed events, edits behind symlinks and directories that appear.
const RESCAN_INTERVAL: Duration = Duration::from_secs(5);
/// Without an inotify watch (limit reached, or a monitored directory that does not exist
/// yet), polling is all there is for that monitor: poll faster.
const RESCAN_INTERVAL_UNWATCHED: Duration = Duration::from_secs(1);

pub(super) struct MonitorState {
    pub(super) monitor: Monitor,
    pub(super) snapshot: Snapshot,
    pub(super) watched: bool,
    /// The last scan error logged, so a missing directory is reported once, not every rescan.
    pub(super) error_logged: Option<std::io::ErrorKind>,
}

impl MonitorState {
    pub(super) fn new(arg: &str) -> Self {
        MonitorState {
            monitor: monitor::classify_monitor(arg),
            snapshot: Snapshot::new(),
            watched: false,
            error_logged: None,
        }
    }
}

/// The inotify watcher, or `None` (with the reason logged) when inotify cannot be used.
pub(super) fn watcher(
    events: tokio::sync::mpsc::UnboundedSender<notify::Result<notify::Event>>,
) -> Option<notify::RecommendedWatcher> {
    match notify::recommended_watcher(move |event| {
        // The receiver only goes away when the loop ends.
        let _ = events.send(event);
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
    }
}

impl Governor {
    pub(super) fn rescan_interval(&self) -> Duration {
        if self.watcher.is_none() || self.monitors.iter().any(|state| !state.watched) {
            RESCAN_INTERVAL_UNWATCHED
        } else {
            RESCAN_INTERVAL
        }
    }

    pub(super) fn on_fs_event(&mut self, event: notify::Result<notify::Event>) {
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

    pub(super) fn rescan(&mut self) {
        for idx in 0..self.monitors.len() {
            let report = monitor::scan_with(&self.monitors[idx].monitor, &self.settings.scan);
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
            for path in &report.not_regular {
                if self.warned.insert(path.clone()) {
                    warn!(vassal = %monitor::vassal_name(path), file = %path.display(),
                        "not a regular file (or a dangling symlink), ignoring it");
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
}

const WATCHES_HINT: &str = "raise the `fs.inotify.max_user_watches` sysctl, e.g. \
     `sysctl fs.inotify.max_user_watches=524288`";

/// Which sysctl to raise when inotify fails on a kernel limit: `inotify_init` gives EMFILE
/// at `fs.inotify.max_user_instances`, `inotify_add_watch` gives ENOSPC (notify's
/// `MaxFilesWatch`) at `fs.inotify.max_user_watches` (inotify(7), "/proc interfaces").
fn inotify_limit_hint(error: &notify::Error) -> Option<&'static str> {
    match &error.kind {
        notify::ErrorKind::MaxFilesWatch => Some(WATCHES_HINT),
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::ENOSPC) => Some(WATCHES_HINT),
        notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::EMFILE) => Some(
            "raise the `fs.inotify.max_user_instances` sysctl, e.g. \
             `sysctl fs.inotify.max_user_instances=1024`, or the open-file limit",
        ),
        _ => None,
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
