//! The cheaper subsystem against the real binary: the worker count follows bounded loopback
//! load (idle → burst → idle) with each algorithm, stays within `cheaper`..`processes`, and no
//! request fails while workers come and go; FIFO `+`/`-`; cheap workers in the stats JSON, in
//! `uwsgi.workers()` and in uwsgitop; the seeds' cheaper blocks.

mod common;
mod lifecycle_support;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use lifecycle_support::fifo_write;

/// How long the worker count may take to follow the load: several cycles of a second, on a
/// machine shared with other builds.
const FOLLOW: Duration = Duration::from_secs(40);

/// Client threads, each sending `GET target` on fresh connections until stopped (or for a
/// minute at most), recording every request that did not get a complete 200.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, clients: usize, target: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..clients)
            .map(|_| {
                let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
                let target = target.to_string();
                std::thread::spawn(move || {
                    let until = Instant::now() + Duration::from_secs(60);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                        match http_get(addr, &target) {
                            Ok(response) if response.status == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(response) => failures.lock().unwrap().push(response.to_string()),
                            Err(error) => failures.lock().unwrap().push(error),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failures,
            threads,
        }
    }

    /// Stops the clients; fails with the logs if any request failed. Returns how many
    /// succeeded.
    fn finish(mut self, kaiser: &Kaiser) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            thread.join().unwrap();
        }
        let failures = self.failures.lock().unwrap();
        let ok = self.ok.load(Ordering::Relaxed);
        assert!(
            failures.is_empty(),
            "{} of {} requests failed while workers came and went; first: {}\n{}",
            failures.len(),
            ok + failures.len() as u64,
            failures[0],
            kaiser.logs()
        );
        assert!(ok > 0, "no request was served");
        ok
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn read_stats(path: &Path) -> serde_json::Value {
    let mut stream = wait_for_unix(path, START_TIMEOUT).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stats are not JSON ({e}): {text}"))
}

/// The live processes of process group `pgid` (zombies left out).
fn group_processes(pgid: i32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let name = entry.ok()?.file_name();
            name.to_str()?.parse::<u32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", name.to_str()?)).ok()?;
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            (fields.first() != Some(&"Z") && fields.get(2)?.parse::<i32>().ok()? == pgid)
                .then_some(())
        })
        .count()
}

/// The worker count as the stats show it, and the bounds every sample must respect.
struct Workers {
    stats: PathBuf,
    /// The vassal's process group: its master and workers.
    pgid: Option<i32>,
    min: usize,
    max: usize,
    /// Every `(running, alive)` seen.
    seen: Vec<(usize, usize)>,
}

impl Workers {
    fn new(stats: PathBuf, min: usize, max: usize) -> Workers {
        Workers {
            stats,
            pgid: None,
            min,
            max,
            seen: Vec::new(),
        }
    }

    /// `(running, alive)`: workers not cheap, and processes (a cheaped worker finishing its
    /// request is alive but not running). Asserts the bounds.
    fn sample(&mut self) -> (usize, usize) {
        let stats = read_stats(&self.stats);
        let workers = stats["workers"].as_array().expect("workers");
        assert_eq!(workers.len(), self.max, "one entry per slot: {stats}");
        let running = workers.iter().filter(|w| w["status"] != "cheap").count();
        let alive = workers.iter().filter(|w| w["pid"] != 0).count();
        for worker in workers.iter().filter(|w| w["status"] == "cheap") {
            assert!(worker["pid"].is_u64() && worker["rss"].is_u64(), "{worker}");
        }
        assert!(
            running >= self.min && alive <= self.max,
            "{running} running, {alive} alive: outside {}..={}: {stats}",
            self.min,
            self.max
        );
        if let Some(pgid) = self.pgid {
            // Processes, not slots: the master and at most `processes` workers, ever.
            let processes = group_processes(pgid);
            assert!(
                processes <= self.max + 1,
                "{processes} processes in the vassal's group, more than {} workers and the master",
                self.max
            );
        }
        self.seen.push((running, alive));
        (running, alive)
    }

    /// Waits until exactly `n` workers run.
    fn wait_running(&mut self, n: usize, kaiser: &Kaiser) {
        self.pgid = Some(kaiser.pid());
        let result = wait_until(&format!("{n} running workers"), FOLLOW, |last| {
            let (running, alive) = self.sample();
            *last = format!("{running} running, {alive} alive");
            Ok((running == n).then_some(()))
        });
        if let Err(error) = result {
            panic!("{error}\n{}", kaiser.logs());
        }
    }
}

fn start(args: &[&str]) -> (Kaiser, SocketAddr, TempDir, PathBuf) {
    let dir = TempDir::new("cheaper");
    let stats = dir.join("stats.sock");
    let stats_text = stats.display().to_string();
    let mut full = vec![
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--stats",
        &stats_text,
    ];
    full.extend_from_slice(args);
    let (kaiser, addr) = lifecycle_support::start(&full);
    (kaiser, addr, dir, stats)
}

/// The decision lines the master logged for `algorithm`.
fn decisions(kaiser: &Kaiser, algorithm: &str) -> Vec<String> {
    let prefix = format!("cheaper {algorithm}: ");
    kaiser
        .logs()
        .lines()
        .filter(|line| line.contains(&prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn spare_follows_idle_burst_idle_and_no_request_fails() {
    let (kaiser, addr, _dir, stats) = start(&[
        "--processes",
        "4",
        "--cheaper",
        "1",
        "--cheaper-overload",
        "1",
        "--cheaper-step",
        "2",
    ]);
    let mut workers = Workers::new(stats, 1, 4);
    workers.wait_running(1, &kaiser);
    let load = Load::start(addr, 6, "/sleep?ms=300");
    workers.wait_running(4, &kaiser);
    load.finish(&kaiser);
    workers.wait_running(1, &kaiser);
    let lines = decisions(&kaiser, "spare");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("workers busy") && l.contains("spawning workers")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("idle for") && l.contains("stopping worker")),
        "{lines:#?}"
    );
    kaiser
        .wait_for_log("cheaped (pid", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    // A cheap slot is not respawned by the dead-worker path (which would log instead of,
    // or after, the line above).
    kaiser.master_barrier();
    assert!(!kaiser.logs().contains(", respawning"), "{}", kaiser.logs());
}

#[test]
fn busyness_follows_the_time_workers_spend_in_requests() {
    let (kaiser, addr, _dir, stats) = start(&[
        "--processes",
        "3",
        "--cheaper",
        "1",
        "--cheaper-algo",
        "busyness",
        "--cheaper-overload",
        "1",
        "--cheaper-busyness-multiplier",
        "2",
    ]);
    let mut workers = Workers::new(stats, 1, 3);
    workers.wait_running(1, &kaiser);
    let load = Load::start(addr, 4, "/sleep?ms=250");
    workers.wait_running(3, &kaiser);
    load.finish(&kaiser);
    workers.wait_running(1, &kaiser);
    let lines = decisions(&kaiser, "busyness");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("average busyness of 1 workers is") && l.contains("spawning")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("average busyness") && l.contains("stopping worker")),
        "{lines:#?}"
    );
}

#[test]
fn backlog_spawns_a_whole_step_within_one_cycle_of_a_burst() {
    let (kaiser, addr, _dir, stats) = start(&[
        "--processes",
        "4",
        "--cheaper",
        "1",
        "--cheaper-algo",
        "backlog",
        "--cheaper-overload",
        "2",
        "--cheaper-step",
        "3",
    ]);
    let mut workers = Workers::new(stats, 1, 4);
    workers.wait_running(1, &kaiser);
    let load = Load::start(addr, 12, "/sleep?ms=500");
    workers.wait_running(4, &kaiser);
    load.finish(&kaiser);
    workers.wait_running(1, &kaiser);
    let lines = decisions(&kaiser, "backlog");
    // One decision, one cycle: all three at once.
    assert!(
        lines.iter().any(|l| l.contains("spawning workers 2, 3, 4")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("listen queue") && l.contains("stopping worker")),
        "{lines:#?}"
    );
}

fn uwsgi_statuses(addr: SocketAddr) -> Vec<String> {
    let response = http_get(addr, "/uwsgi").unwrap();
    assert_eq!(response.status, 200, "{response}");
    let info: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    info["workers"]
        .as_array()
        .expect("workers()")
        .iter()
        .map(|w| w["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[test]
fn manual_follows_the_fifo_and_cheap_workers_show_in_stats_and_uwsgi_workers() {
    let dir = TempDir::new("cheaper-fifo");
    let fifo = dir.join("master.fifo");
    let fifo_text = fifo.display().to_string();
    let (kaiser, addr, _dir, stats) = start(&[
        "--processes",
        "3",
        "--cheaper",
        "1",
        "--cheaper-algo",
        "manual",
        "--master-fifo",
        &fifo_text,
    ]);
    let mut workers = Workers::new(stats.clone(), 1, 3);
    workers.wait_running(1, &kaiser);
    let document = read_stats(&stats);
    let list = document["workers"].as_array().unwrap();
    assert_eq!(list[0]["status"], "idle", "{document}");
    for cheap in &list[1..] {
        assert_eq!(cheap["status"], "cheap", "{document}");
        assert_eq!(cheap["pid"], 0, "{document}");
    }
    assert_eq!(uwsgi_statuses(addr), ["busy", "cheap", "cheap"]);

    fifo_write(&fifo, b"+");
    workers.wait_running(2, &kaiser);
    fifo_write(&fifo, b"++");
    workers.wait_running(3, &kaiser);
    let load = Load::start(addr, 2, "/sleep?ms=50");
    fifo_write(&fifo, b"-");
    workers.wait_running(2, &kaiser);
    fifo_write(&fifo, b"--");
    workers.wait_running(1, &kaiser);
    let mark = kaiser.log_mark();
    fifo_write(&fifo, b"-");
    kaiser
        .wait_for_log_since(mark, "not below cheaper = 1 workers", FOLLOW)
        .unwrap();
    load.finish(&kaiser);
    workers.sample();
    assert_eq!(uwsgi_statuses(addr).len(), 3);
    let lines = decisions(&kaiser, "manual");
    assert!(
        lines.iter().any(|l| l.contains("master fifo asks for +2")),
        "{lines:#?}"
    );
}

#[test]
fn fifo_plus_without_cheaper_changes_nothing_and_says_why() {
    let dir = TempDir::new("cheaper-off");
    let fifo = dir.join("master.fifo");
    let fifo_text = fifo.display().to_string();
    let (kaiser, _addr, _dir, stats) = start(&["--processes", "2", "--master-fifo", &fifo_text]);
    let mark = kaiser.log_mark();
    fifo_write(&fifo, b"+");
    kaiser
        .wait_for_log_since(
            mark,
            "the worker count is fixed because `cheaper` is not set",
            FOLLOW,
        )
        .unwrap();
    let document = read_stats(&stats);
    assert!(
        document["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["status"] == "idle"),
        "{document}"
    );
}

/// A tmux server on its own socket, killed by that name when dropped (as in tests/stats.rs).
struct Tmux {
    name: String,
}

impl Tmux {
    fn start(command: &str) -> Tmux {
        let name = format!("kaiser-cheaper-test-{}", std::process::id());
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
fn uwsgitop_shows_cheap_workers() {
    let (kaiser, _addr, _dir, stats) = start(&[
        "--processes",
        "3",
        "--cheaper",
        "1",
        "--cheaper-algo",
        "manual",
    ]);
    Workers::new(stats.clone(), 1, 3).wait_running(1, &kaiser);
    let uwsgitop = venv().join("bin").join("uwsgitop");
    let tmux = Tmux::start(&format!("{} {}", uwsgitop.display(), stats.display()));
    wait_until(
        "uwsgitop to draw two cheap workers",
        START_TIMEOUT,
        |last| {
            let screen = tmux.screen();
            *last = screen.clone();
            // A worker row: WID % PID REQ RPS EXC SIG STATUS ...
            let cheap_rows = screen
                .lines()
                .filter(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    fields.len() > 7 && fields[2] == "0" && fields[7] == "cheap"
                })
                .count();
            Ok((cheap_rows == 2 && screen.contains("WID")).then_some(()))
        },
    )
    .unwrap();
}

/// Seed 002's cheaper block, as the post gives it (`//` comments included).
const SEED_002_BLOCK: &str = "\
enable-threads=true\t// 允许在请求中开启新线程
master=true\t// 以独立守护进程运行
processes=8\t// 配置进程数量
threads=4 // 配置线程数量
cheaper=10 // 一个高阶的 cheap 模式，在启动的时候只会分配 n 个 worker 进程，并使用自适应算法启动新的进程
idle=60\t// 在经过 sec 秒的不活跃状态的进程会被销毁（进入了 cheap 模式），并最少保留 cheaper 指定的进程数
memory-report = true // 开启内存使用情况，通过 uwsgitop 字段 RSS、VSZ 查看
";

fn write_ini(dir: &TempDir, name: &str, block: &str) -> PathBuf {
    let path = dir.join(name);
    let stats = dir.join("stats.sock");
    let text = format!(
        "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = {}\nstats = {}\n{block}",
        repo_root().join("tests/apps/wsgi_suite.py").display(),
        stats.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn seed_002_cheaper_above_processes_is_refused_naming_the_line_and_the_fix() {
    let dir = TempDir::new("seed002");
    let ini = write_ini(&dir, "quickstart.ini", SEED_002_BLOCK);
    let output = Command::new(kaiser_bin())
        .arg("--ini")
        .arg(&ini)
        .output()
        .expect("kaiser runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let expected = format!(
        "{}:9: cheaper: `cheaper = 10` must be lower than `processes = 8`",
        ini.display()
    );
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in:\n{stderr}"
    );
    assert!(
        stderr.contains("set `cheaper` to at most 7 or raise `processes` above 10"),
        "{stderr}"
    );
}

#[test]
fn seed_002_block_runs_with_cheaper_below_processes() {
    let dir = TempDir::new("seed002ok");
    // The only value uWSGI refuses: `cheaper` must be below `processes`.
    let block = SEED_002_BLOCK.replace("cheaper=10 ", "cheaper=2 ");
    let ini = write_ini(&dir, "quickstart.ini", &block);
    let kaiser = Kaiser::spawn(&["--ini", ini.to_str().unwrap()]);
    let addr = kaiser
        .wait_for_addr("protocol=\"http\"", START_TIMEOUT)
        .unwrap();
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let mut workers = Workers::new(dir.join("stats.sock"), 2, 8);
    workers.wait_running(2, &kaiser);
    let load = Load::start(addr, 2, "/sleep?ms=20");
    let statuses = uwsgi_statuses(addr);
    assert_eq!(
        statuses.iter().filter(|s| *s == "cheap").count(),
        6,
        "{statuses:?}"
    );
    load.finish(&kaiser);
    workers.sample();
}

/// Seed 004's cheaper-busyness block (the Bloomberg production baseline), `;` comments
/// included; nothing in it needs adapting.
const SEED_004_BLOCK: &str = "\
cheaper-algo = busyness
processes = 128                      ; Maximum number of workers allowed
cheaper = 8                          ; Minimum number of workers allowed
cheaper-initial = 16                 ; Workers created at startup
cheaper-overload = 1                 ; Length of a cycle in seconds
cheaper-step = 16                    ; How many workers to spawn at a time

cheaper-busyness-multiplier = 30     ; How many cycles to wait before killing workers
cheaper-busyness-min = 20            ; Below this threshold, kill workers (if stable for multiplier cycles)
cheaper-busyness-max = 70            ; Above this threshold, spawn new workers
cheaper-busyness-backlog-alert = 16  ; Spawn emergency workers if more than this many requests are waiting in the queue
cheaper-busyness-backlog-step = 2    ; How many emergency workers to create if there are too many requests in the queue
";

#[test]
fn seed_004_busyness_block_starts_its_initial_workers_and_grows_by_its_step() {
    let dir = TempDir::new("seed004");
    let ini = write_ini(&dir, "bloomberg.ini", SEED_004_BLOCK);
    let kaiser = Kaiser::spawn(&["--ini", ini.to_str().unwrap()]);
    let addr = kaiser
        .wait_for_addr("protocol=\"http\"", START_TIMEOUT)
        .unwrap();
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    kaiser
        .wait_for_log(
            "cheaper busyness: min 20%, max 70%, overload 1 s, multiplier 30",
            START_TIMEOUT,
        )
        .unwrap();
    let mut workers = Workers::new(dir.join("stats.sock"), 8, 128);
    workers.wait_running(16, &kaiser);
    // Every initial worker busy for a whole cycle: 100% > 70%, one step of 16 more.
    let load = Load::start(addr, 20, "/sleep?ms=1500");
    workers.wait_running(32, &kaiser);
    load.finish(&kaiser);
    let lines = decisions(&kaiser, "busyness");
    assert!(
        lines.iter().any(|l| l.contains("spawning workers 17, 18")),
        "{lines:#?}"
    );
}

#[test]
fn idle_cheap_mode_and_cheaper_work_together() {
    let (kaiser, addr, _dir, stats) = start(&[
        "--processes",
        "3",
        "--cheaper",
        "1",
        "--cheaper-initial",
        "2",
        "--cheaper-algo",
        "manual",
        "--idle",
        "3",
    ]);
    let mut workers = Workers::new(stats.clone(), 0, 3);
    workers.wait_running(2, &kaiser);
    // `idle` stops every worker, below `cheaper`: the vassal waits for a connection.
    kaiser
        .wait_for_log("workers have been inactive for more than 3 seconds", FOLLOW)
        .unwrap();
    wait_until("every worker to stop and show as cheap", FOLLOW, |last| {
        let document = read_stats(&stats);
        *last = document.to_string();
        let stopped = document["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["status"] == "cheap" && w["pid"] == 0);
        Ok(stopped.then_some(()))
    })
    .unwrap();
    // The first connection brings back `cheaper` workers (as uWSGI), and it is served.
    let load = Load::start(addr, 1, "/sleep?ms=10");
    workers.wait_running(1, &kaiser);
    workers.min = 1;
    load.finish(&kaiser);
    workers.sample();
    kaiser
        .wait_for_log("leaving cheap mode", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn backlog_reads_the_listen_queue_of_a_unix_socket() {
    let dir = TempDir::new("cheaper-unix");
    let socket = dir.join("app.sock");
    let stats = dir.join("stats.sock");
    let kaiser = Kaiser::spawn(&[
        "--http-socket",
        socket.to_str().unwrap(),
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--stats",
        stats.to_str().unwrap(),
        "--processes",
        "3",
        "--cheaper",
        "1",
        "--cheaper-algo",
        "backlog",
        "--cheaper-overload",
        "1",
        "--cheaper-step",
        "2",
    ]);
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let mut workers = Workers::new(stats.clone(), 1, 3);
    workers.wait_running(1, &kaiser);
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<JoinHandle<()>> = (0..8)
        .map(|_| {
            let (stop, failures, socket) = (stop.clone(), failures.clone(), socket.clone());
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    match http_get_unix(&socket, "/sleep?ms=400") {
                        Ok(response) if response.status == 200 => {}
                        Ok(response) => failures.lock().unwrap().push(response.to_string()),
                        Err(error) => failures.lock().unwrap().push(error),
                    }
                }
            })
        })
        .collect();
    let queued = wait_until("the stats to show a unix listen queue", FOLLOW, |last| {
        let document = read_stats(&stats);
        *last = document["sockets"].to_string();
        let queue = document["sockets"][0]["queue"].as_u64().unwrap_or(0);
        Ok((queue > 0).then_some(queue))
    })
    .unwrap();
    assert!(queued > 0);
    workers.wait_running(3, &kaiser);
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "{failures:?}\n{}", kaiser.logs());
    let lines = decisions(&kaiser, "backlog");
    assert!(
        lines.iter().any(|l| l.contains("spawning workers 2, 3")),
        "{lines:#?}"
    );
}

#[test]
fn cheap_starts_without_workers_and_the_first_connection_brings_the_minimum() {
    let (kaiser, addr, _dir, stats) = start(&[
        "--processes",
        "3",
        "--cheaper",
        "1",
        "--cheaper-algo",
        "manual",
        "--cheap",
    ]);
    let document = read_stats(&stats);
    assert!(
        document["workers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["status"] == "cheap" && w["pid"] == 0),
        "{document}"
    );
    // Whatever the master spawned before the stats said "cheap" is logged by now.
    kaiser.master_barrier();
    assert!(
        !kaiser.logs().contains("spawned worker"),
        "{}",
        kaiser.logs()
    );
    let response = http_get(addr, "/sleep?ms=1").unwrap();
    assert_eq!(response.status, 200, "{response}");
    let mut workers = Workers::new(stats, 1, 3);
    workers.wait_running(1, &kaiser);
    kaiser
        .wait_for_log("leaving cheap mode", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn rss_limits_stop_workers_down_to_cheaper_and_hold_spawns_back() {
    let (kaiser, addr, _dir, stats) = start(&[
        "--processes",
        "3",
        "--cheaper",
        "1",
        "--cheaper-initial",
        "3",
        "--cheaper-algo",
        "backlog",
        "--cheaper-overload",
        "1",
        // Bytes: any worker is above both.
        "--cheaper-rss-limit-soft",
        "1",
        "--cheaper-rss-limit-hard",
        "2",
    ]);
    let mut workers = Workers::new(stats, 1, 3);
    workers.wait_running(1, &kaiser);
    let lines = decisions(&kaiser, "backlog");
    assert!(
        lines
            .iter()
            .filter(|l| l.contains("above cheaper-rss-limit-hard") && l.contains("stopping worker"))
            .count()
            == 2,
        "{lines:#?}"
    );
    let mark = kaiser.log_mark();
    let load = Load::start(addr, 4, "/sleep?ms=100");
    kaiser
        .wait_for_log_since(
            mark,
            "above cheaper-rss-limit-soft (0 MB), not spawning",
            FOLLOW,
        )
        .unwrap();
    workers.sample();
    load.finish(&kaiser);
    workers.wait_running(1, &kaiser);
}

#[test]
fn spare2_keeps_a_spare_worker_ahead_of_the_load() {
    let (kaiser, addr, _dir, stats) = start(&[
        "--processes",
        "3",
        "--cheaper",
        "1",
        "--cheaper-algo",
        "spare2",
        "--cheaper-idle",
        "2",
    ]);
    let mut workers = Workers::new(stats, 1, 3);
    workers.wait_running(1, &kaiser);
    // Two clients keep two workers busy: spare2 adds workers until one is idle again.
    let load = Load::start(addr, 2, "/sleep?ms=300");
    workers.wait_running(3, &kaiser);
    load.finish(&kaiser);
    workers.wait_running(1, &kaiser);
    let lines = decisions(&kaiser, "spare2");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("wanting 1 idle") && l.contains("spawning worker")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("for 2 cycles") && l.contains("stopping worker")),
        "{lines:#?}"
    );
}

#[test]
fn a_reload_starts_as_many_workers_as_ran_before_it() {
    let dir = TempDir::new("cheaper-reload");
    let fifo = dir.join("master.fifo");
    let fifo_text = fifo.display().to_string();
    let (kaiser, addr, _dir, stats) = start(&[
        "--processes",
        "4",
        "--cheaper",
        "1",
        "--cheaper-algo",
        "manual",
        "--master-fifo",
        &fifo_text,
    ]);
    let mut workers = Workers::new(stats, 1, 4);
    workers.wait_running(1, &kaiser);
    fifo_write(&fifo, b"+++");
    workers.wait_running(4, &kaiser);
    let load = Load::start(addr, 4, "/sleep?ms=50");
    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGHUP);
    // `reloaded in N ms, 4 workers` (not `app preloaded in the master`).
    kaiser
        .wait_for_line(mark, "the reload to complete", FOLLOW, |line| {
            (line.contains("reloaded in") && line.contains(" workers")).then_some(())
        })
        .unwrap();
    let logs = kaiser.logs_since(mark);
    assert!(
        logs.contains("cheaper: starting 4 workers, as many as ran before the reload"),
        "{logs}"
    );
    // The previous generation serves until the new one accepts, then finishes: only after
    // that does the vassal's group hold at most `processes` workers again.
    wait_until("the previous generation to finish", FOLLOW, |last| {
        *last = kaiser.logs_since(mark);
        Ok((last.matches("previous-generation worker finished").count() == 4).then_some(()))
    })
    .unwrap();
    workers.wait_running(4, &kaiser);
    load.finish(&kaiser);
}
