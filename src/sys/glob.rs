//! POSIX `glob(3)`, the pattern matcher uWSGI's emperor uses for its glob monitors, so that
//! kaiser's patterns match the same files (`*`, `?`, `[...]`, no `**`).
//!
//! It only expands a pattern: which matches are vassals is the emperor's (`emperor::monitor`).

use std::ffi::{CStr, CString};
use std::path::PathBuf;

/// POSIX `glob(3)`, which is what uWSGI uses, so patterns behave identically (`*`, `?`,
/// `[...]`, no `**`). No match is an empty list, not an error.
pub fn glob(pattern: &str) -> std::io::Result<Vec<PathBuf>> {
    use std::os::unix::ffi::OsStringExt;
    let c_pattern = CString::new(pattern).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "pattern contains NUL")
    })?;
    // SAFETY: `glob_t` is a plain C struct for which all-zero is the documented initial state.
    let mut found: libc::glob_t = unsafe { std::mem::zeroed() };
    // SAFETY: `c_pattern` is NUL-terminated and outlives the call; `found` is a valid glob_t
    // that we free below on every path.
    let rc = unsafe { libc::glob(c_pattern.as_ptr(), 0, None, &mut found) };
    let result = match rc {
        0 => {
            let mut paths = Vec::with_capacity(found.gl_pathc);
            for idx in 0..found.gl_pathc {
                // SAFETY: glob succeeded, so gl_pathv holds gl_pathc valid C strings.
                let entry = unsafe { CStr::from_ptr(*found.gl_pathv.add(idx)) };
                paths.push(PathBuf::from(std::ffi::OsString::from_vec(
                    entry.to_bytes().to_vec(),
                )));
            }
            Ok(paths)
        }
        libc::GLOB_NOMATCH => Ok(Vec::new()),
        libc::GLOB_ABORTED => Err(std::io::Error::other("read error while expanding glob")),
        _ => Err(std::io::Error::other("glob expansion failed")),
    };
    // SAFETY: `found` was initialised by glob (or zeroed, which globfree accepts).
    unsafe { libc::globfree(&mut found) };
    result
}
