//! Process-shared locks that a dead holder cannot leave taken: a futex word in a shared
//! mapping made before fork (`SharedWords<AtomicU32>`), holding the kernel thread id of its
//! owner. A waiter that finds the owner gone (the worker was SIGKILLed by harakiri, or the
//! thread ended without unlocking) takes the lock over, as a robust pthread mutex would
//! report `EOWNERDEAD`. `uwsgi.lock()` and the shared cache are built on it.
//!
//! The word is `0` when free, else `owner tid | WAITERS` where `WAITERS` says someone may
//! sleep in `FUTEX_WAIT` and the unlocker must wake them. Waits are bounded (`RECHECK`) so a
//! waiter notices a dead owner even though nobody will ever wake it. Thread ids fit in 22
//! bits (`pid_max` is at most 2^22), so bit 31 is free for the flag.
//!
//! It does not log and knows nothing of Python; callers release the GIL before `lock`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const WAITERS: u32 = 1 << 31;
const OWNER: u32 = !WAITERS;
/// How long a waiter sleeps before it checks whether the owner still exists.
const RECHECK: Duration = Duration::from_millis(200);

/// How `lock` got the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    Free,
    /// The previous owner (this thread id) had died holding it: what it protected may be
    /// half-updated.
    FromDead(u32),
}

/// Why `lock` refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockError {
    /// The calling thread holds it already (a plain mutex would deadlock here).
    AlreadyHeld,
}

fn my_tid() -> u32 {
    super::process::gettid() as u32
}

/// Whether a thread with this id still exists. `kill(tid, 0)` looks thread ids up too.
fn alive(tid: u32) -> bool {
    // SAFETY: signal 0 only checks that the target exists.
    let ret = unsafe { libc::kill(tid as libc::pid_t, 0) };
    ret == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, 4-byte aligned AtomicU32 in a mapping shared across
    // processes (hence no FUTEX_PRIVATE_FLAG); the kernel only reads it and compares it with
    // `expected`. A spurious or early return is handled by the caller's loop.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`; waking has no memory effects beyond the syscall.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// Takes the lock, sleeping while another live thread holds it.
pub fn lock(word: &AtomicU32) -> Result<Acquired, LockError> {
    let me = my_tid();
    let mut flag = 0;
    loop {
        match word.compare_exchange(0, me | flag, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return Ok(Acquired::Free),
            Err(current) => {
                let owner = current & OWNER;
                if owner == me {
                    return Err(LockError::AlreadyHeld);
                }
                if owner != 0 && !alive(owner) {
                    // Take it over from the dead owner, keeping the flag so any other
                    // sleeper is woken at our unlock.
                    if word
                        .compare_exchange(
                            current,
                            me | (current & WAITERS),
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        return Ok(Acquired::FromDead(owner));
                    }
                    continue;
                }
                // Announce a sleeper, then sleep while the word is unchanged. Once we have
                // slept we take the lock with the flag set: others may still be waiting.
                if current & WAITERS == 0
                    && word
                        .compare_exchange(
                            current,
                            current | WAITERS,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        )
                        .is_err()
                {
                    continue;
                }
                futex_wait(word, current | WAITERS, RECHECK);
                flag = WAITERS;
            }
        }
    }
}

/// Takes the lock if it is free (or its owner is dead); never sleeps.
pub fn try_lock(word: &AtomicU32) -> Option<Acquired> {
    let me = my_tid();
    match word.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
        Ok(_) => Some(Acquired::Free),
        Err(current) => {
            let owner = current & OWNER;
            (owner != me
                && owner != 0
                && !alive(owner)
                && word
                    .compare_exchange(
                        current,
                        me | (current & WAITERS),
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok())
            .then_some(Acquired::FromDead(owner))
        }
    }
}

/// Releases the lock if the calling thread holds it; false (and nothing changes) otherwise,
/// as a robust mutex refuses an unlock by another thread.
pub fn unlock(word: &AtomicU32) -> bool {
    let me = my_tid();
    let current = word.load(Ordering::Relaxed);
    if current & OWNER != me {
        return false;
    }
    let previous = word.swap(0, Ordering::Release);
    if previous & WAITERS != 0 {
        futex_wake_all(word);
    }
    true
}

/// Whether a live thread holds the lock.
pub fn is_locked(word: &AtomicU32) -> bool {
    let owner = word.load(Ordering::Acquire) & OWNER;
    owner != 0 && (owner == my_tid() || alive(owner))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_threads_and_recovers_from_a_dead_owner() {
        let word = Arc::new(AtomicU32::new(0));
        assert_eq!(lock(&word), Ok(Acquired::Free));
        assert_eq!(lock(&word), Err(LockError::AlreadyHeld));
        assert!(is_locked(&word));
        let other = Arc::clone(&word);
        // Another thread cannot take it, cannot unlock it, and dies holding it once it is
        // handed over.
        let handle = std::thread::spawn(move || {
            assert_eq!(try_lock(&other), None);
            assert!(!unlock(&other));
        });
        handle.join().unwrap();
        assert!(unlock(&word));
        assert!(!is_locked(&word));
        let other = Arc::clone(&word);
        let dead = std::thread::spawn(move || {
            assert_eq!(lock(&other), Ok(Acquired::Free));
            my_tid()
        })
        .join()
        .unwrap();
        assert!(!is_locked(&word), "a dead owner's lock reads as free");
        assert_eq!(lock(&word), Ok(Acquired::FromDead(dead)));
        assert!(unlock(&word));
    }

    #[test]
    fn counts_without_lost_updates() {
        let word = Arc::new(AtomicU32::new(0));
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (word, counter) = (Arc::clone(&word), Arc::clone(&counter));
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        lock(&word).unwrap();
                        // A non-atomic read-modify-write: only the lock keeps it exact.
                        let value = counter.load(Ordering::Relaxed);
                        std::hint::spin_loop();
                        counter.store(value + 1, Ordering::Relaxed);
                        assert!(unlock(&word));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 8000);
    }
}
