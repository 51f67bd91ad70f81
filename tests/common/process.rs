//! A child process whose output the test can wait on, killed with its whole process group on
//! drop; and [`Kaiser`], that process running the binary under test.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::paths::{kaiser_bin, repo_root};
use super::wait::parse_socket_addrs;

/// The combined stdout and stderr of a process, as text, with ANSI escapes removed.
struct Logs {
    state: Mutex<LogState>,
    changed: Condvar,
}

impl Logs {
    /// Sleeps until a reader thread adds output (or closes a stream), or `timeout` passes.
    fn wait_for_change<'a>(
        &self,
        state: std::sync::MutexGuard<'a, LogState>,
        timeout: Duration,
    ) -> std::sync::MutexGuard<'a, LogState> {
        self.changed.wait_timeout(state, timeout).unwrap().0
    }
}

struct LogState {
    text: String,
    /// Output pipes still open; 0 means no more output can come.
    open_streams: usize,
}

/// A process started in its own process group, with stdout and stderr captured into one
/// buffer by background threads. Dropping it SIGKILLs the whole group (the process and any
/// workers it forked) and reaps the process; if the test is panicking, the logs are printed.
///
/// The child also gets SIGKILL if the thread that spawned it exits (`PR_SET_PDEATHSIG`), so
/// a test killed on a timeout leaves nothing behind: spawn it on the thread that keeps it.
///
/// Set `KAISER_TEST_ECHO=1` to also see every line live on stderr.
pub struct LoggedProcess {
    name: String,
    child: Child,
    logs: Arc<Logs>,
    exit_status: Option<ExitStatus>,
}

impl LoggedProcess {
    /// Starts `command` with stdin from /dev/null and stdout/stderr captured. `name` labels
    /// the process in failure messages.
    pub fn spawn(name: &str, mut command: Command) -> LoggedProcess {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // Its own process group puts the child out of reach of whatever kills the test's
        // group (nextest on a timeout), and a killed test runs no Drop; so also have the
        // kernel SIGKILL the child when the thread that spawned it dies.
        // SAFETY: the closure runs between fork and exec and calls only prctl(2), which is
        // async-signal-safe; it allocates nothing and touches no locks.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name} ({command:?}): {error}"));
        let logs = Arc::new(Logs {
            state: Mutex::new(LogState {
                text: String::new(),
                open_streams: 2,
            }),
            changed: Condvar::new(),
        });
        let echo = std::env::var_os("KAISER_TEST_ECHO").is_some_and(|value| value == "1");
        let stdout = child.stdout.take().expect("stdout was configured as piped");
        let stderr = child.stderr.take().expect("stderr was configured as piped");
        spawn_reader(name, stdout, Arc::clone(&logs), echo);
        spawn_reader(name, stderr, Arc::clone(&logs), echo);
        LoggedProcess {
            name: name.to_owned(),
            child,
            logs,
            exit_status: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pids fit in pid_t")
    }

    /// Everything the process printed so far (stdout and stderr interleaved by line).
    pub fn logs(&self) -> String {
        self.logs.state.lock().unwrap().text.clone()
    }

    /// A position in the logs; pass it to [`LoggedProcess::wait_for_log_since`] to wait for a
    /// line printed after this point (e.g. after sending a signal).
    pub fn log_mark(&self) -> usize {
        self.logs.state.lock().unwrap().text.len()
    }

    /// The logs printed since `mark`.
    pub fn logs_since(&self, mark: usize) -> String {
        self.logs.state.lock().unwrap().text[mark..].to_owned()
    }

    /// Waits for a log line containing `needle` and returns that line. Fails early if the
    /// process exits without printing it.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        self.wait_for_log_since(0, needle, timeout)
    }

    /// Like [`LoggedProcess::wait_for_log`], looking only at what was printed after `mark`.
    pub fn wait_for_log_since(
        &self,
        mark: usize,
        needle: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        self.wait_for_line(
            mark,
            &format!("a log line containing {needle:?}"),
            timeout,
            |line| line.contains(needle).then(|| line.to_owned()),
        )
    }

    /// Fails unless a line containing `marker` is printed after `mark` with no line
    /// containing `unwanted` before it: the way to check that something was never logged.
    ///
    /// The output is read on threads of their own, so `logs()` right after an event can miss
    /// a line the process already wrote; an absence is only proven up to a line read later.
    /// Pick a `marker` the process can only print after it would have printed `unwanted`, on
    /// the same stream (e.g. the log line of a later request to the same worker).
    pub fn assert_no_log_before(
        &self,
        mark: usize,
        unwanted: &str,
        marker: &str,
        timeout: Duration,
    ) {
        let mut seen: Option<String> = None;
        self.wait_for_line(
            mark,
            &format!("a log line containing {marker:?}"),
            timeout,
            |line| {
                if line.contains(marker) {
                    return Some(());
                }
                if seen.is_none() && line.contains(unwanted) {
                    seen = Some(line.to_owned());
                }
                None
            },
        )
        .unwrap_or_else(|error| panic!("{error}"));
        if let Some(line) = seen {
            panic!(
                "expected no log line containing {unwanted:?} before {marker:?}, got {line:?}; \
                 logs of {}:\n{}",
                self.name,
                indent(&self.logs())
            );
        }
    }

    /// Sends `signal`, waits for the process to exit and for every process sharing its
    /// output to close it, and returns all it printed: for checks that something was never
    /// logged, when the test has no later line to wait for.
    pub fn stop_and_read_logs(&mut self, signal: i32, timeout: Duration) -> String {
        self.signal(signal);
        self.expect_exit(timeout);
        assert!(
            self.wait_output_closed(timeout),
            "a process of {}'s group still holds its output open; its logs:\n{}",
            self.name,
            indent(&self.logs())
        );
        self.logs()
    }

    /// Waits for a log line containing `needle` and a socket address with a non-zero port
    /// (`127.0.0.1:41234`, `[::1]:8080`), and returns the first such address: how a test
    /// learns which port a server given port 0 bound.
    pub fn wait_for_addr(&self, needle: &str, timeout: Duration) -> Result<SocketAddr, String> {
        self.wait_for_line(
            0,
            &format!("a log line containing {needle:?} and a bound address"),
            timeout,
            |line| {
                if !line.contains(needle) {
                    return None;
                }
                parse_socket_addrs(line)
                    .into_iter()
                    .find(|addr| addr.port() != 0)
            },
        )
    }

    /// The general form of the waits above: `matcher` is tried on each complete line printed
    /// after `mark`, in order, until it returns `Some`.
    pub fn wait_for_line<T>(
        &self,
        mark: usize,
        what: &str,
        timeout: Duration,
        mut matcher: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + timeout;
        let mut scanned = mark;
        let mut state = self.logs.state.lock().unwrap();
        loop {
            // Only complete lines are matched, so a line being written is never half-seen.
            while let Some(newline) = state.text[scanned..].find('\n') {
                let line = &state.text[scanned..scanned + newline];
                scanned += newline + 1;
                if let Some(found) = matcher(line) {
                    return Ok(found);
                }
            }
            let now = Instant::now();
            let finished = state.open_streams == 0;
            if finished || now >= deadline {
                let text = state.text.clone();
                drop(state);
                let why = if finished {
                    format!("{} closed its output ({})", self.name, self.describe_exit())
                } else {
                    format!("timed out after {timeout:?} ({})", self.describe_exit())
                };
                return Err(format!(
                    "expected {what} from {}, but {why}; its logs:\n{}",
                    self.name,
                    indent(&text)
                ));
            }
            state = self.logs.wait_for_change(state, deadline - now);
        }
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process itself.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child's,
        // which stays reserved until we reap it.
        let result = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(
            result,
            0,
            "kill({}, {signal}) failed: {}",
            self.pid(),
            std::io::Error::last_os_error()
        );
    }

    /// Sends `signal` to every process of the group (the process and all it forked).
    pub fn signal_group(&self, signal: i32) {
        // SAFETY: as above; a negative pid names our child's process group.
        let result = unsafe { libc::kill(-self.pid(), signal) };
        assert_eq!(
            result,
            0,
            "kill(-{}, {signal}) failed: {}",
            self.pid(),
            std::io::Error::last_os_error()
        );
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit_status.is_none() {
            self.exit_status = self
                .child
                .try_wait()
                .unwrap_or_else(|error| panic!("waitpid on {} failed: {error}", self.name));
        }
        self.exit_status
    }

    /// Waits up to `timeout` for the process to exit. When it does, also waits (briefly) for
    /// the output pipes to close, so `logs()` holds everything it printed.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                self.wait_output_closed(Duration::from_secs(1));
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Like [`LoggedProcess::wait_exit`], failing with the logs if the process is still running.
    pub fn expect_exit(&mut self, timeout: Duration) -> ExitStatus {
        match self.wait_exit(timeout) {
            Some(status) => status,
            None => panic!(
                "expected {} to exit within {timeout:?}, but it is still running; its logs:\n{}",
                self.name,
                indent(&self.logs())
            ),
        }
    }

    /// Waits until every output pipe is closed: the process and everything that inherited its
    /// stdout/stderr (forked workers) are gone. Returns false on timeout.
    pub fn wait_output_closed(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.logs.state.lock().unwrap();
        while state.open_streams > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self.logs.wait_for_change(state, deadline - now);
        }
        true
    }

    fn describe_exit(&self) -> String {
        match self.exit_status {
            Some(status) => format!("exited: {status}"),
            None => "still running or not yet reaped".to_owned(),
        }
    }
}

impl Drop for LoggedProcess {
    fn drop(&mut self) {
        // Kill the group even if the leader already exited: its workers may have outlived it.
        // SAFETY: kill(2) has no memory-safety preconditions. The group cannot have been reused:
        // either our child is not reaped yet, or members of the group remain (if none do, the
        // call fails with ESRCH, which is fine).
        unsafe {
            libc::kill(-self.pid(), libc::SIGKILL);
        }
        let _ = self.child.wait();
        if std::thread::panicking() {
            self.wait_output_closed(Duration::from_millis(500));
            eprintln!(
                "---- logs of {} (pid {}) ----\n{}---- end of logs of {} ----",
                self.name,
                self.pid(),
                self.logs(),
                self.name
            );
        }
    }
}

fn spawn_reader(name: &str, pipe: impl Read + Send + 'static, logs: Arc<Logs>, echo: bool) {
    let name = name.to_owned();
    std::thread::Builder::new()
        .name(format!("{name}-output"))
        .spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let mut text = strip_ansi(&String::from_utf8_lossy(&line));
                        if !text.ends_with('\n') {
                            text.push('\n');
                        }
                        if echo {
                            eprint!("[{name}] {text}");
                        }
                        logs.state.lock().unwrap().text.push_str(&text);
                        logs.changed.notify_all();
                    }
                }
            }
            logs.state.lock().unwrap().open_streams -= 1;
            logs.changed.notify_all();
        })
        .expect("spawning a log reader thread");
}

/// Removes ANSI escape sequences (colours), so log matching never depends on whether the
/// logger decided its output is a terminal.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            // CSI: parameters and intermediates, then one final byte in @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            chars.next();
        }
    }
    out
}

pub(super) fn indent(text: &str) -> String {
    if text.is_empty() {
        return "    (nothing)\n".to_owned();
    }
    text.lines().map(|line| format!("    {line}\n")).collect()
}

/// The `kaiser` binary under test, as a [`LoggedProcess`] (all of whose methods it has).
///
/// It runs from the repository root (so `tests/apps/hello.py` is a valid path) with
/// `NO_COLOR=1` and `RUST_BACKTRACE=1`.
pub struct Kaiser {
    process: LoggedProcess,
}

impl Kaiser {
    /// `kaiser ARGS…`, e.g.
    /// `Kaiser::spawn(&["--http-socket", "127.0.0.1:0", "--wsgi-file", "tests/apps/hello.py"])`.
    pub fn spawn(args: &[&str]) -> Kaiser {
        Kaiser::spawn_with(args, |_| {})
    }

    /// Like [`Kaiser::spawn`], letting `configure` add environment variables
    /// (`NOTIFY_SOCKET`), change the working directory, etc. before the start.
    pub fn spawn_with(args: &[&str], configure: impl FnOnce(&mut Command)) -> Kaiser {
        let mut command = Command::new(kaiser_bin());
        command
            .args(args)
            .current_dir(repo_root())
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "1")
            .env_remove("NOTIFY_SOCKET");
        configure(&mut command);
        Kaiser {
            process: LoggedProcess::spawn("kaiser", command),
        }
    }
}

impl Kaiser {
    /// Returns once every line the vassal master wrote before this call has been read into
    /// `logs()`: SIGUSR1 makes the master print its stats report, and its lines arrive in
    /// the order it wrote them. It says nothing of the workers' lines (a worker writes on its
    /// own); two barriers in a row span at least one whole turn of the master's loop.
    pub fn master_barrier(&self) {
        let mark = self.log_mark();
        self.signal(libc::SIGUSR1);
        self.wait_for_log_since(mark, "*** kaiser stats:", Duration::from_secs(20))
            .unwrap_or_else(|error| panic!("{error}"));
    }
}

impl Deref for Kaiser {
    type Target = LoggedProcess;

    fn deref(&self) -> &LoggedProcess {
        &self.process
    }
}

impl DerefMut for Kaiser {
    fn deref_mut(&mut self) -> &mut LoggedProcess {
        &mut self.process
    }
}
