//! uWSGI's own YAML reader (`core/yaml.c` without libyaml, the default build): not YAML,
//! a line format that looks like it.
//!
//! - `#` starts a comment anywhere on a line, even inside a value;
//! - a line `name:` at the outer level opens a section; the section's lines are the more
//!   indented ones after it, and the first line indented as little as the header ends it;
//! - each line of the section is `key: value` (or `key:<TAB>value`), split at the first
//!   `: `; spaces, tabs and `"` are stripped from both ends of key and value, with no
//!   escapes;
//! - repeated keys repeat the option.
//!
//! Where uWSGI stops reading the section (a line without `: `, a `-`, `[` or `{` line) this
//! reader also stops and warns, so the ignored lines are not a surprise. Two forms that
//! libyaml builds of uWSGI accept are read too: a list under a key (`key:` then `- item`
//! lines, each item one entry) and single-quoted values (`'…'`, the quotes removed). A
//! `key:` with no value is read as a bare INI key (empty value, with a warning), where
//! uWSGI would stop.

use super::Parsed;

pub(super) fn parse(text: &str, section: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let mut in_section = false;
    let mut current_depth = 0;
    // `key:` without a value, waiting for its `- item` lines.
    let mut list_key: Option<(usize, String, usize)> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let line_number = index + 1;
        let (line, comment) = match raw.find('#') {
            Some(at) => (&raw[..at], Some(at)),
            None => (raw, None),
        };
        if line.is_empty() {
            continue;
        }
        let depth = depth(line);
        let content = lstrip(line);
        if depth <= current_depth {
            current_depth = depth;
            if in_section {
                break;
            }
        } else if !in_section {
            continue;
        }
        let content = content.trim_end_matches('\r');
        if content.is_empty() {
            continue;
        }
        if !in_section {
            if content.starts_with(['-', '[', '{']) {
                continue;
            }
            if let Some((name, _)) = content.split_once(':') {
                if name.trim_end_matches(['"', '\'']) == section {
                    in_section = true;
                    parsed.section_found = true;
                }
            }
            continue;
        }
        if let Some(item) = content.strip_prefix('-') {
            if let Some((_, key, _)) = &list_key {
                let key = key.clone();
                parsed.push(line_number, &key, &unquote(item));
                list_key.as_mut().expect("checked above").2 += 1;
                continue;
            }
        }
        if let Some((line, key, items)) = list_key.take() {
            if items == 0 {
                bare_key(&mut parsed, line, &key);
            }
        }
        if content.starts_with(['-', '[', '{']) {
            parsed.warn(
                line_number,
                format!("`{content}` is not `key: value`: uWSGI stops reading the `{section}` section here, and so does kaiser (the lines after it are ignored)"),
            );
            break;
        }
        let split = content
            .find(": ")
            .or_else(|| content.find(":\t"))
            .map(|at| (&content[..at], &content[at + 2..]));
        let Some((key, value)) = split else {
            if let Some(key) = content.trim_end_matches([' ', '\t']).strip_suffix(':') {
                list_key = Some((line_number, strip(key).to_string(), 0));
                continue;
            }
            parsed.warn(
                line_number,
                format!("`{content}` is not `key: value`: uWSGI stops reading the `{section}` section here, and so does kaiser (the lines after it are ignored)"),
            );
            break;
        };
        let key = strip(key);
        let value = unquote(value);
        if let Some(at) = comment {
            if at > 0 && !raw[..at].ends_with([' ', '\t']) {
                parsed.warn(
                    line_number,
                    format!("`#` starts a comment in uWSGI's YAML reader even inside a value, so `{key}` is `{value}`"),
                );
            }
        }
        parsed.push(line_number, key, &value);
    }
    if let Some((line, key, 0)) = list_key {
        bare_key(&mut parsed, line, &key);
    }
    parsed
}

/// `key:` with neither a value nor list items: read as a bare INI key (an empty value, so
/// `endif:` closes a block and `master:` is true), where uWSGI's reader would stop.
fn bare_key(parsed: &mut Parsed, line: usize, key: &str) {
    parsed.push(line, key, "");
    parsed.warn(
        line,
        format!("`{key}:` has no value; kaiser reads it as an empty value, as a bare INI key (uWSGI's YAML reader stops reading the section here)"),
    );
}

/// `yaml_get_depth`: a space counts 1, a tab (or CR) 8.
fn depth(line: &str) -> usize {
    line.chars()
        .map_while(|c| match c {
            ' ' => Some(1),
            '\t' | '\r' => Some(8),
            _ => None,
        })
        .sum()
}

/// `yaml_lstrip`: spaces, tabs, CRs and double quotes.
fn lstrip(text: &str) -> &str {
    text.trim_start_matches([' ', '\t', '\r', '"'])
}

/// Both ends: `yaml_lstrip` then `yaml_rstrip` (spaces, tabs and double quotes).
fn strip(text: &str) -> &str {
    lstrip(text).trim_end_matches([' ', '\t', '\r', '"'])
}

/// A value as uWSGI strips it, and a value in single quotes (as libyaml reads it) without
/// them, `''` standing for one quote.
fn unquote(text: &str) -> String {
    let value = strip(text);
    match value
        .strip_prefix('\'')
        .and_then(|inner| inner.strip_suffix('\''))
    {
        Some(inner) => inner.replace("''", "'"),
        None => value.to_string(),
    }
}
