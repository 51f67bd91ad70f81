//! The shared cache (`cache2`, legacy `cache`) through `import uwsgi`
//! (tests/apps/cache_app.py): shared by every worker, kept across a worker's respawn, items
//! expire, the API answers as uWSGI's does, and the stats show it.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;

fn start(args: &[&str]) -> (Kaiser, SocketAddr) {
    start_http(&[&["--wsgi-file", "tests/apps/cache_app.py"], args].concat())
}

fn json(kaiser: &Kaiser, addr: SocketAddr, target: &str) -> serde_json::Value {
    let response = http_get(addr, target).unwrap();
    assert_eq!(response.status, 200, "{response}\n{}", kaiser.logs());
    serde_json::from_str(&response.text()).unwrap_or_else(|e| panic!("{e}: {response}"))
}

/// Starts `/hold?name=NAME` on a thread and returns the pid of the worker it holds.
fn hold(addr: SocketAddr, out: &TempDir, name: &str) -> (i64, std::thread::JoinHandle<()>) {
    let target = format!("/hold?name={name}");
    let handle = std::thread::spawn(move || {
        let _ = http_get(addr, &target);
    });
    let prefix = format!("holding-{name}-");
    let pid = wait_until("a worker to be held", START_TIMEOUT, |_| {
        Ok(std::fs::read_dir(out.path())
            .unwrap()
            .flatten()
            .find_map(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                file.strip_prefix(&prefix).map(|pid| pid.parse().unwrap())
            }))
    })
    .unwrap();
    (pid, handle)
}

#[test]
fn every_worker_sees_the_same_items_and_they_outlive_a_worker() {
    let out = TempDir::new("cache");
    let out_path = out.path().to_path_buf();
    let (kaiser, addr) = start_http_with(
        &[
            "--wsgi-file",
            "tests/apps/cache_app.py",
            "--processes",
            "2",
            "--cache2",
            "name=shared,items=100",
        ],
        |command| {
            command.env("APP_OUT", &out_path);
        },
    );
    // With one worker held, the other one writes, then dies.
    let (held, first) = hold(addr, &out, "first");
    let written = json(&kaiser, addr, "/set?key=greeting&value=hello");
    assert_eq!(written["stored"], true, "{written}");
    let writer = written["pid"].as_i64().unwrap();
    assert_ne!(writer, held);
    let _ = http_get(addr, "/die");
    // Its replacement reads what it wrote.
    let answer = wait_until(
        "the writer's replacement to answer",
        START_TIMEOUT,
        |last| {
            let Ok(response) = http_get(addr, "/get?key=greeting") else {
                return Ok(None);
            };
            let answer: serde_json::Value = serde_json::from_str(&response.text()).unwrap();
            *last = answer.to_string();
            Ok(Some(answer))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
    let replacement = answer["pid"].as_i64().unwrap();
    assert!(replacement != writer && replacement != held, "{answer}");
    assert_eq!(answer["value"], "hello", "{answer}");
    // And the worker that was held all along reads it too, once the replacement is held.
    std::fs::write(out.join("release-first"), b"").unwrap();
    first.join().unwrap();
    let (second_held, second) = hold(addr, &out, "second");
    if second_held == replacement {
        let answer = json(&kaiser, addr, "/get?key=greeting");
        assert_eq!(answer["pid"].as_i64(), Some(held), "{answer}");
        assert_eq!(answer["value"], "hello", "{answer}");
    }
    std::fs::write(out.join("release-second"), b"").unwrap();
    second.join().unwrap();
}

#[test]
fn items_expire_and_the_master_sweeps_them() {
    let dir = TempDir::new("cache-sweep");
    let stats = dir.join("stats.sock");
    let stats_text = stats.display().to_string();
    let (kaiser, addr) = start(&["--cache2", "name=c,items=10", "--stats", &stats_text]);
    assert_eq!(
        json(&kaiser, addr, "/set?key=k&value=v&expires=1")["stored"],
        true
    );
    assert_eq!(json(&kaiser, addr, "/set?key=kept&value=v")["stored"], true);
    // Nobody reads `k`: only the master's sweep can take it out of the count.
    wait_until(
        "the sweep to remove the expired item",
        Duration::from_secs(10),
        |last| {
            let mut text = String::new();
            wait_for_unix(&stats, START_TIMEOUT)
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            let document: serde_json::Value = serde_json::from_str(&text).unwrap();
            *last = document["caches"].to_string();
            Ok((document["caches"][0]["items"] == 1).then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
    assert!(json(&kaiser, addr, "/get?key=k")["value"].is_null());
    assert_eq!(json(&kaiser, addr, "/get?key=kept")["value"], "v");
}

#[test]
fn the_api_answers_as_uwsgi_does_and_stats_show_the_caches() {
    let dir = TempDir::new("cache-stats");
    let stats = dir.join("stats.sock");
    let stats_text = stats.display().to_string();
    let (kaiser, addr) = start(&[
        "--cache",
        "10",
        "--cache-blocksize",
        "1024",
        "--cache2",
        "name=second,items=5,keysize=16",
        "--stats",
        &stats_text,
    ]);
    let expected = serde_json::json!([
        true,
        null,
        "1",
        true,
        "3",
        true,
        null,
        true,
        true,
        "234",
        true,
        true,
        true,
        true,
        true,
        10,
        null,
        ["a", "n"],
        true,
        null,
        null,
        null,
        true,
        [],
        null
    ]);
    // The legacy `cache` is the default one; `cache2` caches are named.
    assert_eq!(json(&kaiser, addr, "/ops"), expected);
    assert_eq!(json(&kaiser, addr, "/ops?cache=second"), expected);
    let mut text = String::new();
    wait_for_unix(&stats, START_TIMEOUT)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    let caches = document["caches"].as_array().expect("a caches section");
    assert_eq!(caches.len(), 2, "{text}");
    assert_eq!(caches[0]["name"], "default");
    assert_eq!(caches[0]["max_items"], 10);
    assert_eq!(caches[0]["blocksize"], 1024);
    assert_eq!(caches[1]["name"], "second");
    assert_eq!(caches[1]["keysize"], 16);
    // `/ops` ends by clearing the cache; the `big` value never fit.
    assert_eq!(caches[1]["items"], 0, "{text}");
    assert!(caches[1]["hits"].as_u64().unwrap() >= 3, "{text}");
}

#[test]
fn items_outlive_a_graceful_reload() {
    let (kaiser, addr) = start(&["--cache2", "name=kept,items=10"]);
    assert_eq!(
        json(&kaiser, addr, "/set?key=greeting&value=hello")["stored"],
        true
    );
    let before = json(&kaiser, addr, "/get?key=greeting")["pid"].clone();
    let mark = kaiser.log_mark();
    kaiser.signal(libc::SIGHUP);
    kaiser
        .wait_for_log_since(mark, ": reloaded in", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    // A worker of the new generation reads what the old one wrote: the master handed the
    // cache's memory to its re-exec.
    let answer = wait_until("a new worker to answer", START_TIMEOUT, |last| {
        let answer = json(&kaiser, addr, "/get?key=greeting");
        *last = answer.to_string();
        Ok((answer["pid"] != before).then_some(answer))
    })
    .unwrap();
    assert_eq!(answer["value"], "hello", "{answer}\n{}", kaiser.logs());
}
