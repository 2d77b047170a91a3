//! The stand-in api (`standin-api`, test support for the engine, proxy and
//! canary tests): it answers like the api, fails and slows down exactly as
//! told, drains on SIGTERM, and its image deploys through the real engine.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::standin::{Standin, push};
use crate::support::*;

fn spawn(args: &[&str]) -> (std::process::Child, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(fake_bin("standin-api"))
        .args(args)
        .args(["--listen", &listen])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start standin-api");
    let base = format!("http://{listen}");
    let up = poll_until(Duration::from_secs(10), || {
        (http_get(&format!("{base}/health")).0 == 200).then_some(())
    });
    assert!(up.is_some(), "standin-api never answered on {base}");
    (child, base)
}

/// The value of one sample line of the exposition, e.g.
/// `http_requests_total{method="GET",route="/{*rest}",status="500"}`.
fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn the_standin_fails_exactly_as_told_counts_it_in_its_metrics_and_drains_on_sigterm() {
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let (mut child, base) = spawn(&["--sha", sha, "--error-rate", "0.25"]);
    let (status, body) = http_get(&format!("{base}/version"));
    assert_eq!(status, 200);
    let version: Value = serde_json::from_str(&body).expect("version JSON");
    assert_eq!(version["git_sha"], sha);
    assert_eq!(version["short_sha"], &sha[..12]);

    let statuses: Vec<u16> = (0..100)
        .map(|i| http_get(&format!("{base}/work/{i}")).0)
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 500).count(), 25);
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 75);
    // Probes never fail.
    assert_eq!(http_get(&format!("{base}/health")).0, 200);

    let (_, metrics) = http_get(&format!("{base}/metrics"));
    let rest = r#"{method="GET",route="/{*rest}",status="#;
    assert_eq!(
        sample(&metrics, &format!("http_requests_total{rest}\"500\"}}")),
        Some(25.0)
    );
    assert_eq!(
        sample(&metrics, &format!("http_requests_total{rest}\"200\"}}")),
        Some(75.0)
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("http_request_duration_seconds_count{rest}\"200\"}}")
        ),
        Some(75.0)
    );
    assert_eq!(
        sample(
            &metrics,
            &format!("http_request_duration_seconds_bucket{rest}\"200\",le=\"+Inf\"}}")
        ),
        Some(75.0)
    );

    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.is_ok_and(|s| s.success()));
    let exited = poll_until(Duration::from_secs(5), || child.try_wait().ok().flatten());
    assert!(exited.is_some(), "standin-api did not stop on SIGTERM");
}

#[test]
fn the_standin_refuses_a_bad_sha_and_a_bad_rate() {
    for args in [
        &["--sha", "latest"][..],
        &[
            "--sha",
            "0123456789abcdef0123456789abcdef01234567",
            "--error-rate",
            "2",
        ],
    ] {
        let out = Command::new(fake_bin("standin-api"))
            .args(args)
            .output()
            .expect("run standin-api");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn the_slow_standin_is_slow_on_work_and_quick_on_probes() {
    let sha = "89abcdef0123456789abcdef0123456789abcdef";
    let (mut child, base) = spawn(&["--sha", sha, "--delay-ms", "300"]);
    let started = std::time::Instant::now();
    assert_eq!(http_get(&format!("{base}/work")).0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let (_, metrics) = http_get(&format!("{base}/metrics"));
    // 300 ms lands in the 0.5 s bucket, not below.
    let series =
        r#"http_request_duration_seconds_bucket{method="GET",route="/{*rest}",status="200",le="#;
    assert_eq!(sample(&metrics, &format!("{series}\"0.25\"}}")), Some(0.0));
    assert_eq!(sample(&metrics, &format!("{series}\"0.5\"}}")), Some(1.0));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_standin_image_deploys_through_the_real_engine_and_reports_its_sha() {
    let registry = Registry::start();
    let project = Project::tiny();
    let sha = project.sha();
    let repo = registry.repo("standin/api");
    let tag = format!("{repo}:{sha}");
    let images = DockerGuard::new();
    images.images_under(&format!("{}/", registry.host()));
    Standin::new(&sha).build(&tag);
    let digest = push(&tag);
    assert_eq!(
        registry.digest("standin/api", &sha).as_deref(),
        Some(digest.as_str())
    );

    let state = TempDir::new("standin-state");
    let port = free_port();
    let container = format!("xtask-it-standin-{}", std::process::id());
    images.environment(&container);
    let config = state.join("release.json");
    std::fs::write(
        &config,
        serde_json::json!({"environments": {"staging": {"port": port, "container": container}}})
            .to_string(),
    )
    .expect("config");
    let xtask = |args: &[&str]| {
        project
            .xtask_cmd(args)
            .env("XTASK_STATE_DIR", state.path())
            .env("XTASK_CONFIG", &config)
            .env("XTASK_REPOSITORY", &repo)
            .env(
                "XTASK_STAGING_REPOSITORY",
                registry.repo("standin/api-staging"),
            )
            .run()
    };
    xtask(&["deploy", &sha, "--env", "staging", "--json"]).expect_success();
    let status = xtask(&["status", "--env", "staging", "--json"]);
    status.expect_success();
    let status = status.last_json();
    assert_eq!(status["reported_sha"], sha.as_str(), "{status}");
    assert_eq!(status["image_digest"], digest.as_str(), "{status}");
}
