//! Socket kinds and ownership: IPv6, abstract unix sockets, `chown-socket`, and the
//! privilege drop to `uid`/`gid` after binding.

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixStream};

use common::*;

/// The port kaiser logged for the listener on `host` (`address=[::1]:PORT`).
fn logged_port(kaiser: &Kaiser, host: &str) -> u16 {
    let needle = format!("address={host}:");
    let line = kaiser.wait_for_log(&needle, START_TIMEOUT).unwrap();
    let rest = &line[line.find(&needle).unwrap() + needle.len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no port after `{needle}` in: {line}"))
}

#[test]
fn ipv6_http_socket_serves() {
    let kaiser = Kaiser::spawn(&[
        "--http-socket",
        "[::1]:0",
        "--wsgi-file",
        app("hello.py").to_str().unwrap(),
    ]);
    let port = logged_port(&kaiser, "[::1]");
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let response = http_get(format!("[::1]:{port}").parse().unwrap(), "/").unwrap();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "Hello World"),
        "over IPv6: {response}"
    );
}

#[test]
fn abstract_unix_socket_serves() {
    let name = format!("kaiser-test-{}", std::process::id());
    let spec = format!("@{name}");
    let kaiser = Kaiser::spawn(&[
        "--http-socket",
        &spec,
        "--wsgi-file",
        app("hello.py").to_str().unwrap(),
    ]);
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let addr = UnixAddr::from_abstract_name(name.as_bytes()).unwrap();
    let stream = UnixStream::connect_addr(&addr)
        .unwrap_or_else(|e| panic!("connect to {spec}: {e}\n{}", kaiser.logs()));
    let response = http_request(
        stream,
        &request_bytes("GET", "/", &[("Connection", "close")], b""),
    )
    .unwrap();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "Hello World"),
        "over {spec}: {response}"
    );
}

/// As root: the socket is chowned, and the workers run as `nobody` after binding. As
/// another user the drop must fail with a message naming what could not be done.
#[test]
fn uid_gid_drop_after_binding_and_chown_socket() {
    let dir = TempDir::new("privileges");
    let app_path = dir.write(
        "whoami.py",
        "import os\n\
         def application(environ, start_response):\n\
         \x20   body = f'{os.getuid()} {os.getgid()}'.encode()\n\
         \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
         \x20   return [body]\n",
    );
    let socket = dir.join("app.sock");
    let args = [
        "--http-socket",
        socket.to_str().unwrap(),
        "--chown-socket",
        "nobody:nogroup",
        "--uid",
        "nobody",
        "--gid",
        "nogroup",
        "--wsgi-file",
        app_path.to_str().unwrap(),
    ];
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    let mut kaiser = Kaiser::spawn(&args);
    if !is_root {
        let status = kaiser.expect_exit(START_TIMEOUT);
        assert!(!status.success());
        assert!(
            kaiser.logs().contains("cannot"),
            "expected a clear error, got:\n{}",
            kaiser.logs()
        );
        return;
    }
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (65534, 65534),
        "chown-socket nobody:nogroup"
    );
    let response = http_get_unix(&socket, "/").unwrap();
    assert_eq!(
        response.text(),
        "65534 65534",
        "the app should run as nobody:nogroup; {response}"
    );
}

/// Regression: `pidfile` was written after dropping privileges, so a pidfile in a directory
/// only root may write (/run, as in every packaged unit) failed the start; uWSGI writes it
/// before, and `pidfile2` after.
#[test]
fn pidfile_is_written_before_dropping_privileges() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: dropping privileges cannot be tested here");
        return;
    }
    let dir = TempDir::new("pidfile-root");
    let run = dir.join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let pidfile = run.join("app.pid");
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--uid",
        "nobody",
        "--gid",
        "nogroup",
        "--pidfile",
        pidfile.to_str().unwrap(),
    ]);
    assert_eq!(http_get(addr, "/").unwrap().status, 200);
    let written = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(
        written.trim(),
        kaiser.pid().to_string(),
        "{}",
        kaiser.logs()
    );
}

/// The backlog the kernel holds for the listener on `port`: `ss` shows it as a listening
/// socket's Send-Q.
fn listen_backlog(port: u16) -> u32 {
    let output = std::process::Command::new("ss")
        .args(["-ltnH", &format!("( sport = :{port} )")])
        .output()
        .expect("running ss (iproute2)");
    let text = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    fields
        .get(2)
        .and_then(|send_q| send_q.parse().ok())
        .unwrap_or_else(|| panic!("no listener on port {port} in `ss` output: {text:?}"))
}

/// `listen` sets the backlog; a value above `net.core.somaxconn` is capped with a warning
/// naming the sysctl (uWSGI refuses to start instead).
#[test]
fn listen_sets_the_backlog_and_a_value_above_somaxconn_is_capped_with_a_warning() {
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let small = (somaxconn / 2).max(1).to_string();
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        app("hello.py").to_str().unwrap(),
        "--listen",
        &small,
    ]);
    assert_eq!(
        listen_backlog(addr.port()).to_string(),
        small,
        "--listen {small}"
    );
    kaiser.master_barrier();
    assert!(
        !kaiser.logs().contains("somaxconn"),
        "a backlog within the cap warned:\n{}",
        kaiser.logs()
    );

    let above = (somaxconn + 1000).to_string();
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        app("hello.py").to_str().unwrap(),
        "--listen",
        &above,
    ]);
    assert_eq!(
        listen_backlog(addr.port()),
        somaxconn,
        "--listen {above} with somaxconn {somaxconn}"
    );
    let logs = kaiser.logs();
    assert!(
        logs.contains("net.core.somaxconn") && logs.contains(&format!("listen={above}")),
        "no warning naming the value and the sysctl:\n{logs}"
    );
    assert_eq!(http_get(addr, "/").unwrap().status, 200);
}

/// `reuse-port`: a second instance binds the same TCP port (without it, the bind fails);
/// `so-keepalive`: the connections carry a keepalive timer (`ss -o`).
#[test]
fn reuse_port_lets_two_instances_share_a_port_and_so_keepalive_reaches_connections() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = format!("127.0.0.1:{port}");
    let hello = app("hello.py");
    let args = |extra: &'static [&'static str]| {
        let mut args = vec![
            "--http-socket",
            spec.as_str(),
            "--wsgi-file",
            hello.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args
    };
    let first = Kaiser::spawn(&args(&["--reuse-port", "--so-keepalive"]));
    first.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let second = Kaiser::spawn(&args(&["--reuse-port"]));
    second.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let mut refused = Kaiser::spawn(&args(&[]));
    let status = refused.expect_exit(START_TIMEOUT);
    assert!(
        !status.success(),
        "a third instance without reuse-port bound the port"
    );
    refused
        .wait_for_log("in use", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));

    // A connection served by the first instance (the one with so-keepalive) has the timer.
    let addr: std::net::SocketAddr = spec.parse().unwrap();
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    loop {
        let mut conn = HttpConn::new(std::net::TcpStream::connect(addr).unwrap());
        let response = conn.request(&request_bytes("GET", "/", &[], b"")).unwrap();
        assert_eq!(response.status, 200);
        let local = conn.stream().local_addr().unwrap().port();
        let output = std::process::Command::new("ss")
            .args([
                "-tnoH",
                "state",
                "established",
                &format!("( dport = :{local} )"),
            ])
            .output()
            .expect("running ss (iproute2)");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if text.contains("timer:(keepalive") {
            break;
        }
        // The kernel spread this connection to the second instance: try another.
        assert!(
            std::time::Instant::now() < deadline,
            "no keepalive timer on the server side: {text:?}"
        );
    }
    drop((first, second));
}

/// `umask` applies before sockets are created: a unix socket without `chmod-socket` gets
/// 0777 minus the mask.
#[test]
fn umask_applies_to_the_unix_socket() {
    let dir = TempDir::new("umask");
    let socket = dir.join("app.sock");
    let kaiser = Kaiser::spawn(&[
        "--http-socket",
        socket.to_str().unwrap(),
        "--wsgi-file",
        app("hello.py").to_str().unwrap(),
        "--umask",
        "027",
    ]);
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let mode = std::fs::metadata(&socket).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o750, "socket mode {mode:o}");
    assert_eq!(http_get_unix(&socket, "/").unwrap().status, 200);
}
