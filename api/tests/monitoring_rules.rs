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
//!
//! Then promtool (Debian's `prometheus` package, installed by `.ci/setup`)
//! checks the rule file and the scrape configs, and runs the rules' unit
//! tests in `deploy/monitoring/tests/`: every alert fires where it must and
//! stays silent where it must (staging ahead of production is not "mixed
//! versions"). The same unit tests, run on the rules as they were (grouped by
//! `job`, one `absent` for all), must fail: they catch what they are for.
//! Under CI a missing promtool fails; elsewhere those tests are skipped with
//! a loud message naming `bash .ci/setup`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use yaml_rust2::{Yaml, YamlLoader};

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

// ------------------------------------------------------------------ promtool

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring")
}

/// `CI` is set to something other than `false`/`0`.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// promtool on PATH, or `None` after a loud skip message; under CI, a panic.
fn promtool(check: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("promtool"))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            !in_ci(),
            "promtool is not installed, so {check} cannot be checked: CI must install it (`bash .ci/setup`)"
        );
        eprintln!(
            "!!!! promtool not found on PATH: {check} is NOT checked. \
             Run `bash .ci/setup` (Debian package `prometheus`). !!!!"
        );
    }
    found
}

/// `promtool <args>`: success and what it printed (both streams).
fn run_promtool(promtool: &Path, args: &[&Path]) -> (bool, String) {
    let out = Command::new(promtool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", promtool.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The rules' unit-test files, `deploy/monitoring/tests/*.yaml`.
fn unit_test_files() -> Vec<PathBuf> {
    let dir = monitoring_dir().join("tests");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no unit tests in {}", dir.display());
    files
}

fn read_yaml(path: &Path) -> Yaml {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
        .remove(0)
}

/// A temp directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("api-{label}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn promtool_checks_the_rules_and_the_scrape_configs() {
    let Some(promtool) = promtool("the alert rules and scrape configs") else {
        return;
    };
    let (ok, text) = run_promtool(
        &promtool,
        &[Path::new("check"), Path::new("rules"), &alerts_file()],
    );
    assert!(ok, "promtool check rules failed:\n{text}");
    let rules = rule_exprs(&alerts_file()).len();
    assert!(
        text.contains(&format!("SUCCESS: {rules} rules found")),
        "promtool read all {rules} rules:\n{text}"
    );

    let local = monitoring_dir().join("prometheus-local.yml");
    let (ok, text) = run_promtool(
        &promtool,
        &[Path::new("check"), Path::new("config"), &local],
    );
    assert!(ok, "promtool check config {}:\n{text}", local.display());

    let cluster = monitoring_dir().join("prometheus.yml");
    let (ok, text) = run_promtool(
        &promtool,
        &[Path::new("check"), Path::new("config"), &cluster],
    );
    if !ok && text.contains("field kubernetes_sd_configs not found") {
        // Debian's build (2.42.0+ds) leaves Kubernetes discovery out; the
        // structure is checked by the test below instead.
        eprintln!(
            "!!!! this promtool has no Kubernetes service discovery: {} is NOT checked by it. !!!!",
            cluster.display()
        );
    } else {
        assert!(ok, "promtool check config {}:\n{text}", cluster.display());
    }
}

#[test]
fn the_cluster_scrape_config_scrapes_only_discovered_targets() {
    let config = read_yaml(&monitoring_dir().join("prometheus.yml"));
    let rule_files: Vec<&str> = config["rule_files"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(rule_files, ["alerts.yaml"]);
    let jobs = config["scrape_configs"].as_vec().expect("scrape_configs");
    assert!(!jobs.is_empty(), "scrape_configs");
    for job in jobs {
        let name = job["job_name"].as_str().unwrap_or("?");
        // A fixed target is `up == 0` forever where nothing listens, and keeps
        // `up` present when every api is gone.
        assert!(
            job["static_configs"].is_badvalue(),
            "{name}: a fixed target in the cluster config"
        );
        assert!(
            !job["kubernetes_sd_configs"].is_badvalue(),
            "{name}: targets come from Kubernetes discovery"
        );
        let labels_environment = job["relabel_configs"]
            .as_vec()
            .into_iter()
            .flatten()
            .any(|r| r["target_label"].as_str() == Some("environment"));
        assert!(
            labels_environment,
            "{name}: every target gets `environment`"
        );
    }
}

#[test]
fn promtool_unit_tests_of_the_alerts_pass() {
    let Some(promtool) = promtool("the alert rules' unit tests") else {
        return;
    };
    let files = unit_test_files();
    let mut args: Vec<&Path> = vec![Path::new("test"), Path::new("rules")];
    args.extend(files.iter().map(PathBuf::as_path));
    let (ok, text) = run_promtool(&promtool, &args);
    assert!(ok, "promtool test rules failed:\n{text}");
}

/// `(alertname, expects an alert)` for every `alert_rule_test` case.
fn unit_test_cases(files: &[PathBuf]) -> Vec<(String, bool)> {
    let mut cases = Vec::new();
    for file in files {
        let doc = read_yaml(file);
        for test in doc["tests"].as_vec().into_iter().flatten() {
            for case in test["alert_rule_test"].as_vec().into_iter().flatten() {
                let name = case["alertname"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: a case without alertname", file.display()));
                let fires = case["exp_alerts"].as_vec().is_some_and(|a| !a.is_empty());
                cases.push((name.to_owned(), fires));
            }
        }
    }
    cases
}

#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let alerts: BTreeSet<String> = rule_exprs(&alerts_file())
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let cases = unit_test_cases(&unit_test_files());
    let mut missing = Vec::new();
    for alert in &alerts {
        for (fires, what) in [(true, "fires"), (false, "stays silent")] {
            if !cases.iter().any(|(name, f)| name == alert && *f == fires) {
                missing.push(format!("{alert}: no case where it {what}"));
            }
        }
    }
    for (name, _) in &cases {
        if !alerts.contains(name) {
            missing.push(format!(
                "a case for {name}, which alerts.yaml does not define"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "deploy/monitoring/tests/ must test every alert both ways:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_unit_tests_fail_on_rules_that_mix_environments() {
    let Some(promtool) = promtool("the alert rules' unit tests") else {
        return;
    };
    // alerts.yaml as it was before it kept `environment`: grouped by `job`,
    // and one `absent` for every environment at once.
    let mut rules = fs::read_to_string(alerts_file()).expect("read alerts.yaml");
    for (now, before) in [
        ("count by (environment, git_sha)", "count by (git_sha)"),
        ("count by (environment) (", "count ("),
        ("sum by (environment) (rate(", "sum by (job) (rate("),
        ("sum by (environment, route, le)", "sum by (job, route, le)"),
        (
            r#"up{job=~"api.*", environment="production"}"#,
            r#"up{job=~"api.*"}"#,
        ),
        (
            r#"up{job=~"api.*", environment="staging"}"#,
            r#"up{job=~"api.*"}"#,
        ),
    ] {
        assert!(
            rules.contains(now),
            "alerts.yaml no longer says `{now}`: update this test's rewrite"
        );
        rules = rules.replace(now, before);
    }
    let scratch = Scratch::new("alerts-before");
    fs::write(scratch.0.join("alerts.yaml"), rules).expect("write alerts.yaml");
    fs::create_dir_all(scratch.0.join("tests")).expect("create tests/");
    let mut copies = Vec::new();
    for file in unit_test_files() {
        let copy = scratch
            .0
            .join("tests")
            .join(file.file_name().expect("a file name"));
        fs::copy(&file, &copy).expect("copy a unit-test file");
        copies.push(copy);
    }
    let mut args: Vec<&Path> = vec![Path::new("test"), Path::new("rules")];
    args.extend(copies.iter().map(PathBuf::as_path));
    let (ok, text) = run_promtool(&promtool, &args);
    assert!(
        !ok,
        "the unit tests pass on environment-blind rules:\n{text}"
    );
    for alert in [
        "ApiAbsent",
        "ApiMixedVersions",
        "ApiHighErrorRate",
        "ApiHighLatencyP99",
    ] {
        assert!(
            text.contains(&format!("alertname: {alert},")),
            "no unit test caught the environment-blind {alert}:\n{text}"
        );
    }
}
