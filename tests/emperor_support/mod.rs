//! Helpers shared by the emperor tests (`emperor.rs`, `emperor_options.rs`): a running
//! `kaiser --emperor` over a temp directory with its notify listener and log, the vassal
//! processes it started (found by ppid and command line, never by name), and HTTP to a
//! vassal's unix socket.
#![allow(
    dead_code,
    reason = "each emperor test binary uses part of these helpers"
)]

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{app, http_get_unix, wait_until, Kaiser, NotifyListener, TempDir};

pub const TIMEOUT: Duration = Duration::from_secs(20);

pub fn hello_ini(socket: &Path) -> String {
    format!(
        "[uwsgi]\nhttp-socket = {}\nwsgi-file = {}\n",
        socket.display(),
        app("hello.py").display()
    )
}

/// The hello app on `@DIR@/NAME.sock`, for [`Emperor::start`]'s files (there `@DIR@` is
/// the emperor's temp dir, and [`Emperor::socket`] names the same path).
pub fn hello(name: &str) -> String {
    hello_ini(Path::new(&format!("@DIR@/{name}.sock")))
}

/// A 200's body, or what happened instead.
pub fn get(socket: &Path) -> Result<String, String> {
    let response = http_get_unix(socket, "/")?;
    match response.status {
        200 => Ok(response.text()),
        status => Err(format!("status {status}: {}", response.text())),
    }
}

/// `/proc/PID/stat` as (state, ppid); `None` once the process is gone.
pub fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Zombies count as gone: whoever inherited them (init, a subreaper) reaps them.
pub fn alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// Live children of `pid`, by ppid (not by name).
pub fn children(pid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("procfs").flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if proc_stat(child).is_some_and(|(state, ppid)| ppid == pid && state != 'Z') {
            found.push(child);
        }
    }
    found.sort_unstable();
    found
}

pub fn wait_gone(pids: &[i32], what: &str) {
    wait_until(what, TIMEOUT, |last| {
        let left: Vec<i32> = pids.iter().copied().filter(|pid| alive(*pid)).collect();
        *last = format!("still alive: {left:?}");
        Ok(left.is_empty().then_some(()))
    })
    .unwrap_or_else(|error| panic!("{error}"));
}

/// A running emperor over `dir/vassals`, its notify listener and its log.
pub struct Emperor {
    pub kaiser: Kaiser,
    pub notify: NotifyListener,
    pub dir: TempDir,
    pub started: Instant,
}

impl Emperor {
    pub fn start(label: &str, extra: &[&str], files: &[(&str, String)]) -> Emperor {
        Emperor::start_with(label, extra, files, |_| {})
    }

    /// `files` are written into the vassals directory before the emperor starts, so they are
    /// part of its first scan; `@DIR@` in them is replaced by the test's temp dir (see
    /// [`hello`]).
    pub fn start_with(
        label: &str,
        extra: &[&str],
        files: &[(&str, String)],
        configure: impl FnOnce(&mut Command),
    ) -> Emperor {
        let dir = TempDir::new(label);
        std::fs::create_dir(dir.join("vassals")).expect("create the vassals dir");
        for (name, text) in files {
            let text = text.replace("@DIR@", dir.path().to_str().expect("utf-8 temp dir"));
            std::fs::write(dir.join("vassals").join(name), text).expect("write a vassal");
        }
        let notify = NotifyListener::new();
        let vassals = dir.join("vassals");
        let mut args = vec!["--emperor", vassals.to_str().expect("utf-8 temp dir")];
        args.extend_from_slice(extra);
        let kaiser = Kaiser::spawn_with(&args, |command| {
            command
                .env("NOTIFY_SOCKET", notify.path())
                // A test run from a systemd session must still log to the pipe.
                .env_remove("JOURNAL_STREAM")
                .env_remove("WATCHDOG_USEC");
            configure(command);
        });
        Emperor {
            kaiser,
            notify,
            dir,
            started: Instant::now(),
        }
    }

    pub fn vassals(&self) -> PathBuf {
        self.dir.join("vassals")
    }

    pub fn socket(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.sock"))
    }

    pub fn write(&self, file: &str, text: &str) {
        std::fs::write(self.vassals().join(file), text).expect("write a vassal");
    }

    /// Waits for `READY=1` from the emperor and returns that datagram.
    pub fn ready(&mut self) -> String {
        self.notify
            .recv_line("READY=1", TIMEOUT)
            .unwrap_or_else(|error| panic!("{error}\nemperor log:\n{}", self.kaiser.logs()))
    }

    /// Log lines so far containing every one of `needles`.
    pub fn count(&self, needles: &[&str]) -> usize {
        self.kaiser
            .logs()
            .lines()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .count()
    }

    /// Waits for the `times`-th log line containing every one of `needles`, and returns it.
    pub fn wait_log_n(&self, needles: &[&str], times: usize) -> String {
        let mut seen = 0;
        self.kaiser
            .wait_for_line(
                0,
                &format!("{times}× a log line with {needles:?}"),
                TIMEOUT,
                |line| {
                    if needles.iter().all(|needle| line.contains(needle)) {
                        seen += 1;
                        if seen == times {
                            return Some(line.to_owned());
                        }
                    }
                    None
                },
            )
            .unwrap_or_else(|error| panic!("{error}"))
    }

    pub fn wait_log(&self, needles: &[&str]) -> String {
        self.wait_log_n(needles, 1)
    }

    /// The master pid of the vassal run from `file` (a direct child of the emperor).
    pub fn vassal_pid(&self, file: &str) -> i32 {
        let config = self.vassals().join(file);
        let needle = config.as_os_str().as_encoded_bytes();
        let emperor = self.kaiser.pid();
        wait_until(&format!("a vassal process for {file}"), TIMEOUT, |last| {
            let masters: Vec<i32> = children(emperor)
                .into_iter()
                .filter(|pid| {
                    std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == needle))
                })
                .collect();
            *last = format!("vassal processes: {masters:?}");
            Ok((masters.len() == 1).then(|| masters[0]))
        })
        .unwrap_or_else(|error| panic!("{error}"))
    }

    /// The master's pid and its workers' pids, once `workers` of them run.
    pub fn vassal_tree(&self, file: &str, workers: usize) -> (i32, Vec<i32>) {
        let master = self.vassal_pid(file);
        let found = wait_until(&format!("{workers} workers of {file}"), TIMEOUT, |last| {
            let found = children(master);
            *last = format!("children of {master}: {found:?}");
            Ok((found.len() == workers).then_some(found))
        })
        .unwrap_or_else(|error| panic!("{error}"));
        (master, found)
    }

    pub fn stats_unix(&self, path: &Path) -> serde_json::Value {
        let mut body = String::new();
        UnixStream::connect(path)
            .and_then(|mut stream| stream.read_to_string(&mut body))
            .unwrap_or_else(|error| panic!("reading emperor stats at {}: {error}", path.display()));
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("stats JSON: {error}: {body}"))
    }
}
