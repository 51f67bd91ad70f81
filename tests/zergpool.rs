//! `zergpool` run by the real binary: a pool instance binds sockets and hands them to zerg
//! instances (`zerg = POOL`) that serve HTTP and uwsgi on them, the pool keeps the same
//! sockets across its graceful reload and a zerg across its own, two pools in one config each hand over their own, and
//! a bad value is an error naming file and line.

mod common;

use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;

use common::*;

/// The TCP address the pool instance logged for the pool whose path ends in `pool`.
fn pooled_addr(instance: &Kaiser, pool: &str) -> SocketAddr {
    instance
        .wait_for_line(
            0,
            &format!("a `zergpool socket bound` line for {pool}"),
            START_TIMEOUT,
            |line| {
                if !line.contains("zergpool socket bound") || !line.contains(pool) {
                    return None;
                }
                parse_socket_addrs(line).into_iter().find(|a| a.port() != 0)
            },
        )
        .unwrap_or_else(|e| panic!("{e}"))
}

fn start_zerg(pool: &Path, extra: &[&str]) -> Kaiser {
    let pool = pool.display().to_string();
    let mut args = vec!["--zerg", pool.as_str()];
    args.extend_from_slice(extra);
    let zerg = Kaiser::spawn(&args);
    zerg.wait_for_log("ready in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    zerg
}

/// uWSGI's documented pool: an instance with `master` and `zergpool` only (no socket, no
/// app). Zergs serve HTTP on the pooled socket; after the pool's graceful reload a new zerg
/// gets the very same socket, and serves alone once the first zerg is gone.
#[test]
fn zergs_serve_a_pooled_socket_that_survives_the_pools_reload() {
    let dir = TempDir::new("zergpool");
    let pool = dir.join("pool.sock");
    let ini = dir.write(
        "pool.ini",
        format!(
            "[uwsgi]\nmaster = true\nzergpool = {}:127.0.0.1:0\n",
            pool.display()
        ),
    );
    let pool_instance = Kaiser::spawn(&["--ini", &ini.display().to_string()]);
    let addr = pooled_addr(&pool_instance, "pool.sock");
    pool_instance
        .wait_for_log("ready in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("a pool needs no socket and no app: {e}"));

    // `http-socket` names the pooled address: the zerg serves the socket it was handed as
    // HTTP instead of binding one.
    let first = start_zerg(
        &pool,
        &[
            "--http-socket",
            &addr.to_string(),
            "--wsgi-file",
            "tests/apps/wsgi_suite.py",
        ],
    );
    assert!(
        first.logs().contains("zerg sockets attached") && first.logs().contains("sockets=1"),
        "{}",
        first.logs()
    );
    let response = http_get(addr, "/env").unwrap();
    assert_eq!(response.status, 200, "{response}");
    assert!(response.text().contains("PATH_INFO"), "{response}");

    let mark = pool_instance.log_mark();
    pool_instance.signal(libc::SIGHUP);
    pool_instance
        .wait_for_log_since(mark, "reloaded in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        pool_instance
            .logs_since(mark)
            .contains("zergpool socket kept from before the reload"),
        "{}",
        pool_instance.logs()
    );
    // The first zerg never noticed.
    assert_eq!(http_get(addr, "/env").unwrap().status, 200);

    // Handed the same socket (port 0 kept its port): had the pool bound a new one, this
    // zerg would have to bind `addr` itself, which the first zerg still listens on.
    let mut second = start_zerg(
        &pool,
        &[
            "--http-socket",
            &addr.to_string(),
            "--wsgi-file",
            "tests/apps/hello.py",
        ],
    );
    assert!(
        second.logs().contains("listening (inherited)")
            || second.logs().contains("passed by systemd"),
        "the second zerg must not bind the address itself: {}",
        second.logs()
    );
    let mut first = first;
    first.signal(libc::SIGTERM);
    assert!(
        first.expect_exit(START_TIMEOUT).success(),
        "{}",
        first.logs()
    );
    let response = http_get(addr, "/").unwrap();
    assert_eq!(response.status, 200, "{response}");
    assert_eq!(response.text(), "Hello World", "{response}");
    second.signal(libc::SIGTERM);
    assert!(second.expect_exit(START_TIMEOUT).success());
}

/// An instance with its own socket and app, and two pools: each zerg gets exactly its pool's
/// sockets (a TCP and a unix one in the first, served as uwsgi; one served as HTTP in the
/// second), and the pool instance's own workers never accept on the pooled ones.
#[test]
fn two_pools_in_one_config_hand_each_zerg_its_own_sockets() {
    let dir = TempDir::new("zergpools");
    let pool1 = dir.join("pool1.sock");
    let pool2 = dir.join("pool2.sock");
    let unix = dir.join("pooled.sock");
    let ini = dir.write(
        "pools.ini",
        format!(
            "[uwsgi]\nmaster = true\nvacuum = true\nhttp-socket = 127.0.0.1:0\n\
             wsgi-file = tests/apps/hello.py\n\
             zergpool = {}:127.0.0.1:0,{}\nzerg-pool = {}:127.0.0.1:0\n",
            pool1.display(),
            unix.display(),
            pool2.display()
        ),
    );
    let mut instance = Kaiser::spawn(&["--ini", &ini.display().to_string()]);
    let own = instance
        .wait_for_addr("protocol=\"http\"", START_TIMEOUT)
        .unwrap();
    let tcp1 = pooled_addr(&instance, "pool1.sock");
    let tcp2 = pooled_addr(&instance, "pool2.sock");
    instance.wait_for_log("ready in", START_TIMEOUT).unwrap();

    let zerg1 = start_zerg(&pool1, &["--wsgi-file", "tests/apps/wsgi_suite.py"]);
    assert!(
        zerg1.logs().contains("sockets=2"),
        "pool 1 hands over its two sockets: {}",
        zerg1.logs()
    );
    let zerg2 = start_zerg(
        &pool2,
        &[
            "--http-socket",
            &tcp2.to_string(),
            "--wsgi-file",
            "tests/apps/wsgi_suite.py",
        ],
    );
    assert!(
        zerg2.logs().contains("sockets=1"),
        "pool 2 hands over its one socket: {}",
        zerg2.logs()
    );

    let env = cgi_vars("GET", "/env", None, &[]);
    let over_tcp =
        uwsgi_request(wait_for_connect(tcp1, START_TIMEOUT).unwrap(), &env, b"").unwrap();
    assert_eq!(over_tcp.status, 200, "{over_tcp}");
    assert!(over_tcp.text().contains("PATH_INFO"), "{over_tcp}");
    let over_unix = uwsgi_request(UnixStream::connect(&unix).unwrap(), &env, b"").unwrap();
    assert_eq!(over_unix.status, 200, "{over_unix}");
    assert!(over_unix.text().contains("PATH_INFO"), "{over_unix}");
    // Only zerg 2 accepts on pool 2's socket: the pool instance's app never answers there.
    for _ in 0..5 {
        let response = http_get(tcp2, "/env").unwrap();
        assert_eq!(response.status, 200, "{response}");
        assert!(response.text().contains("PATH_INFO"), "{response}");
    }
    assert_eq!(http_get(own, "/").unwrap().text(), "Hello World");

    // `vacuum`: the pools' socket files and the pooled unix socket go with the instance.
    instance.signal(libc::SIGTERM);
    assert!(instance.expect_exit(START_TIMEOUT).success());
    for path in [&pool1, &pool2, &unix] {
        assert!(
            !path.exists(),
            "{} is left: {}",
            path.display(),
            instance.logs()
        );
    }
}

/// A zerg's own graceful reload keeps the pooled socket it was handed, once: the new image
/// gets it back with the other listening sockets and does not ask the pool again.
#[test]
fn a_zergs_reload_keeps_its_pooled_socket_once() {
    let dir = TempDir::new("zergpool-zerg-reload");
    let pool = dir.join("pool.sock");
    let pool_instance = Kaiser::spawn(&[
        "--master",
        "--zergpool",
        &format!("{}:127.0.0.1:0", pool.display()),
    ]);
    let addr = pooled_addr(&pool_instance, "pool.sock");
    pool_instance
        .wait_for_log("ready in", START_TIMEOUT)
        .unwrap();
    let zerg = start_zerg(&pool, &["--wsgi-file", "tests/apps/wsgi_suite.py"]);
    let mark = zerg.log_mark();
    zerg.signal(libc::SIGHUP);
    zerg.wait_for_log_since(mark, "reloaded in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let after = zerg.logs_since(mark);
    let listening = after.lines().filter(|l| l.contains("listening")).count();
    assert_eq!(listening, 1, "the pooled socket, once: {after}");
    assert!(!after.contains("zerg sockets attached"), "{after}");
    let env = cgi_vars("GET", "/env", None, &[]);
    let response =
        uwsgi_request(wait_for_connect(addr, START_TIMEOUT).unwrap(), &env, b"").unwrap();
    assert_eq!(response.status, 200, "{response}");
}

#[test]
fn a_bad_zergpool_value_names_file_and_line() {
    let dir = TempDir::new("zergpool-bad");
    for (line, expected) in [
        ("zergpool = POOL", "no `:` after the pool's socket path"),
        ("zergpool = POOL:127.0.0.1:http", "invalid port `http`"),
        ("zergpool = POOL:127.0.0.1:0,,127.0.0.1:0", "empty address"),
    ] {
        let pool = dir.join("pool.sock").display().to_string();
        let ini = dir.write(
            "bad.ini",
            format!(
                "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = tests/apps/hello.py\n{}\n",
                line.replace("POOL", &pool)
            ),
        );
        let mut kaiser = Kaiser::spawn(&["--ini", &ini.display().to_string()]);
        let status = kaiser.expect_exit(START_TIMEOUT);
        assert_eq!(status.code(), Some(1), "{}", kaiser.logs());
        let logs = kaiser.logs();
        assert!(logs.contains("bad.ini:4"), "names file and line: {logs}");
        assert!(logs.contains(expected), "{line}: {logs}");
    }
    let ini = dir.write(
        "twice.ini",
        format!(
            "[uwsgi]\nhttp-socket = 127.0.0.1:0\nwsgi-file = tests/apps/hello.py\n\
             zergpool = {0}:127.0.0.1:0\nzergpool = {0}:127.0.0.1:0\n",
            dir.join("pool.sock").display()
        ),
    );
    let mut kaiser = Kaiser::spawn(&["--ini", &ini.display().to_string()]);
    assert_eq!(kaiser.expect_exit(START_TIMEOUT).code(), Some(1));
    let logs = kaiser.logs();
    assert!(
        logs.contains("twice.ini:5") && logs.contains("already used by an earlier `zergpool`"),
        "{logs}"
    );
}
