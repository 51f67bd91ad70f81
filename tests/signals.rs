//! uWSGI signals through the real `uwsgidecorators` (tests/apps/signals_app.py): `@timer`
//! fires every second in a worker, `@signal` reaches its target (all workers, worker 2),
//! `@postfork` runs in every worker, `@thread` runs, `@harakiri` ends a slow request, and
//! `@cron` registers.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

struct Instance {
    kaiser: Kaiser,
    addr: SocketAddr,
    out: TempDir,
}

fn start(args: &[&str]) -> Instance {
    let out = TempDir::new("signals");
    let venv = venv().display().to_string();
    let out_path = out.path().to_path_buf();
    let (kaiser, addr) = start_http_with(
        &[
            &[
                "--home",
                venv.as_str(),
                "--wsgi-file",
                "tests/apps/signals_app.py",
            ],
            args,
        ]
        .concat(),
        |command| {
            command.env("APP_OUT", &out_path);
        },
    );
    Instance { kaiser, addr, out }
}

/// `(pid, worker id, time)` of every `kind` event so far.
fn events(instance: &Instance, kind: &str) -> Vec<(i32, u32, f64)> {
    std::fs::read_to_string(instance.out.join("events.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(kind)).then(|| {
                let pid = words.next().unwrap().parse().unwrap();
                let worker = words.next().unwrap().parse().unwrap();
                let time = words.next().unwrap().parse().unwrap();
                (pid, worker, time)
            })
        })
        .collect()
}

fn wait_events(instance: &Instance, kind: &str, count: usize) -> Vec<(i32, u32, f64)> {
    wait_until(
        &format!("{count} `{kind}` events"),
        Duration::from_secs(20),
        |last| {
            let seen = events(instance, kind);
            *last = format!("{seen:?}");
            Ok((seen.len() >= count).then_some(seen))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", instance.kaiser.logs()))
}

#[test]
fn a_timer_fires_every_second_in_the_workers() {
    let instance = start(&["--processes", "2"]);
    let ticks = wait_events(&instance, "tick", 4);
    for (pid, worker, _) in &ticks {
        assert!(
            (1..=2).contains(worker) && *pid != instance.kaiser.pid(),
            "a tick ran outside the workers: {ticks:?}"
        );
    }
    // One tick per second. Each handler runs up to a poll interval (and a busy machine's
    // delay) after its tick, so compare the span of the four rather than each gap.
    let mut times: Vec<f64> = ticks.iter().take(4).map(|t| t.2).collect();
    times.sort_by(f64::total_cmp);
    let span = times[3] - times[0];
    assert!(span > 2.0, "4 ticks within {span:.3} s: {ticks:?}");
}

#[test]
fn signals_reach_their_targets() {
    let instance = start(&["--processes", "2"]);
    let response = http_get(instance.addr, "/registered").unwrap();
    assert_eq!(response.text(), "[true, true, true, true, true, false]");
    http_get(instance.addr, "/raise?n=42").unwrap();
    let broadcasts = wait_events(&instance, "broadcast", 2);
    let mut workers: Vec<u32> = broadcasts.iter().map(|e| e.1).collect();
    workers.sort();
    assert_eq!(workers, vec![1, 2], "{broadcasts:?}");
    http_get(instance.addr, "/raise?n=43").unwrap();
    let second = wait_events(&instance, "second", 1);
    assert_eq!(second[0].1, 2, "{second:?}");
}

#[test]
fn postfork_thread_and_harakiri_decorators() {
    let instance = start(&["--processes", "2"]);
    let forks = wait_events(&instance, "postfork", 2);
    let mut workers: Vec<u32> = forks.iter().map(|e| e.1).collect();
    workers.sort();
    assert_eq!(workers, vec![1, 2], "{forks:?}");
    http_get(instance.addr, "/thread?name=bg").unwrap();
    wait_events(&instance, "thread", 1);
    let response = http_get(instance.addr, "/slow").unwrap();
    assert_eq!(
        response.status,
        504,
        "{response}\n{}",
        instance.kaiser.logs()
    );
}

#[test]
fn option_timers_and_command_crons_run_from_the_master() {
    let out = TempDir::new("crons");
    let marker = out.join("cron-ran");
    let cron = format!("-1 -1 -1 -1 -1 touch {}", marker.display());
    let instance = start(&[
        "--timer",
        "7 1",
        "--cron",
        &cron,
        "--cron2",
        "minute=-1,harakiri=1 sleep 60",
    ]);
    let ticks = wait_events(&instance, "optiontimer", 2);
    assert!(ticks.iter().all(|t| t.1 == 1), "{ticks:?}");
    // Every cron matches this minute: both start at once.
    wait_until("the cron command to run", Duration::from_secs(20), |_| {
        Ok(marker.exists().then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", instance.kaiser.logs()));
    instance
        .kaiser
        .wait_for_log(
            "cron harakiri: killing the command",
            Duration::from_secs(20),
        )
        .unwrap();
    instance
        .kaiser
        .wait_for_log("killed by SIGKILL", Duration::from_secs(20))
        .unwrap();
}

#[test]
fn a_file_monitor_raises_its_signal_when_the_file_changes() {
    let instance = start(&[]);
    let watched = instance.out.join("watched");
    // A timer tick comes from the master's loop, which by then has looked at the path once.
    wait_events(&instance, "tick", 1);
    // Created, then written: each change raises the signal once the master has seen it.
    std::fs::write(&watched, b"one").unwrap();
    wait_events(&instance, "filemon", 1);
    std::fs::write(&watched, b"two, longer").unwrap();
    wait_events(&instance, "filemon", 2);
}

#[test]
fn local_rpc_and_setprocname() {
    let instance = start(&[]);
    let response = http_get(instance.addr, "/rpc").unwrap();
    assert_eq!(
        response.text(),
        r#"["hello rpc", "hello call", ["hello"], "kaiser-renamed"]"#,
        "{}",
        instance.kaiser.logs()
    );
}

#[test]
fn outside_kaiser_import_uwsgi_still_fails() {
    // Installing uwsgidecorators (tests/requirements.txt) must not make `import uwsgi` work
    // outside kaiser: apps fall back on that ImportError.
    let output = std::process::Command::new(venv_python())
        .args(["-c", "import uwsgidecorators"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ModuleNotFoundError: No module named 'uwsgi'"),
        "{stderr}"
    );
}

#[test]
fn signal_wait_returns_once_the_signal_arrives() {
    let instance = start(&["--threads", "2"]);
    let addr = instance.addr;
    let waiter = std::thread::spawn(move || http_get(addr, "/wait").unwrap().text());
    wait_until("the request to wait", START_TIMEOUT, |_| {
        Ok(instance.out.join("waiting").exists().then_some(()))
    })
    .unwrap();
    http_get(addr, "/raise?n=44").unwrap();
    assert_eq!(waiter.join().unwrap(), "44");
    // Its handler ran once, on the waiting thread.
    assert_eq!(events(&instance, "awaited").len(), 1);
}

/// How many times `pid` has gone to sleep (`voluntary_ctxt_switches`): each turn of the
/// master's loop waits in poll once. None once it is gone.
fn wakeups(pid: i32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))?
        .trim()
        .parse()
        .ok()
}

#[test]
fn a_timer_does_not_spin_the_master_while_it_stops() {
    // Regression: during a graceful stop timers are not fired, and their past deadline made
    // the master's loop wake every millisecond until the last request ended.
    let mut instance = start(&[]);
    let master = instance.kaiser.pid();
    let addr = instance.addr;
    let request = std::thread::spawn(move || http_get(addr, "/sleep?s=3"));
    wait_until("the request to start", START_TIMEOUT, |_| {
        Ok(instance.out.join("sleeping").exists().then_some(()))
    })
    .unwrap();
    let before = wakeups(master).unwrap();
    instance.kaiser.signal(libc::SIGTERM);
    let mut last = before;
    wait_until("the vassal to stop", Duration::from_secs(30), |_| {
        if let Some(now) = wakeups(master) {
            last = now;
        }
        Ok(instance.kaiser.try_exit())
    })
    .unwrap();
    let _ = request.join();
    // A loop waking once a second (or on a signal) sleeps a few dozen times in 3 s; one
    // that spins sleeps thousands of times.
    assert!(
        last - before < 300,
        "the master woke {} times during a 3 s stop",
        last - before
    );
}

#[test]
fn accepting_marks_the_worker_in_the_stats() {
    let dir = TempDir::new("accepting");
    let stats = dir.join("stats.sock");
    let stats_text = stats.display().to_string();
    let instance = start(&["--stats", &stats_text]);
    let accepting = || {
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut wait_for_unix(&stats, START_TIMEOUT).unwrap(),
            &mut text,
        )
        .unwrap();
        let document: serde_json::Value = serde_json::from_str(&text).unwrap();
        document["workers"][0]["accepting"].clone()
    };
    assert_eq!(accepting(), 1);
    http_get(instance.addr, "/accepting?v=0").unwrap();
    assert_eq!(accepting(), 0);
    http_get(instance.addr, "/accepting?v=1").unwrap();
    assert_eq!(accepting(), 1);
}
