//! The master FIFO: each command does what it says, graceful ones drop no request, the FIFO
//! is reopened after every writer, unknown bytes are ignored, and `0`–`9` switch FIFOs.

mod common;
mod lifecycle_support;

use std::time::{Duration, Instant};

use common::*;
use lifecycle_support::*;

/// Position of the first `needle` in `logs` after `from`, failing with the logs if absent.
fn position(logs: &str, needle: &str, from: usize) -> usize {
    logs[from..]
        .find(needle)
        .map(|at| from + at)
        .unwrap_or_else(|| panic!("expected {needle:?} in order in the logs:\n{logs}"))
}

#[test]
fn fifo_commands_each_do_what_they_say() {
    let dir = TempDir::new("fifo");
    let (first, second) = (dir.join("a.fifo"), dir.join("b.fifo"));
    let (first_text, second_text) = (first.display().to_string(), second.display().to_string());
    let (mut kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--processes",
        "2",
        "--master-fifo",
        &first_text,
        "--master-fifo",
        &second_text,
    ]);
    let hammer = Hammer::start(addr, 3);

    // `w`: both workers replaced, each new one forked before its old one stops.
    let mark = kaiser.log_mark();
    fifo_write(&first, b"w\n");
    wait_for_count(&kaiser, mark, "replaced worker exited", 2);
    let logs = kaiser.logs_since(mark);
    for id in [1, 2] {
        let started = position(&logs, &format!("recycling worker {id}: workers reload"), 0);
        position(&logs, &format!("worker {id} replaced"), started);
    }
    hammer.wait_for_more(20);

    // `c`: one at a time, the next only once the previous replacement accepts.
    let mark = kaiser.log_mark();
    fifo_write(&first, b"c\n");
    kaiser
        .wait_for_log_since(mark, "chain reload complete", START_TIMEOUT)
        .unwrap();
    let logs = kaiser.logs_since(mark);
    let one = position(&logs, "recycling worker 1: chain reload", 0);
    let one_done = position(&logs, "worker 1 replaced", one);
    let two = position(&logs, "recycling worker 2: chain reload", one_done);
    position(&logs, "worker 2 replaced", two);
    hammer.wait_for_more(20);

    // `r` after a byte kaiser does not know: a graceful reload with re-exec.
    let mark = kaiser.log_mark();
    fifo_write(&first, b"xr\n");
    kaiser
        .wait_for_log_since(mark, ": reloaded in ", START_TIMEOUT)
        .unwrap();
    wait_for_count(&kaiser, mark, "previous-generation worker finished", 2);
    hammer.wait_for_more(20);
    hammer.finish(&kaiser, "`w`, `c` and `r`");

    // `W`: the workers exit at once and are respawned.
    let mark = kaiser.log_mark();
    fifo_write(&first, b"W");
    wait_for_count(&kaiser, mark, "respawned worker", 2);
    assert_eq!(http_get(addr, "/").unwrap().text(), "Hello World");

    // `R`: a reload that does not wait for the workers.
    let mark = kaiser.log_mark();
    fifo_write(&first, b"R");
    kaiser
        .wait_for_log_since(mark, "brutal reload: killing the workers", START_TIMEOUT)
        .unwrap();
    kaiser
        .wait_for_log_since(mark, ": reloaded in ", START_TIMEOUT)
        .unwrap();
    assert_eq!(http_get(addr, "/").unwrap().text(), "Hello World");

    // `1` makes the second FIFO the active one; `q` there stops gracefully.
    let mark = kaiser.log_mark();
    fifo_write(&first, b"1");
    kaiser
        .wait_for_log_since(mark, "active master fifo is now", START_TIMEOUT)
        .unwrap();
    fifo_write(&second, b"q\n");
    let status = kaiser.expect_exit(EXIT);
    assert_eq!(status.code(), Some(0), "{}", kaiser.logs());
}

#[test]
fn fifo_q_finishes_the_request_in_flight_and_big_q_does_not_wait() {
    let dir = TempDir::new("fifoq");
    let fifo = dir.join("k.fifo");
    let fifo_text = fifo.display().to_string();
    let args = [
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--master-fifo",
        &fifo_text,
    ];

    let (mut kaiser, addr) = start(&args);
    let stream = in_flight(addr, 700);
    fifo_write(&fifo, b"q\n");
    let rest = read_rest(stream);
    assert!(
        rest.contains("chunk 1") && rest.ends_with("0\r\n\r\n"),
        "`q` cut the request in flight: {rest:?}\n{}",
        kaiser.logs()
    );
    assert_eq!(kaiser.expect_exit(EXIT).code(), Some(0));

    let (mut kaiser, addr) = start(&args);
    let _stream = in_flight(addr, 30_000);
    let started = Instant::now();
    fifo_write(&fifo, b"Q\n");
    kaiser.expect_exit(EXIT);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "`Q` took {:?}",
        started.elapsed()
    );
}
