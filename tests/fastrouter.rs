//! The fastrouter run by the real binary: a kaiser instance with `fastrouter` relays uwsgi
//! requests to backend kaiser instances chosen by the request's Host, through its
//! subscription server (the backends' `subscribe-to`), `fastrouter-use-pattern`,
//! `fastrouter-use-base` or the static `fastrouter-to` nodes; an unknown key or a malformed
//! packet closes that one connection; a node that stops announcing is dropped; the router
//! process is respawned by its master; nginx's `uwsgi_pass` goes through it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

/// A router with these options, and the address its `fastrouter` listens on.
fn router(options: &[&str]) -> (Kaiser, SocketAddr) {
    let mut args = vec!["--fastrouter", "127.0.0.1:0"];
    args.extend_from_slice(options);
    let router = Kaiser::spawn(&args);
    let addr = router
        .wait_for_addr("fastrouter: listening", START_TIMEOUT)
        .unwrap();
    router
        .wait_for_log("fastrouter: serving", START_TIMEOUT)
        .unwrap();
    (router, addr)
}

/// A backend serving `tests/apps/whoami.py` as `name` on `socket`, with `extra` options.
fn backend(name: &str, socket: &str, extra: &[&str]) -> Kaiser {
    let who = format!("WHOAMI={name}");
    let mut args = vec![
        "--socket",
        socket,
        "--wsgi-file",
        "tests/apps/whoami.py",
        "--env",
        &who,
    ];
    args.extend_from_slice(extra);
    let backend = Kaiser::spawn(&args);
    backend.wait_for_log("ready in", START_TIMEOUT).unwrap();
    backend
}

/// A POST with `body` for `host` through the router: the answering backend's text.
fn ask(router: SocketAddr, host: &str, body: &str) -> Result<String, String> {
    let stream = TcpStream::connect_timeout(&router, START_TIMEOUT).map_err(|e| e.to_string())?;
    let vars = host_vars("POST", host, Some(body.len()));
    let response = uwsgi_request(stream, &vars, body.as_bytes())?;
    if response.status != 200 {
        return Err(format!("status {}", response.status));
    }
    Ok(String::from_utf8_lossy(&response.body).into_owned())
}

/// Sends `bytes` and returns what comes back before the router closes the connection.
fn send_raw(router: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&router, START_TIMEOUT).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(bytes).unwrap();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        // An unread request makes the close a reset: closed all the same.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the router did not close the connection: {e}"),
    }
    answer
}

fn request_for(host: &str) -> Vec<u8> {
    let vars = host_vars("GET", host, None);
    let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    uwsgi_packet(0, 0, &borrowed)
}

/// nginx's vars for `method /` with `HTTP_HOST` = `host`.
fn host_vars(method: &str, host: &str, content_length: Option<usize>) -> Vec<(String, String)> {
    let mut vars = cgi_vars(method, "/", content_length, &[]);
    for (key, value) in vars.iter_mut() {
        if key == "HTTP_HOST" {
            *value = host.to_string();
        }
    }
    vars
}

/// Waits until the router logged a new node for `key`.
fn wait_for_node(router: &Kaiser, key: &str) {
    router
        .wait_for_log(&format!("new node key=\"{key}\""), START_TIMEOUT)
        .unwrap();
}

#[test]
fn subscribed_backends_get_the_requests_for_their_host() {
    let (router_process, router_addr) = router(&[
        "--fastrouter-subscription-server",
        "127.0.0.1:0",
        "--fastrouter-stats",
        "127.0.0.1:0",
    ]);
    let subscription = router_process
        .wait_for_addr("subscription server listening", START_TIMEOUT)
        .unwrap();
    let alpha_target = format!("{subscription}:alpha.test");
    let beta_target = format!("{subscription}:beta.test");
    let _alpha = backend(
        "alpha",
        "127.0.0.1:0",
        &["--subscribe-to", &alpha_target, "--subscribe-freq", "1"],
    );
    let _beta = backend(
        "beta",
        "127.0.0.1:0",
        &["--subscribe-to", &beta_target, "--subscribe-freq", "1"],
    );
    wait_for_node(&router_process, "alpha.test");
    wait_for_node(&router_process, "beta.test");
    assert_eq!(
        ask(router_addr, "alpha.test", "one").unwrap(),
        "alpha host=alpha.test body=one"
    );
    assert_eq!(
        ask(router_addr, "beta.test", "two").unwrap(),
        "beta host=beta.test body=two"
    );
    // A body larger than one read goes through whole.
    let big = "x".repeat(300_000);
    assert_eq!(
        ask(router_addr, "beta.test", &big).unwrap(),
        format!("beta host=beta.test body={big}")
    );

    // An unknown key: the connection is closed without an answer, as uWSGI does.
    let mark = router_process.log_mark();
    assert_eq!(send_raw(router_addr, &request_for("gamma.test")), b"");
    router_process
        .wait_for_log_since(mark, "no node for this key", START_TIMEOUT)
        .unwrap();
    // A malformed packet (a var running past the block) and a truncated header: closed.
    assert_eq!(send_raw(router_addr, &[0, 4, 0, 0, 9, 0, b'a', b'b']), b"");
    assert_eq!(send_raw(router_addr, &[0, 200]), b"");
    // The router still serves.
    assert_eq!(
        ask(router_addr, "alpha.test", "again").unwrap(),
        "alpha host=alpha.test body=again"
    );

    // `fastrouter-stats`: uWSGI's document, with each key, its node and its hits.
    let stats_addr = router_process
        .wait_for_addr("fastrouter: stats server listening", START_TIMEOUT)
        .unwrap();
    let mut stream = TcpStream::connect_timeout(&stats_addr, START_TIMEOUT).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let stats: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        stats["fastrouter"],
        serde_json::json!(["127.0.0.1:0"]),
        "{stats}"
    );
    let subscriptions = stats["subscriptions"].as_array().unwrap();
    let slot = |key: &str| {
        subscriptions
            .iter()
            .find(|s| s["key"] == key)
            .unwrap_or_else(|| panic!("no {key} in {stats}"))
    };
    assert_eq!(slot("alpha.test")["hits"], 2, "{stats}");
    assert_eq!(slot("beta.test")["hits"], 2, "{stats}");
    assert_eq!(slot("alpha.test")["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(slot("alpha.test")["nodes"][0]["requests"], 2, "{stats}");
    assert!(stats["active_sessions"].is_u64(), "{stats}");
}

#[test]
fn a_node_that_stops_announcing_is_dropped() {
    let (router_process, router_addr) = router(&[
        "--fastrouter-subscription-server",
        "127.0.0.1:0",
        "--subscription-tolerance",
        "2",
    ]);
    let subscription = router_process
        .wait_for_addr("subscription server listening", START_TIMEOUT)
        .unwrap();
    let target = format!("{subscription}:alpha.test");
    let alpha = backend(
        "alpha",
        "127.0.0.1:0",
        &["--subscribe-to", &target, "--subscribe-freq", "1"],
    );
    wait_for_node(&router_process, "alpha.test");
    assert!(ask(router_addr, "alpha.test", "")
        .unwrap()
        .starts_with("alpha"));
    // SIGKILL: no unsubscription, the announcements just stop.
    alpha.signal_group(libc::SIGKILL);
    router_process
        .wait_for_log(
            "node dropped (no announcement within subscription-tolerance) key=\"alpha.test\"",
            Duration::from_secs(20),
        )
        .unwrap();
    let mark = router_process.log_mark();
    assert_eq!(send_raw(router_addr, &request_for("alpha.test")), b"");
    router_process
        .wait_for_log_since(mark, "no node for this key", START_TIMEOUT)
        .unwrap();
}

#[test]
fn use_pattern_and_use_base_map_the_key_to_a_unix_socket() {
    let dir = TempDir::new("fastrouter-pattern");
    let socket = dir.join("alpha.test.sock").display().to_string();
    let _alpha = backend("alpha", &socket, &[]);
    let pattern = format!("{}/%s.sock", dir.path().display());
    let (pattern_router, pattern_addr) = router(&["--fastrouter-use-pattern", &pattern]);
    assert_eq!(
        ask(pattern_addr, "alpha.test", "p").unwrap(),
        "alpha host=alpha.test body=p"
    );
    // No socket for this key: that connection is closed, logged, and the router lives on.
    let mark = pattern_router.log_mark();
    assert_eq!(send_raw(pattern_addr, &request_for("nobody.test")), b"");
    pattern_router
        .wait_for_log_since(mark, "cannot connect to the node", START_TIMEOUT)
        .unwrap();
    assert!(ask(pattern_addr, "alpha.test", "").is_ok());

    let base = format!("{}/", dir.path().display());
    let (_base_router, base_addr) = router(&["--fastrouter-use-base", &base]);
    assert_eq!(
        ask(base_addr, "alpha.test.sock", "b").unwrap(),
        "alpha host=alpha.test.sock body=b"
    );
}

#[test]
fn fastrouter_to_takes_the_static_nodes_in_turn() {
    let alpha = backend("alpha", "127.0.0.1:0", &[]);
    let beta = backend("beta", "127.0.0.1:0", &[]);
    let alpha_addr = alpha
        .wait_for_addr("protocol=\"uwsgi\"", START_TIMEOUT)
        .unwrap()
        .to_string();
    let beta_addr = beta
        .wait_for_addr("protocol=\"uwsgi\"", START_TIMEOUT)
        .unwrap()
        .to_string();
    let (_router, addr) = router(&[
        "--fastrouter-to",
        &alpha_addr,
        "--fastrouter-to",
        &beta_addr,
    ]);
    let answers: Vec<String> = (0..4)
        .map(|_| {
            let text = ask(addr, "any.test", "").unwrap();
            text.split(' ').next().unwrap().to_string()
        })
        .collect();
    assert_eq!(answers, ["alpha", "beta", "alpha", "beta"]);
}

#[test]
fn the_master_respawns_a_dead_router() {
    let alpha = backend("alpha", "127.0.0.1:0", &[]);
    let alpha_addr = alpha
        .wait_for_addr("protocol=\"uwsgi\"", START_TIMEOUT)
        .unwrap()
        .to_string();
    let (router_process, addr) = router(&["--fastrouter-to", &alpha_addr]);
    let pid: i32 = router_process
        .wait_for_line(0, "the router's pid", START_TIMEOUT, |line| {
            let rest = line.split("spawned the fastrouter pid=").nth(1)?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap();
    // SAFETY: kill(2) on the router process this test's kaiser forked.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    router_process
        .wait_for_log("respawned the fastrouter", START_TIMEOUT)
        .unwrap();
    let answer = wait_until(
        "the respawned router answers",
        START_TIMEOUT,
        |seen| match ask(addr, "alpha.test", "") {
            Ok(answer) => Ok(Some(answer)),
            Err(error) => {
                *seen = error;
                Ok(None)
            }
        },
    )
    .unwrap();
    assert!(answer.starts_with("alpha"), "{answer}");
}

#[test]
fn nginx_uwsgi_pass_goes_through_the_router() {
    let (router_process, router_addr) =
        router(&["--fastrouter-subscription-server", "127.0.0.1:0"]);
    let subscription = router_process
        .wait_for_addr("subscription server listening", START_TIMEOUT)
        .unwrap();
    let alpha_target = format!("{subscription}:alpha.test");
    let beta_target = format!("{subscription}:beta.test");
    let _alpha = backend("alpha", "127.0.0.1:0", &["--subscribe-to", &alpha_target]);
    let _beta = backend("beta", "127.0.0.1:0", &["--subscribe-to", &beta_target]);
    wait_for_node(&router_process, "alpha.test");
    wait_for_node(&router_process, "beta.test");
    let nginx = Nginx::start(&format!(
        "location / {{ include uwsgi_params; uwsgi_pass {router_addr}; }}"
    ));
    for (host, who) in [("alpha.test", "alpha"), ("beta.test", "beta")] {
        let stream = TcpStream::connect(nginx.addr()).unwrap();
        let response = http_request(
            stream,
            &request_bytes(
                "POST",
                "/",
                &[("Host", host), ("Connection", "close")],
                b"hi",
            ),
        )
        .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(
            String::from_utf8_lossy(&response.body),
            format!("{who} host={host} body=hi")
        );
    }
    // nginx answers 502 for a host the router has no node for.
    let stream = TcpStream::connect(nginx.addr()).unwrap();
    let response = http_request(
        stream,
        &request_bytes(
            "GET",
            "/",
            &[("Host", "gamma.test"), ("Connection", "close")],
            b"",
        ),
    )
    .unwrap();
    assert_eq!(response.status, 502);
}

#[test]
fn a_graceful_reload_keeps_the_routers_addresses() {
    let (router_process, router_addr) = router(&[
        "--fastrouter-subscription-server",
        "127.0.0.1:0",
        "--subscription-tolerance",
        "30",
    ]);
    let subscription = router_process
        .wait_for_addr("subscription server listening", START_TIMEOUT)
        .unwrap();
    let target = format!("{subscription}:alpha.test");
    let _alpha = backend(
        "alpha",
        "127.0.0.1:0",
        &["--subscribe-to", &target, "--subscribe-freq", "1"],
    );
    wait_for_node(&router_process, "alpha.test");
    assert!(ask(router_addr, "alpha.test", "")
        .unwrap()
        .starts_with("alpha"));
    let mark = router_process.log_mark();
    router_process.signal(libc::SIGHUP);
    router_process
        .wait_for_log_since(mark, "reloaded in", START_TIMEOUT)
        .unwrap();
    // Port 0 was bound once: the same port after the reload, and the same subscription
    // socket, which the backend keeps announcing to.
    let again = router_process
        .wait_for_line(
            mark,
            "the listener after the reload",
            START_TIMEOUT,
            |line| {
                line.contains("fastrouter: listening")
                    .then(|| parse_socket_addrs(line).into_iter().next())
                    .flatten()
            },
        )
        .unwrap();
    assert_eq!(again, router_addr);
    router_process
        .wait_for_log_since(mark, "new node key=\"alpha.test\"", START_TIMEOUT)
        .unwrap();
    assert!(ask(router_addr, "alpha.test", "")
        .unwrap()
        .starts_with("alpha"));
}

#[test]
fn an_emperor_config_runs_its_fastrouter_for_its_vassals() {
    // As Subscribie's emperor.ini: the emperor's own config has the router, and its vassals
    // subscribe to it (here through a unix datagram socket).
    let dir = TempDir::new("fastrouter-emperor");
    let vassals = dir.join("vassals");
    std::fs::create_dir(&vassals).unwrap();
    let subscription = dir.join("subscription.sock").display().to_string();
    std::fs::write(
        vassals.join("alpha.ini"),
        format!(
            "[uwsgi]\nsocket = {}\nwsgi-file = {}\nenv = WHOAMI=alpha\nsubscribe-to = {subscription}:alpha.test\nsubscribe-freq = 1\n",
            dir.join("alpha.sock").display(),
            app("whoami.py").display(),
        ),
    )
    .unwrap();
    let glob = format!("{}/*.ini", vassals.display());
    let emperor = Kaiser::spawn(&[
        "--emperor",
        &glob,
        "--fastrouter",
        "127.0.0.1:0",
        "--fastrouter-subscription-server",
        &subscription,
    ]);
    let router_addr = emperor
        .wait_for_addr("fastrouter: listening", START_TIMEOUT)
        .unwrap();
    wait_for_node(&emperor, "alpha.test");
    assert_eq!(
        ask(router_addr, "alpha.test", "e").unwrap(),
        "alpha host=alpha.test body=e"
    );
}

#[test]
fn a_node_that_never_answers_is_given_up_after_the_timeout() {
    // A node that accepts (in its backlog) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let (router_process, addr) =
        router(&["--fastrouter-to", &silent_addr, "--fastrouter-timeout", "1"]);
    let mut stream = TcpStream::connect_timeout(&addr, START_TIMEOUT).unwrap();
    // Longer than the router's timeout, shorter than a hang.
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream.write_all(&request_for("any.test")).unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => assert!(answer.is_empty(), "{answer:?}"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "the router kept the connection past fastrouter-timeout: {e}\n{}",
            router_process.logs()
        ),
    }
    // The router still serves.
    let alpha = backend("alpha", "127.0.0.1:0", &[]);
    let alpha_addr = alpha
        .wait_for_addr("protocol=\"uwsgi\"", START_TIMEOUT)
        .unwrap()
        .to_string();
    let (_router2, addr2) = router(&["--fastrouter-to", &alpha_addr, "--fastrouter-timeout", "1"]);
    assert!(ask(addr2, "any.test", "").unwrap().starts_with("alpha"));
}

/// An address nothing listens on: connections to it are refused.
fn refusing_address() -> String {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().to_string()
}

#[test]
fn a_refusing_node_is_dropped_and_other_nodes_or_the_fallback_take_the_request() {
    let beta = backend("beta", "127.0.0.1:0", &[]);
    let beta_addr = beta
        .wait_for_addr("protocol=\"uwsgi\"", START_TIMEOUT)
        .unwrap()
        .to_string();
    let (router_process, router_addr) = router(&[
        "--fastrouter-subscription-server",
        "127.0.0.1:0",
        "--fastrouter-fallback",
        &beta_addr,
        "--fastrouter-fallback-on-no-key",
    ]);
    let subscription = router_process
        .wait_for_addr("subscription server listening", START_TIMEOUT)
        .unwrap();
    let target = format!("{subscription}:alpha.test");
    let alpha = backend("alpha", "127.0.0.1:0", &["--subscribe-to", &target]);
    wait_for_node(&router_process, "alpha.test");
    assert!(ask(router_addr, "alpha.test", "")
        .unwrap()
        .starts_with("alpha"));
    // Killed without unsubscribing: the router learns it at the next connection.
    alpha.signal_group(libc::SIGKILL);
    let _ = alpha.wait_output_closed(START_TIMEOUT);
    let mark = router_process.log_mark();
    assert_eq!(
        ask(router_addr, "alpha.test", "x").unwrap(),
        "beta host=alpha.test body=x"
    );
    router_process
        .wait_for_log_since(mark, "node marked as failed and dropped", START_TIMEOUT)
        .unwrap();
    // A key without a node goes to the fallback too (`fastrouter-fallback-on-no-key`).
    assert!(ask(router_addr, "nobody.test", "")
        .unwrap()
        .starts_with("beta"));

    // Static nodes: the refusing one is skipped, the request goes to the next.
    let dead = refusing_address();
    let (_static_router, static_addr) =
        router(&["--fastrouter-to", &dead, "--fastrouter-to", &beta_addr]);
    for _ in 0..3 {
        assert!(ask(static_addr, "any.test", "")
            .unwrap()
            .starts_with("beta"));
    }
}

#[test]
fn use_socket_forwards_to_the_instances_own_socket() {
    let (router_process, addr) = {
        let instance = Kaiser::spawn(&[
            "--socket",
            "127.0.0.1:0",
            "--wsgi-file",
            "tests/apps/whoami.py",
            "--env",
            "WHOAMI=self",
            "--fastrouter",
            "127.0.0.1:0",
            "--fastrouter-use-socket",
            "0",
        ]);
        let addr = instance
            .wait_for_addr("fastrouter: listening", START_TIMEOUT)
            .unwrap();
        instance.wait_for_log("ready in", START_TIMEOUT).unwrap();
        (instance, addr)
    };
    assert_eq!(
        ask(addr, "any.test", "s").unwrap(),
        "self host=any.test body=s",
        "{}",
        router_process.logs()
    );
}
