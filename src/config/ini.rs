//! The uWSGI INI dialect (`core/ini.c`), which is not Python's configparser dialect.
//!
//! Keys repeat and accumulate, there are no inline comments, quotes are kept, a bare key has
//! the value `""`, and only the chosen section is read (same-named sections accumulate).
//! This reader does not expand anything: magic variables are substituted over the raw text
//! before it runs, and placeholders after. It does not read files.

/// One `key = value` line of the selected section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IniEntry {
    /// 1-based line number in the (magic-substituted) text.
    pub line: usize,
    pub key: String,
    pub value: String,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ParsedIni {
    pub entries: Vec<IniEntry>,
    pub section_found: bool,
}

/// The uWSGI default section.
pub(crate) const DEFAULT_SECTION: &str = "uwsgi";

/// Reads the entries of `section` from `text`.
pub(crate) fn parse(text: &str, section: &str) -> ParsedIni {
    let mut parsed = ParsedIni::default();
    let mut in_section = false;
    for (index, raw) in text.split('\n').enumerate() {
        // uWSGI strips space, tab and CR at both ends of every line.
        let line = raw.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            // The name is the text between the first and the last character, as is:
            // `[ uwsgi ]` is the section " uwsgi ".
            let name = rest.strip_suffix(']').unwrap_or_else(|| {
                let mut chars = rest.chars();
                chars.next_back();
                chars.as_str()
            });
            in_section = name == section;
            parsed.section_found |= in_section;
            continue;
        }
        if !in_section {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((key, value)) => (
                key.trim_end_matches([' ', '\t']),
                value.trim_matches([' ', '\t']),
            ),
            None => (line, ""),
        };
        parsed.entries.push(IniEntry {
            line: index + 1,
            key: key.to_string(),
            value: value.to_string(),
        });
    }
    parsed
}

/// Splits `file.ini:section` at the last `:` that comes after the last `/`. A trailing `:`
/// alone keeps the default section; no `:` means the default section.
pub(crate) fn split_section(spec: &str) -> (&str, &str) {
    let after_slash = spec.rfind('/').map_or(0, |i| i + 1);
    match spec[after_slash..].rfind(':') {
        Some(colon) => {
            let colon = after_slash + colon;
            let section = &spec[colon + 1..];
            let section = if section.is_empty() {
                DEFAULT_SECTION
            } else {
                section
            };
            (&spec[..colon], section)
        }
        None => (spec, DEFAULT_SECTION),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expected` is `line:key=value` items separated by ` | `; a leading `!` means the
    /// section was not found.
    fn check(text: &str, section: &str, expected: &str) {
        let parsed = parse(text, section);
        let mut rendered: Vec<String> = parsed
            .entries
            .iter()
            .map(|e| format!("{}:{}={}", e.line, e.key, e.value))
            .collect();
        if !parsed.section_found {
            rendered.insert(0, "!".to_string());
        }
        assert_eq!(rendered.join(" | "), expected, "parsing {text:?}");
    }

    #[test]
    fn dialect() {
        check("[uwsgi]\na = 1", "uwsgi", "2:a=1");
        check("[uwsgi]\na=1\na=2", "uwsgi", "2:a=1 | 3:a=2");
        check("[uwsgi]\nmaster", "uwsgi", "2:master=");
        check(
            "[uwsgi]\n  key  =  spaced value  ",
            "uwsgi",
            "2:key=spaced value",
        );
        check(
            "[uwsgi]\nb = value ; not a comment",
            "uwsgi",
            "2:b=value ; not a comment",
        );
        check(
            "[uwsgi]\nb = value # not a comment",
            "uwsgi",
            "2:b=value # not a comment",
        );
        check("[uwsgi]\n; comment\n# comment\n  ; indented", "uwsgi", "");
        check("[uwsgi]\nenv = A=b=c", "uwsgi", "2:env=A=b=c");
        check("[uwsgi]\nq = \"quoted\"", "uwsgi", "2:q=\"quoted\"");
        check("[uwsgi]\r\na = 1\r\n", "uwsgi", "2:a=1");
        check("[uwsgi]\n\n\na = 1", "uwsgi", "4:a=1");
        check("[uwsgi]\nsocket==:80", "uwsgi", "2:socket==:80");
        check("[uwsgi]\n= v", "uwsgi", "2:=v");
    }

    #[test]
    fn sections() {
        check("a = 0\n[uwsgi]\na = 1", "uwsgi", "3:a=1");
        check("[other]\na = 1\n[uwsgi]\nb = 2", "uwsgi", "4:b=2");
        check("[other]\na = 1\n[uwsgi]\nb = 2", "other", "2:a=1");
        check(
            "[uwsgi]\na = 1\n[x]\nb = 2\n[uwsgi]\nc = 3",
            "uwsgi",
            "2:a=1 | 6:c=3",
        );
        check("[ uwsgi ]\na = 1", "uwsgi", "!");
        check("[ uwsgi ]\na = 1", " uwsgi ", "2:a=1");
        check("[other]\na = 1", "uwsgi", "!");
        check("", "uwsgi", "!");
    }

    #[test]
    fn section_spec() {
        for (spec, file, section) in [
            ("app.ini", "app.ini", "uwsgi"),
            ("app.ini:prod", "app.ini", "prod"),
            ("app.ini:", "app.ini", "uwsgi"),
            (":other", "", "other"),
            ("/etc/a:b/app.ini", "/etc/a:b/app.ini", "uwsgi"),
            ("/etc/a:b/app.ini:x", "/etc/a:b/app.ini", "x"),
        ] {
            assert_eq!(split_section(spec), (file, section), "{spec}");
        }
    }
}
