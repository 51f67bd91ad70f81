//! `py-autoreload`: a thread in worker 1 that, every N seconds, checks the modification time
//! of every loaded Python module's file and, when one changed, asks the master for a graceful
//! reload with SIGHUP. That is uWSGI's `uwsgi_python_autoreloader_thread`, which also runs
//! in the workers (it sees the modules the app imported at request time, which the master
//! never does) and also signals the master.
//!
//! A development aid: it reads `sys.modules` under the GIL once per interval and does the
//! `stat` calls without it. It must not reload anything itself.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::python;
use crate::sys;

pub(crate) fn spawn(interval: Duration, ignore: Vec<String>, master_pid: sys::process::Pid) {
    let span = tracing::Span::current();
    let started = std::thread::Builder::new()
        .name("kaiser-autoreload".to_string())
        .spawn(move || {
            let _entered = span.enter();
            watch(interval, &ignore, master_pid);
        });
    if let Err(err) = started {
        tracing::warn!(error = %err, "py-autoreload: cannot start the watcher thread");
    }
}

fn watch(interval: Duration, ignore: &[String], master_pid: sys::process::Pid) {
    let mut seen: HashMap<PathBuf, SystemTime> = HashMap::new();
    let mut first = true;
    loop {
        for file in python::loaded_module_files(ignore) {
            let Ok(modified) = std::fs::metadata(&file).and_then(|m| m.modified()) else {
                continue;
            };
            match seen.get(&file) {
                None => {
                    seen.insert(file, modified);
                }
                Some(before) if *before != modified => {
                    tracing::info!(file = %file.display(), "py-autoreload: module file modified; reloading");
                    if let Err(err) = sys::signal::kill(master_pid, libc::SIGHUP) {
                        tracing::warn!(error = %err, "py-autoreload: cannot signal the master");
                    }
                    // One reload per change: this worker is replaced by it.
                    return;
                }
                Some(_) => {}
            }
        }
        if first {
            first = false;
            tracing::info!(
                interval_secs = interval.as_secs(),
                files = seen.len(),
                "py-autoreload: watching the loaded modules' files"
            );
        }
        std::thread::sleep(interval);
    }
}
