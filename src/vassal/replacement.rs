//! Why and when a worker is replaced (recycled): each worker's own limits, the cause of a
//! replacement, and the queue that replaces one worker at a time.
//!
//! uWSGI recycles a worker by letting it exit and forking another afterwards, so capacity
//! dips while the new one starts, and with `max-requests` alone every worker tends to reach
//! its limit at the same moment. kaiser staggers and overlaps instead:
//! - each worker's `max-requests` gets `(id - 1) × max-requests-delta` (as uWSGI) plus a
//!   random `0..=max-requests-jitter` drawn at every spawn (gunicorn's idea), and
//!   `max-worker-lifetime` gets `(id - 1) × max-worker-lifetime-delta`;
//! - a worker over a limit asks the master; the master forks its replacement first, and
//!   stops the old worker gracefully only once the replacement accepts;
//! - only one replacement is in progress at a time: the next queued worker is replaced when
//!   the previous replacement accepts (chain reload uses the same queue).
//!
//! This module holds the decisions and the bookkeeping; the master does the forking and
//! signalling. It does not read config files or touch sockets.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::worker::to_master::{Limit, ToMaster};

const MB: f64 = 1024.0 * 1024.0;

/// This spawn's `max-requests` for worker `id`: the base, the uWSGI delta and a fresh jitter.
pub(super) fn max_requests_for(config: &Config, id: u32) -> u64 {
    if config.max_requests == 0 {
        return 0;
    }
    let delta = u64::from(id.saturating_sub(1)).saturating_mul(config.max_requests_delta);
    let jitter = match config.max_requests_jitter {
        0 => 0,
        // RandomState is seeded from the OS for each instance: enough randomness to spread
        // restarts, without a dependency.
        n => RandomState::new().hash_one((id, Instant::now())) % (n + 1),
    };
    config
        .max_requests
        .saturating_add(delta)
        .saturating_add(jitter)
}

/// Worker `id`'s `max-worker-lifetime`, with its delta; `None` when off.
pub(super) fn lifetime_for(config: &Config, id: u32) -> Option<Duration> {
    if config.max_worker_lifetime.is_zero() {
        return None;
    }
    Some(config.max_worker_lifetime + config.max_worker_lifetime_delta * id.saturating_sub(1))
}

/// Why a worker is replaced; displayed in the log line with the figures.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Cause {
    /// The worker asked (`max-requests`, `reload-on-rss`, `reload-on-as`).
    Asked {
        limit: Limit,
        value: u64,
        max: u64,
    },
    Lifetime {
        lived: Duration,
        max: Duration,
    },
    ChainReload,
    WorkersReload,
}

impl Cause {
    pub(super) fn from_message(message: ToMaster) -> Option<Cause> {
        match message {
            ToMaster::Recycle { limit, value, max } => Some(Cause::Asked { limit, value, max }),
            ToMaster::Ready => None,
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Asked {
                limit: Limit::MaxRequests,
                value,
                max,
            } => write!(f, "max-requests reached ({value} requests, limit {max})"),
            Cause::Asked {
                limit: Limit::ReloadOnRss,
                value,
                max,
            } => write!(
                f,
                "reload-on-rss: {:.1} MB resident, limit {:.1} MB",
                *value as f64 / MB,
                *max as f64 / MB
            ),
            Cause::Asked {
                limit: Limit::ReloadOnAs,
                value,
                max,
            } => write!(
                f,
                "reload-on-as: {:.1} MB address space, limit {:.1} MB",
                *value as f64 / MB,
                *max as f64 / MB
            ),
            Cause::Asked {
                limit: Limit::Exception,
                value,
                ..
            } => write!(
                f,
                "reload-on-exception: the app raised (after {value} requests)"
            ),
            Cause::Lifetime { lived, max } => write!(
                f,
                "max-worker-lifetime reached (ran {} s, limit {} s)",
                lived.as_secs(),
                max.as_secs()
            ),
            Cause::ChainReload => write!(f, "chain reload"),
            Cause::WorkersReload => write!(f, "workers reload"),
        }
    }
}

/// `evil-reload-on-rss` / `evil-reload-on-as`: a description of the limit `memory`
/// ((address space, resident) bytes) is over, if any.
pub(super) fn evil_over(config: &Config, memory: (u64, u64)) -> Option<String> {
    let (size, resident) = memory;
    if config.evil_reload_on_rss > 0 && resident >= config.evil_reload_on_rss {
        return Some(format!(
            "evil-reload-on-rss: {:.1} MB resident, limit {:.1} MB",
            resident as f64 / MB,
            config.evil_reload_on_rss as f64 / MB
        ));
    }
    if config.evil_reload_on_as > 0 && size >= config.evil_reload_on_as {
        return Some(format!(
            "evil-reload-on-as: {:.1} MB address space, limit {:.1} MB",
            size as f64 / MB,
            config.evil_reload_on_as as f64 / MB
        ));
    }
    None
}

/// The one-at-a-time queue of replacements (the replaced workers still alive are in the
/// process table, retiring).
#[derive(Debug, Default)]
pub(super) struct ReplacementQueue {
    queue: VecDeque<(u32, Cause)>,
    /// The worker id whose replacement does not accept yet.
    in_progress: Option<u32>,
    /// A chain reload is running (for its "complete" log line).
    chain: bool,
}

impl ReplacementQueue {
    /// Queues worker `id`; false if it is already queued or being replaced.
    pub fn request(&mut self, id: u32, cause: Cause) -> bool {
        if self.in_progress == Some(id) || self.queue.iter().any(|(queued, _)| *queued == id) {
            return false;
        }
        if cause == Cause::ChainReload {
            self.chain = true;
        }
        self.queue.push_back((id, cause));
        true
    }

    pub fn is_pending(&self, id: u32) -> bool {
        self.in_progress == Some(id) || self.queue.iter().any(|(queued, _)| *queued == id)
    }

    /// The next worker to replace, unless a replacement is still starting. The caller
    /// reports [`ReplacementQueue::started`] if it did replace it.
    pub fn next_turn(&mut self) -> Option<(u32, Cause)> {
        if self.in_progress.is_some() {
            return None;
        }
        self.queue.pop_front()
    }

    /// Worker `id`'s turn came but it could not be replaced yet: it goes first next time.
    pub fn put_back(&mut self, id: u32, cause: Cause) {
        self.queue.push_front((id, cause));
    }

    pub fn started(&mut self, id: u32) {
        self.in_progress = Some(id);
    }

    /// A worker of `id` accepts. True if that ends the replacement in progress.
    pub fn accepted(&mut self, id: u32) -> bool {
        if self.in_progress != Some(id) {
            return false;
        }
        self.in_progress = None;
        true
    }

    /// True once when a chain reload has replaced its last worker.
    pub fn chain_done(&mut self) -> bool {
        let done = self.chain
            && self.in_progress.is_none()
            && !self
                .queue
                .iter()
                .any(|(_, cause)| *cause == Cause::ChainReload);
        if done {
            self.chain = false;
        }
        done
    }

    /// Forgets every queued and running replacement (a replacement failed, or all workers
    /// are being replaced at once).
    pub fn abort(&mut self) {
        self.queue.clear();
        self.in_progress = None;
        self.chain = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_requests: u64, delta: u64, jitter: u64) -> Config {
        Config {
            max_requests,
            max_requests_delta: delta,
            max_requests_jitter: jitter,
            ..Config::default()
        }
    }

    #[test]
    fn max_requests_are_staggered_by_delta_and_jitter() {
        for (config, id, expected) in [
            (config(0, 10, 10), 3, 0..=0),
            (config(100, 0, 0), 4, 100..=100),
            (config(100, 10, 0), 1, 100..=100),
            (config(100, 10, 0), 4, 130..=130),
            (config(100, 0, 20), 2, 100..=120),
            (config(100, 5, 20), 3, 110..=130),
        ] {
            for _ in 0..50 {
                let got = max_requests_for(&config, id);
                assert!(
                    expected.contains(&got),
                    "worker {id}: {got} not in {expected:?}"
                );
            }
        }
        // Jitter really varies between spawns.
        let config = config(1000, 0, 1000);
        let draws: std::collections::HashSet<u64> =
            (0..20).map(|_| max_requests_for(&config, 1)).collect();
        assert!(draws.len() > 1, "jitter always gave {draws:?}");
    }

    #[test]
    fn lifetimes_are_staggered_by_delta() {
        let mut config = Config::default();
        assert_eq!(lifetime_for(&config, 1), None);
        config.max_worker_lifetime = Duration::from_secs(60);
        config.max_worker_lifetime_delta = Duration::from_secs(5);
        assert_eq!(lifetime_for(&config, 1), Some(Duration::from_secs(60)));
        assert_eq!(lifetime_for(&config, 3), Some(Duration::from_secs(70)));
    }

    #[test]
    fn causes_name_the_limit_and_the_figures() {
        let mb = 1024 * 1024;
        for (cause, expected) in [
            (
                Cause::Asked {
                    limit: Limit::MaxRequests,
                    value: 1001,
                    max: 1000,
                },
                "max-requests reached (1001 requests, limit 1000)",
            ),
            (
                Cause::Asked {
                    limit: Limit::ReloadOnRss,
                    value: 130 * mb,
                    max: 128 * mb,
                },
                "reload-on-rss: 130.0 MB resident, limit 128.0 MB",
            ),
            (
                Cause::Lifetime {
                    lived: Duration::from_millis(3_600_400),
                    max: Duration::from_secs(3600),
                },
                "max-worker-lifetime reached (ran 3600 s, limit 3600 s)",
            ),
        ] {
            assert_eq!(cause.to_string(), expected);
        }
        let mut config = Config::default();
        assert_eq!(evil_over(&config, (u64::MAX, u64::MAX)), None);
        config.evil_reload_on_rss = 100 * mb;
        assert_eq!(evil_over(&config, (500 * mb, 99 * mb)), None);
        assert_eq!(
            evil_over(&config, (500 * mb, 150 * mb)).as_deref(),
            Some("evil-reload-on-rss: 150.0 MB resident, limit 100.0 MB")
        );
    }

    #[test]
    fn one_replacement_at_a_time() {
        let mut queue = ReplacementQueue::default();
        assert!(queue.request(1, Cause::WorkersReload));
        assert!(queue.request(2, Cause::WorkersReload));
        assert!(!queue.request(1, Cause::WorkersReload), "queued twice");
        let (id, _) = queue.next_turn().unwrap();
        assert_eq!(id, 1);
        queue.started(1);
        assert_eq!(
            queue.next_turn(),
            None,
            "worker 2 waits for worker 1's replacement"
        );
        assert!(
            !queue.request(1, Cause::WorkersReload),
            "already in progress"
        );
        assert!(!queue.accepted(2));
        assert!(queue.accepted(1));
        assert_eq!(queue.next_turn().map(|(id, _)| id), Some(2));
    }

    #[test]
    fn chain_done_fires_once_after_the_last_worker() {
        let mut queue = ReplacementQueue::default();
        for id in 1..=2 {
            queue.request(id, Cause::ChainReload);
        }
        for id in 1..=2 {
            assert!(!queue.chain_done());
            let (next, _) = queue.next_turn().unwrap();
            assert_eq!(next, id);
            queue.started(id);
            assert!(!queue.chain_done());
            queue.accepted(id);
        }
        assert!(queue.chain_done());
        assert!(!queue.chain_done());
    }
}
