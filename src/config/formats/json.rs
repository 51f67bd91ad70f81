//! uWSGI's JSON config (`core/json.c`): the object named after the section (`uwsgi`) at the
//! top level; each member is an option. Strings are used as they are, `true` is `1`,
//! `false` and `null` are `0`, integers are written in decimal, and an array repeats the
//! option once per item. Members keep the file's order (jansson iterates in insertion
//! order), which matters for config logic and `include`.
//!
//! A small parser of its own rather than serde_json's `Value`, for two things that one
//! does not keep: the order of members and the line each one is on. Where uWSGI drops a
//! value silently (a fraction, a nested object), this reader says so.

use super::Parsed;

pub(super) fn parse(text: &str, section: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let mut reader = Reader {
        bytes: text.as_bytes(),
        at: 0,
        line: 1,
    };
    let root = match reader.document() {
        Ok(root) => root,
        Err((line, message)) => {
            parsed.error(line, format!("invalid JSON: {message}"));
            return parsed;
        }
    };
    let Value::Object(members) = root.value else {
        parsed.error(root.line, "the JSON document is not an object");
        return parsed;
    };
    let Some(config) = members.iter().rev().find(|member| member.key == section) else {
        parsed.error(
            root.line,
            format!("there is no object named `{section}` in the JSON document"),
        );
        return parsed;
    };
    let Value::Object(options) = &config.value.value else {
        parsed.error(
            config.value.line,
            format!("`{section}` must be an object of options"),
        );
        return parsed;
    };
    parsed.section_found = true;
    // jansson keeps the first position of a repeated key with its last value.
    let mut seen: Vec<(&str, usize)> = Vec::new();
    let mut chosen: Vec<&Member> = Vec::new();
    for member in options {
        match seen.iter().find(|(key, _)| *key == member.key) {
            Some(&(_, slot)) => {
                parsed.warn(
                    member.line,
                    format!(
                        "`{}` is repeated in the object, so this value replaces the earlier one (use an array to repeat an option)",
                        member.key
                    ),
                );
                chosen[slot] = member;
            }
            None => {
                seen.push((&member.key, chosen.len()));
                chosen.push(member);
            }
        }
    }
    for member in chosen {
        match &member.value.value {
            Value::Array(items) => {
                for item in items {
                    add(&mut parsed, &member.key, item);
                }
            }
            _ => add(&mut parsed, &member.key, &member.value),
        }
    }
    parsed
}

fn add(parsed: &mut Parsed, key: &str, value: &Located) {
    let text = match &value.value {
        Value::String(text) => text.clone(),
        Value::Bool(true) => "1".to_string(),
        Value::Bool(false) | Value::Null => "0".to_string(),
        Value::Number(number) if is_integer(number) => number.clone(),
        Value::Number(number) => {
            parsed.warn(
                value.line,
                format!("uWSGI ignores `{key}` with the non-integer `{number}`; kaiser uses it as written"),
            );
            number.clone()
        }
        Value::Array(_) | Value::Object(_) => {
            parsed.warn(
                value.line,
                format!("`{key}` holds a nested array or object, which is ignored (as uWSGI does)"),
            );
            return;
        }
    };
    parsed.push(value.line, key, &text);
}

fn is_integer(number: &str) -> bool {
    !number.contains(['.', 'e', 'E'])
}

#[derive(Debug)]
enum Value {
    Null,
    Bool(bool),
    /// As written, so integers keep every digit.
    Number(String),
    String(String),
    Array(Vec<Located>),
    Object(Vec<Member>),
}

#[derive(Debug)]
struct Located {
    line: usize,
    value: Value,
}

#[derive(Debug)]
struct Member {
    key: String,
    line: usize,
    value: Located,
}

type ReadError = (usize, String);

/// Objects nest no deeper than this, so a hostile file cannot overflow the stack.
const MAX_DEPTH: usize = 64;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    line: usize,
}

impl Reader<'_> {
    fn document(&mut self) -> Result<Located, ReadError> {
        if self.bytes.starts_with("\u{feff}".as_bytes()) {
            self.at = 3;
        }
        let value = self.value(0)?;
        self.space();
        if self.at < self.bytes.len() {
            return Err(self.fail("text after the end of the document"));
        }
        Ok(value)
    }

    fn fail(&self, message: impl Into<String>) -> ReadError {
        (self.line, message.into())
    }

    fn space(&mut self) {
        while let Some(&byte) = self.bytes.get(self.at) {
            match byte {
                b'\n' => self.line += 1,
                b' ' | b'\t' | b'\r' => {}
                _ => break,
            }
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), ReadError> {
        self.space();
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.fail(format!("expected `{}`", byte as char)))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Located, ReadError> {
        if depth > MAX_DEPTH {
            return Err(self.fail(format!("nested more than {MAX_DEPTH} deep")));
        }
        self.space();
        let line = self.line;
        let value = match self.peek() {
            None => return Err(self.fail("unexpected end of the document")),
            Some(b'{') => {
                self.at += 1;
                let mut members = Vec::new();
                self.space();
                if self.peek() == Some(b'}') {
                    self.at += 1;
                } else {
                    loop {
                        self.space();
                        let line = self.line;
                        if self.peek() != Some(b'"') {
                            return Err(self.fail("expected a member name in double quotes"));
                        }
                        let key = self.string()?;
                        self.expect(b':')?;
                        let value = self.value(depth + 1)?;
                        members.push(Member { key, line, value });
                        self.space();
                        match self.peek() {
                            Some(b',') => self.at += 1,
                            Some(b'}') => {
                                self.at += 1;
                                break;
                            }
                            _ => return Err(self.fail("expected `,` or `}`")),
                        }
                    }
                }
                Value::Object(members)
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                self.space();
                if self.peek() == Some(b']') {
                    self.at += 1;
                } else {
                    loop {
                        items.push(self.value(depth + 1)?);
                        self.space();
                        match self.peek() {
                            Some(b',') => self.at += 1,
                            Some(b']') => {
                                self.at += 1;
                                break;
                            }
                            _ => return Err(self.fail("expected `,` or `]`")),
                        }
                    }
                }
                Value::Array(items)
            }
            Some(b'"') => Value::String(self.string()?),
            Some(b't') => self.word("true", Value::Bool(true))?,
            Some(b'f') => self.word("false", Value::Bool(false))?,
            Some(b'n') => self.word("null", Value::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(other) => return Err(self.fail(format!("unexpected `{}`", other as char))),
        };
        Ok(Located { line, value })
    }

    fn word(&mut self, word: &str, value: Value) -> Result<Value, ReadError> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.fail("expected a value"))
        }
    }

    fn number(&mut self) -> Result<Value, ReadError> {
        let start = self.at;
        while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        let text =
            std::str::from_utf8(&self.bytes[start..self.at]).expect("the bytes matched are ASCII");
        let digits = text.strip_prefix('-').unwrap_or(text);
        let valid = text.parse::<f64>().is_ok()
            && digits.starts_with(|c: char| c.is_ascii_digit())
            && !(digits.len() > 1
                && digits.starts_with('0')
                && !digits[1..].starts_with(['.', 'e', 'E']));
        if valid {
            Ok(Value::Number(text.to_string()))
        } else {
            Err(self.fail(format!("invalid number `{text}`")))
        }
    }

    fn string(&mut self) -> Result<String, ReadError> {
        self.at += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            let Some(byte) = self.peek() else {
                return Err(self.fail("unterminated string"));
            };
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    let Some(escape) = self.peek() else {
                        return Err(self.fail("unterminated string"));
                    };
                    self.at += 1;
                    let decoded = match escape {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        other => {
                            return Err(self.fail(format!("invalid escape `\\{}`", other as char)))
                        }
                    };
                    let mut buffer = [0; 4];
                    out.extend_from_slice(decoded.encode_utf8(&mut buffer).as_bytes());
                }
                b'\n' => return Err(self.fail("a line break inside a string (write it as `\\n`)")),
                other => out.push(other),
            }
        }
        String::from_utf8(out).map_err(|_| self.fail("a string is not valid UTF-8"))
    }

    fn hex4(&mut self) -> Result<u32, ReadError> {
        let digits = self
            .bytes
            .get(self.at..self.at + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or_else(|| self.fail("`\\u` needs four hex digits"))?;
        self.at += 4;
        Ok(digits)
    }

    fn unicode_escape(&mut self) -> Result<char, ReadError> {
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if !self.bytes[self.at..].starts_with(b"\\u") {
                return Err(self.fail("a lone surrogate in `\\u` escape"));
            }
            self.at += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(self.fail("a lone surrogate in `\\u` escape"));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| self.fail("a lone surrogate in `\\u` escape"))
    }
}
