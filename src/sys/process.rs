//! Process control: reaping children, parent-death signals, identities and privileges,
//! memory figures from /proc.

use std::ffi::CString;
use std::io;

pub type Pid = libc::pid_t;

pub fn getpid() -> Pid {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

pub fn getppid() -> Pid {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for ExitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitKind::Code(code) => write!(f, "exit code {code}"),
            ExitKind::Signal(sig) => write!(f, "killed by {} ({sig})", super::signal::name(*sig)),
        }
    }
}

/// Reaps one exited child without blocking.
pub fn try_wait_any() -> io::Result<Option<(Pid, ExitKind)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid out-pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ECHILD) {
            return Ok(None);
        }
        return Err(err);
    }
    if pid == 0 {
        return Ok(None);
    }
    let kind = if libc::WIFEXITED(status) {
        ExitKind::Code(libc::WEXITSTATUS(status))
    } else {
        ExitKind::Signal(libc::WTERMSIG(status))
    };
    Ok(Some((pid, kind)))
}

/// Asks the kernel to send `sig` to this process when its parent dies.
pub fn set_parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and no pointers.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ends the process at once, without running atexit handlers or destructors: what a forked
/// child does so that it never runs its parent's cleanup (Python finalisation, vacuum).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is always sound.
    unsafe { libc::_exit(code) }
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::from("localhost");
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

pub fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

pub fn gid() -> u32 {
    // SAFETY: getgid cannot fail.
    unsafe { libc::getgid() }
}

pub fn cpu_count() -> u32 {
    // SAFETY: sysconf has no memory effects.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n < 1 {
        1
    } else {
        n as u32
    }
}

/// A user resolved by name or number: (uid, primary gid, name).
pub fn lookup_user(spec: &str) -> io::Result<(u32, u32, String)> {
    let name = c_name(spec, "user")?;
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: passwd is plain old data.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let (buf_ptr, buf_len) = (buf.as_mut_ptr(), buf.len());
    let ret = match spec.parse::<u32>() {
        // SAFETY: all pointers are valid for the sizes given.
        Ok(uid) => unsafe { libc::getpwuid_r(uid, &mut pwd, buf_ptr, buf_len, &mut result) },
        // SAFETY: all pointers are valid for the sizes given.
        Err(_) => unsafe {
            libc::getpwnam_r(name.as_ptr(), &mut pwd, buf_ptr, buf_len, &mut result)
        },
    };
    found(ret, result, "user", spec)?;
    // SAFETY: on success pw_name points into `buf`, NUL-terminated.
    let user = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned();
    Ok((pwd.pw_uid, pwd.pw_gid, user))
}

/// A group resolved by name or number.
pub fn lookup_group(spec: &str) -> io::Result<u32> {
    if let Ok(gid) = spec.parse::<u32>() {
        return Ok(gid);
    }
    let name = c_name(spec, "group")?;
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: group is plain old data.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    let (buf_ptr, buf_len) = (buf.as_mut_ptr(), buf.len());
    // SAFETY: all pointers are valid for the sizes given.
    let ret = unsafe { libc::getgrnam_r(name.as_ptr(), &mut grp, buf_ptr, buf_len, &mut result) };
    found(ret, result, "group", spec)?;
    Ok(grp.gr_gid)
}

/// A user or group name for the C library (`what` names which, for the error).
fn c_name(spec: &str, what: &str) -> io::Result<CString> {
    CString::new(spec)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("NUL in {what} name")))
}

/// The outcome of a `get*_r` lookup: found, or "no user `spec`" (or group).
fn found<T>(ret: libc::c_int, result: *mut T, what: &str, spec: &str) -> io::Result<()> {
    if ret != 0 || result.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no {what} `{spec}`"),
        ));
    }
    Ok(())
}

pub fn chown(path: &std::path::Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    std::os::unix::fs::chown(path, uid, gid)
}

/// The stack size glibc gives a new thread, and so Python's `threading` threads: the soft
/// `RLIMIT_STACK` (`ulimit -s`, usually 8 MiB), or 8 MiB when it is unlimited.
pub fn default_thread_stack() -> usize {
    const FALLBACK: usize = 8 << 20;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return FALLBACK;
    }
    usize::try_from(limit.rlim_cur)
        .unwrap_or(FALLBACK)
        .max(64 << 10)
}

/// Sets the process's umask (`umask`).
pub fn set_umask(mask: u32) {
    // SAFETY: umask has no memory effects.
    unsafe { libc::umask(mask as libc::mode_t) };
}

/// Resident set size of `pid` in bytes, from /proc/PID/statm.
pub fn rss_bytes(pid: Pid) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    Some(pages * page)
}

/// Address space and resident set size of `pid` in bytes, from /proc/PID/statm (the first
/// two fields, in pages).
pub fn memory_bytes(pid: Pid) -> Option<(u64, u64)> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let mut fields = statm.split_whitespace();
    let size: u64 = fields.next()?.parse().ok()?;
    let resident: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    Some((size * page, resident * page))
}

/// Virtual memory size of `pid` in bytes, from /proc/PID/statm.
pub fn vsz_bytes(pid: Pid) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().next()?.parse().ok()?;
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    Some(pages * page)
}

/// The calling thread's pthread id, which is also Python's `threading.get_ident()` for it
/// (CPython's `PyThread_get_thread_ident` returns `pthread_self()`).
pub fn thread_ident() -> u64 {
    // SAFETY: pthread_self cannot fail and has no memory effects.
    unsafe { libc::pthread_self() as u64 }
}

/// The calling thread's kernel id (the name of its `/proc/PID/task/TID` directory).
pub fn gettid() -> Pid {
    // SAFETY: gettid cannot fail and has no memory effects.
    unsafe { libc::gettid() }
}

/// How many nice levels kaiser lowers an import that runs while workers serve: the reload's
/// `--check-config` child, and a lazy-apps worker's import.
pub const IMPORT_NICE: libc::c_int = 10;

/// Lowers the calling thread's CPU priority by `increment` nice levels (Linux keeps the nice
/// value per thread; in a single-threaded process that is the process's). Threads created
/// afterwards inherit it; threads already running keep theirs. Async-signal-safe (a single
/// system call), so it may run between fork and exec. Failure leaves the priority as it
/// was, which is harmless for its callers. Raising it back would need privilege.
pub fn lower_priority(increment: libc::c_int) {
    // SAFETY: nice(2) only changes the calling thread's scheduling priority.
    unsafe { libc::nice(increment) };
}

/// Puts the calling thread under `SCHED_BATCH`; threads it creates afterwards inherit it.
///
/// Same share of the CPU as `SCHED_OTHER` at the same nice value; the difference is that a
/// batch thread does not preempt the running thread when it wakes up, it waits for that
/// thread to sleep or for the tick. A worker is woken by a front end's `connect()` (nginx
/// on the same core) before the request is written; preempting there costs two context
/// switches and an empty read per request. No privilege is needed.
pub fn use_batch_scheduling() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads one sched_param, which lives on this stack frame;
    // pid 0 is the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`). A system call, unlike
/// `Instant::now`; callers read it sparingly.
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which lives on this stack frame.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as servers that hold many connections
/// should (the soft 1024 is a `select()`-era default). Returns the soft limit before and
/// after.
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only `limit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads only `limit`.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((before, limit.rlim_cur))
}

/// Sets the soft and hard `RLIMIT_NOFILE` to `n` (`max-fd`); raising the hard limit needs
/// `CAP_SYS_RESOURCE`.
pub fn set_nofile_limit(n: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: n as libc::rlim_t,
        rlim_max: n as libc::rlim_t,
    };
    // SAFETY: setrlimit reads only `limit`.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reaps `pid` if it has exited, without blocking; `None` while it runs (or when it is not
/// our child, or was reaped already).
pub fn try_wait(pid: Pid) -> io::Result<Option<ExitKind>> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid out-pointer.
    let reaped = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if reaped < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ECHILD) {
            return Ok(None);
        }
        return Err(err);
    }
    if reaped == 0 {
        return Ok(None);
    }
    Ok(Some(if libc::WIFEXITED(status) {
        ExitKind::Code(libc::WEXITSTATUS(status))
    } else {
        ExitKind::Signal(libc::WTERMSIG(status))
    }))
}

/// Whether a process with this pid runs: it exists (`kill(pid, 0)`) and is not a zombie
/// (an exited process whose parent has not reaped it, which `kill` still finds; orphans wait
/// as zombies for ever under a pid 1 that does not reap).
pub fn is_alive(pid: Pid) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let ret = unsafe { libc::kill(pid, 0) };
    let exists = ret == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    // `/proc/PID/stat`: `pid (comm) S …`; the state follows the last `)`.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let (_, rest) = stat.rsplit_once(')')?;
            rest.trim_start().chars().next()
        });
    !matches!(state, Some('Z') | Some('X'))
}

/// Makes `command`'s child start with no blocked signals and SIGPIPE at its default: the
/// master blocks the signals it reads from its signalfd and ignores SIGPIPE, and both
/// survive exec, so a command would otherwise never see SIGTERM.
pub fn clean_signals_on_exec(command: &mut std::process::Command) {
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe
    // calls (sigemptyset, sigprocmask, signal) on a sigset_t on its own stack.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(command, || {
            reset_signals_for_exec();
            Ok(())
        });
    }
}

/// For a child between fork and exec: empty signal mask, SIGPIPE back to its default.
unsafe fn reset_signals_for_exec() {
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
}

/// Makes `command`'s child lead a new session (and so its own process group, which can be
/// signalled as a whole), and with `die_with_parent`, get SIGKILL when this process dies.
/// Its signals start clean, as with [`clean_signals_on_exec`].
pub fn new_session_on_exec(command: &mut std::process::Command, die_with_parent: bool) {
    // SAFETY: the closure runs between fork and exec and makes only async-signal-safe
    // system calls (sigprocmask, signal, setsid, prctl), touching no memory but its
    // captured bool and a sigset_t on its own stack.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(command, move || {
            reset_signals_for_exec();
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if die_with_parent {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            }
            Ok(())
        });
    }
}

/// Makes `command`'s child get SIGKILL when the *thread* that spawns it exits
/// (`PR_SET_PDEATHSIG`), exit at once with 1 if `parent` died before that was armed, and keep
/// the fds of `inherit` (created close-on-exec so that no other child gets them; `-1` for
/// none) open across exec. For the emperor's vassals: the caller must spawn from a thread
/// that lives as long as the process.
pub fn die_with_parent_on_exec(
    command: &mut std::process::Command,
    parent: Pid,
    inherit: [std::os::fd::RawFd; 2],
) {
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (prctl, getppid, fcntl, _exit) on values it captured by copy; it allocates
    // nothing. The caller keeps the fds of `inherit` open for the whole spawn.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(command, move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then no signal will come.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            for fd in inherit.into_iter().filter(|fd| *fd >= 0) {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Names the process as `ps -o comm` and `top` show it, from any of its threads: writing
/// `/proc/self/comm` renames the main thread, which names the process (`PR_SET_NAME` would
/// rename only the calling thread). The kernel keeps the first 15 bytes.
pub fn set_name(name: &str) {
    let bytes: Vec<u8> = name
        .bytes()
        .filter(|b| *b != 0 && *b != b'\n')
        .take(15)
        .collect();
    let _ = std::fs::write("/proc/self/comm", bytes);
}

/// First steps of every child the master forks (worker, spooler, mule, gateway): the
/// master's signals back to their defaults with nothing blocked (any other disposition is the
/// app's, set at import, and stays), SIGPIPE ignored, the fds only the master uses closed, die
/// with the master (`PR_SET_PDEATHSIG`), and exit at once if the master died before that took
/// effect (the child was already orphaned).
pub fn become_child_of(master: Pid, master_only_fds: &[std::os::fd::RawFd]) {
    super::signal::reset(&super::signal::MASTER_SIGNALS);
    super::signal::ignore_sigpipe();
    for fd in master_only_fds {
        // SAFETY: the caller hands fds the master owns and this child never uses; closing
        // them affects only this process's copy.
        unsafe { libc::close(*fd) };
    }
    let _ = set_parent_death_signal(libc::SIGKILL);
    if getppid() != master {
        exit_now(0);
    }
}
