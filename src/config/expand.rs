//! Text expansion as uWSGI does it: magic variables (`%d`, `%n`, `%k`, …) over a file's raw
//! text, then `$(ENV)`, `@(file)` and `%(placeholder)` over entry values.
//!
//! Each function here is pure: the environment, the machine facts and the file reader come
//! in as arguments. Nothing here knows which keys are options.

use super::Context;

/// Facts about one config file for its magic variables (`config_magic_table_fill`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileFacts {
    /// `%o`: the name as given.
    pub given: String,
    /// `%p`: the absolute path (cwd joined and normalised; symlinks are not resolved).
    pub abs: String,
    /// `%x`: the section, if one was given with `file:section`.
    pub section: String,
    /// `%i`: the inode, when known.
    pub inode: Option<u64>,
}

impl FileFacts {
    fn basename(&self) -> &str {
        self.abs.rsplit('/').next().unwrap_or(&self.abs)
    }

    fn dir(&self) -> &str {
        &self.abs[..self.abs.len() - self.basename().len()]
    }

    fn var(&self, name: char) -> Option<String> {
        let basename = self.basename();
        let value = match name {
            'o' => self.given.clone(),
            'p' => self.abs.clone(),
            's' => basename.to_string(),
            // With the trailing slash, as uWSGI gives it (`%dapp.py` works).
            'd' => self.dir().to_string(),
            'c' => self
                .dir()
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string(),
            '0'..='9' => {
                let index = name as usize - '0' as usize;
                let part = self.dir().split('/').filter(|p| !p.is_empty()).nth(index);
                part.unwrap_or("").to_string()
            }
            'e' => self
                .given
                .rsplit_once('.')
                .map(|(_, ext)| ext.to_string())
                .unwrap_or_default(),
            'n' => basename
                .rsplit_once('.')
                .map_or(basename, |(stem, _)| stem)
                .to_string(),
            'x' => self.section.clone(),
            'i' => self.inode.map(|i| i.to_string()).unwrap_or_default(),
            'j' => format!("{:08x}", djb33x(self.abs.as_bytes())),
            _ => return None,
        };
        Some(value)
    }
}

/// uWSGI's `djb33x_hash`, used for `%j`.
fn djb33x(bytes: &[u8]) -> u32 {
    bytes.iter().fold(5381u32, |hash, &byte| {
        (hash << 5).wrapping_add(hash) ^ u32::from(byte)
    })
}

/// A `%X` that magic substitution removed because it has no meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemovedMagic {
    /// 1-based line of the original text.
    pub line: usize,
    pub var: char,
}

/// Substitutes magic variables over a whole file's raw text, comments and section headers
/// included, exactly as uWSGI's `magic_sub`: `%%` is `%`, `%(` is kept for placeholders,
/// and any other `%X` without a meaning is removed (uWSGI fills its table with "").
/// `first` is the first file loaded with `ini`, for the uppercase variables.
pub(crate) fn magic(
    text: &str,
    file: &FileFacts,
    first: Option<&FileFacts>,
    ctx: &Context,
) -> (String, Vec<RemovedMagic>) {
    let mut out = String::with_capacity(text.len());
    let mut removed = Vec::new();
    let mut line = 1;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        }
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(name) = chars.next() else {
            out.push('%');
            break;
        };
        match name {
            '%' => out.push('%'),
            '(' => out.push_str("%("),
            _ => match magic_var(name, file, first, ctx) {
                Some(value) => out.push_str(&value),
                None => {
                    removed.push(RemovedMagic { line, var: name });
                    if name == '\n' {
                        // uWSGI eats the newline too, joining the two lines.
                        line += 1;
                    }
                }
            },
        }
    }
    (out, removed)
}

fn magic_var(
    name: char,
    file: &FileFacts,
    first: Option<&FileFacts>,
    ctx: &Context,
) -> Option<String> {
    let value = match name {
        'v' => ctx.cwd.display().to_string(),
        'h' => ctx.hostname.clone(),
        'V' => env!("CARGO_PKG_VERSION").to_string(),
        'k' => ctx.cpu_count.to_string(),
        't' => ctx.now_unix.to_string(),
        'T' => ctx.now_micros.to_string(),
        'u' => ctx.uid.to_string(),
        'U' => ctx.user.clone(),
        'g' => ctx.gid.to_string(),
        'G' => ctx.group.clone(),
        'b' => ctx.binary.display().to_string(),
        '[' => "\x1b".to_string(),
        'O' | 'P' | 'S' | 'D' | 'C' | 'E' | 'N' | 'X' | 'I' | 'J' => first
            .and_then(|facts| facts.var(name.to_ascii_lowercase()))
            .unwrap_or_default(),
        _ => return file.var(name),
    };
    Some(value)
}

/// Replaces `$(VAR)` with the environment variable. Unset variables are left literally
/// (uWSGI 2.0) and reported; `$(VAR:-default)` and `$(VAR-default)` (uWSGI 2.1) give the
/// default when unset (`:-` also when empty).
pub(crate) fn env_vars(value: &str, env: &[(String, String)]) -> (String, Vec<String>) {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, v)| v.as_str())
    };
    let mut unset = Vec::new();
    let out = replace_calls(value, '$', |inner| {
        if let Some((name, default)) = inner.split_once(":-") {
            return Some(match lookup(name) {
                Some(v) if !v.is_empty() => v.to_string(),
                _ => default.to_string(),
            });
        }
        if let Some((name, default)) = inner.split_once('-') {
            return Some(lookup(name).unwrap_or(default).to_string());
        }
        let found = lookup(inner).map(str::to_string);
        // `$(dirname $(which python))` inside an `@(exec://…)` is shell text, not a variable
        // someone forgot to set: only a name without spaces is reported.
        if found.is_none() && !inner.contains(char::is_whitespace) {
            unset.push(inner.to_string());
        }
        found
    });
    (out, unset)
}

/// Replaces `@(path)` with the file's contents minus one trailing `\n` or `\r`.
pub(crate) fn file_includes(
    value: &str,
    read: &mut dyn FnMut(&str) -> Result<String, String>,
    errors: &mut Vec<String>,
) -> String {
    replace_calls(value, '@', |path| match read(path) {
        Ok(mut text) => {
            if text.ends_with('\n') || text.ends_with('\r') {
                text.pop();
            }
            Some(text)
        }
        Err(message) => {
            errors.push(message);
            None
        }
    })
}

/// Replaces each `<sigil>(inner)` with `f(inner)`, leaving it as is when `f` gives nothing.
/// Parentheses nest, as in uWSGI's `uwsgi_apply_config_pass`: `@(exec://dirname $(which
/// python))` runs the whole command.
fn replace_calls(value: &str, sigil: char, mut f: impl FnMut(&str) -> Option<String>) -> String {
    let open = format!("{sigil}(");
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + 2..];
        let Some(end) = closing_paren(after) else {
            break;
        };
        out.push_str(&rest[..start]);
        let inner = &after[..end];
        match f(inner) {
            Some(replacement) => out.push_str(&replacement),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The index of the `)` that closes a `(` just before `text`, counting nested pairs.
fn closing_paren(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return Some(i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The entries a `declare-option` custom option stands for (uWSGI's `uwsgi_opt_custom`):
/// the template's `key=value` items split on `;` (up to the first without `=`), with `$1`,
/// `$2`, … in keys and values replaced by the value's space-separated words.
pub(crate) fn custom_option(template: &str, value: &str) -> Vec<(String, String)> {
    let mut args: Vec<&str> = value.split(' ').filter(|w| !w.is_empty()).collect();
    if args.is_empty() {
        args.push("");
    }
    let fill = |text: &str| {
        args.iter()
            .enumerate()
            .fold(text.to_string(), |text, (index, arg)| {
                text.replace(&format!("${}", index + 1), arg)
            })
    };
    template
        .split(';')
        .filter(|item| !item.is_empty())
        .map_while(|item| item.split_once('='))
        .map(|(key, value)| (fill(key), fill(value)))
        .collect()
}

/// How deep placeholders may refer to placeholders before we call it a loop.
const MAX_PLACEHOLDER_DEPTH: usize = 16;

/// The result of expanding `%(…)` placeholders in one value.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Expanded {
    pub value: String,
    /// Names that resolved, so keys used only as placeholders are not called unknown.
    pub used: Vec<String>,
    /// `%(name)` left literally because nothing defines `name`.
    pub unresolved: Vec<String>,
    /// Set when references went deeper than [`MAX_PLACEHOLDER_DEPTH`] (a loop).
    pub too_deep: bool,
}

/// Expands `%(name)` placeholders with the first value of that key, and `%(a + 1)` style
/// arithmetic (`core/config.c:uwsgi_manage_placeholder`): the text is split on spaces and
/// evaluated left to right; `+ - * /` combine integers (division by zero gives 0), `++` and
/// `--` step the current value, and two operands in a row are concatenated. Operands are
/// numbers or key names. Unresolved single names stay literally, as in uWSGI.
pub(crate) fn placeholders(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Expanded {
    let mut expanded = Expanded::default();
    expanded.value = expand_level(value, lookup, 0, &mut expanded);
    expanded
}

fn expand_level(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    depth: usize,
    state: &mut Expanded,
) -> String {
    if depth > MAX_PLACEHOLDER_DEPTH {
        state.too_deep = true;
        return value.to_string();
    }
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("%(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        // Find the matching `)`, allowing nested parentheses.
        let mut level = 0usize;
        let mut end = None;
        for (i, c) in after.char_indices() {
            match c {
                '(' => level += 1,
                ')' if level == 0 => {
                    end = Some(i);
                    break;
                }
                ')' => level -= 1,
                _ => {}
            }
        }
        let Some(end) = end else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = expand_level(&after[..end], lookup, depth + 1, state);
        out.push_str(&resolve(&inner, lookup, depth, state));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn resolve(
    inner: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    depth: usize,
    state: &mut Expanded,
) -> String {
    let value_of = |name: &str, state: &mut Expanded| -> Option<String> {
        let found = lookup(name)?;
        state.used.push(name.to_string());
        Some(expand_level(&found, lookup, depth + 1, state))
    };
    if !inner.contains(' ') {
        return match value_of(inner, state) {
            Some(found) => found,
            None => {
                state.unresolved.push(inner.to_string());
                format!("%({inner})")
            }
        };
    }
    let mut current: Option<String> = None;
    let mut operator: Option<&str> = None;
    for token in inner.split(' ').filter(|t| !t.is_empty()) {
        match token {
            "+" | "-" | "*" | "/" => {
                operator = Some(token);
                continue;
            }
            "++" | "--" => {
                let n = number(current.as_deref().unwrap_or("0"));
                let n = if token == "++" {
                    n.wrapping_add(1)
                } else {
                    n.wrapping_sub(1)
                };
                current = Some(n.to_string());
                continue;
            }
            _ => {}
        }
        let operand = value_of(token, state).unwrap_or_else(|| token.to_string());
        current = Some(match (current, operator.take()) {
            (None, _) => operand,
            (Some(left), Some(op)) => {
                let (a, b) = (number(&left), number(&operand));
                let result = match op {
                    "+" => a.wrapping_add(b),
                    "-" => a.wrapping_sub(b),
                    "*" => a.wrapping_mul(b),
                    _ => a.checked_div(b).unwrap_or(0),
                };
                result.to_string()
            }
            (Some(left), None) => left + &operand,
        });
    }
    current.unwrap_or_default()
}

/// `strtoll` semantics: the leading integer, or 0.
fn number(text: &str) -> i64 {
    super::logic::leading_integer(text.trim_start())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::PathBuf;

    pub(crate) fn test_context() -> Context {
        Context {
            cwd: PathBuf::from("/srv/cwd"),
            hostname: "web1".into(),
            uid: 33,
            user: "www-data".into(),
            gid: 34,
            group: "www".into(),
            cpu_count: 4,
            binary: PathBuf::from("/usr/bin/kaiser"),
            now_unix: 1700000000,
            now_micros: 1700000000123456,
            is_reload: false,
        }
    }

    fn facts(abs: &str, section: &str) -> FileFacts {
        FileFacts {
            given: abs.rsplit('/').next().unwrap().to_string(),
            abs: abs.into(),
            section: section.into(),
            inode: Some(42),
        }
    }

    fn check_magic(text: &str, expected: &str) {
        let file = facts("/tmp/t1/sub/app.ini", "");
        let first = facts("/etc/uwsgi/main.ini", "prod");
        let (out, _) = magic(text, &file, Some(&first), &test_context());
        assert_eq!(out, expected, "magic of {text:?}");
    }

    #[test]
    fn magic_variables() {
        check_magic("%d", "/tmp/t1/sub/");
        check_magic("%dapp.py", "/tmp/t1/sub/app.py");
        check_magic("%p", "/tmp/t1/sub/app.ini");
        check_magic("%s", "app.ini");
        check_magic("%n", "app");
        check_magic("%e", "ini");
        check_magic("%c", "sub");
        check_magic("%0/%1/%2/%3", "tmp/t1/sub/");
        check_magic("%o", "app.ini");
        check_magic("%x", "");
        check_magic("%i", "42");
        check_magic("%v", "/srv/cwd");
        check_magic("%h", "web1");
        check_magic("%k", "4");
        check_magic("%t %T", "1700000000 1700000000123456");
        check_magic("%u %U %g %G", "33 www-data 34 www");
        check_magic("%b", "/usr/bin/kaiser");
        check_magic("%[", "\x1b");
        check_magic("%N %X %D", "main prod /etc/uwsgi/");
        check_magic("100%%", "100%");
        check_magic("%(project)", "%(project)");
        check_magic("x %Y y %% z", "x  y % z");
        check_magic("%Y-%m-%d", "--/tmp/t1/sub/");
        check_magic("trailing %", "trailing %");
        check_magic("a%\nb", "ab");
    }

    #[test]
    fn magic_reports_removed_variables_with_lines() {
        let file = facts("/a/b.ini", "");
        let (_, removed) = magic("ok\nlog-date = %Y %m\n", &file, None, &test_context());
        assert_eq!(
            removed,
            vec![
                RemovedMagic { line: 2, var: 'Y' },
                RemovedMagic { line: 2, var: 'm' }
            ]
        );
        let (out, _) = magic("%N", &file, None, &test_context());
        assert_eq!(
            out, "",
            "uppercase variables are empty without a first `ini`"
        );
    }

    fn check_env(value: &str, expected: &str) {
        let env = vec![
            ("HOME".to_string(), "/home/u".to_string()),
            ("EMPTY".to_string(), String::new()),
        ];
        assert_eq!(
            env_vars(value, &env).0,
            expected,
            "env expansion of {value:?}"
        );
    }

    #[test]
    fn env_expansion() {
        check_env("$(HOME)/app", "/home/u/app");
        check_env("$(NOPE)/app", "$(NOPE)/app");
        check_env("$(NOPE:-/tmp)", "/tmp");
        check_env("$(EMPTY:-/tmp)", "/tmp");
        check_env("$(EMPTY-/tmp)", "");
        check_env("$(NOPE-x)", "x");
        check_env("$HOME", "$HOME");
        check_env("a $(HOME) b $(HOME)", "a /home/u b /home/u");
        check_env("$(HOME", "$(HOME");
        assert_eq!(env_vars("$(A) $(B)", &[]).1, vec!["A", "B"]);
        // Shell text in an `@(exec://…)` is left alone and not reported as a variable.
        let (out, unset) = env_vars("@(exec://dirname $(dirname $(which python)))", &[]);
        assert_eq!(out, "@(exec://dirname $(dirname $(which python)))");
        assert!(unset.is_empty(), "{unset:?}");
    }

    #[test]
    fn nested_parentheses_belong_to_the_outer_call() {
        let mut seen = Vec::new();
        let out = replace_calls(
            "home = @(exec://dirname $(dirname $(which python)))/x",
            '@',
            |inner| {
                seen.push(inner.to_string());
                Some("/venv".into())
            },
        );
        assert_eq!(out, "home = /venv/x");
        assert_eq!(seen, ["exec://dirname $(dirname $(which python))"]);
        // An unbalanced call is left as it is.
        assert_eq!(replace_calls("@(a(b)", '@', |_| Some("x".into())), "@(a(b)");
    }

    #[test]
    fn file_expansion() {
        let mut read = |path: &str| match path {
            "/secret" => Ok("s3cret\n".to_string()),
            "/two" => Ok("x\n\n".to_string()),
            _ => Err(format!("cannot read `{path}`")),
        };
        let mut errors = Vec::new();
        assert_eq!(
            file_includes("k=@(/secret)", &mut read, &mut errors),
            "k=s3cret"
        );
        assert_eq!(file_includes("@(/two)", &mut read, &mut errors), "x\n");
        assert!(errors.is_empty());
        assert_eq!(
            file_includes("@(/missing)", &mut read, &mut errors),
            "@(/missing)"
        );
        assert_eq!(errors, vec!["cannot read `/missing`"]);
    }

    fn check_ph(value: &str, expected: &str) {
        let lookup = |name: &str| -> Option<String> {
            let value = match name {
                "project" => "mysite",
                "base" => "/var/www",
                "processes" => "4",
                "dup" => "1",
                "nested" => "%(base)/%(project)",
                "loop" => "%(loop)",
                "name" => "project",
                _ => return None,
            };
            Some(value.to_string())
        };
        assert_eq!(
            placeholders(value, &lookup).value,
            expected,
            "placeholders in {value:?}"
        );
    }

    #[test]
    fn placeholder_expansion() {
        check_ph("%(base)/%(project)", "/var/www/mysite");
        check_ph("%(project).wsgi:application", "mysite.wsgi:application");
        check_ph("%(nested)/static", "/var/www/mysite/static");
        check_ph("%(nope)", "%(nope)");
        check_ph("a %(nope) b", "a %(nope) b");
        check_ph("%(processes + 1)", "5");
        check_ph("%(processes * 2)", "8");
        check_ph("%(processes - 6)", "-2");
        check_ph("%(processes / 0)", "0");
        check_ph("%(dup + 3)", "4");
        check_ph("%(processes ++)", "5");
        check_ph("%(processes --)", "3");
        check_ph("%(3 + 4 * 2)", "14");
        check_ph("%(base /static)", "/var/www/static");
        check_ph("%(%(name))", "mysite");
        check_ph("%(unclosed", "%(unclosed");
        check_ph("no placeholders", "no placeholders");
        let lookup = |name: &str| (name == "loop").then(|| "%(loop)".to_string());
        assert!(placeholders("%(loop)", &lookup).too_deep);
    }
}
