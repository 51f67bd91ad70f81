//! Local time through the C library: `strftime(3)` over `localtime_r(3)`, so that
//! `%(ltime)`, `log-date` and the encoders' `${strftime:…}` follow `TZ` exactly as uWSGI's
//! do, and the broken-down local time crons match against. It does not cache or log.

use std::ffi::CString;

/// Appends `strftime(format, localtime(unix_secs))` to `out`. A format with a NUL byte, or
/// a result longer than 256 bytes, appends nothing.
pub fn strftime_local(format: &str, unix_secs: i64, out: &mut String) {
    let Ok(format) = CString::new(format) else {
        return;
    };
    let Some(tm) = local_tm(unix_secs) else {
        return;
    };
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length, format is NUL-terminated and tm initialised.
    let len = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), &tm) };
    out.push_str(&String::from_utf8_lossy(&buf[..len]));
}

/// `localtime_r(3)`: `unix_secs` broken down in the local zone (`TZ`), or `None` when the
/// C library cannot represent it.
pub fn local_tm(unix_secs: i64) -> Option<libc::tm> {
    // SAFETY: `tm` is plain data that localtime_r fills; zeroed is a valid value for it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let time: libc::time_t = unix_secs as libc::time_t;
    // SAFETY: both pointers are to live locals; localtime_r is thread-safe.
    if unsafe { libc::localtime_r(&time, &mut tm) }.is_null() {
        return None;
    }
    Some(tm)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_in_the_local_zone() {
        // The test process's zone is whatever TZ says; %s and literal text do not depend on it.
        let mut out = String::new();
        super::strftime_local("at %s!", 1_000_000_000, &mut out);
        assert_eq!(out, "at 1000000000!");
        let mut out = String::new();
        super::strftime_local("%Y", 1_000_000_000, &mut out);
        assert!(out == "2001", "{out}");
    }
}
