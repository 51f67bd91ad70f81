//! mount(2), umount2(2) and unshare(2): what `mount-*`/`umount-*` hooks and `unshare` need.
//! Callers decide when; this file only makes the calls (root, or the right capability, is
//! the caller's precondition and the kernel's check).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn c_string(text: &[u8]) -> io::Result<CString> {
    CString::new(text).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte"))
}

/// `mount(source, target, fs, flags, data)`; an empty `fs` passes NULL (bind mounts,
/// remounts, propagation changes), as uWSGI does.
pub fn mount(
    fs: &str,
    source: &str,
    target: &Path,
    flags: u64,
    data: Option<&str>,
) -> io::Result<()> {
    let source = c_string(source.as_bytes())?;
    let target = c_string(target.as_os_str().as_bytes())?;
    let fs = (!fs.is_empty())
        .then(|| c_string(fs.as_bytes()))
        .transpose()?;
    let data = data.map(|d| c_string(d.as_bytes())).transpose()?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call, or NULL where
    // mount(2) allows it (type and data).
    let ret = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fs.as_ref().map_or(std::ptr::null(), |fs| fs.as_ptr()),
            flags as libc::c_ulong,
            data.as_ref()
                .map_or(std::ptr::null(), |d| d.as_ptr().cast::<libc::c_void>()),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `umount2(target, flags)`. With `MS_REC` (not a umount2 flag: uWSGI's "recursive"), every
/// mount below `target` is unmounted first, deepest first, as `/proc/self/mounts` lists them.
pub fn umount(target: &Path, flags: u64) -> io::Result<()> {
    let recursive = flags & libc::MS_REC != 0;
    let flags = (flags & !libc::MS_REC) as libc::c_int;
    if recursive {
        let mounts = std::fs::read_to_string("/proc/self/mounts")?;
        let prefix = format!("{}/", target.display());
        let mut below: Vec<&str> = mounts
            .lines()
            .filter_map(|line| line.split(' ').nth(1))
            .filter(|point| point.starts_with(&prefix))
            .collect();
        below.sort_by_key(|point| std::cmp::Reverse(point.len()));
        for point in below {
            let _ = umount2(Path::new(point), flags);
        }
    }
    umount2(target, flags)
}

fn umount2(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let target = c_string(target.as_os_str().as_bytes())?;
    // SAFETY: `target` is a NUL-terminated string that outlives the call.
    if unsafe { libc::umount2(target.as_ptr(), flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `unshare(flags)`: this process (which must have one thread) enters new namespaces.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes a flag mask and touches no memory of ours.
    if unsafe { libc::unshare(flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
