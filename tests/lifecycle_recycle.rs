//! Worker recycling: `max-requests` (with delta and jitter), `max-worker-lifetime`,
//! `reload-on-rss` and `evil-reload-on-rss`. A recycled worker is replaced before it
//! leaves and only one is replaced at a time, so a client hammering the vassal sees no
//! failure.

mod common;
mod lifecycle_support;

use common::*;
use lifecycle_support::*;

/// Log events of replacements, in order: (worker id, true for "started", false for "done").
fn replacement_events(logs: &str) -> Vec<(u32, bool)> {
    let id_after = |line: &str, prefix: &str| -> Option<u32> {
        let rest = &line[line.find(prefix)? + prefix.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    logs.lines()
        .filter_map(|line| {
            if let Some(id) = id_after(line, "recycling worker ") {
                Some((id, true))
            } else {
                let id = id_after(line, "INFO vassal{name=kaiser}: worker ")?;
                line.contains(" replaced: ").then_some((id, false))
            }
        })
        .collect()
}

#[test]
fn max_requests_with_four_workers_recycles_one_at_a_time_and_drops_nothing() {
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--processes",
        "4",
        "--max-requests",
        "10",
        "--max-requests-delta",
        "5",
        "--max-requests-jitter",
        "3",
        "--min-worker-lifetime",
        "0",
    ]);
    let hammer = Hammer::start(addr, 4);
    wait_for_count(&kaiser, 0, "replaced worker exited", 8);
    hammer.finish(&kaiser, "max-requests recycling");

    let logs = kaiser.logs();
    let events = replacement_events(&logs);
    let starts = events.iter().filter(|(_, started)| *started).count();
    assert!(
        starts >= 8,
        "expected 8 recycles in the logs, found {starts}:\n{logs}"
    );
    let mut in_progress = None;
    for (id, started) in events {
        if started {
            assert_eq!(
                in_progress, None,
                "worker {id} started recycling while worker {in_progress:?} was still being replaced:\n{logs}"
            );
            in_progress = Some(id);
        } else if in_progress == Some(id) {
            in_progress = None;
        }
    }
    // Each worker's limit is max-requests + (id - 1) × delta + a jitter of 0..=3, and the log
    // line names it.
    let recycled: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("max-requests reached ("))
        .collect();
    assert!(recycled.len() >= 8, "{logs}");
    for line in recycled {
        let id: u32 = line
            .split("recycling worker ")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no worker id in {line:?}"));
        let limit: u64 = line
            .split("limit ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|limit| limit.parse().ok())
            .unwrap_or_else(|| panic!("no limit in {line:?}"));
        let base = 10 + u64::from(id - 1) * 5;
        assert!(
            (base..=base + 3).contains(&limit),
            "worker {id} recycled at limit {limit}, expected {base}..={}: {line}",
            base + 3
        );
    }
}

#[test]
fn max_worker_lifetime_recycles_each_worker_after_its_own_lifetime() {
    let (kaiser, addr) = start(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--processes",
        "2",
        "--max-worker-lifetime",
        "1",
        "--max-worker-lifetime-delta",
        "1",
    ]);
    let hammer = Hammer::start(addr, 2);
    kaiser
        .wait_for_log(
            "recycling worker 2: max-worker-lifetime reached (ran 2 s, limit 2 s)",
            START_TIMEOUT,
        )
        .unwrap();
    wait_for_count(&kaiser, 0, "worker 2 replaced", 1);
    hammer.wait_for_more(10);
    hammer.finish(&kaiser, "max-worker-lifetime recycling");
    let logs = kaiser.logs();
    assert!(
        logs.contains("recycling worker 1: max-worker-lifetime reached (ran 1 s, limit 1 s)"),
        "worker 1 was not recycled after 1 s:\n{logs}"
    );
}

/// Keeps 64 MB per `/grow` request alive, so the worker's resident memory grows.
const GROWING_APP: &str = r#"
hog = []

def application(environ, start_response):
    if environ["PATH_INFO"] == "/grow":
        hog.append(b"x" * (64 * 1024 * 1024))
    body = b"Hello World"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"#;

#[test]
fn reload_on_rss_recycles_gracefully_and_evil_reload_on_rss_kills() {
    let dir = TempDir::new("rss");
    let app_path = dir.write("grow.py", GROWING_APP);
    let app_text = app_path.display().to_string();

    let (kaiser, addr) = start(&[
        "--wsgi-file",
        &app_text,
        "--reload-on-rss",
        "48",
        "--min-worker-lifetime",
        "0",
    ]);
    let hammer = Hammer::start(addr, 2);
    assert_eq!(http_get(addr, "/grow").unwrap().status, 200);
    let line = kaiser
        .wait_for_log("recycling worker 1: reload-on-rss: ", START_TIMEOUT)
        .unwrap();
    assert!(line.contains("limit 48.0 MB"), "{line}");
    wait_for_count(&kaiser, 0, "replaced worker exited", 1);
    hammer.wait_for_more(10);
    hammer.finish(&kaiser, "reload-on-rss recycling");

    let (kaiser, addr) = start(&[
        "--wsgi-file",
        &app_text,
        "--evil-reload-on-rss",
        "48",
        "--stats-prometheus",
        "127.0.0.1:0",
    ]);
    let metrics = kaiser
        .wait_for_addr("Prometheus metrics listening", START_TIMEOUT)
        .unwrap();
    let _ = http_get(addr, "/grow");
    let line = kaiser
        .wait_for_log("evil-reload-on-rss: ", START_TIMEOUT)
        .unwrap();
    assert!(line.contains("limit 48.0 MB; killing worker 1"), "{line}");
    kaiser
        .wait_for_log("respawned worker", START_TIMEOUT)
        .unwrap();
    assert_eq!(http_get(addr, "/").unwrap().text(), "Hello World");
    // The kill is counted as what it is (a config check timing out is not).
    let text = http_get(metrics, "/metrics").unwrap().text();
    assert!(
        text.contains("kaiser_worker_recycles_total{reason=\"evil-memory\"} 1\n"),
        "{text}"
    );
}
