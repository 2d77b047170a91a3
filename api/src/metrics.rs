//! Request metrics and their Prometheus text exposition (format 0.0.4), by hand.
//!
//! Names are a contract with the alert rules; do not rename them:
//! `http_requests_total{method,route,status}`,
//! `http_request_duration_seconds_{bucket,sum,count}`, `http_requests_in_flight`,
//! `api_build_info{git_sha,version}`, `api_ready`, `process_start_time_seconds`.
//!
//! Cost per request: one uncontended-in-the-common-case read lock, three relaxed
//! atomic adds, and two for the in-flight gauge. Labels are bounded: `route` is the
//! matched route template (or `unmatched`), `method` one of the nine standard methods
//! (or `OTHER`), `status` a number.

use std::{
    collections::HashMap,
    fmt::Write as _,
    sync::{
        PoisonError, RwLock,
        atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{extract::State, http::header, response::IntoResponse};

use crate::{AppState, version::BuildInfo};

/// The `content-type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency buckets, in nanoseconds, and their `le` labels.
const BUCKETS: [(u64, &str); 13] = [
    (500_000, "0.0005"),
    (1_000_000, "0.001"),
    (2_500_000, "0.0025"),
    (5_000_000, "0.005"),
    (10_000_000, "0.01"),
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (250_000_000, "0.25"),
    (500_000_000, "0.5"),
    (1_000_000_000, "1"),
    (2_500_000_000, "2.5"),
    (5_000_000_000, "5"),
];

/// Counters of one (route, method, status). Buckets are stored non-cumulative (one add
/// per request, the last slot is `+Inf` only) and summed when rendered, so the count
/// is always equal to the `+Inf` bucket.
struct Series {
    method: &'static str,
    status: u16,
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Series {
    fn new(method: &'static str, status: u16) -> Self {
        Self {
            method,
            status,
            buckets: Default::default(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn record(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let slot = BUCKETS
            .iter()
            .position(|(bound, _)| nanos <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[slot].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }
}

/// All metrics of one server.
pub struct Metrics {
    /// Route template → the series seen on it (a handful: a linear scan beats hashing).
    series: RwLock<HashMap<Box<str>, Vec<Series>>>,
    in_flight: AtomicI64,
    start_time_seconds: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Empty metrics; `process_start_time_seconds` is now.
    pub fn new() -> Self {
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Self {
            series: RwLock::default(),
            in_flight: AtomicI64::new(0),
            start_time_seconds: start.as_secs_f64(),
        }
    }

    /// Counts one answered request.
    pub fn observe(&self, method: &'static str, route: &str, status: u16, elapsed: Duration) {
        {
            let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(one) = find(&series, method, route, status) {
                one.record(elapsed);
                return;
            }
        }
        let mut series = self.series.write().unwrap_or_else(PoisonError::into_inner);
        if find(&series, method, route, status).is_none() {
            series
                .entry(route.into())
                .or_default()
                .push(Series::new(method, status));
        }
        if let Some(one) = find(&series, method, route, status) {
            one.record(elapsed);
        }
    }

    /// Counts a request in flight until the returned guard drops (also when the
    /// request's future is cancelled).
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(&self.in_flight)
    }

    /// The exposition text.
    pub fn render(&self, build: &BuildInfo, ready: bool) -> String {
        let series = self.series.read().unwrap_or_else(PoisonError::into_inner);
        let mut routes: Vec<_> = series.iter().collect();
        routes.sort_by(|a, b| a.0.cmp(b.0));
        let mut rows: Vec<(&str, &Series)> = Vec::new();
        for (route, list) in routes {
            let mut list: Vec<&Series> = list.iter().collect();
            list.sort_by_key(|one| (one.method, one.status));
            rows.extend(list.into_iter().map(|one| (&**route, one)));
        }
        // Snapshot each series once so its buckets, sum and count agree.
        let snapshots: Vec<_> = rows
            .iter()
            .map(|(route, one)| {
                let labels = format!(
                    "method=\"{}\",route=\"{}\",status=\"{}\"",
                    one.method,
                    escape(route),
                    one.status
                );
                let buckets: Vec<u64> = one.buckets.iter().map(|b| b.load(Relaxed)).collect();
                (labels, buckets, one.sum_nanos.load(Relaxed))
            })
            .collect();
        drop(series);

        let mut out = String::with_capacity(1024 + snapshots.len() * 1500);
        out.push_str("# HELP http_requests_total HTTP requests answered, by method, route template and status.\n");
        out.push_str("# TYPE http_requests_total counter\n");
        for (labels, buckets, _) in &snapshots {
            let _ = writeln!(
                out,
                "http_requests_total{{{labels}}} {}",
                buckets.iter().sum::<u64>()
            );
        }
        out.push_str(
            "# HELP http_request_duration_seconds Time from request head to response head.\n",
        );
        out.push_str("# TYPE http_request_duration_seconds histogram\n");
        for (labels, buckets, sum_nanos) in &snapshots {
            let mut cumulative = 0;
            for (count, (_, le)) in buckets.iter().zip(BUCKETS.iter()) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            let total: u64 = buckets.iter().sum();
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {total}"
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_sum{{{labels}}} {}",
                *sum_nanos as f64 / 1e9
            );
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{{labels}}} {total}"
            );
        }
        out.push_str("# HELP http_requests_in_flight HTTP requests being handled now.\n");
        out.push_str("# TYPE http_requests_in_flight gauge\n");
        let _ = writeln!(
            out,
            "http_requests_in_flight {}",
            self.in_flight.load(Relaxed)
        );
        out.push_str("# HELP api_build_info The running build; always 1.\n");
        out.push_str("# TYPE api_build_info gauge\n");
        let _ = writeln!(
            out,
            "api_build_info{{git_sha=\"{}\",version=\"{}\"}} 1",
            escape(build.git_sha),
            escape(build.version)
        );
        out.push_str(
            "# HELP api_ready 1 while the server accepts traffic, 0 before and while draining.\n",
        );
        out.push_str("# TYPE api_ready gauge\n");
        let _ = writeln!(out, "api_ready {}", u8::from(ready));
        out.push_str("# HELP process_start_time_seconds Start time of the server since the Unix epoch in seconds.\n");
        out.push_str("# TYPE process_start_time_seconds gauge\n");
        let _ = writeln!(
            out,
            "process_start_time_seconds {:.3}",
            self.start_time_seconds
        );
        out
    }
}

fn find<'a>(
    series: &'a HashMap<Box<str>, Vec<Series>>,
    method: &str,
    route: &str,
    status: u16,
) -> Option<&'a Series> {
    series
        .get(route)?
        .iter()
        .find(|one| one.status == status && one.method == method)
}

/// Decrements `http_requests_in_flight` on drop.
pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// The bounded `method` label.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "CONNECT" => "CONNECT",
        _ => "OTHER",
    }
}

/// Label value escaping of the text format: backslash, double quote and newline.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        value.into()
    }
}

/// `GET /metrics`.
pub async fn handler(State(state): State<AppState>) -> impl IntoResponse {
    let body = state
        .metrics
        .render(&state.build, state.readiness.is_ready());
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build() -> BuildInfo {
        BuildInfo {
            git_sha: "abc\"def",
            short_sha: "abc",
            version: "0.1.0",
            built_at: "2026-11-23T10:00:00Z",
        }
    }

    #[test]
    fn renders_counts_buckets_sum_and_count() {
        let metrics = Metrics::new();
        metrics.observe("GET", "/health", 200, Duration::from_micros(300));
        metrics.observe("GET", "/health", 200, Duration::from_millis(3));
        metrics.observe("GET", "unmatched", 404, Duration::from_secs(9));
        let text = metrics.render(&build(), true);
        let health = "method=\"GET\",route=\"/health\",status=\"200\"";
        for line in [
            format!("http_requests_total{{{health}}} 2"),
            format!("http_request_duration_seconds_bucket{{{health},le=\"0.0005\"}} 1"),
            format!("http_request_duration_seconds_bucket{{{health},le=\"0.0025\"}} 1"),
            format!("http_request_duration_seconds_bucket{{{health},le=\"0.005\"}} 2"),
            format!("http_request_duration_seconds_bucket{{{health},le=\"+Inf\"}} 2"),
            format!("http_request_duration_seconds_sum{{{health}}} 0.0033"),
            format!("http_request_duration_seconds_count{{{health}}} 2"),
            "http_request_duration_seconds_bucket{method=\"GET\",route=\"unmatched\",status=\"404\",le=\"5\"} 0".into(),
            "http_request_duration_seconds_bucket{method=\"GET\",route=\"unmatched\",status=\"404\",le=\"+Inf\"} 1".into(),
            "http_requests_in_flight 0".into(),
            "api_build_info{git_sha=\"abc\\\"def\",version=\"0.1.0\"} 1".into(),
            "api_ready 1".into(),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn in_flight_follows_the_guard() {
        let metrics = Metrics::new();
        let guard = metrics.in_flight();
        assert!(
            metrics
                .render(&build(), false)
                .lines()
                .any(|l| l == "http_requests_in_flight 1")
        );
        drop(guard);
        let text = metrics.render(&build(), false);
        assert!(text.lines().any(|l| l == "http_requests_in_flight 0"));
        assert!(text.lines().any(|l| l == "api_ready 0"));
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let method = axum::http::Method::from_bytes(b"BREW").expect("valid token");
        assert_eq!(method_label(&method), "OTHER");
        assert_eq!(method_label(&axum::http::Method::DELETE), "DELETE");
    }
}
