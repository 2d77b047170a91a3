//! Zero-downtime releases on the docker target: the real engine, the real
//! HAProxy (the image `cargo xtask proxy build` makes from Debian's binary),
//! the real registry, and stand-in api images (built in a second). A probe
//! polls the environment's port every 10 ms through every deploy and
//! rollback; no request may fail.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::standin::{Standin, push};
use crate::support::*;

/// One environment of its own: a registry, a state dir, a config naming a
/// free port and a container prefix unique to the test.
struct Stage {
    project: Project,
    registry: Option<Registry>,
    repo: String,
    staging_repo: String,
    state: TempDir,
    config: PathBuf,
    port: u16,
    container: String,
    _guard: DockerGuard,
}

/// `cargo xtask proxy build`'s last line, made once per test process (the
/// Interface: tests use it through `XTASK_PROXY_IMAGE`).
fn proxy_image(project: &Project) -> String {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let run = project.xtask_cmd(&["proxy", "build"]).run();
            run.expect_success();
            let last = run.stdout.lines().last().unwrap_or_default().to_owned();
            assert!(last.contains("@sha256:"), "not a pinned reference: {last}");
            last
        })
        .clone()
}

impl Stage {
    fn new(label: &str) -> Stage {
        let registry = Registry::start();
        let project = Project::tiny();
        let state = TempDir::new("zero-downtime-state");
        let port = free_port();
        let container = format!("xtask-it-zd-{label}-{}", std::process::id());
        let guard = DockerGuard::new();
        guard.environment(&container);
        guard.images_under(&format!("{}/", registry.host()));
        let stage = Stage {
            repo: registry.repo("zd/api"),
            staging_repo: registry.repo("zd/api-staging"),
            registry: Some(registry),
            project,
            config: state.join("release.json"),
            state,
            port,
            container,
            _guard: guard,
        };
        stage.write_config(port);
        stage
    }

    fn write_config(&self, port: u16) {
        std::fs::write(
            &self.config,
            serde_json::json!({"environments": {"staging": {
                "port": port, "container": self.container, "drain_secs": 1
            }}})
            .to_string(),
        )
        .expect("config");
    }

    /// A stand-in image for `sha` that reports `reports` on /version.
    fn image(&self, sha: &str, reports: &str) -> String {
        self.standin(sha, Standin::new(reports))
    }

    fn standin(&self, sha: &str, standin: Standin) -> String {
        let tag = format!("{}:{sha}", self.repo);
        // The label names the tag's commit; only `/version` may lie.
        standin.labelled(sha).build(&tag);
        push(&tag)
    }

    fn xtask(&self, args: &[&str]) -> Run {
        self.cmd(args).run()
    }

    fn cmd(&self, args: &[&str]) -> Xtask {
        self.project
            .xtask_cmd(args)
            .env("XTASK_STATE_DIR", self.state.path())
            .env("XTASK_CONFIG", &self.config)
            .env("XTASK_REPOSITORY", &self.repo)
            .env("XTASK_STAGING_REPOSITORY", &self.staging_repo)
            .env("XTASK_PROXY_IMAGE", proxy_image(&self.project))
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn ledger(&self) -> Vec<Value> {
        std::fs::read_to_string(self.state.join("ledger/staging.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The environment's containers: (name, running).
    fn containers(&self) -> Vec<(String, bool)> {
        docker_ok(&[
            "ps",
            "-a",
            "--filter",
            &format!("name=^{}-", self.container),
            "--format",
            "{{.Names}} {{.State}}",
        ])
        .lines()
        .filter_map(|l| {
            let (n, s) = l.split_once(' ')?;
            Some((n.to_owned(), s == "running"))
        })
        .collect()
    }
}

/// GET /version every 10 ms until stopped; every answer that is not 200 is
/// a failure, and the longest time between two good answers is the gap.
struct Probe {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(usize, usize, Duration, Vec<String>)>,
}

impl Probe {
    fn start(url: &str) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("{url}/version");
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut ok, mut failed, mut gap, mut seen) = (0, 0, Duration::ZERO, Vec::new());
            let mut last_ok = Instant::now();
            // Bounded: a test that panics before `finish` leaves no probe behind.
            let until = Instant::now() + Duration::from_secs(300);
            while !flag.load(Ordering::SeqCst) && Instant::now() < until {
                let (status, body) = http_get(&url);
                if status == 200 {
                    ok += 1;
                    gap = gap.max(last_ok.elapsed());
                    last_ok = Instant::now();
                } else {
                    failed += 1;
                    seen.push(format!("{status} {body}"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (ok, failed, gap, seen)
        });
        Probe { stop, handle }
    }

    fn finish(self) -> (usize, usize, Duration, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("probe thread")
    }
}

fn sha(c: char) -> String {
    std::iter::repeat_n(c, 40).collect()
}

#[test]
fn deploy_and_rollback_switch_through_the_proxy_without_failing_a_request() {
    let mut stage = Stage::new("cycle");
    let (a, b) = (sha('a'), sha('b'));
    stage.image(&a, &a);
    stage.image(&b, &b);
    stage
        .xtask(&["deploy", &a, "--env", "staging"])
        .expect_success();

    let probe = Probe::start(&stage.url());
    stage
        .xtask(&["deploy", &b, "--env", "staging"])
        .expect_success();
    // The registry goes away: a rollback to the retained release needs none.
    stage.registry = None;
    let rollback = stage.xtask(&["rollback", "--env", "staging", "--json"]);
    rollback.expect_success();
    let (ok, failed, gap, seen) = probe.finish();
    assert_eq!(failed, 0, "failed requests during the switches: {seen:?}");
    assert!(ok > 10, "the probe barely ran ({ok} answers)");
    assert!(
        rollback
            .stderr
            .contains("rolling back without the registry"),
        "{}",
        rollback.stderr
    );
    assert_eq!(rollback.last_json()["image_sha"], a.as_str());
    eprintln!("probe: {ok} ok, longest gap {gap:?}");

    // Every container starts with the environment's name and carries its
    // labels; one proxy, one serving release, one retained.
    let containers = stage.containers();
    assert_eq!(containers.len(), 3, "{containers:?}");
    let proxy = format!("{}-proxy", stage.container);
    assert!(
        containers.contains(&(proxy.clone(), true)),
        "{containers:?}"
    );
    assert_eq!(containers.iter().filter(|(_, r)| *r).count(), 2);
    for (name, _) in &containers {
        let env = docker_ok(&[
            "inspect",
            "--format",
            "{{index .Config.Labels \"xtask.environment\"}}",
            name,
        ]);
        assert_eq!(env.trim(), "staging", "{name}");
    }

    let status = stage.xtask(&["status", "--env", "staging", "--json"]);
    status.expect_success();
    let status = status.last_json();
    assert_eq!(status["reported_sha"], a.as_str(), "{status}");
    assert_eq!(status["url"], stage.url().as_str());
    assert_eq!(status["proxy"]["container"], proxy.as_str());
    assert_eq!(
        status["proxy"]["image"],
        proxy_image(&stage.project).as_str()
    );
    assert_eq!(status["retained"][0]["image_sha"], b.as_str(), "{status}");
}

#[test]
fn a_release_that_never_verifies_never_touches_traffic() {
    let stage = Stage::new("never");
    let (a, bad) = (sha('a'), sha('c'));
    stage.image(&a, &a);
    // Built for `bad`, but its /version reports another SHA: never verifies.
    stage.image(&bad, &sha('d'));
    stage
        .xtask(&["deploy", &a, "--env", "staging"])
        .expect_success();
    let before = stage.containers();

    let probe = Probe::start(&stage.url());
    let run = stage.xtask(&["deploy", &bad, "--env", "staging", "--verify-timeout", "3"]);
    run.expect_code(1);
    let (_, failed, _, seen) = probe.finish();
    assert_eq!(failed, 0, "{seen:?}");
    assert!(
        !run.stderr.contains("switching"),
        "the proxy was switched: {}",
        run.stderr
    );
    // Going back, the slot that kept serving is not loaded again (that
    // set its weight to 0 first: a 503 for the probe, 1 run in 3).
    for (name, _) in before.iter().filter(|(n, _)| !n.ends_with("-proxy")) {
        assert!(
            !run.stderr.contains(&format!("fqdn {name}")),
            "the serving release {name} was reloaded into its slot: {}",
            run.stderr
        );
    }
    // The new container is gone; what served before serves.
    assert_eq!(stage.containers(), before);
    assert_eq!(http_get(&format!("{}/version", stage.url())).0, 200);
    let ledger = stage.ledger();
    let failed = ledger
        .iter()
        .rev()
        .find(|r| r["image_sha"] == bad.as_str())
        .expect("the failed release is in the ledger");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["left_on_sha"], a.as_str(), "{failed}");
}

/// A stage with stand-in images of the SHAs `aaa…` and `bbb…`, each
/// reporting its own SHA.
fn stage_with_a_and_b(label: &str) -> (Stage, String, String) {
    let stage = Stage::new(label);
    let (a, b) = (sha('a'), sha('b'));
    stage.image(&a, &a);
    stage.image(&b, &b);
    (stage, a, b)
}

#[test]
fn faults_around_the_proxy_are_refused_in_one_line_and_lose_nothing() {
    let (stage, a, b) = stage_with_a_and_b("faults");

    // The published port taken by another process: refused before anything.
    let squatter = std::net::TcpListener::bind(("127.0.0.1", stage.port)).expect("bind");
    let run = stage.xtask(&["deploy", &a, "--env", "staging"]);
    run.expect_code(1);
    assert!(run.single_error().contains("is taken by another process"));
    assert!(stage.containers().is_empty(), "{:?}", stage.containers());
    drop(squatter);

    stage
        .xtask(&["deploy", &a, "--env", "staging"])
        .expect_success();

    // A config that moves the environment's port: refused, A still serves.
    stage.write_config(free_port());
    let run = stage.xtask(&["deploy", &b, "--env", "staging"]);
    run.expect_code(1);
    assert!(
        run.single_error().contains("moves staging's port"),
        "{}",
        run.stderr
    );
    stage.write_config(stage.port);
    assert_eq!(http_get(&format!("{}/version", stage.url())).0, 200);
}

/// The proxy stopped, then restarted by hand: status says so; the next
/// deploy starts it again, and a restart comes back on what it served (a
/// stage of its own, beside the faults above).
#[test]
fn a_stopped_or_restarted_proxy_comes_back_on_the_release_it_served() {
    let (stage, a, b) = stage_with_a_and_b("stopped");
    stage
        .xtask(&["deploy", &a, "--env", "staging"])
        .expect_success();

    // The proxy stopped: status says so and where the last verified release
    // is; the next deploy starts it again and switches.
    let proxy = format!("{}-proxy", stage.container);
    docker_ok(&["stop", &proxy]);
    // Stopped by its soft stop (SIGUSR1), not killed at docker's deadline
    // (137): SIGTERM reaches no handler in HAProxy as PID 1.
    assert_eq!(
        docker_ok(&["inspect", "--format", "{{.State.ExitCode}}", &proxy]),
        "0",
        "the proxy was killed, not stopped"
    );
    let status = stage.xtask(&["status", "--env", "staging"]);
    status.expect_code(1);
    assert!(status.stdout.contains("STOPPED"), "{}", status.stdout);
    stage
        .xtask(&["deploy", &b, "--env", "staging"])
        .expect_success();

    // `docker restart` of the proxy: it comes back on the release it served
    // (its config file is rewritten at each switch).
    docker_ok(&["restart", &proxy]);
    let back = poll_until(Duration::from_secs(15), || {
        let (status, body) = http_get(&format!("{}/version", stage.url()));
        (status == 200).then_some(body)
    })
    .expect("the restarted proxy serves again");
    assert!(back.contains(&b), "{back}");
}

/// The proxy left with nothing to serve, then a foreign container under its
/// name: each named in one line, with the way back (a stage of its own, so
/// it runs beside the faults above).
#[test]
fn a_proxy_serving_nothing_or_a_foreign_one_is_named_with_the_way_back() {
    let (stage, a, b) = stage_with_a_and_b("nothing");
    for sha in [&a, &b] {
        stage
            .xtask(&["deploy", sha, "--env", "staging"])
            .expect_success();
    }
    let proxy = format!("{}-proxy", stage.container);

    // The proxy answers errors (the release it sends to is gone): status
    // says where the last verified release is, and its command works as
    // printed.
    let serving = stage
        .containers()
        .into_iter()
        .find(|(n, running)| *running && n.ends_with(&b[..12]))
        .expect("B's container")
        .0;
    docker_ok(&["rm", "-f", &serving]);
    assert_eq!(http_get(&format!("{}/version", stage.url())).0, 503);
    let status = stage.xtask(&["status", "--env", "staging"]);
    let err = status.single_error().to_owned();
    assert!(err.contains("serves nothing"), "{err}");
    let command = err
        .split('`')
        .nth(1)
        .and_then(|c| c.strip_prefix("cargo xtask "))
        .expect("a command");
    let args: Vec<&str> = command.split_whitespace().collect();
    stage.xtask(&args).expect_success();
    assert_eq!(
        stage
            .xtask(&["status", "--env", "staging", "--json"])
            .last_json()["reported_sha"],
        b.as_str()
    );

    // A foreign container under the proxy's name: refused, untouched.
    docker_ok(&["rm", "-f", &proxy]);
    let image = proxy_image(&stage.project);
    let id = image.split_once('@').map_or(image.as_str(), |(_, id)| id);
    docker_ok(&["create", "--name", &proxy, id, "haproxy", "-v"]);
    let run = stage.xtask(&["deploy", &a, "--env", "staging"]);
    run.expect_code(1);
    assert!(
        run.single_error().contains("was not created by xtask"),
        "{}",
        run.stderr
    );
}

/// Issue 23, items 1 and 2 in the new switch: two Ctrl-C (as a terminal sends
/// them to the foreground job) while a failing release verifies end the run
/// at once, and the proxy still sends every request to the verified release;
/// `status` says what to run, and that command works as printed.
#[test]
fn a_second_ctrl_c_mid_release_leaves_the_verified_release_serving() {
    let stage = Stage::new("ctrlc");
    let (a, bad) = (sha('a'), sha('e'));
    stage.image(&a, &a);
    stage.image(&bad, &sha('f'));
    stage
        .xtask(&["deploy", &a, "--env", "staging"])
        .expect_success();

    let probe = Probe::start(&stage.url());
    let mut child = stage
        .cmd(&[
            "deploy",
            &bad,
            "--env",
            "staging",
            "--verify-timeout",
            "300",
        ])
        .spawn_job();
    let started = poll_until(Duration::from_secs(60), || {
        stage
            .containers()
            .iter()
            .any(|(n, running)| *running && n.ends_with(&bad[..12]))
            .then_some(())
    });
    assert!(started.is_some(), "the failing release never started");
    let group = format!("-{}", child.id());
    for _ in 0..2 {
        let sent = std::process::Command::new("kill")
            .args(["-INT", "--", &group])
            .status();
        assert!(sent.is_ok_and(|s| s.success()));
    }
    let exited = poll_until(Duration::from_secs(30), || child.try_wait().ok().flatten());
    assert!(exited.is_some(), "two Ctrl-C did not end the run");
    let (ok, failed, _, seen) = probe.finish();
    assert_eq!(failed, 0, "{seen:?}");
    assert!(ok > 0);

    let status = stage.xtask(&["status", "--env", "staging", "--json"]);
    status.expect_success();
    assert_eq!(status.last_json()["reported_sha"], a.as_str());
    // Whatever status suggests, as printed, works.
    for line in status
        .stderr
        .lines()
        .filter(|l| l.contains("`cargo xtask "))
    {
        let command = line
            .split('`')
            .nth(1)
            .and_then(|c| c.strip_prefix("cargo xtask "))
            .expect("a command between backticks");
        let args: Vec<&str> = command.split_whitespace().collect();
        stage.xtask(&args).expect_success();
    }
    assert_eq!(http_get(&format!("{}/version", stage.url())).0, 200);
}

/// The old release dies while it drains (a slow request in flight on it):
/// the release completes on the new one, and the probe sees no failure.
#[test]
fn a_release_container_dying_during_the_drain_loses_nothing_serving() {
    let stage = Stage::new("drain");
    let (a, b) = (sha('a'), sha('b'));
    stage.standin(&a, Standin::new(&a).delay_ms(4000));
    stage.image(&b, &b);
    stage
        .xtask(&["deploy", &a, "--env", "staging"])
        .expect_success();
    let old = stage
        .containers()
        .into_iter()
        .find(|(n, _)| n.ends_with(&a[..12]))
        .expect("A")
        .0;

    // A slow request in flight on A keeps its slot draining.
    let slow_url = format!("{}/work", stage.url());
    let slow = std::thread::spawn(move || http_get(&slow_url).0);
    let probe = Probe::start(&stage.url());
    let mut child = stage
        .cmd(&["deploy", &b, "--env", "staging", "--drain", "20"])
        .spawn();
    let draining = poll_until(Duration::from_secs(60), || {
        let (status, body) = http_get(&format!("{}/version", stage.url()));
        (status == 200 && body.contains(&b)).then_some(())
    });
    assert!(draining.is_some(), "never switched to B");
    docker_ok(&["kill", &old]);
    let done = poll_until(Duration::from_secs(60), || child.try_wait().ok().flatten());
    assert!(
        done.is_some_and(|s| s.success()),
        "the deploy did not complete"
    );
    let (_, failed, _, seen) = probe.finish();
    assert_eq!(failed, 0, "{seen:?}");
    let _ = slow.join();
    let status = stage.xtask(&["status", "--env", "staging", "--json"]);
    status.expect_success();
    assert_eq!(status.last_json()["reported_sha"], b.as_str());
}
