//! The shared cache behind `uwsgi.cache_*` (`cache2`, legacy `cache`): a hash table in an
//! anonymous shared mapping the master makes before it forks anything, so every worker (and
//! spooler) sees the same items, and they survive a worker's respawn.
//!
//! Memory holds atomics only (DESIGN.md rule 6): each cache is an array of `AtomicU64` read
//! and written under one `sys::lock` futex lock, which a holder's death cannot leave taken.
//! Since a holder killed in the middle of an update may leave the table half-changed, the
//! thread that takes the lock over empties the cache: it is a cache, losing it is allowed,
//! serving a corrupt item is not.
//!
//! Layout: a header (counters, the free list), an open-addressing index of twice the item
//! count (linear probing, tombstones, rebuilt when they pile up), then `items` fixed slots of
//! `keysize + blocksize` bytes, as uWSGI sizes its caches. Items expire when read, when
//! room is needed, and in `sweep`, which the master calls each second without waiting for
//! the lock (no sweeper thread). It does not know Python.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::config::CacheSpec;
use crate::sys::lock::{self, Acquired};
use crate::sys::shm::SharedWords;

mod header {
    pub const ITEMS: usize = 0;
    pub const HITS: usize = 1;
    pub const MISS: usize = 2;
    pub const FULL: usize = 3;
    pub const LAST_MODIFIED: usize = 4;
    /// A counter bumped at each access: the LRU order.
    pub const CLOCK: usize = 5;
    /// Slots never used yet start here (a bump allocator in front of the free list).
    pub const NEXT_UNUSED: usize = 6;
    /// `slot + 1` of the first freed slot, 0 for none.
    pub const FREE_HEAD: usize = 7;
    pub const TOMBSTONES: usize = 8;
    pub const WORDS: usize = 9;
}

mod item {
    pub const KEY_LEN: usize = 0;
    pub const VALUE_LEN: usize = 1;
    /// Unix seconds, 0 for never.
    pub const EXPIRES: usize = 2;
    pub const LAST_USED: usize = 3;
    pub const HASH: usize = 4;
    pub const NEXT_FREE: usize = 5;
    pub const DATA: usize = 6;
}

const EMPTY: u64 = 0;
const TOMBSTONE: u64 = u64::MAX;

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheError {
    /// `cache_set` on a key that exists.
    Exists,
    /// The key or the value is larger than `keysize` / `blocksize`, or the key is empty.
    TooLarge,
    /// No room, and neither `purge_lru` nor `clear_on_full`.
    Full,
    /// The update function refused (a math operation on a value that is not a number).
    Refused,
}

/// What the stats document shows of a cache (uWSGI's keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub name: String,
    pub items: u64,
    pub max_items: u64,
    pub hits: u64,
    pub miss: u64,
    pub full: u64,
    pub keysize: u64,
    pub blocksize: u64,
    pub hashsize: u64,
    pub last_modified_at: u64,
}

pub struct Cache {
    pub name: String,
    lock: SharedWords<AtomicU32>,
    words: SharedWords,
    items: usize,
    index_len: usize,
    keysize: usize,
    blocksize: usize,
    key_words: usize,
    item_words: usize,
    default_expires: u64,
    purge_lru: bool,
    clear_on_full: bool,
}

fn words_for(bytes: usize) -> usize {
    bytes.div_ceil(8)
}

/// FNV-1a: cheap, and good enough for keys that are mostly text.
fn hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Holds the cache's lock; released on drop.
struct Guard<'a> {
    word: &'a AtomicU32,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        lock::unlock(self.word);
    }
}

impl Cache {
    pub fn new(spec: &CacheSpec) -> io::Result<Self> {
        let items = usize::try_from(spec.items)
            .ok()
            .filter(|n| *n > 0 && *n < u32::MAX as usize)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad item count"))?;
        let keysize = spec.keysize as usize;
        let blocksize = spec.blocksize as usize;
        let key_words = words_for(keysize);
        let item_words = item::DATA + key_words + words_for(blocksize);
        let index_len = (items * 2).next_power_of_two();
        let total = items
            .checked_mul(item_words)
            .and_then(|n| n.checked_add(header::WORDS + index_len))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "cache too large"))?;
        // Carried across a reload's exec when the layout is the same: the items stay, and both
        // generations of workers share them while the old one finishes.
        let key: String = format!(
            "cache-{}-{}-{}-{}",
            spec.name, spec.items, spec.keysize, spec.blocksize
        )
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
        Ok(Cache {
            name: spec.name.clone(),
            lock: SharedWords::carried(&format!("{key}-lock"), 1)?,
            words: SharedWords::carried(&key, total)?,
            items,
            index_len,
            keysize,
            blocksize,
            key_words,
            item_words,
            default_expires: spec.expires,
            purge_lru: spec.purge_lru,
            clear_on_full: spec.clear_on_full,
        })
    }

    fn w(&self) -> &[AtomicU64] {
        self.words.words()
    }

    fn header(&self, field: usize) -> &AtomicU64 {
        &self.w()[field]
    }

    fn index(&self, position: usize) -> &AtomicU64 {
        &self.w()[header::WORDS + position]
    }

    fn slot(&self, slot: usize) -> &[AtomicU64] {
        let start = header::WORDS + self.index_len + slot * self.item_words;
        &self.w()[start..start + self.item_words]
    }

    fn guard(&self) -> Guard<'_> {
        let word = &self.lock.words()[0];
        // The lock is only ever held inside these methods, never across calls, so the
        // calling thread cannot hold it already.
        if let Ok(Acquired::FromDead(owner)) = lock::lock(word) {
            tracing::warn!(
                cache = %self.name,
                owner,
                "a process died while changing the cache; emptying it"
            );
            self.reset();
        }
        Guard { word }
    }

    /// Empties the table; the caller holds the lock.
    fn reset(&self) {
        for position in 0..self.index_len {
            self.index(position).store(EMPTY, Relaxed);
        }
        for field in [
            header::ITEMS,
            header::NEXT_UNUSED,
            header::FREE_HEAD,
            header::TOMBSTONES,
        ] {
            self.header(field).store(0, Relaxed);
        }
    }

    fn read_bytes(words: &[AtomicU64], len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        for word in words {
            if out.len() >= len {
                break;
            }
            let bytes = word.load(Relaxed).to_le_bytes();
            let take = (len - out.len()).min(8);
            out.extend_from_slice(&bytes[..take]);
        }
        out
    }

    fn write_bytes(words: &[AtomicU64], bytes: &[u8]) {
        for (word, chunk) in words.iter().zip(bytes.chunks(8)) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            word.store(u64::from_le_bytes(buf), Relaxed);
        }
    }

    fn key_of(&self, slot: usize) -> Vec<u8> {
        let item = self.slot(slot);
        let len = item[item::KEY_LEN].load(Relaxed) as usize;
        Self::read_bytes(&item[item::DATA..item::DATA + self.key_words], len)
    }

    fn key_equals(&self, slot: usize, key: &[u8]) -> bool {
        let item = self.slot(slot);
        item[item::KEY_LEN].load(Relaxed) as usize == key.len() && self.key_of(slot) == key
    }

    fn value_of(&self, slot: usize) -> Vec<u8> {
        let item = self.slot(slot);
        let len = item[item::VALUE_LEN].load(Relaxed) as usize;
        Self::read_bytes(&item[item::DATA + self.key_words..], len)
    }

    fn expired(&self, slot: usize, now: u64) -> bool {
        let expires = self.slot(slot)[item::EXPIRES].load(Relaxed);
        expires != 0 && expires <= now
    }

    /// `(index position, slot)` of `key`, whatever its expiry.
    fn find(&self, key: &[u8], h: u64) -> Option<(usize, usize)> {
        let mask = self.index_len - 1;
        let mut position = (h as usize) & mask;
        for _ in 0..self.index_len {
            let entry = self.index(position).load(Relaxed);
            if entry == EMPTY {
                return None;
            }
            if entry != TOMBSTONE && entry >> 32 == h >> 32 {
                let slot = (entry & 0xffff_ffff) as usize - 1;
                if self.key_equals(slot, key) {
                    return Some((position, slot));
                }
            }
            position = (position + 1) & mask;
        }
        None
    }

    /// `key`'s live slot; an expired item found on the way is removed.
    fn live(&self, key: &[u8], now: u64) -> Option<usize> {
        let (position, slot) = self.find(key, hash(key))?;
        if self.expired(slot, now) {
            self.remove_at(position, slot);
            return None;
        }
        Some(slot)
    }

    fn remove_at(&self, position: usize, slot: usize) {
        self.index(position).store(TOMBSTONE, Relaxed);
        self.header(header::TOMBSTONES).fetch_add(1, Relaxed);
        let item = self.slot(slot);
        item[item::NEXT_FREE].store(self.header(header::FREE_HEAD).load(Relaxed), Relaxed);
        self.header(header::FREE_HEAD)
            .store(slot as u64 + 1, Relaxed);
        self.header(header::ITEMS).fetch_sub(1, Relaxed);
    }

    fn allocate(&self) -> Option<usize> {
        let free = self.header(header::FREE_HEAD).load(Relaxed);
        if free != 0 {
            let slot = free as usize - 1;
            let next = self.slot(slot)[item::NEXT_FREE].load(Relaxed);
            self.header(header::FREE_HEAD).store(next, Relaxed);
            return Some(slot);
        }
        let unused = self.header(header::NEXT_UNUSED).load(Relaxed) as usize;
        if unused < self.items {
            self.header(header::NEXT_UNUSED)
                .store(unused as u64 + 1, Relaxed);
            return Some(unused);
        }
        None
    }

    /// Every used `(index position, slot)`.
    fn used(&self) -> Vec<(usize, usize)> {
        (0..self.index_len)
            .filter_map(|position| {
                let entry = self.index(position).load(Relaxed);
                (entry != EMPTY && entry != TOMBSTONE)
                    .then(|| (position, (entry & 0xffff_ffff) as usize - 1))
            })
            .collect()
    }

    /// Makes room for one item: expired items first, then (with `purge_lru`) the least
    /// recently used one, or (with `clear_on_full`) everything.
    fn make_room(&self, now: u64) -> Option<usize> {
        if let Some(slot) = self.allocate() {
            return Some(slot);
        }
        for (position, slot) in self.used() {
            if self.expired(slot, now) {
                self.remove_at(position, slot);
            }
        }
        if let Some(slot) = self.allocate() {
            return Some(slot);
        }
        if self.purge_lru {
            let oldest = self
                .used()
                .into_iter()
                .min_by_key(|(_, slot)| self.slot(*slot)[item::LAST_USED].load(Relaxed));
            if let Some((position, slot)) = oldest {
                self.remove_at(position, slot);
            }
        } else if self.clear_on_full {
            self.reset();
        }
        self.allocate()
    }

    /// Rebuilds the index when tombstones make probes long.
    fn maybe_rehash(&self) {
        if (self.header(header::TOMBSTONES).load(Relaxed) as usize) < self.index_len / 4 {
            return;
        }
        let used = self.used();
        for position in 0..self.index_len {
            self.index(position).store(EMPTY, Relaxed);
        }
        for (_, slot) in used {
            let h = self.slot(slot)[item::HASH].load(Relaxed);
            self.insert_index(h, slot);
        }
        self.header(header::TOMBSTONES).store(0, Relaxed);
    }

    fn insert_index(&self, h: u64, slot: usize) {
        let mask = self.index_len - 1;
        let mut position = (h as usize) & mask;
        loop {
            let entry = self.index(position).load(Relaxed);
            if entry == EMPTY || entry == TOMBSTONE {
                if entry == TOMBSTONE {
                    self.header(header::TOMBSTONES).fetch_sub(1, Relaxed);
                }
                self.index(position)
                    .store((h >> 32 << 32) | (slot as u64 + 1), Relaxed);
                return;
            }
            position = (position + 1) & mask;
        }
    }

    fn touch(&self, slot: usize) {
        let tick = self.header(header::CLOCK).fetch_add(1, Relaxed) + 1;
        self.slot(slot)[item::LAST_USED].store(tick, Relaxed);
    }

    fn expiry(&self, expires: u64, now: u64) -> u64 {
        match expires {
            0 if self.default_expires == 0 => 0,
            0 => now + self.default_expires,
            seconds => now + seconds,
        }
    }

    /// Writes `value` into `slot` (a new one when `fresh`, published in the index last).
    fn store(&self, slot: usize, key: &[u8], value: &[u8], expires: u64, fresh: bool) {
        let item = self.slot(slot);
        let h = hash(key);
        if fresh {
            item[item::KEY_LEN].store(key.len() as u64, Relaxed);
            item[item::HASH].store(h, Relaxed);
            Self::write_bytes(&item[item::DATA..item::DATA + self.key_words], key);
        }
        Self::write_bytes(&item[item::DATA + self.key_words..], value);
        item[item::VALUE_LEN].store(value.len() as u64, Relaxed);
        item[item::EXPIRES].store(expires, Relaxed);
        self.touch(slot);
        if fresh {
            self.insert_index(h, slot);
            self.header(header::ITEMS).fetch_add(1, Relaxed);
        }
    }

    fn modified(&self, now: u64) {
        self.header(header::LAST_MODIFIED).store(now, Relaxed);
    }

    fn check_sizes(&self, key: &[u8], value: &[u8]) -> Result<(), CacheError> {
        if key.is_empty() || key.len() > self.keysize || value.len() > self.blocksize {
            return Err(CacheError::TooLarge);
        }
        Ok(())
    }

    /// `cache_get`: the value, counting a hit or a miss.
    pub fn get(&self, key: &[u8], now: u64) -> Option<Vec<u8>> {
        let _guard = self.guard();
        match self.live(key, now) {
            Some(slot) => {
                self.header(header::HITS).fetch_add(1, Relaxed);
                self.touch(slot);
                Some(self.value_of(slot))
            }
            None => {
                self.header(header::MISS).fetch_add(1, Relaxed);
                None
            }
        }
    }

    pub fn exists(&self, key: &[u8], now: u64) -> bool {
        let _guard = self.guard();
        self.live(key, now).is_some()
    }

    /// `cache_set` (`overwrite` false: refused if the key exists) and `cache_update`.
    /// `expires` is in seconds from `now`; 0 means the cache's default.
    pub fn set(
        &self,
        key: &[u8],
        value: &[u8],
        expires: u64,
        now: u64,
        overwrite: bool,
    ) -> Result<(), CacheError> {
        self.update_with(key, expires, now, |old| match old {
            Some(_) if !overwrite => Err(CacheError::Exists),
            _ => Ok(value.to_vec()),
        })
    }

    /// Replaces `key`'s value (or creates it) with what `f` makes of the current one: the
    /// math operations, `append` and `prepend`.
    pub fn update_with(
        &self,
        key: &[u8],
        expires: u64,
        now: u64,
        f: impl FnOnce(Option<&[u8]>) -> Result<Vec<u8>, CacheError>,
    ) -> Result<(), CacheError> {
        self.check_sizes(key, b"")?;
        let _guard = self.guard();
        let existing = self.live(key, now);
        let old = existing.map(|slot| self.value_of(slot));
        let value = f(old.as_deref())?;
        self.check_sizes(key, &value)?;
        let expires = self.expiry(expires, now);
        match existing {
            Some(slot) => self.store(slot, key, &value, expires, false),
            None => {
                self.maybe_rehash();
                let Some(slot) = self.make_room(now) else {
                    self.header(header::FULL).fetch_add(1, Relaxed);
                    return Err(CacheError::Full);
                };
                self.store(slot, key, &value, expires, true);
            }
        }
        self.modified(now);
        Ok(())
    }

    pub fn delete(&self, key: &[u8], now: u64) -> bool {
        let _guard = self.guard();
        let Some((position, slot)) = self.find(key, hash(key)) else {
            return false;
        };
        let was_live = !self.expired(slot, now);
        self.remove_at(position, slot);
        self.modified(now);
        was_live
    }

    pub fn clear(&self, now: u64) {
        let _guard = self.guard();
        self.reset();
        self.modified(now);
    }

    /// Every live key.
    pub fn keys(&self, now: u64) -> Vec<Vec<u8>> {
        let _guard = self.guard();
        self.used()
            .into_iter()
            .filter(|(_, slot)| !self.expired(*slot, now))
            .map(|(_, slot)| self.key_of(slot))
            .collect()
    }

    /// Removes expired items, if the lock is free right now: the master calls this from its
    /// loop (uWSGI's cache sweeper), which must never wait. False when it did not run.
    pub fn sweep(&self, now: u64) -> bool {
        let word = &self.lock.words()[0];
        match lock::try_lock(word) {
            None => false,
            Some(acquired) => {
                let _guard = Guard { word };
                if let Acquired::FromDead(owner) = acquired {
                    tracing::warn!(
                        cache = %self.name,
                        owner,
                        "a process died while changing the cache; emptying it"
                    );
                    self.reset();
                }
                for (position, slot) in self.used() {
                    if self.expired(slot, now) {
                        self.remove_at(position, slot);
                    }
                }
                self.maybe_rehash();
                true
            }
        }
    }

    pub fn stats(&self) -> CacheStats {
        let get = |field| self.header(field).load(Relaxed);
        CacheStats {
            name: self.name.clone(),
            items: get(header::ITEMS),
            max_items: self.items as u64,
            hits: get(header::HITS),
            miss: get(header::MISS),
            full: get(header::FULL),
            keysize: self.keysize as u64,
            blocksize: self.blocksize as u64,
            hashsize: self.index_len as u64,
            last_modified_at: get(header::LAST_MODIFIED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(items: u64, purge_lru: bool) -> Cache {
        Cache::new(&CacheSpec {
            name: "t".into(),
            items,
            blocksize: 16,
            keysize: 8,
            expires: 0,
            purge_lru,
            clear_on_full: false,
        })
        .unwrap()
    }

    #[test]
    fn set_get_update_delete() {
        let c = cache(4, false);
        assert_eq!(c.get(b"a", 100), None);
        assert_eq!(c.set(b"a", b"1", 0, 100, false), Ok(()));
        assert_eq!(c.set(b"a", b"2", 0, 100, false), Err(CacheError::Exists));
        assert_eq!(c.get(b"a", 100), Some(b"1".to_vec()));
        assert_eq!(c.set(b"a", b"22", 0, 100, true), Ok(()));
        assert_eq!(c.get(b"a", 100), Some(b"22".to_vec()));
        assert!(c.exists(b"a", 100));
        assert!(c.delete(b"a", 100));
        assert!(!c.delete(b"a", 100));
        assert_eq!(c.get(b"a", 100), None);
        let stats = c.stats();
        assert_eq!((stats.hits, stats.miss, stats.items), (2, 2, 0));
    }

    #[test]
    fn sizes_expiry_and_fullness() {
        let c = cache(2, false);
        assert_eq!(
            c.set(b"toolongkey", b"v", 0, 1, false),
            Err(CacheError::TooLarge)
        );
        assert_eq!(
            c.set(b"k", &[0; 17], 0, 1, false),
            Err(CacheError::TooLarge)
        );
        assert_eq!(c.set(b"k", &[7; 16], 10, 1, false), Ok(()));
        assert_eq!(c.get(b"k", 10), Some(vec![7; 16]));
        assert_eq!(c.get(b"k", 11), None, "expired at 1 + 10");
        c.set(b"x", b"1", 0, 20, false).unwrap();
        c.set(b"y", b"1", 5, 20, false).unwrap();
        assert_eq!(c.set(b"z", b"1", 0, 21, false), Err(CacheError::Full));
        // Once y expires, its room is reused.
        assert_eq!(c.set(b"z", b"1", 0, 30, false), Ok(()));
        let mut keys = c.keys(30);
        keys.sort();
        assert_eq!(keys, vec![b"x".to_vec(), b"z".to_vec()]);
        assert_eq!(c.stats().full, 1);
        c.clear(31);
        assert_eq!(c.keys(31), Vec::<Vec<u8>>::new());
        c.set(b"short", b"1", 1, 40, false).unwrap();
        c.set(b"long", b"1", 0, 40, false).unwrap();
        assert_eq!(c.stats().items, 2);
        assert!(c.sweep(42));
        assert_eq!(c.stats().items, 1, "the sweep removed the expired item");
    }

    #[test]
    fn purge_lru_evicts_the_least_recently_used() {
        let c = cache(2, true);
        c.set(b"a", b"1", 0, 1, false).unwrap();
        c.set(b"b", b"2", 0, 1, false).unwrap();
        assert!(c.get(b"a", 1).is_some());
        c.set(b"c", b"3", 0, 1, false).unwrap();
        assert!(c.exists(b"a", 1));
        assert!(!c.exists(b"b", 1));
        assert!(c.exists(b"c", 1));
    }

    #[test]
    fn churn_keeps_every_live_key_findable() {
        let c = cache(8, false);
        for round in 0..500u64 {
            let key = format!("k{}", round % 13);
            let _ = c.set(key.as_bytes(), &round.to_le_bytes(), 0, 1, true);
            if round % 3 == 0 {
                c.delete(format!("k{}", (round + 5) % 13).as_bytes(), 1);
            }
        }
        let keys = c.keys(1);
        assert_eq!(keys.len() as u64, c.stats().items);
        for key in keys {
            assert!(c.get(&key, 1).is_some());
        }
    }
}
