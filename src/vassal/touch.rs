//! `touch-reload`, `touch-chain-reload`, `touch-workers-reload`, `fs-brutal-reload`: files
//! whose change asks for a reload, and `touch-signal` files whose change raises a uWSGI
//! signal, checked once per master cycle (uWSGI's `uwsgi_check_touches`).
//!
//! A file fires when its mtime changes, when it is created, and when it is deleted. A file
//! missing at start is logged once and fires when it appears. The state is taken when the
//! master starts, so the re-exec of a reload does not fire again for the same touch.
//!
//! Polling `stat(2)` once a second costs nothing and works on every filesystem, including
//! the bind mounts and NFS exports where inotify misses changes made elsewhere.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TouchAction {
    Reload,
    ChainReload,
    WorkersReload,
    BrutalReload,
    Signal(u8),
}

impl TouchAction {
    pub fn option(self) -> &'static str {
        match self {
            TouchAction::Reload => "touch-reload",
            TouchAction::ChainReload => "touch-chain-reload",
            TouchAction::WorkersReload => "touch-workers-reload",
            TouchAction::BrutalReload => "fs-brutal-reload",
            TouchAction::Signal(_) => "touch-signal",
        }
    }
}

struct Watched {
    path: PathBuf,
    action: TouchAction,
    /// The mtime last seen; `None` while the file does not exist.
    seen: Option<SystemTime>,
}

pub(super) struct Touches {
    watched: Vec<Watched>,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Touches {
    pub fn new(config: &Config) -> Touches {
        let lists = [
            (&config.touch_reload, TouchAction::Reload),
            (&config.touch_chain_reload, TouchAction::ChainReload),
            (&config.touch_workers_reload, TouchAction::WorkersReload),
            (&config.fs_brutal_reload, TouchAction::BrutalReload),
        ];
        let signals = config
            .touch_signal
            .iter()
            .map(|(path, signal)| (path, TouchAction::Signal(*signal)));
        let all = lists
            .iter()
            .flat_map(|(paths, action)| paths.iter().map(move |path| (path, *action)))
            .chain(signals);
        let mut watched = Vec::new();
        for (path, action) in all {
            let seen = mtime(path);
            if seen.is_none() {
                tracing::info!(
                    path = %path.display(),
                    "{}: the file does not exist; creating it will trigger",
                    action.option()
                );
            }
            watched.push(Watched {
                path: path.clone(),
                action,
                seen,
            });
        }
        Touches { watched }
    }

    /// The actions whose files changed since the last call, each with the file, in config
    /// order. Every changed file is recorded, so one touch fires once.
    pub fn changed(&mut self) -> Vec<(TouchAction, PathBuf)> {
        let mut fired = Vec::new();
        for watched in &mut self.watched {
            let now = mtime(&watched.path);
            if now != watched.seen {
                watched.seen = now;
                fired.push((watched.action, watched.path.clone()));
            }
        }
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_on_change_creation_and_deletion_once_each() {
        let dir = std::env::temp_dir().join(format!("kaiser-touch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let existing = dir.join("reload");
        let missing = dir.join("chain");
        std::fs::write(&existing, "").unwrap();
        let _ = std::fs::remove_file(&missing);
        let config = Config {
            touch_reload: vec![existing.clone()],
            touch_chain_reload: vec![missing.clone()],
            ..Config::default()
        };
        let mut touches = Touches::new(&config);
        assert_eq!(touches.changed(), vec![]);

        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&existing)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(
            touches.changed(),
            vec![(TouchAction::Reload, existing.clone())]
        );
        assert_eq!(touches.changed(), vec![], "one touch fires once");

        std::fs::write(&missing, "").unwrap();
        assert_eq!(
            touches.changed(),
            vec![(TouchAction::ChainReload, missing.clone())]
        );
        std::fs::remove_file(&missing).unwrap();
        std::fs::remove_file(&existing).unwrap();
        assert_eq!(
            touches.changed(),
            vec![
                (TouchAction::Reload, existing.clone()),
                (TouchAction::ChainReload, missing.clone())
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
