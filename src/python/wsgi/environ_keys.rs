//! The environ's variable names as interned Python strings, made once per worker, and the
//! last request's short values, reused when the next request has the same bytes there.
//!
//! A request's names repeat (`HTTP_HOST`, `HTTP_USER_AGENT`, …), so each is created once and
//! dict stores on it reuse its cached hash. The lookup is on every environ key of every
//! request: it hashes with a multiply-rotate hash rather than SipHash (a hello-world request
//! spent 1,800 instructions in SipHash and the table), and the table is locked once per
//! environ, not once per key, with `try_lock`: request threads touch it only while attached
//! to Python, so it is never contended unless a thread lost the GIL while holding it, and
//! then the names are made afresh rather than waited for (waiting there, holding the GIL,
//! could deadlock). Hash flooding cannot grow it: it holds at most
//! [`KEY_CACHE_LIMIT`] names, and a name past that is made afresh each time.
//!
//! It holds names, and of values only the last environ's short ones that are not credentials
//! (`Cookie`, `Authorization`), position by position.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::types::PyString;

const KEY_CACHE_LIMIT: usize = 512;

/// The names seen so far, shared by a worker's request threads.
#[derive(Default)]
pub struct EnvironKeys(Mutex<Table>);

#[derive(Default)]
struct Table {
    names: HashMap<Vec<u8>, Py<PyString>, BuildHasherDefault<NameHasher>>,
    /// The variables of the last environ, in order: requests from one client (or one proxy)
    /// send the same variables in the same order, so the name at position i is usually the
    /// last environ's i-th, found by one comparison instead of a hash lookup.
    last: Vec<Remembered>,
}

/// The last environ's variable at one position: its name, and its value when it was short
/// and not a credential, to be given again to a request with the same bytes there (`GET`,
/// `HTTP/1.1`, the client's `Host` and `Accept`): Python strings are immutable, so two
/// environs can share one.
struct Remembered {
    name: Vec<u8>,
    key: Py<PyString>,
    value: Vec<u8>,
    text: Option<Py<PyString>>,
}

/// Values longer than this are made afresh for each request (a cache hit would save less
/// than the comparison costs, and they are rarely repeated).
const VALUE_CACHE_MAX: usize = 64;

/// Whether a value may be kept for the next request: short, and not a credential (kept
/// values stay in memory after the request; these should not).
fn value_cacheable(name: &[u8], value: &[u8]) -> bool {
    value.len() <= VALUE_CACHE_MAX
        && !matches!(
            name,
            b"HTTP_COOKIE" | b"HTTP_AUTHORIZATION" | b"HTTP_PROXY_AUTHORIZATION"
        )
}

/// The table, locked for one environ (`None`: another thread holds it), and the position of
/// the next variable in this environ.
pub struct Locked<'a>(Option<MutexGuard<'a, Table>>, usize);

impl EnvironKeys {
    pub fn lock(&self) -> Locked<'_> {
        let table = match self.0.try_lock() {
            Ok(table) => Some(table),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        Locked(table, 0)
    }
}

impl Locked<'_> {
    /// The interned string for `name` and a string of `value`; `make` builds a string
    /// (latin-1) when neither the position nor the names table has it.
    pub fn entry<'py>(
        &mut self,
        py: Python<'py>,
        name: &[u8],
        value: &[u8],
        make: impl Fn(Python<'py>, &[u8]) -> Bound<'py, PyString>,
    ) -> (Bound<'py, PyString>, Bound<'py, PyString>) {
        let Some(table) = self.0.as_mut() else {
            return (make(py, name), make(py, value));
        };
        let position = self.1;
        self.1 += 1;
        if let Some(last) = table.last.get_mut(position) {
            if same_bytes(&last.name, name) {
                let key = last.key.bind(py).clone();
                if let Some(text) = last
                    .text
                    .as_ref()
                    .filter(|_| same_bytes(&last.value, value))
                {
                    return (key, text.bind(py).clone());
                }
                let text = make(py, value);
                remember_value(last, name, value, &text);
                return (key, text);
            }
        }
        let key = if let Some(key) = table.names.get(name) {
            key.bind(py).clone()
        } else {
            let key = make(py, name);
            if table.names.len() >= KEY_CACHE_LIMIT {
                return (key, make(py, value));
            }
            let interned = PyString::intern(py, &key.to_string_lossy());
            table.names.insert(name.to_vec(), interned.clone().unbind());
            interned
        };
        let text = make(py, value);
        // Remember it at this position (names past the cache limit are never remembered).
        if position < KEY_CACHE_LIMIT && position <= table.last.len() {
            let mut entry = Remembered {
                name: name.to_vec(),
                key: key.clone().unbind(),
                value: Vec::new(),
                text: None,
            };
            remember_value(&mut entry, name, value, &text);
            if position < table.last.len() {
                table.last[position] = entry;
            } else {
                table.last.push(entry);
            }
        }
        (key, text)
    }
}

/// `a == b` for the short names and values compared here, inline a word at a time: slice
/// equality is a call of the library's `memcmp`, and with two comparisons per variable that
/// was 20 calls and about 340 instructions a hello-world request.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return short_word(a) == short_word(b);
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    let mut at = 0;
    while at + 8 <= n {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    // The last word, overlapping the one before, covers the rest.
    at == n || word(a, n - 8) == word(b, n - 8)
}

/// Up to 7 bytes as one word (the rest zero; callers compare equal lengths only).
#[inline]
fn short_word(s: &[u8]) -> u64 {
    let mut word = 0u64;
    for (i, &byte) in s.iter().enumerate() {
        word |= u64::from(byte) << (8 * i);
    }
    word
}

fn remember_value(last: &mut Remembered, name: &[u8], value: &[u8], text: &Bound<'_, PyString>) {
    if value_cacheable(name, value) {
        last.value.clear();
        last.value.extend_from_slice(value);
        last.text = Some(text.clone().unbind());
    } else {
        last.text = None;
    }
}

/// FxHash's step (rotate, xor, multiply) over 8 bytes at a time: names are short ASCII.
#[derive(Default)]
pub struct NameHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl NameHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, BuildHasherDefault};

    #[test]
    fn same_bytes_is_slice_equality() {
        let base: Vec<u8> = (0..40u8).map(|i| b'A' + i % 26).collect();
        for len in 0..=base.len() {
            let a = &base[..len];
            assert!(same_bytes(a, a));
            let copy = a.to_vec();
            assert!(same_bytes(a, &copy));
            for other_len in 0..=base.len() {
                assert_eq!(same_bytes(a, &base[..other_len]), len == other_len);
            }
            // Any one byte changed, wherever it is.
            for at in 0..len {
                let mut changed = a.to_vec();
                changed[at] ^= 0x20;
                assert!(!same_bytes(a, &changed), "len {len}, byte {at}");
            }
        }
    }

    #[test]
    fn names_differing_in_any_byte_or_length_hash_apart() {
        let build = BuildHasherDefault::<NameHasher>::default();
        let names: [&[u8]; 5] = [
            b"HTTP_HOST",
            b"HTTP_HOSU",
            b"HTTP_HOST\0",
            b"PATH_INFO",
            b"",
        ];
        let hashes: Vec<u64> = names.iter().map(|n| build.hash_one(n)).collect();
        for (i, a) in hashes.iter().enumerate() {
            for b in &hashes[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
