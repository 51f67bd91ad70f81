//! The emperor end to end: the real `kaiser --emperor` governing real `kaiser --ini` vassals
//! (fixture apps from `tests/apps`) in a temp directory, with a test-owned `NOTIFY_SOCKET`
//! listener, real HTTP requests over unix sockets, real signals, uwsgitop in tmux and a
//! stand-in journald socket.
//!
//! Vassals inherit the emperor's stderr, so one log holds both sides: the emperor's lines
//! name a vassal as `vassal=site`, the vassal's own lines carry its span `vassal{name=site}`.
//! Throttle and mercy values are short so the whole file runs in seconds.

mod common;
mod emperor_support;

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{app, http_get, http_get_unix, venv, wait_until, TempDir};
use emperor_support::*;

/// Clients each sending GETs in a loop until stopped; counts successes and records
/// failures.
///
/// Two clients, not one: with a single strictly serial client, a connection whose
/// `EPOLLEXCLUSIVE` wake-up went to a worker that is just stopping waits for the *next*
/// connection to wake a live worker, and a serial client never makes one (a worker bug,
/// reported to its owner). Real traffic has more than one client; the requests must still
/// all succeed.
struct ClientLoop {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl ClientLoop {
    fn start(socket: PathBuf) -> ClientLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..2)
            .map(|_| {
                let (s, o, f) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failures));
                let socket = socket.clone();
                std::thread::spawn(move || {
                    while !s.load(Ordering::Relaxed) {
                        match get(&socket) {
                            Ok(_) => {
                                o.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(error) => f.lock().expect("lock").push(error),
                        }
                    }
                })
            })
            .collect();
        ClientLoop {
            stop,
            ok,
            failures,
            threads,
        }
    }

    /// Stops the loop; fails the test if any request failed.
    fn finish(mut self, during: &str) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            thread.join().expect("client thread");
        }
        let failures = self.failures.lock().expect("lock").clone();
        let ok = self.ok.load(Ordering::Relaxed);
        assert!(
            failures.is_empty(),
            "{} of {} requests failed during {during}: {failures:?}",
            failures.len(),
            ok + failures.len()
        );
        assert!(ok > 0, "the client loop made no request during {during}");
        ok
    }
}

fn atomic_save(path: &Path, text: &str) {
    let temp = path.with_file_name(format!(
        ".{}.swp",
        path.file_name().expect("a file").to_string_lossy()
    ));
    std::fs::write(&temp, text).expect("write temp file");
    std::fs::rename(&temp, path).expect("rename over the vassal");
}

#[test]
fn initial_vassals_then_a_dropped_one_come_up_and_systemd_hears_ready() {
    let mut emperor = Emperor::start("e-drop", &[], &[("first.ini", hello("first"))]);
    let ready = emperor.ready();
    assert!(ready.contains("1 ready"), "{ready:?}");
    wait_until("the first vassal to serve", TIMEOUT, |last| {
        Ok(get(&emperor.socket("first")).map_err(|e| *last = e).ok())
    })
    .unwrap_or_else(|error| panic!("{error}"));

    let dropped_at = Instant::now();
    emperor.write("second.ini", &hello_ini(&emperor.socket("second")));
    let body = wait_until("the dropped vassal to serve", TIMEOUT, |last| {
        Ok(get(&emperor.socket("second")).map_err(|e| *last = e).ok())
    })
    .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(body, "Hello World");
    eprintln!("drop to first 200: {:?}", dropped_at.elapsed());
    let line = emperor.wait_log(&["vassal ready", "vassal=second", "startup_ms="]);
    assert!(line.contains("serving with 1 workers"), "{line}");
}

#[test]
fn ready_waits_for_the_slowest_initial_vassal_and_no_longer() {
    let dir = TempDir::new("e-slowapp");
    let slow_app = dir.write(
        "slow.py",
        "import time\ntime.sleep(0.8)\n\ndef application(environ, start_response):\n    \
         start_response('200 OK', [('Content-Length', '4')])\n    return [b'slow']\n",
    );
    let slow = format!(
        "[uwsgi]\nhttp-socket = @DIR@/slow.sock\nwsgi-file = {}\n",
        slow_app.display()
    );
    let mut emperor = Emperor::start(
        "e-readyat",
        &[],
        &[("slow.ini", slow), ("quick.ini", hello("quick"))],
    );
    let started = emperor.started;
    let ready = emperor.ready();
    let ready_after = started.elapsed();
    assert!(ready.contains("2 ready"), "READY=1 names both: {ready:?}");
    assert!(
        ready_after >= Duration::from_millis(800),
        "READY=1 came {ready_after:?} after the start, before the slow vassal's 800 ms import"
    );
    assert!(
        ready_after < Duration::from_secs(10),
        "READY=1 took {ready_after:?}"
    );
    emperor.wait_log(&["vassal ready", "vassal=slow"]);
    assert_eq!(get(&emperor.socket("slow")), Ok("slow".into()));
}

#[test]
fn touch_atomic_save_and_vim_save_each_reload_once_without_refusing_a_request() {
    let mut emperor = Emperor::start("e-reload", &[], &[("site.ini", hello("site"))]);
    let socket = emperor.socket("site");
    emperor.ready();
    let ini = emperor.vassals().join("site.ini");
    let (master, old_workers) = emperor.vassal_tree("site.ini", 1);
    let clients = ClientLoop::start(socket.clone());

    // touch
    let file = std::fs::File::options()
        .append(true)
        .open(&ini)
        .expect("open");
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(1))
        .expect("touch");
    emperor.wait_log_n(&["vassal reloaded", "vassal=site"], 1);

    // an editor's atomic save: temp file, rename over the original
    atomic_save(&ini, &(hello_ini(&socket) + "# edited\n"));
    emperor.wait_log_n(&["vassal reloaded", "vassal=site"], 2);
    // vim's default save: move the original to a backup, write a new file, drop the backup.
    // The file is briefly missing; that must be one reload, not a stop and a start.
    let backup = ini.with_file_name("site.ini~");
    std::fs::rename(&ini, &backup).expect("move to backup");
    std::fs::write(&ini, hello_ini(&socket) + "# edited again\n").expect("write new file");
    std::fs::remove_file(&backup).expect("remove backup");
    emperor.wait_log_n(&["vassal reloaded", "vassal=site"], 3);

    // A burst must not cause a second reload. Absence cannot be waited on, so give a stray
    // reload (the debounce window is 30-300 ms) a moment to show.
    std::thread::sleep(Duration::from_millis(400));
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
    clients.finish("three reloads");
    assert_eq!(
        emperor.vassal_pid("site.ini"),
        master,
        "a reload keeps the master"
    );
    let (_, new_workers) = emperor.vassal_tree("site.ini", 1);
    assert_ne!(new_workers, old_workers, "a reload replaces the workers");
    wait_gone(&old_workers, "the first generation of workers to exit");
}

#[test]
fn a_broken_edit_keeps_the_old_instance_serving_and_names_file_and_line() {
    let mut emperor = Emperor::start("e-badedit", &[], &[("site.ini", hello("site"))]);
    let socket = emperor.socket("site");
    emperor.ready();
    let master = emperor.vassal_pid("site.ini");
    let clients = ClientLoop::start(socket.clone());

    // Line 4 is broken.
    emperor.write("site.ini", &(hello_ini(&socket) + "processes = lots\n"));
    let failed = emperor.wait_log(&["vassal reload failed", "vassal=site"]);
    assert!(failed.contains("site.ini"), "names the file: {failed}");
    emperor.wait_log(&["site.ini:4:", "processes", "lots"]);
    assert_eq!(get(&socket), Ok("Hello World".into()));
    assert_eq!(emperor.vassal_pid("site.ini"), master);

    // Fixing it reloads for real.
    emperor.write("site.ini", &(hello_ini(&socket) + "processes = 2\n"));
    let reloaded = emperor.wait_log(&["vassal reloaded", "vassal=site"]);
    assert!(reloaded.contains("serving with 2 workers"), "{reloaded}");
    clients.finish("a refused and an accepted reload");
    assert_eq!(emperor.count(&["vassal exited"]), 0);
}

#[test]
fn removing_the_file_stops_the_vassal_and_its_workers() {
    let mut emperor = Emperor::start(
        "e-rm",
        &[],
        &[("gone.ini", hello("gone") + "processes = 2\n")],
    );
    let socket = emperor.socket("gone");
    emperor.ready();
    let (master, workers) = emperor.vassal_tree("gone.ini", 2);
    std::fs::remove_file(emperor.vassals().join("gone.ini")).expect("rm");
    emperor.wait_log(&["vassal stopped", "vassal=gone"]);
    emperor.wait_log(&["vassal removed", "vassal=gone"]);
    wait_gone(&[master], "the vassal master to exit");
    wait_gone(&workers, "the vassal's workers to exit");
    assert!(
        get(&socket).is_err(),
        "nothing serves on the socket any more"
    );
}

#[test]
fn a_crash_looping_vassal_backs_off_beside_a_healthy_one_and_recovers_when_fixed() {
    let broken = format!(
        "[uwsgi]\nhttp-socket = @DIR@/bad.sock\nwsgi-file = {}\n",
        app("broken_import.py").display()
    );
    let mut emperor = Emperor::start(
        "e-crashloop",
        &[
            "--emperor-throttle",
            "200",
            "--emperor-max-throttle",
            "1600",
        ],
        &[("good.ini", hello("good")), ("bad.ini", broken)],
    );
    let (good, bad) = (emperor.socket("good"), emperor.socket("bad"));
    let ready = emperor.ready();
    assert!(ready.contains("1 ready"), "{ready:?}");
    let good_master = emperor.vassal_pid("good.ini");
    for delay in ["retry_in_ms=200", "retry_in_ms=400", "retry_in_ms=800"] {
        emperor.wait_log(&["throttling", "vassal=bad", delay]);
        assert_eq!(
            get(&good),
            Ok("Hello World".into()),
            "the healthy vassal serves"
        );
    }
    let line = emperor.wait_log(&["throttling", "vassal=bad", "retry_in_ms=1600"]);
    assert!(line.contains("failures=4"), "{line}");
    emperor.wait_log(&["maximum throttle level reached", "vassal=bad"]);
    assert_eq!(emperor.count(&["vassal exited", "vassal=good"]), 0);
    assert_eq!(emperor.vassal_pid("good.ini"), good_master);

    // Fixing the file retries at once, not after the pending 1.6 s.
    let fixed_at = Instant::now();
    emperor.write("bad.ini", &hello_ini(&bad));
    wait_until("the fixed vassal to serve", TIMEOUT, |last| {
        Ok(get(&bad).map_err(|e| *last = e).ok())
    })
    .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        fixed_at.elapsed() < Duration::from_millis(1500),
        "recovered in {:?}, as if it waited for the backoff",
        fixed_at.elapsed()
    );
}

#[test]
fn a_broken_config_marks_the_vassal_failed_until_edited() {
    let mut emperor = Emperor::start(
        "e-broken",
        &[],
        &[("broken.ini", "[uwsgi]\nprocesses = lots\n".into())],
    );
    let ready = emperor.ready();
    assert!(
        ready.contains("1 failed"),
        "a failed vassal does not hold up READY=1: {ready:?}"
    );
    emperor.wait_log(&["broken.ini:2:"]);
    emperor.wait_log(&["vassal failed", "vassal=broken"]);
    let socket = emperor.socket("broken");
    emperor.write("broken.ini", &hello_ini(&socket));
    wait_until("the fixed vassal to serve", TIMEOUT, |last| {
        Ok(get(&socket).map_err(|e| *last = e).ok())
    })
    .unwrap_or_else(|error| panic!("{error}"));
}

#[test]
fn ignored_files_spawn_nothing_and_yaml_json_xml_vassals_run() {
    let unused = Path::new("/nonexistent/kaiser.sock");
    let hello_py = app("hello.py");
    let hello_py = hello_py.display();
    let mut emperor = Emperor::start(
        "e-formats",
        &[],
        &[
            (".hidden.ini", hello_ini(unused)),
            ("backup.ini~", hello_ini(unused)),
            ("backup.yaml~", "uwsgi:\n  http-socket: /nonexistent/y.sock\n".into()),
            ("README", "hello\n".into()),
            // uWSGI's emperor reads a vassal by its extension; so does kaiser's.
            ("y.yaml", format!("uwsgi:\n  http-socket: @DIR@/y.sock\n  wsgi-file: {hello_py}\n")),
            ("j.json", format!("{{\"uwsgi\": {{\"http-socket\": \"@DIR@/j.sock\", \"wsgi-file\": \"{hello_py}\"}}}}\n")),
            ("x.xml", format!("<uwsgi>\n<http-socket>@DIR@/x.sock</http-socket>\n<wsgi-file>{hello_py}</wsgi-file>\n</uwsgi>\n")),
        ],
    );
    let ready = emperor.ready();
    assert!(ready.contains("governing 3 vassals"), "{ready:?}");
    for name in ["y", "j", "x"] {
        assert_eq!(
            get(&emperor.socket(name)).as_deref(),
            Ok("Hello World"),
            "{name}"
        );
    }
    assert_eq!(emperor.count(&["new vassal"]), 3);
}

#[test]
fn sighup_reloads_every_vassal_and_tells_systemd() {
    let mut emperor = Emperor::start(
        "e-hup",
        &[],
        &[("a.ini", hello("a")), ("b.ini", hello("b"))],
    );
    emperor.ready();
    let masters = [emperor.vassal_pid("a.ini"), emperor.vassal_pid("b.ini")];
    emperor.kaiser.signal(libc::SIGHUP);
    let reloading = emperor
        .notify
        .recv_line("RELOADING=1", TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading:?}");
    let ready = emperor.ready();
    assert!(ready.contains("2 ready"), "{ready:?}");
    emperor.wait_log(&["vassal reloaded", "vassal=a"]);
    emperor.wait_log(&["vassal reloaded", "vassal=b"]);
    assert_eq!(
        [emperor.vassal_pid("a.ini"), emperor.vassal_pid("b.ini")],
        masters
    );
    assert_eq!(get(&emperor.socket("a")), Ok("Hello World".into()));
}

#[test]
fn sigquit_stops_every_vassal_and_worker_and_exits_zero() {
    let mut emperor = Emperor::start(
        "e-quit",
        &[],
        &[
            ("a.ini", hello("a") + "processes = 2\n"),
            ("b.ini", hello("b")),
        ],
    );
    emperor.ready();
    let (a, a_workers) = emperor.vassal_tree("a.ini", 2);
    let (b, b_workers) = emperor.vassal_tree("b.ini", 1);
    emperor.kaiser.signal(libc::SIGQUIT);
    emperor
        .notify
        .recv_line("STOPPING=1", TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    let status = emperor.kaiser.expect_exit(TIMEOUT);
    assert_eq!(status.code(), Some(0), "emperor exit status {status:?}");
    let everyone: Vec<i32> = [a, b]
        .into_iter()
        .chain(a_workers)
        .chain(b_workers)
        .collect();
    wait_gone(&everyone, "every vassal and worker to be gone");
    assert_eq!(emperor.count(&["vassal stopped"]), 2);
    assert!(
        emperor
            .notify
            .recv_line("STATUS=The Emperor is buried.", TIMEOUT)
            .is_ok(),
        "systemd hears the last status"
    );
}

/// execve keeps the signal mask. A starter that had SIGTERM blocked must not leave the
/// emperor deaf to it: it unblocks the signals it handles.
#[test]
fn an_emperor_started_with_sigterm_blocked_still_stops_on_it() {
    use std::os::unix::process::CommandExt;
    let mut emperor = Emperor::start_with("e-mask", &[], &[("a.ini", hello("a"))], |command| {
        // SAFETY: sigemptyset, sigaddset and sigprocmask are async-signal-safe, as code
        // between fork and exec must be; the set lives on this stack frame.
        unsafe {
            command.pre_exec(|| {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
    });
    emperor.ready();
    let (vassal, workers) = emperor.vassal_tree("a.ini", 1);
    emperor.kaiser.signal(libc::SIGTERM);
    let status = emperor.kaiser.expect_exit(TIMEOUT);
    assert_eq!(status.code(), Some(0), "emperor exit status {status:?}");
    let everyone: Vec<i32> = std::iter::once(vassal).chain(workers).collect();
    wait_gone(&everyone, "the vassal and its worker to be gone");
}

#[test]
fn a_vassal_that_ignores_the_stop_is_killed_after_reload_mercy() {
    let dir = TempDir::new("e-busyapp");
    let mark = dir.join("in-request");
    // A request that outlasts the mercy: the worker finishes its current request before it
    // stops, and `worker-reload-mercy` lets it, so only the emperor's SIGKILL ends it.
    let busy_app = dir.write(
        "busy.py",
        format!(
            "import time\n\ndef application(environ, start_response):\n    \
             open({mark:?}, 'w').close()\n    time.sleep(30)\n    \
             start_response('200 OK', [])\n    return [b'late']\n",
            mark = mark.display().to_string()
        ),
    );
    let busy = format!(
        "[uwsgi]\nhttp-socket = @DIR@/busy.sock\nwsgi-file = {}\nworker-reload-mercy = 60\n",
        busy_app.display()
    );
    let mut emperor = Emperor::start("e-mercy", &["--reload-mercy", "1"], &[("busy.ini", busy)]);
    let socket = emperor.socket("busy");
    emperor.ready();
    let (master, workers) = emperor.vassal_tree("busy.ini", 1);
    let request = std::thread::spawn(move || http_get_unix(&socket, "/"));
    wait_until("the worker to be inside the request", TIMEOUT, |_| {
        Ok(mark.exists().then_some(()))
    })
    .unwrap_or_else(|error| panic!("{error}"));

    let stopped_at = Instant::now();
    emperor.kaiser.signal(libc::SIGTERM);
    let status = emperor.kaiser.expect_exit(TIMEOUT);
    let took = stopped_at.elapsed();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        took >= Duration::from_secs(1),
        "killed after {took:?}, before the 1 s mercy"
    );
    assert!(
        took < Duration::from_secs(10),
        "took {took:?} to stop: was the mercy honoured?"
    );
    emperor.wait_log(&["no mercy", "vassal=busy"]);
    wait_gone(&[master], "the stubborn master to be killed");
    wait_gone(&workers, "the busy worker to be killed");
    assert!(
        request.join().expect("request thread").is_err(),
        "the request was cut"
    );
}

#[test]
fn sigkill_of_the_emperor_leaves_no_vassal_or_worker_behind() {
    let mut emperor = Emperor::start(
        "e-orphans",
        &[],
        &[
            ("a.ini", hello("a") + "processes = 2\n"),
            ("b.ini", hello("b")),
        ],
    );
    emperor.ready();
    let (a, a_workers) = emperor.vassal_tree("a.ini", 2);
    let (b, b_workers) = emperor.vassal_tree("b.ini", 1);
    // A vassal that was reloaded (re-exec'd) must still die with the emperor.
    std::fs::File::options()
        .append(true)
        .open(emperor.vassals().join("b.ini"))
        .and_then(|file| file.set_modified(std::time::SystemTime::now() + Duration::from_secs(1)))
        .expect("touch");
    emperor.wait_log(&["vassal reloaded", "vassal=b"]);
    let (_, b_new_workers) = emperor.vassal_tree("b.ini", 1);

    emperor.kaiser.signal(libc::SIGKILL);
    emperor.kaiser.expect_exit(TIMEOUT);
    let everyone: Vec<i32> = [a, b]
        .into_iter()
        .chain(a_workers)
        .chain(b_workers)
        .chain(b_new_workers)
        .collect();
    wait_gone(&everyone, "every vassal and worker to die with the emperor");
}

/// `emperor-pidfile` names the emperor; the uWSGI options real emperor configs carry that
/// kaiser answers another way (`emperor-freq`, `emperor-graceful-shutdown`,
/// `emperor-procname`) are accepted and change nothing.
#[test]
fn emperor_pidfile_is_written_and_uwsgis_polling_options_are_accepted() {
    let pid_dir = TempDir::new("e-pidfile");
    let pidfile = pid_dir.join("emperor.pid");
    let mut emperor = Emperor::start(
        "e-pidfile",
        &[
            "--emperor-pidfile",
            pidfile.to_str().expect("utf-8 temp dir"),
            "--emperor-freq",
            "3",
            "--emperor-graceful-shutdown",
            "--emperor-procname",
            "kaiser-emperor",
        ],
        &[("a.ini", hello("a"))],
    );
    emperor.ready();
    let written = std::fs::read_to_string(&pidfile).expect("the emperor wrote its pidfile");
    assert_eq!(written.trim(), emperor.kaiser.pid().to_string());
}

#[test]
fn emperor_stats_serve_uwsgis_json_layout_over_tcp() {
    let mut emperor = Emperor::start(
        "e-stats",
        &["--emperor-stats", "127.0.0.1:0"],
        &[("a.ini", hello("a"))],
    );
    emperor.ready();
    let address = emperor
        .kaiser
        .wait_for_addr("serving emperor stats", TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    let mut body = String::new();
    std::net::TcpStream::connect(address)
        .and_then(|mut stream| stream.read_to_string(&mut body))
        .expect("read emperor stats");
    let stats: serde_json::Value = serde_json::from_str(&body).expect("stats are JSON");
    // The fields uwsgitop reads for an emperor.
    assert!(stats["emperor"].is_array(), "{stats}");
    assert_eq!(stats["emperor_tyrant"], 0);
    assert!(stats["pid"].is_u64() && stats["uid"].is_u64() && stats["gid"].is_u64());
    assert_eq!(stats["vassals"][0]["id"], "a.ini");
    assert_eq!(stats["vassals"][0]["pid"], emperor.vassal_pid("a.ini"));
    assert_eq!(stats["vassals"][0]["ready"], 1);
    assert_eq!(stats["vassals"][0]["state"], "ready");
    // The response is the whole document: a plain HTTP client gets nothing else.
    assert!(http_get(address, "/").is_err());
}

/// Regression: the emperor's stats address parser did not know uWSGI's `@name` (an abstract
/// unix socket), which the vassal's did: it bound a file named `@name` in the cwd instead.
#[test]
fn emperor_stats_listen_on_an_abstract_unix_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("kaiser-emperor-stats-{}", std::process::id());
    let address = format!("@{name}");
    let mut emperor = Emperor::start(
        "e-stats-abstract",
        &["--emperor-stats", &address],
        &[("a.ini", hello("a"))],
    );
    emperor.ready();
    emperor
        .kaiser
        .wait_for_log("serving emperor stats", TIMEOUT)
        .unwrap();
    let abstract_address = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
    let mut body = String::new();
    std::os::unix::net::UnixStream::connect_addr(&abstract_address)
        .and_then(|mut stream| stream.read_to_string(&mut body))
        .unwrap_or_else(|e| panic!("emperor stats on {address}: {e}\n{}", emperor.kaiser.logs()));
    let stats: serde_json::Value = serde_json::from_str(&body).expect("stats are JSON");
    assert_eq!(stats["vassals"][0]["id"], "a.ini", "{stats}");
}

/// A tmux server of our own (`-L`), so nothing here can touch another tmux; the session is
/// killed by name on drop.
struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket, "-f", "/dev/null"]);
        command
    }

    fn start(label: &str, width: u16, height: u16, program: &str) -> Tmux {
        let unique = format!("kaiser-{label}-{}", std::process::id());
        let tmux = Tmux {
            socket: unique.clone(),
            session: unique,
        };
        let status = tmux
            .command()
            .args(["new-session", "-d", "-s", &tmux.session, "-x"])
            .arg(width.to_string())
            .arg("-y")
            .arg(height.to_string())
            .arg(program)
            .status()
            .expect("tmux is installed (scripts/setup-test-env)");
        assert!(status.success(), "tmux new-session failed: {status}");
        tmux
    }

    fn capture(&self) -> String {
        let output = self
            .command()
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self
            .command()
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

#[test]
fn uwsgitop_shows_the_vassals_from_emperor_stats_on_a_unix_socket() {
    let dir = TempDir::new("e-top");
    let stats = dir.join("emperor-stats.sock");
    let mut emperor = Emperor::start(
        "e-uwsgitop",
        &["--emperor-stats", stats.to_str().expect("utf-8 temp dir")],
        &[("alpha.ini", hello("alpha")), ("beta.ini", hello("beta"))],
    );
    emperor.ready();

    let json = emperor.stats_unix(&stats);
    let ids: Vec<&str> = json["vassals"]
        .as_array()
        .expect("a vassal list")
        .iter()
        .filter_map(|vassal| vassal["id"].as_str())
        .collect();
    assert_eq!(ids, ["alpha.ini", "beta.ini"]);

    let uwsgitop = venv().join("bin/uwsgitop");
    let tmux = Tmux::start(
        "uwsgitop",
        160,
        30,
        &format!("{} {}", uwsgitop.display(), stats.display()),
    );
    let alpha = emperor.vassal_pid("alpha.ini").to_string();
    let screen = wait_until("uwsgitop to show both vassals", TIMEOUT, |last| {
        let screen = tmux.capture();
        let shown = screen.contains("VASSAL")
            && screen.contains("alpha.ini")
            && screen.contains("beta.ini")
            && screen.contains(&alpha);
        *last = screen.clone();
        Ok(shown.then_some(screen))
    })
    .unwrap_or_else(|error| panic!("{error}"));
    assert!(screen.contains("emperor:"), "{screen}");
    drop(tmux);
}

#[test]
fn watchdog_is_pinged_when_systemd_sets_watchdog_usec() {
    let mut emperor = Emperor::start_with("e-watchdog", &[], &[], |command| {
        command.env("WATCHDOG_USEC", "200000");
    });
    emperor.ready();
    for _ in 0..3 {
        emperor
            .notify
            .recv_line("WATCHDOG=1", Duration::from_secs(2))
            .unwrap_or_else(|error| panic!("{error}"));
    }
}

#[test]
fn vassals_include_adds_an_option_to_every_vassal() {
    let dir = TempDir::new("e-include");
    let include = dir.write("common.ini", "[uwsgi]\nprocesses = 2\n");
    let mut emperor = Emperor::start(
        "e-include",
        &["--vassals-include", include.to_str().expect("utf-8")],
        &[("site.ini", hello("site"))],
    );
    emperor.ready();
    let line = emperor.wait_log(&["vassal ready", "vassal=site"]);
    assert!(line.contains("serving with 2 workers"), "{line}");
    emperor.wait_log(&["vassal starting", "--include"]);
    emperor.vassal_tree("site.ini", 2);
}

#[test]
fn vassals_inherit_overrides_the_vassals_own_value() {
    let dir = TempDir::new("e-inherit");
    let template = dir.write("template.ini", "[uwsgi]\nprocesses = 3\n");
    let mut emperor = Emperor::start(
        "e-inherit",
        &["--vassals-inherit", template.to_str().expect("utf-8")],
        &[("site.ini", hello("site") + "processes = 1\n")],
    );
    emperor.ready();
    let line = emperor.wait_log(&["vassal ready", "vassal=site"]);
    assert!(line.contains("serving with 3 workers"), "{line}");
    emperor.vassal_tree("site.ini", 3);
}

#[test]
fn uwsgi_vassal_env_reaches_live_vassals_not_the_emperor() {
    let mut emperor = Emperor::start_with(
        "e-envinject",
        &[],
        &[("site.ini", hello("site"))],
        |command| {
            command.env("UWSGI_VASSAL_PROCESSES", "2");
        },
    );
    emperor.ready();
    let line = emperor.wait_log(&["vassal ready", "vassal=site"]);
    assert!(line.contains("serving with 2 workers"), "{line}");
    let (master, _) = emperor.vassal_tree("site.ini", 2);
    let environ = std::fs::read(format!("/proc/{master}/environ")).expect("vassal environ");
    let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
    assert!(
        vars.contains(&&b"UWSGI_PROCESSES=2"[..]),
        "renamed for the vassal"
    );
    assert!(
        !vars.iter().any(|var| var.starts_with(b"NOTIFY_SOCKET=")),
        "NOTIFY_SOCKET is not leaked to vassals"
    );
}

/// One journal entry's fields, in order.
type JournalEntry = Vec<(String, String)>;
/// A description of an entry the test waits for, and how to recognise it.
type Wanted<'a> = (&'a str, &'a dyn Fn(&[(String, String)]) -> bool);

/// The native journal protocol's simple and binary field forms.
fn journal_fields(mut datagram: &[u8]) -> JournalEntry {
    let mut fields = Vec::new();
    while let Some(end) = datagram.iter().position(|b| *b == b'\n' || *b == b'=') {
        let key = String::from_utf8_lossy(&datagram[..end]).into_owned();
        if datagram[end] == b'=' {
            let rest = &datagram[end + 1..];
            let stop = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            fields.push((key, String::from_utf8_lossy(&rest[..stop]).into_owned()));
            datagram = &rest[(stop + 1).min(rest.len())..];
        } else {
            let rest = &datagram[end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().expect("8 length bytes")) as usize;
            fields.push((key, String::from_utf8_lossy(&rest[8..8 + len]).into_owned()));
            datagram = &rest[(8 + len + 1).min(rest.len())..];
        }
    }
    fields
}

#[test]
fn under_journald_entries_carry_the_vassal_name_and_worker_id() {
    let dir = TempDir::new("e-journal");
    let journal_path = dir.join("journal.sock");
    let journal = UnixDatagram::bind(&journal_path).expect("bind a journald stand-in");
    // Drain it from the start, as journald does: senders block once a few datagrams queue
    // up (`net.unix.max_dgram_qlen`, 10 by default without systemd's sysctl).
    let received = Arc::new(Mutex::new(Vec::<JournalEntry>::new()));
    let sink = Arc::clone(&received);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(len) = journal.recv(&mut buf) {
            sink.lock().expect("lock").push(journal_fields(&buf[..len]));
        }
    });
    let mut emperor = Emperor::start_with(
        "e-journald",
        &[],
        &[("mysite.ini", hello("mysite") + "processes = 2\n")],
        |command| {
            command
                .env("JOURNAL_STREAM", "8:12345")
                .env("KAISER_JOURNAL_SOCKET", &journal_path);
        },
    );
    emperor.ready();

    let field = |entry: &[(String, String)], key: &str| {
        entry.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    };
    let wanted: [Wanted; 3] = [
        (
            "the vassal's own `ready in` line, tagged with its name",
            &|entry| {
                field(entry, "VASSAL").as_deref() == Some("mysite")
                    && field(entry, "MESSAGE").is_some_and(|m| m.contains("ready in"))
            },
        ),
        (
            "the emperor's line about the vassal, tagged with its name",
            &|entry| {
                field(entry, "VASSAL").as_deref() == Some("mysite")
                    && field(entry, "MESSAGE")
                        .is_some_and(|m| m.starts_with("emperor: vassal ready"))
            },
        ),
        ("a line naming worker 2 of the vassal", &|entry| {
            field(entry, "VASSAL").as_deref() == Some("mysite")
                && field(entry, "WORKER_ID").as_deref() == Some("2")
        }),
    ];
    let entries = wait_until("the journal entries", TIMEOUT, |last| {
        let entries = received.lock().expect("lock").clone();
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|(_, matches)| !entries.iter().any(|e| matches(e)))
            .map(|(what, _)| *what)
            .collect();
        *last = format!("missing {missing:?} in {entries:#?}");
        Ok(missing.is_empty().then_some(entries))
    })
    .unwrap_or_else(|error| panic!("{error}"));
    for entry in &entries {
        assert_eq!(
            field(entry, "SYSLOG_IDENTIFIER").as_deref(),
            Some("kaiser"),
            "{entry:?}"
        );
        assert!(
            field(entry, "PRIORITY").is_some_and(|p| ["3", "4", "6", "7"].contains(&p.as_str())),
            "{entry:?}"
        );
    }
    assert_eq!(
        emperor.count(&["vassal ready"]),
        0,
        "tracing lines go to the journal socket, not also to stderr"
    );
}

#[test]
fn an_inotify_instance_limit_names_the_sysctl_to_raise() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        // Exhausting another user's inotify instances needs root (as in CI here).
        return;
    }
    // The limit is per user: use up a throwaway uid's instances, then start the emperor as
    // that uid. Nothing else runs as this uid, so the rest of the machine is unaffected.
    const UID: u32 = 61_733;
    let mut hog = Command::new("python3")
        .args([
            "-c",
            "import ctypes, sys\n\
             libc = ctypes.CDLL(None, use_errno=True)\n\
             n = 0\n\
             while libc.inotify_init() >= 0: n += 1\n\
             print('holding', n, 'errno', ctypes.get_errno(), flush=True)\n\
             sys.stdin.read()\n",
        ])
        .uid(UID)
        .gid(UID)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(hog.stdout.as_mut().expect("piped")),
        &mut line,
    )
    .expect("read the hog's report");
    assert!(
        line.contains(&format!("errno {}", libc::EMFILE)),
        "the hog stopped on: {line}"
    );
    let emperor = Emperor::start_with("e-inotify", &[], &[], |command| {
        command.uid(UID).gid(UID);
    });
    let line = emperor.wait_log(&["cannot use inotify"]);
    assert!(line.contains("`fs.inotify.max_user_instances`"), "{line}");
    // It carries on by polling. (Its READY=1 cannot reach our root-owned notify socket.)
    emperor.wait_log(&["emperor ready"]);
    let _ = hog.kill();
    let _ = hog.wait();
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = common::repo_root().join("systemd/emperor.uwsgi.service");
    assert!(unit.exists(), "{} is missing", unit.display());
    // The unit names /usr/bin/kaiser; verify checks that ExecStart exists, so point a copy at
    // the binary under test.
    let dir = TempDir::new("e-unit");
    let text = std::fs::read_to_string(&unit)
        .expect("read unit")
        .replace("/usr/bin/kaiser", common::kaiser_bin());
    let copy = dir.write("emperor.uwsgi.service", text);
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&copy)
        .output()
        .expect("systemd-analyze is installed (apt-get install systemd)");
    let stderr = String::from_utf8_lossy(&output.stderr);
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
    let base = TempDir::new("e-globs");
    std::fs::create_dir(base.join("conf")).expect("temp dir");
    std::fs::write(
        base.join("conf/globbed.ini"),
        hello_ini(&base.join("globbed.sock")),
    )
    .expect("write");
    std::fs::write(base.join("conf/other.txt"), "not matched\n").expect("write");
    let glob = format!("{}/conf/*.ini", base.path().display());
    let later = base.join("later");
    let mut emperor = Emperor::start(
        "e-monitors",
        &[
            "--emperor",
            &glob,
            "--emperor",
            later.to_str().expect("utf-8 temp dir"),
        ],
        &[("plain.ini", hello("plain"))],
    );
    let ready = emperor.ready();
    assert!(ready.contains("2 ready"), "{ready:?}");
    assert_eq!(get(&emperor.socket("plain")), Ok("Hello World".into()));
    assert_eq!(get(&base.join("globbed.sock")), Ok("Hello World".into()));
    emperor.wait_log(&["cannot read vassals", "later"]);

    // A monitored directory that appears later is picked up by the (1 s) rescan.
    std::fs::create_dir(&later).expect("create the late directory");
    let late = base.join("late.sock");
    std::fs::write(later.join("late.ini"), hello_ini(&late)).expect("write");
    wait_until("the late directory's vassal to serve", TIMEOUT, |last| {
        Ok(get(&late).map_err(|e| *last = e).ok())
    })
    .unwrap_or_else(|error| panic!("{error}"));
    // Once watched, its changes are seen through inotify again.
    std::fs::remove_file(later.join("late.ini")).expect("rm");
    emperor.wait_log(&["vassal removed", "vassal=late"]);
}

#[test]
fn emperor_tyrant_refuses_files_owned_by_root() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        // Files we create are only root-owned when the tests run as root (as in CI here).
        return;
    }
    let mut emperor = Emperor::start(
        "e-tyrant",
        &["--emperor-tyrant"],
        &[("root.ini", hello("root"))],
    );
    let ready = emperor.ready();
    assert!(ready.contains("1 failed"), "{ready:?}");
    emperor.wait_log(&["refusing a vassal file owned by root", "vassal=root"]);
    assert!(
        children(emperor.kaiser.pid()).is_empty(),
        "nothing was spawned"
    );
}

#[test]
fn a_socket_already_in_use_fails_that_vassal_only_and_sigusr1_logs_the_table() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port to hold");
    let port = taken.local_addr().expect("bound address").port();
    let clash = format!(
        "[uwsgi]\nhttp-socket = 127.0.0.1:{port}\nwsgi-file = {}\n",
        app("hello.py").display()
    );
    let mut emperor = Emperor::start(
        "e-inuse",
        &[],
        &[("clash.ini", clash), ("fine.ini", hello("fine"))],
    );
    let ready = emperor.ready();
    assert!(
        ready.contains("1 ready") && ready.contains("1 failed"),
        "{ready:?}"
    );
    emperor.wait_log(&["vassal failed", "vassal=clash"]);
    assert_eq!(get(&emperor.socket("fine")), Ok("Hello World".into()));

    emperor.kaiser.signal(libc::SIGUSR1);
    emperor.wait_log(&["vassal table", "vassals=2"]);
    emperor.wait_log(&["vassal=clash", "state=failed"]);
    emperor.wait_log(&["vassal=fine", "state=ready"]);
}

/// Bad input from issue 4: the vassals directory itself is deleted. Its vassals stop (their
/// files are gone), the emperor says so and keeps running, and a directory created again
/// in its place is governed again.
#[test]
fn a_deleted_vassals_directory_stops_its_vassals_and_is_picked_up_again() {
    let mut emperor = Emperor::start("e-rmdir", &[], &[("site.ini", hello("site"))]);
    emperor.ready();
    let socket = emperor.socket("site");
    let (master, _workers) = emperor.vassal_tree("site.ini", 1);
    std::fs::remove_dir_all(emperor.vassals()).expect("rm -r the vassals dir");
    emperor.wait_log(&["vassal removed", "vassal=site"]);
    wait_gone(&[master], "the vassal of a deleted directory to exit");
    assert!(
        emperor.kaiser.try_exit().is_none(),
        "the emperor must survive its directory's deletion:\n{}",
        emperor.kaiser.logs()
    );
    std::fs::create_dir(emperor.vassals()).expect("recreate the vassals dir");
    let text = hello("site").replace("@DIR@", emperor.dir.path().to_str().unwrap());
    std::fs::write(emperor.vassals().join("site.ini"), text).expect("write the vassal again");
    wait_until("the vassal to serve again", TIMEOUT, |last| {
        *last = format!("{:?}", get(&socket));
        Ok(get(&socket).ok())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", emperor.kaiser.logs()));
}

/// Bad input from issue 4: a file that disappears right after it appeared (an editor's
/// temporary, a failed deploy) spawns nothing that lingers and disturbs no other vassal.
#[test]
fn a_file_deleted_right_after_it_appears_leaves_nothing_behind() {
    let mut emperor = Emperor::start("e-flash", &[], &[("steady.ini", hello("steady"))]);
    emperor.ready();
    let steady = emperor.socket("steady");
    let (steady_master, _) = emperor.vassal_tree("steady.ini", 1);
    let text = hello("flash").replace("@DIR@", emperor.dir.path().to_str().unwrap());
    for _ in 0..5 {
        let path = emperor.vassals().join("flash.ini");
        std::fs::write(&path, &text).expect("write");
        std::fs::remove_file(&path).expect("rm");
    }
    // Whatever the emperor started for it, it must stop: no process of the emperor's
    // but the steady vassal's master stays.
    wait_until("only the steady vassal to remain", TIMEOUT, |last| {
        let masters = children(emperor.kaiser.pid());
        *last = format!("emperor children: {masters:?}");
        Ok((masters == vec![steady_master]).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", emperor.kaiser.logs()));
    assert!(get(&steady).is_ok(), "the steady vassal keeps serving");
}

/// `daemonize` in a vassal's file only sends its output to the file, as in uWSGI: the
/// emperor keeps the vassal it started (a detached one would look like an exit).
#[test]
fn a_vassal_with_daemonize_logs_to_its_file_and_stays_governed() {
    let text = format!("{}daemonize = @DIR@/d.log\n", hello("d"));
    let mut emperor = Emperor::start("e-daemonize", &[], &[("d.ini", text)]);
    let ready = emperor.ready();
    assert!(ready.contains("1 ready"), "{ready:?}");
    let body = wait_until("the vassal to serve", TIMEOUT, |last| {
        Ok(get(&emperor.socket("d")).map_err(|e| *last = e).ok())
    })
    .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(body, "Hello World");
    let pid = emperor.vassal_pid("d.ini");
    assert!(
        proc_stat(pid).is_some(),
        "the vassal the emperor started is gone"
    );
    let log = std::fs::read_to_string(emperor.dir.path().join("d.log")).unwrap_or_default();
    assert!(log.contains("ready in"), "the vassal's log file: {log:?}");
    assert_eq!(
        emperor.count(&["vassal stopped", "vassal=d"]),
        0,
        "{}",
        emperor.kaiser.logs()
    );
}

/// `heartbeat` + `emperor-required-heartbeat`: a vassal whose master hangs (SIGSTOP) falls
/// silent and is killed and respawned; a vassal without `heartbeat` is never judged.
#[test]
fn a_vassal_that_stops_beating_is_cursed_and_respawned() {
    let beating = format!("{}heartbeat = 1\n", hello("beat"));
    let mut emperor = Emperor::start(
        "e-heartbeat",
        &["--emperor-required-heartbeat", "2"],
        &[("beat.ini", beating), ("quiet.ini", hello("quiet"))],
    );
    emperor.ready();
    let (beat, quiet) = (emperor.socket("beat"), emperor.socket("quiet"));
    let hung = emperor.vassal_pid("beat.ini");
    let quiet_pid = emperor.vassal_pid("quiet.ini");
    // Beating vassals are left alone: more than the tolerance passes with heartbeats.
    emperor.wait_log(&["vassal ready", "vassal=beat"]);
    let mark = emperor.kaiser.log_mark();
    let settle = Instant::now();
    wait_until("3 s of heartbeats", TIMEOUT, |_| {
        Ok((settle.elapsed() > Duration::from_secs(3)).then_some(()))
    })
    .unwrap();
    assert!(!emperor
        .kaiser
        .logs_since(mark)
        .contains("missed its heartbeat"));
    assert_eq!(emperor.vassal_pid("beat.ini"), hung);

    // SAFETY: kill(2) on a pid this test's emperor spawned.
    unsafe { libc::kill(hung, libc::SIGSTOP) };
    let line = emperor.wait_log(&["missed its heartbeat", "vassal=beat"]);
    assert!(line.contains(&format!("pid={hung}")), "{line}");
    wait_gone(&[hung], "the cursed master");
    wait_until("the cursed vassal to serve again", TIMEOUT, |last| {
        Ok(get(&beat).map_err(|e| *last = e).ok())
    })
    .unwrap_or_else(|error| panic!("{error}"));
    assert_ne!(emperor.vassal_pid("beat.ini"), hung, "a new master serves");
    assert_eq!(
        emperor.vassal_pid("quiet.ini"),
        quiet_pid,
        "never sent a heartbeat: not judged"
    );
    assert_eq!(get(&quiet), Ok("Hello World".into()));
}

/// `emperor-on-demand-directory`: the emperor binds the vassal's socket and starts nothing;
/// the first connection starts the vassal and is served (it waited in the backlog, nothing
/// refused it); with `idle` + `die-on-idle` the vassal goes back to zero, and the next
/// connection starts it again.
#[test]
fn an_on_demand_vassal_starts_on_its_first_connection_and_goes_back_to_zero() {
    let od = TempDir::new("e-on-demand-sockets");
    let socket = od.join("app.socket");
    let ini = format!(
        "[uwsgi]\nhttp-socket = {}\nwsgi-file = {}\nidle = 1\ndie-on-idle = true\n",
        socket.display(),
        app("hello.py").display()
    );
    let mut emperor = Emperor::start(
        "e-on-demand",
        &[
            "--emperor-on-demand-directory",
            od.path().to_str().unwrap(),
            "--emperor-stats",
            "127.0.0.1:0",
        ],
        &[("app.ini", ini)],
    );
    let line = emperor.wait_log(&["on-demand vassal: waiting for connections", "vassal=app"]);
    assert!(line.contains(socket.to_str().unwrap()), "{line}");
    let stats_addr = emperor
        .kaiser
        .wait_for_addr("serving emperor stats", TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    let mut body = String::new();
    std::net::TcpStream::connect(stats_addr)
        .and_then(|mut stream| stream.read_to_string(&mut body))
        .expect("read emperor stats");
    let stats: serde_json::Value = serde_json::from_str(&body).expect("stats are JSON");
    assert_eq!(stats["vassals"][0]["state"], "waiting", "{stats}");
    assert_eq!(
        stats["vassals"][0]["on_demand"],
        socket.to_str().unwrap(),
        "{stats}"
    );
    assert_eq!(stats["vassals"][0]["pid"], 0, "{stats}");
    let ready = emperor.ready();
    assert!(ready.contains("1 waiting on demand"), "{ready}");
    assert!(
        children(emperor.kaiser.pid()).is_empty(),
        "no process before a connection"
    );
    assert!(socket.exists());

    for round in 0..2 {
        let started = Instant::now();
        assert_eq!(get(&socket), Ok("Hello World".into()), "round {round}");
        eprintln!(
            "round {round}: cold start to first response in {:?}",
            started.elapsed()
        );
        let master = emperor.vassal_pid("app.ini");
        // Idle for 1 s: the vassal stops and the emperor watches the socket again.
        emperor.wait_log_n(
            &["on-demand vassal exited; waiting for the next connection"],
            round + 1,
        );
        wait_gone(&[master], "the idle vassal");
        assert!(socket.exists(), "the socket stays, held by the emperor");
    }
    assert_eq!(emperor.count(&["vassal starting", "vassal=app"]), 2);

    emperor.kaiser.signal(libc::SIGTERM);
    assert!(emperor.kaiser.expect_exit(TIMEOUT).success());
    assert!(!socket.exists(), "the emperor removes the socket it bound");
}

/// `emperor-on-demand-extension`: the socket is named in `<vassal file><EXT>`, here a TCP
/// address; a vassal without such a file starts at once as usual.
#[test]
fn an_on_demand_vassal_on_tcp_named_by_its_extension_file() {
    // A free port: bound and released at once (nothing else on this loopback takes it).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let address = format!("127.0.0.1:{port}");
    let ini = format!(
        "[uwsgi]\nhttp-socket = {address}\nwsgi-file = {}\n",
        app("hello.py").display()
    );
    let emperor = Emperor::start(
        "e-on-demand-ext",
        &["--emperor-on-demand-extension", ".od"],
        &[
            ("tcp.ini", ini),
            ("tcp.ini.od", format!("{address}\n")),
            ("plain.ini", hello("plain")),
        ],
    );
    let line = emperor.wait_log(&["on-demand vassal: waiting for connections", "vassal=tcp"]);
    assert!(line.contains(&address), "{line}");
    emperor.wait_log(&["vassal ready", "vassal=plain"]);
    assert_eq!(emperor.count(&["vassal starting", "vassal=tcp"]), 0);
    let addr: std::net::SocketAddr = address.parse().unwrap();
    let response = http_get(addr, "/").unwrap();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "Hello World")
    );
    assert_eq!(emperor.count(&["vassal starting", "vassal=tcp"]), 1);
}

/// `emperor-on-demand-exec`: the socket is what `CMD <vassal file>` prints first (here read
/// from a comment in the file); a vassal for which it prints nothing starts at once.
#[test]
fn an_on_demand_vassal_named_by_a_command() {
    let socket_dir = TempDir::new("e-on-demand-exec-sockets");
    let socket = socket_dir.join("cmd.sock");
    let ini = format!(
        "[uwsgi]\n# on-demand: {path}\nhttp-socket = {path}\nwsgi-file = {}\n",
        app("hello.py").display(),
        path = socket.display()
    );
    let mut emperor = Emperor::start(
        "e-on-demand-exec",
        &["--emperor-on-demand-exec", "sed -n 's/^# on-demand: //p'"],
        &[("cmd.ini", ini), ("plain.ini", hello("plain"))],
    );
    emperor.wait_log(&["on-demand vassal: waiting for connections", "vassal=cmd"]);
    let ready = emperor.ready();
    assert!(
        ready.contains("1 ready") && ready.contains("1 waiting on demand"),
        "{ready}"
    );
    assert_eq!(get(&socket), Ok("Hello World".into()));
    assert_eq!(emperor.count(&["vassal starting", "vassal=cmd"]), 1);
}
