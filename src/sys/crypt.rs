//! `crypt(3)` from libcrypt (libxcrypt), for htpasswd lines checked by internal routing's
//! `basicauth` (DES, MD5 `$1$`, SHA-crypt `$5$`/`$6$`, bcrypt `$2y$`).
//!
//! It only computes a hash; comparing it is the caller's business.

use std::ffi::{CStr, CString};

/// libxcrypt's `sizeof(struct crypt_data)`: 32768 bytes (crypt.h).
const CRYPT_DATA_SIZE: usize = 32768;

#[link(name = "crypt")]
unsafe extern "C" {
    fn crypt_rn(
        phrase: *const libc::c_char,
        setting: *const libc::c_char,
        data: *mut libc::c_void,
        size: libc::c_int,
    ) -> *mut libc::c_char;
}

/// The hash of `password` with `setting` (a stored hash or its salt), or `None` when the
/// method is unknown or an argument holds a NUL.
pub fn crypt(password: &[u8], setting: &[u8]) -> Option<Vec<u8>> {
    let password = CString::new(password).ok()?;
    let setting = CString::new(setting).ok()?;
    // Zeroed before the first use, as crypt.h asks.
    let mut data = vec![0u64; CRYPT_DATA_SIZE / 8];
    // SAFETY: both strings are NUL-terminated and outlive the call; `data` is a writable,
    // 8-byte aligned buffer of `CRYPT_DATA_SIZE` bytes, the size passed. The result points
    // into `data` (or is NULL), and is copied out before `data` is dropped.
    let hashed = unsafe {
        let result = crypt_rn(
            password.as_ptr(),
            setting.as_ptr(),
            data.as_mut_ptr().cast(),
            CRYPT_DATA_SIZE as libc::c_int,
        );
        if result.is_null() {
            return None;
        }
        CStr::from_ptr(result).to_bytes().to_vec()
    };
    // libxcrypt answers a failed hash with a string starting with `*`.
    (!hashed.starts_with(b"*")).then_some(hashed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hashes() {
        // Python's `crypt.crypt("secret", "ab")` and `openssl passwd -1 -salt salt secret`.
        assert_eq!(
            crypt(b"secret", b"abNANd1rDfiNc").unwrap(),
            b"abNANd1rDfiNc"
        );
        assert_eq!(
            crypt(b"secret", b"$1$salt$ez2vlPGdaLYkJam5pWs/Y1").unwrap(),
            b"$1$salt$ez2vlPGdaLYkJam5pWs/Y1"
        );
        assert_ne!(crypt(b"wrong", b"abNANd1rDfiNc").unwrap(), b"abNANd1rDfiNc");
        assert!(crypt(b"secret", b"$apr1$salt$x").is_none());
    }
}
