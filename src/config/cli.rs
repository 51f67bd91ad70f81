//! Command-line arguments to ordered entries, the way uWSGI's getopt loop reads them.
//!
//! `--name value`, `--name=value`, flags without a value, short forms (`-p 4`, `-p4`,
//! clustered flags `-MT`), and bare arguments, which are config files chosen by extension
//! (`.ini`, `.yaml`/`.yml`, `.json`/`.js`, `.xml`, or `.py`/`.wsgi` as `wsgi-file` like the
//! python plugin's magic hook).
//! Unlike getopt, unique prefixes of long names are not accepted: they make a typo silently
//! mean another option. This stage does not open files.

use std::ffi::OsString;

use super::diagnostics::{did_you_mean, Origin, Report};
use super::options::{self, Arity};

/// One option from argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CliEntry {
    /// The long name as typed (the canonical name for short forms).
    pub key: String,
    /// `""` for a flag without a value.
    pub value: String,
    /// 1-based argument index, for messages.
    pub index: usize,
    /// A bare config-file argument (`kaiser app.ini`) rather than `--ini app.ini`; uWSGI
    /// loads these without setting the uppercase magic variables.
    pub bare: bool,
}

/// What argv asks for before any parsing: `--help` and `--version` work even when the rest
/// of the command line would not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Early {
    Help,
    Version,
}

pub(crate) fn early_action(args: &[OsString]) -> Option<Early> {
    for arg in args {
        match arg.to_str() {
            Some("--") => return None,
            Some("--help" | "-h" | "--usage") => return Some(Early::Help),
            Some("--version") => return Some(Early::Version),
            _ => {}
        }
    }
    None
}

pub(crate) fn parse(args: &[OsString], report: &mut Report) -> Vec<CliEntry> {
    let mut entries = Vec::new();
    let mut index = 0;
    let mut options_done = false;
    while index < args.len() {
        let position = index + 1;
        let origin = Origin::CommandLine { index: position };
        let Some(arg) = args[index].to_str() else {
            report.error(
                &origin,
                "",
                format!(
                    "argument `{}` is not valid UTF-8",
                    args[index].to_string_lossy()
                ),
            );
            index += 1;
            continue;
        };
        index += 1;
        if options_done || arg == "-" || !arg.starts_with('-') {
            bare_argument(arg, position, &mut entries, report);
            continue;
        }
        if arg == "--" {
            options_done = true;
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            };
            let Some(spec) = options::find(name) else {
                let hint = did_you_mean(name, options::all_names())
                    .map(|n| format!(" (did you mean `--{n}`?)"))
                    .unwrap_or_default();
                report.error(&origin, "", format!("unknown option `--{name}`{hint}"));
                // Most options take a value; swallow it so one typo gives one message.
                if inline.is_none() && args.get(index).is_some_and(looks_like_value) {
                    index += 1;
                }
                continue;
            };
            let value = match (spec.kind.takes_value(), inline) {
                (_, Some(value)) => value.to_string(),
                (Arity::Required, None) => match args.get(index).and_then(|a| a.to_str()) {
                    Some(value) => {
                        index += 1;
                        value.to_string()
                    }
                    None => {
                        report.error(&origin, name, format!("`--{name}` needs a value"));
                        continue;
                    }
                },
                (Arity::None | Arity::Optional, None) => String::new(),
            };
            entries.push(CliEntry {
                key: name.to_string(),
                value,
                index: position,
                bare: false,
            });
            continue;
        }
        // Short options, possibly clustered: `-MT`, `-p4`, `-p 4`.
        let cluster = &arg[1..];
        for (offset, short) in cluster.char_indices() {
            let Some(spec) = options::find_short(short) else {
                report.error(&origin, "", format!("unknown option `-{short}`"));
                break;
            };
            let rest = &cluster[offset + short.len_utf8()..];
            match spec.kind.takes_value() {
                Arity::None => entries.push(CliEntry {
                    key: spec.name.to_string(),
                    value: String::new(),
                    index: position,
                    bare: false,
                }),
                Arity::Optional => {
                    entries.push(CliEntry {
                        key: spec.name.to_string(),
                        value: rest.to_string(),
                        index: position,
                        bare: false,
                    });
                    break;
                }
                Arity::Required => {
                    let value = if !rest.is_empty() {
                        Some(rest.to_string())
                    } else {
                        let next = args.get(index).and_then(|a| a.to_str()).map(str::to_string);
                        if next.is_some() {
                            index += 1;
                        }
                        next
                    };
                    match value {
                        Some(value) => entries.push(CliEntry {
                            key: spec.name.to_string(),
                            value,
                            index: position,
                            bare: false,
                        }),
                        None => report.error(
                            &origin,
                            spec.name,
                            format!("`-{short}` (`--{}`) needs a value", spec.name),
                        ),
                    }
                    break;
                }
            }
        }
    }
    entries
}

fn looks_like_value(arg: &OsString) -> bool {
    let Some(arg) = arg.to_str() else {
        return false;
    };
    let (file, _) = super::ini::split_section(arg);
    !arg.starts_with('-')
        && ![
            ".ini", ".py", ".wsgi", ".yaml", ".yml", ".json", ".js", ".xml",
        ]
        .iter()
        .any(|ext| file.ends_with(ext))
}

/// A non-option argument is a config file, chosen by extension as uWSGI does.
fn bare_argument(arg: &str, index: usize, entries: &mut Vec<CliEntry>, report: &mut Report) {
    let origin = Origin::CommandLine { index };
    let (file, _) = super::ini::split_section(arg);
    let extension = file.rsplit_once('.').map(|(_, ext)| ext).unwrap_or("");
    let key = match extension {
        "ini" => "ini",
        "py" | "wsgi" => "wsgi-file",
        "yaml" | "yml" => "yaml",
        "json" | "js" => "json",
        "xml" => "xml",
        _ => {
            report.error(
                &origin,
                "",
                format!("unable to load configuration from `{arg}` (expected a `.ini`, `.yaml`, `.json` or `.xml` file, or a `.py`/`.wsgi` app)"),
            );
            return;
        }
    };
    entries.push(CliEntry {
        key: key.to_string(),
        value: arg.to_string(),
        index,
        bare: true,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expected`: `key=value` items (`@` suffix for bare files) separated by ` | `, then
    /// ` ! message` for each error.
    fn check(args: &str, expected: &str) {
        let args: Vec<OsString> = args.split_whitespace().map(OsString::from).collect();
        let mut report = Report::default();
        let entries = parse(&args, &mut report);
        let mut rendered: Vec<String> = entries
            .iter()
            .map(|e| format!("{}={}{}", e.key, e.value, if e.bare { "@" } else { "" }))
            .collect();
        rendered.extend(report.errors.iter().map(|e| format!("! {e}")));
        assert_eq!(rendered.join(" | "), expected, "parsing {args:?}");
    }

    #[test]
    fn long_forms() {
        check("--socket :8080", "socket=:8080");
        check("--socket=:8080", "socket=:8080");
        check("--processes 4 --threads=2", "processes=4 | threads=2");
        check("--master --vacuum", "master= | vacuum=");
        check("--master=false", "master=false");
        check("--workers 3", "workers=3");
        check("--ini app.ini --socket :1", "ini=app.ini | socket=:1");
        check("--env A=b=c", "env=A=b=c");
        check(
            "--chmod-socket --socket x.sock",
            "chmod-socket= | socket=x.sock",
        );
        check("--chmod-socket=660", "chmod-socket=660");
        check("--need-app=false", "need-app=false");
        check("--reload /run/app.pid", "reload=/run/app.pid");
        check(
            "--show-config --check-config",
            "show-config= | check-config=",
        );
        check("--spooler /tmp/spool", "spooler=/tmp/spool");
    }

    #[test]
    fn short_forms() {
        check("-s :8080 -p 4 -M", "socket=:8080 | processes=4 | master=");
        check("-p4", "processes=4");
        check("-MT", "master= | enable-threads=");
        check("-Mp 4", "master= | processes=4");
        check("-b 32768 -t 30 -L -R 1000 -z 10 -l 128", "buffer-size=32768 | harakiri=30 | disable-logging= | max-requests=1000 | socket-timeout=10 | listen=128");
        check(
            "-d /tmp/log -m -i -Q /spool",
            "daemonize=/tmp/log | memory-report= | single-interpreter= | spooler=/spool",
        );
        check("-H /venv -w app:app", "home=/venv | module=app:app");
        check("-S a=b", "set=a=b");
        check("-C", "chmod-socket=");
        check("-C660", "chmod-socket=660");
    }

    #[test]
    fn bare_files() {
        check("app.ini", "ini=app.ini@");
        check("app.ini:prod", "ini=app.ini:prod@");
        check("app.py", "wsgi-file=app.py@");
        check("app.wsgi -p 2", "wsgi-file=app.wsgi@ | processes=2");
        check("-- --weird.ini", "ini=--weird.ini@");
        check("app.yaml", "yaml=app.yaml@");
        check(
            "app.yml:prod app.js app.xml:id",
            "yaml=app.yml:prod@ | json=app.js@ | xml=app.xml:id@",
        );
        check("app.conf", "! command line argument 1: unable to load configuration from `app.conf` (expected a `.ini`, `.yaml`, `.json` or `.xml` file, or a `.py`/`.wsgi` app)");
    }

    #[test]
    fn errors() {
        check("--max_requests 5", "! command line argument 1: unknown option `--max_requests` (did you mean `--max-requests`?)");
        check(
            "--proc 4",
            "! command line argument 1: unknown option `--proc`",
        );
        check(
            "--bogus app.ini",
            "ini=app.ini@ | ! command line argument 1: unknown option `--bogus`",
        );
        check(
            "--socket",
            "! command line argument 1: socket: `--socket` needs a value",
        );
        check(
            "-p",
            "! command line argument 1: processes: `-p` (`--processes`) needs a value",
        );
        check("-Y", "! command line argument 1: unknown option `-Y`");
    }

    #[test]
    fn early_actions() {
        let args = |s: &str| s.split_whitespace().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(early_action(&args("--bogus --help")), Some(Early::Help));
        assert_eq!(early_action(&args("-h")), Some(Early::Help));
        assert_eq!(
            early_action(&args("--version --help")),
            Some(Early::Version)
        );
        assert_eq!(early_action(&args("--ini a.ini")), None);
        assert_eq!(early_action(&args("-- --help")), None);
    }
}
