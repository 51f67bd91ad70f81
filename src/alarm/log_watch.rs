//! The `log-alarm` trigger, in the log master (uWSGI's `uwsgi_alarm_log_check`): each line
//! is tried against the `log-alarm` and `not-log-alarm` rules in order; a matching
//! `not-log-alarm` stops the rules after it, a matching `log-alarm` raises its alarms with
//! the line as the message. Lines starting `[uwsgi-alarm` (the subsystem's own complaints)
//! are not tried, and neither are the `log:` alarms' lines, which go straight to the
//! outputs.

use std::os::fd::{AsFd, OwnedFd};

use super::raise::{Alarms, Raised};
use crate::config::AlarmConfig;

pub struct LogWatch {
    alarms: Alarms,
    link: Option<OwnedFd>,
}

impl LogWatch {
    /// `None` when no `log-alarm` is configured. `link`: the log master's end of
    /// [`super::Link`], for the alarms the vassal master runs.
    pub fn new(config: &AlarmConfig, link: Option<OwnedFd>) -> Option<LogWatch> {
        config.needs_log_master().then(|| LogWatch {
            alarms: Alarms::new(config, false),
            link,
        })
    }

    /// The link's fd, to keep open when the log master closes everything else.
    pub fn link_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.link.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Tries one log line; returns the lines `log:` alarms want written.
    pub fn check(&mut self, line: &str) -> Vec<String> {
        let mut to_log = Vec::new();
        if line.starts_with("[uwsgi-alarm") {
            return to_log;
        }
        let bare = line.strip_suffix('\n').unwrap_or(line);
        let rules = self.alarms.config().log.clone();
        for rule in &rules {
            if !rule.pattern.is_match(bare) {
                continue;
            }
            if rule.negate {
                break;
            }
            for name in &rule.alarms {
                match self.alarms.raise(name, line.as_bytes()) {
                    Raised::Done => {}
                    Raised::Log(text) => to_log.push(text),
                    Raised::Elsewhere => {
                        if let Some(link) = &self.link {
                            super::link::send(link.as_fd(), name, line.as_bytes());
                        }
                    }
                }
            }
        }
        to_log
    }

    /// Reaps finished `cmd:` children; call about once a second.
    pub fn tick(&mut self) {
        self.alarms.reap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AlarmAction, AlarmSpec, LogAlarm, Pattern};

    #[test]
    fn rules_in_order_with_not_log_alarm_stopping_the_rest() {
        let rule = |names: &[&str], regexp: &str, negate| LogAlarm {
            alarms: names.iter().map(|n| n.to_string()).collect(),
            pattern: Pattern::new(regexp).unwrap(),
            negate,
        };
        let config = AlarmConfig {
            alarms: vec![
                AlarmSpec {
                    name: "a".into(),
                    action: AlarmAction::Log("A".into()),
                },
                AlarmSpec {
                    name: "b".into(),
                    action: AlarmAction::Log("B".into()),
                },
            ],
            log: vec![
                rule(&["a"], "HARAKIRI", false),
                rule(&["b"], "ignore me", true),
                rule(&["a", "b"], "error", false),
            ],
            ..AlarmConfig::default()
        };
        let mut watch = LogWatch::new(&config, None).unwrap();
        assert_eq!(
            watch.check("*** HARAKIRI ***\n"),
            ["ALARM: A *** HARAKIRI ***"]
        );
        assert_eq!(
            watch.check("an error\n"),
            ["ALARM: A an error", "ALARM: B an error"]
        );
        assert!(watch.check("an error, ignore me\n").is_empty());
        assert!(watch.check("[uwsgi-alarm] an error\n").is_empty());
        assert!(watch.check("all good\n").is_empty());
    }
}
