//! The master's alarm hooks (`crate::alarm`): once a second it runs the alarms the log
//! master handed over (`signal:` and `mule:` ones raised by `log-alarm`), and checks the
//! listen queues for `alarm-backlog` as uWSGI's `master_check_listen_queue` does; when a
//! worker dies of SIGSEGV it raises `alarm-segfault`.

use super::*;
use crate::alarm::{Alarms, Raised};

/// The master's alarms, when it last looked at the listen queues, and the `alarm-fd`
/// descriptors still watched.
pub(super) struct Alarming {
    alarms: Alarms,
    next_check: Instant,
    fds: Vec<crate::config::AlarmFd>,
}

impl Alarming {
    pub(super) fn new(config: &Config) -> Alarming {
        if config.alarm.list {
            // uWSGI's `alarms_list`: the plugins, at start.
            tracing::info!("\n*** uWSGI loaded alarms ***\ncmd\nsignal\nmule\nlog\n--- end of alarms list ---\n");
        }
        Alarming {
            alarms: Alarms::new(&config.alarm, true),
            next_check: Instant::now(),
            fds: config
                .alarm
                .fds
                .iter()
                .filter(|watched| {
                    // SAFETY: F_GETFD only asks about the descriptor number; no memory is
                    // involved.
                    let open = unsafe { libc::fcntl(watched.fd, libc::F_GETFD) } >= 0;
                    if !open {
                        tracing::warn!(
                            fd = watched.fd,
                            alarm = watched.alarm,
                            "alarm-fd: the descriptor is not open; not watched"
                        );
                    }
                    open
                })
                .cloned()
                .collect(),
        }
    }
}

impl Master<'_> {
    pub(super) fn alarm_tick(&mut self, now: Instant) {
        if now < self.alarming.next_check {
            return;
        }
        self.alarming.next_check = now + Duration::from_secs(1);
        for (name, message) in crate::alarm::received_from_log_master() {
            self.raise_alarm(&name, &message);
        }
        self.alarm_fds();
        if self.config.alarm.backlog.is_empty() {
            return;
        }
        let mut full = Vec::new();
        for socket in &self.sockets {
            let queue = sys::net::listen_queue(socket.fd.as_fd())
                .or_else(|| sys::sock_diag::unix_listen_queue(socket.fd.as_fd()));
            if let Some((waiting, backlog)) = queue {
                if waiting > 0 && waiting >= backlog {
                    full.push(format!(
                        "listen queue of socket \"{}\" (fd: {}) full !!! ({waiting}/{backlog})",
                        socket.local,
                        socket.fd.as_raw_fd()
                    ));
                }
            }
        }
        for message in full {
            tracing::warn!("*** uWSGI {message} ***");
            for name in self.config.alarm.backlog.clone() {
                self.raise_alarm(&name, message.as_bytes());
            }
        }
    }

    /// `alarm-fd`: each readable descriptor raises its alarm; one at EOF or in error is
    /// no longer watched, as uWSGI's alarm thread drops it.
    fn alarm_fds(&mut self) {
        let mut fired = Vec::new();
        self.alarming.fds.retain(|watched| {
            // SAFETY: the descriptor was open at start (checked in `Alarming::new`), was
            // inherited for this purpose and is never closed by kaiser; it is only borrowed
            // for this poll and read.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(watched.fd) };
            match sys::poll::poll(&[(fd, sys::poll::READABLE)], Some(Duration::ZERO)) {
                Ok(revents) if revents[0] == 0 => true,
                Ok(_) => {
                    let mut buf = vec![0u8; watched.bytes];
                    match sys::fd::read(fd, &mut buf) {
                        Ok(n) if n > 0 => {
                            fired.push((watched.alarm.clone(), watched.message.clone()));
                            true
                        }
                        outcome => {
                            tracing::warn!(
                                fd = watched.fd,
                                ?outcome,
                                "alarm-fd: the descriptor is closed or failed; no longer watched"
                            );
                            false
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(
                        fd = watched.fd,
                        "alarm-fd: cannot poll the descriptor ({error}); no longer watched"
                    );
                    false
                }
            }
        });
        for (name, message) in fired {
            self.raise_alarm(&name, message.as_bytes());
        }
    }

    /// A worker died: `alarm-segfault` when SIGSEGV killed it.
    pub(super) fn alarm_on_worker_death(&mut self, id: u32, pid: Pid, how: ExitKind) {
        if how != ExitKind::Signal(libc::SIGSEGV) || self.config.alarm.segfault.is_empty() {
            return;
        }
        let message = format!("!!! uWSGI process {pid} (worker {id}) got Segmentation Fault !!!");
        for name in self.config.alarm.segfault.clone() {
            self.raise_alarm(&name, message.as_bytes());
        }
    }

    /// The deepest listen queue of the sockets, as uWSGI's `shared->backlog`.
    pub(super) fn listen_backlog(&self) -> u64 {
        self.sockets
            .iter()
            .filter_map(|socket| {
                sys::net::listen_queue(socket.fd.as_fd())
                    .or_else(|| sys::sock_diag::unix_listen_queue(socket.fd.as_fd()))
            })
            .map(|(waiting, _)| u64::from(waiting))
            .max()
            .unwrap_or(0)
    }

    fn raise_alarm(&mut self, name: &str, message: &[u8]) {
        if let Raised::Log(text) = self.alarming.alarms.raise(name, message) {
            tracing::warn!(alarm = name, "{text}");
        }
    }
}
