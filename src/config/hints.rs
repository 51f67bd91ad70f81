//! Precise hints for the mistakes people copy from blog posts: inline comments, `key==value`,
//! `$VAR` for `$(VAR)`, a `%` that magic expansion eats. uWSGI accepts all of these silently
//! and does something surprising; we say what it did and how to write what was meant.
//!
//! This file only detects and words the hints; `typed.rs` decides whether one is an error.

use super::diagnostics::{Origin, Report};
use super::expand::RemovedMagic;
use super::sources::Entry;

/// Where an inline comment seems to start: `#`, `;` or `//` after whitespace. uWSGI has no
/// inline comments, so that text is part of the value.
pub(crate) fn inline_comment(value: &str) -> Option<usize> {
    let bytes = value.as_bytes();
    (1..bytes.len()).find(|&i| {
        let after_space = bytes[i - 1] == b' ' || bytes[i - 1] == b'\t';
        after_space && (bytes[i] == b'#' || bytes[i] == b';' || value[i..].starts_with("//"))
    })
}

pub(crate) fn inline_comment_message(key: &str, value: &str, same_meaning: bool) -> String {
    let consequence = if same_meaning {
        "uWSGI happens to read the same value here"
    } else {
        "it is not what was meant"
    };
    format!(
        "the whole text `{value}` is the value because uWSGI INI files have no inline comments \
         ({consequence}); move the comment to its own line above `{key}`"
    )
}

/// `socket==:8080` gives the value `=:8080`.
pub(crate) fn doubled_equals_message(key: &str, value: &str) -> String {
    let meant = value.trim_start_matches('=').trim_start();
    format!(
        "the value `{value}` starts with `=` (written `{key}=={meant}`?); write `{key} = {meant}`"
    )
}

/// `$HOME` or `${HOME}` where `$(HOME)` was meant.
pub(crate) fn dollar_without_parentheses(entry: &Entry, report: &mut Report) {
    // The log encoders' own `${msg}`, `${unix}`, `${strftime:…}` (config/logging.rs).
    if matches!(entry.key.as_str(), "log-encoder" | "log-req-encoder") {
        return;
    }
    // Internal routing's own `${VAR}` placeholders and `$1` captures (routing/template.rs).
    let key = entry.key.as_str();
    if ["route", "error-route", "response-route", "final-route"]
        .iter()
        .any(|prefix| key.starts_with(prefix))
    {
        return;
    }
    let value = &entry.value;
    for (at, _) in value.match_indices('$') {
        let rest = &value[at + 1..];
        let name: String = rest
            .trim_start_matches('{')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let starts_like_var = rest.starts_with('{')
            || rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
        if starts_like_var && !name.is_empty() {
            report.warn(
                &entry.origin,
                &entry.key,
                format!("`${name}` is not expanded; uWSGI config files write environment variables as `$({name})`"),
            );
        }
    }
}

/// Magic substitution removed `%X` sequences with no meaning (uWSGI does so silently).
pub(crate) fn removed_magic(
    original: &str,
    path: &str,
    removed: &[RemovedMagic],
    report: &mut Report,
) {
    let lines: Vec<&str> = original.split('\n').collect();
    let mut at = 0;
    while at < removed.len() {
        let line = removed[at].line;
        let on_line: Vec<String> = removed[at..]
            .iter()
            .take_while(|r| r.line == line)
            .map(|r| format!("`%{}`", r.var.escape_default()))
            .collect();
        at += on_line.len();
        let text = lines.get(line - 1).copied().unwrap_or("").trim();
        let key = text.split('=').next().unwrap_or("").trim();
        report.warn(
            &Origin::File {
                path: path.to_string(),
                line,
            },
            key,
            format!(
                "{} removed: uWSGI deletes `%` sequences that are not magic variables and \
                 replaces the ones that are (`%d` is the file's directory); write `%%` for a \
                 literal `%`, as strftime formats need",
                on_line.join(", ")
            ),
        );
    }
}

/// `inherit` templates are appended after the variable passes, so these stay literal.
pub(crate) fn unexpanded_in_template(key: &str, value: &str, origin: &Origin, report: &mut Report) {
    if ["$(", "@(", "%("].iter().any(|open| value.contains(open)) {
        report.warn(
            origin,
            key,
            "`$(…)`, `@(…)` and `%(…)` are not expanded in a file loaded with `inherit` (as in uWSGI); load it with `include` to expand them",
        );
    }
}

/// uWSGI plugins (besides `python*`) whose features kaiser has built in, so `plugins = NAME`
/// loads nothing and is accepted: the HTTP router, the routers whose actions kaiser's
/// routing has (`static:`, `basicauth:`, `rewrite:`, `redirect:`), the loggers kaiser
/// implements (`logger = file:` `syslog:` `rsyslog:` `socket:` `systemd`), the cheaper
/// busyness algorithm, and the async engines kaiser serves as request threads (`gevent`,
/// `ugreen`).
pub(crate) const BUILTIN_PLUGINS: &[&str] = &[
    "http",
    "router_http",
    "router_static",
    "router_basicauth",
    "router_rewrite",
    "router_redirect",
    "logfile",
    "syslog",
    "rsyslog",
    "logsocket",
    "systemd_logger",
    "cheaper_busyness",
    "gevent",
    "greenlet",
    "ugreen",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: &str, expected: Option<&str>) {
        let found = inline_comment(value).map(|at| &value[at..]);
        assert_eq!(found, expected, "inline comment in {value:?}");
    }

    #[test]
    fn inline_comments() {
        check(
            "www-data # Ubuntu default user",
            Some("# Ubuntu default user"),
        );
        check("uwsgi.pid // pid file", Some("// pid file"));
        check(
            "true   ; Delete sockets during shutdown",
            Some("; Delete sockets during shutdown"),
        );
        check("\"mysvc \"  # note the space", Some("# note the space"));
        check("/path/with#hash", None);
        check("a;b", None);
        check("http://example.com", None);
        check("#start", None);
        check("plain", None);
    }

    fn check_dollar(value: &str, expected: usize) {
        let mut report = Report::default();
        let entry = Entry {
            key: "env".into(),
            value: value.into(),
            origin: Origin::Whole,
            placeholder_only: false,
            inherited: false,
        };
        dollar_without_parentheses(&entry, &mut report);
        assert_eq!(
            report.warnings.len(),
            expected,
            "{value:?}: {:?}",
            report.warnings
        );
    }

    #[test]
    fn dollar_hints() {
        check_dollar("$HOME/app", 1);
        check_dollar("${HOME}/app", 1);
        check_dollar("$(HOME)/app", 0);
        check_dollar("costs $5", 0);
        check_dollar("a$", 0);
    }
}
