//! Progressive delivery on the real engine and the real proxy (HAProxy),
//! with stand-in images (`standin-api`: healthy, or answering 500 to a share
//! of requests) and load generated here: a bounded loop of requests to the
//! environment's port. One environment per test, each its own registry,
//! port and container names, so the three run side by side: a faulty
//! canary aborted at its first step; a healthy one promoted through every
//! step, then one with no traffic failed closed; a canary ended mid-step
//! by SIGTERM, then by kill -9.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::standin::{Standin, push};
use crate::support::*;

/// Requests per second the load loop aims at (the figure).
const RATE: u64 = 50;

/// A bounded loop of GETs to `/work/N` on the environment's port, counting
/// answers by class, until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let (s, o, e) = (stop.clone(), ok.clone(), errors.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            // At most 10 minutes of load, whatever happens to the test.
            for n in 0..RATE * 600 {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let (status, _) = http_get(&format!("http://127.0.0.1:{port}/work/{n}"));
                if status >= 500 || status == 0 {
                    e.fetch_add(1, Ordering::SeqCst);
                } else {
                    o.fetch_add(1, Ordering::SeqCst);
                }
                // Paced to RATE per second from the start (no drift).
                let due = started + Duration::from_millis((n + 1) * 1000 / RATE);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        });
        Load {
            stop,
            ok,
            errors,
            thread: Some(thread),
        }
    }

    /// Stop; (answered, failed).
    fn stop(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        (
            self.ok.load(Ordering::SeqCst),
            self.errors.load(Ordering::SeqCst),
        )
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One environment on the docker target: its registry, state, port and
/// names, and the cleanup of everything its proxy and releases created.
struct Env {
    registry: Registry,
    project: Project,
    state: TempDir,
    config: std::path::PathBuf,
    port: u16,
    repo: String,
    container: String,
    _images: DockerGuard,
}

impl Env {
    fn new(label: &str) -> Env {
        let registry = Registry::start();
        let project = Project::tiny();
        let state = TempDir::new("canary-state");
        let port = free_port();
        let container = format!("xtask-it-canary-{label}-{}", std::process::id());
        let images = DockerGuard::new();
        images.images_under(&format!("{}/", registry.host()));
        let config = state.join("release.json");
        std::fs::write(
            &config,
            serde_json::json!({"environments": {"staging": {
                "port": port, "container": container, "drain_secs": 1
            }}})
            .to_string(),
        )
        .expect("config");
        let repo = registry.repo("canary/api");
        Env {
            registry,
            project,
            state,
            config,
            port,
            repo,
            container,
            _images: images,
        }
    }

    /// A new commit, its stand-in image pushed under its SHA.
    fn release(&self, standin: impl FnOnce(&str) -> Standin) -> String {
        let sha = self.project.commit_empty("a release");
        let tag = format!("{}:{sha}", self.repo);
        standin(&sha).build(&tag);
        push(&tag);
        sha
    }

    fn xtask(&self, args: &[&str]) -> Run {
        self.project
            .xtask_cmd(args)
            .env("XTASK_STATE_DIR", self.state.path())
            .env("XTASK_CONFIG", &self.config)
            .env("XTASK_REPOSITORY", &self.repo)
            .env(
                "XTASK_STAGING_REPOSITORY",
                self.registry.repo("canary/api-staging"),
            )
            .run()
    }

    fn serving(&self) -> String {
        let (status, body) = http_get(&format!("http://127.0.0.1:{}/version", self.port));
        assert_eq!(status, 200, "{body}");
        let v: Value = serde_json::from_str(&body).expect("version JSON");
        v["git_sha"].as_str().unwrap_or_default().to_owned()
    }

    /// The newest release in `history --json`.
    fn newest(&self) -> Value {
        let h = self.xtask(&["history", "--env", "staging", "--json"]);
        h.expect_success();
        let first = h.stdout.lines().next().expect("a history line").to_owned();
        serde_json::from_str(&first).expect("history JSON")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Everything this environment's state dir labelled, then its network.
        let state = self.state.path().display().to_string();
        let _ = std::process::Command::new("sh")
            .args([
                "-c",
                &format!(
                    "docker ps -aq --filter label=xtask.state={state} | xargs -r docker rm -f -v >/dev/null 2>&1; docker network rm {}-net >/dev/null 2>&1",
                    self.container
                ),
            ])
            .status();
    }
}

fn steps(release: &Value) -> Vec<(u64, String)> {
    release["analysis"]["steps"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["weight"].as_u64().unwrap_or(0),
                        s["verdict"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A stable release, deployed all at once and serving.
fn stable(env: &Env) -> String {
    let stable = env.release(Standin::new);
    env.xtask(&["deploy", &stable, "--env", "staging"])
        .expect_success();
    assert_eq!(env.serving(), stable);
    stable
}

#[test]
fn a_faulty_canary_is_aborted_at_its_first_step() {
    let env = Env::new("faulty");
    let stable = stable(&env);

    // A canary answering 500 to a quarter of its requests, under 50 req/s.
    let faulty = env.release(|sha| Standin::new(sha).error_rate(0.25));
    let load = Load::start(env.port);
    let started = Instant::now();
    let run = env.xtask(&[
        "deploy",
        &faulty,
        "--env",
        "staging",
        "--strategy",
        "canary",
        "--steps",
        "10,50,100",
        "--step-duration",
        "20",
    ]);
    let took = started.elapsed();
    let (ok, failed) = load.stop();
    assert_ne!(run.code(), Some(0), "the faulty canary must fail");
    let said = run.single_error();
    assert!(
        said.contains("failed-analysis")
            && said.contains("success rate")
            && said.contains("step 1 (10%)"),
        "{said}"
    );
    assert!(took < Duration::from_secs(30), "aborted after {took:?}");
    assert_eq!(env.serving(), stable, "all traffic back on the stable");
    // Users saw fewer failures than weight × fault rate (10 % × 25 %).
    let rate = failed as f64 / (ok + failed).max(1) as f64;
    assert!(rate < 0.10 * 0.25, "{failed} of {} failed", ok + failed);
    let r = env.newest();
    assert_eq!(r["reason"], "failed-analysis", "{r}");
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["left_on_sha"], stable.as_str(), "{r}");
    assert_eq!(steps(&r), [(10, "failed".to_owned())], "{r}");
    let step = &r["analysis"]["steps"][0];
    assert!(step["errors"].as_u64().unwrap_or(0) > 0, "{r}");
    assert!(step["success_rate"].as_f64().unwrap_or(1.0) < 0.99, "{r}");
    assert_eq!(r["analysis"]["bounds"]["success_rate"], 0.99, "{r}");
    let text = env.xtask(&["history", "--env", "staging"]);
    text.expect_success();
    assert!(
        text.stdout.contains("failed-analysis") && text.stdout.contains("step 1 (10%) failed"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_healthy_canary_is_promoted_through_every_step_and_no_traffic_fails_closed() {
    let env = Env::new("healthy");
    stable(&env);
    let healthy = env.release(Standin::new);
    let load = Load::start(env.port);
    let run = env.xtask(&[
        "deploy",
        &healthy,
        "--env",
        "staging",
        "--strategy",
        "canary",
        "--steps",
        "25,50,100",
        "--step-duration",
        // 25 % of 50 req/s gives the 20 requests a window needs in 1.6 s.
        "4",
    ]);
    let (ok, failed) = load.stop();
    run.expect_success();
    assert_eq!(
        failed, 0,
        "no request failed during the promotion ({ok} answered)"
    );
    assert_eq!(env.serving(), healthy);
    let r = env.newest();
    assert_eq!(r["status"], "complete", "{r}");
    assert_eq!(r["strategy"], "canary", "{r}");
    let promoted: Vec<(u64, String)> = [25, 50, 100]
        .into_iter()
        .map(|w| (w, "successful".to_owned()))
        .collect();
    assert_eq!(steps(&r), promoted, "{r}");
    let text = env.xtask(&["history", "--env", "staging"]);
    text.expect_success();
    assert!(
        text.stdout.contains("step 3 (100%) successful"),
        "{}",
        text.stdout
    );

    // No traffic at all: inconclusive, and the step fails closed.
    let quiet = env.release(Standin::new);
    let run = env.xtask(&[
        "deploy",
        &quiet,
        "--env",
        "staging",
        "--strategy",
        "canary",
        "--steps",
        "50,100",
        "--step-duration",
        "2",
    ]);
    assert_ne!(run.code(), Some(0));
    assert!(
        run.single_error().contains("too little traffic"),
        "{}",
        run.single_error()
    );
    let r = env.newest();
    assert_eq!(steps(&r), [(50, "inconclusive".to_owned())], "{r}");
    assert_eq!(env.serving(), healthy);
}

#[test]
fn a_canary_ended_mid_step_by_sigterm_or_kill_9_leaves_the_stable_serving() {
    let env = Env::new("ended");
    let healthy = stable(&env);

    // SIGTERM during a step: aborted at once, recorded interrupted.
    let load = Load::start(env.port);
    let termed = env.release(Standin::new);
    let child = env.canary_in_step(&termed);
    signal(child.id(), "-TERM");
    let out = child.wait_with_output().expect("wait");
    load.stop();
    assert_ne!(out.status.code(), Some(0));
    let r = env.newest();
    assert_eq!(r["status"], "interrupted", "{r}");
    assert_eq!(r["left_on_sha"], healthy.as_str(), "{r}");
    assert!(env.only_serves(&healthy));

    // kill -9 during a step leaves the traffic split; the next rollback
    // (the lock is stale) puts all of it back on the stable first.
    let load = Load::start(env.port);
    let killed = env.release(Standin::new);
    let mut child = env.canary_in_step(&killed);
    signal(child.id(), "-KILL");
    let _ = child.wait();
    load.stop();
    let split = poll_until(Duration::from_secs(10), || {
        (0..40).any(|_| env.serving() == killed).then_some(())
    });
    assert!(split.is_some(), "the killed canary still had a share");
    env.xtask(&["rollback", &healthy, "--env", "staging", "--force-unlock"])
        .expect_success();
    assert!(env.only_serves(&healthy));
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

impl Env {
    /// A canary deploy of `sha` (50 %, long steps), returned once its first
    /// step has measured once (so the weight is set: load must be running).
    fn canary_in_step(&self, sha: &str) -> std::process::Child {
        use std::io::BufRead;
        let mut child = self
            .project
            .xtask_cmd(&[
                "deploy",
                sha,
                "--env",
                "staging",
                "--strategy",
                "canary",
                "--steps",
                "50,100",
                "--step-duration",
                "120",
            ])
            .env("XTASK_STATE_DIR", self.state.path())
            .env("XTASK_CONFIG", &self.config)
            .env("XTASK_REPOSITORY", &self.repo)
            .env(
                "XTASK_STAGING_REPOSITORY",
                self.registry.repo("canary/api-staging"),
            )
            .spawn();
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.starts_with("  [") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the canary's first step measured");
        child
    }

    /// Forty requests through the proxy all answered by `sha`, and no
    /// other release container running.
    fn only_serves(&self, sha: &str) -> bool {
        let all = (0..40).all(|_| self.serving() == sha);
        let running = docker_ok(&[
            "ps",
            "--filter",
            &format!("label=xtask.state={}", self.state.path().display()),
            "--filter",
            "label=xtask.role=release",
            "--format",
            "{{.Label \"xtask.sha\"}}",
        ]);
        all && running.lines().all(|l| l.trim() == sha)
    }
}

#[test]
fn akash_and_kubernetes_refuse_a_canary_in_one_line_before_anything() {
    let project = Project::tiny();
    let sha = project.sha();
    for (target, said) in [
        ("akash", "akash cannot run a canary"),
        ("kubernetes", "kubernetes cannot run a canary"),
    ] {
        let run = project.xtask(&[
            "deploy",
            &sha,
            "--env",
            "staging",
            "--target",
            target,
            "--strategy",
            "canary",
        ]);
        assert_eq!(run.code(), Some(1), "{target}");
        assert!(
            run.single_error().contains(said),
            "{target}: {}",
            run.single_error()
        );
    }
}

#[test]
fn bad_strategy_flags_are_refused_with_the_fix() {
    let project = Project::tiny();
    let sha = project.sha();
    for (args, said) in [
        (
            &["--strategy", "canary", "--steps", "50,10"][..],
            "must increase strictly",
        ),
        (
            &["--strategy", "canary", "--steps", "10,150"],
            "not a weight from 1 to 100",
        ),
        (&["--steps", "10,100"], "add --strategy canary"),
        (
            &["--strategy", "canary", "--step-duration", "0"],
            "step-duration",
        ),
    ] {
        let mut all = vec!["deploy", &sha, "--env", "staging"];
        all.extend_from_slice(args);
        let run = project.xtask(&all);
        assert_ne!(run.code(), Some(0), "{args:?}");
        let stderr = run.stderr.clone();
        assert!(stderr.contains(said), "{args:?}: {stderr}");
    }
}
