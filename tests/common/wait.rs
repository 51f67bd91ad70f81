//! Waiting on readiness with a deadline, and small helpers for what tests compare against.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a server gets to start and accept connections. Generous, because CI runs tests
/// in parallel on two cores; a healthy start takes well under a second.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Calls `attempt` until it returns `Ok(Some(value))`, sleeping briefly between tries.
/// `Ok(None)` means "not yet", `Err` gives up at once. On timeout, fails with `what` and the
/// last "not yet" reason `attempt` left in `last_seen`.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut attempt: impl FnMut(&mut String) -> Result<Option<T>, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    let mut last_seen = String::new();
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(value) = attempt(&mut last_seen)? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "timed out after {timeout:?} waiting for {what}; last seen: {last_seen}"
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Connects to `addr`, retrying until something accepts or `timeout` passes.
pub fn wait_for_connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    wait_until(&format!("{addr} to accept a connection"), timeout, |last| {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(stream) => Ok(Some(stream)),
            Err(error) => {
                *last = error.to_string();
                Ok(None)
            }
        }
    })
}

/// Connects to the unix socket at `path`, retrying until it exists and accepts.
pub fn wait_for_unix(path: &Path, timeout: Duration) -> Result<UnixStream, String> {
    wait_until(
        &format!("unix socket {} to accept a connection", path.display()),
        timeout,
        |last| match UnixStream::connect(path) {
            Ok(stream) => Ok(Some(stream)),
            Err(error) => {
                *last = error.to_string();
                Ok(None)
            }
        },
    )
}

/// Every socket address in `line`: words like `127.0.0.1:8080`, `[::1]:8080`, possibly
/// wrapped in quotes, backticks, brackets or followed by punctuation, or after `key=`.
pub fn parse_socket_addrs(line: &str) -> Vec<SocketAddr> {
    line.split(|c: char| c.is_whitespace() || "`'\"(),;=<>{}".contains(c))
        .filter_map(|word| {
            let word = word.trim_end_matches(['.', ':']);
            let word = word.strip_prefix("http://").unwrap_or(word);
            let word = word.trim_end_matches('/');
            word.parse().ok()
        })
        .collect()
}

/// The body `wsgi_suite.py`'s `/big?bytes=N` sends: the alphabet repeated, cut at `n` bytes.
pub fn expected_big_body(n: usize) -> Vec<u8> {
    b"abcdefghijklmnopqrstuvwxyz"
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect()
}
