//! Log regular expressions with uWSGI's PCRE meaning (`log-route`, `log-drain`, `log-filter`,
//! `log-alarm`).
//!
//! uWSGI compiles these with PCRE. Most patterns are also valid for the `regex` crate, which
//! matches in linear time, so that is tried first. Patterns it refuses but PCRE accepts get
//! a backtracking engine (`fancy-regex`): look-arounds (`^((?!\{).)*$`, the usual "lines that
//! are not JSON" route) and back-references. A `{` that does not start a `{n}`, `{n,}` or
//! `{n,m}` quantifier is a literal in PCRE (`log-route = applogger {`), so it is escaped
//! before either engine sees it. This module only compiles and matches; it must not know
//! which option a pattern came from.

/// A compiled regular expression, equal to another with the same source.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// As written in the config (what `--print-config` shows).
    source: String,
    engine: Engine,
}

#[derive(Debug, Clone)]
enum Engine {
    Linear(regex::Regex),
    Backtracking(fancy_regex::Regex),
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Pattern {
    /// Compiles `source` as PCRE would read it; the error is one lowercase line.
    pub fn new(source: &str) -> Result<Pattern, String> {
        let pcre = escape_literal_braces(source);
        let linear_error = match regex::Regex::new(&pcre) {
            Ok(re) => {
                return Ok(Pattern {
                    source: source.to_owned(),
                    engine: Engine::Linear(re),
                })
            }
            Err(err) => last_line(&err.to_string()),
        };
        match fancy_regex::Regex::new(&pcre) {
            Ok(re) => Ok(Pattern {
                source: source.to_owned(),
                engine: Engine::Backtracking(re),
            }),
            Err(err) => Err(format!(
                "invalid regular expression `{source}`: {linear_error} ({err})"
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// A backtracking pattern that exceeds its step limit on `text` does not match (PCRE's
    /// `PCRE_ERROR_MATCHLIMIT`, which uWSGI treats as no match).
    pub fn is_match(&self, text: &str) -> bool {
        match &self.engine {
            Engine::Linear(re) => re.is_match(text),
            Engine::Backtracking(re) => re.is_match(text).unwrap_or(false),
        }
    }
}

fn last_line(message: &str) -> String {
    message.lines().last().unwrap_or("").trim().to_owned()
}

/// Escapes each `{` that PCRE reads as a literal: one not followed by digits, an optional
/// `,` and optional digits, then `}`. Escaped characters and character classes are copied as
/// they are.
fn escape_literal_braces(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len() + 2);
    let mut in_class = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\\' => {
                let end = (i + 2).min(bytes.len());
                out.push_str(&source[i..end]);
                i = end;
                continue;
            }
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'{' if !in_class && !is_quantifier(&bytes[i..]) => {
                out.push_str("\\{");
                i += 1;
                continue;
            }
            _ => {}
        }
        // Copy one whole character (the pattern may hold UTF-8).
        let len = source[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&source[i..i + len]);
        i += len;
    }
    out
}

/// Whether `text` (starting at `{`) is `{n}`, `{n,}` or `{n,m}`.
fn is_quantifier(text: &[u8]) -> bool {
    let mut i = 1;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < text.len() && text[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return false;
    }
    if i < text.len() && text[i] == b',' {
        i += 1;
        digits(&mut i);
    }
    i < text.len() && text[i] == b'}'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_brace_is_a_literal_as_in_pcre() {
        let p = Pattern::new("{").unwrap();
        assert!(p.is_match(r#"{"level": "info"}"#));
        assert!(!p.is_match("plain line"));
        assert_eq!(p.as_str(), "{");
        // Quantifiers keep their meaning.
        assert!(Pattern::new("^a{2}$").unwrap().is_match("aa"));
        assert!(!Pattern::new("^a{2}$").unwrap().is_match("a{2}"));
        assert!(Pattern::new("^a{2,}$").unwrap().is_match("aaa"));
        assert!(Pattern::new("^x{,2}$").unwrap().is_match("x{,2}"));
        assert!(Pattern::new(r"\{").unwrap().is_match("{"));
        assert!(Pattern::new("[{]").unwrap().is_match("{"));
    }

    #[test]
    fn look_arounds_match_as_in_pcre() {
        // The usual pair: JSON lines to one logger, everything else to another.
        let not_json = Pattern::new(r"^((?!\{).)*$").unwrap();
        assert!(not_json.is_match("*** Starting uWSGI ***"));
        assert!(!not_json.is_match(r#"{"msg": "hello"}"#));
        let back_reference = Pattern::new(r"(\w+) \1").unwrap();
        assert!(back_reference.is_match("again again"));
        assert!(!back_reference.is_match("again once"));
    }

    #[test]
    fn a_pattern_no_engine_reads_is_an_error() {
        let err = Pattern::new("(unclosed").unwrap_err();
        assert!(
            err.starts_with("invalid regular expression `(unclosed`"),
            "{err}"
        );
    }
}
