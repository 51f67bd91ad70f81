//! The master's cron hooks: start the `cron` commands due this minute (`/bin/sh -c`, with the
//! vassal's environment and output), reap them, and kill one past its harakiri.

use super::*;

impl Master<'_> {
    pub(super) fn crons_tick(&mut self, now: Instant) {
        if let Some(board) = crate::signals::board() {
            for signal in self.crons.changed_files(board.file_monitors()) {
                tracing::info!(signal, "file monitor: a watched path changed");
                board.raise(signal);
            }
        }
        for (pid, command) in self.crons.overdue(now) {
            tracing::warn!(pid, command, "cron harakiri: killing the command");
            let _ = sys::signal::kill(pid, libc::SIGKILL);
        }
        let secs = unix_secs();
        // uWSGI's cache sweeper, once per second: expired items leave the stats' count.
        if self.crons.new_second(secs) {
            python::sweep_caches();
        }
        let due = self.crons.due(secs / 60, &crate::signals::local_time(secs));
        for (index, command) in due {
            match std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&command)
                .stdin(std::process::Stdio::null())
                .spawn()
            {
                Ok(child) => {
                    let pid = child.id() as Pid;
                    tracing::info!(pid, command, "cron: running the command");
                    self.crons.started(index, pid);
                    // Reaped by `reap` through waitpid; dropping the handle does not wait.
                    drop(child);
                }
                Err(err) => tracing::error!(command, "cron: cannot run the command: {err}"),
            }
        }
    }

    pub(super) fn reap_cron(&mut self, pid: Pid, how: ExitKind) -> bool {
        let Some(command) = self.crons.finished(pid) else {
            return false;
        };
        tracing::info!(pid, %how, command, "cron: the command finished");
        true
    }
}
