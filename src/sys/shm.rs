//! Memory shared between the master and its workers: an anonymous `MAP_SHARED` mapping made
//! before fork, seen only as an array of atomic words (DESIGN.md, fork safety rule 6).
//!
//! Handing out atomics only is what makes this safe to share across processes: every word
//! is read and written with atomic instructions, so no process can observe a torn value or
//! hold a lock that a SIGKILL would leave taken. This module knows nothing of what the words
//! mean; `worker::scoreboard` gives them names.

use std::io;
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
        Ok(SharedWords { ptr, len })
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
