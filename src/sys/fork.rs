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

/// Counts this process's threads from `/proc/self/task`.
pub fn thread_count() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
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
