//! Socket options of the Sockets group run by the real binary: `freebind` binds an address
//! no interface has, `abstract-socket` moves a unix socket path into the abstract namespace,
//! a `shared-socket` serves the `http-socket` written `=0`, `subscribe-to` announces the
//! instance to a (test) subscription server, and a zerg serves what its zerg server hands over.

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixStream};

use common::*;

/// TEST-NET-1 (RFC 5737): never configured on a machine, so only `IP_FREEBIND` can bind it.
const NOWHERE: &str = "192.0.2.1:0";

#[test]
fn freebind_binds_an_address_no_interface_has() {
    let mut refused = Kaiser::spawn(&[
        "--http-socket",
        NOWHERE,
        "--wsgi-file",
        "tests/apps/hello.py",
    ]);
    let status = refused.expect_exit(START_TIMEOUT);
    assert!(!status.success(), "{}", refused.logs());
    assert!(refused.logs().contains("192.0.2.1"), "{}", refused.logs());

    let kaiser = Kaiser::spawn(&[
        "--http-socket",
        NOWHERE,
        "--freebind",
        "--wsgi-file",
        "tests/apps/hello.py",
    ]);
    kaiser
        .wait_for_log("ready in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("with freebind the socket binds: {e}"));
}

#[test]
fn abstract_socket_binds_paths_in_the_abstract_namespace() {
    let dir = TempDir::new("abstract");
    let path = dir.join("app.sock");
    let path_arg = path.display().to_string();
    let kaiser = Kaiser::spawn(&[
        "--http-socket",
        &path_arg,
        "--abstract-socket",
        "--wsgi-file",
        "tests/apps/hello.py",
    ]);
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    assert!(!path.exists(), "no file is created for an abstract socket");
    let name = UnixAddr::from_abstract_name(path_arg.as_bytes()).unwrap();
    let stream = UnixStream::connect_addr(&name).unwrap();
    let response = http_request(
        stream,
        &request_bytes("GET", "/", &[("Connection", "close")], b""),
    )
    .unwrap();
    assert_eq!(response.status, 200, "{response}");
}

#[test]
fn an_http_socket_can_name_a_shared_socket() {
    let (kaiser, addr) = start_http(&[
        "--shared-socket",
        "127.0.0.1:0",
        "--http-socket",
        "=0",
        "--wsgi-file",
        "tests/apps/hello.py",
    ]);
    // Two listeners: the `--http-socket 127.0.0.1:0` of start_http and the shared one.
    let shared = kaiser
        .wait_for_line(0, "a second http socket", START_TIMEOUT, |line| {
            if !line.contains("protocol=\"http\"") {
                return None;
            }
            parse_socket_addrs(line)
                .into_iter()
                .find(|found| found.port() != 0 && *found != addr)
        })
        .unwrap();
    let response = http_get(shared, "/").unwrap();
    assert_eq!(response.status, 200, "{response}");
}

/// The vars of a uwsgi packet, and its modifiers.
fn parse_uwsgi(bytes: &[u8]) -> (u8, u8, Vec<(String, String)>) {
    let size = usize::from(u16::from_le_bytes([bytes[1], bytes[2]]));
    let mut vars = Vec::new();
    let mut rest = &bytes[4..4 + size];
    let take = |rest: &mut &[u8]| {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let text = String::from_utf8_lossy(&rest[2..2 + len]).into_owned();
        *rest = &rest[2 + len..];
        text
    };
    while !rest.is_empty() {
        let key = take(&mut rest);
        let value = take(&mut rest);
        vars.push((key, value));
    }
    (bytes[0], bytes[3], vars)
}

#[test]
fn subscribe_to_announces_the_socket_and_withdraws_it_on_stop() {
    let router = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    router.set_read_timeout(Some(START_TIMEOUT)).unwrap();
    let target = format!("{}:example.com", router.local_addr().unwrap());
    let mut kaiser = Kaiser::spawn(&[
        "--socket",
        "127.0.0.1:0",
        "--wsgi-file",
        "tests/apps/hello.py",
        "--subscribe-to",
        &target,
        "--processes",
        "2",
    ]);
    let socket = kaiser
        .wait_for_addr("protocol=\"uwsgi\"", START_TIMEOUT)
        .unwrap();
    let mut buf = [0u8; 4096];
    let len = router.recv(&mut buf).expect("a subscription datagram");
    let (modifier1, modifier2, vars) = parse_uwsgi(&buf[..len]);
    assert_eq!((modifier1, modifier2), (224, 0), "{vars:?}");
    let var = |vars: &[(String, String)], name: &str| {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no `{name}` in {vars:?}"))
    };
    assert_eq!(var(&vars, "key"), "example.com");
    assert_eq!(var(&vars, "address"), socket.to_string());
    assert_eq!(var(&vars, "cores"), "2");
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    kaiser.signal(libc::SIGTERM);
    // Announcements may still be in flight; the last datagram is the withdrawal.
    loop {
        let len = router
            .recv(&mut buf)
            .expect("an unsubscribe datagram before the exit");
        let (_, modifier2, vars) = parse_uwsgi(&buf[..len]);
        if modifier2 == 1 {
            assert_eq!(var(&vars, "key"), "example.com");
            break;
        }
    }
    assert!(kaiser.expect_exit(START_TIMEOUT).success());
}

#[test]
fn a_zerg_serves_the_sockets_its_zerg_server_hands_over() {
    let dir = TempDir::new("zerg");
    let zerg_path = dir.join("zerg.sock").display().to_string();
    let mut server = Kaiser::spawn(&[
        "--socket",
        "127.0.0.1:0",
        "--wsgi-file",
        "tests/apps/hello.py",
        "--zerg-server",
        &zerg_path,
    ]);
    let addr = server
        .wait_for_addr("protocol=\"uwsgi\"", START_TIMEOUT)
        .unwrap();
    server
        .wait_for_log("zerg server enabled", START_TIMEOUT)
        .unwrap();
    let zerg = Kaiser::spawn(&[
        "--zerg",
        &zerg_path,
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
    ]);
    zerg.wait_for_log("zerg sockets attached", START_TIMEOUT)
        .unwrap();
    zerg.wait_for_log("ready in", START_TIMEOUT).unwrap();
    // Once the server is gone, only the zerg holds the socket: it answers on that address.
    server.signal(libc::SIGTERM);
    assert!(server.expect_exit(START_TIMEOUT).success());
    let stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
    let response = uwsgi_request(stream, &cgi_vars("GET", "/env", None, &[]), b"").unwrap();
    assert_eq!(response.status, 200, "{response}");
    assert!(response.text().contains("PATH_INFO"), "{response}");
}

#[test]
fn an_unreachable_zerg_server_fails_unless_zerg_fallback() {
    let dir = TempDir::new("zerg-missing");
    let missing = dir.join("nobody.sock").display().to_string();
    let mut refused = Kaiser::spawn(&[
        "--zerg",
        &missing,
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        "tests/apps/hello.py",
    ]);
    assert!(!refused.expect_exit(START_TIMEOUT).success());
    assert!(refused.logs().contains("nobody.sock"), "{}", refused.logs());
    let (_kaiser, addr) = start_http(&[
        "--zerg",
        &missing,
        "--zerg-fallback",
        "--wsgi-file",
        "tests/apps/hello.py",
    ]);
    assert_eq!(http_get(addr, "/").unwrap().status, 200);
}
