//! Options the public-config survey (tests/config_survey.rs) found kaiser lacking, run by the
//! real binary: `collect-header`/`pull-header` feeding response routes (MathHubInfo/mhd's
//! X-Sendfile routes), `max-fd` setting the open-files limit (healthchecks' workaround for
//! uWSGI issue 2299), `no-site` and `pythonpath` globs reaching the interpreter
//! (shadowsocks-manager), `no-defer-accept` on the TCP listeners (localshop, esup-campulse).

mod common;

use common::*;

#[test]
fn collected_and_pulled_headers_feed_response_routes() {
    let dir = TempDir::new("collect-header");
    let ini = dir.write(
        "app.ini",
        format!(
            "[uwsgi]\nwsgi-file = {app}\n\
             collect-header = X-Body-Length BODY_LEN\n\
             response-route-if = equal:${{BODY_LEN}};3 addheader:X-Collected: three\n\
             pull-header = X-Content-Type-Env CT_ENV\n\
             response-route-if-not = empty:${{CT_ENV}} addheader:X-Pulled: ${{CT_ENV}}\n",
            app = app("wsgi_suite.py").display()
        ),
    );
    let (_kaiser, addr) = start_http(&["--ini", &ini.display().to_string()]);
    let post = |body: &[u8]| {
        let stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
        let raw = request_bytes(
            "POST",
            "/echo",
            &[("Connection", "close"), ("Content-Type", "text/x-survey")],
            body,
        );
        http_request(stream, &raw).unwrap()
    };
    let three = post(b"abc");
    assert_eq!(three.status, 200, "{three}");
    // Collected: the header stays, and the response route saw its value.
    assert_eq!(three.header("X-Body-Length"), Some("3"), "{three}");
    assert_eq!(three.header("X-Collected"), Some("three"), "{three}");
    // Pulled: the header is gone, and its value reached the route.
    assert_eq!(three.header("X-Content-Type-Env"), None, "{three}");
    assert_eq!(three.header("X-Pulled"), Some("text/x-survey"), "{three}");
    let four = post(b"abcd");
    assert_eq!(four.header("X-Collected"), None, "{four}");
}

#[test]
fn pull_header_alone_drops_the_header() {
    let dir = TempDir::new("pull-header");
    let ini = dir.write(
        "app.ini",
        format!(
            "[uwsgi]\nwsgi-file = {app}\npull-header = X-Body-Length LEN\n",
            app = app("wsgi_suite.py").display()
        ),
    );
    let (_kaiser, addr) = start_http(&["--ini", &ini.display().to_string()]);
    let stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
    let raw = request_bytes("POST", "/echo", &[("Connection", "close")], b"abc");
    let response = http_request(stream, &raw).unwrap();
    assert_eq!(response.status, 200, "{response}");
    assert_eq!(response.header("X-Body-Length"), None, "{response}");
    // The other headers are untouched.
    assert!(response.header("X-Body-Sha256").is_some(), "{response}");
}

#[test]
fn max_fd_sets_the_open_files_limit() {
    let (kaiser, _addr) = start_http(&[
        "--wsgi-file",
        &app("hello.py").display().to_string(),
        "--max-fd",
        "777",
    ]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", kaiser.pid())).unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("a Max open files line");
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, ["777", "777"], "{line}");
}

#[test]
fn no_site_and_pythonpath_globs_reach_the_interpreter() {
    let dir = TempDir::new("no-site");
    for sub in ["lib-a/pkgs", "lib-b/pkgs", "other/pkgs"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let pattern = format!("{}/lib-*/pkgs", dir.path().display());
    let app_path = app("sys_probe.py").display().to_string();
    let probe = |extra: &[&str]| {
        let mut args = vec![
            "--wsgi-file",
            app_path.as_str(),
            "--pythonpath",
            pattern.as_str(),
        ];
        args.extend_from_slice(extra);
        let (_kaiser, addr) = start_http(&args);
        let response = http_get(addr, "/").unwrap();
        assert_eq!(response.status, 200, "{response}");
        serde_json::from_slice::<serde_json::Value>(&response.body).unwrap()
    };
    let with_site = probe(&[]);
    assert_eq!(with_site["no_site"], 0, "{with_site}");
    let without_site = probe(&["--no-site"]);
    assert_eq!(without_site["no_site"], 1, "{without_site}");
    // The glob gave each match, in order, and not the pattern or the non-matching dir.
    let path: Vec<String> = without_site["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    let a = dir.path().join("lib-a/pkgs").display().to_string();
    let b = dir.path().join("lib-b/pkgs").display().to_string();
    let pos = |p: &str| path.iter().position(|e| e.trim_end_matches('/') == p);
    assert!(pos(&a).is_some() && pos(&b).is_some(), "{path:?}");
    assert!(pos(&a) < pos(&b), "{path:?}");
    assert!(
        !path.iter().any(|p| p.contains('*') || p.contains("other")),
        "{path:?}"
    );
}

/// `TCP_DEFER_ACCEPT` on the listener of `pid` bound to `port`, read from a copy of the
/// process's descriptor (`pidfd_getfd`; the tests run as the same user).
fn defer_accept_of(pid: i32, port: u16) -> libc::c_int {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as libc::c_int;
    assert!(
        pidfd >= 0,
        "pidfd_open: {}",
        std::io::Error::last_os_error()
    );
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    for entry in fds {
        let entry = entry.unwrap();
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if !target.to_string_lossy().starts_with("socket:") {
            continue;
        }
        let remote: libc::c_int = entry.file_name().to_string_lossy().parse().unwrap();
        // SAFETY: pidfd_getfd copies the target's descriptor into this process.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd, remote, 0) } as libc::c_int;
        if fd < 0 {
            continue;
        }
        // SAFETY: sockaddr_in is plain data for which all-zero is a valid value.
        let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: getsockname writes at most `len` bytes into `addr`.
        let named = unsafe {
            libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_in).cast(), &mut len)
        };
        let mut value: libc::c_int = -1;
        if named == 0
            && addr.sin_family as libc::c_int == libc::AF_INET
            && u16::from_be(addr.sin_port) == port
        {
            let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt writes one c_int.
            let rc = unsafe {
                libc::getsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_DEFER_ACCEPT,
                    (&mut value as *mut libc::c_int).cast(),
                    &mut size,
                )
            };
            assert_eq!(rc, 0, "getsockopt: {}", std::io::Error::last_os_error());
        }
        // SAFETY: fd is ours (the copy made above).
        unsafe { libc::close(fd) };
        if value >= 0 {
            // SAFETY: pidfd is ours.
            unsafe { libc::close(pidfd) };
            return value;
        }
    }
    panic!("no listener on port {port} in process {pid}");
}

#[test]
fn no_defer_accept_leaves_tcp_defer_accept_off() {
    let hello = app("hello.py").display().to_string();
    let (kaiser, addr) = start_http(&["--wsgi-file", &hello]);
    assert!(
        defer_accept_of(kaiser.pid(), addr.port()) > 0,
        "kaiser defers accept by default"
    );
    drop(kaiser);
    let (kaiser, addr) = start_http(&["--wsgi-file", &hello, "--no-defer-accept"]);
    assert_eq!(defer_accept_of(kaiser.pid(), addr.port()), 0);
}

#[test]
fn print_logs_its_message_once_the_config_is_read() {
    let dir = TempDir::new("print");
    let ini = dir.write(
        "app.ini",
        format!(
            "[uwsgi]\nwsgi-file = {}\nprint = config read for %n\n",
            app("hello.py").display()
        ),
    );
    let ini = ini.display().to_string();
    // Printed by --print-config, which exits at once…
    let mut printed = Kaiser::spawn(&["--print-config", &ini]);
    assert_eq!(printed.expect_exit(START_TIMEOUT).code(), Some(0));
    assert!(printed.wait_output_closed(START_TIMEOUT));
    assert!(
        printed.logs().contains("config read for app"),
        "{}",
        printed.logs()
    );
    // …and logged by a running instance.
    let (kaiser, _addr) = start_http(&["--ini", &ini]);
    kaiser
        .wait_for_log("config read for app", START_TIMEOUT)
        .unwrap();
}
