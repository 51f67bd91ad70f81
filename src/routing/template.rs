//! The text of a route's action or condition, parsed once: `$1`…`$9` (the captures of the
//! rule's regular expression) and `${VAR}` (a request variable, `${HTTP_HOST}`) or
//! `${func[arg]}` (uWSGI's route variables: `${cookie[name]}`, `${qs[name]}`, …).
//!
//! uWSGI substitutes the captures first and then reads `${…}` in the result, so a capture that
//! holds `${…}` is expanded again; here both are one pass over the written text, so what a
//! client sends is never read as a placeholder.
//!
//! It does no I/O: rendering asks a [`Lookup`] for the values.

/// One parsed template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Capture(usize),
    Var(String),
    Func(Func, String),
}

/// uWSGI's route variables (`${name[key]}`), the ones of its core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Cookie,
    Qs,
    Mime,
    Uwsgi,
    Time,
    HttpTime,
    Base64,
    Hex,
    Upper,
    Lower,
}

impl Func {
    fn named(name: &str) -> Option<Func> {
        Some(match name {
            "cookie" => Func::Cookie,
            "qs" => Func::Qs,
            "mime" => Func::Mime,
            "uwsgi" => Func::Uwsgi,
            "time" => Func::Time,
            "httptime" => Func::HttpTime,
            "base64" => Func::Base64,
            "hex" => Func::Hex,
            "upper" => Func::Upper,
            "lower" => Func::Lower,
            _ => return None,
        })
    }
}

/// What a template's placeholders read.
pub trait Lookup {
    /// Capture `n` of the rule's match (0: the whole match); `None` when it did not take part.
    fn capture(&self, n: usize) -> Option<&[u8]>;
    /// A request variable.
    fn var(&self, name: &str) -> Option<&[u8]>;
    /// A route variable, appended to `out`.
    fn func(&self, func: Func, arg: &str, out: &mut Vec<u8>);
}

impl Template {
    /// Parses `text`. An unknown `${name[…]}` is an error: uWSGI would find no such variable
    /// and silently put nothing there.
    pub fn parse(text: &str) -> Result<Template, String> {
        let bytes = text.as_bytes();
        let mut pieces = Vec::new();
        let mut literal = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let byte = bytes[i];
            if byte != b'$' || i + 1 >= bytes.len() {
                literal.push(byte);
                i += 1;
                continue;
            }
            let next = bytes[i + 1];
            if next.is_ascii_digit() {
                flush(&mut pieces, &mut literal);
                pieces.push(Piece::Capture(usize::from(next - b'0')));
                i += 2;
                continue;
            }
            if next == b'{' {
                if let Some(len) = bytes[i + 2..].iter().position(|&b| b == b'}') {
                    let key = &text[i + 2..i + 2 + len];
                    flush(&mut pieces, &mut literal);
                    pieces.push(placeholder(key)?);
                    i += 3 + len;
                    continue;
                }
            }
            literal.push(byte);
            i += 1;
        }
        flush(&mut pieces, &mut literal);
        Ok(Template { pieces })
    }

    /// The text when the template has no placeholder.
    pub fn as_literal(&self) -> Option<&[u8]> {
        match self.pieces.as_slice() {
            [] => Some(b""),
            [Piece::Text(text)] => Some(text),
            _ => None,
        }
    }

    /// Renders into a new buffer.
    pub fn render(&self, lookup: &dyn Lookup) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.extend_from_slice(text),
                Piece::Capture(n) => out.extend_from_slice(lookup.capture(*n).unwrap_or(b"")),
                Piece::Var(name) => out.extend_from_slice(lookup.var(name).unwrap_or(b"")),
                Piece::Func(func, arg) => lookup.func(*func, arg, &mut out),
            }
        }
        out
    }
}

fn flush(pieces: &mut Vec<Piece>, literal: &mut Vec<u8>) {
    if !literal.is_empty() {
        pieces.push(Piece::Text(std::mem::take(literal)));
    }
}

fn placeholder(key: &str) -> Result<Piece, String> {
    if let (Some(open), true) = (key.find('['), key.ends_with(']')) {
        let name = &key[..open];
        let arg = &key[open + 1..key.len() - 1];
        return match Func::named(name) {
            Some(func) => Ok(Piece::Func(func, arg.to_string())),
            None => Err(format!(
                "unknown route variable `${{{key}}}` (kaiser has cookie, qs, mime, uwsgi, time, httptime, base64, hex, upper, lower)"
            )),
        };
    }
    Ok(Piece::Var(key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Lookup for Fixed {
        fn capture(&self, n: usize) -> Option<&[u8]> {
            match n {
                0 => Some(b"/blog/42"),
                1 => Some(b"42"),
                _ => None,
            }
        }
        fn var(&self, name: &str) -> Option<&[u8]> {
            (name == "HTTP_HOST").then_some(b"example.com".as_slice())
        }
        fn func(&self, func: Func, arg: &str, out: &mut Vec<u8>) {
            out.extend_from_slice(format!("{func:?}:{arg}").as_bytes());
        }
    }

    fn check(text: &str, expected: &str) {
        let template = Template::parse(text).unwrap();
        assert_eq!(
            String::from_utf8(template.render(&Fixed)).unwrap(),
            expected,
            "{text}"
        );
    }

    #[test]
    fn renders() {
        check("/post?id=$1", "/post?id=42");
        check("https://${HTTP_HOST}$0", "https://example.com/blog/42");
        check("$2-${NOPE}-", "--");
        check("${cookie[sid]}", "Cookie:sid");
        check("cost $ 5 $x ${unclosed", "cost $ 5 $x ${unclosed");
        check("end$", "end$");
        check("", "");
    }

    #[test]
    fn unknown_function_is_an_error() {
        let err = Template::parse("${cache[key]}").unwrap_err();
        assert!(err.contains("`${cache[key]}`"), "{err}");
    }

    #[test]
    fn literal() {
        assert_eq!(
            Template::parse("/x").unwrap().as_literal(),
            Some(b"/x".as_slice())
        );
        assert_eq!(Template::parse("/$1").unwrap().as_literal(), None);
    }
}
