//! systemd socket activation: kaiser started the way systemd starts it (the listening socket
//! as fd 3, `LISTEN_FDS`, `LISTEN_PID` naming the process itself, `LISTEN_FDNAMES`) serves on
//! the passed socket instead of binding, matched by address or by the option's name; the
//! shipped `.socket`/`.service` units pass `systemd-analyze verify`.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::*;

/// Starts kaiser with `listener` as fd 3 and the LISTEN_* variables systemd sets.
/// `LISTEN_PID` must be kaiser's own pid: `sh` exports its `$$` and execs kaiser in place.
fn start_activated(listener: &impl AsRawFd, name: &str, args: &[&str]) -> LoggedProcess {
    start_passing(listener, name, "$$", args)
}

/// [`start_activated`] with `LISTEN_PID` set to `pid` (a shell word).
fn start_passing(listener: &impl AsRawFd, name: &str, pid: &str, args: &[&str]) -> LoggedProcess {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("LISTEN_PID={pid} exec \"$0\" \"$@\""))
        .arg(kaiser_bin())
        .args(args)
        .current_dir(repo_root())
        .env("NO_COLOR", "1")
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", name)
        .env_remove("NOTIFY_SOCKET");
    let fd = listener.as_raw_fd();
    // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl).
    unsafe {
        command.pre_exec(move || {
            if fd == 3 {
                // Already fd 3: only the close-on-exec flag std set must go.
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    LoggedProcess::spawn("kaiser", command)
}

fn port_of(addr: SocketAddr) -> String {
    format!("127.0.0.1:{}", addr.port())
}

#[test]
fn a_passed_socket_with_the_configured_address_is_used_not_rebound() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Binding this address again would fail (EADDRINUSE): only adopting fd 3 can work.
    let kaiser = start_activated(
        &listener,
        "web",
        &[
            "--http-socket",
            &port_of(addr),
            "--wsgi-file",
            "tests/apps/hello.py",
        ],
    );
    let line = kaiser
        .wait_for_log("listening (inherited)", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
    assert!(line.contains("systemd=true"), "{line}");
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    let response = http_get(addr, "/").unwrap();
    assert_eq!(
        (response.status, response.text().as_str()),
        (200, "Hello World")
    );
    kaiser
        .wait_for_log("socket passed by systemd", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    kaiser.signal(libc::SIGINT);
}

#[test]
fn a_passed_socket_named_after_the_option_serves_whatever_address_the_ini_gives() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = TempDir::new("activation");
    // The INI names a unix socket; the unit passes a TCP one named `http-socket`.
    let ini = dir.write(
        "app.ini",
        format!(
            "[uwsgi]\nhttp-socket = {}\nwsgi-file = tests/apps/hello.py\n",
            dir.join("unused.sock").display()
        ),
    );
    let kaiser = start_activated(&listener, "http-socket", &["--ini", ini.to_str().unwrap()]);
    kaiser
        .wait_for_log("ready in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
    let response = http_get(addr, "/").unwrap();
    assert_eq!(response.status, 200, "{response}");
    assert!(
        !dir.join("unused.sock").exists(),
        "the INI's address was not bound"
    );
    kaiser.signal(libc::SIGINT);
}

/// The INI names no socket at all: the unit's socket, named after `http-socket`, is the
/// vassal's, and stays so across a graceful reload.
#[test]
fn the_unit_alone_may_name_the_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut kaiser = start_activated(
        &listener,
        "http-socket",
        &["--wsgi-file", "tests/apps/hello.py"],
    );
    kaiser
        .wait_for_log("ready in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
    assert_eq!(http_get(addr, "/").unwrap().text(), "Hello World");
    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGHUP);
    kaiser
        .wait_for_log_since(mark, ": reloaded in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
    assert_eq!(http_get(addr, "/").unwrap().text(), "Hello World");
    kaiser.signal(libc::SIGTERM);
    assert!(
        kaiser.expect_exit(START_TIMEOUT).success(),
        "{}",
        kaiser.logs()
    );
}

/// A passed socket named `fastcgi-socket` speaks FastCGI, as the option would.
#[test]
fn a_passed_socket_named_fastcgi_socket_speaks_fastcgi() {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let kaiser = start_activated(
        &listener,
        "fastcgi-socket",
        &["--wsgi-file", "tests/apps/hello.py"],
    );
    kaiser
        .wait_for_log("ready in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
    // FCGI_BEGIN_REQUEST (id 1, responder), one param, the empty params and stdin records.
    let mut request = vec![1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    request.extend_from_slice(&[1, 4, 0, 1, 0, 19, 0, 0, 14, 3]);
    request.extend_from_slice(b"REQUEST_METHODGET");
    request.extend_from_slice(&[1, 4, 0, 1, 0, 0, 0, 0, 1, 5, 0, 1, 0, 0, 0, 0]);
    let mut stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(&request).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let text = String::from_utf8_lossy(&reply);
    assert_eq!(
        reply.get(..2),
        Some(&[1u8, 6][..]),
        "an FCGI_STDOUT record: {text:?}"
    );
    assert!(text.contains("Status: 200 OK\r\n"), "{text:?}");
    assert!(text.contains("Hello World"), "{text:?}");
}

/// A passed unix socket belongs to the unit: `vacuum` leaves its file, also after a
/// graceful reload (a re-exec, which hands the socket on like any other).
#[test]
fn vacuum_leaves_a_passed_unix_socket_even_after_a_reload() {
    let dir = TempDir::new("activation-unix");
    let path = dir.join("app.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let path_text = path.to_str().unwrap();
    let mut kaiser = start_activated(
        &listener,
        "",
        &[
            "--http-socket",
            path_text,
            "--wsgi-file",
            "tests/apps/hello.py",
            "--vacuum",
        ],
    );
    kaiser
        .wait_for_log("ready in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
    assert_eq!(http_get_unix(&path, "/").unwrap().status, 200);
    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGHUP);
    kaiser
        .wait_for_log_since(mark, ": reloaded in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
    assert_eq!(http_get_unix(&path, "/").unwrap().status, 200);
    kaiser.signal(libc::SIGTERM);
    assert!(
        kaiser.expect_exit(START_TIMEOUT).success(),
        "{}",
        kaiser.logs()
    );
    assert!(
        path.exists(),
        "vacuum removed the unit's socket\n{}",
        kaiser.logs()
    );
    drop(listener);
}

#[test]
fn listen_fds_meant_for_another_process_are_ignored() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let kaiser = start_passing(
        &listener,
        "http-socket",
        "1",
        &[
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            "tests/apps/hello.py",
        ],
    );
    kaiser.wait_for_log("ready in", START_TIMEOUT).unwrap();
    assert!(
        !kaiser.logs().contains("socket passed by systemd"),
        "{}",
        kaiser.logs()
    );
    kaiser.signal(libc::SIGINT);
}

#[test]
fn the_socket_activation_units_pass_systemd_analyze_verify() {
    let dir = TempDir::new("units");
    for unit in ["kaiser@.socket", "kaiser@.service"] {
        let text = std::fs::read_to_string(repo_root().join("systemd").join(unit))
            .expect("read unit")
            .replace("/usr/bin/kaiser", kaiser_bin());
        dir.write(unit, text);
    }
    // A template is verified through an instance; both units of the pair at once.
    let socket = dir.join("kaiser@demo.socket");
    let service = dir.join("kaiser@demo.service");
    std::os::unix::fs::symlink(dir.join("kaiser@.socket"), &socket).unwrap();
    std::os::unix::fs::symlink(dir.join("kaiser@.service"), &service).unwrap();
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&socket)
        .arg(&service)
        .output()
        .expect("systemd-analyze is installed (apt-get install systemd)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let unit_problems: Vec<&str> = stderr.lines().filter(|l| l.contains("kaiser@")).collect();
    assert!(
        unit_problems.is_empty() && output.status.success(),
        "systemd-analyze verify: {stderr}"
    );
}
