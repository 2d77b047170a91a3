//! Release metrics (issue 22): the textfile-collector file and a real
//! Pushgateway, both read back and checked by `promtool check metrics`; a
//! sink that is down; and a ledger built by real deploys and rollbacks on
//! the docker target (stand-in images: one verified, one failing
//! verification and rolled back automatically, one rolled back by hand)
//! whose counters and report are checked against the ledger's own records.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::ledger::{Line, append, unix};
use crate::support::standin::{Standin, push};
use crate::support::*;

const STAGING_REPO: &str = "127.0.0.1:5999/t/api-staging";
const CANONICAL_REPO: &str = "127.0.0.1:5999/t/api";

/// The value of the one sample of `name` whose labels include every pair
/// in `labels` (the Pushgateway adds `job` and `instance`).
fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let (set, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        let all = labels
            .iter()
            .all(|(k, v)| set.split(',').any(|p| p == format!("{k}=\"{v}\"")));
        all.then(|| value.trim().parse().ok()).flatten()
    })
}

fn promtool_check(text: &str) {
    let Some(promtool) = require_tool("promtool", "the metrics' exposition format") else {
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics complained:\n{}\n{text}",
        printed(&out)
    );
}

fn line<'a>(
    record: &'a str,
    id: &'a str,
    status: &'a str,
    sha: &'a str,
    reason: Option<&'a str>,
    started: i64,
    at: i64,
) -> Value {
    Line {
        record,
        id,
        status,
        sha,
        previous_sha: None,
        reason,
        started,
        at,
        repository: STAGING_REPO,
    }
    .json()
}

/// Two deploys verified (60 s, 60 s), one failed (90 s) and rolled back
/// automatically (20 s), a manual rollback (30 s), one still running; two
/// canonical builds and one staging build in the build log.
fn synthetic_state(state: &Path) {
    let (a, b) = ("a".repeat(40), "b".repeat(40));
    let t = 1_780_000_000;
    append(
        state,
        &[
            Ok(line("deploy", "d1", "complete", &a, None, t, t + 60)),
            Ok(line("deploy", "d2", "complete", &b, None, t + 100, t + 160)),
            Ok(line("deploy", "d3", "failed", &a, None, t + 200, t + 290)),
            Ok(line(
                "rollback",
                "r1",
                "complete",
                &b,
                Some("failed-verification"),
                t + 280,
                t + 300,
            )),
            Ok(line(
                "rollback",
                "r2",
                "complete",
                &a,
                Some("manual"),
                t + 400,
                t + 430,
            )),
            Ok(line("deploy", "d4", "running", &b, None, t + 500, t + 500)),
            Err("{\"record\":\"dep"),
        ],
    );
    let dir = state.join("metrics");
    std::fs::create_dir_all(&dir).expect("metrics dir");
    let build = |kind: &str, secs: f64| {
        serde_json::json!({"image_sha": a, "repository_type": kind, "pushed": true,
            "build_duration_sec": secs, "built_at": "2026-06-01T00:00:00Z"})
        .to_string()
    };
    std::fs::write(
        dir.join("builds.jsonl"),
        format!(
            "{}\n{}\n{}\n{{torn\n",
            build("canonical", 100.0),
            build("canonical", 700.0),
            build("staging", 50.0)
        ),
    )
    .expect("build log");
}

fn xtask_in(project: &Project, state: &Path, args: &[&str]) -> Xtask {
    project
        .xtask_cmd(args)
        .env("XTASK_STATE_DIR", state)
        .env("XTASK_REPOSITORY", CANONICAL_REPO)
        .env("XTASK_STAGING_REPOSITORY", STAGING_REPO)
}

/// Every figure of the synthetic state, counted by hand.
fn assert_synthetic_figures(text: &str) {
    let s = |name, labels: &[(&str, &str)]| sample(text, name, labels);
    let staging = ("environment", "staging");
    let docker = ("target", "docker");
    assert_eq!(
        s("image_build_total", &[("repository_type", "canonical")]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        s("image_build_total", &[("repository_type", "staging")]),
        Some(1.0)
    );
    let canonical = [("repository_type", "canonical")];
    assert_eq!(
        s(
            "image_build_duration_seconds_bucket",
            &[canonical[0], ("le", "120")]
        ),
        Some(1.0),
        "100 s"
    );
    assert_eq!(
        s(
            "image_build_duration_seconds_bucket",
            &[canonical[0], ("le", "900")]
        ),
        Some(2.0),
        "700 s"
    );
    assert_eq!(
        s("image_build_duration_seconds_sum", &canonical),
        Some(800.0)
    );
    assert_eq!(
        s("deploy_total", &[staging, docker, ("status", "complete")]),
        Some(2.0)
    );
    assert_eq!(
        s("deploy_total", &[staging, docker, ("status", "failed")]),
        Some(1.0)
    );
    assert_eq!(
        s("deploy_total", &[staging, docker, ("status", "running")]),
        Some(1.0)
    );
    let rb = |reason| {
        s(
            "rollback_total",
            &[("repository_type", "staging"), ("reason", reason)],
        )
    };
    assert_eq!(rb("failed-verification"), Some(1.0));
    assert_eq!(rb("manual"), Some(1.0));
    let deploy = [staging, docker, ("record", "deploy")];
    let bucket = |le| {
        let mut l = deploy.to_vec();
        l.push(("le", le));
        s("release_duration_seconds_bucket", &l)
    };
    // 60, 60, 90 (the running one has no duration yet).
    assert_eq!(bucket("30"), Some(0.0));
    assert_eq!(bucket("60"), Some(2.0));
    assert_eq!(bucket("120"), Some(3.0));
    assert_eq!(bucket("+Inf"), Some(3.0));
    assert_eq!(s("release_duration_seconds_sum", &deploy), Some(210.0));
    assert_eq!(
        s(
            "release_duration_seconds_count",
            &[staging, docker, ("record", "rollback")]
        ),
        Some(2.0)
    );
    assert_eq!(s("xtask_ledger_unreadable_lines", &[staging]), Some(1.0));
}

#[test]
fn every_task_rewrites_the_textfile_atomically_and_promtool_accepts_it() {
    let project = Project::tiny();
    let state = TempDir::new("metrics-state");
    let dir = TempDir::new("textfile");
    synthetic_state(state.path());
    xtask_in(&project, state.path(), &["history", "--env", "staging"])
        .env("XTASK_METRICS_DIR", dir.path())
        .run()
        .expect_success();
    let text = std::fs::read_to_string(dir.join("xtask.prom")).expect("xtask.prom written");
    assert_synthetic_figures(&text);
    promtool_check(&text);

    // Another task, the flag this time: one more deploy is counted, and
    // nothing but xtask.prom is left in the folder (no temp file).
    let t = 1_780_001_000;
    append(
        state.path(),
        &[Ok(line(
            "deploy",
            "d5",
            "complete",
            &"c".repeat(40),
            None,
            t,
            t + 5,
        ))],
    );
    let flag = format!("--metrics-dir={}", dir.path().display());
    xtask_in(
        &project,
        state.path(),
        &["report", "--env", "staging", &flag],
    )
    .run()
    .expect_success();
    let text = std::fs::read_to_string(dir.join("xtask.prom")).expect("xtask.prom");
    let complete = [
        ("environment", "staging"),
        ("target", "docker"),
        ("status", "complete"),
    ];
    assert_eq!(
        sample(&text, "deploy_total", &complete),
        Some(3.0),
        "{text}"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["xtask.prom"]);
}

#[test]
fn metrics_reach_a_real_pushgateway_and_scrape_back() {
    let Some(gateway) = Pushgateway::start() else {
        return;
    };
    let project = Project::tiny();
    let state = TempDir::new("metrics-state");
    synthetic_state(state.path());
    let run = xtask_in(&project, state.path(), &["history", "--env", "staging"])
        .env("XTASK_PUSHGATEWAY_URL", gateway.url(""))
        .run();
    run.expect_success();
    assert!(
        run.stderr.contains("$ curl "),
        "the push is printed: {}",
        run.stderr
    );
    let scraped = gateway.scrape();
    assert_synthetic_figures(&scraped);
    assert!(
        sample(
            &scraped,
            "deploy_total",
            &[("job", "xtask"), ("instance", "")]
        )
        .is_some(),
        "grouped under job=\"xtask\": {scraped}"
    );
    assert!(sample(&scraped, "push_failure_time_seconds", &[("job", "xtask")]) == Some(0.0));
    promtool_check(&scraped);
}

#[test]
fn a_sink_that_is_down_warns_once_and_never_fails_the_task() {
    let project = Project::tiny();
    let state = TempDir::new("metrics-state");
    synthetic_state(state.path());
    // A file where the folder should be, and a port nothing listens on.
    let blocker = TempDir::new("blocked");
    std::fs::write(blocker.join("not-a-dir"), "x").expect("write");
    let run = xtask_in(&project, state.path(), &["history", "--env", "staging"])
        .env("XTASK_METRICS_DIR", blocker.join("not-a-dir"))
        .env(
            "XTASK_PUSHGATEWAY_URL",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .run();
    run.expect_success();
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: metrics"))
        .collect();
    assert_eq!(warnings.len(), 2, "one per sink: {}", run.stderr);
    assert!(
        warnings
            .iter()
            .all(|w| w.ends_with("the task itself is unaffected")),
        "{warnings:?}"
    );
    assert!(
        !run.stdout.is_empty(),
        "the history is printed all the same"
    );
}

/// A ledger as the engine wrote it: the latest line of each release, in
/// the order of their first lines.
fn fold(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("ledger");
    let mut order: Vec<String> = Vec::new();
    let mut latest: HashMap<String, Value> = HashMap::new();
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).expect("a ledger line");
        let id = v["id"].as_str().expect("id").to_owned();
        if !latest.contains_key(&id) {
            order.push(id.clone());
        }
        latest.insert(id, v);
    }
    order
        .into_iter()
        .map(|id| latest.remove(&id).expect("folded"))
        .collect()
}

#[test]
fn real_deploys_and_rollbacks_feed_the_counters_and_the_report() {
    let registry = Registry::start();
    let gateway = Pushgateway::start();
    let project = Project::tiny();
    let a = project.sha();
    let b = project.commit_empty("B");
    let c = project.commit_empty("C");
    let repo = registry.repo("h22metrics/api");
    let images = DockerGuard::new();
    images.images_under(&format!("{}/", registry.host()));
    // C's image answers /version with B's SHA: its verification fails.
    for (sha, serves) in [(&a, &a), (&b, &b), (&c, &b)] {
        let tag = format!("{repo}:{sha}");
        Standin::new(serves).build(&tag);
        if sha != serves {
            // Labelled as its own commit, so it passes the label check and
            // fails where it lies: `/version`.
            docker_build_relabelled(
                &tag,
                &tag,
                &[("org.opencontainers.image.revision", sha.as_str())],
            );
        }
        push(&tag);
    }
    let state = TempDir::new("metrics-real");
    let textfile = TempDir::new("metrics-real-textfile");
    let port = free_port();
    let container = format!("h22-metrics-{}", std::process::id());
    images.environment(&container);
    let config = state.join("release.json");
    std::fs::write(
        &config,
        serde_json::json!({"environments": {"staging": {"port": port, "container": container}}})
            .to_string(),
    )
    .expect("config");
    let pushgateway_url = gateway.as_ref().map_or_else(
        || format!("http://127.0.0.1:{}", free_port()),
        |g| g.url(""),
    );
    let xtask = |args: &[&str]| {
        project
            .xtask_cmd(args)
            .env("XTASK_STATE_DIR", state.path())
            .env("XTASK_CONFIG", &config)
            .env("XTASK_REPOSITORY", &repo)
            .env(
                "XTASK_STAGING_REPOSITORY",
                registry.repo("h22metrics/api-staging"),
            )
            .env("XTASK_METRICS_DIR", textfile.path())
            .env("XTASK_PUSHGATEWAY_URL", &pushgateway_url)
    };
    // The first deploy with a Pushgateway that is down: it still deploys.
    let first = xtask(&["deploy", &a, "--env", "staging"])
        .env(
            "XTASK_PUSHGATEWAY_URL",
            format!("http://127.0.0.1:{}", free_port()),
        )
        .run();
    first.expect_success();
    assert_eq!(
        first.stderr.matches("warning: metrics not pushed").count(),
        1,
        "{}",
        first.stderr
    );
    xtask(&["deploy", &b, "--env", "staging"])
        .run()
        .expect_success();
    // In a GitHub job the failed deploy still writes the report to the
    // job summary.
    let summary = state.join("step-summary.md");
    let failed = xtask(&["deploy", &c, "--env", "staging", "--verify-timeout", "3"])
        .env("GITHUB_STEP_SUMMARY", &summary)
        .run();
    assert!(
        failed.single_error().contains("rolled back automatically"),
        "{}",
        failed.stderr
    );
    let written = std::fs::read_to_string(&summary).expect("a job summary");
    assert!(
        written.starts_with("### Delivery of staging")
            && written.contains("| change failure rate | 33.3% |")
            && written.contains("```mermaid"),
        "1 failed (d3) of 3 deploys, d2 not yet rolled back: {written}"
    );
    // By hand, back to the release before B: A.
    xtask(&["rollback", "--env", "staging"])
        .run()
        .expect_success();

    let releases = fold(&state.join("ledger/staging.jsonl"));
    let kinds: Vec<(&str, &str)> = releases
        .iter()
        .map(|r| {
            (
                r["record"].as_str().unwrap_or("?"),
                r["status"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("deploy", "complete"),
            ("deploy", "complete"),
            ("deploy", "failed"),
            ("rollback", "complete"),
            ("rollback", "complete"),
        ]
    );
    assert_eq!(releases[3]["reason"], "failed-verification");
    assert_eq!(releases[4]["reason"], "manual");
    assert_eq!(releases[4]["image_sha"], a.as_str());

    // The counters, in the textfile and in the Pushgateway alike.
    let text = std::fs::read_to_string(textfile.join("xtask.prom")).expect("xtask.prom");
    let mut expositions = vec![text];
    if let Some(g) = &gateway {
        expositions.push(g.scrape());
    }
    for text in &expositions {
        let env = [("environment", "staging"), ("target", "docker")];
        let deploys = |status| sample(text, "deploy_total", &[env[0], env[1], ("status", status)]);
        assert_eq!(
            (deploys("complete"), deploys("failed")),
            (Some(2.0), Some(1.0)),
            "{text}"
        );
        let rb = |reason| {
            sample(
                text,
                "rollback_total",
                &[("repository_type", "canonical"), ("reason", reason)],
            )
        };
        assert_eq!(
            (rb("failed-verification"), rb("manual")),
            (Some(1.0), Some(1.0)),
            "{text}"
        );
        let count = |record| {
            sample(
                text,
                "release_duration_seconds_count",
                &[env[0], env[1], ("record", record)],
            )
        };
        assert_eq!((count("deploy"), count("rollback")), (Some(3.0), Some(2.0)));
        let sum: f64 = releases
            .iter()
            .filter(|r| r["record"] == "deploy")
            .map(|r| r["duration_sec"].as_f64().expect("duration"))
            .sum();
        let written = sample(
            text,
            "release_duration_seconds_sum",
            &[env[0], env[1], ("record", "deploy")],
        )
        .expect("a sum");
        assert!((written - sum).abs() < 1e-6, "{written} vs {sum}");
        promtool_check(text);
    }

    // The report, against the records by hand.
    let run = xtask(&["report", "--env", "staging", "--json"]).run();
    run.expect_success();
    let r = run.last_json();
    let t = |i: usize, key: &str| unix(releases[i][key].as_str().expect("a time"));
    let commit = |sha: &str| -> i64 {
        project
            .git(&["show", "-s", "--format=%ct", sha])
            .parse()
            .expect("commit time")
    };
    let to = (0..5).map(|i| t(i, "at")).max().expect("times");
    let from = (0..5).map(|i| t(i, "at")).min().expect("times");
    let days = (to - from) as f64 / 86_400.0;
    let round = |x: f64, p: i32| (x * 10f64.powi(p)).round() / 10f64.powi(p);
    // Seconds of records: no rate per day is made up from them.
    assert!(days < 1.0);
    assert_eq!(r["deployment_frequency"]["deploys"], 2, "{r}");
    assert!(r["deployment_frequency"]["value"].is_null(), "{r}");
    let note = r["deployment_frequency"]["note"]
        .as_str()
        .unwrap_or_default();
    assert!(
        note.starts_with("not enough data") && note.contains("less than a day"),
        "{note}"
    );
    let leads = [
        (t(0, "at") - commit(&a)) as f64,
        (t(1, "at") - commit(&b)) as f64,
    ];
    assert_eq!(r["lead_time"]["changes"], 2);
    assert_eq!(
        r["lead_time"]["value"].as_f64(),
        Some((leads[0] + leads[1]) / 2.0)
    );
    // d3 failed; d2 (B) was rolled back by hand: 2 of 3.
    assert_eq!(r["change_failure_rate"]["failures"], 2);
    assert_eq!(r["change_failure_rate"]["deploys"], 3);
    assert_eq!(
        r["change_failure_rate"]["value"].as_f64(),
        Some(round(2.0 / 3.0, 4))
    );
    // d3 start → its automatic rollback; d2 start → the manual rollback.
    let restores = [
        (t(3, "at") - t(2, "started_at")) as f64,
        (t(4, "at") - t(1, "started_at")) as f64,
    ];
    assert_eq!(r["time_to_restore"]["restores"], 2);
    assert_eq!(
        r["time_to_restore"]["value"].as_f64(),
        Some((restores[0] + restores[1]) / 2.0)
    );
    assert_eq!(r["releases"]["automatic_rollbacks"], 1);
    assert_eq!(r["releases"]["manual_rollbacks"], 1);
    assert_eq!(
        r["signing"]["releases"], 4,
        "the verified releases: d1, d2, r1, r2"
    );
    // The same figures for a person and for the job summary (the output
    // shown in README.md and docs/quickstart.md comes from this run).
    let text = xtask(&["report", "--env", "staging"]).run();
    text.expect_success();
    assert!(
        text.stdout.contains(
            "change failure rate    66.7%: 2 of 3 deploys (1 failed, 1 rolled back by hand)"
        ),
        "{}",
        text.stdout
    );
    let md = xtask(&["report", "--env", "staging", "--markdown"]).run();
    md.expect_success();
    assert!(
        md.stdout.contains("| change failure rate | 66.7% |"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout.contains("    bar [2]\n    line [2]\n"),
        "{}",
        md.stdout
    );
}

/// `ci-build` adds its build to the build log, and `image_build_total`
/// counts it (the shared tiny build: other tests may build it again while
/// this one runs, so the count is bounded by the log before and after).
#[test]
fn a_real_ci_build_is_logged_and_counted() {
    let build = crate::support::world::tiny_build();
    let state = build
        .project
        .metadata_path()
        .parent()
        .expect("the state dir")
        .to_path_buf();
    let log = state.join("metrics/builds.jsonl");
    let lines = || -> Vec<Value> {
        std::fs::read_to_string(&log)
            .expect("the build log")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a build line"))
            .collect()
    };
    let before = lines();
    let first = &before[0];
    assert_eq!(first["image_sha"], build.sha(), "{first}");
    assert_eq!(first["repository_type"], "canonical", "built on main");
    assert_eq!(first["pushed"], true);
    assert_eq!(
        first["build_duration_sec"],
        build.record["build_duration_sec"]
    );
    assert_eq!(first["built_at"], build.record["built_at"]);

    let dir = TempDir::new("build-textfile");
    build
        .project
        .xtask_cmd(&["history", "--env", "staging"])
        .env("XTASK_METRICS_DIR", dir.path())
        .run()
        .expect_success();
    let after = lines();
    let text = std::fs::read_to_string(dir.join("xtask.prom")).expect("xtask.prom");
    let canonical = [("repository_type", "canonical")];
    let counted = sample(&text, "image_build_total", &canonical).expect("a count");
    assert!(
        (before.len() as f64..=after.len() as f64).contains(&counted),
        "{counted} builds counted, the log had {} then {}",
        before.len(),
        after.len()
    );
    assert_eq!(
        sample(&text, "image_build_duration_seconds_count", &canonical),
        Some(counted)
    );
    promtool_check(&text);
}
