//! `py-tracebacker`: each worker answers a connection to `PATH<id>` with its threads'
//! Python stacks in uWSGI's format, naming the function a stuck request waits in.

mod common;

use std::io::Read;
use std::time::Duration;

use common::*;

#[test]
fn a_worker_tells_where_its_threads_are() {
    let dir = TempDir::new("tracebacker");
    let prefix = dir.join("tb");
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/stuck.py",
        "--threads",
        "2",
        "--py-tracebacker",
        &prefix.display().to_string(),
    ]);
    let _stuck = in_flight_stuck(addr);
    let socket = dir.join("tb1");
    kaiser
        .wait_for_log(
            "python tracebacker for worker 1 available on",
            START_TIMEOUT,
        )
        .unwrap();
    let text = wait_until(
        "the stuck request in the traceback",
        START_TIMEOUT,
        |seen| {
            let mut stream = wait_for_unix(&socket, START_TIMEOUT).map_err(|e| e.to_string())?;
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut text = String::new();
            stream
                .read_to_string(&mut text)
                .map_err(|e| e.to_string())?;
            *seen = text.clone();
            Ok(text
                .contains("function = wait_for_the_slow_backend")
                .then_some(text))
        },
    )
    .unwrap();
    assert!(
        text.starts_with("*** uWSGI Python tracebacker output ***\n\n"),
        "{text}"
    );
    assert!(
        text.lines().any(|line| line.starts_with("thread_id = ")
            && line.contains("stuck.py lineno = ")
            && line.ends_with("line = time.sleep(seconds)")),
        "{text}"
    );
}

/// Sends `/stuck` and leaves it running in a worker thread.
fn in_flight_stuck(addr: std::net::SocketAddr) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(&request_bytes("GET", "/stuck?s=30", &[], b""))
        .unwrap();
    stream
}
