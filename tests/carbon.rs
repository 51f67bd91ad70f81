//! `carbon`: the master pushes the stats to a Carbon server in Graphite's plaintext protocol,
//! with uWSGI's names, every `carbon-freq` seconds.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use common::*;

const PUSH_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn the_stats_reach_a_carbon_server() {
    let carbon = TcpListener::bind("127.0.0.1:0").unwrap();
    carbon.set_nonblocking(true).unwrap();
    let server = carbon.local_addr().unwrap().to_string();
    let (_kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--processes",
        "2",
        "--carbon",
        &server,
        "--carbon-freq",
        "1",
        "--carbon-id",
        "app",
        "--carbon-root",
        "test",
    ]);
    for _ in 0..3 {
        assert_eq!(http_get(addr, "/").unwrap().text(), "Hello World");
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let wanted = format!("test.{host}.app.requests 3 ");
    let pushed = wait_until("a push counting the 3 requests", PUSH_TIMEOUT, |seen| {
        let Ok((mut stream, _)) = carbon.accept() else {
            return Ok(None);
        };
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        *seen = text.clone();
        Ok(text
            .lines()
            .any(|line| line.starts_with(&wanted))
            .then_some(text))
    })
    .unwrap();
    for name in [
        "worker1.requests",
        "worker2.avg_rt",
        "tx",
        "busyness",
        "active_workers 2",
        "idle_workers",
        "respawns",
    ] {
        let line = format!("test.{host}.app.{name}");
        assert!(
            pushed.lines().any(|l| l.starts_with(&line)),
            "`{line}` missing from:\n{pushed}"
        );
    }
}
