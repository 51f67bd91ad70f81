//! The emperor end to end: the real `kaiser` binary governing a temp vassals directory, with a
//! test-owned `NOTIFY_SOCKET` listener, real HTTP requests and real signals.
//!
//! Until the real vassal lands, vassals are run by `tests/emperor_standin_vassal.py`, which
//! speaks the same contract (see `src/emperor/mod.rs`). Switching to the real vassal is one
//! line: make [`STANDIN_VASSAL`] `false`. The INIs below are real vassal INIs either way.

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Run vassals with the stand-in instead of `kaiser --ini` itself.
const STANDIN_VASSAL: bool = true;

const TIMEOUT: Duration = Duration::from_secs(20);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("an ephemeral port is available")
        .port()
}

fn hello_ini(port: u16) -> String {
    format!(
        "[uwsgi]\nhttp-socket = 127.0.0.1:{port}\nwsgi-file = {}\n",
        repo().join("tests/apps/hello.py").display()
    )
}

fn missing_app_ini(port: u16) -> String {
    format!("[uwsgi]\nhttp-socket = 127.0.0.1:{port}\nwsgi-file = /nonexistent/app.py\n")
}

/// A GET that returns the body of a 200, or a description of what happened instead.
fn get(port: u16) -> Result<String, String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set timeout");
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
            Ok(body.into())
        }
        _ => Err(format!("unexpected response {response:?}")),
    }
}

fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pid_alive(pid: i32) -> bool {
    // Zombies count as gone: their parent (the emperor, or init) will reap them.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

struct Emperor {
    child: Child,
    dir: PathBuf,
    notify: UnixDatagram,
    log: Arc<Mutex<String>>,
}

impl Emperor {
    fn start(name: &str, extra: &[&str], files: &[(&str, String)]) -> Emperor {
        let dir =
            std::env::temp_dir().join(format!("kaiser-emperor-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("vassals")).expect("temp dir is writable");
        for (file, text) in files {
            std::fs::write(dir.join("vassals").join(file), text).expect("write vassal");
        }
        let notify_path = dir.join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).expect("bind NOTIFY_SOCKET");
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set timeout");
        let mut command = Command::new(env!("CARGO_BIN_EXE_kaiser"));
        command
            .arg("--emperor")
            .arg(dir.join("vassals"))
            .args(extra)
            .env("NOTIFY_SOCKET", &notify_path)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if STANDIN_VASSAL {
            command.env(
                "KAISER_VASSAL_EXE",
                repo().join("tests/emperor_standin_vassal.py"),
            );
        }
        let mut child = command.spawn().expect("start kaiser");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("{line}");
                sink.lock().expect("log lock").push_str(&(line + "\n"));
            }
        });
        Emperor {
            child,
            dir,
            notify,
            log,
        }
    }

    fn vassals(&self) -> PathBuf {
        self.dir.join("vassals")
    }

    fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// Log lines that contain every one of `needles`.
    fn count(&self, needles: &[&str]) -> usize {
        self.log()
            .lines()
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .count()
    }

    fn wait_log(&self, needles: &[&str], times: usize) {
        wait_for(&format!("{times}× a log line with {needles:?}"), || {
            (self.count(needles) >= times).then_some(())
        });
    }

    /// Waits for a datagram containing `needle` and returns it.
    fn wait_notify(&self, needle: &str) -> String {
        let mut seen = Vec::new();
        let start = Instant::now();
        let mut buf = [0u8; 4096];
        while start.elapsed() < TIMEOUT {
            if let Ok(len) = self.notify.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..len]).into_owned();
                if message.contains(needle) {
                    return message;
                }
                seen.push(message);
            }
        }
        panic!("no sd_notify message with {needle:?} within {TIMEOUT:?}; got {seen:?}");
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        wait_for("the emperor to exit", || {
            self.child.try_wait().expect("try_wait")
        })
    }

    /// Pids of running vassals whose command line mentions `file`.
    fn vassal_pids(&self, file: &str) -> Vec<i32> {
        let needle = self.vassals().join(file);
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("procfs").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            if args
                .iter()
                .any(|arg| *arg == needle.as_os_str().as_encoded_bytes())
                && pid_alive(pid)
            {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Emperor {
    fn drop(&mut self) {
        // Vassals die with the emperor (PR_SET_PDEATHSIG); that is tested below.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs GETs in a loop until stopped; counts successes and records failures.
struct ClientLoop {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ClientLoop {
    fn start(port: u16) -> ClientLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let (s, o, f) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failures));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match get(port) {
                    Ok(_) => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => f.lock().expect("lock").push(error),
                }
            }
        });
        ClientLoop {
            stop,
            ok,
            failures,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("started")
            .join()
            .expect("client thread");
        (
            self.ok.load(Ordering::Relaxed),
            self.failures.lock().expect("lock").clone(),
        )
    }
}

fn atomic_save(path: &Path, text: &str) {
    let temp = path.with_file_name(format!(
        ".{}.swp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&temp, text).expect("write temp file");
    std::fs::rename(&temp, path).expect("rename over the vassal");
}

#[test]
fn initial_vassals_then_a_dropped_one_come_up_and_systemd_hears_ready() {
    let (first, second) = (free_port(), free_port());
    let emperor = Emperor::start("drop", &[], &[("first.ini", hello_ini(first))]);
    let ready = emperor.wait_notify("READY=1");
    assert!(
        ready.contains("1 ready"),
        "READY=1 comes after the initial vassal is ready: {ready:?}"
    );
    assert_eq!(get(first), Ok("Hello World".into()));

    std::fs::write(emperor.vassals().join("second.ini"), hello_ini(second)).expect("drop vassal");
    wait_for("the dropped vassal to serve", || get(second).ok());
    emperor.wait_log(&["vassal ready", "vassal=second", "startup_ms="], 1);
}

#[test]
fn touch_atomic_save_and_vim_save_each_reload_once_without_refusing_a_request() {
    let port = free_port();
    let emperor = Emperor::start("reload", &[], &[("site.ini", hello_ini(port))]);
    emperor.wait_notify("READY=1");
    let ini = emperor.vassals().join("site.ini");
    let pid = emperor.vassal_pids("site.ini");
    let clients = ClientLoop::start(port);

    // touch
    let file = std::fs::File::options()
        .append(true)
        .open(&ini)
        .expect("open");
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(1))
        .expect("touch");
    emperor.wait_log(&["vassal reloaded", "vassal=site"], 1);

    // an editor's atomic save: temp file, rename over the original
    atomic_save(&ini, &(hello_ini(port) + "# edited\n"));
    emperor.wait_log(&["vassal reloaded", "vassal=site"], 2);
    // vim's default save: move the original to a backup, write a new file, drop the backup.
    // The file is briefly missing; that must be one reload, not a stop and a start.
    let backup = ini.with_file_name("site.ini~");
    std::fs::rename(&ini, &backup).expect("move to backup");
    std::fs::write(&ini, hello_ini(port) + "# edited again\n").expect("write new file");
    std::fs::remove_file(&backup).expect("remove backup");
    emperor.wait_log(&["vassal reloaded", "vassal=site"], 3);

    // A burst must not cause a second reload: give any stray one time to show up.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        emperor.count(&["vassal reloading", "vassal=site"]),
        3,
        "one reload per change"
    );
    assert_eq!(
        emperor.count(&["vassal stopping"]),
        0,
        "no save stopped the vassal"
    );

    let (ok, failures) = clients.finish();
    assert!(
        failures.is_empty(),
        "requests failed during reloads: {failures:?}"
    );
    assert!(ok > 0, "the client loop made requests");
    assert_eq!(
        emperor.vassal_pids("site.ini"),
        pid,
        "a reload keeps the vassal process"
    );
}

#[test]
fn removing_the_file_stops_the_vassal() {
    let port = free_port();
    let emperor = Emperor::start("rm", &[], &[("gone.ini", hello_ini(port))]);
    emperor.wait_notify("READY=1");
    let pids = emperor.vassal_pids("gone.ini");
    assert_eq!(pids.len(), 1, "one vassal process");
    std::fs::remove_file(emperor.vassals().join("gone.ini")).expect("rm");
    emperor.wait_log(&["vassal removed", "vassal=gone"], 1);
    wait_for("the vassal process to end", || {
        (!pid_alive(pids[0])).then_some(())
    });
    assert!(get(port).is_err(), "nothing serves on the port any more");
}

#[test]
fn a_crash_looping_vassal_backs_off_beside_a_healthy_one_and_recovers_when_fixed() {
    let (good, bad) = (free_port(), free_port());
    let emperor = Emperor::start(
        "crashloop",
        &[],
        &[
            ("good.ini", hello_ini(good)),
            ("bad.ini", missing_app_ini(bad)),
        ],
    );
    emperor.wait_notify("READY=1");
    assert_eq!(get(good), Ok("Hello World".into()));
    emperor.wait_log(&["throttling", "vassal=bad", "retry_in_ms=1000"], 1);
    emperor.wait_log(&["throttling", "vassal=bad", "retry_in_ms=2000"], 1);
    assert_eq!(
        get(good),
        Ok("Hello World".into()),
        "the healthy vassal is unaffected"
    );
    assert_eq!(emperor.count(&["vassal exited", "vassal=good"]), 0);

    // Fixing the file retries at once, not after the (now 4 s) backoff.
    let fixed_at = Instant::now();
    std::fs::write(emperor.vassals().join("bad.ini"), hello_ini(bad)).expect("fix vassal");
    wait_for("the fixed vassal to serve", || get(bad).ok());
    assert!(
        fixed_at.elapsed() < Duration::from_secs(3),
        "recovered in {:?}",
        fixed_at.elapsed()
    );
}

#[test]
fn a_broken_config_marks_the_vassal_failed_until_edited() {
    let port = free_port();
    let emperor = Emperor::start(
        "broken",
        &[],
        &[("broken.ini", "[uwsgi]\nthis is not an option\n".into())],
    );
    let ready = emperor.wait_notify("READY=1");
    assert!(
        ready.contains("1 failed"),
        "a failed vassal does not hold up READY=1: {ready:?}"
    );
    emperor.wait_log(&["vassal failed", "vassal=broken"], 1);
    std::fs::write(emperor.vassals().join("broken.ini"), hello_ini(port)).expect("fix");
    wait_for("the fixed vassal to serve", || get(port).ok());
}

#[test]
fn ignored_files_spawn_nothing_and_other_formats_are_named() {
    let emperor = Emperor::start(
        "ignored",
        &[],
        &[
            (".hidden.ini", hello_ini(free_port())),
            ("backup.ini~", hello_ini(free_port())),
            ("site.yaml", "uwsgi: {}\n".into()),
            ("README", "hello\n".into()),
        ],
    );
    let ready = emperor.wait_notify("READY=1");
    assert!(ready.contains("governing 0 vassals"), "{ready:?}");
    emperor.wait_log(&["only `.ini` vassals are supported", "site.yaml"], 1);
    assert_eq!(emperor.count(&["new vassal"]), 0);
}

#[test]
fn sighup_reloads_every_vassal_and_tells_systemd() {
    let (a, b) = (free_port(), free_port());
    let emperor = Emperor::start(
        "hup",
        &[],
        &[("a.ini", hello_ini(a)), ("b.ini", hello_ini(b))],
    );
    emperor.wait_notify("READY=1");
    emperor.signal(libc::SIGHUP);
    let reloading = emperor.wait_notify("RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading:?}");
    emperor.wait_notify("READY=1");
    assert_eq!(emperor.count(&["vassal reloaded"]), 2);
}

#[test]
fn sigquit_stops_every_vassal_and_exits_zero() {
    let (a, b) = (free_port(), free_port());
    let mut emperor = Emperor::start(
        "quit",
        &[],
        &[("a.ini", hello_ini(a)), ("b.ini", hello_ini(b))],
    );
    emperor.wait_notify("READY=1");
    let pids: Vec<i32> = ["a.ini", "b.ini"]
        .iter()
        .flat_map(|f| emperor.vassal_pids(f))
        .collect();
    assert_eq!(pids.len(), 2);
    emperor.signal(libc::SIGQUIT);
    emperor.wait_notify("STOPPING=1");
    let status = emperor.wait_exit();
    assert_eq!(status.code(), Some(0), "emperor exit status {status:?}");
    for pid in pids {
        assert!(!pid_alive(pid), "vassal {pid} outlived the emperor");
    }
    assert_eq!(emperor.count(&["vassal stopped"]), 2);
}

#[test]
fn a_vassal_that_ignores_the_stop_is_killed_after_reload_mercy() {
    if !STANDIN_VASSAL {
        // Needs a vassal that ignores SIGTERM, which only the stand-in can be told to do.
        return;
    }
    let port = free_port();
    let stubborn = hello_ini(port) + "standin-ignore-term = true\n";
    let mut emperor = Emperor::start(
        "mercy",
        &["--reload-mercy", "1"],
        &[("stubborn.ini", stubborn)],
    );
    emperor.wait_notify("READY=1");
    let started = Instant::now();
    emperor.signal(libc::SIGTERM);
    assert_eq!(emperor.wait_exit().code(), Some(0));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "killed before the mercy time"
    );
    emperor.wait_log(&["no mercy", "vassal=stubborn"], 1);
}

#[test]
fn sigkill_of_the_emperor_leaves_no_vassal_behind() {
    let port = free_port();
    let mut emperor = Emperor::start("orphans", &[], &[("a.ini", hello_ini(port))]);
    emperor.wait_notify("READY=1");
    let pids = emperor.vassal_pids("a.ini");
    assert_eq!(pids.len(), 1);
    emperor.child.kill().expect("SIGKILL the emperor");
    emperor.child.wait().expect("reap the emperor");
    wait_for("the orphaned vassal to die", || {
        (!pid_alive(pids[0])).then_some(())
    });
}

#[test]
fn emperor_stats_serve_uwsgis_json_layout() {
    let (port, stats_port) = (free_port(), free_port());
    let stats_address = format!("127.0.0.1:{stats_port}");
    let emperor = Emperor::start(
        "stats",
        &["--emperor-stats", &stats_address],
        &[("a.ini", hello_ini(port))],
    );
    emperor.wait_notify("READY=1");
    let mut body = String::new();
    TcpStream::connect(&stats_address)
        .expect("connect to emperor-stats")
        .read_to_string(&mut body)
        .expect("read stats");
    let stats: serde_json::Value = serde_json::from_str(&body).expect("stats are JSON");
    // The fields uwsgitop reads for an emperor.
    assert!(stats["emperor"].is_array(), "{stats}");
    assert_eq!(stats["emperor_tyrant"], 0);
    assert!(stats["pid"].is_u64() && stats["uid"].is_u64() && stats["gid"].is_u64());
    assert_eq!(stats["vassals"][0]["id"], "a.ini");
    assert_eq!(stats["vassals"][0]["pid"], emperor.vassal_pids("a.ini")[0]);
    assert_eq!(stats["vassals"][0]["ready"], 1);
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = repo().join("systemd/emperor.uwsgi.service");
    assert!(unit.exists(), "{} is missing", unit.display());
    // The unit names /usr/bin/kaiser; verify checks that ExecStart exists, so point a copy at
    // the binary under test.
    let dir = std::env::temp_dir().join(format!("kaiser-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let text = std::fs::read_to_string(&unit)
        .expect("read unit")
        .replace("/usr/bin/kaiser", env!("CARGO_BIN_EXE_kaiser"));
    let copy = dir.join("emperor.uwsgi.service");
    std::fs::write(&copy, text).expect("write unit copy");
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .expect("systemd-analyze is installed (apt-get install systemd)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    // Without a running systemd (a container), verify still parses the unit but may complain
    // about the manager itself; a unit problem always names the unit file.
    let unit_problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("emperor.uwsgi.service"))
        .collect();
    assert!(
        unit_problems.is_empty() && output.status.success(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn several_monitors_a_glob_and_a_directory_created_later() {
    let (in_dir, in_glob, late) = (free_port(), free_port(), free_port());
    let base = std::env::temp_dir().join(format!("kaiser-globs-base-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(base.join("conf")).expect("temp dir");
    std::fs::write(base.join("conf/globbed.ini"), hello_ini(in_glob)).expect("write");
    std::fs::write(base.join("conf/other.txt"), "not matched\n").expect("write");
    let glob = format!("{}/conf/*.ini", base.display());
    let later = base.join("later");
    let emperor = Emperor::start(
        "globs",
        &[
            "--emperor",
            &glob,
            "--emperor",
            later.to_str().expect("utf-8 temp dir"),
        ],
        &[("plain.ini", hello_ini(in_dir))],
    );
    let ready = emperor.wait_notify("READY=1");
    assert!(ready.contains("2 ready"), "{ready:?}");
    assert_eq!(get(in_dir), Ok("Hello World".into()));
    assert_eq!(get(in_glob), Ok("Hello World".into()));
    emperor.wait_log(&["cannot read vassals", "later"], 1);

    // A monitored directory that appears later is picked up by the periodic rescan.
    std::fs::create_dir_all(&later).expect("create the late directory");
    std::fs::write(later.join("late.ini"), hello_ini(late)).expect("write");
    wait_for("the late directory's vassal to serve", || get(late).ok());
    // Once watched, its changes are seen through inotify again.
    std::fs::remove_file(later.join("late.ini")).expect("rm");
    emperor.wait_log(&["vassal removed", "vassal=late"], 1);
    drop(emperor);
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn emperor_tyrant_refuses_files_owned_by_root() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        // Files we create are only root-owned when the tests run as root (as in CI here).
        return;
    }
    let emperor = Emperor::start(
        "tyrant",
        &["--emperor-tyrant"],
        &[("root.ini", hello_ini(free_port()))],
    );
    let ready = emperor.wait_notify("READY=1");
    assert!(ready.contains("1 failed"), "{ready:?}");
    emperor.wait_log(&["refusing a vassal file owned by root", "vassal=root"], 1);
    assert!(
        emperor.vassal_pids("root.ini").is_empty(),
        "nothing was spawned"
    );
}
