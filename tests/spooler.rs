//! The spooler, driven through the real `uwsgidecorators` from PyPI (tests/apps/spooler_app.py):
//! a task runs exactly once per call, even when its spooler is SIGKILLed mid-task; a new task
//! wakes the spooler at once; uWSGI's spool files (a queue left by uWSGI) run; priorities,
//! `at`, `SPOOL_RETRY`, `pass_arguments`; `spooler-import` under `lazy-apps` (seed 002); the
//! spoolers stop with the vassal.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const TASK_TIMEOUT: Duration = Duration::from_secs(30);

struct Instance {
    kaiser: Kaiser,
    addr: SocketAddr,
    out: TempDir,
    spool: PathBuf,
}

/// Starts the spooler app with its spool directory and output directory in a temp dir.
/// `spooler-frequency` is an hour unless `args` says otherwise: a task that runs at all ran
/// because something woke the spooler.
fn start(app: &str, args: &[&str]) -> Instance {
    let out = TempDir::new("spooler");
    let spool = out.join("queue");
    let venv = venv().display().to_string();
    let spool_text = spool.display().to_string();
    let mut full = vec![
        "--home",
        venv.as_str(),
        "--wsgi-file",
        app,
        "--spooler",
        spool_text.as_str(),
    ];
    if !args.contains(&"--spooler-frequency") {
        full.extend(["--spooler-frequency", "3600"]);
    }
    full.extend_from_slice(args);
    let out_path = out.path().to_path_buf();
    let (kaiser, addr) = start_http_with(&full, |command| {
        command.env("APP_OUT", &out_path);
    });
    kaiser
        .wait_for_log("spooler ready", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("the spooler did not start: {e}"));
    Instance {
        kaiser,
        addr,
        out,
        spool,
    }
}

impl Instance {
    fn get(&self, target: &str) -> String {
        let response = http_get(self.addr, target).unwrap();
        assert_eq!(
            response.status,
            200,
            "GET {target}: {response}\n{}",
            self.kaiser.logs()
        );
        response.text()
    }

    fn runs(&self) -> String {
        std::fs::read_to_string(self.out.join("runs.log")).unwrap_or_default()
    }

    /// How many `KIND NAME …` lines runs.log has per name.
    fn counts(&self, kind: &str) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for line in self.runs().lines() {
            let mut words = line.split_whitespace();
            if words.next() == Some(kind) {
                if let Some(name) = words.next() {
                    *counts.entry(name.to_string()).or_insert(0) += 1;
                }
            }
        }
        counts
    }

    fn wait_done(&self, names: &[&str]) {
        wait_until("the tasks to finish", TASK_TIMEOUT, |last| {
            let done = self.counts("done");
            *last = self.runs();
            Ok(names.iter().all(|n| done.contains_key(*n)).then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", self.kaiser.logs()));
    }

    /// Task files left anywhere under the spool directory.
    fn task_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, found);
                } else if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("uwsgi_spoolfile_on_")
                {
                    found.push(path);
                }
            }
        }
        let mut found = Vec::new();
        walk(&self.spool, &mut found);
        found
    }

    fn wait_queue_empty(&self) {
        wait_until("the spool directory to empty", TASK_TIMEOUT, |last| {
            let files = self.task_files();
            *last = format!("{files:?}");
            Ok(files.is_empty().then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", self.kaiser.logs()));
    }

    fn started_marker(&self, name: &str, not_pid: Option<i32>) -> i32 {
        wait_until("the blocking task to start", TASK_TIMEOUT, |last| {
            for entry in std::fs::read_dir(self.out.path()).unwrap().flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                if let Some(pid) = file.strip_prefix(&format!("started-{name}-")) {
                    let pid: i32 = pid.parse().unwrap();
                    if Some(pid) != not_pid {
                        return Ok(Some(pid));
                    }
                }
            }
            *last = self.runs();
            Ok(None)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", self.kaiser.logs()))
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn every_spooled_task_runs_exactly_once_and_at_once() {
    let stats_dir = TempDir::new("spooler-stats");
    let stats_path = stats_dir.join("stats.sock");
    let stats_text = stats_path.display().to_string();
    let instance = start(
        "tests/apps/spooler_app.py",
        &[
            "--processes",
            "2",
            "--spooler-processes",
            "2",
            "--stats",
            &stats_text,
        ],
    );
    let names: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    for name in &names {
        let path = instance.get(&format!("/spool?name={name}"));
        assert!(
            path.contains("/queue/uwsgi_spoolfile_on_"),
            "spool() returned {path}"
        );
    }
    let borrowed: Vec<&str> = names.iter().map(String::as_str).collect();
    // With `spooler-frequency = 3600`, only the writer's wake-up can run them in time.
    instance.wait_done(&borrowed);
    instance.wait_queue_empty();
    let starts = instance.counts("start");
    let dones = instance.counts("done");
    for name in &names {
        assert_eq!(
            (starts.get(name), dones.get(name)),
            (Some(&1), Some(&1)),
            "task {name} ran a wrong number of times:\n{}",
            instance.runs()
        );
    }
    let info: serde_json::Value = serde_json::from_str(&instance.get("/spooler")).unwrap();
    assert_eq!(info["jobs"], serde_json::json!([]), "{info}");
    assert_eq!(info["i_am_the_spooler"], serde_json::Value::Null, "{info}");
    let pids = info["pids"].as_array().unwrap();
    assert_eq!(pids.len(), 2, "{info}");
    assert_eq!(info["pid"], pids[0], "{info}");
    // The stats document lists both spoolers, with the tasks they ran.
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut wait_for_unix(&stats_path, START_TIMEOUT).unwrap(),
        &mut text,
    )
    .unwrap();
    let stats: serde_json::Value = serde_json::from_str(&text).unwrap();
    let spoolers = stats["spoolers"].as_array().expect("a spoolers section");
    assert_eq!(spoolers.len(), 2, "{text}");
    let tasks: u64 = spoolers.iter().map(|s| s["tasks"].as_u64().unwrap()).sum();
    assert_eq!(tasks, 20, "{text}");
    assert_eq!(spoolers[0]["pid"], pids[0], "{text}");
    assert!(
        info["spoolers"][0].as_str().unwrap().ends_with("/queue"),
        "{info}"
    );
}

#[test]
fn a_spooler_killed_mid_task_runs_it_again_once_respawned() {
    let instance = start("tests/apps/spooler_app.py", &[]);
    instance.get("/spool?name=slow&block=1");
    let first = instance.started_marker("slow", None);
    assert_eq!(instance.task_files().len(), 1);
    // SAFETY: kill(2) on the spooler's pid, read from the marker its task wrote.
    assert_eq!(unsafe { libc::kill(first, libc::SIGKILL) }, 0);
    // The respawned spooler finds the task still there (its lock died with the first one).
    let second = instance.started_marker("slow", Some(first));
    assert_ne!(first, second);
    instance
        .kaiser
        .wait_for_log("the spooler is no more", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(instance.out.join("release-slow"), b"").unwrap();
    instance.wait_done(&["slow"]);
    instance.wait_queue_empty();
    assert_eq!(
        instance.counts("done").get("slow"),
        Some(&1),
        "{}",
        instance.runs()
    );
    assert_eq!(
        instance.counts("start").get("slow"),
        Some(&2),
        "{}",
        instance.runs()
    );
}

#[test]
fn two_spoolers_on_one_directory_never_share_a_task() {
    let instance = start("tests/apps/spooler_app.py", &["--spooler-processes", "2"]);
    // One spooler is held by a blocking task; the other must run the next task meanwhile,
    // and neither may start the blocking one a second time.
    instance.get("/spool?name=hold&block=1");
    let holder = instance.started_marker("hold", None);
    instance.get("/spool?name=other");
    instance.wait_done(&["other"]);
    let done = instance.runs();
    assert!(
        !done.contains(&format!("done other {holder}")),
        "the busy spooler ran it:\n{done}"
    );
    std::fs::write(instance.out.join("release-hold"), b"").unwrap();
    instance.wait_done(&["hold"]);
    assert_eq!(instance.counts("start").get("hold"), Some(&1), "{done}");
}

#[test]
fn decorator_variants_priorities_at_and_retry() {
    let instance = start(
        "tests/apps/spooler_app.py",
        &["--spooler-frequency", "1", "--spooler-ordered"],
    );
    instance.get("/spool-args?name=args");
    instance.get("/spool?name=prio&priority=5");
    instance.get("/spool-raw?name=again");
    instance.get("/spool?name=cwd&cwd=1");
    instance.get("/spool?name=withbody&payload=hello");
    instance.get("/spool-direct?name=direct");
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    instance.get("/spool?name=later&at_in=2");
    instance.wait_done(&[
        "args", "prio", "again", "cwd", "withbody", "direct", "later",
    ]);
    instance.wait_queue_empty();
    let runs = instance.runs();
    assert!(runs.contains("args args 3 {'k': [1, 2]}"), "{runs}");
    // SPOOL_RETRY ran it again; the second run returned SPOOL_OK.
    assert_eq!(instance.counts("start").get("again"), Some(&2), "{runs}");
    assert!(runs.contains("body withbody hello"), "{runs}");
    assert!(runs.contains("body direct raw-body"), "{runs}");
    // Without `spooler-chdir`, a task runs in the spool directory, as in uWSGI.
    let spool = std::fs::canonicalize(&instance.spool).unwrap();
    assert!(
        runs.contains(&format!("cwd cwd {}", spool.display())),
        "{runs}"
    );
    let modified = std::fs::metadata(instance.out.join("runs.log"))
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(modified >= at, "the `at` task ran before its time");
}

/// What uWSGI 2.0 writes for `uwsgi.spool({b'ud_spool_func': b'record', …}, body=…)`: the
/// 4-byte header (modifier1 17, little-endian size, 0), the vars, then the body.
fn uwsgi_spool_file(vars: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    for (key, value) in vars {
        for field in [key.as_bytes(), value.as_bytes()] {
            block.extend_from_slice(&(field.len() as u16).to_le_bytes());
            block.extend_from_slice(field);
        }
    }
    let mut file = vec![17];
    file.extend_from_slice(&(block.len() as u16).to_le_bytes());
    file.push(0);
    file.extend_from_slice(&block);
    file.extend_from_slice(body);
    file
}

#[test]
fn a_queue_left_by_uwsgi_runs_after_migration() {
    let out = TempDir::new("spooler-migrated");
    let queue = out.join("queue");
    std::fs::create_dir_all(queue.join("3")).unwrap();
    let task = |name: &str| {
        uwsgi_spool_file(
            &[
                ("ud_spool_func", "record"),
                ("name", name),
                ("ud_spool_ret", "-2"),
            ],
            b"from-uwsgi",
        )
    };
    std::fs::write(
        queue.join("uwsgi_spoolfile_on_oldhost_4242_1_1804289383_1700000000_12345"),
        task("migrated"),
    )
    .unwrap();
    std::fs::write(
        queue
            .join("3")
            .join("uwsgi_spoolfile_on_oldhost_4242_2_846930886_1700000001_99"),
        task("migrated-prio"),
    )
    .unwrap();
    let venv = venv().display().to_string();
    let queue_text = queue.display().to_string();
    let out_path = out.path().to_path_buf();
    let (kaiser, _addr) = start_http_with(
        &[
            "--home",
            &venv,
            "--wsgi-file",
            "tests/apps/spooler_app.py",
            "--spooler",
            &queue_text,
            "--spooler-frequency",
            "3600",
        ],
        |command| {
            command.env("APP_OUT", &out_path);
        },
    );
    let runs = wait_until("the migrated tasks to run", TASK_TIMEOUT, |last| {
        let runs = std::fs::read_to_string(out.join("runs.log")).unwrap_or_default();
        *last = runs.clone();
        Ok(
            (runs.contains("done migrated ") && runs.contains("done migrated-prio "))
                .then_some(runs),
        )
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", kaiser.logs()));
    assert!(runs.contains("body migrated from-uwsgi"), "{runs}");
    kaiser
        .wait_for_log(
            "managing request uwsgi_spoolfile_on_oldhost_4242_1_1804289383_1700000000_12345",
            START_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn seed_002_spooler_import_under_lazy_apps() {
    let mut instance = start(
        "tests/apps/lazy_spooler_app.py",
        &[
            "--lazy-apps",
            "--spooler-import",
            "tests/apps/spooler_tasks.py",
            "--spooler-quiet",
            "--processes",
            "2",
        ],
    );
    instance.get("/?name=imported");
    instance.wait_done(&["imported"]);
    instance.wait_queue_empty();
    // Stopped, the spooler has written all it will.
    let logs = instance
        .kaiser
        .stop_and_read_logs(libc::SIGTERM, START_TIMEOUT);
    assert!(
        !logs.contains("managing request"),
        "spooler-quiet still logged tasks:\n{logs}"
    );
}

#[test]
fn spoolers_stop_with_the_vassal_and_a_task_in_flight_finishes_first() {
    let mut instance = start("tests/apps/spooler_app.py", &[]);
    instance.get("/spool?name=inflight&block=1");
    let spooler = instance.started_marker("inflight", None);
    instance.kaiser.signal(libc::SIGTERM);
    // The spooler is asked to stop; it finishes its task first.
    std::fs::write(instance.out.join("release-inflight"), b"").unwrap();
    let status = instance.kaiser.wait_exit(TASK_TIMEOUT);
    assert!(
        status.is_some(),
        "kaiser did not stop:\n{}",
        instance.kaiser.logs()
    );
    wait_until("the spooler to exit", TASK_TIMEOUT, |_| {
        Ok((!alive(spooler)).then_some(()))
    })
    .unwrap();
    assert_eq!(
        instance.counts("done").get("inflight"),
        Some(&1),
        "{}\n{}",
        instance.runs(),
        instance.kaiser.logs()
    );
    assert!(instance.task_files().is_empty());
}

#[test]
fn a_graceful_reload_replaces_the_spooler_and_loses_no_task() {
    let instance = start("tests/apps/spooler_app.py", &[]);
    instance.get("/spool?name=held&block=1");
    let old = instance.started_marker("held", None);
    let mark = instance.kaiser.log_mark();
    instance.kaiser.signal(libc::SIGHUP);
    instance
        .kaiser
        .wait_for_log_since(mark, "reloaded in", TASK_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    // The old spooler finishes its task before it goes; the new one serves new tasks.
    std::fs::write(instance.out.join("release-held"), b"").unwrap();
    instance.get("/spool?name=after-reload");
    instance.wait_done(&["held", "after-reload"]);
    instance.wait_queue_empty();
    wait_until("the old spooler to exit", TASK_TIMEOUT, |_| {
        Ok((!alive(old)).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", instance.kaiser.logs()));
    assert_eq!(
        instance.counts("done").get("held"),
        Some(&1),
        "{}",
        instance.runs()
    );
    assert_eq!(
        instance.counts("start").get("held"),
        Some(&1),
        "{}",
        instance.runs()
    );
}

#[test]
fn spooler_harakiri_kills_a_stuck_task_which_runs_again() {
    let instance = start("tests/apps/spooler_app.py", &["--spooler-harakiri", "1"]);
    instance.get("/spool?name=stuck&block=1");
    let first = instance.started_marker("stuck", None);
    // Killed by the master after a second; its replacement starts the task again.
    let second = instance.started_marker("stuck", Some(first));
    assert_ne!(first, second);
    instance
        .kaiser
        .wait_for_log("spooler-harakiri", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(instance.out.join("release-stuck"), b"").unwrap();
    instance.wait_done(&["stuck"]);
    instance.wait_queue_empty();
    assert_eq!(instance.counts("done").get("stuck"), Some(&1));
}

#[test]
fn spooler_max_tasks_recycles_and_spooler_chdir_applies() {
    let elsewhere = TempDir::new("spooler-chdir");
    let elsewhere_text = elsewhere.path().display().to_string();
    let instance = start(
        "tests/apps/spooler_app.py",
        &[
            "--spooler-max-tasks",
            "2",
            "--spooler-chdir",
            &elsewhere_text,
        ],
    );
    for name in ["m1", "m2", "m3"] {
        instance.get(&format!("/spool?name={name}&cwd=1"));
    }
    instance.wait_done(&["m1", "m2", "m3"]);
    instance.wait_queue_empty();
    instance
        .kaiser
        .wait_for_log(
            "maximum number of tasks reached (2) recycling",
            TASK_TIMEOUT,
        )
        .unwrap();
    instance
        .kaiser
        .wait_for_log("spooler exited (recycled), respawning", TASK_TIMEOUT)
        .unwrap();
    let runs = instance.runs();
    let pids: std::collections::HashSet<&str> = runs
        .lines()
        .filter(|l| l.starts_with("done "))
        .filter_map(|l| l.rsplit(' ').next())
        .collect();
    assert_eq!(
        pids.len(),
        2,
        "three tasks over two spooler lives:\n{}",
        instance.runs()
    );
    let canonical = std::fs::canonicalize(elsewhere.path()).unwrap();
    assert!(
        instance
            .runs()
            .contains(&format!("cwd m1 {}", canonical.display())),
        "{}",
        instance.runs()
    );
}

#[test]
fn spool_can_target_an_external_spooler_directory() {
    let other = TempDir::new("spooler-external");
    let external = other.join("theirs");
    let external_text = external.display().to_string();
    let instance = start(
        "tests/apps/spooler_app.py",
        &["--spooler-external", &external_text],
    );
    let external = std::fs::canonicalize(&external).unwrap();
    let path = instance.get(&format!("/spool?name=elsewhere&spooler={external_text}"));
    assert!(
        path.starts_with(&format!("{}/uwsgi_spoolfile_on_", external.display())),
        "{path}"
    );
    // Nobody here serves it: it waits for the other instance. Ours still runs its own.
    instance.get("/spool?name=here");
    instance.wait_done(&["here"]);
    assert!(std::path::Path::new(&path).exists());
    // `spooler_get_task` reads it back as the spooler would get it.
    let task: serde_json::Value =
        serde_json::from_str(&instance.get(&format!("/task?path={path}"))).unwrap();
    assert_eq!(task["name"], "elsewhere", "{task}");
    assert_eq!(task["ud_spool_func"], "record", "{task}");
    assert!(
        task["spooler_task_name"]
            .as_str()
            .unwrap()
            .starts_with("uwsgi_spoolfile_on_"),
        "{task}"
    );
    assert!(
        !instance.runs().contains("elsewhere"),
        "{}",
        instance.runs()
    );
    let info: serde_json::Value = serde_json::from_str(&instance.get("/spooler")).unwrap();
    assert_eq!(
        info["spoolers"][1],
        external.display().to_string(),
        "{info}"
    );
    let response = http_get(instance.addr, "/spool?name=x&spooler=/no/such/dir").unwrap();
    assert_eq!(response.status, 500, "unknown spooler: {response}");
    assert!(
        instance
            .kaiser
            .logs()
            .contains("unable to find spooler `/no/such/dir`"),
        "{}",
        instance.kaiser.logs()
    );
}
