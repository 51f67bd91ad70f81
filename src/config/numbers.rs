//! Numbers as uWSGI reads them, with one rule for every numeric option.
//!
//! uWSGI reads integers with `atoi`/`strtoul` and sizes with `strtoul`: the leading digits
//! count and the rest of the value is ignored without a word, so
//! `reload-on-rss = 2048 ; comment` is 2048 and `log-slow = true` is 0. kaiser reads the same
//! number and says what it ignored, naming the file and line: an inline comment gets the
//! comment hint, other trailing text a warning, a word that is a boolean the reading uWSGI
//! gives it. A value with no leading number at all (`four`, `$WORKERS`) is an error rather
//! than uWSGI's silent 0, with a hint when it looks like an environment variable.
//!
//! Nothing here knows what an option does; `typed.rs` calls [`read`] for numeric kinds.

use super::hints;

/// What reading a numeric value gave: the digits to use, and a warning to give (or an
/// error when there is no number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reading {
    /// The number, as text (`"2048"`, `"1.5"`), and a warning when text was ignored.
    Number {
        digits: String,
        warning: Option<String>,
    },
    Error(String),
}

/// Reads `value` for option `key` as uWSGI would. `decimals` allows `1.5` (sizes in MB,
/// which kaiser reads with decimals, a superset of uWSGI 2.0's `strtoul`).
pub(crate) fn read(key: &str, value: &str, decimals: bool) -> Reading {
    let (digits, rest) = leading_number(value, decimals);
    if digits.is_empty() || digits == "-" {
        return no_number(key, value, decimals);
    }
    if rest.is_empty() {
        return Reading::Number {
            digits: digits.to_string(),
            warning: None,
        };
    }
    let comment_starts_rest =
        hints::inline_comment(value).is_some_and(|at| value[digits.len()..at].trim().is_empty());
    let warning = if comment_starts_rest {
        hints::inline_comment_message(key, value, true)
    } else {
        format!(
            "uWSGI reads only the leading number of `{value}`, so `{key}` is {digits}; write the number alone"
        )
    };
    Reading::Number {
        digits: digits.to_string(),
        warning: Some(warning),
    }
}

/// A value without leading digits: uWSGI's `atoi` gives 0.
fn no_number(key: &str, value: &str, decimals: bool) -> Reading {
    let word = value.split([' ', '\t']).next().unwrap_or("");
    let boolean = ["true", "false", "yes", "no", "on", "off"]
        .iter()
        .any(|b| word.eq_ignore_ascii_case(b));
    if value.is_empty() || boolean {
        let what = if value.is_empty() {
            "an empty value".to_string()
        } else {
            format!("`{value}`")
        };
        return Reading::Number {
            digits: "0".to_string(),
            warning: Some(format!(
                "`{key}` takes a number; uWSGI reads {what} as 0 (`atoi`), and so does kaiser; write a number"
            )),
        };
    }
    let mut message = if decimals {
        format!("expected a size in megabytes such as `512` or `1.5`, got `{value}`")
    } else {
        format!("expected a whole number, got `{value}`")
    };
    if let Some(name) = dollar_name(value) {
        message.push_str(&format!(
            "; `${name}` is not expanded: uWSGI config files write environment variables as `$({name})`"
        ));
    }
    Reading::Error(message)
}

/// `NAME` of a leading `$NAME` or `${NAME}`.
fn dollar_name(value: &str) -> Option<String> {
    let rest = value.strip_prefix('$')?;
    let name: String = rest
        .trim_start_matches('{')
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The leading `-?digits(.digits)?` of `value` and the rest.
fn leading_number(value: &str, decimals: bool) -> (&str, &str) {
    let bytes = value.as_bytes();
    let mut end = usize::from(bytes.first() == Some(&b'-'));
    let start_digits = end;
    while end < bytes.len() && bytes[end].is_ascii_digit() {
        end += 1;
    }
    if decimals && end > start_digits && bytes.get(end) == Some(&b'.') {
        end += 1;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
    }
    value.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expected`: `N` for a clean number, `N!` for a number with a warning (whose text
    /// must contain `contains`), or `error: …`.
    fn check(value: &str, decimals: bool, expected: &str, contains: &str) {
        let got = match read("opt", value, decimals) {
            Reading::Number {
                digits,
                warning: None,
            } => digits,
            Reading::Number {
                digits,
                warning: Some(warning),
            } => {
                assert!(warning.contains(contains), "{value:?}: {warning}");
                format!("{digits}!")
            }
            Reading::Error(message) => {
                assert!(message.contains(contains), "{value:?}: {message}");
                "error".to_string()
            }
        };
        assert_eq!(got, expected, "reading {value:?}");
    }

    #[test]
    fn numbers_as_uwsgi_reads_them() {
        check("2048", false, "2048", "");
        check("2048 ; comment", false, "2048!", "no inline comments");
        check("60   # seconds", false, "60!", "no inline comments");
        check("1000 // requests", false, "1000!", "no inline comments");
        check("30s", false, "30!", "leading number of `30s`");
        check("4 workers", false, "4!", "so `opt` is 4");
        check("1.5", true, "1.5", "");
        check("1.5", false, "1!", "leading number");
        check("2048 ; 2 GB", true, "2048!", "no inline comments");
        check("true", false, "0!", "reads `true` as 0");
        check("False", false, "0!", "reads `False` as 0");
        check("", false, "0!", "an empty value as 0");
        check(
            "four",
            false,
            "error",
            "expected a whole number, got `four`",
        );
        check("$MY_PROCESSES", false, "error", "`$(MY_PROCESSES)`");
        check("${MY_PROCESSES}", false, "error", "`$(MY_PROCESSES)`");
        check("-1", false, "-1", "");
        check("-", false, "error", "got `-`");
    }
}
