//! The logging options (`log-format`, `logger`, `log-route`, `log-encoder`, `log-maxsize`,
//! `log-date`, …) typed and validated into [`LogOptions`]: formats compiled, encoders and
//! logger specs checked, routes' regular expressions compiled, so a mistake is reported with
//! its file and line at load time and never at the first request.
//!
//! It does not open files or sockets: that is the log master's job (`crate::logging`).

use std::path::PathBuf;

use crate::protocol::log_format::{Encoder, LogTemplate};

/// A `logger`/`req-logger` entry: `[ID ]TYPE[:ARGS]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerSpec {
    /// The name `log-route` and encoders refer to; an unnamed logger gets every line that no
    /// route took.
    pub id: Option<String>,
    pub target: LoggerTarget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoggerTarget {
    /// `file:PATH`.
    File(PathBuf),
    /// `stdio`: the original stderr (the `logto` file, or the terminal, or the journal).
    Stdio,
    /// `syslog[:IDENT[,FACILITY]]`: the local syslog socket, `/dev/log`.
    Syslog { ident: String, facility: u8 },
    /// `rsyslog:HOST:PORT[,IDENT]`: RFC 3164 datagrams over UDP.
    Rsyslog { address: String, ident: String },
    /// `socket:ADDRESS`: each line as one datagram, to `host:port` (UDP) or a unix path.
    Socket(String),
    /// `systemd`: native journal entries with `VASSAL=` (uWSGI's systemd_logger plugin).
    Journal,
}

pub use super::pcre::Pattern;

/// A `log-route`/`log-req-route`: lines matching `pattern` go to the logger named `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub id: String,
    pub pattern: Pattern,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    /// `log-format`: the request line, compiled.
    pub format: Option<LogTemplate>,
    /// `log-format-strftime`: `%(ftime)` uses `log-date`'s format.
    pub format_strftime: bool,
    /// `log-date`: kaiser's own lines start with a date; `Some` is a strftime format.
    pub date: bool,
    pub date_format: Option<String>,
    pub loggers: Vec<LoggerSpec>,
    pub req_loggers: Vec<LoggerSpec>,
    pub routes: Vec<Route>,
    pub req_routes: Vec<Route>,
    pub encoders: Vec<Encoder>,
    pub req_encoders: Vec<Encoder>,
    /// `log-drain`: lines matching any of these are dropped.
    pub drain: Vec<Pattern>,
    /// `log-filter`: when given, only lines matching one of these are kept.
    pub filter: Vec<Pattern>,
    /// `log-master`.
    pub master: bool,
    /// `log-maxsize`: rotate the log file past this many bytes (0: never).
    pub maxsize: u64,
    pub backupname: Option<PathBuf>,
    /// `log-prefix`: put in front of every line the log master writes.
    pub prefix: Option<String>,
    pub touch_reopen: Vec<PathBuf>,
    pub touch_rotate: Vec<PathBuf>,
    /// `logto2`: like `logto`, opened by the log master after the privilege drop.
    pub logto2: Option<PathBuf>,
    /// `log-truncate`: empty the log file at the first start.
    pub truncate: bool,
    /// `logfile-chown`: give the log file to `uid`/`gid`.
    pub chown: bool,
    /// `logfile-chmod`.
    pub chmod: Option<u32>,
}

impl LogOptions {
    /// Whether workers send their output to a log master process rather than writing to
    /// the log file themselves: asked for, or needed by an option that only the single
    /// writer can honour (loggers, routing, encoders, rotation, prefixes).
    pub fn needs_master(&self) -> bool {
        self.master
            || !self.loggers.is_empty()
            || !self.req_loggers.is_empty()
            || !self.encoders.is_empty()
            || !self.req_encoders.is_empty()
            || !self.drain.is_empty()
            || !self.filter.is_empty()
            || self.maxsize > 0
            || self.prefix.is_some()
            || !self.touch_reopen.is_empty()
            || !self.touch_rotate.is_empty()
            || self.logto2.is_some()
    }
}

/// The canonical option names this module types.
pub(crate) const NAMES: &[&str] = &[
    "log-format",
    "log-format-strftime",
    "log-date",
    "logger",
    "req-logger",
    "log-route",
    "log-req-route",
    "log-encoder",
    "log-req-encoder",
    "log-drain",
    "log-filter",
    "log-master",
    "log-maxsize",
    "log-backupname",
    "log-prefix",
    "touch-logreopen",
    "touch-logrotate",
    "logto2",
    "log-truncate",
    "logfile-chown",
    "logfile-chmod",
    "log-syslog",
    "log-socket",
];

pub(crate) fn apply(log: &mut LogOptions, name: &str, value: &str) -> Result<(), String> {
    let bool_value = super::typed::uwsgi_bool(value);
    match name {
        "log-format" => log.format = Some(LogTemplate::parse(value)),
        "log-format-strftime" => log.format_strftime = bool_value,
        "log-date" => {
            // uWSGI: a bare flag or a true word means ctime; anything else is a format.
            log.date = true;
            let word = value.to_ascii_lowercase();
            log.date_format = match word.as_str() {
                "" | "true" | "1" | "on" | "yes" => None,
                "false" | "0" | "off" | "no" => {
                    log.date = false;
                    None
                }
                _ => Some(value.to_owned()),
            };
        }
        "logger" => log.loggers.push(logger(value)?),
        "req-logger" => log.req_loggers.push(logger(value)?),
        "log-route" => log.routes.push(route(value)?),
        "log-req-route" => log.req_routes.push(route(value)?),
        "log-encoder" => log
            .encoders
            .push(Encoder::parse(value).map_err(|e| e.to_string())?),
        "log-req-encoder" => log
            .req_encoders
            .push(Encoder::parse(value).map_err(|e| e.to_string())?),
        "log-drain" => log.drain.push(regex(value)?),
        "log-filter" => log.filter.push(regex(value)?),
        "log-master" => log.master = bool_value,
        "log-maxsize" => {
            log.maxsize = value
                .trim()
                .parse()
                .map_err(|_| format!("expected a size in bytes, got `{value}`"))?
        }
        "log-backupname" => log.backupname = Some(non_empty_path(value)?),
        "log-prefix" => log.prefix = Some(value.to_owned()),
        "touch-logreopen" => log.touch_reopen.push(non_empty_path(value)?),
        "touch-logrotate" => log.touch_rotate.push(non_empty_path(value)?),
        "logto2" => log.logto2 = Some(non_empty_path(value)?),
        "log-truncate" => log.truncate = bool_value,
        "logfile-chown" => log.chown = bool_value,
        "logfile-chmod" => {
            let digits = if value.is_empty() { "644" } else { value };
            log.chmod = Some(
                u32::from_str_radix(digits, 8)
                    .ok()
                    .filter(|mode| *mode <= 0o7777)
                    .ok_or_else(|| {
                        format!("expected an octal mode such as `640`, got `{value}`")
                    })?,
            );
        }
        "log-syslog" => {
            let ident = match value.to_ascii_lowercase().as_str() {
                "" | "true" | "1" | "on" | "yes" => "kaiser".to_owned(),
                _ => value.to_owned(),
            };
            log.loggers.push(logger(&format!("syslog:{ident}"))?);
        }
        "log-socket" => log.loggers.push(logger(&format!("socket:{value}"))?),
        other => return Err(format!("`{other}` is not a logging option")),
    }
    Ok(())
}

/// `HOST:PORT` rather than a path, as uWSGI's `logto` tells them apart.
pub(crate) fn is_udp_address(value: &str) -> bool {
    !value.contains('/')
        && value.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
        })
}

fn non_empty_path(value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err("expected a path, got an empty value".to_owned());
    }
    Ok(PathBuf::from(value))
}

fn regex(value: &str) -> Result<Pattern, String> {
    Pattern::new(value)
}

/// `ID REGEX`.
fn route(value: &str) -> Result<Route, String> {
    let Some((id, pattern)) = value.split_once(' ') else {
        return Err(format!(
            "expected `LOGGER-ID REGEX` (a logger named with `logger = ID TYPE:ARGS`), got `{value}`"
        ));
    };
    Ok(Route {
        id: id.to_owned(),
        pattern: regex(pattern.trim_start())?,
    })
}

/// `[ID ]TYPE[:ARGS]`, as uWSGI's `setup_choosen_logger`: a first word made only of
/// letters and digits followed by a space is the logger's id.
pub(crate) fn logger(value: &str) -> Result<LoggerSpec, String> {
    let (id, spec) = match value.split_once(' ') {
        Some((id, rest)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            (Some(id.to_owned()), rest.trim_start())
        }
        _ => (None, value),
    };
    let (kind, args) = match spec.split_once(':') {
        Some((kind, args)) => (kind, args),
        None => (spec, ""),
    };
    let target = match kind {
        "file" if !args.is_empty() => LoggerTarget::File(PathBuf::from(args)),
        "file" => return Err("`file:` needs a path: `logger = file:/var/log/app.log`".into()),
        "stdio" | "stderr" | "stdout" => LoggerTarget::Stdio,
        "syslog" => {
            let (ident, facility) = match args.split_once(',') {
                Some((ident, facility)) => (ident, facility_code(facility)?),
                None => (args, 1),
            };
            LoggerTarget::Syslog {
                ident: if ident.is_empty() { "kaiser" } else { ident }.to_owned(),
                facility,
            }
        }
        "rsyslog" => {
            let (address, ident) = args.split_once(',').unwrap_or((args, ""));
            if !address.contains(':') {
                return Err(format!(
                    "`rsyslog:` needs `HOST:PORT[,IDENT]`, got `{args}`"
                ));
            }
            LoggerTarget::Rsyslog {
                address: address.to_owned(),
                ident: if ident.is_empty() { "kaiser" } else { ident }.to_owned(),
            }
        }
        "socket" if !args.is_empty() => LoggerTarget::Socket(args.to_owned()),
        "socket" => return Err("`socket:` needs `HOST:PORT` or a unix socket path".into()),
        "systemd" | "journal" | "journald" => LoggerTarget::Journal,
        "redislog" | "mongodblog" | "zeromq" | "graylog2" | "crypto" => {
            return Err(format!(
                "the `{kind}` logger is not built into kaiser: use `systemd` (native journal entries), `syslog`, `rsyslog:HOST:PORT` or `socket:ADDRESS`"
            ))
        }
        other => {
            return Err(format!(
                "unknown logger `{other}` (kaiser has `file:PATH`, `stdio`, `syslog[:IDENT]`, `rsyslog:HOST:PORT`, `socket:ADDRESS`)"
            ))
        }
    };
    Ok(LoggerSpec { id, target })
}

/// syslog(3) facility names as uWSGI's syslog plugin accepts them, with their codes.
const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

fn facility_code(name: &str) -> Result<u8, String> {
    FACILITIES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(_, code)| *code)
        .ok_or_else(|| format!("unknown syslog facility `{name}`"))
}

/// A logger as `logger = …` reads it back (`--print-config`).
pub(crate) fn logger_text(spec: &LoggerSpec) -> String {
    let target = match &spec.target {
        LoggerTarget::File(path) => format!("file:{}", path.display()),
        LoggerTarget::Stdio => "stdio".to_owned(),
        LoggerTarget::Syslog { ident, facility } => {
            match FACILITIES.iter().find(|(_, code)| code == facility) {
                Some((name, _)) => format!("syslog:{ident},{name}"),
                None => format!("syslog:{ident}"),
            }
        }
        LoggerTarget::Rsyslog { address, ident } => format!("rsyslog:{address},{ident}"),
        LoggerTarget::Socket(address) => format!("socket:{address}"),
        LoggerTarget::Journal => "systemd".to_owned(),
    };
    match &spec.id {
        Some(id) => format!("{id} {target}"),
        None => target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_logger(value: &str, expected: Result<LoggerSpec, &str>) {
        let got = logger(value);
        match expected {
            Ok(spec) => assert_eq!(got, Ok(spec), "{value}"),
            Err(fragment) => {
                let err = got.expect_err(value);
                assert!(err.contains(fragment), "{value}: {err}");
            }
        }
    }

    fn spec(id: Option<&str>, target: LoggerTarget) -> Result<LoggerSpec, &'static str> {
        Ok(LoggerSpec {
            id: id.map(str::to_owned),
            target,
        })
    }

    #[test]
    fn logger_specs() {
        check_logger(
            "file:/var/log/a.log",
            spec(None, LoggerTarget::File("/var/log/a.log".into())),
        );
        check_logger(
            "main file:/x",
            spec(Some("main"), LoggerTarget::File("/x".into())),
        );
        check_logger("stdio", spec(None, LoggerTarget::Stdio));
        check_logger(
            "syslog",
            spec(
                None,
                LoggerTarget::Syslog {
                    ident: "kaiser".into(),
                    facility: 1,
                },
            ),
        );
        check_logger(
            "syslog:app,local3",
            spec(
                None,
                LoggerTarget::Syslog {
                    ident: "app".into(),
                    facility: 19,
                },
            ),
        );
        check_logger(
            "rsyslog:127.0.0.1:514,app",
            spec(
                None,
                LoggerTarget::Rsyslog {
                    address: "127.0.0.1:514".into(),
                    ident: "app".into(),
                },
            ),
        );
        check_logger(
            "socket:127.0.0.1:9999",
            spec(None, LoggerTarget::Socket("127.0.0.1:9999".into())),
        );
        check_logger("file:", Err("needs a path"));
        check_logger("redislog:127.0.0.1", Err("not built into kaiser"));
        check_logger("systemd", spec(None, LoggerTarget::Journal));
        check_logger("carrier-pigeon", Err("unknown logger `carrier-pigeon`"));
        check_logger("syslog:a,nowhere", Err("unknown syslog facility"));
        check_logger("rsyslog:nohost", Err("HOST:PORT"));
    }

    #[test]
    fn options() {
        let mut log = LogOptions::default();
        assert!(!log.needs_master());
        apply(&mut log, "log-date", "").unwrap();
        assert!(log.date && log.date_format.is_none());
        apply(&mut log, "log-date", "%Y-%m-%d").unwrap();
        assert_eq!(log.date_format.as_deref(), Some("%Y-%m-%d"));
        apply(&mut log, "log-date", "off").unwrap();
        assert!(!log.date);
        apply(&mut log, "log-route", "errors (error|ERROR)").unwrap();
        assert_eq!(log.routes[0].id, "errors");
        assert!(log.routes[0].pattern.is_match("an ERROR here"));
        assert!(apply(&mut log, "log-route", "noregex").is_err());
        // PCRE look-arounds work, as in uWSGI.
        apply(&mut log, "log-route", "x ^((?!y).)*$").unwrap();
        assert!(log.routes[1].pattern.is_match("zzz"));
        assert!(!log.routes[1].pattern.is_match("zyz"));
        let err = apply(&mut log, "log-route", "x (open").unwrap_err();
        assert!(err.contains("invalid regular expression"), "{err}");
        assert!(apply(&mut log, "log-encoder", "gzip").is_err());
        apply(&mut log, "log-maxsize", "10485760").unwrap();
        assert_eq!(log.maxsize, 10_485_760);
        assert!(log.needs_master());
        assert!(apply(&mut log, "log-maxsize", "10MB").is_err());
    }
}
