//! The config file formats besides INI that uWSGI reads: YAML (`core/yaml.c`, its own
//! line-based subset), JSON (`core/json.c`, the `uwsgi` object) and XML (`core/xmlconf.c`,
//! the `<uwsgi>` element). Each turns a file's text (magic variables already substituted)
//! into the same `key = value` lines with line numbers that the INI reader gives, so config
//! logic, placeholders, `include` and diagnostics work the same whatever the format.
//!
//! These readers only parse text: they do not read files, expand anything or know what an
//! option means. They accept what uWSGI accepts; where uWSGI silently stops or drops part of
//! a file, they say so in a [`Note`].

mod json;
mod xml;
mod yaml;

use super::ini::{self, IniEntry};

/// How a config file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Ini,
    Yaml,
    Json,
    Xml,
}

impl Format {
    /// The format a loading option forces (`yaml = file` reads YAML whatever the name), or
    /// `None` for the options that choose by extension (`include`, `inherit`, bare files).
    pub fn of_option(key: &str) -> Option<Format> {
        match key {
            "ini" | "ini-paste" | "ini-paste-logged" => Some(Format::Ini),
            "yaml" | "yml" => Some(Format::Yaml),
            "json" | "js" => Some(Format::Json),
            "xml" | "xmlconfig" => Some(Format::Xml),
            _ => None,
        }
    }

    /// uWSGI's `uwsgi_opt_load`: `.xml`, `.yaml`/`.yml`, `.json`/`.js`; anything else is
    /// read as INI (uWSGI would try its configurator plugins, which kaiser does not have).
    pub fn of_path(path: &str) -> Format {
        let extension = path.rsplit_once('.').map_or("", |(_, ext)| ext);
        match extension {
            "yaml" | "yml" => Format::Yaml,
            "json" | "js" => Format::Json,
            "xml" => Format::Xml,
            _ => Format::Ini,
        }
    }

    /// Whether `config` can load this path: one of the extensions uWSGI registers a
    /// configurator for.
    pub fn is_known_extension(path: &str) -> bool {
        let extension = path.rsplit_once('.').map_or("", |(_, ext)| ext);
        matches!(extension, "ini" | "yaml" | "yml" | "json" | "js" | "xml")
    }
}

/// Something a reader noticed at a line: an error stops the configuration from loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    pub line: usize,
    pub error: bool,
    pub message: String,
}

/// A file's entries for the chosen section.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub entries: Vec<IniEntry>,
    /// For INI and YAML a missing section is a warning; JSON and XML report an error.
    pub section_found: bool,
    pub notes: Vec<Note>,
}

impl Parsed {
    fn push(&mut self, line: usize, key: &str, value: &str) {
        self.entries.push(IniEntry {
            line,
            key: key.to_string(),
            value: value.to_string(),
        });
    }

    fn warn(&mut self, line: usize, message: impl Into<String>) {
        self.notes.push(Note {
            line,
            error: false,
            message: message.into(),
        });
    }

    fn error(&mut self, line: usize, message: impl Into<String>) {
        self.notes.push(Note {
            line,
            error: true,
            message: message.into(),
        });
    }
}

/// Reads `section` of `text` (for XML, `section` is the `id` to pick, empty for none).
pub(crate) fn parse(format: Format, text: &str, section: &str) -> Parsed {
    match format {
        Format::Ini => {
            let parsed = ini::parse(text, section);
            Parsed {
                entries: parsed.entries,
                section_found: parsed.section_found,
                notes: Vec::new(),
            }
        }
        Format::Yaml => yaml::parse(text, section),
        Format::Json => json::parse(text, section),
        Format::Xml => xml::parse(text, section),
    }
}

#[cfg(test)]
mod tests;
