//! `cache2 = name=NAME,items=N,…` and the legacy `cache = N` (with `cache-blocksize`): the
//! shared caches an instance creates (reference §8.2). Parsing only; the cache itself is
//! `crate::cache`.

/// One cache, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSpec {
    pub name: String,
    /// The most items it holds.
    pub items: u64,
    /// The largest value, in bytes.
    pub blocksize: u64,
    /// The longest key, in bytes.
    pub keysize: u64,
    /// Default lifetime of an item in seconds when a call gives none (0: forever).
    pub expires: u64,
    /// When full, evict the least recently used item instead of refusing the new one.
    pub purge_lru: bool,
    /// When full, empty the whole cache instead of refusing the new item.
    pub clear_on_full: bool,
}

pub const DEFAULT_BLOCKSIZE: u64 = 65536;
pub const DEFAULT_KEYSIZE: u64 = 2048;

impl CacheSpec {
    /// The legacy `cache = N`: a cache named `default`.
    pub fn legacy(items: u64, blocksize: u64) -> Self {
        CacheSpec {
            name: "default".to_string(),
            items,
            blocksize,
            keysize: DEFAULT_KEYSIZE,
            expires: 0,
            purge_lru: false,
            clear_on_full: false,
        }
    }
}

/// Reads a `cache2` value.
pub fn parse_cache2(value: &str) -> Result<CacheSpec, String> {
    let mut spec = CacheSpec {
        name: String::new(),
        items: 0,
        blocksize: DEFAULT_BLOCKSIZE,
        keysize: DEFAULT_KEYSIZE,
        expires: 0,
        purge_lru: false,
        clear_on_full: false,
    };
    let mut blocks = 0;
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, val) = part.split_once('=').unwrap_or((part, "1"));
        let number = || {
            val.trim()
                .parse::<u64>()
                .map_err(|_| format!("`cache2` key `{key}` expects a whole number, got `{val}`"))
        };
        let flag = || !matches!(val.trim(), "0" | "false" | "no" | "off");
        match key.trim() {
            "name" => spec.name = val.trim().to_string(),
            "items" | "max_items" | "maxitems" => spec.items = number()?,
            "blocksize" => spec.blocksize = number()?,
            "keysize" => spec.keysize = number()?,
            "blocks" => blocks = number()?,
            "expires" => spec.expires = number()?,
            "purge_lru" | "lru" => spec.purge_lru = flag(),
            "clear_on_full" => spec.clear_on_full = flag(),
            // Tuning of uWSGI's own hash table and sweeper: kaiser's table needs none (items
            // expire when read and when room is needed).
            "hash" | "hashsize" | "hash_size" | "lazy_expire" | "sweep_on_full" | "ignore_full"
            | "bitmap" | "math_initial" | "no_expire" => {}
            "store" | "store_sync" | "store_delete" | "node" | "nodes" | "sync" | "udp" => {
                return Err(format!(
                    "`cache2` key `{key}` (persistence and cache replication) is not supported yet"
                ))
            }
            other => return Err(format!("unknown `cache2` key `{other}`")),
        }
    }
    if spec.name.is_empty() {
        return Err("`cache2` needs a `name=`".to_string());
    }
    if spec.items == 0 {
        spec.items = blocks;
    }
    if spec.items == 0 {
        return Err(format!("`cache2` `{}` needs `items=N`", spec.name));
    }
    if spec.blocksize == 0 || spec.keysize == 0 {
        return Err("`cache2` blocksize and keysize must be at least 1".to_string());
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: &str, expected: Result<(&str, u64, u64, u64, u64, bool), &str>) {
        let got = parse_cache2(value).map(|s| {
            (
                s.name.clone(),
                s.items,
                s.blocksize,
                s.keysize,
                s.expires,
                s.purge_lru,
            )
        });
        let expected = expected
            .map(|(n, i, b, k, e, p)| (n.to_string(), i, b, k, e, p))
            .map_err(str::to_string);
        assert_eq!(got, expected, "{value}");
    }

    #[test]
    fn cache2_values() {
        check("name=a,items=10", Ok(("a", 10, 65536, 2048, 0, false)));
        check(
            "name=s, items=5, blocksize=128, keysize=32, expires=60, purge_lru=1",
            Ok(("s", 5, 128, 32, 60, true)),
        );
        check(
            "name=b,blocks=7,bitmap=1",
            Ok(("b", 7, 65536, 2048, 0, false)),
        );
        check("items=10", Err("`cache2` needs a `name=`"));
        check("name=a", Err("`cache2` `a` needs `items=N`"));
        check(
            "name=a,items=x",
            Err("`cache2` key `items` expects a whole number, got `x`"),
        );
        check(
            "name=a,items=1,bogus=2",
            Err("unknown `cache2` key `bogus`"),
        );
        check(
            "name=a,items=1,store=/tmp/c",
            Err("`cache2` key `store` (persistence and cache replication) is not supported yet"),
        );
    }
}
