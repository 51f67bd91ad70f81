//! Where an entry came from, and the compiler-style messages built on that.
//!
//! Every problem names its origin (`app.ini:12`, a command-line argument, a `UWSGI_*`
//! variable) and the key, so a person can go straight to the line. Nothing here decides
//! whether something is a problem; the stages that find problems collect them here.

use std::fmt;

/// Where one configuration entry was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of a config file, the path as it was given.
    File { path: String, line: usize },
    /// The n-th command-line argument (1-based, argv[0] not counted).
    CommandLine { index: usize },
    /// A `UWSGI_*` environment variable.
    Environment { var: String },
    /// A check over the whole configuration rather than one entry.
    Whole,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{path}:{line}"),
            Origin::CommandLine { index } => write!(f, "command line argument {index}"),
            Origin::Environment { var } => write!(f, "environment `{var}`"),
            Origin::Whole => f.write_str("configuration"),
        }
    }
}

/// One problem or warning: `origin: key: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub origin: Origin,
    /// The option or key concerned; empty when the problem is not about one key.
    pub key: String,
    /// A lowercase fragment, names in backticks, no trailing period.
    pub message: String,
}

impl Diagnostic {
    pub fn new(origin: &Origin, key: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            origin: origin.clone(),
            key: key.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.key, self.message)
        }
    }
}

/// Loading the configuration failed; every problem found is listed, one per line, in the
/// order the entries were written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct LoadConfigError {
    pub problems: Vec<Diagnostic>,
}

fn render(problems: &[Diagnostic]) -> String {
    problems
        .iter()
        .map(|problem| problem.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Orders diagnostics as the entries were written: environment, then the command line, then
/// each file in load order by line. Stages find problems in their own order; people read
/// them top to bottom.
pub(crate) fn sort(diagnostics: &mut [Diagnostic], files: &[String]) {
    diagnostics.sort_by_key(|d| match &d.origin {
        Origin::Environment { .. } => (0, 0, 0),
        Origin::CommandLine { index } => (1, 0, *index),
        Origin::File { path, line } => {
            let file = files.iter().position(|f| f == path).unwrap_or(files.len());
            (2, file, *line)
        }
        Origin::Whole => (3, 0, 0),
    });
}

/// Problems and warnings found while loading, collected across all stages.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Report {
    pub fn error(&mut self, origin: &Origin, key: &str, message: impl Into<String>) {
        self.errors.push(Diagnostic::new(origin, key, message));
    }

    pub fn warn(&mut self, origin: &Origin, key: &str, message: impl Into<String>) {
        self.warnings.push(Diagnostic::new(origin, key, message));
    }
}

/// The closest option name to `unknown`, for "did you mean" hints. Underscores for dashes
/// (`max_requests`) is the most common slip, so it is tried first; otherwise the nearest
/// name by edit distance within a tolerance that grows with the length of the name.
pub(crate) fn did_you_mean<'a>(
    unknown: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let normalized = unknown.to_ascii_lowercase().replace('_', "-");
    let tolerance = match unknown.len() {
        0..=4 => 1,
        5..=12 => 2,
        _ => 3,
    };
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == normalized {
            return Some(candidate);
        }
        let distance = edit_distance(&normalized, candidate);
        if distance <= tolerance && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, name)| name)
}

/// Optimal string alignment distance: Levenshtein plus adjacent transpositions.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &[
        "max-requests",
        "py-call-osafterfork",
        "processes",
        "socket",
        "http-socket",
        "harakiri",
    ];

    fn check(unknown: &str, expected: Option<&str>) {
        assert_eq!(
            did_you_mean(unknown, NAMES.iter().copied()),
            expected,
            "did you mean for `{unknown}`"
        );
    }

    #[test]
    fn did_you_mean_cases() {
        check("max_requests", Some("max-requests"));
        check("MAX_REQUESTS", Some("max-requests"));
        check("py-callos-afterfork", Some("py-call-osafterfork"));
        check("proceses", Some("processes"));
        check("procsses", Some("processes"));
        check("sokcet", Some("socket"));
        check("http_socket", Some("http-socket"));
        check("harakri", Some("harakiri"));
        check("project", None);
        check("base", None);
        check("x", None);
    }

    #[test]
    fn display_is_compiler_style() {
        let diagnostic = Diagnostic::new(
            &Origin::File {
                path: "app.ini".into(),
                line: 12,
            },
            "max_requests",
            "unknown option (did you mean `max-requests`?)",
        );
        assert_eq!(
            diagnostic.to_string(),
            "app.ini:12: max_requests: unknown option (did you mean `max-requests`?)"
        );
        let error = LoadConfigError {
            problems: vec![
                diagnostic.clone(),
                Diagnostic::new(&Origin::CommandLine { index: 2 }, "", "oops"),
            ],
        };
        assert_eq!(
            error.to_string(),
            "app.ini:12: max_requests: unknown option (did you mean `max-requests`?)\n\
             command line argument 2: oops"
        );
    }
}
