//! Process set-up as root and limits: supplementary groups (`initgroups`, `add-gid`),
//! the privilege drop, `chroot`, `RLIMIT_AS` and CPU affinity.
//!
//! Thin wrappers; what to call when is the vassal's decision. It does not log.

use std::ffi::CString;
use std::io;
use std::path::Path;

/// The supplementary groups a privilege drop leaves the process in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Groups {
    /// Leave them as they are.
    Keep,
    /// None at all (`no-initgroups`, or no `uid` to take them from).
    Clear,
    /// Exactly these: the user's (see [`user_groups`]), or `add-gid`'s, which replace them as
    /// in uWSGI.
    List(Vec<u32>),
}

/// Sets the supplementary groups, then drops to `gid` and `uid` (groups first: after
/// `setuid` they could no longer change).
pub fn drop_to(uid: Option<u32>, gid: Option<u32>, groups: &Groups) -> io::Result<()> {
    match groups {
        Groups::Keep => {}
        Groups::Clear => {
            // SAFETY: an empty list; no pointer is read.
            cvt(unsafe { libc::setgroups(0, std::ptr::null()) })?;
        }
        Groups::List(list) => {
            // SAFETY: `list` holds `list.len()` gids and outlives the call.
            cvt(unsafe { libc::setgroups(list.len(), list.as_ptr()) })?;
        }
    }
    if let Some(gid) = gid {
        // SAFETY: setgid has no memory effects.
        cvt(unsafe { libc::setgid(gid) })?;
    }
    if let Some(uid) = uid {
        // SAFETY: setuid has no memory effects.
        cvt(unsafe { libc::setuid(uid) })?;
    }
    Ok(())
}

/// The groups `initgroups(name, gid)` would set, read now (`getgrouplist(3)`), so that a
/// `chroot` between reading and setting them does not hide `/etc/group`.
pub fn user_groups(name: &str, gid: u32) -> io::Result<Vec<u32>> {
    let c_name = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in user name"))?;
    let mut count: libc::c_int = 64;
    loop {
        let mut list = vec![0 as libc::gid_t; count as usize];
        let asked = count;
        // SAFETY: `list` has room for `count` gids and `count` says so; `c_name` is valid.
        let found =
            unsafe { libc::getgrouplist(c_name.as_ptr(), gid, list.as_mut_ptr(), &mut count) };
        if found >= 0 {
            list.truncate(count as usize);
            return Ok(list);
        }
        // -1: the list was too small; `count` now holds the size needed.
        if count <= asked {
            return Err(io::Error::other("getgrouplist failed"));
        }
    }
}

/// `chroot(2)` to `dir`, then `chdir("/")` so no directory outside stays reachable.
pub fn chroot(dir: &Path) -> io::Result<()> {
    let path = CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
    cvt(unsafe { libc::chroot(path.as_ptr()) })?;
    std::env::set_current_dir("/")
}

/// `RLIMIT_AS` (soft and hard) to `bytes`; inherited by every process forked after.
pub fn limit_address_space(bytes: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: bytes as libc::rlim_t,
    };
    // SAFETY: `limit` is a valid rlimit for the duration of the call.
    cvt(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) })
}

/// Pins the calling thread (and the threads it starts later) to `cpus`.
pub fn set_cpu_affinity(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus.iter().filter(|&&cpu| cpu < libc::CPU_SETSIZE as usize) {
        // SAFETY: CPU_SET writes within `set`, since cpu < CPU_SETSIZE (filtered above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size given; 0 is the calling thread.
    cvt(unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) })
}

fn cvt(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
