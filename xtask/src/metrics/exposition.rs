//! The Prometheus text exposition format (version 0.0.4), written by hand:
//! `# HELP` and `# TYPE` once per family, then one line per sample, label
//! values escaped (`\\`, `\"`, `\n`), histograms as cumulative `_bucket`
//! lines with `le` ending in `+Inf`, then `_sum` and `_count`
//! (prometheus/docs `content/docs/instrumenting/exposition_formats.md`).
//! `promtool check metrics` reads what this writes (tests/it/metrics.rs).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Label names and values, in the order given (families keep them sorted).
pub type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// A counter family: one sample per label set, in label order.
    pub fn counter(&mut self, name: &str, help: &str, samples: &BTreeMap<Labels, u64>) {
        self.head(name, help, "counter");
        for (labels, value) in samples {
            let _ = writeln!(self.text, "{name}{} {value}", render_labels(labels, None));
        }
    }

    /// A gauge family.
    pub fn gauge(&mut self, name: &str, help: &str, samples: &BTreeMap<Labels, f64>) {
        self.head(name, help, "gauge");
        for (labels, value) in samples {
            let _ = writeln!(
                self.text,
                "{name}{} {}",
                render_labels(labels, None),
                number(*value)
            );
        }
    }

    /// A histogram family: each label set's observations sorted into the
    /// (ascending) `buckets`, cumulative, plus `+Inf`, `_sum` and `_count`.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        buckets: &[f64],
        samples: &BTreeMap<Labels, Vec<f64>>,
    ) {
        self.head(name, help, "histogram");
        for (labels, observations) in samples {
            for bound in buckets {
                let below = observations.iter().filter(|o| **o <= *bound).count();
                let _ = writeln!(
                    self.text,
                    "{name}_bucket{} {below}",
                    render_labels(labels, Some(&number(*bound)))
                );
            }
            let _ = writeln!(
                self.text,
                "{name}_bucket{} {}",
                render_labels(labels, Some("+Inf")),
                observations.len()
            );
            let sum: f64 = observations.iter().sum();
            let plain = render_labels(labels, None);
            let _ = writeln!(self.text, "{name}_sum{plain} {}", number(sum));
            let _ = writeln!(self.text, "{name}_count{plain} {}", observations.len());
        }
    }

    pub fn into_text(self) -> String {
        self.text
    }

    fn head(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }
}

fn render_labels(labels: &Labels, le: Option<&str>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_value(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_value(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// HELP text escapes backslash and line feed (not quotes).
fn escape_help(v: &str) -> String {
    v.replace('\\', r"\\").replace('\n', r"\n")
}

/// A float as Go's ParseFloat reads it: `3`, `0.25`, `120`; never `NaN`
/// for a sum of nothing.
fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else if v.is_nan() {
        "NaN".to_owned()
    } else if v > 0.0 {
        "+Inf".to_owned()
    } else {
        "-Inf".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_counters_with_escaped_labels() {
        let mut e = Exposition::default();
        let mut samples = BTreeMap::new();
        samples.insert(vec![("reason", "a\"b\\c\nd".to_owned())], 2);
        e.counter("rollback_total", "Rollbacks.\nTwo lines", &samples);
        assert_eq!(
            e.into_text(),
            "# HELP rollback_total Rollbacks.\\nTwo lines\n# TYPE rollback_total counter\nrollback_total{reason=\"a\\\"b\\\\c\\nd\"} 2\n"
        );
    }

    #[test]
    fn writes_cumulative_histogram_buckets() {
        let mut e = Exposition::default();
        let mut samples = BTreeMap::new();
        samples.insert(vec![("env", "s".to_owned())], vec![0.5, 3.0, 12.0]);
        e.histogram("d_seconds", "D.", &[1.0, 10.0], &samples);
        let text = e.into_text();
        let lines: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(
            lines,
            [
                "d_seconds_bucket{env=\"s\",le=\"1\"} 1",
                "d_seconds_bucket{env=\"s\",le=\"10\"} 2",
                "d_seconds_bucket{env=\"s\",le=\"+Inf\"} 3",
                "d_seconds_sum{env=\"s\"} 15.5",
                "d_seconds_count{env=\"s\"} 3",
            ]
        );
    }
}
