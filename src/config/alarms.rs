//! The alarm options (`core/alarm.c`): `alarm = NAME PLUGIN:ARG` defines an alarm, and the
//! triggers name it: `log-alarm = NAME[,NAME…] REGEXP` for log lines (`not-log-alarm` for
//! lines that must not raise anything), `alarm-backlog` for a full listen queue,
//! `alarm-segfault` for a worker killed by SIGSEGV. `alarm-freq` keeps one alarm from
//! repeating the same message more often than every N seconds.
//!
//! The plugins built into uWSGI's core are the ones kaiser has: `cmd` (a shell command with
//! the message on its stdin), `signal` (a uWSGI signal), `log` (a log line) and `mule` (a
//! message to a mule). This module only types and checks the options; `crate::alarm` raises
//! the alarms.

use std::time::Duration;

use super::diagnostics::Report;
use super::logging::Pattern;
use super::sources::Entry;

/// The canonical names of the options typed here.
pub(crate) const NAMES: &[&str] = &[
    "alarm",
    "log-alarm",
    "not-log-alarm",
    "alarm-backlog",
    "alarm-segfault",
    "alarm-freq",
    "alarm-msg-size",
    "alarm-list",
    "alarm-fd",
];

#[derive(Debug, Clone, PartialEq)]
pub struct AlarmConfig {
    /// `alarm` lines, in order.
    pub alarms: Vec<AlarmSpec>,
    /// `log-alarm` and `not-log-alarm` lines, in order (the first `not-` rule that matches
    /// a line stops the rules after it).
    pub log: Vec<LogAlarm>,
    /// `alarm-backlog` (and its five other names): alarms raised when a listen queue is full.
    pub backlog: Vec<String>,
    /// `alarm-segfault`: alarms raised when a worker dies of SIGSEGV.
    pub segfault: Vec<String>,
    /// `alarm-freq`: the same message raises one alarm at most this often.
    pub freq: Duration,
    /// `alarm-msg-size`: longer messages are cut to this many bytes.
    pub msg_size: usize,
    /// `alarm-list`: log the alarm plugins at start.
    pub list: bool,
    /// `alarm-fd`: inherited descriptors whose readiness raises an alarm.
    pub fds: Vec<AlarmFd>,
}

impl Default for AlarmConfig {
    fn default() -> Self {
        AlarmConfig {
            alarms: Vec::new(),
            log: Vec::new(),
            backlog: Vec::new(),
            segfault: Vec::new(),
            freq: Duration::from_secs(3),
            msg_size: 8192,
            list: false,
            fds: Vec::new(),
        }
    }
}

impl AlarmConfig {
    /// Log alarms read the log lines, so they need the log master (as uWSGI's
    /// `UWSGI_OPT_LOG_MASTER` on `log-alarm`).
    pub fn needs_log_master(&self) -> bool {
        self.log.iter().any(|rule| !rule.negate)
    }

    pub fn find(&self, name: &str) -> Option<&AlarmSpec> {
        self.alarms.iter().find(|alarm| alarm.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmSpec {
    pub name: String,
    pub action: AlarmAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlarmAction {
    /// `cmd:COMMAND`: `/bin/sh -c COMMAND` with the message on its stdin.
    Cmd(String),
    /// `signal:N`: raise uWSGI signal N.
    Signal(u8),
    /// `log:TEXT`: log `ALARM: TEXT MESSAGE`.
    Log(String),
    /// `mule:N`: send the message to mule N (0: the first free mule).
    Mule(u32),
}

/// `alarm-fd = ALARM FD[:BYTES] MESSAGE`: when `fd` (inherited, e.g. a cgroup's OOM
/// eventfd) is readable, read `bytes` from it and raise `alarm` with `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmFd {
    pub alarm: String,
    pub fd: i32,
    pub bytes: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogAlarm {
    pub alarms: Vec<String>,
    pub pattern: Pattern,
    pub negate: bool,
}

/// Types one option of [`NAMES`].
pub(crate) fn apply(config: &mut AlarmConfig, name: &str, value: &str) -> Result<(), String> {
    match name {
        "alarm" => config.alarms.push(parse_alarm(value)?),
        "log-alarm" | "not-log-alarm" => {
            let (names, regexp) = value
                .trim()
                .split_once(' ')
                .ok_or_else(|| format!("expected `ALARM[,ALARM…] REGEXP`, got `{value}`"))?;
            let pattern = Pattern::new(regexp.trim_start())?;
            config.log.push(LogAlarm {
                alarms: split_names(names),
                pattern,
                negate: name == "not-log-alarm",
            });
        }
        "alarm-backlog" => config.backlog.extend(split_names(value)),
        "alarm-segfault" => config.segfault.extend(split_names(value)),
        "alarm-freq" => config.freq = Duration::from_secs(whole(value)?),
        "alarm-msg-size" => config.msg_size = whole(value)?.clamp(1, 1 << 20) as usize,
        "alarm-fd" => config.fds.push(parse_alarm_fd(value)?),
        "alarm-list" => config.list = !matches!(value.trim(), "false" | "off" | "no" | "0"),
        other => return Err(format!("`{other}` is not an alarm option")),
    }
    Ok(())
}

fn whole(value: &str) -> Result<u64, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("expected a whole number, got `{value}`"))
}

fn split_names(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

/// `ALARM FD[:BYTES] MESSAGE` (`uwsgi_alarms_init`: one byte by default, 8 for an eventfd).
fn parse_alarm_fd(value: &str) -> Result<AlarmFd, String> {
    let invalid = || format!("expected `ALARM FD[:BYTES] MESSAGE`, got `{value}`");
    let (alarm, rest) = value.trim().split_once(' ').ok_or_else(invalid)?;
    let (fd, message) = rest.trim_start().split_once(' ').ok_or_else(invalid)?;
    let (fd, bytes) = match fd.split_once(':') {
        Some((fd, bytes)) => (fd, bytes.parse::<usize>().map_err(|_| invalid())?.max(1)),
        None => (fd, 1),
    };
    Ok(AlarmFd {
        alarm: alarm.to_string(),
        fd: fd
            .parse::<i32>()
            .ok()
            .filter(|fd| *fd >= 0)
            .ok_or_else(invalid)?,
        bytes: bytes.min(4096),
        message: message.to_string(),
    })
}

/// `NAME PLUGIN:ARG`, split as `uwsgi_alarms_init` does: at the first space, then at the
/// first `:`.
fn parse_alarm(value: &str) -> Result<AlarmSpec, String> {
    let invalid = || {
        format!("expected `NAME PLUGIN:ARG` (e.g. `mail cmd:mail -s alarm root`), got `{value}`")
    };
    let (name, rest) = value.trim().split_once(' ').ok_or_else(invalid)?;
    let (plugin, arg) = rest.trim_start().split_once(':').ok_or_else(invalid)?;
    let number = |what: &str| {
        arg.trim()
            .parse::<u32>()
            .map_err(|_| format!("`{plugin}:` needs {what}, got `{arg}`"))
    };
    let action = match plugin {
        "cmd" => AlarmAction::Cmd(arg.to_string()),
        "signal" => AlarmAction::Signal(
            u8::try_from(number("a uWSGI signal number (0-255)")?)
                .map_err(|_| format!("uWSGI signals are 0-255, not `{arg}`"))?,
        ),
        "log" => AlarmAction::Log(arg.to_string()),
        "mule" => AlarmAction::Mule(number("a mule id (0 for any mule)")?),
        "curl" | "xmpp" | "speech" | "jabber" => {
            return Err(format!(
                "the `{plugin}` alarm plugin is not built into kaiser; run a command instead, e.g. `{name} cmd:curl -s --data-binary @- URL` (the message is on the command's stdin)"
            ))
        }
        other => {
            return Err(format!(
                "unknown alarm plugin `{other}` (kaiser has `cmd`, `signal`, `log` and `mule`)"
            ))
        }
    };
    Ok(AlarmSpec {
        name: name.to_string(),
        action,
    })
}

/// The alarm options as `--print-config` shows them (`alarm` lines first, so the triggers
/// read back name defined alarms).
pub(crate) fn render(config: &AlarmConfig, line: &mut impl FnMut(&str, &str)) {
    let default = AlarmConfig::default();
    for alarm in &config.alarms {
        let action = match &alarm.action {
            AlarmAction::Cmd(command) => format!("cmd:{command}"),
            AlarmAction::Signal(signal) => format!("signal:{signal}"),
            AlarmAction::Log(text) => format!("log:{text}"),
            AlarmAction::Mule(id) => format!("mule:{id}"),
        };
        line("alarm", &format!("{} {action}", alarm.name));
    }
    for rule in &config.log {
        let key = if rule.negate {
            "not-log-alarm"
        } else {
            "log-alarm"
        };
        line(
            key,
            &format!("{} {}", rule.alarms.join(","), rule.pattern.as_str()),
        );
    }
    if !config.backlog.is_empty() {
        line("alarm-backlog", &config.backlog.join(","));
    }
    if !config.segfault.is_empty() {
        line("alarm-segfault", &config.segfault.join(","));
    }
    if config.freq != default.freq {
        line("alarm-freq", &config.freq.as_secs().to_string());
    }
    if config.msg_size != default.msg_size {
        line("alarm-msg-size", &config.msg_size.to_string());
    }
    if config.list {
        line("alarm-list", "true");
    }
    for watched in &config.fds {
        line(
            "alarm-fd",
            &format!(
                "{} {}:{} {}",
                watched.alarm, watched.fd, watched.bytes, watched.message
            ),
        );
    }
}

/// Every alarm a trigger names must be defined somewhere in the configuration (uWSGI exits
/// with `invalid log-alarm` otherwise), whatever the order of the lines.
pub(crate) fn check(config: &AlarmConfig, entries: &[Entry], report: &mut Report) {
    for entry in entries {
        let Some(spec) = super::options::find(&entry.key) else {
            continue;
        };
        let names = match spec.name {
            "log-alarm" | "not-log-alarm" => entry
                .value
                .trim()
                .split_once(' ')
                .map(|(names, _)| split_names(names))
                .unwrap_or_default(),
            "alarm-backlog" | "alarm-segfault" => split_names(&entry.value),
            "alarm-fd" => entry
                .value
                .trim()
                .split_once(' ')
                .map(|(name, _)| vec![name.to_string()])
                .unwrap_or_default(),
            _ => continue,
        };
        for name in names {
            if config.find(&name).is_none() {
                report.error(
                    &entry.origin,
                    &entry.key,
                    format!("no alarm is named `{name}` (define it with `alarm = {name} cmd:…`)"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_alarm(value: &str, expected: Result<AlarmAction, &str>) {
        let parsed = parse_alarm(value).map(|spec| spec.action);
        assert_eq!(parsed, expected.map_err(str::to_string), "{value}");
    }

    #[test]
    fn alarm_lines() {
        check_alarm(
            "mail cmd:mail -s 'uWSGI alarm' root",
            Ok(AlarmAction::Cmd("mail -s 'uWSGI alarm' root".into())),
        );
        check_alarm("s signal:17", Ok(AlarmAction::Signal(17)));
        check_alarm("l log:", Ok(AlarmAction::Log(String::new())));
        check_alarm("m mule:2", Ok(AlarmAction::Mule(2)));
        check_alarm("c cmd:a:b", Ok(AlarmAction::Cmd("a:b".into())));
        check_alarm(
            "nospace",
            Err("expected `NAME PLUGIN:ARG` (e.g. `mail cmd:mail -s alarm root`), got `nospace`"),
        );
        check_alarm(
            "x cmd",
            Err("expected `NAME PLUGIN:ARG` (e.g. `mail cmd:mail -s alarm root`), got `x cmd`"),
        );
        check_alarm("s signal:300", Err("uWSGI signals are 0-255, not `300`"));
        check_alarm(
            "s signal:x",
            Err("`signal:` needs a uWSGI signal number (0-255), got `x`"),
        );
        check_alarm(
            "p bogus:1",
            Err("unknown alarm plugin `bogus` (kaiser has `cmd`, `signal`, `log` and `mule`)"),
        );
        assert!(parse_alarm("slack curl:https://hooks.example/x")
            .unwrap_err()
            .contains("cmd:curl -s --data-binary @- URL"));
    }

    #[test]
    fn alarm_fd_lines() {
        let parsed = parse_alarm_fd("oom 50:8 the cgroup ran out of memory").unwrap();
        assert_eq!(
            (
                parsed.alarm.as_str(),
                parsed.fd,
                parsed.bytes,
                parsed.message.as_str()
            ),
            ("oom", 50, 8, "the cgroup ran out of memory")
        );
        assert_eq!(parse_alarm_fd("a 3 m").unwrap().bytes, 1);
        assert!(parse_alarm_fd("a 3").is_err());
        assert!(parse_alarm_fd("a x m").is_err());
    }

    #[test]
    fn log_alarm_lines() {
        let mut config = AlarmConfig::default();
        apply(&mut config, "log-alarm", "a,b HARAKIRI ON WORKER").unwrap();
        apply(&mut config, "not-log-alarm", "a ^ignored").unwrap();
        assert_eq!(config.log[0].alarms, ["a", "b"]);
        assert!(config.log[0]
            .pattern
            .is_match("*** HARAKIRI ON WORKER 1 ***"));
        assert!(config.log[1].negate);
        assert!(config.needs_log_master());
        assert_eq!(
            apply(&mut config, "log-alarm", "a").unwrap_err(),
            "expected `ALARM[,ALARM…] REGEXP`, got `a`"
        );
        assert!(apply(&mut config, "log-alarm", "a (")
            .unwrap_err()
            .starts_with("invalid regular expression `(`"));
    }
}
