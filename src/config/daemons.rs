//! External daemons: `attach-daemon`, `attach-daemon2`, `smart-attach-daemon`,
//! `smart-attach-daemon2` and `attach-control-daemon`, parsed into one [`DaemonSpec`] each
//! (uWSGI's `core/daemons.c`, `uwsgi_opt_add_daemon` and `uwsgi_opt_add_daemon2`).
//!
//! Only the description lives here; `vassal::daemons` starts and supervises them. The
//! `legion-*` variants need uWSGI's legion subsystem and are refused in the option table;
//! `ns_pid` (a PID namespace per daemon) is refused here.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSpec {
    /// The option and value as written, for `--show-config`.
    pub option: String,
    pub text: String,
    /// Run with `/bin/sh -c`, as uWSGI does.
    pub command: String,
    /// Smart daemons are tracked through this pidfile instead of as children.
    pub pidfile: Option<PathBuf>,
    /// `smart-attach-daemon2`, `daemonize=1`: the command stays in the foreground and
    /// kaiser writes its pid to `pidfile`.
    pub write_pidfile: bool,
    /// Seconds a smart daemon has to write a valid pidfile before it is spawned again.
    pub freq: u32,
    /// `attach-control-daemon`, `control=1`: the vassal stops when the daemon dies.
    pub control: bool,
    pub stop_signal: i32,
    /// Sent instead of `stop_signal` when the vassal reloads (`reloadsignal`).
    pub reload_signal: Option<i32>,
    /// Files whose change restarts the daemon (`touch=a;b`).
    pub touch: Vec<PathBuf>,
    /// Keep the master's stdin instead of `/dev/null`.
    pub honour_stdin: bool,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub chdir: Option<PathBuf>,
    /// Upper bound of the respawn delay (uWSGI's `max_throttle`; 300 s otherwise).
    pub max_throttle: Option<Duration>,
    /// Smart daemons: signal them when the vassal stops or reloads.
    pub notifypid: bool,
}

impl DaemonSpec {
    fn new(option: &str, text: &str, command: &str) -> DaemonSpec {
        DaemonSpec {
            option: option.to_string(),
            text: text.to_string(),
            command: command.to_string(),
            pidfile: None,
            write_pidfile: false,
            freq: 10,
            control: false,
            stop_signal: libc::SIGTERM,
            reload_signal: None,
            touch: Vec::new(),
            honour_stdin: false,
            uid: None,
            gid: None,
            chdir: None,
            max_throttle: None,
            notifypid: false,
        }
    }
}

/// Parses one daemon entry. The error is the message for the entry's line.
pub(crate) fn parse(option: &str, value: &str) -> Result<DaemonSpec, String> {
    if value.trim().is_empty() {
        return Err("expected a command, got an empty value".to_string());
    }
    match option {
        "attach-daemon" | "attach-control-daemon" => {
            let mut spec = DaemonSpec::new(option, value, value);
            spec.control = option == "attach-control-daemon";
            Ok(spec)
        }
        "smart-attach-daemon" | "smart-attach-daemon2" => {
            let Some((pidfile, command)) = value.split_once(' ') else {
                return Err(format!("expected `PIDFILE COMMAND`, got `{value}`"));
            };
            // uWSGI: `PIDFILE,FREQ COMMAND`.
            let (pidfile, freq) = match pidfile.split_once(',') {
                Some((pidfile, freq)) => (pidfile, freq.parse().unwrap_or(10)),
                None => (pidfile, 10),
            };
            let command = command.trim_start();
            if command.is_empty() {
                return Err(format!("expected `PIDFILE COMMAND`, got `{value}`"));
            }
            let mut spec = DaemonSpec::new(option, value, command);
            spec.pidfile = Some(PathBuf::from(pidfile));
            spec.freq = freq;
            spec.write_pidfile = option == "smart-attach-daemon2";
            Ok(spec)
        }
        "attach-daemon2" => parse_keyval(value),
        other => Err(format!("`{other}` is not a daemon option")),
    }
}

fn parse_keyval(value: &str) -> Result<DaemonSpec, String> {
    let mut spec = DaemonSpec::new("attach-daemon2", value, "");
    let mut command = None;
    for pair in split_escaped(value, ',') {
        let Some((key, val)) = pair.split_once('=') else {
            return Err(format!(
                "expected `key=value` pairs separated by `,`, got `{pair}`"
            ));
        };
        let number = |what: &str| -> Result<u32, String> {
            val.trim()
                .parse()
                .map_err(|_| format!("`{what}` expects a number, got `{val}`"))
        };
        let flag = !val.is_empty();
        match key.trim() {
            "command" | "cmd" | "exec" => command = Some(val.to_string()),
            "freq" => spec.freq = number(key)?,
            "pidfile" => spec.pidfile = Some(PathBuf::from(val)),
            "control" => spec.control = flag,
            "daemonize" | "daemon" => spec.write_pidfile = flag,
            "touch" => spec.touch = val.split(';').filter(|t| !t.is_empty()).map(PathBuf::from).collect(),
            "stopsignal" | "stop_signal" => spec.stop_signal = signal(val)?,
            "reloadsignal" | "reload_signal" => spec.reload_signal = Some(signal(val)?),
            "stdin" => spec.honour_stdin = flag,
            "uid" => spec.uid = Some(number(key)?),
            "gid" => spec.gid = Some(number(key)?),
            "chdir" => spec.chdir = Some(PathBuf::from(val)),
            "max_throttle" => spec.max_throttle = Some(Duration::from_secs(number(key)?.into())),
            "notifypid" => spec.notifypid = flag,
            "ns_pid" => return Err("`ns_pid` (a PID namespace per daemon) is not supported by kaiser".to_string()),
            "legion" => return Err("`legion` is not supported: kaiser has no legions".to_string()),
            other => {
                return Err(format!(
                    "unknown key `{other}` (kaiser knows cmd, pidfile, daemonize, freq, control, stopsignal, reloadsignal, touch, stdin, uid, gid, chdir, max_throttle, notifypid)"
                ))
            }
        }
    }
    match command {
        Some(command) if !command.trim().is_empty() => spec.command = command,
        _ => return Err("needs a `cmd=…` key with the command to run".to_string()),
    }
    if spec.write_pidfile && spec.pidfile.is_none() {
        return Err("`daemonize` needs a `pidfile=…` for kaiser to write".to_string());
    }
    Ok(spec)
}

fn signal(value: &str) -> Result<i32, String> {
    match value.trim().parse::<i32>() {
        Ok(n) if (1..=64).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a signal number such as `15`, got `{value}`"
        )),
    }
}

/// Splits on `separator` where it is not escaped with `\` (uWSGI's `uwsgi_kvlist_parse`).
fn split_escaped(text: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    parts.last_mut().expect("never empty").push(next);
                }
            }
            c if c == separator => parts.push(String::new()),
            c => parts.last_mut().expect("never empty").push(c),
        }
    }
    parts.retain(|p| !p.is_empty());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let spec = parse("attach-daemon", "memcached -p 11311").unwrap();
        assert_eq!(spec.command, "memcached -p 11311");
        assert_eq!(spec.pidfile, None);
        assert!(!spec.control);

        let spec = parse(
            "smart-attach-daemon",
            "/tmp/m.pid memcached -d -P /tmp/m.pid",
        )
        .unwrap();
        assert_eq!(spec.pidfile, Some(PathBuf::from("/tmp/m.pid")));
        assert_eq!(spec.command, "memcached -d -P /tmp/m.pid");
        assert!(!spec.write_pidfile);

        let spec = parse("smart-attach-daemon2", "/tmp/c.pid,5 celery worker").unwrap();
        assert_eq!(spec.freq, 5);
        assert!(spec.write_pidfile);

        let spec = parse(
            "attach-daemon2",
            "cmd=redis-server --port 0\\,1,stopsignal=3,touch=/a;/b,max_throttle=10,control=1",
        )
        .unwrap();
        assert_eq!(spec.command, "redis-server --port 0,1");
        assert_eq!(spec.stop_signal, 3);
        assert_eq!(spec.touch, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(spec.max_throttle, Some(Duration::from_secs(10)));
        assert!(spec.control);
        assert!(parse("attach-control-daemon", "sleep 1").unwrap().control);
    }

    #[test]
    fn errors() {
        for (option, value, part) in [
            ("attach-daemon", " ", "empty"),
            ("smart-attach-daemon", "/tmp/only.pid", "PIDFILE COMMAND"),
            ("attach-daemon2", "pidfile=/x", "cmd="),
            ("attach-daemon2", "cmd=x,colour=red", "unknown key `colour`"),
            ("attach-daemon2", "cmd=x,stopsignal=TERM", "signal number"),
            ("attach-daemon2", "cmd=x,daemonize=1", "pidfile"),
            ("attach-daemon2", "cmd=x,ns_pid=1", "not supported"),
        ] {
            let message = parse(option, value).expect_err(value);
            assert!(message.contains(part), "{option} = {value}: {message}");
        }
    }
}
