//! Request bodies and responses have bounds even without `limit-post`: a chunked or
//! post-buffered body past `limit-post-default` is a 413 before it fills the worker's memory
//! or the disk; a client that sends its body, or reads its response, in a trickle is cut at
//! `transfer-timeout` rather than holding a request thread for hours; a signal interrupting a
//! wait (EINTR) is not a timeout (tests/apps/faults.py).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn start(extra: &[&str]) -> (Kaiser, SocketAddr) {
    let mut args = vec!["--wsgi-file", "tests/apps/faults.py", "--processes", "1"];
    args.extend_from_slice(extra);
    start_http(&args)
}

fn worker_pid(addr: SocketAddr) -> u32 {
    let response = http_get(addr, "/pid").unwrap();
    assert_eq!(response.status, 200, "{response}");
    response.text().trim().parse().unwrap()
}

/// A figure from `/proc/PID/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn status_of(reply: &[u8]) -> Option<u16> {
    std::str::from_utf8(reply.get(..12)?)
        .ok()?
        .strip_prefix("HTTP/1.1 ")?
        .parse()
        .ok()
}

/// Reads until the server closes (or `timeout` passes) and returns what came.
fn read_until_close(stream: &mut TcpStream, timeout: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(timeout)).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return reply,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return reply,
            Err(e) => panic!(
                "the server did not close the connection: {e}; got {:?}",
                String::from_utf8_lossy(&reply[..reply.len().min(300)])
            ),
        }
    }
}

/// Sends `head`, then chunks of 64 KiB from another thread until `total` bytes went out, the
/// server stops reading, or the answer arrived; returns the answer.
fn post_streaming(addr: SocketAddr, head: &[u8], chunked: bool, total: usize) -> Vec<u8> {
    let mut stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
    stream.write_all(head).unwrap();
    let mut writer = stream.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let answered = Arc::new(AtomicBool::new(false));
    let stop = answered.clone();
    let sender = std::thread::spawn(move || {
        let data = vec![b'x'; 64 * 1024];
        let mut piece = Vec::new();
        if chunked {
            piece.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        }
        piece.extend_from_slice(&data);
        if chunked {
            piece.extend_from_slice(b"\r\n");
        }
        let mut sent = 0;
        while sent < total && !stop.load(Ordering::Relaxed) {
            if writer.write_all(&piece).is_err() {
                return;
            }
            sent += data.len();
        }
        if chunked {
            let _ = writer.write_all(b"0\r\n\r\n");
        }
    });
    let reply = read_until_close(&mut stream, Duration::from_secs(60));
    answered.store(true, Ordering::Relaxed);
    drop(stream);
    sender.join().unwrap();
    reply
}

#[test]
fn a_huge_chunked_body_is_refused_with_413_without_the_worker_growing() {
    const CAP: usize = 8 << 20;
    const SENT: usize = 128 << 20;
    let cap = CAP.to_string();
    for extra in [&[][..], &["--post-buffering", "65536"][..]] {
        let mut args = vec!["--limit-post-default", cap.as_str()];
        args.extend_from_slice(extra);
        let (kaiser, addr) = start(&args);
        let pid = worker_pid(addr);
        let before = status_kib(pid, "VmHWM:");
        let mark = kaiser.log_mark();
        let head = b"POST /read-all HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        let reply = post_streaming(addr, head, true, SENT);
        assert_eq!(
            status_of(&reply),
            Some(413),
            "{extra:?}: {}",
            String::from_utf8_lossy(&reply)
        );
        kaiser
            .wait_for_log_since(mark, "limit-post-default", Duration::from_secs(5))
            .unwrap();
        let grown = status_kib(pid, "VmHWM:").saturating_sub(before);
        eprintln!("{extra:?}: peak RSS grew by {grown} KiB");
        assert!(
            grown < 64 << 10,
            "{extra:?}: the worker's peak RSS grew by {grown} KiB for a body refused at {CAP} bytes"
        );
        assert_eq!(worker_pid(addr), pid, "{extra:?}: the worker changed");
    }
    // With post-buffering, a declared length over the cap is refused before it is read.
    let (_kaiser, addr) = start(&["--limit-post-default", &cap, "--post-buffering", "65536"]);
    let head = format!(
        "POST /read-all HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        1u64 << 40
    );
    let mut stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let reply = read_until_close(&mut stream, Duration::from_secs(10));
    assert_eq!(
        status_of(&reply),
        Some(413),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // Within the cap, and for a Content-Length body the app reads itself, nothing changes.
    let (_kaiser, addr) = start(&["--limit-post-default", "1000"]);
    for (head, body, length) in [
        (
            "POST /read-all HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            format!("3e8\r\n{}\r\n0\r\n\r\n", "z".repeat(1000)),
            1000,
        ),
        (
            "POST /read-all HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n",
            "z".repeat(5000),
            5000,
        ),
    ] {
        let mut stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        let reply = read_until_close(&mut stream, Duration::from_secs(10));
        let text = String::from_utf8_lossy(&reply);
        assert_eq!(status_of(&reply), Some(200), "{head}: {text}");
        assert!(text.contains(&format!("read {length} bytes")), "{text}");
    }
}

#[test]
fn a_slow_reader_is_cut_at_the_transfer_deadline() {
    // socket-timeout alone would let each wait last 30 s, and the client does make progress.
    let (kaiser, addr) = start(&[
        "--socket-timeout",
        "30",
        "--transfer-timeout",
        "2",
        "--transfer-min-rate",
        "100000000",
    ]);
    let mark = kaiser.log_mark();
    let mut stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
    let started = Instant::now();
    stream
        .write_all(&request_bytes(
            "GET",
            "/big?bytes=67108864",
            &[("Host", "x")],
            b"",
        ))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // 1 KiB every 10 ms: 100 KB/s, 11 minutes for the whole body.
    let mut buf = [0u8; 1024];
    let mut received = 0usize;
    let cut = loop {
        let logs = kaiser.logs_since(mark);
        if let Some(line) = logs
            .lines()
            .find(|line| line.contains("did not read the response in time"))
        {
            break line.to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "a client reading 100 KB/s still held the thread after {:?} ({received} bytes)",
            started.elapsed()
        );
        match stream.read(&mut buf) {
            Ok(0) => panic!("the server closed without a log line after {received} bytes"),
            Ok(n) => received += n,
            Err(e) => panic!("reading the response: {e}"),
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(cut.contains("transfer-timeout"), "{cut}");
    eprintln!(
        "the slow reader was cut after {:?}, {received} bytes read",
        started.elapsed()
    );
    // The rest of what the kernel buffered, then the close.
    received += read_until_close(&mut stream, Duration::from_secs(10)).len();
    assert!(received < 67108864, "the whole body arrived");
    assert_eq!(http_get(addr, "/pid").unwrap().status, 200);
}

#[test]
fn a_drip_fed_body_is_cut_at_the_transfer_deadline() {
    for extra in [&[][..], &["--post-buffering", "4096"][..]] {
        let mut args = vec![
            "--socket-timeout",
            "30",
            "--transfer-timeout",
            "2",
            "--transfer-min-rate",
            "1000",
        ];
        args.extend_from_slice(extra);
        let (kaiser, addr) = start(&args);
        let mark = kaiser.log_mark();
        let mut stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
        let started = Instant::now();
        stream
            .write_all(b"POST /read-all HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        // One byte every 200 ms: 1000 bytes take 200 s.
        let mut reply = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{extra:?}: a body dripping 5 bytes a second still held the thread after {:?}",
                started.elapsed()
            );
            let _ = stream.write_all(b"d");
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("{extra:?}: {e}"),
            }
        }
        eprintln!(
            "{extra:?}: the drip-fed body was cut after {:?}",
            started.elapsed()
        );
        assert_eq!(
            status_of(&reply),
            Some(408),
            "{extra:?}: {}",
            String::from_utf8_lossy(&reply)
        );
        kaiser
            .wait_for_log_since(mark, "transfer-timeout", Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{extra:?}: no log line: {e}"));
    }
}

#[test]
fn a_signal_interrupting_a_body_wait_is_not_a_timeout() {
    let (_kaiser, addr) = start(&[]);
    for _ in 0..3 {
        let mut stream = wait_for_connect(addr, START_TIMEOUT).unwrap();
        stream
            .write_all(b"POST /read-interrupted HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhello")
            .unwrap();
        // The request thread now waits in poll(2) for the rest while SIGALRM interrupts it
        // every 5 ms.
        std::thread::sleep(Duration::from_millis(300));
        stream.write_all(b"world").unwrap();
        let reply = read_until_close(&mut stream, Duration::from_secs(10));
        let text = String::from_utf8_lossy(&reply);
        assert_eq!(status_of(&reply), Some(200), "{text}");
        assert!(text.contains("read 10 bytes"), "{text}");
    }
}
