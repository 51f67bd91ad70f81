//! Memory shared between the master and its workers: an anonymous `MAP_SHARED` mapping made
//! before fork, seen only as an array of atomic words (DESIGN.md, fork safety rule 6).
//!
//! Handing out atomics only is what makes this safe to share across processes: every word
//! is read and written with atomic instructions, so no process can observe a torn value or
//! hold a lock that a SIGKILL would leave taken. This module knows nothing of what the words
//! mean; `worker::scoreboard` gives them names.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// The atomic types a mapping may hold.
///
/// # Safety
/// Any bit pattern, all zeroes included, must be a valid value of the type, and every access
/// to it must be atomic.
pub unsafe trait SharedAtomic: Sync {}
// SAFETY: an integer atomic: every bit pattern is a value, every access is atomic.
unsafe impl SharedAtomic for AtomicU64 {}
/// 32-bit words, for futexes (`sys::lock`).
// SAFETY: as above.
unsafe impl SharedAtomic for AtomicU32 {}

/// An anonymous shared mapping of `len` zeroed atomic words (64-bit unless said otherwise).
pub struct SharedWords<T: SharedAtomic = AtomicU64> {
    ptr: NonNull<T>,
    len: usize,
    /// The memfd behind a mapping made by [`SharedWords::carried`], kept open so that it can
    /// be handed to the next master across a reload's exec.
    _memfd: Option<std::os::fd::OwnedFd>,
}

// SAFETY: the mapping is only ever accessed through `&[T]` of atomics, which is Sync; the
// pointer itself is owned by this value and unmapped once, in Drop.
unsafe impl<T: SharedAtomic> Send for SharedWords<T> {}
// SAFETY: as above: shared access goes through atomics only.
unsafe impl<T: SharedAtomic> Sync for SharedWords<T> {}

impl<T: SharedAtomic> SharedWords<T> {
    /// Maps `len` words (at least one). The memory is zero-filled by the kernel and is
    /// inherited by children forked afterwards, who then share it with this process.
    pub fn new(len: usize) -> io::Result<Self> {
        let len = len.max(1);
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "mapping too large"))?;
        // SAFETY: an anonymous mapping with no address hint has no preconditions; the
        // result is checked against MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<T>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        Ok(SharedWords {
            ptr,
            len,
            _memfd: None,
        })
    }

    /// Maps `len` words of a memfd named `name`: the one the previous master handed over
    /// through a reload's exec if it has that name and size (its contents kept, so the
    /// workers of both generations share it), else a new zeroed one. Either way it is
    /// registered to be handed to the next master ([`carry_across_exec`]).
    pub fn carried(name: &str, len: usize) -> io::Result<Self> {
        let len = len.max(1);
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "mapping too large"))?;
        let inherited = carry_registry()
            .inherited
            .remove(name)
            .filter(|fd| fd_size(fd).is_ok_and(|size| size == bytes as u64));
        let fd = match inherited {
            Some(fd) => fd,
            None => new_memfd(name, bytes)?,
        };
        // SAFETY: a shared mapping of `bytes` bytes of a memfd that is at least that long
        // (checked or just sized); the result is checked against MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<T>())
            .ok_or_else(|| io::Error::other("mmap returned a null mapping"))?;
        carry_registry()
            .carried
            .push((name.to_string(), fd.as_raw_fd()));
        Ok(SharedWords {
            ptr,
            len,
            _memfd: Some(fd),
        })
    }

    pub fn words(&self) -> &[T] {
        // SAFETY: the mapping is page-aligned (more than T's alignment), `len` words long,
        // zero-initialised (a valid `SharedAtomic` is any bit pattern), and lives
        // until Drop, which needs `&mut self`, so no borrow outlives it.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: SharedAtomic> Drop for SharedWords<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe exactly the mapping made in `new`, unmapped once.
        unsafe {
            libc::munmap(
                self.ptr.as_ptr().cast(),
                self.len * std::mem::size_of::<T>(),
            )
        };
    }
}

/// The environment variable naming the memfds a master hands to its re-exec:
/// `name=fd,name=fd`.
pub const CARRIED_ENV: &str = "KAISER_SHARED_FDS";

#[derive(Default)]
struct CarryRegistry {
    /// Handed over by the previous master, not yet claimed.
    inherited: std::collections::HashMap<String, std::os::fd::OwnedFd>,
    /// Mapped by this process with [`SharedWords::carried`]: name and fd.
    carried: Vec<(String, std::os::fd::RawFd)>,
}

fn carry_registry() -> std::sync::MutexGuard<'static, CarryRegistry> {
    static REGISTRY: std::sync::OnceLock<std::sync::Mutex<CarryRegistry>> =
        std::sync::OnceLock::new();
    REGISTRY
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Takes the memfds the previous master named in [`CARRIED_ENV`] (and removes the
/// variable). Call once, first thing in a master.
pub fn adopt_carried() {
    let Some(value) = std::env::var_os(CARRIED_ENV) else {
        return;
    };
    std::env::remove_var(CARRIED_ENV);
    let mut registry = carry_registry();
    for entry in value.to_string_lossy().split(',') {
        let Some((name, fd)) = entry.rsplit_once('=') else {
            continue;
        };
        let Ok(raw) = fd.parse::<std::os::fd::RawFd>() else {
            continue;
        };
        if let Ok(fd) = super::fd::adopt_inherited(raw) {
            let _ = super::fd::set_cloexec(fd.as_fd(), true);
            registry.inherited.insert(name.to_string(), fd);
        }
    }
}

/// Closes inherited memfds nothing claimed (a reload that changed `locks` or a cache).
pub fn drop_unclaimed() {
    carry_registry().inherited.clear();
}

/// Before a reload's exec: lets the carried memfds survive it and returns the value for
/// [`CARRIED_ENV`]. `keep` false undoes that after a failed exec.
pub fn carry_across_exec(keep: bool) -> String {
    let registry = carry_registry();
    let mut entries = Vec::new();
    for (name, raw) in &registry.carried {
        // SAFETY: the fd stays open as long as its mapping, which lives as long as this
        // process (the statics holding locks and caches are never dropped).
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(*raw) };
        if super::fd::set_cloexec(fd, !keep).is_ok() {
            entries.push(format!("{name}={raw}"));
        }
    }
    entries.join(",")
}

fn new_memfd(name: &str, bytes: usize) -> io::Result<std::os::fd::OwnedFd> {
    let cname = std::ffi::CString::new(format!("kaiser:{name}"))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name holds a NUL byte"))?;
    // SAFETY: a NUL-terminated name and flags; the result is checked below.
    let raw = unsafe { libc::memfd_create(cname.as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd that nothing else owns.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    // SAFETY: ftruncate on a valid fd; a new memfd reads as zeroes.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), bytes as libc::off_t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn fd_size(fd: &std::os::fd::OwnedFd) -> io::Result<u64> {
    // SAFETY: `stat` is plain old data; fstat fills it for a valid fd.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd and a pointer to a stat buffer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat.st_size as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn zeroed_and_writable() {
        let shm = SharedWords::<AtomicU64>::new(1000).expect("mmap");
        assert_eq!(shm.words().len(), 1000);
        assert!(shm.words().iter().all(|w| w.load(Ordering::Relaxed) == 0));
        shm.words()[999].store(7, Ordering::Relaxed);
        assert_eq!(shm.words()[999].load(Ordering::Relaxed), 7);
    }
}
