//! The stats server: uWSGI's JSON with the fields and types uwsgitop reads, counts that
//! follow the requests, `stats-http` and `stats-minified`, a client that never reads or
//! never asks does not stall the master, and the real `uwsgitop` shows the workers.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn start(args: &[&str]) -> (Kaiser, SocketAddr) {
    start_http(&[&["--wsgi-file", "tests/apps/hello.py"], args].concat())
}

fn read_stats(path: &Path) -> serde_json::Value {
    let mut stream = wait_for_unix(path, START_TIMEOUT).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stats are not JSON ({e}): {text}"))
}

fn total_requests(stats: &serde_json::Value) -> u64 {
    stats["workers"]
        .as_array()
        .expect("workers is an array")
        .iter()
        .map(|w| w["requests"].as_u64().expect("requests is a number"))
        .sum()
}

#[test]
fn stats_json_has_what_uwsgitop_reads_and_counts_requests() {
    let dir = TempDir::new("stats");
    let path = dir.join("stats.sock");
    let (kaiser, addr) = start(&[
        "--processes",
        "2",
        "--threads",
        "2",
        "--stats",
        path.to_str().unwrap(),
    ]);
    for _ in 0..5 {
        assert_eq!(http_get(addr, "/").unwrap().status, 200);
    }
    // A worker counts a request right after sending its response.
    let stats = wait_until("the stats to count 5 requests", START_TIMEOUT, |last| {
        let stats = read_stats(&path);
        *last = stats.to_string();
        Ok((total_requests(&stats) == 5).then_some(stats))
    })
    .unwrap();
    assert!(
        stats["version"].as_str().unwrap().starts_with("kaiser-"),
        "{stats}"
    );
    assert_eq!(stats["pid"], kaiser.pid(), "{stats}");
    for key in ["listen_queue", "uid", "gid", "load"] {
        assert!(stats[key].is_u64(), "{key}: {stats}");
    }
    assert!(stats["cwd"].is_string(), "{stats}");
    assert_eq!(stats["sockets"][0]["name"], addr.to_string(), "{stats}");
    assert_eq!(stats["sockets"][0]["proto"], "http", "{stats}");
    let workers = stats["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{stats}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (index, worker) in workers.iter().enumerate() {
        assert_eq!(worker["id"], index + 1, "{worker}");
        for key in [
            "pid",
            "requests",
            "delta_requests",
            "exceptions",
            "harakiri_count",
            "signals",
            "rss",
            "vsz",
            "running_time",
            "last_spawn",
            "respawn_count",
            "tx",
            "avg_rt",
            "accepting",
        ] {
            assert!(worker[key].is_u64(), "{key}: {worker}");
        }
        assert_eq!(worker["status"], "idle", "{worker}");
        assert_eq!(worker["accepting"], 1, "{worker}");
        assert_eq!(worker["respawn_count"], 1, "{worker}");
        assert_eq!(worker["requests"], worker["delta_requests"], "{worker}");
        assert!(worker["rss"].as_u64().unwrap() > 0, "{worker}");
        assert!(
            now.abs_diff(worker["last_spawn"].as_u64().unwrap()) < 120,
            "{worker}"
        );
        let cores = worker["cores"].as_array().expect("cores");
        assert_eq!(cores.len(), 2, "{worker}");
        let core_requests: u64 = cores.iter().map(|c| c["requests"].as_u64().unwrap()).sum();
        assert_eq!(
            core_requests,
            worker["requests"].as_u64().unwrap(),
            "{worker}"
        );
        assert!(cores.iter().all(|c| c["in_request"] == 0), "{worker}");
        assert!(worker["apps"][0]["requests"].is_u64(), "{worker}");
    }
    let tx: u64 = workers.iter().map(|w| w["tx"].as_u64().unwrap()).sum();
    assert!(tx >= 5 * 11, "each response has 11 body bytes, tx = {tx}");
}

#[test]
fn stats_http_minified_over_tcp() {
    let (kaiser, _addr) = start(&["--stats", "127.0.0.1:0", "--stats-http", "--stats-minified"]);
    let stats_addr = kaiser
        .wait_for_addr("stats server listening", START_TIMEOUT)
        .unwrap();
    let response = http_get(stats_addr, "/").unwrap();
    assert_eq!(response.status, 200, "{response}");
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    let text = response.text();
    assert_eq!(text.trim_end().lines().count(), 1, "{text}");
    let stats: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(stats["workers"][0]["id"], 1, "{stats}");
}

#[test]
fn a_stats_client_that_never_asks_does_not_stall_the_master() {
    let (kaiser, addr) = start(&["--stats", "127.0.0.1:0", "--stats-http"]);
    let stats_addr = kaiser
        .wait_for_addr("stats server listening", START_TIMEOUT)
        .unwrap();
    // Silent clients: connected, never sending their HTTP request.
    let silent: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(stats_addr).unwrap())
        .collect();
    let started = Instant::now();
    assert_eq!(http_get(stats_addr, "/").unwrap().status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "stats took {:?} behind silent clients",
        started.elapsed()
    );
    assert_eq!(http_get(addr, "/").unwrap().status, 200);
    // The master drops them after its client timeout.
    for mut stream in silent {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            stream.read(&mut buf).unwrap_or(0),
            0,
            "a silent client got data"
        );
    }
}

/// A tmux server on its own socket, killed by that name when dropped.
struct Tmux {
    name: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let name = format!("kaiser-stats-test-{}", std::process::id());
        let status = Command::new("tmux")
            .args([
                "-L",
                &name,
                "new-session",
                "-d",
                "-x",
                "200",
                "-y",
                "50",
                command,
            ])
            .env("TERM", "xterm")
            .status()
            .expect("tmux runs (scripts/setup-test-env installs it)");
        assert!(status.success(), "tmux new-session failed: {status}");
        Tmux { name }
    }

    fn screen(&self) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.name, "capture-pane", "-p"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.name, "kill-server"])
            .status();
    }
}

#[test]
fn uwsgitop_shows_the_workers_and_their_requests() {
    let dir = TempDir::new("uwsgitop");
    let path = dir.join("stats.sock");
    let (_kaiser, addr) = start(&["--processes", "2", "--stats", path.to_str().unwrap()]);
    for _ in 0..3 {
        assert_eq!(http_get(addr, "/").unwrap().status, 200);
    }
    wait_until("the stats to count 3 requests", START_TIMEOUT, |last| {
        let stats = read_stats(&path);
        *last = stats.to_string();
        Ok((total_requests(&stats) == 3).then_some(()))
    })
    .unwrap();
    let pids: Vec<u64> = read_stats(&path)["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_u64().unwrap())
        .collect();
    let uwsgitop = venv().join("bin").join("uwsgitop");
    let tmux = Tmux::start(&format!("{} {}", uwsgitop.display(), path.display()));
    let screen = wait_until("uwsgitop to draw the workers", START_TIMEOUT, |last| {
        let screen = tmux.screen();
        *last = screen.clone();
        let drawn = screen.contains("req: 3")
            && screen.contains("WID")
            && pids.iter().all(|pid| {
                screen
                    .lines()
                    .any(|line| line.split_whitespace().nth(2) == Some(&pid.to_string()))
            });
        Ok(drawn.then_some(screen))
    })
    .unwrap();
    assert!(screen.contains("uwsgi-kaiser-"), "{screen}");
}

#[test]
fn sigusr1_logs_each_workers_figures() {
    let (kaiser, addr) = start(&["--processes", "2"]);
    for _ in 0..2 {
        assert_eq!(http_get(addr, "/").unwrap().status, 200);
    }
    let lines = wait_until("SIGUSR1 to log 2 requests", START_TIMEOUT, |last| {
        let mark = kaiser.log_mark();
        kaiser.signal(libc::SIGUSR1);
        let line = kaiser.wait_for_log_since(mark, "worker 2 (pid:", START_TIMEOUT)?;
        let text = kaiser.logs_since(mark);
        *last = text.clone();
        let requests: u64 = text
            .lines()
            .filter_map(|l| {
                l.split("requests ")
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum();
        Ok((requests == 2).then_some(line))
    })
    .unwrap();
    assert!(lines.contains("harakiri 0"), "{lines}");
}
