//! Connection floods and slow clients: a worker out of file descriptors backs off instead
//! of spinning, and serves again once the flood ends; `max-worker-connections` caps what one
//! worker holds; a request head trickling in one byte at a time (slowloris) is cut at
//! `socket-timeout` from its start.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use common::*;

/// A connection that has sent the start of a request head and then nothing (the listener
/// defers accepting a connection until its first bytes arrive).
fn half_open(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("the backlog takes the connection");
    stream
        .write_all(b"GET / HTTP/1.1\r\n")
        .expect("the start of a head");
    stream
}

/// The pid of worker 1, from its spawn line.
fn worker_pid(kaiser: &Kaiser) -> i32 {
    let line = kaiser
        .wait_for_log("spawned worker worker=1 pid=", START_TIMEOUT)
        .unwrap();
    let rest = &line[line.find("pid=").expect("pid=") + 4..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|digits| digits.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"))
}

/// CPU time (user + system) the process has used so far, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the worker lives");
    // Fields after the command name (which may hold spaces) start at the last `)`.
    let fields: Vec<&str> = stat[stat.rfind(')').expect(")") + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn hello(addr: SocketAddr) -> Result<Response, String> {
    http_get(addr, "/")
}

#[test]
fn a_worker_out_of_file_descriptors_backs_off_and_serves_again_after_the_flood() {
    let (kaiser, addr) = start_http_with(
        &[
            "--wsgi-file",
            "tests/apps/hello.py",
            "--threads",
            "4",
            "--socket-timeout",
            "60",
            // Above the fd limit: the kernel's EMFILE is what stops the worker here.
            "--max-worker-connections",
            "10000",
        ],
        |command| {
            // SAFETY: setrlimit is async-signal-safe and touches only the child.
            unsafe {
                command.pre_exec(|| {
                    let limit = libc::rlimit {
                        rlim_cur: 64,
                        rlim_max: 64,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        },
    );
    let pid = worker_pid(&kaiser);
    assert_eq!(hello(addr).expect("served before the flood").status, 200);
    let mark = kaiser.log_mark();
    // Connections whose heads never finish, more than the worker has descriptors for: they
    // stay open (the socket-timeout is long) and fill its table.
    let flood: Vec<TcpStream> = (0..120).map(|_| half_open(addr)).collect();
    // The worker says it (in any words) once its descriptors run out.
    kaiser
        .wait_for_log_since(mark, "accept", START_TIMEOUT)
        .unwrap();
    let before = cpu_ticks(pid);
    let watched = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    let lines = kaiser
        .logs_since(mark)
        .lines()
        .filter(|line| line.contains("cannot accept") || line.contains("accept failed"))
        .count();
    // Four threads spinning on a level-triggered listener would use ~2 s of CPU each here
    // and log thousands of lines; backing off uses almost none.
    assert!(
        used < 50,
        "the saturated worker used {used} ticks of CPU in {:?}",
        watched.elapsed()
    );
    assert!(
        kaiser
            .logs_since(mark)
            .contains("cannot accept: out of file descriptors"),
        "{}",
        kaiser.logs_since(mark)
    );
    assert!(
        lines <= 6,
        "{lines} accept error lines in about 2 s:\n{}",
        kaiser.logs_since(mark)
    );
    drop(flood);
    let response = wait_until(
        "a request after the flood",
        START_TIMEOUT,
        |last| match hello(addr) {
            Ok(response) if response.status == 200 => Ok(Some(response)),
            Ok(response) => {
                *last = format!("status {}", response.status);
                Ok(None)
            }
            Err(error) => {
                *last = error;
                Ok(None)
            }
        },
    )
    .unwrap();
    assert_eq!(response.text(), "Hello World");
}

#[test]
fn max_worker_connections_makes_new_connections_wait_until_one_closes() {
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--socket-timeout",
        "60",
        "--max-worker-connections",
        "3",
    ]);
    let mark = kaiser.log_mark();
    let mut idle: Vec<TcpStream> = (0..3).map(|_| half_open(addr)).collect();
    kaiser
        .wait_for_log_since(mark, "max-worker-connections reached", START_TIMEOUT)
        .unwrap();
    let mut waiting = TcpStream::connect(addr).expect("the backlog takes it");
    waiting
        .write_all(&request_bytes("GET", "/", &[("Connection", "close")], b""))
        .unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut first = [0u8; 1];
    let early = waiting.read(&mut first);
    assert!(
        early.is_err(),
        "a fourth connection was served while three were open: {early:?}\n{}",
        kaiser.logs()
    );
    idle.pop();
    waiting
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut answer = Vec::new();
    waiting.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[test]
fn a_request_head_trickling_in_is_cut_at_socket_timeout_from_its_start() {
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--socket-timeout",
        "2",
    ]);
    let mark = kaiser.log_mark();
    let mut slow = TcpStream::connect(addr).expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    // One byte every 300 ms: each arrives well within socket-timeout of the last.
    let mut cut = None;
    while started.elapsed() < Duration::from_secs(12) {
        std::thread::sleep(Duration::from_millis(300));
        if slow.write_all(b"X").is_err() {
            cut = Some(started.elapsed());
            break;
        }
        slow.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let closed = matches!(slow.read(&mut buf), Ok(0));
        slow.set_nonblocking(false).unwrap();
        if closed {
            cut = Some(started.elapsed());
            break;
        }
    }
    let cut = cut.unwrap_or_else(|| {
        panic!(
            "a head trickling in for 12 s was never cut (socket-timeout 2):\n{}",
            kaiser.logs()
        )
    });
    assert!(cut >= Duration::from_millis(1500), "cut too early: {cut:?}");
    kaiser
        .wait_for_log_since(
            mark,
            "request head did not arrive whole within socket-timeout",
            START_TIMEOUT,
        )
        .unwrap();
    assert_eq!(hello(addr).expect("still serving").status, 200);
}
