//! One release's request counters, read from its `/metrics` (Prometheus text
//! format 0.0.4) with `prom_text_format_parser`, summed over the routes that
//! carry real traffic.
//!
//! The parser follows the format's grammar (escaped label values, braces
//! inside them as in axum's `/{id}` route templates) and refuses text it
//! cannot read. What it returns is checked too: both families must be
//! declared with their types (the api always writes their `# TYPE` lines,
//! even before its first request), every value finite and non-negative, the
//! buckets cumulative, and the request counter equal to the histogram's
//! `+Inf` bucket. Anything else is malformed, and a malformed canary is a
//! failed check, never a pass.

use anyhow::{Context, bail};
use prom_text_format_parser::{Scrape, ScrapeParseError, Type, ValueType};

/// The api's metric names (`api/src/metrics.rs`: a contract, never renamed).
pub const REQUESTS: &str = "http_requests_total";
pub const DURATION: &str = "http_request_duration_seconds";

/// Routes the release process itself calls (probes, `/version`, the scrape
/// of `/metrics`): counting them would let a canary with no real traffic
/// look healthy.
pub const PROBE_ROUTES: [&str; 5] = ["/health", "/liveness", "/readiness", "/version", "/metrics"];

/// Cumulative counts since the release started, as one scrape saw them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts {
    /// Requests answered (probe routes excluded).
    pub requests: f64,
    /// Of which answered 5xx.
    pub errors: f64,
    /// Latency histogram: `(upper bound in seconds, cumulative count)`,
    /// ascending, the last bound `+Inf`.
    pub buckets: Vec<(f64, f64)>,
}

/// Read an exposition; `Err` names what was wrong with it.
pub fn parse(text: &str) -> anyhow::Result<Counts> {
    let (text, empty) = set_aside_empty_families(text);
    let scrape = Scrape::parse(&text).map_err(|e| match e {
        ScrapeParseError::Parse(e) => anyhow::anyhow!("malformed metrics: {}", first_line(&e)),
        ScrapeParseError::Collect(errors) => anyhow::anyhow!(
            "malformed metrics: {}",
            errors.first().map_or("unreadable".to_owned(), |m| format!(
                "lines {:?}: {}",
                m.line_no, m.error
            ))
        ),
    })?;
    for (name, kind) in [(REQUESTS, "counter"), (DURATION, "histogram")] {
        if empty.contains(&format!("{name} {kind}")) {
            continue;
        }
        if !scrape.metrics.iter().any(|m| m.name == name) {
            bail!("malformed metrics: no {name} family (is this the api's /metrics?)");
        }
    }
    let mut counts = Counts::default();
    for metric in family(&scrape, REQUESTS, Type::Counter)? {
        for sample in &metric.samples {
            if probe(&sample.labels) {
                continue;
            }
            let v = checked(sample.value.value.as_str(), REQUESTS)?;
            counts.requests += v;
            let status = label(&sample.labels, "status").with_context(|| {
                format!("malformed metrics: a {REQUESTS} sample has no status label")
            })?;
            if status.starts_with('5') {
                counts.errors += v;
            }
        }
    }
    // One labelled series at a time: (labels without `le`) → its buckets.
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for metric in family(&scrape, DURATION, Type::Histogram)? {
        for sample in &metric.samples {
            if probe(&sample.labels) || sample.value.value_type != ValueType::Sample {
                continue;
            }
            let le = label(&sample.labels, "le").with_context(|| {
                format!("malformed metrics: a {DURATION} bucket has no le label")
            })?;
            let le = bound(le)?;
            let v = checked(sample.value.value.as_str(), DURATION)?;
            let key: Vec<String> = sample
                .labels
                .iter()
                .filter(|l| l.key != "le")
                .map(|l| format!("{}={}", l.key, l.value))
                .collect();
            let key = key.join(",");
            match series.iter_mut().find(|(k, _)| *k == key) {
                Some((_, buckets)) => buckets.push((le, v)),
                None => series.push((key, vec![(le, v)])),
            }
        }
    }
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for (_, one) in series {
        add_series(&mut buckets, one)?;
    }
    if let Some(&(_, total)) = buckets.last()
        && (total - counts.requests).abs() > 0.5
    {
        bail!(
            "malformed metrics: {REQUESTS} counts {} requests but the {DURATION} histogram {total}",
            counts.requests
        );
    }
    if buckets.is_empty() && counts.requests > 0.0 {
        bail!("malformed metrics: requests counted but no {DURATION} buckets");
    }
    counts.buckets = buckets;
    Ok(counts)
}

/// The parser refuses a `# TYPE` (or `# HELP`) line with no sample after
/// it, which the format allows and the api writes before its first request:
/// those lines are set aside, and the families returned as `name kind`.
fn set_aside_empty_families(text: &str) -> (String, Vec<String>) {
    let has_samples = |name: &str| {
        text.lines().filter(|l| !l.starts_with('#')).any(|l| {
            l.strip_prefix(name).is_some_and(|rest| {
                let rest = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| rest.strip_prefix(s))
                    .unwrap_or(rest);
                rest.starts_with(['{', ' ', '\t'])
            })
        })
    };
    let mut empty = Vec::new();
    let mut kept = String::with_capacity(text.len());
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some(kw @ ("TYPE" | "HELP")), Some(name)) =
            (words.next(), words.next(), words.next())
            && !has_samples(name)
        {
            if kw == "TYPE" {
                empty.push(format!("{name} {}", words.next().unwrap_or_default()));
            }
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    (kept, empty)
}

/// The metrics of one family, which must be of `kind`.
fn family<'a>(
    scrape: &'a Scrape,
    name: &str,
    kind: Type,
) -> anyhow::Result<Vec<&'a prom_text_format_parser::Metric>> {
    let found: Vec<_> = scrape.metrics.iter().filter(|m| m.name == name).collect();
    if let Some(m) = found.iter().find(|m| m.kind != kind) {
        bail!("malformed metrics: {name} is a {}, not a {kind}", m.kind);
    }
    Ok(found)
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

fn label<'a>(labels: &'a prom_text_format_parser::Labels, key: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|l| l.key == key)
        .map(|l| l.value.as_str())
}

fn probe(labels: &prom_text_format_parser::Labels) -> bool {
    label(labels, "route").is_some_and(|r| PROBE_ROUTES.contains(&r))
}

fn bound(le: &str) -> anyhow::Result<f64> {
    let v: f64 = le
        .parse()
        .map_err(|_| anyhow::anyhow!("malformed metrics: the bucket bound le=\"{le}\""))?;
    if v.is_nan() {
        bail!("malformed metrics: the bucket bound le=\"{le}\"");
    }
    Ok(v)
}

/// Add one labelled series' buckets into the sum; every series of the api
/// has the same bounds.
fn add_series(sum: &mut Vec<(f64, f64)>, mut mine: Vec<(f64, f64)>) -> anyhow::Result<()> {
    mine.sort_by(|a, b| a.0.total_cmp(&b.0));
    if mine.last().is_none_or(|(le, _)| *le != f64::INFINITY) {
        bail!("malformed metrics: a {DURATION} series has no le=\"+Inf\" bucket");
    }
    if mine.windows(2).any(|w| w[1].1 < w[0].1) {
        bail!("malformed metrics: {DURATION} buckets are not cumulative");
    }
    if sum.is_empty() {
        *sum = mine;
        return Ok(());
    }
    if sum.len() != mine.len() || sum.iter().zip(&mine).any(|(a, b)| a.0 != b.0) {
        bail!("malformed metrics: {DURATION} series disagree on their bucket bounds");
    }
    for (total, one) in sum.iter_mut().zip(&mine) {
        total.1 += one.1;
    }
    Ok(())
}

fn checked(raw: &str, family: &str) -> anyhow::Result<f64> {
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => bail!("malformed metrics: {family} has the value {raw}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the api renders (api/src/metrics.rs), trimmed to three buckets.
    pub const SAMPLE: &str = "\
# HELP http_requests_total HTTP requests answered, by method, route template and status.
# TYPE http_requests_total counter
http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 40
http_requests_total{method=\"GET\",route=\"/work\",status=\"200\"} 90
http_requests_total{method=\"GET\",route=\"/work\",status=\"500\"} 10
# HELP http_request_duration_seconds Time from request head to response head.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\",status=\"200\",le=\"0.1\"} 40
http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\",status=\"200\",le=\"0.5\"} 40
http_request_duration_seconds_bucket{method=\"GET\",route=\"/health\",status=\"200\",le=\"+Inf\"} 40
http_request_duration_seconds_sum{method=\"GET\",route=\"/health\",status=\"200\"} 0.04
http_request_duration_seconds_count{method=\"GET\",route=\"/health\",status=\"200\"} 40
http_request_duration_seconds_bucket{method=\"GET\",route=\"/work\",status=\"200\",le=\"0.1\"} 80
http_request_duration_seconds_bucket{method=\"GET\",route=\"/work\",status=\"200\",le=\"0.5\"} 90
http_request_duration_seconds_bucket{method=\"GET\",route=\"/work\",status=\"200\",le=\"+Inf\"} 90
http_request_duration_seconds_sum{method=\"GET\",route=\"/work\",status=\"200\"} 3.5
http_request_duration_seconds_count{method=\"GET\",route=\"/work\",status=\"200\"} 90
http_request_duration_seconds_bucket{method=\"GET\",route=\"/work\",status=\"500\",le=\"0.1\"} 10
http_request_duration_seconds_bucket{method=\"GET\",route=\"/work\",status=\"500\",le=\"0.5\"} 10
http_request_duration_seconds_bucket{method=\"GET\",route=\"/work\",status=\"500\",le=\"+Inf\"} 10
http_request_duration_seconds_sum{method=\"GET\",route=\"/work\",status=\"500\"} 0.1
http_request_duration_seconds_count{method=\"GET\",route=\"/work\",status=\"500\"} 10
# TYPE api_ready gauge
api_ready 1
";

    #[test]
    fn sums_real_traffic_and_leaves_probes_out() {
        let c = parse(SAMPLE).expect("parses");
        assert_eq!((c.requests, c.errors), (100.0, 10.0));
        assert_eq!(
            c.buckets,
            vec![(0.1, 90.0), (0.5, 100.0), (f64::INFINITY, 100.0)]
        );
    }

    #[test]
    fn a_fresh_release_has_zero_requests() {
        let fresh = "# TYPE http_requests_total counter\n# TYPE http_request_duration_seconds histogram\n# TYPE api_ready gauge\napi_ready 1\n";
        assert_eq!(parse(fresh).expect("parses"), Counts::default());
    }

    #[test]
    fn malformed_text_is_an_error_naming_the_fault() {
        let cases = [
            ("<html>502 Bad Gateway</html>", "malformed metrics"),
            (
                &SAMPLE.replace("status=\"500\"} 10\n#", "status=\"500\"} NaN\n#"),
                "value NaN",
            ),
            (
                &SAMPLE.replace(
                    "status=\"200\",le=\"0.5\"} 90",
                    "status=\"200\",le=\"0.5\"} 70",
                ),
                "not cumulative",
            ),
            (
                &SAMPLE.replace("\"/work\",status=\"200\"} 90", "\"/work\",status=\"200\"} 95"),
                "counts 105 requests",
            ),
            (
                &SAMPLE.replace(
                    "http_request_duration_seconds_bucket{method=\"GET\",route=\"/work\",status=\"500\",le=\"+Inf\"} 10\n",
                    "",
                ),
                "no le=\"+Inf\"",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
        }
    }
}

#[cfg(test)]
mod standin {
    /// `/metrics` of the test stand-in (`standin-api --error-rate 0.25
    /// --delay-ms 30`, 40 requests to `/work/N`, one `/health`), captured:
    /// its catch-all route template `/{*rest}` has braces in a label value.
    #[test]
    fn reads_the_standin_api_exposition() {
        let c = super::parse(include_str!("testdata/standin-metrics.txt")).expect("parses");
        assert_eq!((c.requests, c.errors), (40.0, 10.0));
        let w = super::super::Window::between(&super::Counts::default(), &c).expect("window");
        // All 40 between 25 and 50 ms.
        let p99 = w.quantile(0.99).expect("p99");
        assert!(p99 > 0.025 && p99 <= 0.05, "{p99}");
    }
}
