//! `zergpool = POOL:ADDRESS[,ADDRESS…]` (alias `zerg-pool`), uWSGI's zergpool plugin: the
//! instance binds every ADDRESS itself and hands them all to each zerg that connects to the
//! unix socket POOL. This file reads and checks the value; binding and serving are
//! `vassal/zergpool.rs`'s. It does no I/O.
//!
//! uWSGI's reading (plugins/zergpool/zergpool.c): the pool's path ends at the first `:`, the
//! rest is a comma-separated list; an item with a `:` is TCP, any other a unix path. A value
//! without `:` is uWSGI's "invalid zergpool syntax". kaiser reads each item as it reads a
//! `socket` address (so `@name` is abstract and `[::1]:3031` is IPv6), and refuses what
//! uWSGI would accept and then misuse: an empty pool path, an empty item (uWSGI binds the
//! empty path), a pool with no address (uWSGI then hands out the instance's own sockets),
//! and a pool path given twice (the second bind would take the first one's file).

use std::path::PathBuf;

use super::values::address;
use super::Address;

/// One `zergpool` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZergPool {
    /// The unix socket zergs connect to.
    pub path: PathBuf,
    /// The sockets handed to them, in the order written.
    pub sockets: Vec<Address>,
}

/// Reads one value and adds it to `pools`.
pub(super) fn add(pools: &mut Vec<ZergPool>, value: &str) -> Result<(), String> {
    let pool = parse(value)?;
    if pools.iter().any(|earlier| earlier.path == pool.path) {
        return Err(format!(
            "the pool socket `{}` is already used by an earlier `zergpool`; give each pool its own path",
            pool.path.display()
        ));
    }
    pools.push(pool);
    Ok(())
}

fn parse(value: &str) -> Result<ZergPool, String> {
    let syntax = "write `zergpool = POOL_SOCKET_PATH:ADDRESS[,ADDRESS…]`, e.g. `/tmp/zergpool_1:127.0.0.1:3031,127.0.0.1:3032`";
    let Some((path, list)) = value.split_once(':') else {
        return Err(format!(
            "`{value}` names no sockets to pool (no `:` after the pool's socket path); {syntax}"
        ));
    };
    if path.trim().is_empty() {
        return Err(format!(
            "`{value}` has no pool socket path before the first `:`; {syntax}"
        ));
    }
    if list.trim().is_empty() {
        return Err(format!("`{value}` names no sockets to pool; {syntax}"));
    }
    let sockets = list
        .split(',')
        .map(|item| {
            let item = item.trim();
            if item.is_empty() {
                return Err(format!(
                    "`{value}` has an empty address in its list (two commas, or one at an end)"
                ));
            }
            address(item).map_err(|message| format!("in `zergpool`'s list: {message}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ZergPool {
        path: PathBuf::from(path.trim()),
        sockets,
    })
}

impl std::fmt::Display for ZergPool {
    /// The value as `zergpool` reads it back (`--show-config`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self
            .sockets
            .iter()
            .map(super::show::render_address)
            .collect();
        write!(f, "{}:{}", self.path.display(), list.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Address {
        Address::Tcp {
            host: host.to_string(),
            port,
        }
    }

    #[test]
    fn reads_uwsgi_examples() {
        let pool = parse("/tmp/zergpool_1:127.0.0.1:3031,127.0.0.1:3032").unwrap();
        assert_eq!(pool.path, PathBuf::from("/tmp/zergpool_1"));
        assert_eq!(
            pool.sockets,
            vec![tcp("127.0.0.1", 3031), tcp("127.0.0.1", 3032)]
        );
        let pool = parse("/tmp/zp:/tmp/a.sock, :8080 ,@abs,[::1]:9000").unwrap();
        assert_eq!(
            pool.sockets,
            vec![
                Address::Unix("/tmp/a.sock".into()),
                tcp("", 8080),
                Address::Abstract("abs".into()),
                tcp("::1", 9000),
            ]
        );
        assert_eq!(
            pool.to_string(),
            "/tmp/zp:/tmp/a.sock,:8080,@abs,[::1]:9000"
        );
        assert_eq!(parse(&pool.to_string()).unwrap(), pool);
    }

    #[test]
    fn refuses_what_uwsgi_would_misuse() {
        for (value, expected) in [
            ("/tmp/zp", "no `:` after the pool's socket path"),
            (":127.0.0.1:3031", "no pool socket path"),
            ("/tmp/zp:", "names no sockets"),
            ("/tmp/zp:127.0.0.1:3031,,:3032", "empty address"),
            ("/tmp/zp:127.0.0.1:3031,", "empty address"),
            ("/tmp/zp:127.0.0.1:http", "invalid port `http`"),
            ("/tmp/zp:::1:80", "IPv6"),
        ] {
            let error = parse(value).unwrap_err();
            assert!(error.contains(expected), "{value}: {error}");
        }
    }

    #[test]
    fn a_pool_path_twice_is_an_error() {
        let mut pools = Vec::new();
        add(&mut pools, "/tmp/zp:127.0.0.1:3031").unwrap();
        add(&mut pools, "/tmp/zp2:127.0.0.1:3032").unwrap();
        let error = add(&mut pools, "/tmp/zp:127.0.0.1:3033").unwrap_err();
        assert!(error.contains("already used"), "{error}");
        assert_eq!(pools.len(), 2);
    }
}
