//! The alert rules in `deploy/monitoring/alerts.yaml` only name metrics (and
//! label names) that the real api exports.
//!
//! Starts the built `api` binary on a free loopback port, waits for `/health`
//! (polling with a deadline), makes one ordinary request so the request
//! series exist, reads `/metrics`, and checks every metric name in every
//! rule's `expr:` against the exposition. A renamed metric or label then
//! fails here instead of leaving an alert that can never fire.
//!
//! The metric names are taken out of PromQL by a small scanner (below):
//! identifiers that are not functions, aggregations, keywords or label names.
//! `up` is left out: Prometheus writes it for every target, the api does not.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use yaml_rust2::YamlLoader;

/// Series Prometheus itself attaches to each scrape target.
const SCRAPE_SERIES: [&str; 1] = ["up"];

// ----------------------------------------------------------- the api process

/// The running api; killed and reaped when dropped, also when a test panics.
struct RunningApi {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl RunningApi {
    fn start() -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!(
            "api-monitoring-rules-{}-{port}.log",
            std::process::id()
        ));
        let stderr = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let child = Command::new(env!("CARGO_BIN_EXE_api"))
            .env("API_PORT", port.to_string())
            .env("API_BIND", "127.0.0.1")
            .env("API_LOG", "warn")
            .env("API_SHUTDOWN_GRACE_SECS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", env!("CARGO_BIN_EXE_api")));
        RunningApi {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            log,
        }
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `/health` until it answers 200, the process exits, or the deadline.
    fn wait_until_healthy(&mut self, deadline: Duration) {
        let until = Instant::now() + deadline;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the api exited ({status}) before serving /health:\n{}",
                    self.log_text()
                );
            }
            let last = match get(self.addr, "/health") {
                Ok((200, _)) => return,
                Ok((status, body)) => format!("HTTP {status}: {body}"),
                Err(e) => e,
            };
            assert!(
                Instant::now() < until,
                "the api did not answer /health with 200 within {deadline:?} (last: {last}); its stderr:\n{}",
                self.log_text()
            );
            // Not a wait for a condition, only the pace of the polling loop.
            thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for RunningApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.log);
    }
}

/// A port nobody listens on now (the OS picks; released for the api to take).
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// One `GET` over HTTP/1.0 (no chunked bodies, the server closes): status and body.
fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: */*\r\n\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read {path}: {e}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP head in {response:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, body.to_owned()))
}

// ------------------------------------------------------------- the exposition

/// Metric name → label names seen on its samples, from the text exposition.
fn exposed_series(exposition: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in exposition
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .unwrap_or(line.len());
        let labels = series.entry(line[..name_end].to_owned()).or_default();
        if let Some(inner) = line[name_end..]
            .strip_prefix('{')
            .and_then(|rest| rest.split_once('}'))
        {
            labels.extend(label_names_in_exposition(inner.0));
        }
    }
    series
}

/// `a="x",b="y,z"` → `a`, `b` (commas inside quoted values do not split).
fn label_names_in_exposition(labels: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = labels;
    while let Some((name, after)) = rest.split_once("=\"") {
        names.push(name.trim_start_matches(',').trim().to_owned());
        let mut escaped = false;
        let close = after
            .char_indices()
            .find(|&(_, c)| {
                let end = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                end
            })
            .map_or(after.len(), |(i, _)| i + 1);
        rest = &after[close..];
    }
    names
}

// --------------------------------------------------------- PromQL, scanned

/// A selector in a rule: a metric name and the label names it matches on.
#[derive(Debug, PartialEq, Eq)]
struct Selector {
    metric: String,
    labels: Vec<String>,
}

const AGGREGATIONS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const KEYWORDS: [&str; 9] = [
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start",
];

/// Every metric selector in a PromQL expression, in order.
fn selectors(expr: &str) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let mut found: Vec<Selector> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '[' {
            i = skip_past(&chars, i, ']');
        } else if c == '{' {
            // Matchers without a preceding name (`{__name__=~"…"}`) are not ours.
            let end = skip_past(&chars, i, '}');
            let inner: String = chars[i + 1..end.saturating_sub(1)].iter().collect();
            if let Some(last) = found.last_mut().filter(|_| preceded_by_name(&chars, i)) {
                last.labels = matcher_labels(&inner);
            }
            i = end;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if GROUPING.contains(&word.as_str()) {
                // `by (job, le)`: label names, not metrics.
                if next == Some(&'(') {
                    let open = i + chars[i..].iter().position(|&c| c == '(').unwrap_or(0);
                    i = skip_past(&chars, open, ')');
                }
            } else if next == Some(&'(')
                || AGGREGATIONS.contains(&word.as_str())
                || KEYWORDS.contains(&word.as_str())
            {
                // A function or aggregation call, or an operator word.
            } else {
                found.push(Selector {
                    metric: word,
                    labels: Vec::new(),
                });
            }
        } else {
            i += 1;
        }
    }
    found
}

fn preceded_by_name(chars: &[char], brace: usize) -> bool {
    chars[..brace]
        .iter()
        .rev()
        .find(|c| !c.is_whitespace())
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
}

/// Index just past the string literal that opens at `start`.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// Index just past the `close` that ends the bracket at `open`, skipping strings.
fn skip_past(chars: &[char], open: usize, close: char) -> usize {
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = skip_string(chars, i),
            c if c == close => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// `status=~"5..", job!="x"` → `status`, `job`.
fn matcher_labels(inner: &str) -> Vec<String> {
    let chars: Vec<char> = inner.chars().collect();
    let mut labels = Vec::new();
    let mut i = 0;
    let mut name = String::new();
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(&chars, i);
                continue;
            }
            '=' | '!' => {
                if !name.trim().is_empty() {
                    labels.push(name.trim().to_owned());
                }
                name.clear();
                // Skip the operator (`=`, `!=`, `=~`, `!~`).
                while i < chars.len() && "=!~".contains(chars[i]) {
                    i += 1;
                }
                continue;
            }
            ',' => name.clear(),
            c => name.push(c),
        }
        i += 1;
    }
    labels
}

/// `(alert name, expr)` for every rule in a Prometheus rule file.
fn rule_exprs(path: &Path) -> Vec<(String, String)> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let docs = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    let mut exprs = Vec::new();
    for group in docs[0]["groups"].as_vec().into_iter().flatten() {
        for rule in group["rules"].as_vec().into_iter().flatten() {
            let name = rule["alert"]
                .as_str()
                .or_else(|| rule["record"].as_str())
                .unwrap_or("?");
            let expr = rule["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("rule {name} has no expr"));
            exprs.push((name.to_owned(), expr.to_owned()));
        }
    }
    exprs
}

fn alerts_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring/alerts.yaml")
}

// ------------------------------------------------------------------ the tests

#[test]
fn every_metric_in_the_alert_rules_is_exported_by_the_api() {
    let rules = rule_exprs(&alerts_file());
    assert!(!rules.is_empty(), "no rules in {}", alerts_file().display());

    let mut api = RunningApi::start();
    api.wait_until_healthy(Duration::from_secs(30));
    // One ordinary request, so the per-request series have a sample.
    let (status, _) = get(api.addr, "/version").unwrap_or_else(|e| panic!("GET /version: {e}"));
    assert_eq!(status, 200, "GET /version");
    let (status, exposition) =
        get(api.addr, "/metrics").unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    assert_eq!(status, 200, "GET /metrics");
    let exposed = exposed_series(&exposition);

    let mut checked = BTreeSet::new();
    let mut missing = Vec::new();
    for (alert, expr) in &rules {
        for selector in selectors(expr) {
            if SCRAPE_SERIES.contains(&selector.metric.as_str()) {
                continue;
            }
            let Some(labels) = exposed.get(&selector.metric) else {
                missing.push(format!(
                    "{alert}: metric `{}` is not in /metrics",
                    selector.metric
                ));
                continue;
            };
            for label in &selector.labels {
                if !labels.contains(label) {
                    missing.push(format!(
                        "{alert}: `{}` has no label `{label}` (it has {labels:?})",
                        selector.metric
                    ));
                }
            }
            checked.insert(selector.metric);
        }
    }
    assert!(
        missing.is_empty(),
        "alerts.yaml names what the api does not export:\n  {}\n\n/metrics was:\n{exposition}",
        missing.join("\n  ")
    );
    // The rules the brief asks for: error rate, p99 latency and readiness.
    for expected in [
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "api_ready",
    ] {
        assert!(
            checked.contains(expected),
            "no rule uses {expected}: {checked:?}"
        );
    }
}

#[test]
fn the_alert_rules_cover_availability_through_up_and_absent() {
    let rules = rule_exprs(&alerts_file());
    assert!(
        rules
            .iter()
            .any(|(_, e)| e.contains("up{") && e.contains("== 0")),
        "an up == 0 rule"
    );
    assert!(
        rules.iter().any(|(_, e)| e.contains("absent(")),
        "an absent(...) rule"
    );
}

#[test]
fn the_promql_scanner_finds_metrics_not_functions_or_labels() {
    let found = selectors(
        "histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket{route!=\"/x{y}\"}[5m]))) > 0.5",
    );
    assert_eq!(
        found,
        [Selector {
            metric: "http_request_duration_seconds_bucket".to_owned(),
            labels: vec!["route".to_owned()],
        }]
    );

    let found = selectors(
        "sum by (job) (rate(http_requests_total{status=~\"5..\", method='GET'}[5m])) / sum without (route) (rate(http_requests_total[5m])) > 0.05",
    );
    let names: Vec<(&str, Vec<&str>)> = found
        .iter()
        .map(|s| {
            (
                s.metric.as_str(),
                s.labels.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("http_requests_total", vec!["status", "method"]),
            ("http_requests_total", vec![])
        ]
    );

    let found = selectors(
        "count(count by (git_sha) (api_build_info)) > 1 and on (instance) api_ready == 0 offset 5m",
    );
    let metrics: Vec<&str> = found.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(metrics, ["api_build_info", "api_ready"]);

    let found =
        selectors("absent(up{job=~\"api.*\"}) or changes(process_start_time_seconds[15m]) > 2");
    let metrics: Vec<&str> = found.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(metrics, ["up", "process_start_time_seconds"]);
}

#[test]
fn the_exposition_reader_collects_names_and_labels() {
    let exposition = "# HELP x y\n# TYPE http_requests_total counter\n\
        http_requests_total{method=\"GET\",route=\"/a,\\\"b\\\"\",status=\"200\"} 1\n\
        http_request_duration_seconds_bucket{method=\"GET\",le=\"+Inf\"} 1\n\
        api_ready 1\n";
    let series = exposed_series(exposition);
    let names: Vec<&str> = series.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "api_ready",
            "http_request_duration_seconds_bucket",
            "http_requests_total"
        ]
    );
    let labels: Vec<&str> = series["http_requests_total"]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(labels, ["method", "route", "status"]);
    assert!(series["api_ready"].is_empty());
}
