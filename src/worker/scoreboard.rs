//! The scoreboard: what every worker and every request thread ("core") is doing, in memory
//! shared by the master and its workers (DESIGN.md, fork safety rule 6).
//!
//! The master maps it before forking the first worker; workers write their own slots on
//! the request path with relaxed atomic stores (no lock, no system call), and the master
//! reads every slot for the stats server, SIGUSR1 and harakiri. The words are atomics
//! only, so a worker killed halfway through an update leaves a stale figure, never a held
//! lock. The request line and peer address of each core are copied under a per-core
//! seqlock so that a reader never mixes two requests; a reader that keeps seeing a write in
//! progress (its writer was killed) gives up and reports them empty.
//!
//! Two kinds of record: a header per worker id, with the figures uWSGI keeps across
//! respawns (requests, exceptions, tx, …), and a pool of process slots ("banks") of cores,
//! twice as many as workers. Every live process writes its cores in a bank of its own: a
//! worker being replaced keeps serving in its bank while its replacement starts in another,
//! so harakiri sees the old worker's stuck request and never blames the new one. The master
//! hands out banks and records the current process's bank in the header, which is what
//! reports show.
//!
//! It lives under `worker/` rather than `vassal/` because both sides use it and the
//! dependency points from `vassal` to `worker`, never back.
//!
//! It does not decide anything: harakiri deadlines are judged by the master from the start
//! times written here, and figures are rendered by the stats server.

use std::io;
use std::sync::atomic::{fence, AtomicU64, Ordering};

use crate::sys::shm::SharedWords;

/// Word offsets inside a worker's header.
mod field {
    pub const PID: usize = 0;
    pub const ACCEPTING: usize = 1;
    pub const REQUESTS: usize = 2;
    pub const DELTA_REQUESTS: usize = 3;
    pub const EXCEPTIONS: usize = 4;
    pub const HARAKIRI_COUNT: usize = 5;
    pub const RESPAWN_COUNT: usize = 6;
    pub const LAST_SPAWN: usize = 7;
    pub const RUNNING_TIME: usize = 8;
    pub const AVG_RT: usize = 9;
    pub const TX: usize = 10;
    /// The bank of the worker's current process, plus one (0: none yet).
    pub const BANK: usize = 11;
    /// Set by the master: the cheaper subsystem stopped this worker, or keeps its slot empty.
    pub const CHEAP: usize = 12;
    pub const WORDS: usize = 13;
}

/// Word offsets inside a core's slot.
mod core_field {
    pub const IN_REQUEST: usize = 0;
    pub const REQUESTS: usize = 1;
    /// The current request's start on `CLOCK_MONOTONIC`, in µs; 0 when idle. Deadlines are
    /// judged on this clock, so an NTP step never condemns a request.
    pub const REQUEST_START: usize = 2;
    /// `uwsgi.set_user_harakiri`: an absolute deadline on `CLOCK_MONOTONIC` in µs, 0 for none.
    pub const USER_DEADLINE: usize = 3;
    /// The request thread's pthread id (Python's thread ident) and kernel tid.
    pub const THREAD_IDENT: usize = 4;
    pub const TID: usize = 5;
    /// Set by the master to the `REQUEST_START` of the request it condemned.
    pub const HARAKIRI: usize = 6;
    pub const SEQ: usize = 7;
    pub const REQUEST_LEN: usize = 8;
    pub const REMOTE_LEN: usize = 9;
    pub const REQUEST_TEXT: usize = 10;
    pub const REQUEST_WORDS: usize = 32;
    pub const REMOTE_TEXT: usize = REQUEST_TEXT + REQUEST_WORDS;
    pub const REMOTE_WORDS: usize = 6;
    /// Requests answered from the static files, and those whose body an offload thread sent.
    pub const STATIC_REQUESTS: usize = REMOTE_TEXT + REMOTE_WORDS;
    pub const OFFLOADED_REQUESTS: usize = STATIC_REQUESTS + 1;
    /// Requests a route answered or stopped (uWSGI counts a route action's `BREAK`).
    pub const ROUTED_REQUESTS: usize = OFFLOADED_REQUESTS + 1;
    pub const WORDS: usize = ROUTED_REQUESTS + 1;
}

/// How many bytes of `METHOD URI` a core keeps for reports.
pub const REQUEST_TEXT_BYTES: usize = core_field::REQUEST_WORDS * 8;

/// The shared mapping, sized for `workers` workers of `cores` threads each, with
/// [`Scoreboard::banks`] process slots.
pub struct Scoreboard {
    words: SharedWords,
    workers: usize,
    cores: usize,
}

impl Scoreboard {
    pub fn new(workers: u32, cores: u32) -> io::Result<Self> {
        let workers = workers.max(1) as usize;
        let cores = cores.max(1) as usize;
        let banks = 2 * workers;
        let words = SharedWords::new(
            workers * field::WORDS
                + banks * cores * core_field::WORDS
                + super::request_metrics::words(workers),
        )?;
        Ok(Scoreboard {
            words,
            workers,
            cores,
        })
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    pub fn cores(&self) -> usize {
        self.cores
    }

    /// How many processes can have cores at once: every worker, and as many being replaced.
    pub fn banks(&self) -> usize {
        2 * self.workers
    }

    /// Worker `id` (1-based, as in logs) as its current process shows it, if the
    /// scoreboard has that worker.
    pub fn worker(&self, id: u32) -> Option<WorkerSlot<'_>> {
        let header = self.header(id)?;
        let bank = match header[field::BANK].load(Ordering::Relaxed) {
            0 => (id as usize) - 1,
            n => (n - 1) as usize,
        };
        self.process(id, bank)
    }

    /// Worker `id` as the process writing `bank` sees it: the worker's own figures, with
    /// that process's cores.
    pub fn process(&self, id: u32, bank: usize) -> Option<WorkerSlot<'_>> {
        let header = self.header(id)?;
        if bank >= self.banks() {
            return None;
        }
        let bank_words = self.cores * core_field::WORDS;
        let start = self.workers * field::WORDS + bank * bank_words;
        Some(WorkerSlot {
            words: header,
            bank: &self.words.words()[start..start + bank_words],
            cores: self.cores,
        })
    }

    /// Status classes, duration buckets and vassal-wide flags, after the banks
    /// (`request_metrics.rs`).
    pub fn metrics(&self) -> super::request_metrics::RequestMetrics<'_> {
        let start = self.workers * field::WORDS + self.banks() * self.cores * core_field::WORDS;
        super::request_metrics::RequestMetrics::new(&self.words.words()[start..])
    }

    /// Whether worker `id`'s current process accepts and has a request thread between
    /// requests (relaxed loads only, no copy: the health probe thread asks often).
    pub fn has_free_thread(&self, id: u32) -> bool {
        let Some(worker) = self.worker(id) else {
            return false;
        };
        worker.get(field::PID) != 0
            && worker.get(field::ACCEPTING) != 0
            && (0..self.cores).any(|index| {
                worker
                    .core(index)
                    .is_some_and(|core| core.get(core_field::IN_REQUEST) == 0)
            })
    }

    fn header(&self, id: u32) -> Option<&[AtomicU64]> {
        let index = (id as usize).checked_sub(1)?;
        if index >= self.workers {
            return None;
        }
        Some(&self.words.words()[index * field::WORDS..(index + 1) * field::WORDS])
    }
}

/// One worker's figures, and the cores of one of its processes.
#[derive(Clone, Copy)]
pub struct WorkerSlot<'a> {
    words: &'a [AtomicU64],
    bank: &'a [AtomicU64],
    cores: usize,
}

/// A consistent-enough copy of a worker's slot, for reports.
#[derive(Debug, Clone, Default)]
pub struct WorkerSnapshot {
    pub pid: u64,
    pub accepting: bool,
    pub requests: u64,
    pub delta_requests: u64,
    pub exceptions: u64,
    pub harakiri_count: u64,
    pub respawn_count: u64,
    pub last_spawn: u64,
    pub running_time_us: u64,
    pub avg_rt_us: u64,
    pub tx: u64,
    /// Cheaped by the master (stopping, or its slot kept empty).
    pub cheap: bool,
    pub cores: Vec<CoreSnapshot>,
}

impl WorkerSnapshot {
    /// uWSGI's status word: `cheap` for a worker the cheaper subsystem stopped (as uWSGI
    /// and uwsgitop have it), else `busy` while any core serves a request.
    pub fn status(&self) -> &'static str {
        if self.cheap {
            "cheap"
        } else if self.busy() {
            "busy"
        } else {
            "idle"
        }
    }

    /// Any core is serving a request (`uwsgi_worker_is_busy`).
    pub fn busy(&self) -> bool {
        self.cores.iter().any(|c| c.in_request)
    }

    /// Time spent in requests, in µs: the finished ones (`running_time`) plus, for each
    /// request in flight, the time since it started, at `now_us` (Unix µs). Read twice,
    /// the difference is the busy time in between, which the cheaper subsystem's busyness
    /// algorithm reads. (A request that ends between `end_request` and `count_request`
    /// is briefly counted in neither; the next reading has it.)
    /// Time spent in requests, counting those in flight up to `now_us` (`CLOCK_MONOTONIC`).
    pub fn busy_time_us(&self, now_us: u64) -> u64 {
        let in_flight: u64 = self
            .cores
            .iter()
            .filter(|c| c.in_request && c.request_start_us > 0)
            .map(|c| now_us.saturating_sub(c.request_start_us))
            .sum();
        self.running_time_us.saturating_add(in_flight)
    }
}

#[derive(Debug, Clone, Default)]
pub struct CoreSnapshot {
    pub id: usize,
    pub in_request: bool,
    pub requests: u64,
    pub static_requests: u64,
    pub offloaded_requests: u64,
    pub routed_requests: u64,
    /// On `CLOCK_MONOTONIC`, for deadlines.
    pub request_start_us: u64,
    /// The same instant in Unix µs, for reports; 0 when idle.
    pub request_start_unix_us: u64,
    pub user_deadline_us: u64,
    pub thread_ident: u64,
    pub tid: u64,
    pub condemned: bool,
    /// `METHOD URI`, possibly cut at [`REQUEST_TEXT_BYTES`].
    pub request: String,
    pub remote: String,
}

impl<'a> WorkerSlot<'a> {
    fn get(&self, offset: usize) -> u64 {
        self.words[offset].load(Ordering::Relaxed)
    }

    fn set(&self, offset: usize, value: u64) {
        self.words[offset].store(value, Ordering::Relaxed);
    }

    fn add(&self, offset: usize, value: u64) {
        self.words[offset].fetch_add(value, Ordering::Relaxed);
    }

    pub fn core(&self, index: usize) -> Option<CoreSlot<'a>> {
        if index >= self.cores {
            return None;
        }
        let start = index * core_field::WORDS;
        Some(CoreSlot {
            words: &self.bank[start..start + core_field::WORDS],
        })
    }

    // --- the master's side ---

    /// Before forking a worker into this slot (got from [`Scoreboard::process`] with the
    /// new process's bank): a fresh life. `requests`, `exceptions`, `tx` and the times
    /// survive respawns (as in uWSGI); `delta_requests` and the bank's cores start over,
    /// and reports follow the new process from now on.
    pub fn prepare_spawn(&self, bank: usize, respawn_count: u64, last_spawn: u64) {
        self.set(field::PID, 0);
        self.set(field::ACCEPTING, 0);
        self.set(field::DELTA_REQUESTS, 0);
        self.set(field::RESPAWN_COUNT, respawn_count);
        self.set(field::LAST_SPAWN, last_spawn);
        self.set(field::BANK, bank as u64 + 1);
        for index in 0..self.cores {
            if let Some(core) = self.core(index) {
                core.reset();
            }
        }
    }

    pub fn set_pid(&self, pid: u64) {
        self.set(field::PID, pid);
    }

    /// The cheaper subsystem stops this worker (or keeps the slot empty), or spawns it.
    pub fn set_cheap(&self, cheap: bool) {
        self.set(field::CHEAP, u64::from(cheap));
    }

    pub fn count_harakiri(&self) {
        self.add(field::HARAKIRI_COUNT, 1);
    }

    pub fn snapshot(&self) -> WorkerSnapshot {
        WorkerSnapshot {
            pid: self.get(field::PID),
            accepting: self.get(field::ACCEPTING) != 0,
            requests: self.get(field::REQUESTS),
            delta_requests: self.get(field::DELTA_REQUESTS),
            exceptions: self.get(field::EXCEPTIONS),
            harakiri_count: self.get(field::HARAKIRI_COUNT),
            respawn_count: self.get(field::RESPAWN_COUNT),
            last_spawn: self.get(field::LAST_SPAWN),
            running_time_us: self.get(field::RUNNING_TIME),
            avg_rt_us: self.get(field::AVG_RT),
            tx: self.get(field::TX),
            cheap: self.get(field::CHEAP) != 0,
            cores: (0..self.cores)
                .filter_map(|index| self.core(index).map(|core| core.snapshot(index)))
                .collect(),
        }
    }

    // --- the worker's side ---

    pub fn set_accepting(&self, accepting: bool) {
        self.set(field::ACCEPTING, u64::from(accepting));
    }

    /// Accounts a finished request: counters, time and bytes. uWSGI's `avg_rt` is the
    /// running `(avg_rt + rt) / 2`, kept as is because dashboards are tuned to it.
    pub fn count_request(&self, rt_us: u64, tx: u64, exception: bool) {
        self.add(field::REQUESTS, 1);
        self.add(field::DELTA_REQUESTS, 1);
        self.add(field::RUNNING_TIME, rt_us);
        self.add(field::TX, tx);
        if exception {
            self.add(field::EXCEPTIONS, 1);
        }
        // Threads of one worker may race here; the figure is an estimate either way.
        let avg = self.get(field::AVG_RT);
        self.set(
            field::AVG_RT,
            if avg == 0 { rt_us } else { (avg + rt_us) / 2 },
        );
    }
}

/// One request thread's slot. Only that thread writes it, except `HARAKIRI` (the master)
/// and `reset` (the master, before the worker exists).
#[derive(Clone, Copy)]
pub struct CoreSlot<'a> {
    words: &'a [AtomicU64],
}

impl CoreSlot<'_> {
    fn get(&self, offset: usize) -> u64 {
        self.words[offset].load(Ordering::Relaxed)
    }

    fn set(&self, offset: usize, value: u64) {
        self.words[offset].store(value, Ordering::Relaxed);
    }

    fn reset(&self) {
        for word in self.words {
            word.store(0, Ordering::Relaxed);
        }
    }

    /// Once per thread, at its start.
    pub fn set_thread(&self, ident: u64, tid: u64) {
        self.set(core_field::THREAD_IDENT, ident);
        self.set(core_field::TID, tid);
    }

    /// A request head was parsed: the harakiri clock starts now (`start_us` on
    /// `CLOCK_MONOTONIC`).
    pub fn begin_request(&self, start_us: u64, method: &str, uri: &str, remote: &str) {
        // Seqlock write: odd while the text changes.
        let seq = self.get(core_field::SEQ);
        self.set(core_field::SEQ, seq.wrapping_add(1));
        fence(Ordering::Release);
        let mut request = [0u8; REQUEST_TEXT_BYTES];
        let mut len = 0;
        for part in [method.as_bytes(), b" ", uri.as_bytes()] {
            let n = part.len().min(REQUEST_TEXT_BYTES - len);
            request[len..len + n].copy_from_slice(&part[..n]);
            len += n;
        }
        self.write_text(core_field::REQUEST_TEXT, &request[..len]);
        self.set(core_field::REQUEST_LEN, len as u64);
        let mut peer = [0u8; core_field::REMOTE_WORDS * 8];
        let n = remote.len().min(peer.len());
        peer[..n].copy_from_slice(&remote.as_bytes()[..n]);
        self.write_text(core_field::REMOTE_TEXT, &peer[..n]);
        self.set(core_field::REMOTE_LEN, n as u64);
        self.words[core_field::SEQ].store(seq.wrapping_add(2), Ordering::Release);
        self.set(core_field::REQUEST_START, start_us);
        self.set(core_field::IN_REQUEST, 1);
    }

    fn write_text(&self, offset: usize, bytes: &[u8]) {
        for (index, chunk) in bytes.chunks(8).enumerate() {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.set(offset + index, u64::from_le_bytes(word));
        }
    }

    pub fn end_request(&self) {
        self.set(core_field::IN_REQUEST, 0);
        self.set(core_field::REQUEST_START, 0);
        self.set(core_field::USER_DEADLINE, 0);
        self.words[core_field::REQUESTS].fetch_add(1, Ordering::Relaxed);
    }

    /// A request answered from the static files (after `end_request`).
    pub fn count_static(&self, offloaded: bool) {
        self.words[core_field::STATIC_REQUESTS].fetch_add(1, Ordering::Relaxed);
        if offloaded {
            self.words[core_field::OFFLOADED_REQUESTS].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A route answered or stopped the request (after `end_request`).
    pub fn count_routed(&self) {
        self.words[core_field::ROUTED_REQUESTS].fetch_add(1, Ordering::Relaxed);
    }

    /// `uwsgi.set_user_harakiri`: 0 clears it.
    pub fn set_user_deadline(&self, deadline_us: u64) {
        self.set(core_field::USER_DEADLINE, deadline_us);
    }

    /// The master condemns the request that started at `request_start_us`.
    pub fn condemn(&self, request_start_us: u64) {
        self.set(core_field::HARAKIRI, request_start_us);
    }

    /// Whether the request in progress is the one the master condemned.
    pub fn is_condemned(&self) -> bool {
        let start = self.get(core_field::REQUEST_START);
        self.get(core_field::IN_REQUEST) != 0
            && start != 0
            && self.get(core_field::HARAKIRI) == start
    }

    pub fn snapshot(&self, id: usize) -> CoreSnapshot {
        let (request, remote) = self.read_texts();
        let start = self.get(core_field::REQUEST_START);
        CoreSnapshot {
            id,
            in_request: self.get(core_field::IN_REQUEST) != 0,
            requests: self.get(core_field::REQUESTS),
            static_requests: self.get(core_field::STATIC_REQUESTS),
            offloaded_requests: self.get(core_field::OFFLOADED_REQUESTS),
            routed_requests: self.get(core_field::ROUTED_REQUESTS),
            request_start_us: start,
            request_start_unix_us: if start == 0 {
                0
            } else {
                crate::sys::clock::unix_us_of(start)
            },
            user_deadline_us: self.get(core_field::USER_DEADLINE),
            thread_ident: self.get(core_field::THREAD_IDENT),
            tid: self.get(core_field::TID),
            condemned: self.is_condemned(),
            request,
            remote,
        }
    }

    /// Seqlock read, bounded: a writer killed mid-update leaves the sequence odd forever.
    fn read_texts(&self) -> (String, String) {
        for _ in 0..64 {
            let before = self.words[core_field::SEQ].load(Ordering::Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let request = self.read_text(
                core_field::REQUEST_TEXT,
                self.get(core_field::REQUEST_LEN) as usize,
                REQUEST_TEXT_BYTES,
            );
            let remote = self.read_text(
                core_field::REMOTE_TEXT,
                self.get(core_field::REMOTE_LEN) as usize,
                core_field::REMOTE_WORDS * 8,
            );
            fence(Ordering::Acquire);
            if self.words[core_field::SEQ].load(Ordering::Relaxed) == before {
                return (
                    String::from_utf8_lossy(&request).into_owned(),
                    String::from_utf8_lossy(&remote).into_owned(),
                );
            }
        }
        (String::new(), String::new())
    }

    fn read_text(&self, offset: usize, len: usize, max: usize) -> Vec<u8> {
        let len = len.min(max);
        let mut out = Vec::with_capacity(len.next_multiple_of(8));
        for index in 0..len.div_ceil(8) {
            out.extend_from_slice(&self.get(offset + index).to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_counted_and_described() {
        let board = Scoreboard::new(2, 2).expect("mmap");
        let worker = board.worker(2).expect("worker 2 exists");
        worker.prepare_spawn(1, 1, 1000);
        worker.set_pid(42);
        let core = worker.core(1).expect("core 1 exists");
        core.begin_request(5_000_000, "GET", "/slow?x=1", "127.0.0.1");
        let busy = worker.snapshot();
        assert_eq!(busy.status(), "busy");
        assert_eq!(busy.cores[1].request, "GET /slow?x=1");
        assert_eq!(busy.cores[1].remote, "127.0.0.1");
        assert_eq!(busy.cores[1].request_start_us, 5_000_000);
        core.end_request();
        worker.count_request(200, 100, false);
        worker.count_request(100, 50, true);
        let idle = worker.snapshot();
        assert_eq!(idle.status(), "idle");
        assert_eq!(
            (idle.requests, idle.delta_requests, idle.exceptions, idle.tx),
            (2, 2, 1, 150)
        );
        assert_eq!((idle.running_time_us, idle.avg_rt_us), (300, 150));
        assert_eq!(idle.cores[1].requests, 1);
        assert_eq!(
            (idle.pid, idle.respawn_count, idle.last_spawn),
            (42, 1, 1000)
        );
        assert!(board.worker(3).is_none() && board.worker(0).is_none());
    }

    #[test]
    fn long_uris_are_cut_and_respawn_keeps_totals() {
        let board = Scoreboard::new(1, 1).expect("mmap");
        let worker = board.worker(1).expect("worker 1");
        let core = worker.core(0).expect("core 0");
        let uri = format!("/{}", "a".repeat(1000));
        core.begin_request(1, "POST", &uri, "");
        let text = worker.snapshot().cores[0].request.clone();
        assert_eq!(text.len(), REQUEST_TEXT_BYTES);
        assert!(text.starts_with("POST /aaa"));
        core.end_request();
        worker.count_request(10, 1, false);
        worker.prepare_spawn(0, 2, 2000);
        let after = worker.snapshot();
        assert_eq!((after.requests, after.delta_requests), (1, 0));
        assert_eq!(after.cores[0].requests, 0);
    }

    #[test]
    fn a_replacement_gets_its_own_cores_and_reports_follow_it() {
        let board = Scoreboard::new(2, 1).expect("mmap");
        assert_eq!(board.banks(), 4);
        let old = board.process(1, 0).expect("bank 0");
        old.prepare_spawn(0, 1, 1000);
        old.core(0)
            .expect("core")
            .begin_request(5, "GET", "/stuck", "");
        // The replacement of worker 1 starts in another bank while the old one still serves.
        let new = board.process(1, 3).expect("bank 3");
        new.prepare_spawn(3, 2, 2000);
        let stuck = board.process(1, 0).expect("bank 0").snapshot();
        assert!(
            stuck.cores[0].in_request,
            "preparing the new bank cleared the old one"
        );
        assert_eq!(stuck.cores[0].request, "GET /stuck");
        let current = board.worker(1).expect("worker 1").snapshot();
        assert!(!current.cores[0].in_request, "reports show the new process");
        assert_eq!(current.respawn_count, 2);
        // Totals are the worker's, whichever process counted them.
        old.count_request(10, 1, false);
        new.count_request(10, 1, false);
        assert_eq!(board.worker(1).expect("worker 1").snapshot().requests, 2);
        assert!(board.process(1, 4).is_none() && board.process(3, 0).is_none());
    }

    #[test]
    fn busy_time_counts_requests_in_flight_and_cheap_is_a_status() {
        let board = Scoreboard::new(1, 2).expect("mmap");
        let worker = board.worker(1).expect("worker 1");
        worker.count_request(300, 1, false);
        let core = worker.core(1).expect("core 1");
        core.begin_request(1_000_000, "GET", "/", "");
        let busy = worker.snapshot();
        assert_eq!(busy.busy_time_us(1_000_500), 800);
        assert_eq!(busy.status(), "busy");
        core.end_request();
        worker.count_request(600, 1, false);
        assert_eq!(worker.snapshot().busy_time_us(2_000_000), 900);
        worker.set_cheap(true);
        let cheap = worker.snapshot();
        assert_eq!((cheap.status(), cheap.busy()), ("cheap", false));
        worker.set_cheap(false);
        assert_eq!(worker.snapshot().status(), "idle");
    }

    #[test]
    fn condemned_means_this_very_request() {
        let board = Scoreboard::new(1, 1).expect("mmap");
        let core = board.worker(1).and_then(|w| w.core(0)).expect("core");
        core.begin_request(77, "GET", "/", "");
        core.condemn(77);
        assert!(core.is_condemned());
        core.end_request();
        assert!(!core.is_condemned());
        core.begin_request(78, "GET", "/", "");
        assert!(!core.is_condemned());
    }

    #[test]
    fn a_free_thread_is_one_between_requests_in_an_accepting_worker() {
        let board = Scoreboard::new(1, 2).expect("mmap");
        let worker = board.worker(1).expect("worker 1");
        worker.prepare_spawn(0, 1, 1000);
        assert!(!board.has_free_thread(1), "no process yet");
        worker.set_pid(42);
        worker.set_accepting(true);
        assert!(board.has_free_thread(1));
        worker
            .core(0)
            .expect("core 0")
            .begin_request(1, "GET", "/", "");
        assert!(board.has_free_thread(1), "core 1 is free");
        worker
            .core(1)
            .expect("core 1")
            .begin_request(2, "GET", "/", "");
        assert!(!board.has_free_thread(1), "both busy");
        worker.core(1).expect("core 1").end_request();
        worker.set_accepting(false);
        assert!(!board.has_free_thread(1), "not accepting");
        assert!(!board.has_free_thread(2));
    }
}
