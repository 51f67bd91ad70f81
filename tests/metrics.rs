//! Prometheus metrics: `/metrics` on a `stats-http` server and on `stats-prometheus` is
//! accepted by prometheus_client's own text parser, and its figures agree with the stats
//! JSON read at the same moment (requests, exceptions, spawns, harakiri, listen queue), with
//! responses by status class and a duration histogram that count every request.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

/// Parses `text` with prometheus_client (tests/apps/parse_metrics.py); panics if it refuses.
fn parse(text: &str) -> Value {
    let mut child = Command::new(venv_python())
        .arg(app("parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the test venv's python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write the metrics to the parser");
    let output = child.wait_with_output().expect("parser output");
    assert!(
        output.status.success(),
        "prometheus_client refused the metrics: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the parser prints JSON")
}

/// The value of the sample `name` whose labels include every pair in `labels`.
fn value(parsed: &Value, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = parsed["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k] == *v))
        .map(|s| s[2].as_f64().unwrap_or(f64::INFINITY))
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0]
}

fn get(addr: SocketAddr, target: &str) -> (String, String) {
    let response = http_get(addr, target).unwrap();
    assert_eq!(response.status, 200, "{response}");
    (
        response.header("Content-Type").unwrap_or("").to_string(),
        response.text(),
    )
}

#[test]
fn metrics_parse_and_agree_with_the_stats_json() {
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--processes",
        "2",
        "--threads",
        "2",
        "--stats",
        "127.0.0.1:0",
        "--stats-http",
        "--stats-prometheus",
        "127.0.0.1:0",
    ]);
    let stats_addr = kaiser
        .wait_for_addr("stats server listening", START_TIMEOUT)
        .unwrap();
    let prometheus_addr = kaiser
        .wait_for_addr("Prometheus metrics listening", START_TIMEOUT)
        .unwrap();
    let routes = [
        ("/status?code=200", 200),
        ("/status?code=200", 200),
        ("/status?code=204", 204),
        ("/status?code=302", 302),
        ("/status?code=404", 404),
        ("/status?code=404", 404),
        ("/error", 500),
        ("/sleep?ms=40", 200),
    ];
    for (target, status) in routes {
        assert_eq!(http_get(addr, target).unwrap().status, status, "{target}");
    }
    let total = routes.len() as u64;
    // Counted right after each response is sent: wait for the last one.
    let json = wait_until(
        "the stats JSON to count every request",
        START_TIMEOUT,
        |last| {
            let (_, text) = get(stats_addr, "/");
            let json: Value = serde_json::from_str(&text).unwrap();
            let requests: u64 = json["workers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["requests"].as_u64().unwrap())
                .sum();
            *last = text;
            Ok((requests == total).then_some(json))
        },
    )
    .unwrap();
    let (content_type, text) = get(stats_addr, "/metrics");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let (_, text_dedicated) = get(prometheus_addr, "/metrics");
    let parsed = parse(&text);
    let dedicated = parse(&text_dedicated);
    assert_eq!(
        parsed["families"], dedicated["families"],
        "{text_dedicated}"
    );
    assert_eq!(
        parsed["families"]["kaiser_request_duration_seconds"], "histogram",
        "{text}"
    );
    assert_eq!(
        parsed["families"]["kaiser_worker_requests"], "counter",
        "{text}"
    );

    let mut classes = std::collections::HashMap::new();
    let mut slow = 0.0;
    for worker in json["workers"].as_array().unwrap() {
        let id = worker["id"].to_string();
        let labels = [("worker", id.as_str())];
        for (metric, key) in [
            ("kaiser_worker_requests_total", "requests"),
            ("kaiser_worker_exceptions_total", "exceptions"),
            ("kaiser_worker_harakiri_total", "harakiri_count"),
            ("kaiser_worker_spawns_total", "respawn_count"),
            ("kaiser_worker_transmitted_bytes_total", "tx"),
        ] {
            assert_eq!(
                value(&parsed, metric, &labels),
                worker[key].as_u64().unwrap() as f64,
                "{metric} vs {key} of worker {id}: {worker}\n{text}"
            );
        }
        assert!(
            value(&parsed, "kaiser_worker_rss_bytes", &labels) > 0.0,
            "{text}"
        );
        assert_eq!(value(&parsed, "kaiser_worker_busy", &labels), 0.0, "{text}");
        let count = value(&parsed, "kaiser_request_duration_seconds_count", &labels);
        assert_eq!(count, worker["requests"].as_u64().unwrap() as f64, "{text}");
        assert_eq!(
            value(
                &parsed,
                "kaiser_request_duration_seconds_bucket",
                &[("worker", &id), ("le", "+Inf")]
            ),
            count,
            "{text}"
        );
        slow += count
            - value(
                &parsed,
                "kaiser_request_duration_seconds_bucket",
                &[("worker", &id), ("le", "0.025")],
            );
        for class in ["1xx", "2xx", "3xx", "4xx", "5xx", "other"] {
            *classes.entry(class).or_insert(0.0) += value(
                &parsed,
                "kaiser_responses_total",
                &[("worker", &id), ("code", class)],
            );
        }
    }
    assert!(
        slow >= 1.0,
        "the 40 ms request is above the 25 ms bucket\n{text}"
    );
    assert_eq!(classes["2xx"], 4.0, "{classes:?}\n{text}");
    assert_eq!(classes["3xx"], 1.0, "{classes:?}");
    assert_eq!(classes["4xx"], 2.0, "{classes:?}");
    assert_eq!(classes["5xx"], 1.0, "{classes:?}");
    assert_eq!(classes["1xx"] + classes["other"], 0.0, "{classes:?}");
    assert_eq!(value(&parsed, "kaiser_workers", &[("state", "idle")]), 2.0);
    let socket = json["sockets"][0]["name"].as_str().unwrap();
    assert_eq!(
        value(&parsed, "kaiser_listen_queue", &[("socket", socket)]),
        json["sockets"][0]["queue"].as_u64().unwrap() as f64
    );
    assert_eq!(
        value(&parsed, "kaiser_listen_queue_max", &[("socket", socket)]),
        json["sockets"][0]["max_queue"].as_u64().unwrap() as f64
    );
    assert!(value(&parsed, "kaiser_uptime_seconds", &[]) > 0.0);
    // The plain JSON path is unchanged by /metrics.
    let (content_type, _) = get(stats_addr, "/");
    assert_eq!(content_type, "application/json");
}

#[test]
fn busy_threads_show_while_a_request_runs() {
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/wsgi_suite.py",
        "--threads",
        "2",
        "--stats-prometheus",
        "127.0.0.1:0",
    ]);
    let prometheus_addr = kaiser
        .wait_for_addr("Prometheus metrics listening", START_TIMEOUT)
        .unwrap();
    let stream = in_flight(addr, 3000);
    let (_, text) = get(prometheus_addr, "/anything");
    let parsed = parse(&text);
    assert_eq!(
        value(&parsed, "kaiser_worker_busy_threads", &[("worker", "1")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&parsed, "kaiser_workers", &[("state", "busy")]),
        1.0,
        "{text}"
    );
    drop(stream);
}

/// The emperor's `/metrics`: vassals by state and throttled vassals agree with its stats JSON.
#[test]
fn emperor_metrics_show_vassals_by_state_and_the_throttled_one() {
    let dir = TempDir::new("e-metrics");
    let vassals = dir.join("vassals");
    std::fs::create_dir(&vassals).unwrap();
    let ini = |socket: &str, app_file: &str| {
        format!(
            "[uwsgi]\nhttp-socket = {}\nwsgi-file = {}\n",
            dir.join(socket).display(),
            app(app_file).display()
        )
    };
    std::fs::write(vassals.join("good.ini"), ini("good.sock", "hello.py")).unwrap();
    std::fs::write(vassals.join("bad.ini"), ini("bad.sock", "broken_import.py")).unwrap();
    let kaiser = Kaiser::spawn_with(
        &[
            "--emperor",
            vassals.to_str().unwrap(),
            // The bad vassal waits 30 s before its retry: its figures hold still meanwhile.
            "--emperor-throttle",
            "30000",
            "--emperor-stats",
            "127.0.0.1:0",
            "--emperor-stats-prometheus",
            "127.0.0.1:0",
        ],
        |command| {
            command
                .env_remove("NOTIFY_SOCKET")
                .env_remove("JOURNAL_STREAM")
                .env_remove("WATCHDOG_USEC");
        },
    );
    let stats_addr = kaiser
        .wait_for_addr("serving emperor stats", START_TIMEOUT)
        .unwrap();
    let metrics_addr = kaiser
        .wait_for_addr("serving emperor Prometheus metrics", START_TIMEOUT)
        .unwrap();
    kaiser
        .wait_for_log("vassal=bad", START_TIMEOUT)
        .and_then(|_| kaiser.wait_for_log("throttling", START_TIMEOUT))
        .unwrap();
    let (json, text) = wait_until(
        "the good vassal ready, the bad one throttled",
        START_TIMEOUT,
        |last| {
            let mut body = String::new();
            std::net::TcpStream::connect(stats_addr)
                .and_then(|mut stream| std::io::Read::read_to_string(&mut stream, &mut body))
                .map_err(|e| e.to_string())?;
            let json: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            let (content_type, text) = get(metrics_addr, "/metrics");
            assert!(
                content_type.starts_with("text/plain; version=0.0.4"),
                "{content_type}"
            );
            *last = body;
            let states: Vec<&str> = json["vassals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["state"].as_str().unwrap())
                .collect();
            let settled = states.contains(&"ready") && states.contains(&"throttled");
            Ok(settled.then_some((json, text)))
        },
    )
    .unwrap();
    let parsed = parse(&text);
    for state in [
        "starting",
        "ready",
        "reloading",
        "stopping",
        "failed",
        "throttled",
    ] {
        let in_json = json["vassals"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["state"] == state)
            .count();
        assert_eq!(
            value(&parsed, "kaiser_emperor_vassals", &[("state", state)]),
            in_json as f64,
            "{state}\n{text}"
        );
    }
    assert_eq!(
        value(&parsed, "kaiser_emperor_throttled_vassals", &[]),
        json["blacklist"].as_array().unwrap().len() as f64,
        "{json}\n{text}"
    );
    assert_eq!(value(&parsed, "kaiser_emperor_throttled_vassals", &[]), 1.0);
    for vassal in json["vassals"].as_array().unwrap() {
        let id = vassal["id"].as_str().unwrap();
        let labels = [("vassal", id)];
        assert_eq!(
            value(&parsed, "kaiser_emperor_vassal_restarts_total", &labels),
            vassal["respawns"].as_u64().unwrap() as f64,
            "{vassal}\n{text}"
        );
        assert_eq!(
            value(&parsed, "kaiser_emperor_vassal_ready", &labels),
            vassal["ready"].as_u64().unwrap() as f64
        );
        assert_eq!(
            value(
                &parsed,
                "kaiser_emperor_vassal_state",
                &[("vassal", id), ("state", vassal["state"].as_str().unwrap())]
            ),
            1.0
        );
    }
    assert!(
        value(
            &parsed,
            "kaiser_emperor_vassal_failures",
            &[("vassal", "bad.ini")]
        ) >= 1.0
    );
}

/// `max-requests` recycles show by reason, and the replacement in the spawn counter.
#[test]
fn recycles_are_counted_by_reason() {
    let (kaiser, addr) = start_http(&[
        "--wsgi-file",
        "tests/apps/hello.py",
        "--max-requests",
        "3",
        "--min-worker-lifetime",
        "0",
        "--stats-prometheus",
        "127.0.0.1:0",
    ]);
    let prometheus_addr = kaiser
        .wait_for_addr("Prometheus metrics listening", START_TIMEOUT)
        .unwrap();
    for _ in 0..3 {
        assert_eq!(http_get(addr, "/").unwrap().status, 200);
    }
    let parsed = wait_until("the recycle to be counted", START_TIMEOUT, |last| {
        let (_, text) = get(prometheus_addr, "/metrics");
        let parsed = parse(&text);
        *last = text;
        let recycled = value(
            &parsed,
            "kaiser_worker_recycles_total",
            &[("reason", "max-requests")],
        );
        let spawns = value(&parsed, "kaiser_worker_spawns_total", &[("worker", "1")]);
        Ok((recycled == 1.0 && spawns == 2.0).then_some(parsed))
    })
    .unwrap();
    assert_eq!(
        value(
            &parsed,
            "kaiser_worker_recycles_total",
            &[("reason", "chain-reload")]
        ),
        0.0
    );
    assert_eq!(
        value(&parsed, "kaiser_worker_requests_total", &[("worker", "1")]),
        3.0
    );
}
