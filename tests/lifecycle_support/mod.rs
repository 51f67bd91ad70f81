//! Helpers shared by the `lifecycle_*` tests: start a vassal, hammer it with a client loop
//! that records every failed or incomplete response, write to a master FIFO, and read the
//! order of events from the master's log.
#![allow(
    dead_code,
    reason = "each lifecycle test binary uses part of these helpers"
)]

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::common::*;

/// Starts `kaiser --http-socket 127.0.0.1:0 ARGS…` and waits until it is ready.
pub use crate::common::start_http as start;

pub const EXIT: Duration = Duration::from_secs(20);

/// Client threads sending `GET /` on fresh connections as fast as they can, checking each
/// response is a complete `200 Hello World` (the strict client checks the framing).
pub struct Hammer {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Hammer {
    pub fn start(addr: SocketAddr, clients: usize) -> Hammer {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match http_get(addr, "/") {
                            Ok(response)
                                if response.status == 200 && response.body == b"Hello World" =>
                            {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(response) => failures.lock().unwrap().push(response.to_string()),
                            Err(error) => failures.lock().unwrap().push(error),
                        }
                    }
                })
            })
            .collect();
        let hammer = Hammer {
            stop,
            ok,
            failures,
            threads,
        };
        hammer.wait_for_more(10);
        hammer
    }

    pub fn served(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Waits until `n` more requests succeeded: the vassal serves at this point.
    pub fn wait_for_more(&self, n: u64) {
        let target = self.served() + n;
        wait_until(
            &format!("{n} more successful requests"),
            START_TIMEOUT,
            |last| {
                *last = format!(
                    "{} served, failures: {:?}",
                    self.served(),
                    self.failures.lock().unwrap().first()
                );
                Ok((self.served() >= target).then_some(()))
            },
        )
        .unwrap();
    }

    /// Stops the clients and fails, with the vassal's logs, if any request failed.
    pub fn finish(mut self, kaiser: &Kaiser, during: &str) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            thread.join().unwrap();
        }
        let failures = self.failures.lock().unwrap();
        assert!(
            failures.is_empty(),
            "{} of {} requests failed during {during}; first: {}\n{}",
            failures.len(),
            self.served() + failures.len() as u64,
            failures[0],
            kaiser.logs()
        );
        self.served()
    }
}

impl Drop for Hammer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Writes `bytes` to the FIFO at `path` as `echo` would: once the master has it open (a
/// non-blocking open fails with ENXIO while nobody reads, e.g. during a re-exec).
pub fn fifo_write(path: &Path, bytes: &[u8]) {
    let mut fifo = wait_until(
        &format!("a reader on the fifo {}", path.display()),
        START_TIMEOUT,
        |last| match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(file) => Ok(Some(file)),
            Err(error) => {
                *last = error.to_string();
                Ok(None)
            }
        },
    )
    .unwrap();
    fifo.write_all(bytes).unwrap();
}

/// Waits until the logs since `mark` contain `needle` `count` times.
pub fn wait_for_count(kaiser: &Kaiser, mark: usize, needle: &str, count: usize) {
    wait_until(
        &format!("{count} log lines containing {needle:?}"),
        START_TIMEOUT,
        |last| {
            let seen = kaiser.logs_since(mark).matches(needle).count();
            *last = format!("{seen} so far; logs:\n{}", kaiser.logs_since(mark));
            Ok((seen >= count).then_some(()))
        },
    )
    .unwrap();
}

/// The worker pid in a log line's `pid=N` field.
pub fn pid_field(line: &str) -> Option<i32> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix("pid="))
        .and_then(|pid| pid.parse().ok())
}
