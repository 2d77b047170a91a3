//! `deploy`, `rollback`, `status` and `history` end to end: the real xtask
//! binary, the real Docker engine, a real `docker-registry`; fakes only for
//! cosign and the Akash CLI (`provider-services`).
//!
//! Three commits (A and B on main, F on a feature branch), their images
//! made once and shared with the other modules: stand-in images for these
//! engine tests (`support/releases.rs`, seconds), real clean builds for the
//! build tests (`support/world.rs`, minutes). Every test gets its own state
//! dir (locks, ledger, rendered configs), its own container names and ports,
//! so tests run in parallel.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) use crate::support::releases::{Shipped, releases};
pub(crate) use crate::support::world::world;
use crate::support::*;
use serde_json::Value;

pub(crate) fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

/// One test's own environments: state dir, config (container names, ports),
/// and the containers to remove at the end.
pub(crate) struct Stage {
    pub(crate) label: String,
    pub(crate) state: TempDir,
    pub(crate) config: PathBuf,
    pub(crate) ports: [u16; 2],
    pub(crate) _containers: DockerGuard,
    pub(crate) images: Images,
}

/// Whose project and repositories a stage's xtask runs with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Images {
    /// [`world()`]: the real clean builds.
    World,
    /// [`releases()`]: the stand-in images.
    Standin,
}

impl Stage {
    /// A stage on [`releases()`]' stand-in images (the engine's tests).
    pub(crate) fn standin(label: &str) -> Stage {
        Stage {
            images: Images::Standin,
            ..Stage::new(label)
        }
    }

    pub(crate) fn new(label: &str) -> Stage {
        let state = TempDir::new(label);
        let ports = [free_port(), free_port()];
        let label = format!("{label}-{}", std::process::id());
        let containers = DockerGuard::new();
        let mut envs = serde_json::Map::new();
        for (env, port) in ["staging", "production"].into_iter().zip(ports) {
            let name = format!("xtask-it-{label}-{env}");
            containers.environment(&name);
            envs.insert(
                env.into(),
                serde_json::json!({"port": port, "container": name, "env": {"API_LOG": "warn"}}),
            );
        }
        let config = state.join("release.json");
        std::fs::write(
            &config,
            serde_json::json!({"environments": envs}).to_string(),
        )
        .expect("config");
        Stage {
            label,
            state,
            config,
            ports,
            _containers: containers,
            images: Images::World,
        }
    }

    /// The environment's `container` name: the prefix of its proxy and
    /// release containers.
    pub(crate) fn container(&self, env: &str) -> String {
        format!("xtask-it-{}-{env}", self.label)
    }

    /// The release container the environment's proxy sends to.
    pub(crate) fn serving(&self, env: &str) -> String {
        let status = self.status(env);
        status["proxy"]["upstream"]
            .as_str()
            .unwrap_or_else(|| panic!("{env}'s proxy sends to nothing: {status}"))
            .to_owned()
    }

    /// The environment's release containers whose image is `sha`'s: (name, running).
    pub(crate) fn releases_of(&self, env: &str, sha: &str) -> Vec<(String, bool)> {
        docker_ok(&[
            "ps",
            "-a",
            "--filter",
            &format!("name=^{}-", self.container(env)),
            "--filter",
            "label=xtask.role=release",
            "--filter",
            &format!("label=xtask.sha={sha}"),
            "--format",
            "{{.Names}} {{.State}}",
        ])
        .lines()
        .filter_map(|l| {
            let mut w = l.split(' ');
            Some((w.next()?.to_owned(), w.next()? == "running"))
        })
        .collect()
    }

    pub(crate) fn xtask(&self, args: &[&str]) -> Xtask {
        let (project, canonical, staging) = match self.images {
            Images::World => {
                let w = world();
                (&w.project, &w.canonical, &w.staging)
            }
            Images::Standin => {
                let r = releases();
                (&r.project, &r.canonical, &r.staging)
            }
        };
        project
            .xtask_cmd(args)
            .env("XTASK_STATE_DIR", self.state.path())
            .env("XTASK_CONFIG", &self.config)
            .env("XTASK_REPOSITORY", canonical)
            .env("XTASK_STAGING_REPOSITORY", staging)
    }

    pub(crate) fn run(&self, args: &[&str]) -> Run {
        self.xtask(args).run()
    }

    pub(crate) fn deploy(&self, built: &impl Shipped, env: &str) -> Run {
        let metadata = built.metadata().display().to_string();
        let run = self.run(&[
            "deploy",
            built.sha(),
            "--env",
            env,
            "--metadata",
            &metadata,
            "--json",
        ]);
        run.expect_success();
        run
    }

    pub(crate) fn status(&self, env: &str) -> Value {
        let run = self.run(&["status", "--env", env, "--json"]);
        run.expect_success();
        last_json(&run)
    }

    pub(crate) fn history(&self, env: &str) -> Vec<Value> {
        let run = self.run(&["history", "--env", env, "--json"]);
        run.expect_success();
        run.stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("history line"))
            .collect()
    }

    pub(crate) fn ledger_lines(&self, env: &str) -> usize {
        std::fs::read_to_string(self.state.join(format!("ledger/{env}.jsonl")))
            .map_or(0, |t| t.lines().count())
    }

    /// A deploy of `sha` to staging that sits in verification: the service
    /// listens on another port inside its container, so /health never
    /// answers. Returns once the new container runs `sha`, with the running
    /// xtask and the config file it uses (for a later run to reuse).
    pub(crate) fn stuck_deploy(&self, sha: &str, more: &[&str]) -> (std::process::Child, PathBuf) {
        let mut config = read_json(&self.config);
        config["environments"]["staging"]["env"]["API_PORT"] = "9999".into();
        let silent = self.state.join("silent.json");
        std::fs::write(&silent, config.to_string()).expect("config");
        let mut args = vec!["deploy", sha, "--env", "staging"];
        args.extend_from_slice(more);
        let child = self.xtask(&args).env("XTASK_CONFIG", &silent).spawn();
        let verifying = poll_until(Duration::from_secs(60), || {
            self.releases_of("staging", sha)
                .iter()
                .any(|(_, running)| *running)
                .then_some(())
        });
        assert!(verifying.is_some(), "the container of {sha} never started");
        (child, silent)
    }

    /// What the running service itself says, on the environment's port.
    pub(crate) fn served_sha(&self, env: &str) -> Option<String> {
        let port = if env == "staging" {
            self.ports[0]
        } else {
            self.ports[1]
        };
        let (status, body) = http_get(&format!("http://127.0.0.1:{port}/version"));
        (status == 200).then(|| {
            serde_json::from_str::<Value>(&body).ok()?["git_sha"]
                .as_str()
                .map(str::to_owned)
        })?
    }

    /// Status (asked of the target), the service's `/version` and the
    /// expectation agree.
    pub(crate) fn assert_runs(&self, env: &str, sha: &str) {
        let status = self.status(env);
        assert_eq!(status["image_sha"], sha, "status: {status}");
        assert_eq!(status["reported_sha"], sha, "status: {status}");
        assert_eq!(status["healthy"], true, "status: {status}");
        assert_eq!(self.served_sha(env).as_deref(), Some(sha));
        assert!(
            status["image_ref"]
                .as_str()
                .is_some_and(|r| r.contains(&format!(":{sha}@sha256:"))),
            "pinned: {status}"
        );
    }
}

pub(crate) fn last_json(run: &Run) -> Value {
    let line = run
        .stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no stdout from {}", run.label));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

/// A dir with `docker` and `cargo` wrappers that log every call, then run the real tool.
fn recording_wrappers() -> (TempDir, PathBuf) {
    let dir = TempDir::new("recording");
    let log = dir.join("calls.log");
    for tool in ["docker", "cargo"] {
        let real = match tool {
            "cargo" => std::env::var("CARGO")
                .map(PathBuf::from)
                .unwrap_or_else(|_| which::which("cargo").expect("cargo")),
            _ => which::which(tool).expect("docker on PATH"),
        };
        let script = format!(
            "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        );
        let path = dir.join(tool);
        std::fs::write(&path, script).expect("wrapper");
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&path)
            .status()
            .expect("chmod");
    }
    (dir, log)
}

#[test]
fn deploy_deploy_rollback_rollback_keeps_status_and_service_in_agreement() {
    let w = releases();
    let stage = Stage::standin("cycle");

    let first = stage.deploy(&w.a, "staging");
    let record = last_json(&first);
    assert_eq!(record["record"], "deploy");
    assert_eq!(record["status"], "complete");
    assert_eq!(record["image_digest"], w.a.digest.as_str());
    assert_eq!(record["previous_sha"], Value::Null);
    assert_eq!(
        record["verified"],
        serde_json::json!({"health": true, "sha": true})
    );
    assert!(
        first.stderr.contains("digest matches the build metadata"),
        "{}",
        first.stderr
    );
    stage.assert_runs("staging", &w.a.sha);

    let second = last_json(&stage.deploy(&w.b, "staging"));
    assert_eq!(second["previous_sha"], w.a.sha.as_str());
    stage.assert_runs("staging", &w.b.sha);
    // The previous release's container was drained and stopped once the new
    // one was verified, and is retained for an instant rollback.
    let retained = stage.releases_of("staging", &w.a.sha);
    assert!(
        matches!(retained.as_slice(), [(_, false)]),
        "A is retained, stopped: {retained:?}"
    );

    // Rollback to A: through recording wrappers, to prove nothing is built.
    let (wrappers, calls) = recording_wrappers();
    let cargo_wrapper = wrappers.join("cargo");
    let back = stage
        .xtask(&["rollback", &w.a.sha, "--env", "staging", "--json"])
        .path_prefix(wrappers.path())
        .env("CARGO", &cargo_wrapper)
        .run();
    back.expect_success();
    let rollback = last_json(&back);
    assert_eq!(rollback["record"], "rollback");
    assert_eq!(rollback["reason"], "manual");
    assert_eq!(rollback["previous_sha"], w.b.sha.as_str());
    assert_eq!(rollback["new_sha"], w.a.sha.as_str());
    assert_eq!(rollback["image_digest"], w.a.digest.as_str());
    assert_eq!(rollback["initiated_by"], "xtask-tests@example.invalid");
    assert_eq!(rollback["status"], "complete");
    stage.assert_runs("staging", &w.a.sha);
    let log = std::fs::read_to_string(&calls).expect("the wrappers were called");
    assert!(
        // A's retained container is started again (no `docker run`, no pull).
        log.lines().any(|l| l.starts_with("docker start")),
        "the wrappers saw the rollback: {log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.starts_with("docker build") || l.starts_with("cargo")),
        "rollback built something: {log}"
    );
    // It restored what went with A's release (its image, env and retained
    // container), in a config rendered with today's settings (issue 23).
    let a_release = &stage.history("staging")[2];
    assert_eq!(a_release["image_sha"], w.a.sha.as_str());
    let read = |v: &Value| -> Value {
        let path = v.as_str().expect("a config path");
        serde_json::from_str(&std::fs::read_to_string(path).expect("config")).expect("JSON")
    };
    let (restored, frozen) = (read(&rollback["config"]), read(&a_release["config"]));
    for key in ["image", "env", "container"] {
        assert_eq!(restored[key], frozen[key], "rollback restores A's {key}");
    }

    // No SHA: the last verified release other than the current one (B), shown first.
    let again = stage.run(&["rollback", "--env", "staging", "--json"]);
    again.expect_success();
    assert!(
        again
            .stderr
            .contains(&format!("previous verified release: {}", w.b.sha)),
        "{}",
        again.stderr
    );
    assert_eq!(last_json(&again)["new_sha"], w.b.sha.as_str());
    stage.assert_runs("staging", &w.b.sha);

    // Rolling back to what runs: success, nothing changed, says so.
    let lines = stage.ledger_lines("staging");
    let same = stage.run(&["rollback", &w.b.sha, "--env", "staging"]);
    same.expect_success();
    assert!(same.stderr.contains("nothing changed"), "{}", same.stderr);
    assert_eq!(
        stage.ledger_lines("staging"),
        lines,
        "a no-op rollback writes no release"
    );

    // The ledger, newest first: every release went running → complete.
    let history = stage.history("staging");
    let seen: Vec<(&str, &str)> = history
        .iter()
        .map(|r| {
            (
                r["record"].as_str().expect("record"),
                r["image_sha"].as_str().expect("sha"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("rollback", w.b.sha.as_str()),
            ("rollback", &w.a.sha),
            ("deploy", &w.b.sha),
            ("deploy", &w.a.sha)
        ]
    );
    assert!(history.iter().all(|r| r["status"] == "complete"));
    assert_eq!(
        stage.ledger_lines("staging"),
        8,
        "two lines per release: running, then complete"
    );

    // The signing report reads the same ledger: 4 releases, none verified here.
    let report = stage.run(&["signing-report", "--env", "staging", "--json"]);
    report.expect_success();
    let report = last_json(&report);
    assert_eq!(
        (report["releases"].as_u64(), report["verified"].as_u64()),
        (Some(4), Some(0)),
        "{report}"
    );
    assert_eq!(report["escalate"], false);
}

#[test]
fn an_image_that_reports_another_sha_fails_verification_and_rolls_back_by_itself() {
    let w = releases();
    let stage = Stage::standin("wrongsha");
    stage.deploy(&w.a, "staging");
    // A webhook that is down must not fail anything.
    let run = stage
        .xtask(&[
            "deploy",
            &w.wrong_sha,
            "--env",
            "staging",
            "--verify-timeout",
            "30",
            "--json",
        ])
        .env(
            "XTASK_NOTIFY_WEBHOOK",
            format!("http://127.0.0.1:{}/hook/S3CRET", free_port()),
        )
        .run();
    let error = run.single_error();
    assert!(
        error.contains("rolled back automatically") && error.contains(&w.a.sha),
        "{error}"
    );
    assert!(
        error.contains(&format!("/version reports {}", w.a.sha)),
        "{error}"
    );
    assert!(
        !format!("{}{}", run.stdout, run.stderr).contains("S3CRET"),
        "the webhook URL leaked"
    );
    let records: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0]["status"], "failed");
    assert_eq!(records[0]["image_sha"], w.wrong_sha.as_str());
    assert_eq!(records[0]["left_on_sha"], w.a.sha.as_str());
    assert_eq!(records[1]["record"], "rollback");
    assert_eq!(records[1]["reason"], "failed-verification");
    assert_eq!(records[1]["previous_sha"], w.wrong_sha.as_str());
    assert_eq!(records[1]["new_sha"], w.a.sha.as_str());
    assert_eq!(records[1]["status"], "complete");
    stage.assert_runs("staging", &w.a.sha);

    // A fresh CI runner has no ledger: what runs is asked of the target, and
    // the kept container still comes back, verified.
    std::fs::remove_dir_all(stage.state.join("ledger")).expect("drop the ledger");
    let run = stage
        .xtask(&[
            "deploy",
            &w.wrong_sha,
            "--env",
            "staging",
            "--verify-timeout",
            "30",
            "--json",
        ])
        .run();
    assert!(
        run.single_error().contains("rolled back automatically"),
        "{}",
        run.stderr
    );
    let records: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(
        records[0]["previous_sha"],
        w.a.sha.as_str(),
        "asked of the target"
    );
    assert_eq!(
        records[0]["previous_release"],
        Value::Null,
        "not in this ledger"
    );
    assert_eq!(records[0]["left_on_sha"], w.a.sha.as_str());
    assert_eq!(records[1]["new_sha"], w.a.sha.as_str());
    assert_eq!(records[1]["image_digest"], w.a.digest.as_str());
    assert_eq!(records[1]["status"], "complete");
    stage.assert_runs("staging", &w.a.sha);
}

#[test]
fn bad_requests_are_refused_before_the_target_is_touched() {
    let w = releases();
    let stage = Stage::standin("refused");
    stage.deploy(&w.a, "staging");
    let container_id = docker_ok(&["inspect", "--format", "{{.Id}}", &stage.serving("staging")]);
    let lines = stage.ledger_lines("staging");
    let untagged = "1234567890".repeat(4);
    let upper = w.b.sha.to_uppercase();
    let metadata_a = w.a.metadata.display().to_string();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["deploy", "latest", "--env", "staging"],
            2,
            "not a git SHA",
        ),
        (
            vec!["deploy", &w.b.sha[..12], "--env", "staging"],
            2,
            "12 hex characters",
        ),
        (
            vec!["deploy", &w.b.sha[..39], "--env", "staging"],
            2,
            "39 hex characters",
        ),
        (vec!["deploy", &upper, "--env", "staging"], 2, "uppercase"),
        (
            vec!["deploy", "$(touch /tmp/xtask-pwned)", "--env", "staging"],
            2,
            "not a git SHA",
        ),
        (
            vec!["deploy", "../x", "--env", "staging"],
            2,
            "not a git SHA",
        ),
        (
            vec!["rollback", "v1.2", "--env", "staging"],
            2,
            "not a git SHA",
        ),
        (
            vec!["deploy", &w.b.sha, "--env", "qa"],
            2,
            "invalid value 'qa'",
        ),
        (
            vec!["deploy", &untagged, "--env", "staging"],
            1,
            "no image tagged",
        ),
        (
            vec!["deploy", &w.feature.sha, "--env", "production"],
            1,
            "production takes only images built from main",
        ),
        (
            vec![
                "deploy",
                &w.b.sha,
                "--env",
                "staging",
                "--expect-digest",
                &w.a.digest,
            ],
            1,
            "the tag was moved",
        ),
        (
            vec![
                "deploy",
                &w.b.sha,
                "--env",
                "staging",
                "--metadata",
                &metadata_a,
            ],
            1,
            "pass the metadata of the commit",
        ),
        (
            vec![
                "deploy",
                &w.b.sha,
                "--env",
                "staging",
                "--expect-digest",
                "sha256:abc",
            ],
            2,
            "not an image digest",
        ),
    ];
    for (args, code, needle) in cases {
        let run = stage.run(&args);
        run.expect_code(code);
        let error = run.single_error();
        assert!(error.contains(needle), "{args:?}: {error}");
    }
    assert!(!Path::new("/tmp/xtask-pwned").exists());
    // A config named but missing is an error, not a silent default.
    let run = stage
        .xtask(&["deploy", &w.b.sha, "--env", "staging"])
        .env("XTASK_CONFIG", stage.state.join("no-such.json"))
        .run();
    assert!(
        run.single_error().contains("does not exist"),
        "{}",
        run.stderr
    );
    // A feature-branch image may go to staging (it is the staging repository's job).
    let metadata_f = w.feature.metadata.display().to_string();
    let dry = stage.run(&[
        "deploy",
        &w.feature.sha,
        "--env",
        "staging",
        "--metadata",
        &metadata_f,
        "--dry-run",
    ]);
    dry.expect_success();
    assert!(
        dry.stderr.contains("(dry run) $ docker run"),
        "{}",
        dry.stderr
    );
    // Nothing above touched the running container or the ledger.
    assert_eq!(
        docker_ok(&["inspect", "--format", "{{.Id}}", &stage.serving("staging")]),
        container_id
    );
    assert_eq!(stage.ledger_lines("staging"), lines);
    stage.assert_runs("staging", &w.a.sha);
    assert!(
        stage.status("production")["image_sha"].is_null(),
        "production was never touched"
    );
}

#[test]
fn a_tag_moved_to_other_bytes_is_refused() {
    let w = releases();
    let stage = Stage::standin("moved");
    // SHA M first holds A's bytes (recorded digest), then is moved to B's.
    let moved = "5eed".repeat(10);
    let tag = format!("{}:{moved}", w.canonical);
    docker_ok(&["tag", &format!("{}:{}", w.canonical, w.b.sha), &tag]);
    docker_ok(&["push", &tag]);
    let now = w.registry.digest("it/api", &moved).expect("pushed");
    assert_eq!(now, w.b.digest);
    let run = stage.run(&[
        "deploy",
        &moved,
        "--env",
        "staging",
        "--expect-digest",
        &w.a.digest,
    ]);
    let error = run.single_error();
    assert!(
        error.contains(&format!("now points at {}", w.b.digest)) && error.contains(&w.a.digest),
        "{error}"
    );
    assert_eq!(stage.ledger_lines("staging"), 0);
}

#[test]
fn the_environment_lock_names_a_live_holder_and_breaks_a_stale_one_on_request() {
    let w = releases();
    let stage = Stage::standin("lock");
    let locks = stage.state.join("locks");
    std::fs::create_dir_all(&locks).expect("locks dir");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_owned();
    let holder = |pid: u32| {
        serde_json::json!({"user": "someone", "host": host, "pid": pid, "since": "2026-01-01T00:00:00Z", "command": "deploy x"})
            .to_string()
    };
    // Held by a live process (this test).
    std::fs::write(locks.join("staging.lock"), holder(std::process::id())).expect("lock");
    let metadata = w.a.metadata.display().to_string();
    let args = [
        "deploy",
        w.a.sha.as_str(),
        "--env",
        "staging",
        "--metadata",
        &metadata,
    ];
    let run = stage.run(&args);
    let error = run.single_error();
    assert!(
        error.contains("staging is locked by someone@")
            && error.contains(&format!("pid {}", std::process::id())),
        "{error}"
    );
    let run = stage.run(&[&args[..], &["--force-unlock"]].concat());
    assert!(
        run.single_error().contains("never broken"),
        "a live holder's lock is never broken"
    );
    // Held by a process that is gone.
    std::fs::write(locks.join("staging.lock"), holder(4_194_999)).expect("lock");
    let run = stage.run(&args);
    let error = run.single_error();
    assert!(
        error.contains("stale") && error.contains("--force-unlock"),
        "{error}"
    );
    assert_eq!(
        stage.ledger_lines("staging"),
        0,
        "refused before anything was recorded"
    );
    let run = stage.run(&[&args[..], &["--force-unlock"]].concat());
    run.expect_success();
    assert!(
        run.stderr.contains("breaking the stale staging lock"),
        "{}",
        run.stderr
    );
    assert!(
        !locks.join("staging.lock").exists(),
        "released after the deploy"
    );
    stage.assert_runs("staging", &w.a.sha);

    // Another checkout (another state dir, so another lock) on the same
    // machine-wide container name is refused, not raced.
    let other = TempDir::new("other-checkout");
    let run = stage
        .xtask(&args)
        .env("XTASK_STATE_DIR", other.path())
        .run();
    let error = run.single_error();
    assert!(
        error.contains("managed from another checkout") && error.contains("docker rm -f"),
        "{error}"
    );
    stage.assert_runs("staging", &w.a.sha);
}

#[test]
fn a_webhook_receives_one_json_post_per_release() {
    use std::io::{Read, Write};
    let w = releases();
    let stage = Stage::standin("webhook");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        // Bounded: a run that never posts fails the test instead of hanging it.
        listener.set_nonblocking(true).expect("nonblocking");
        let (mut conn, _) = poll_until(Duration::from_secs(120), || listener.accept().ok())
            .expect("one POST within 120 s");
        conn.set_nonblocking(false).expect("blocking");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut request = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = conn.read(&mut buf).expect("read");
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().expect("length"))
                    })
                    .expect("content-length");
                if body.len() >= length || n == 0 {
                    break;
                }
            }
        }
        conn.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            .expect("answer");
        String::from_utf8_lossy(&request).into_owned()
    });
    let metadata = w.b.metadata.display().to_string();
    let run = stage
        .xtask(&[
            "deploy",
            &w.b.sha,
            "--env",
            "staging",
            "--metadata",
            &metadata,
        ])
        .env(
            "XTASK_NOTIFY_WEBHOOK",
            format!("http://127.0.0.1:{port}/hooks/T0K3N"),
        )
        .run();
    run.expect_success();
    assert!(!run.stderr.contains("T0K3N"), "the webhook URL is a secret");
    let request = server.join().expect("listener");
    assert!(request.starts_with("POST /hooks/T0K3N "), "{request}");
    let body: Value =
        serde_json::from_str(request.split_once("\r\n\r\n").expect("body").1).expect("JSON body");
    assert_eq!(body["record"], "deploy");
    assert_eq!(body["image_sha"], w.b.sha.as_str());
    assert_eq!(body["status"], "complete");
}

/// SIGTERM while a deploy waits for verification: the target is left on the
/// old release (verified), the ledger says `interrupted` and where it was
/// left, and the lock is released.
#[test]
fn sigterm_mid_deploy_leaves_the_old_release_verified_and_says_so() {
    let w = releases();
    let stage = Stage::standin("sigterm");
    stage.deploy(&w.a, "staging");
    let (child, _silent) = stage.stuck_deploy(&w.b.sha, &["--verify-timeout", "120", "--json"]);
    let pid = child.id().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());
    let out = child.wait_with_output().expect("the deploy ends");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("interrupted") && errors[0].contains(&w.a.sha),
        "{}",
        errors[0]
    );
    let records: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(records[0]["status"], "interrupted", "{records:?}");
    assert_eq!(records[0]["left_on_sha"], w.a.sha.as_str());
    assert_eq!(records[1]["reason"], "interrupted");
    assert_eq!(records[1]["status"], "complete");
    assert!(
        !stage.state.join("locks/staging.lock").exists(),
        "the lock was released"
    );
    stage.assert_runs("staging", &w.a.sha);
}
