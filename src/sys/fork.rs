//! The one place kaiser forks.
//!
//! Forking a process that has more than one thread copies only the calling thread: any lock
//! another thread held (malloc's, Python's, a tokio runtime's) stays locked forever in the
//! child. So [`fork`] refuses unless `/proc/self/task` shows exactly one thread.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    #[error("refusing to fork: this process has {threads} threads (only a single-threaded process can fork safely)")]
    Threaded { threads: usize },
    #[error("fork failed")]
    Os(#[source] io::Error),
}

pub enum Forked {
    Child,
    Parent { child: libc::pid_t },
}

/// `/proc/self/status`, opened before a `chroot` hides `/proc`, with the pid it describes.
static KEPT_STATUS: std::sync::Mutex<Option<(libc::pid_t, std::fs::File)>> =
    std::sync::Mutex::new(None);

/// Opens this process's `/proc` status now, so that [`thread_count`] (and so [`fork`])
/// keeps working after `chroot`. Only this process uses it: a child reads its own.
pub fn keep_thread_count_source() -> io::Result<()> {
    let file = std::fs::File::open("/proc/self/status")?;
    let mut kept = KEPT_STATUS.lock().unwrap_or_else(|p| p.into_inner());
    *kept = Some((crate::sys::process::getpid(), file));
    Ok(())
}

/// Counts this process's threads from `/proc/self/task` (or the status kept by
/// [`keep_thread_count_source`], which procfs regenerates at each read from offset 0).
pub fn thread_count() -> io::Result<usize> {
    let kept = KEPT_STATUS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((pid, file)) = kept.as_ref() {
        if *pid == crate::sys::process::getpid() {
            use std::os::unix::fs::FileExt;
            let mut buf = [0u8; 4096];
            let len = file.read_at(&mut buf, 0)?;
            let text = String::from_utf8_lossy(&buf[..len]);
            return text
                .lines()
                .find_map(|line| line.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
                .ok_or_else(|| io::Error::other("no `Threads:` line in /proc/self/status"));
        }
    }
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// `daemonize`: leaves the starting shell and terminal behind. Forks (the parent exits 0 at
/// once), starts a new session, forks again (so the daemon is no session leader and can never
/// acquire a terminal) and reads stdin from `/dev/null`. Only the last child returns.
pub fn detach() -> Result<(), ForkError> {
    if let Forked::Parent { .. } = fork()? {
        crate::sys::process::exit_now(0);
    }
    // SAFETY: setsid has no memory effects; it cannot fail in a child that is no group leader.
    unsafe { libc::setsid() };
    if let Forked::Parent { .. } = fork()? {
        crate::sys::process::exit_now(0);
    }
    let null = std::fs::File::open("/dev/null").map_err(ForkError::Os)?;
    crate::sys::fd::dup2(std::os::fd::AsFd::as_fd(&null), 0).map_err(ForkError::Os)?;
    Ok(())
}

/// `fork(2)`, only from a single-threaded process.
///
/// The caller is responsible for what must happen around the fork (Python's
/// `PyOS_BeforeFork`/`PyOS_AfterFork_*` live in `python/`).
pub fn fork() -> Result<Forked, ForkError> {
    let threads = thread_count().map_err(ForkError::Os)?;
    if threads != 1 {
        return Err(ForkError::Threaded { threads });
    }
    // SAFETY: the process has exactly one thread (checked above), so the child gets a
    // consistent copy of every lock and allocator state.
    match unsafe { libc::fork() } {
        -1 => Err(ForkError::Os(io::Error::last_os_error())),
        0 => Ok(Forked::Child),
        child => Ok(Forked::Parent { child }),
    }
}
