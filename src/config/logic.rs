//! Config logic, as uWSGI 2.0's `core/config.c`: `if-env`, `if-opt`, `if-exists`, `if-file`,
//! `if-dir`, `if-reload`, `if-hostname`, `if-plugin` (each with its `if-not-` twin) … `endif`,
//! and `for`, `for-glob`, `for-times`, `for-readline` … `endfor`.
//!
//! uWSGI applies these while the sources are read: the opening key names a logic function and
//! its argument, and every later key up to `end`/`endif`/`endfor`/`end-if`/`end-for` goes
//! through that function instead of straight into the option list. An `if-*` adds the entry
//! when its condition holds, with `%(_)` in the value replaced by the matched value (the
//! variable's or option's value, the path, the hostname); a `for*` adds it once per item
//! with `%(_)` replaced by the item. The argument is the raw text (magic variables only):
//! `$(…)` and `%(…)` are expanded later, over the entries the blocks produced.
//!
//! This file decides what a block produces from facts handed to it ([`Facts`]); it does no
//! I/O itself and does not know which keys are options. `sources.rs` drives it.

/// Keys that close a block (uWSGI accepts all five for either kind).
const END_KEYS: &[&str] = &["end", "endif", "endfor", "end-if", "end-for"];

/// What an opening key tests or iterates over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Logic {
    /// `for = a b c`: the space-separated words (empty words skipped, as `strtok`).
    For,
    /// `for-glob = pattern`: the matching paths (directories with a trailing `/`); the
    /// pattern itself when nothing matches (`GLOB_MARK | GLOB_NOCHECK`).
    ForGlob,
    /// `for-times = N`: `1` to `N`.
    ForTimes,
    /// `for-readline = file`: the file's lines without their line ends.
    ForReadline,
    If {
        test: Test,
        negated: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Test {
    /// `NAME` or `NAME=VALUE` in the environment.
    Env,
    /// `name` or `name=value` among the entries read so far (the first one counts).
    Opt,
    /// A readable path (`access(R_OK)`).
    Exists,
    /// A regular file (`stat`, symlinks followed).
    File,
    /// A directory.
    Dir,
    /// This start is a reload (a re-exec of the master).
    Reload,
    Hostname,
    /// The hostname matches a regular expression (searched, not anchored).
    HostnameMatch,
    /// A uWSGI plugin: kaiser has `python*` and `http` built in.
    Plugin,
}

/// What kind of thing a path is, as `stat` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathKind {
    File,
    Dir,
    Other,
}

/// The machine facts a block needs. `sources.rs` answers them from the environment, the
/// [`super::Context`], the entries so far and its [`super::sources::FileSystem`].
pub(crate) trait Facts {
    fn env(&self, name: &str) -> Option<String>;
    /// The value of the first entry with this key so far.
    fn option(&self, name: &str) -> Option<String>;
    fn hostname(&self) -> &str;
    fn is_reload(&self) -> bool;
    fn stat(&self, path: &str) -> Option<PathKind>;
    fn readable(&self, path: &str) -> bool;
    /// The entries of a directory: (name, is a directory).
    fn list_dir(&self, path: &str) -> Vec<(String, bool)>;
    fn read(&self, path: &str) -> Result<String, String>;
}

/// The block an opening key starts, or `None` for any other key.
pub(crate) fn opening(key: &str) -> Option<Logic> {
    let logic = |test, negated| Some(Logic::If { test, negated });
    match key {
        "for" => Some(Logic::For),
        "for-glob" => Some(Logic::ForGlob),
        "for-times" => Some(Logic::ForTimes),
        "for-readline" => Some(Logic::ForReadline),
        "if-env" | "ifenv" => logic(Test::Env, false),
        "if-not-env" => logic(Test::Env, true),
        "if-opt" => logic(Test::Opt, false),
        "if-not-opt" => logic(Test::Opt, true),
        "if-exists" | "ifexists" => logic(Test::Exists, false),
        "if-not-exists" => logic(Test::Exists, true),
        "if-file" => logic(Test::File, false),
        "if-not-file" => logic(Test::File, true),
        "if-dir" | "ifdir" | "if-directory" => logic(Test::Dir, false),
        "if-not-dir" => logic(Test::Dir, true),
        "if-reload" => logic(Test::Reload, false),
        "if-not-reload" => logic(Test::Reload, true),
        "if-hostname" => logic(Test::Hostname, false),
        "if-not-hostname" => logic(Test::Hostname, true),
        "if-hostname-match" => logic(Test::HostnameMatch, false),
        "if-not-hostname-match" => logic(Test::HostnameMatch, true),
        "if-plugin" | "ifplugin" => logic(Test::Plugin, false),
        "if-not-plugin" => logic(Test::Plugin, true),
        _ => None,
    }
}

pub(crate) fn is_end(key: &str) -> bool {
    END_KEYS.contains(&key)
}

/// The plugins kaiser has built in, for `if-plugin` (the same set `plugins` accepts).
pub(crate) fn builtin_plugin(name: &str) -> bool {
    name.starts_with("python") || super::hints::BUILTIN_PLUGINS.contains(&name)
}

/// The items of a `for*` block, computed once when it opens. A `for-readline` file that
/// cannot be read gives no items and an error message (uWSGI logs it and carries on).
pub(crate) fn items(logic: Logic, arg: &str, facts: &dyn Facts) -> Result<Vec<String>, String> {
    Ok(match logic {
        Logic::For => arg
            .split(' ')
            .filter(|word| !word.is_empty())
            .map(str::to_string)
            .collect(),
        Logic::ForTimes => (1..=atoi(arg).max(0)).map(|n| n.to_string()).collect(),
        Logic::ForGlob => {
            let found = glob(arg, facts);
            if found.is_empty() {
                vec![arg.to_string()]
            } else {
                found
            }
        }
        Logic::ForReadline => {
            let text = facts.read(arg)?;
            // `fgets` lines, then `uwsgi_chomp`, which strips trailing `\r` and `\n`.
            let mut lines: Vec<String> = text
                .split_inclusive('\n')
                .map(|line| line.trim_end_matches(['\r', '\n']).to_string())
                .collect();
            if text.is_empty() {
                lines.clear();
            }
            lines
        }
        Logic::If { .. } => Vec::new(),
    })
}

/// Whether an `if-*` block keeps an entry, and the value that `%(_)` stands for (`None`:
/// `%(_)` stays as written, as uWSGI's `uwsgi_substitute` does with a NULL value).
pub(crate) fn test(
    test: Test,
    negated: bool,
    arg: &str,
    facts: &dyn Facts,
) -> (bool, Option<String>) {
    match test {
        Test::Env | Test::Opt => {
            let (name, wanted) = match arg.split_once('=') {
                Some((name, wanted)) => (name, Some(wanted)),
                None => (arg, None),
            };
            let found = if test == Test::Env {
                facts.env(name)
            } else {
                facts.option(name)
            };
            let matches = match (&found, wanted) {
                (None, _) => false,
                (Some(value), Some(wanted)) => value == wanted,
                (Some(_), None) => true,
            };
            (matches != negated, found)
        }
        Test::Exists => (facts.readable(arg) != negated, Some(arg.to_string())),
        Test::File => (
            (facts.stat(arg) == Some(PathKind::File)) != negated,
            Some(arg.to_string()),
        ),
        Test::Dir => (
            (facts.stat(arg) == Some(PathKind::Dir)) != negated,
            Some(arg.to_string()),
        ),
        Test::Reload => (facts.is_reload() != negated, None),
        Test::Hostname => ((facts.hostname() == arg) != negated, Some(arg.to_string())),
        Test::HostnameMatch => {
            // An invalid expression matches nothing; `sources.rs` reports it at the opening.
            let matches = regex::Regex::new(arg).is_ok_and(|re| re.is_match(facts.hostname()));
            (matches != negated, Some(arg.to_string()))
        }
        Test::Plugin => (builtin_plugin(arg) != negated, Some(arg.to_string())),
    }
}

/// `value` with every `%(_)` replaced by `item`.
pub(crate) fn substitute(value: &str, item: Option<&str>) -> String {
    match item {
        Some(item) => value.replace("%(_)", item),
        None => value.to_string(),
    }
}

/// The optionally signed integer at the start of `text` (no blanks skipped), or 0 when
/// there is none or it does not fit an `i64`.
pub(crate) fn leading_integer(text: &str) -> i64 {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse::<i64>().map_or(0, |n| sign * n)
}

/// C's `atoi`: leading blanks, a sign, digits; 0 when there are none.
pub(crate) fn atoi(text: &str) -> i64 {
    leading_integer(text.trim_start_matches([' ', '\t', '\n', '\r']))
        .clamp(i64::from(i32::MIN), i64::from(i32::MAX))
}

/// POSIX `glob` with `GLOB_MARK`, over [`Facts::list_dir`]: `*`, `?` and `[…]` within one
/// path component, hidden files only matched by a pattern starting with `.`, results sorted.
/// A relative pattern is relative to the current directory, as given.
pub(crate) fn glob(pattern: &str, facts: &dyn Facts) -> Vec<String> {
    let absolute = pattern.starts_with('/');
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let mut found = vec![if absolute {
        "/".to_string()
    } else {
        String::new()
    }];
    for (index, part) in parts.iter().enumerate() {
        let last = index + 1 == parts.len();
        let mut next = Vec::new();
        for base in &found {
            let dir = if base.is_empty() { "." } else { base.as_str() };
            if !has_wildcard(part) {
                let candidate = format!("{base}{part}");
                let kind = facts.stat(&candidate);
                if last && kind.is_some() || !last && kind == Some(PathKind::Dir) {
                    next.push(candidate);
                }
                continue;
            }
            let mut names = facts.list_dir(dir);
            names.sort();
            for (name, is_dir) in names {
                if name.starts_with('.') && !part.starts_with('.') {
                    continue;
                }
                if (last || is_dir) && wildcard_match(part.as_bytes(), name.as_bytes()) {
                    next.push(format!("{base}{name}"));
                }
            }
        }
        found = next
            .into_iter()
            .map(|path| if last { path } else { format!("{path}/") })
            .collect();
        if found.is_empty() {
            return found;
        }
    }
    found
        .into_iter()
        .filter(|path| !path.is_empty())
        .map(|path| {
            if !path.ends_with('/') && facts.stat(&path) == Some(PathKind::Dir) {
                format!("{path}/")
            } else {
                path
            }
        })
        .collect()
}

fn has_wildcard(part: &str) -> bool {
    part.contains(['*', '?', '['])
}

/// `fnmatch` without flags for one component: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`.
fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| wildcard_match(rest, &name[skip..])),
        Some((b'?', rest)) => !name.is_empty() && wildcard_match(rest, &name[1..]),
        Some((b'[', rest)) => {
            let Some((&first, name_rest)) = name.split_first() else {
                return false;
            };
            let (negated, body) = match rest.first() {
                Some(b'!' | b'^') => (true, &rest[1..]),
                _ => (false, rest),
            };
            // A `]` right after `[` or `[!` is a member, not the end.
            let Some(close) = body
                .iter()
                .enumerate()
                .skip(1)
                .find(|(_, &c)| c == b']')
                .map(|(i, _)| i)
                .or_else(|| (body.first() == Some(&b']')).then_some(usize::MAX))
                .filter(|&i| i != usize::MAX)
            else {
                // No closing bracket: a literal `[`.
                return first == b'[' && wildcard_match(rest, name_rest);
            };
            let set = &body[..close];
            let mut member = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    member |= (set[i]..=set[i + 2]).contains(&first);
                    i += 3;
                } else {
                    member |= set[i] == first;
                    i += 1;
                }
            }
            member != negated && wildcard_match(&body[close + 1..], name_rest)
        }
        Some((&c, rest)) => name.first() == Some(&c) && wildcard_match(rest, &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct FakeFacts {
        env: HashMap<&'static str, &'static str>,
        options: HashMap<&'static str, &'static str>,
        files: Vec<&'static str>,
        dirs: Vec<&'static str>,
        reload: bool,
    }

    fn facts() -> FakeFacts {
        FakeFacts {
            env: HashMap::from([("STAGE", "prod"), ("EMPTY", "")]),
            options: HashMap::from([("processes", "4"), ("master", "")]),
            files: vec![
                "/etc/app.ini",
                "/etc/conf.d/a.ini",
                "/etc/conf.d/b.ini",
                "/etc/conf.d/.hidden.ini",
                "/etc/conf.d/c.txt",
                "/etc/lines",
            ],
            dirs: vec!["/etc", "/etc/conf.d", "/etc/conf.d/sub"],
            reload: false,
        }
    }

    impl Facts for FakeFacts {
        fn env(&self, name: &str) -> Option<String> {
            self.env.get(name).map(|v| v.to_string())
        }
        fn option(&self, name: &str) -> Option<String> {
            self.options.get(name).map(|v| v.to_string())
        }
        fn hostname(&self) -> &str {
            "web1"
        }
        fn is_reload(&self) -> bool {
            self.reload
        }
        fn stat(&self, path: &str) -> Option<PathKind> {
            let path = path.trim_end_matches('/');
            if self.files.contains(&path) {
                Some(PathKind::File)
            } else if self.dirs.contains(&path) {
                Some(PathKind::Dir)
            } else {
                None
            }
        }
        fn readable(&self, path: &str) -> bool {
            self.stat(path).is_some()
        }
        fn list_dir(&self, path: &str) -> Vec<(String, bool)> {
            let prefix = format!("{}/", path.trim_end_matches('/'));
            let child = |p: &&str| {
                p.strip_prefix(&prefix)
                    .filter(|rest| !rest.contains('/'))
                    .map(str::to_string)
            };
            let mut out: Vec<(String, bool)> = self
                .files
                .iter()
                .filter_map(&child)
                .map(|n| (n, false))
                .collect();
            out.extend(self.dirs.iter().filter_map(&child).map(|n| (n, true)));
            out
        }
        fn read(&self, path: &str) -> Result<String, String> {
            match path {
                "/etc/lines" => Ok("one\r\ntwo\n\nlast".to_string()),
                _ => Err(format!("cannot read `{path}`")),
            }
        }
    }

    /// `expected`: the kept values joined by ` | `, or `-` when the entry is dropped.
    fn check_if(key: &str, arg: &str, expected: &str) {
        let Some(Logic::If {
            test: which,
            negated,
        }) = opening(key)
        else {
            panic!("{key} is not an if");
        };
        let (keep, item) = test(which, negated, arg, &facts());
        let got = if keep {
            substitute("v=%(_)", item.as_deref())
        } else {
            "-".to_string()
        };
        assert_eq!(got, expected, "{key} = {arg}");
    }

    #[test]
    fn conditions() {
        check_if("if-env", "STAGE", "v=prod");
        check_if("ifenv", "STAGE=prod", "v=prod");
        check_if("if-env", "STAGE=dev", "-");
        check_if("if-env", "NOPE", "-");
        check_if("if-env", "EMPTY", "v=");
        check_if("if-not-env", "NOPE", "v=%(_)");
        check_if("if-not-env", "STAGE", "-");
        check_if("if-not-env", "STAGE=dev", "v=prod");
        check_if("if-not-env", "STAGE=prod", "-");
        check_if("if-opt", "processes", "v=4");
        check_if("if-opt", "processes=4", "v=4");
        check_if("if-opt", "processes=2", "-");
        check_if("if-opt", "master", "v=");
        check_if("if-not-opt", "threads", "v=%(_)");
        check_if("if-not-opt", "processes", "-");
        check_if("if-exists", "/etc/app.ini", "v=/etc/app.ini");
        check_if("if-exists", "/etc/conf.d", "v=/etc/conf.d");
        check_if("if-not-exists", "/nope", "v=/nope");
        check_if("if-file", "/etc/app.ini", "v=/etc/app.ini");
        check_if("if-file", "/etc/conf.d", "-");
        check_if("if-not-file", "/etc/conf.d", "v=/etc/conf.d");
        check_if("if-dir", "/etc/conf.d", "v=/etc/conf.d");
        check_if("if-directory", "/etc/app.ini", "-");
        check_if("if-not-dir", "/nope", "v=/nope");
        check_if("if-reload", "", "-");
        check_if("if-not-reload", "", "v=%(_)");
        check_if("if-hostname", "web1", "v=web1");
        check_if("if-hostname", "web2", "-");
        check_if("if-not-hostname", "web2", "v=web2");
        check_if("if-hostname-match", "^web[0-9]$", "v=^web[0-9]$");
        check_if("if-hostname-match", "eb", "v=eb");
        check_if("if-hostname-match", "^db", "-");
        check_if("if-not-hostname-match", "^db", "v=^db");
        check_if("if-hostname-match", "(", "-");
        check_if("if-plugin", "python3", "v=python3");
        check_if("if-plugin", "php", "-");
        check_if("if-not-plugin", "php", "v=php");
    }

    fn check_items(key: &str, arg: &str, expected: &str) {
        let logic = opening(key).expect("a for key");
        let got = match items(logic, arg, &facts()) {
            Ok(items) => items.join(" | "),
            Err(message) => format!("error: {message}"),
        };
        assert_eq!(got, expected, "{key} = {arg}");
    }

    #[test]
    fn loops() {
        check_items("for", "a b  c", "a | b | c");
        check_items("for", "", "");
        check_items("for-times", "3", "1 | 2 | 3");
        check_items("for-times", "0", "");
        check_items("for-times", "2 ; workers", "1 | 2");
        check_items("for-times", "x", "");
        check_items("for-readline", "/etc/lines", "one | two |  | last");
        check_items("for-readline", "/nope", "error: cannot read `/nope`");
        check_items(
            "for-glob",
            "/etc/conf.d/*.ini",
            "/etc/conf.d/a.ini | /etc/conf.d/b.ini",
        );
        check_items("for-glob", "/etc/conf.d/.*.ini", "/etc/conf.d/.hidden.ini");
        check_items(
            "for-glob",
            "/etc/conf.d/[ab].ini",
            "/etc/conf.d/a.ini | /etc/conf.d/b.ini",
        );
        check_items(
            "for-glob",
            "/etc/conf.d/[!a]*",
            "/etc/conf.d/b.ini | /etc/conf.d/c.txt | /etc/conf.d/sub/",
        );
        check_items("for-glob", "/etc/*/a.ini", "/etc/conf.d/a.ini");
        check_items("for-glob", "/etc/conf.d", "/etc/conf.d/");
        check_items("for-glob", "/etc/*.nope", "/etc/*.nope");
        check_items(
            "for-glob",
            "/etc/conf.?/?.ini",
            "/etc/conf.d/a.ini | /etc/conf.d/b.ini",
        );
    }

    #[test]
    fn ends_and_atoi() {
        for key in ["end", "endif", "endfor", "end-if", "end-for"] {
            assert!(is_end(key), "{key}");
        }
        assert!(!is_end("endfo"));
        assert_eq!(atoi(" 12abc"), 12);
        assert_eq!(atoi("-3"), -3);
        assert_eq!(atoi("true"), 0);
        assert_eq!(atoi(""), 0);
        assert_eq!(substitute("%(_)/%(_)", Some("x")), "x/x");
    }
}
