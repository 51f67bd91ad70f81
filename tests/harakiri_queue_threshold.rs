//! `harakiri-queue-threshold`: a request past `harakiri` is left alone while the listen
//! queue is shallower than the threshold, and ended once connections pile up behind it.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

const HARAKIRI_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn harakiri_waits_for_queue_pressure() {
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/stuck.py",
        "--harakiri",
        "1",
        "--harakiri-queue-threshold",
        "2",
        "--listen",
        "16",
    ]);
    let mut stuck = TcpStream::connect(addr).unwrap();
    stuck
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stuck
        .write_all(&request_bytes("GET", "/stuck?s=60", &[], b""))
        .unwrap();
    kaiser
        .wait_for_log(
            "HARAKIRI: Skipping harakiri on worker 1. Listen queue is smaller than the threshold (0 < 2)",
            HARAKIRI_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("the harakiri was not skipped: {e}"));
    assert!(!kaiser.logs().contains("HARAKIRI ON WORKER"));

    // Paused workers accept nothing, so new connections wait in the listen queue.
    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGTSTP);
    kaiser
        .wait_for_log_since(mark, "paused", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("the instance did not pause: {e}"));
    let _queued: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    kaiser
        .wait_for_log_since(mark, "HARAKIRI ON WORKER 1", HARAKIRI_TIMEOUT)
        .unwrap_or_else(|e| panic!("queue pressure did not bring the harakiri: {e}"));
    let mut answer = String::new();
    let _ = stuck.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
}
