//! Running an alarm's action, with uWSGI's anti-storm throttle (`uwsgi_alarm_run`).

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use crate::config::{AlarmAction, AlarmConfig};

/// What raising an alarm did, for the caller to finish where only it can.
#[derive(Debug, PartialEq, Eq)]
pub enum Raised {
    /// Nothing to do: done here, throttled, or an unknown name.
    Done,
    /// A `log:` alarm: the caller writes this line (the log master into its outputs, the
    /// vassal master through tracing).
    Log(String),
    /// A `signal:` or `mule:` alarm that this process cannot run (the log master): the
    /// caller hands it to the vassal master.
    Elsewhere,
}

/// The alarms of one process with their throttle state.
pub struct Alarms {
    config: AlarmConfig,
    /// Per alarm, the last message it ran with and when.
    last: Vec<Option<(Vec<u8>, Instant)>>,
    /// `cmd:` children not reaped yet (in the log master; the vassal master reaps its own).
    children: Vec<Child>,
    /// Whether `signal:` and `mule:` can run in this process.
    local_ipc: bool,
}

impl Alarms {
    /// `local_ipc`: this process has the uWSGI signal table and the mule mailboxes (the
    /// vassal master), rather than handing those alarms on (the log master).
    pub fn new(config: &AlarmConfig, local_ipc: bool) -> Alarms {
        Alarms {
            last: vec![None; config.alarms.len()],
            config: config.clone(),
            children: Vec::new(),
            local_ipc,
        }
    }

    pub fn config(&self) -> &AlarmConfig {
        &self.config
    }

    /// Raises alarm `name` with `message` (cut to `alarm-msg-size`).
    pub fn raise(&mut self, name: &str, message: &[u8]) -> Raised {
        self.raise_at(name, message, Instant::now())
    }

    fn raise_at(&mut self, name: &str, message: &[u8], now: Instant) -> Raised {
        let Some(index) = self.config.alarms.iter().position(|a| a.name == name) else {
            tracing::warn!(alarm = name, "no alarm of this name; ignoring it");
            return Raised::Done;
        };
        let message = &message[..message.len().min(self.config.msg_size)];
        let action = self.config.alarms[index].action.clone();
        if !self.local_ipc && matches!(action, AlarmAction::Signal(_) | AlarmAction::Mule(_)) {
            return Raised::Elsewhere;
        }
        if let Some((last, at)) = &self.last[index] {
            if last == message && now.duration_since(*at) < self.config.freq {
                return Raised::Done;
            }
        }
        self.last[index] = Some((message.to_vec(), now));
        self.reap();
        let text = String::from_utf8_lossy(message);
        let text = text.trim_end_matches('\n');
        match action {
            AlarmAction::Cmd(command) => {
                self.spawn(name, &command, message);
                Raised::Done
            }
            AlarmAction::Log(prefix) if prefix.is_empty() => Raised::Log(format!("ALARM: {text}")),
            AlarmAction::Log(prefix) => Raised::Log(format!("ALARM: {prefix} {text}")),
            AlarmAction::Signal(signal) => {
                let raised = crate::signals::board().is_some_and(|board| board.raise(signal));
                if !raised {
                    tracing::warn!(
                        alarm = name,
                        signal,
                        "alarm: the uWSGI signal has no handler registered"
                    );
                }
                Raised::Done
            }
            AlarmAction::Mule(id) => {
                if !crate::python::send_to_mule(id, message) {
                    tracing::warn!(
                        alarm = name,
                        mule = id,
                        "alarm: the message could not be sent to the mule"
                    );
                }
                Raised::Done
            }
        }
    }

    /// `/bin/sh -c COMMAND` with the message on its stdin, as uWSGI's `uwsgi_run_command`.
    fn spawn(&mut self, name: &str, command: &str, message: &[u8]) {
        let mut shell = Command::new("/bin/sh");
        shell.arg("-c").arg(command).stdin(Stdio::piped());
        crate::sys::process::clean_signals_on_exec(&mut shell);
        match shell.spawn() {
            Ok(mut child) => {
                tracing::info!(alarm = name, pid = child.id(), "alarm: running its command");
                if let Some(mut stdin) = child.stdin.take() {
                    // The message is at most `alarm-msg-size` bytes, well under a pipe's
                    // buffer, so this does not wait on the command; a command that exits
                    // without reading gets EPIPE here, which is not an error of the alarm.
                    let _ = stdin.write_all(message);
                }
                // The vassal master reaps every child through `waitpid(-1)`; a handle kept
                // here could later wait on a recycled pid (a new worker's). The log master
                // has no such reaper, so it keeps them.
                if !self.local_ipc {
                    self.children.push(child);
                }
            }
            Err(error) => tracing::error!(
                alarm = name,
                command,
                "alarm: cannot run the command: {error}"
            ),
        }
    }

    /// Reaps the `cmd:` children that finished (or that another reaper took).
    pub fn reap(&mut self) {
        self.children
            .retain_mut(|child| matches!(child.try_wait(), Ok(None)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AlarmSpec;
    use std::time::Duration;

    fn alarms(freq: u64) -> Alarms {
        let config = AlarmConfig {
            alarms: vec![
                AlarmSpec {
                    name: "l".into(),
                    action: AlarmAction::Log("prefix".into()),
                },
                AlarmSpec {
                    name: "s".into(),
                    action: AlarmAction::Signal(3),
                },
            ],
            freq: Duration::from_secs(freq),
            msg_size: 10,
            ..AlarmConfig::default()
        };
        Alarms::new(&config, false)
    }

    #[test]
    fn the_same_message_is_throttled_a_new_one_is_not() {
        let mut alarms = alarms(3);
        let start = Instant::now();
        let log = |text: &str| Raised::Log(format!("ALARM: prefix {text}"));
        assert_eq!(alarms.raise_at("l", b"one\n", start), log("one"));
        assert_eq!(
            alarms.raise_at("l", b"one\n", start + Duration::from_secs(1)),
            Raised::Done
        );
        assert_eq!(
            alarms.raise_at("l", b"two", start + Duration::from_secs(1)),
            log("two")
        );
        assert_eq!(
            alarms.raise_at("l", b"two", start + Duration::from_secs(4)),
            log("two")
        );
        // Cut to `alarm-msg-size`.
        assert_eq!(
            alarms.raise_at("l", b"0123456789abc", start),
            log("0123456789")
        );
        assert_eq!(alarms.raise_at("nope", b"x", start), Raised::Done);
        assert_eq!(alarms.raise_at("s", b"x", start), Raised::Elsewhere);
    }
}
