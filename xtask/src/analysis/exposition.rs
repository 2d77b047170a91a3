//! One release's request counters, read from its `/metrics` (Prometheus text
//! format 0.0.4) with `prometheus-parse`, summed over the routes that carry
//! real traffic.
//!
//! The parser skips lines it cannot read instead of failing, so what it
//! returns is checked here: both families must be declared (the api always
//! writes their `# TYPE` lines, even before its first request), every value
//! finite and non-negative, the buckets cumulative, and the request counter
//! equal to the histogram's `+Inf` bucket. Anything else is malformed, and a
//! malformed canary is a failed check, never a pass.

use anyhow::{Context, bail};
use prometheus_parse::{Scrape, Value};

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
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = Scrape::parse(lines).context("reading the metrics text")?;
    for (family, kind) in [(REQUESTS, "counter"), (DURATION, "histogram")] {
        let declared = format!("# TYPE {family} {kind}");
        if !text.lines().any(|l| l.trim() == declared) {
            bail!("malformed metrics: no `{declared}` line (is this the api's /metrics?)");
        }
    }
    let mut counts = Counts::default();
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for sample in &scrape.samples {
        if sample
            .labels
            .get("route")
            .is_some_and(|r| PROBE_ROUTES.contains(&r))
        {
            continue;
        }
        match (sample.metric.as_str(), &sample.value) {
            (REQUESTS, Value::Counter(v) | Value::Untyped(v)) => {
                let v = checked(*v, REQUESTS)?;
                counts.requests += v;
                let status = sample.labels.get("status").with_context(|| {
                    format!("malformed metrics: a {REQUESTS} sample has no status label")
                })?;
                if status.starts_with('5') {
                    counts.errors += v;
                }
            }
            (DURATION, Value::Histogram(series)) => add_series(&mut buckets, series)?,
            _ => {}
        }
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

/// Add one labelled series' buckets into the sum; every series of the api
/// has the same bounds.
fn add_series(
    sum: &mut Vec<(f64, f64)>,
    series: &[prometheus_parse::HistogramCount],
) -> anyhow::Result<()> {
    let mut mine: Vec<(f64, f64)> = series
        .iter()
        .map(|b| Ok((b.less_than, checked(b.count, DURATION)?)))
        .collect::<anyhow::Result<_>>()?;
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

fn checked(v: f64, family: &str) -> anyhow::Result<f64> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        bail!("malformed metrics: {family} has the value {v}")
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
        let fresh = "# TYPE http_requests_total counter\n# TYPE http_request_duration_seconds histogram\napi_ready 1\n";
        assert_eq!(parse(fresh).expect("parses"), Counts::default());
    }

    #[test]
    fn malformed_text_is_an_error_naming_the_fault() {
        let cases = [
            ("<html>502 Bad Gateway</html>", "no `# TYPE http_requests_total"),
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
