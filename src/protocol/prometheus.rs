//! Prometheus' text exposition format (version 0.0.4): `# HELP`/`# TYPE` lines and samples
//! with escaped label values. Pure: callers say what to write, this module only spells it.
//!
//! Each metric family is written whole before the next (the format requires a family's
//! samples to be contiguous), so callers gather every sample of a family first.

use std::fmt::Write;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// The document being written.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Self {
        Exposition::default()
    }

    /// Starts a family: its help text and type.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample of the current family (`name` may carry a suffix such as `_bucket`).
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (index, (key, value)) in labels.iter().enumerate() {
                if index > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{key}=\"{}\"", escape_label(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", format_value(value));
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.out.into_bytes()
    }
}

fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Integers without a decimal point (counters are integral), `+Inf` as the format spells it.
pub fn format_value(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{}", value as i64);
    }
    format!("{value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_escaped_labels() {
        let mut doc = Exposition::new();
        doc.family("kaiser_requests_total", Kind::Counter, "requests\nserved")
            .sample("kaiser_requests_total", &[("worker", "1")], 3.0)
            .sample("kaiser_requests_total", &[("socket", "a\"b\\c\nd")], 0.5);
        doc.family("kaiser_up", Kind::Gauge, "up")
            .sample("kaiser_up", &[], f64::INFINITY);
        let text = String::from_utf8(doc.into_bytes()).expect("utf-8");
        assert_eq!(
            text,
            "# HELP kaiser_requests_total requests\\nserved\n\
             # TYPE kaiser_requests_total counter\n\
             kaiser_requests_total{worker=\"1\"} 3\n\
             kaiser_requests_total{socket=\"a\\\"b\\\\c\\nd\"} 0.5\n\
             # HELP kaiser_up up\n# TYPE kaiser_up gauge\nkaiser_up +Inf\n"
        );
    }
}
