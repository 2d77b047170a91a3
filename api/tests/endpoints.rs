//! Every endpoint through the library's `serve()` on a real socket.

mod common;

use std::process::Command;

use common::{InProcess, get, request};

#[test]
fn health_liveness_and_readiness_answer_while_serving() {
    let server = InProcess::start();
    for (path, body) in [
        ("/health", r#"{"status":"ok"}"#),
        ("/liveness", r#"{"status":"alive"}"#),
        ("/readiness", r#"{"status":"ready"}"#),
    ] {
        let reply = get(server.addr, path);
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{path}"
        );
        assert_eq!(reply.body, body, "{path}");
    }
    server.stop().expect("clean stop");
}

#[test]
fn unknown_paths_are_404_and_wrong_methods_405() {
    let server = InProcess::start();
    let reply = get(server.addr, "/no/such/thing");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"], "not found");
    assert_eq!(request(server.addr, "POST", "/health").status, 405);
}

#[test]
fn version_has_the_documented_shape() {
    let server = InProcess::start();
    let reply = get(server.addr, "/version");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let version = reply.json();
    let object = version.as_object().expect("a JSON object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["built_at", "git_sha", "short_sha", "version"]);
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));

    let git_sha = version["git_sha"].as_str().expect("git_sha is a string");
    let short_sha = version["short_sha"]
        .as_str()
        .expect("short_sha is a string");
    if git_sha == "unknown" {
        assert_eq!(short_sha, "unknown");
    } else {
        assert!(is_hex(git_sha, 40), "git_sha {git_sha:?}");
        assert!(
            is_hex(short_sha, 12) && git_sha.starts_with(short_sha),
            "short_sha {short_sha:?}"
        );
    }
    let built_at = version["built_at"].as_str().expect("built_at is a string");
    assert!(is_rfc3339_utc(built_at), "built_at {built_at:?}");
}

/// The SHA is the one `build.rs` chose: `GIT_SHA` when set, else `git rev-parse HEAD`,
/// else `unknown`.
#[test]
fn version_reports_the_sha_given_at_build() {
    let server = InProcess::start();
    let reported = get(server.addr, "/version").json()["git_sha"]
        .as_str()
        .map(str::to_owned)
        .expect("git_sha");

    if let Ok(expected) = std::env::var("GIT_SHA") {
        assert_eq!(
            reported, expected,
            "build.rs takes GIT_SHA from the environment"
        );
        return;
    }
    let Some(head) = git(&["rev-parse", "--verify", "--quiet", "HEAD"]) else {
        assert_eq!(
            reported, "unknown",
            "no GIT_SHA and no commit: the SHA is unknown"
        );
        return;
    };
    if reported != head {
        // Others commit in this checkout while tests run: HEAD may have moved since the
        // build. The build's SHA must then still be a commit HEAD descends from.
        let ancestor = git(&["merge-base", "--is-ancestor", &reported, &head]).is_some();
        assert!(
            ancestor,
            "/version reports {reported}, HEAD is {head} and does not descend from it"
        );
        eprintln!("note: HEAD moved from {reported} to {head} since the test binary was built");
    }
}

#[test]
fn metrics_count_the_requests_made() {
    let server = InProcess::start();
    for _ in 0..3 {
        assert_eq!(get(server.addr, "/health").status, 200);
    }
    assert_eq!(get(server.addr, "/missing").status, 404);
    assert_eq!(request(server.addr, "DELETE", "/version").status, 405);

    let reply = get(server.addr, "/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = reply.body;
    let health = r#"method="GET",route="/health",status="200""#;
    let expected = [
        "# TYPE http_requests_total counter".to_owned(),
        format!("http_requests_total{{{health}}} 3"),
        r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#.to_owned(),
        r#"http_requests_total{method="DELETE",route="/version",status="405"} 1"#.to_owned(),
        "# TYPE http_request_duration_seconds histogram".to_owned(),
        format!(r#"http_request_duration_seconds_bucket{{{health},le="+Inf"}} 3"#),
        format!("http_request_duration_seconds_count{{{health}}} 3"),
        "# TYPE http_requests_in_flight gauge".to_owned(),
        // The /metrics request itself.
        "http_requests_in_flight 1".to_owned(),
        format!(
            r#"api_build_info{{git_sha="{}",version="{}"}} 1"#,
            api::version::BuildInfo::CURRENT.git_sha,
            env!("CARGO_PKG_VERSION")
        ),
        "api_ready 1".to_owned(),
        "# TYPE process_start_time_seconds gauge".to_owned(),
    ];
    for line in expected {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    let buckets: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(&format!("http_request_duration_seconds_bucket{{{health},")))
        .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        buckets,
        [
            "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
            "1", "2.5", "5", "+Inf"
        ]
    );
    let sum: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("http_request_duration_seconds_sum{{{health}}} ")))
        .and_then(|v| v.parse().ok())
        .expect("a _sum for /health");
    assert!(sum > 0.0 && sum < 3.0 * 5.0, "sum {sum}");
    let started: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("process_start_time_seconds "))
        .and_then(|v| v.parse().ok())
        .expect("process_start_time_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    assert!(
        started <= now.as_secs_f64() && started > now.as_secs_f64() - 600.0,
        "start time {started}"
    );
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
fn is_rfc3339_utc(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Before `serve()` marks the server ready (and after it starts draining) the flag is
/// down: the bare router over fresh state answers `/readiness` 503 while `/health` and
/// `/liveness` stay 200 and `api_ready` reads 0.
#[test]
fn readiness_is_503_until_serve_marks_it_ready() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let state = api::AppState::new();
    runtime.spawn(async move { axum::serve(listener, api::app(state)).await });

    let readiness = get(addr, "/readiness");
    assert_eq!(readiness.status, 503);
    assert_eq!(readiness.body, r#"{"status":"not ready"}"#);
    assert_eq!(get(addr, "/health").status, 200);
    assert_eq!(get(addr, "/liveness").status, 200);
    assert!(
        get(addr, "/metrics")
            .body
            .lines()
            .any(|l| l == "api_ready 0")
    );
}
