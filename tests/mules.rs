//! Mules (tests/apps/mules_app.py, tests/apps/mule_script.py) with the real
//! `uwsgidecorators`: `@mulefunc` runs in a mule (any, or mule 2), a signal reaches every
//! mule, a farm's message reaches its mule's script, a killed mule is respawned and keeps
//! working, and mules stop with the vassal.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

struct Instance {
    kaiser: Kaiser,
    addr: SocketAddr,
    out: TempDir,
}

fn start() -> Instance {
    start_with(&[])
}

fn start_with(extra: &[&str]) -> Instance {
    let out = TempDir::new("mules");
    let venv = venv().display().to_string();
    let out_path = out.path().to_path_buf();
    let script = app("mule_script.py").display().to_string();
    let (kaiser, addr) = start_http_with(
        &[
            "--home",
            &venv,
            "--wsgi-file",
            "tests/apps/mules_app.py",
            "--mules",
            "2",
            "--mule",
            &script,
            "--farm",
            "scripted:3",
        ]
        .iter()
        .copied()
        .chain(extra.iter().copied())
        .collect::<Vec<_>>(),
        |command| {
            command.env("APP_OUT", &out_path);
        },
    );
    Instance { kaiser, addr, out }
}

/// `(pid, mule id, arg)` of every `kind` event.
fn events(instance: &Instance, kind: &str) -> Vec<(i32, u32, String)> {
    std::fs::read_to_string(instance.out.join("events.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(kind)).then(|| {
                (
                    words.next().unwrap().parse().unwrap(),
                    words.next().unwrap().parse().unwrap(),
                    words.next().unwrap_or("").to_string(),
                )
            })
        })
        .collect()
}

fn wait_events(instance: &Instance, kind: &str, count: usize) -> Vec<(i32, u32, String)> {
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

fn get(instance: &Instance, target: &str) -> String {
    let response = http_get(instance.addr, target).unwrap();
    assert_eq!(
        response.status,
        200,
        "{response}\n{}",
        instance.kaiser.logs()
    );
    response.text()
}

#[test]
fn mulefuncs_signals_and_farms_reach_the_mules() {
    let instance = start();
    assert_eq!(get(&instance, "/mule_id"), "0", "a worker is no mule");
    get(&instance, "/anywhere?first");
    let anywhere = wait_events(&instance, "anywhere", 1);
    assert!((1..=3).contains(&anywhere[0].1), "{anywhere:?}");
    for round in 0..3 {
        get(&instance, &format!("/two?r{round}"));
    }
    let two = wait_events(&instance, "two", 3);
    assert!(two.iter().all(|e| e.1 == 2), "{two:?}");
    get(&instance, "/signal");
    let signals = wait_events(&instance, "signal", 3);
    let mut mules: Vec<u32> = signals.iter().map(|e| e.1).collect();
    mules.sort();
    assert_eq!(mules, vec![1, 2, 3], "{signals:?}");
    assert_eq!(get(&instance, "/farm?hello-farm"), "True");
    let script = wait_events(&instance, "script", 1);
    assert_eq!((script[0].1, script[0].2.as_str()), (3, "hello-farm"));
}

#[test]
fn a_killed_mule_is_respawned_and_mules_stop_with_the_vassal() {
    let mut instance = start();
    get(&instance, "/two?before");
    let before = wait_events(&instance, "two", 1);
    let old = before[0].0;
    let comm = std::fs::read_to_string(format!("/proc/{old}/comm")).unwrap();
    assert_eq!(comm.trim(), "kaiser mule 2", "how `ps` names a mule");
    // SAFETY: kill(2) on the mule's pid, which it logged itself.
    assert_eq!(unsafe { libc::kill(old, libc::SIGKILL) }, 0);
    instance
        .kaiser
        .wait_for_log("respawned mule", START_TIMEOUT)
        .unwrap();
    get(&instance, "/two?after");
    let after = wait_events(&instance, "two", 2);
    assert_ne!(after[1].0, old, "{after:?}");
    assert_eq!(after[1].2, "after");
    let mule = after[1].0;
    instance.kaiser.signal(libc::SIGTERM);
    assert!(instance.kaiser.wait_exit(START_TIMEOUT).is_some());
    // SAFETY: signal 0 only checks that the process exists.
    assert_ne!(
        unsafe { libc::kill(mule, 0) },
        0,
        "the mule outlived its vassal"
    );
}

#[test]
fn mule_harakiri_kills_a_mule_stuck_on_a_message() {
    let instance = start_with(&["--mule-harakiri", "1"]);
    get(&instance, "/stuck?first");
    let stuck = wait_events(&instance, "stuck", 1);
    assert_eq!(stuck[0].1, 1);
    instance
        .kaiser
        .wait_for_log("mule-harakiri", Duration::from_secs(20))
        .unwrap();
    instance
        .kaiser
        .wait_for_log("respawned mule", Duration::from_secs(20))
        .unwrap();
    // The respawned mule 1 handles messages again.
    get(&instance, "/stuck?second");
    let stuck = wait_events(&instance, "stuck", 2);
    assert_ne!(stuck[1].0, stuck[0].0, "{stuck:?}");
}
