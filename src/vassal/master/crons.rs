//! The master's cron hooks: start the `cron` commands due this minute (`/bin/sh -c`, with the
//! vassal's environment and output) as entries of the process table (which reaps them), and
//! kill one past its harakiri.

use super::*;

impl Master<'_> {
    pub(super) fn crons_tick(&mut self, now: Instant) {
        if let Some(board) = crate::signals::board() {
            for signal in self.crons.changed_files(board.file_monitors()) {
                tracing::info!(signal, "file monitor: a watched path changed");
                board.raise(signal);
            }
        }
        for (index, pid) in self.live(Kind::Cron) {
            let started = self.children.get(pid).map_or(now, |e| e.started);
            if self.crons.overdue(index, now.duration_since(started)) {
                let command = self.crons.command(index);
                tracing::warn!(pid, command, "cron harakiri: killing the command");
                let _ = sys::signal::kill(pid, libc::SIGKILL);
            }
        }
        let secs = unix_secs();
        // uWSGI's cache sweeper, once per second: expired items leave the stats' count.
        if self.crons.new_second(secs) {
            python::sweep_caches();
        }
        let running: Vec<usize> = self.live(Kind::Cron).iter().map(|(i, _)| *i).collect();
        let due = self
            .crons
            .due(secs / 60, &crate::signals::local_time(secs), &running);
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
                    self.children.insert(Entry {
                        state: State::Serving,
                        ..Entry::new(Kind::Cron(index), pid, now)
                    });
                    // Reaped by `reap` through waitpid; dropping the handle does not wait.
                    drop(child);
                }
                Err(err) => tracing::error!(command, "cron: cannot run the command: {err}"),
            }
        }
    }
}
