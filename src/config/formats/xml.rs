//! uWSGI's XML config (`core/xmlconf.c`, the libxml2 build): the root `<uwsgi>` element, or
//! the first `<uwsgi>` child of another root (with `file.xml:ID`, the first whose `id`
//! attribute is ID or absent). Each child element is an option: `<socket>:3031</socket>`,
//! and `<master/>` (no content) is `1`. A child with an `id` attribute other than the asked
//! ID is skipped; a CDATA section directly inside `<uwsgi>` is Python code for `eval`; an
//! `<app mountpoint="/x">target</app>` is a `mount`.
//!
//! A small XML reader of its own (elements, attributes, text, CDATA, comments, the five
//! entities and character references) rather than a dependency: config files use nothing
//! more, and it keeps each element's line for messages. No DTDs, no namespaces.

use super::Parsed;

pub(super) fn parse(text: &str, id: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let mut reader = Reader {
        text,
        at: 0,
        line: 1,
    };
    let root = match reader.document() {
        Ok(root) => root,
        Err((line, message)) => {
            parsed.error(line, format!("invalid XML: {message}"));
            return parsed;
        }
    };
    let id = (!id.is_empty()).then_some(id);
    let config = if root.name == "uwsgi" {
        Some(&root)
    } else {
        root.elements().find(|element| {
            element.name == "uwsgi"
                && match (id, element.attribute("id")) {
                    (Some(wanted), Some(has)) => wanted == has,
                    _ => true,
                }
        })
    };
    let Some(config) = config else {
        parsed.error(
            root.line,
            format!(
                "there is no `<uwsgi>` element (the root is `<{}>`)",
                root.name
            ),
        );
        return parsed;
    };
    parsed.section_found = true;
    for node in &config.children {
        let element = match node {
            Node::CData { line, text } => {
                parsed.push(*line, "eval", text);
                continue;
            }
            Node::Text(_) => continue,
            Node::Element(element) => element,
        };
        if let (Some(wanted), Some(has)) = (id, element.attribute("id")) {
            if wanted != has {
                continue;
            }
        }
        if element.name == "app" && element.children.is_empty() {
            // `<app mountpoint="/"></app>`: uWSGI adds only an empty `app`, which does nothing.
            continue;
        }
        let value = match element.children.first() {
            // uWSGI 0.9's `<app mountpoint="/"><script>mod</script></app>`: the target is
            // the text of the element after the first (blank) child, as `xmlconf.c` reads it.
            Some(Node::Text(blank)) if element.name == "app" && blank.trim().is_empty() => {
                match element.children.get(1) {
                    Some(Node::Element(script)) => match script.children.first() {
                        Some(Node::Text(text) | Node::CData { text, .. }) => {
                            text.trim().to_string()
                        }
                        _ => String::new(),
                    },
                    _ => String::new(),
                }
            }
            None => "1".to_string(),
            Some(Node::Text(text) | Node::CData { text, .. }) => text.trim().to_string(),
            Some(Node::Element(inner)) => {
                parsed.error(
                    inner.line,
                    format!(
                        "`<{}>` holds the element `<{}>`; an option's value is text",
                        element.name, inner.name
                    ),
                );
                continue;
            }
        };
        if element.name == "app" {
            let target = if let Some(mountpoint) = element.attribute("mountpoint") {
                format!("{mountpoint}={value}")
            } else if let Some(domain) = element.attribute("domain") {
                format!("{domain}|={value}")
            } else {
                value
            };
            parsed.push(element.line, "mount", &target);
        } else {
            parsed.push(element.line, &element.name, &value);
        }
    }
    parsed
}

#[derive(Debug)]
enum Node {
    Element(Element),
    Text(String),
    CData { line: usize, text: String },
}

#[derive(Debug)]
struct Element {
    name: String,
    line: usize,
    attributes: Vec<(String, String)>,
    children: Vec<Node>,
}

impl Element {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|node| match node {
            Node::Element(element) => Some(element),
            _ => None,
        })
    }
}

type ReadError = (usize, String);

/// Elements nest no deeper than this, so a hostile file cannot overflow the stack.
const MAX_DEPTH: usize = 64;

struct Reader<'a> {
    text: &'a str,
    at: usize,
    line: usize,
}

impl Reader<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn fail(&self, message: impl Into<String>) -> ReadError {
        (self.line, message.into())
    }

    /// Moves past `count` bytes, counting line breaks.
    fn advance(&mut self, count: usize) {
        self.line += self.text[self.at..self.at + count].matches('\n').count();
        self.at += count;
    }

    /// Moves past everything up to and including `end`.
    fn skip_past(&mut self, end: &str, what: &str) -> Result<(), ReadError> {
        match self.rest().find(end) {
            Some(at) => {
                self.advance(at + end.len());
                Ok(())
            }
            None => Err(self.fail(format!("unterminated {what}"))),
        }
    }

    fn space(&mut self) {
        let trimmed = self.rest().trim_start().len();
        self.advance(self.rest().len() - trimmed);
    }

    /// The prolog, the root element, then only comments and space.
    fn document(&mut self) -> Result<Element, ReadError> {
        if self.rest().starts_with('\u{feff}') {
            self.at += '\u{feff}'.len_utf8();
        }
        let root = loop {
            self.space();
            if self.rest().starts_with("<?") {
                self.skip_past("?>", "processing instruction")?;
            } else if self.rest().starts_with("<!--") {
                self.skip_past("-->", "comment")?;
            } else if self.rest().starts_with("<!") {
                self.skip_past(">", "declaration")?;
            } else if self.rest().starts_with('<') {
                break self.element(0)?;
            } else if self.rest().is_empty() {
                return Err(self.fail("no root element"));
            } else {
                return Err(self.fail("text before the root element"));
            }
        };
        // libxml2 ignores nothing after the root but comments, processing instructions
        // and space; uWSGI's expat build tolerates junk there, so kaiser does too.
        Ok(root)
    }

    fn name(&mut self) -> Result<String, ReadError> {
        let length = self
            .rest()
            .find(|c: char| c.is_whitespace() || matches!(c, '>' | '/' | '=' | '<'))
            .unwrap_or(self.rest().len());
        if length == 0 {
            return Err(self.fail("expected a name"));
        }
        let name = self.rest()[..length].to_string();
        self.advance(length);
        Ok(name)
    }

    fn element(&mut self, depth: usize) -> Result<Element, ReadError> {
        if depth > MAX_DEPTH {
            return Err(self.fail(format!("elements nested more than {MAX_DEPTH} deep")));
        }
        let line = self.line;
        self.advance(1); // `<`
        let name = self.name()?;
        let mut attributes = Vec::new();
        loop {
            self.space();
            if self.rest().starts_with("/>") {
                self.advance(2);
                return Ok(Element {
                    name,
                    line,
                    attributes,
                    children: Vec::new(),
                });
            }
            if self.rest().starts_with('>') {
                self.advance(1);
                break;
            }
            let key = self.name()?;
            self.space();
            if !self.rest().starts_with('=') {
                return Err(self.fail(format!("attribute `{key}` of `<{name}>` has no value")));
            }
            self.advance(1);
            self.space();
            let quote = match self.rest().chars().next() {
                Some(quote @ ('"' | '\'')) => quote,
                _ => return Err(self.fail(format!("attribute `{key}` needs a quoted value"))),
            };
            self.advance(1);
            let Some(end) = self.rest().find(quote) else {
                return Err(self.fail(format!("unterminated value of attribute `{key}`")));
            };
            let raw = self.rest()[..end].to_string();
            let value = self.unescape(&raw)?;
            self.advance(end + 1);
            attributes.push((key, value));
        }
        let mut children = Vec::new();
        loop {
            if self.rest().starts_with("</") {
                self.advance(2);
                let closing = self.name()?;
                if closing != name {
                    return Err(self.fail(format!(
                        "`</{closing}>` closes `<{name}>` (opened at line {line})"
                    )));
                }
                self.space();
                if !self.rest().starts_with('>') {
                    return Err(self.fail(format!("expected `>` after `</{closing}`")));
                }
                self.advance(1);
                return Ok(Element {
                    name,
                    line,
                    attributes,
                    children,
                });
            }
            if self.rest().starts_with("<!--") {
                self.skip_past("-->", "comment")?;
            } else if self.rest().starts_with("<![CDATA[") {
                let start_line = self.line;
                self.advance("<![CDATA[".len());
                let Some(end) = self.rest().find("]]>") else {
                    return Err(self.fail("unterminated CDATA section"));
                };
                let text = self.rest()[..end].to_string();
                self.advance(end + 3);
                children.push(Node::CData {
                    line: start_line,
                    text,
                });
            } else if self.rest().starts_with("<?") {
                self.skip_past("?>", "processing instruction")?;
            } else if self.rest().starts_with('<') {
                children.push(Node::Element(self.element(depth + 1)?));
            } else if self.rest().is_empty() {
                return Err(self.fail(format!("`<{name}>` (line {line}) is never closed")));
            } else {
                let end = self.rest().find('<').unwrap_or(self.rest().len());
                let raw = self.rest()[..end].to_string();
                let text = self.unescape(&raw)?;
                self.advance(end);
                // Adjacent text (split by a comment) is one node to libxml2 only when
                // nothing separates it; keep them apart as it does.
                if !text.trim().is_empty() || children.is_empty() {
                    children.push(Node::Text(text));
                }
            }
        }
    }

    fn unescape(&self, raw: &str) -> Result<String, ReadError> {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(amp) = rest.find('&') {
            out.push_str(&rest[..amp]);
            let Some(semicolon) = rest[amp..].find(';') else {
                return Err(self.fail("`&` without `;` (write `&amp;`)"));
            };
            let entity = &rest[amp + 1..amp + semicolon];
            let decoded = match entity {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .map(|hex| u32::from_str_radix(hex, 16))
                    .or_else(|| entity.strip_prefix('#').map(str::parse))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            };
            let Some(decoded) = decoded else {
                return Err(self.fail(format!("unknown entity `&{entity};`")));
            };
            out.push(decoded);
            rest = &rest[amp + semicolon + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}
