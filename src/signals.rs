//! uWSGI signals (reference §8.2): 256 numbered events an app registers handlers for
//! (`uwsgi.register_signal`), raises (`uwsgi.signal`) or attaches to timers and crons
//! (`add_timer`, `add_rb_timer`, `add_cron`), routed to a target: one worker, all workers,
//! worker N, or the spooler.
//!
//! Everything is in one shared mapping of atomics the master makes before it forks (DESIGN.md
//! rule 6): the table of registered signals and their targets, a pending bitmap per process
//! slot (workers by id, then spoolers), and the timer and cron tables. Raising a signal sets
//! bits in the target's bitmap, from whichever process raises it; the master fires timers and
//! crons the same way from its loop. Each process takes its own bits and runs the handlers on
//! its main thread (workers within 200 ms, in the loop that runs Python's own signal
//! handlers). A bit set for a worker that is being respawned waits for its replacement, so a
//! signal is not lost to a respawn.
//!
//! This module holds no Python: the handlers are Python objects in each process
//! (`python::signals`), inherited through fork when registered at import time.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

use crate::sys::shm::SharedWords;

pub const SIGNALS: usize = 256;
const BITMAP_WORDS: usize = SIGNALS / 64;
pub const MAX_TIMERS: usize = 64;
pub const MAX_CRONS: usize = 64;
const TIMER_WORDS: usize = 4;
const CRON_WORDS: usize = 7;
pub const MAX_FILEMONS: usize = 16;
/// The longest path `add_file_monitor` takes.
pub const FILEMON_PATH_BYTES: usize = 512;
const FILEMON_WORDS: usize = 2 + FILEMON_PATH_BYTES / 8;

/// Where a signal goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `""`, `worker`, `worker0`: one worker (round robin).
    AnyWorker,
    /// `workers`, `active-workers`.
    AllWorkers,
    /// `workerN`.
    Worker(u32),
    /// `spooler`: every spooler process.
    Spoolers,
    /// `mule`: one mule (round robin).
    AnyMule,
    /// `mules`.
    AllMules,
    /// `muleN`.
    Mule(u32),
}

impl Target {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "" | "worker" | "worker0" => Target::AnyWorker,
            "workers" | "active-workers" => Target::AllWorkers,
            "spooler" | "spoolers" => Target::Spoolers,
            "mule" | "mule0" => Target::AnyMule,
            "mules" => Target::AllMules,
            other => match other.strip_prefix("worker") {
                Some(n) => Target::Worker(n.parse().ok()?),
                None => Target::Mule(other.strip_prefix("mule")?.parse().ok()?),
            },
        })
    }

    fn encode(self) -> u64 {
        match self {
            Target::AnyWorker => 1,
            Target::AllWorkers => 2,
            Target::Spoolers => 3,
            Target::Worker(n) => 4 | (u64::from(n) << 8),
            Target::AnyMule => 5,
            Target::AllMules => 6,
            Target::Mule(n) => 7 | (u64::from(n) << 8),
        }
    }

    fn decode(word: u64) -> Option<Self> {
        Some(match word & 0xff {
            1 => Target::AnyWorker,
            2 => Target::AllWorkers,
            3 => Target::Spoolers,
            4 => Target::Worker((word >> 8) as u32),
            5 => Target::AnyMule,
            6 => Target::AllMules,
            7 => Target::Mule((word >> 8) as u32),
            _ => return None,
        })
    }
}

/// A cron entry's fields, uWSGI's way: -1 is `*`, -N is "every N", 7 is Sunday too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronSpec {
    pub minute: i64,
    pub hour: i64,
    pub day: i64,
    pub month: i64,
    pub weekday: i64,
}

/// A broken-down local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronTime {
    pub minute: i64,
    pub hour: i64,
    pub day: i64,
    /// 1–12.
    pub month: i64,
    /// 0 (Sunday) – 6.
    pub weekday: i64,
}

fn field_matches(spec: i64, value: i64) -> bool {
    match spec {
        -1 => true,
        n if n < -1 => value % (-n) == 0,
        n => n == value,
    }
}

impl CronSpec {
    /// Whether the entry fires at `time` (uWSGI's `uwsgi_cron_task_needs_execution`: day of
    /// month and weekday are ORed when both are set).
    pub fn matches(&self, time: &CronTime) -> bool {
        let weekday = if self.weekday == 7 { 0 } else { self.weekday };
        let day_ok = if self.day >= 0 && weekday >= 0 {
            field_matches(self.day, time.day) || field_matches(weekday, time.weekday)
        } else {
            field_matches(self.day, time.day) && field_matches(weekday, time.weekday)
        };
        field_matches(self.minute, time.minute)
            && field_matches(self.hour, time.hour)
            && field_matches(self.month, time.month)
            && day_ok
    }
}

/// The shared tables.
pub struct Board {
    words: SharedWords,
    /// Process slots: workers 1..=workers, then spoolers, then mules.
    workers: usize,
    spoolers: usize,
    mules: usize,
}

const ROUND_ROBIN: usize = SIGNALS;
const PENDING: usize = SIGNALS + 1;

impl Board {
    pub fn new(workers: usize, spoolers: usize, mules: usize) -> io::Result<Self> {
        let slots = 1 + workers + spoolers + mules;
        let len = PENDING
            + slots * BITMAP_WORDS
            + MAX_TIMERS * TIMER_WORDS
            + MAX_CRONS * CRON_WORDS
            + MAX_FILEMONS * FILEMON_WORDS;
        Ok(Board {
            words: SharedWords::new(len)?,
            workers,
            spoolers,
            mules,
        })
    }

    fn w(&self) -> &[AtomicU64] {
        self.words.words()
    }

    fn timers_at(&self) -> usize {
        PENDING + (1 + self.workers + self.spoolers + self.mules) * BITMAP_WORDS
    }

    fn crons_at(&self) -> usize {
        self.timers_at() + MAX_TIMERS * TIMER_WORDS
    }

    pub fn is_registered(&self, signal: u8) -> bool {
        self.w()[usize::from(signal)].load(Relaxed) != 0
    }

    pub fn register(&self, signal: u8, target: Target) {
        self.w()[usize::from(signal)].store(target.encode(), Relaxed);
    }

    fn pending(&self, slot: usize) -> &[AtomicU64] {
        let start = PENDING + slot * BITMAP_WORDS;
        &self.w()[start..start + BITMAP_WORDS]
    }

    fn mark(&self, slot: usize, signal: u8) {
        self.pending(slot)[usize::from(signal) / 64].fetch_or(1 << (signal % 64), Relaxed);
    }

    /// The process slot of worker `id` (1-based).
    pub fn worker_slot(&self, id: u32) -> Option<usize> {
        (id >= 1 && id as usize <= self.workers).then_some(id as usize)
    }

    /// The process slot of spooler `index` (0-based).
    pub fn spooler_slot(&self, index: usize) -> Option<usize> {
        (index < self.spoolers).then_some(1 + self.workers + index)
    }

    /// The process slot of mule `id` (1-based).
    pub fn mule_slot(&self, id: u32) -> Option<usize> {
        (id >= 1 && id as usize <= self.mules).then(|| self.workers + self.spoolers + id as usize)
    }

    /// Raises `signal` towards its registered target; false if it is not registered.
    pub fn raise(&self, signal: u8) -> bool {
        let Some(target) = Target::decode(self.w()[usize::from(signal)].load(Relaxed)) else {
            return false;
        };
        match target {
            Target::AnyWorker => {
                let next = self.w()[ROUND_ROBIN].fetch_add(1, Relaxed) as usize;
                if self.workers > 0 {
                    self.mark(1 + next % self.workers, signal);
                }
            }
            Target::AllWorkers => (1..=self.workers).for_each(|slot| self.mark(slot, signal)),
            Target::Worker(id) => match self.worker_slot(id) {
                Some(slot) => self.mark(slot, signal),
                None => return false,
            },
            Target::Spoolers => {
                (0..self.spoolers).for_each(|i| self.mark(1 + self.workers + i, signal))
            }
            Target::AnyMule => {
                let next = self.w()[ROUND_ROBIN].fetch_add(1, Relaxed) as usize;
                if self.mules > 0 {
                    let id = 1 + (next % self.mules) as u32;
                    self.mark(self.mule_slot(id).expect("id within the mules"), signal);
                }
            }
            Target::AllMules => (1..=self.mules as u32)
                .for_each(|id| self.mark(self.mule_slot(id).expect("id within the mules"), signal)),
            Target::Mule(id) => match self.mule_slot(id) {
                Some(slot) => self.mark(slot, signal),
                None => return false,
            },
        }
        true
    }

    /// Takes the signals pending for `slot`, lowest number first.
    pub fn take(&self, slot: usize) -> Vec<u8> {
        let mut taken = Vec::new();
        for (index, word) in self.pending(slot).iter().enumerate() {
            if word.load(Relaxed) == 0 {
                continue;
            }
            let bits = word.swap(0, Relaxed);
            for bit in 0..64 {
                if bits & (1 << bit) != 0 {
                    taken.push((index * 64 + bit) as u8);
                }
            }
        }
        taken
    }

    /// `add_timer` (`iterations` 0: forever) and `add_rb_timer`: fires every `seconds`
    /// from `now_ms` (Unix milliseconds). False when every timer slot is taken.
    pub fn add_timer(&self, signal: u8, seconds: u64, iterations: u64, now_ms: u64) -> bool {
        let base = self.timers_at();
        let period_ms = seconds.max(1) * 1000;
        // With `lazy-apps` every worker imports the app and adds the same timer: one is
        // enough, or it would fire once per worker.
        let duplicate = (0..MAX_TIMERS).any(|index| {
            let slot = &self.w()[base + index * TIMER_WORDS..][..TIMER_WORDS];
            iterations == 0
                && slot[0].load(Relaxed) == u64::from(signal) + 1
                && slot[1].load(Relaxed) == period_ms
                && slot[3].load(Relaxed) == 0
        });
        if duplicate {
            return true;
        }
        for index in 0..MAX_TIMERS {
            let slot = &self.w()[base + index * TIMER_WORDS..][..TIMER_WORDS];
            // Fill the fields first, then claim the slot: the master never sees half a timer.
            if slot[0].load(Relaxed) != 0 {
                continue;
            }
            slot[1].store(period_ms, Relaxed);
            slot[2].store(now_ms + period_ms, Relaxed);
            slot[3].store(iterations, Relaxed);
            if slot[0]
                .compare_exchange(0, u64::from(signal) + 1, Relaxed, Relaxed)
                .is_ok()
            {
                return true;
            }
        }
        false
    }

    /// `add_cron`. False when every cron slot is taken.
    pub fn add_cron(&self, signal: u8, spec: CronSpec) -> bool {
        let base = self.crons_at();
        let fields = [spec.minute, spec.hour, spec.day, spec.month, spec.weekday];
        let duplicate = (0..MAX_CRONS).any(|index| {
            let slot = &self.w()[base + index * CRON_WORDS..][..CRON_WORDS];
            slot[0].load(Relaxed) == u64::from(signal) + 1
                && slot[1..6]
                    .iter()
                    .zip(fields)
                    .all(|(word, value)| word.load(Relaxed) == value as u64)
        });
        if duplicate {
            return true;
        }
        for index in 0..MAX_CRONS {
            let slot = &self.w()[base + index * CRON_WORDS..][..CRON_WORDS];
            if slot[0].load(Relaxed) != 0 {
                continue;
            }
            for (word, value) in
                slot[1..6]
                    .iter()
                    .zip([spec.minute, spec.hour, spec.day, spec.month, spec.weekday])
            {
                word.store(value as u64, Relaxed);
            }
            slot[6].store(0, Relaxed);
            if slot[0]
                .compare_exchange(0, u64::from(signal) + 1, Relaxed, Relaxed)
                .is_ok()
            {
                return true;
            }
        }
        false
    }

    fn filemons_at(&self) -> usize {
        self.crons_at() + MAX_CRONS * CRON_WORDS
    }

    /// `add_file_monitor`: the master raises `signal` when `path` changes. False when the
    /// path is too long or every slot is taken.
    pub fn add_file_monitor(&self, signal: u8, path: &[u8]) -> bool {
        if path.is_empty() || path.len() > FILEMON_PATH_BYTES {
            return false;
        }
        let base = self.filemons_at();
        for index in 0..MAX_FILEMONS {
            let slot = &self.w()[base + index * FILEMON_WORDS..][..FILEMON_WORDS];
            if slot[0].load(Relaxed) != 0 {
                continue;
            }
            slot[1].store(path.len() as u64, Relaxed);
            for (word, chunk) in slot[2..].iter().zip(path.chunks(8)) {
                let mut bytes = [0u8; 8];
                bytes[..chunk.len()].copy_from_slice(chunk);
                word.store(u64::from_le_bytes(bytes), Relaxed);
            }
            if slot[0]
                .compare_exchange(0, u64::from(signal) + 1, Relaxed, Relaxed)
                .is_ok()
            {
                return true;
            }
        }
        false
    }

    /// Every file monitor: (signal, path).
    pub fn file_monitors(&self) -> Vec<(u8, Vec<u8>)> {
        let base = self.filemons_at();
        (0..MAX_FILEMONS)
            .filter_map(|index| {
                let slot = &self.w()[base + index * FILEMON_WORDS..][..FILEMON_WORDS];
                let signal = slot[0].load(Relaxed);
                if signal == 0 {
                    return None;
                }
                let len = slot[1].load(Relaxed) as usize;
                let mut path = Vec::with_capacity(len + 8);
                for word in &slot[2..] {
                    path.extend_from_slice(&word.load(Relaxed).to_le_bytes());
                    if path.len() >= len {
                        break;
                    }
                }
                path.truncate(len);
                Some(((signal - 1) as u8, path))
            })
            .collect()
    }

    /// When the next timer is due (Unix milliseconds), for the master's wait.
    pub fn next_timer_ms(&self) -> Option<u64> {
        let base = self.timers_at();
        (0..MAX_TIMERS)
            .filter_map(|index| {
                let slot = &self.w()[base + index * TIMER_WORDS..][..TIMER_WORDS];
                (slot[0].load(Relaxed) != 0).then(|| slot[2].load(Relaxed))
            })
            .min()
    }

    /// The master, each turn of its loop: raises the signals of due timers (`now_ms`: Unix
    /// milliseconds), and of crons matching `time` (once per minute: `minute_stamp` is the
    /// Unix minute).
    pub fn tick(&self, now_ms: u64, time: &CronTime, minute_stamp: u64) {
        let base = self.timers_at();
        for index in 0..MAX_TIMERS {
            let slot = &self.w()[base + index * TIMER_WORDS..][..TIMER_WORDS];
            let signal = slot[0].load(Relaxed);
            let due = slot[2].load(Relaxed);
            if signal == 0 || due > now_ms {
                continue;
            }
            self.raise((signal - 1) as u8);
            // The next one a period after this one was due, so a late turn of the loop does
            // not shift every later firing; after a long stall, one firing, not a burst.
            let period = slot[1].load(Relaxed);
            slot[2].store((due + period).max(now_ms + 1), Relaxed);
            match slot[3].load(Relaxed) {
                0 => {}
                1 => slot[0].store(0, Relaxed),
                left => slot[3].store(left - 1, Relaxed),
            }
        }
        let base = self.crons_at();
        for index in 0..MAX_CRONS {
            let slot = &self.w()[base + index * CRON_WORDS..][..CRON_WORDS];
            let signal = slot[0].load(Relaxed);
            if signal == 0 || slot[6].load(Relaxed) == minute_stamp {
                continue;
            }
            let field = |i: usize| slot[i].load(Relaxed) as i64;
            let spec = CronSpec {
                minute: field(1),
                hour: field(2),
                day: field(3),
                month: field(4),
                weekday: field(5),
            };
            if spec.matches(time) {
                slot[6].store(minute_stamp, Relaxed);
                self.raise((signal - 1) as u8);
            }
        }
    }
}

static BOARD: OnceLock<Board> = OnceLock::new();

/// Called by the master before the app is imported and before any fork.
pub fn create(workers: usize, spoolers: usize, mules: usize) -> io::Result<()> {
    let _ = BOARD.set(Board::new(workers, spoolers, mules)?);
    Ok(())
}

pub fn board() -> Option<&'static Board> {
    BOARD.get()
}

/// Local time, broken down for crons.
pub fn local_time(unix: u64) -> CronTime {
    let Some(tm) = crate::sys::time::local_tm(unix as i64) else {
        // A time localtime_r cannot represent: what its zeroed `tm` always read as.
        return CronTime {
            minute: 0,
            hour: 0,
            day: 0,
            month: 1,
            weekday: 0,
        };
    };
    CronTime {
        minute: i64::from(tm.tm_min),
        hour: i64::from(tm.tm_hour),
        day: i64::from(tm.tm_mday),
        month: i64::from(tm.tm_mon) + 1,
        weekday: i64::from(tm.tm_wday),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        for (text, target) in [
            ("", Some(Target::AnyWorker)),
            ("worker", Some(Target::AnyWorker)),
            ("workers", Some(Target::AllWorkers)),
            ("active-workers", Some(Target::AllWorkers)),
            ("worker3", Some(Target::Worker(3))),
            ("spooler", Some(Target::Spoolers)),
            ("mule1", Some(Target::Mule(1))),
            ("mules", Some(Target::AllMules)),
            ("mule", Some(Target::AnyMule)),
            ("farm_x", None),
            ("workerx", None),
        ] {
            assert_eq!(Target::parse(text), target, "{text:?}");
            if let Some(target) = target {
                assert_eq!(Target::decode(target.encode()), Some(target));
            }
        }
    }

    fn at(minute: i64, hour: i64, day: i64, month: i64, weekday: i64) -> CronTime {
        CronTime {
            minute,
            hour,
            day,
            month,
            weekday,
        }
    }

    fn cron(minute: i64, hour: i64, day: i64, month: i64, weekday: i64) -> CronSpec {
        CronSpec {
            minute,
            hour,
            day,
            month,
            weekday,
        }
    }

    #[test]
    fn cron_fields() {
        let every_minute = cron(-1, -1, -1, -1, -1);
        assert!(every_minute.matches(&at(7, 3, 1, 1, 0)));
        assert!(cron(30, 2, -1, -1, -1).matches(&at(30, 2, 9, 4, 3)));
        assert!(!cron(30, 2, -1, -1, -1).matches(&at(31, 2, 9, 4, 3)));
        // -5: every five minutes.
        assert!(cron(-5, -1, -1, -1, -1).matches(&at(15, 0, 1, 1, 0)));
        assert!(!cron(-5, -1, -1, -1, -1).matches(&at(16, 0, 1, 1, 0)));
        // 7 is Sunday.
        assert!(cron(0, 0, -1, -1, 7).matches(&at(0, 0, 5, 1, 0)));
        // Day of month and weekday both set: either matches.
        assert!(cron(0, 0, 1, -1, 1).matches(&at(0, 0, 1, 6, 4)));
        assert!(cron(0, 0, 1, -1, 1).matches(&at(0, 0, 2, 6, 1)));
        assert!(!cron(0, 0, 1, -1, 1).matches(&at(0, 0, 2, 6, 2)));
    }

    #[test]
    fn routing_timers_and_crons() {
        let board = Board::new(2, 1, 2).unwrap();
        assert!(!board.raise(5), "unregistered");
        board.register(5, Target::AllWorkers);
        board.register(6, Target::AnyWorker);
        board.register(7, Target::Spoolers);
        assert!(board.raise(5));
        assert!(board.raise(6));
        assert!(board.raise(6));
        assert!(board.raise(7));
        assert_eq!(board.take(1), vec![5, 6]);
        assert_eq!(board.take(2), vec![5, 6]);
        assert_eq!(board.take(board.spooler_slot(0).unwrap()), vec![7]);
        board.register(8, Target::Mule(2));
        assert!(board.raise(8));
        assert!(board.take(board.mule_slot(1).unwrap()).is_empty());
        assert_eq!(board.take(board.mule_slot(2).unwrap()), vec![8]);
        assert!(board.take(1).is_empty());
        // A timer every 2 s from t=100 s, for 2 iterations (an rb_timer).
        assert!(board.add_timer(5, 2, 2, 100_000));
        assert_eq!(board.next_timer_ms(), Some(102_000));
        let time = at(0, 0, 1, 1, 0);
        board.tick(101_000, &time, 0);
        assert!(board.take(1).is_empty());
        board.tick(102_300, &time, 0);
        assert_eq!(board.take(1), vec![5]);
        assert_eq!(
            board.next_timer_ms(),
            Some(104_000),
            "no drift from a late turn"
        );
        board.tick(104_000, &time, 0);
        assert_eq!(board.take(1), vec![5]);
        board.tick(106_000, &time, 0);
        assert!(board.take(1).is_empty(), "two iterations only");
        assert_eq!(board.take(2), vec![5], "all workers got it");
        // A cron fires once per matching minute; adding it again (a lazy worker) changes
        // nothing.
        assert!(board.add_cron(6, cron(-1, -1, -1, -1, -1)));
        assert!(board.add_cron(6, cron(-1, -1, -1, -1, -1)));
        board.tick(200_000, &time, 3);
        board.tick(201_000, &time, 3);
        board.tick(260_000, &time, 4);
        let fired: usize = (1..=2).map(|slot| board.take(slot).len()).sum();
        assert_eq!(fired, 2);
    }

    #[test]
    fn the_same_timer_added_twice_fires_once() {
        // With `lazy-apps`, each worker's import adds it.
        let board = Board::new(2, 0, 0).unwrap();
        board.register(9, Target::AllWorkers);
        assert!(board.add_timer(9, 1, 0, 100_000));
        assert!(board.add_timer(9, 1, 0, 100_500));
        board.tick(101_000, &at(0, 0, 1, 1, 0), 0);
        board.tick(101_000, &at(0, 0, 1, 1, 0), 0);
        assert_eq!(board.take(1), vec![9]);
        assert_eq!(board.next_timer_ms(), Some(102_000));
    }

    #[test]
    fn file_monitors_keep_their_paths() {
        let board = Board::new(1, 0, 0).unwrap();
        assert!(board.add_file_monitor(3, b"/etc/app/reload.flag"));
        assert!(!board.add_file_monitor(4, &[b'x'; FILEMON_PATH_BYTES + 1]));
        assert_eq!(
            board.file_monitors(),
            vec![(3, b"/etc/app/reload.flag".to_vec())]
        );
    }
}
