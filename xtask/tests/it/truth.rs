//! The truth about what runs, end to end on the real engine: what runs is
//! asked of the target, never guessed from the ledger; only containers
//! labelled ours are replaced; an unclean death never costs the last
//! verified container; user numbers are bounded at the edge; docker's own
//! words reach the user. (Every `Xtask::run` also fails on a panic.)

use crate::deploy::{Stage, read_json, releases};
use crate::support::*;

fn container_id(name: &str) -> Option<String> {
    let out = docker(&["container", "inspect", "--format", "{{.Id}}", name]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn what_runs_is_asked_of_the_target_and_a_target_that_cannot_answer_is_an_error() {
    let w = releases();
    let stage = Stage::standin("truth-ask");
    stage.deploy(&w.a, "staging");
    let container = stage.serving("staging");

    // The daemon is unreachable: status and rollback say so and exit non-zero.
    let no_daemon = |args: &[&str]| {
        stage
            .xtask(args)
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .run()
    };
    let status = no_daemon(&["status", "--env", "staging", "--json"]);
    let err = status.single_error();
    assert!(
        err.contains("could not ask the docker target what runs")
            && err.contains("Cannot connect to the Docker daemon"),
        "{err}"
    );
    assert!(
        status.stdout.trim().is_empty(),
        "no status record is made up"
    );
    let rollback = no_daemon(&["rollback", &w.a.sha, "--env", "staging"]);
    let err = rollback.single_error();
    assert!(err.contains("so nothing was changed"), "{err}");
    assert!(
        !rollback.stderr.contains("already runs"),
        "{}",
        rollback.stderr
    );

    // The release's container is there but stopped: the service is down.
    docker_ok(&["stop", "-t", "1", &container]);
    let status = stage.run(&["status", "--env", "staging", "--json"]);
    let err = status.single_error();
    assert!(
        err.contains("NOT serving") && err.contains(&w.a.sha),
        "{err}"
    );
    assert_eq!(status.last_json()["healthy"], false);
    let rollback = stage.run(&["rollback", &w.a.sha, "--env", "staging"]);
    rollback.expect_success();
    assert!(
        !rollback.stderr.contains("already runs")
            && rollback.stderr.contains("not running: applying it again"),
        "{}",
        rollback.stderr
    );
    stage.assert_runs("staging", &w.a.sha);

    // The release's container is gone: the ledger's release is not what runs.
    docker_ok(&["rm", "--force", &stage.serving("staging")]);
    let status = stage.run(&["status", "--env", "staging"]);
    let err = status.single_error();
    assert!(
        err.contains("serves nothing")
            && err.contains(&format!("cargo xtask rollback {}", w.a.sha)),
        "{err}"
    );
    stage
        .run(&["rollback", &w.a.sha, "--env", "staging"])
        .expect_success();
    stage.assert_runs("staging", &w.a.sha);

    // Running and healthy: now, and only now, "already runs".
    let again = stage.run(&["rollback", &w.a.sha, "--env", "staging"]);
    again.expect_success();
    assert!(again.stderr.contains("already runs"), "{}", again.stderr);
}

#[test]
fn only_containers_labelled_as_this_environments_are_replaced() {
    let w = releases();
    let stage = Stage::standin("truth-labels");
    // Every container of the environment starts with its name; the proxy's is taken.
    let container = format!("{}-proxy", stage.container("staging"));
    let image = format!("{}:{}", w.canonical, w.a.sha);

    // Someone else's container under our name, without our labels.
    docker_ok(&["create", "--name", &container, &image]);
    let foreign = container_id(&container);
    let metadata = w.a.metadata.display().to_string();
    let deploy = [
        "deploy",
        &w.a.sha,
        "--env",
        "staging",
        "--metadata",
        &metadata,
    ];
    let err = stage.run(&deploy).single_error().to_owned();
    assert!(
        err.contains(&format!(
            "container {container} exists but was not created by xtask"
        )),
        "{err}"
    );
    assert_eq!(container_id(&container), foreign, "left exactly as it was");
    docker_ok(&["rm", "--force", &container]);

    // A production config that names staging's container.
    stage.deploy(&w.a, "staging");
    let mut config = read_json(&stage.config);
    config["environments"]["production"]["container"] = stage.container("staging").into();
    let crossed = stage.state.join("crossed.json");
    std::fs::write(&crossed, config.to_string()).expect("config");
    let run = stage
        .xtask(&[
            "deploy",
            &w.a.sha,
            "--env",
            "production",
            "--metadata",
            &metadata,
        ])
        .env("XTASK_CONFIG", &crossed)
        .run();
    // Refused when the config is read, before docker is asked anything.
    let err = run.single_error();
    assert!(
        err.contains(&format!(
            "staging and production both use container `{}`",
            stage.container("staging")
        )) && err.contains("nothing was touched"),
        "{err}"
    );
    stage.assert_runs("staging", &w.a.sha);
}

#[test]
fn after_kill_9_and_force_unlock_the_last_verified_container_survives() {
    let w = releases();
    let stage = Stage::standin("truth-kill9");
    stage.deploy(&w.a, "staging");
    let container = stage.serving("staging");
    let a_container = container_id(&container).expect("A's container");

    // B's deploy sits in verification, where it dies by SIGKILL: no
    // cleanup runs.
    let (mut child, silent) = stage.stuck_deploy(&w.b.sha, &["--verify-timeout", "300"]);
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    // The proxy never left A: B was never switched to.
    assert_eq!(stage.serving("staging"), container);
    assert_eq!(
        stage.served_sha("staging").as_deref(),
        Some(w.a.sha.as_str())
    );

    // The dead holder's lock is reported, and status tells the story.
    let err = stage
        .run(&["deploy", &w.b.sha, "--env", "staging"])
        .single_error()
        .to_owned();
    assert!(
        err.contains("stale") && err.contains("--force-unlock"),
        "{err}"
    );
    let status = stage.run(&["status", "--env", "staging"]);
    assert!(
        status.stderr.contains("never finished"),
        "{}",
        status.stderr
    );
    // The proxy never left A: what runs is healthy, only the run is unfinished.
    status.expect_success();

    // The next release fails too: A, the same container, comes back.
    let again = stage
        .xtask(&[
            "deploy",
            &w.b.sha,
            "--env",
            "staging",
            "--verify-timeout",
            "3",
            "--force-unlock",
        ])
        .env("XTASK_CONFIG", &silent)
        .run();
    let err = again.single_error();
    assert!(
        err.contains(&format!(
            "rolled back automatically, staging runs {}",
            w.a.sha
        )),
        "{err}"
    );
    assert_eq!(stage.serving("staging"), container);
    assert_eq!(container_id(&container), Some(a_container));
    // B's containers (the killed run's and this one's) run no more.
    let b = stage.releases_of("staging", &w.b.sha);
    assert!(b.iter().all(|(_, running)| !running), "{b:?}");
    stage.assert_runs("staging", &w.a.sha);
}

#[test]
fn numbers_from_the_user_are_bounded_where_they_are_parsed() {
    let w = releases();
    let stage = Stage::standin("truth-bounds");
    for bad in ["18446744073709551615", "0", "3601", "-5", "1e9"] {
        let flag = format!("--verify-timeout={bad}");
        let run = stage.run(&["deploy", &w.a.sha, "--env", "staging", &flag]);
        run.expect_code(2);
        let err = run.single_error();
        assert!(err.contains("--verify-timeout"), "{bad}: {err}");
    }
    assert_eq!(stage.ledger_lines("staging"), 0);
}

#[test]
fn docker_s_own_error_line_reaches_the_user() {
    let w = releases();
    let stage = Stage::standin("truth-port");
    // Something else holds the environment's port.
    let _taken = std::net::TcpListener::bind(("127.0.0.1", stage.ports[0])).expect("bind");
    let metadata = w.a.metadata.display().to_string();
    let run = stage.run(&[
        "deploy",
        &w.a.sha,
        "--env",
        "staging",
        "--metadata",
        &metadata,
    ]);
    // Found before anything is made (docker's own words for a port taken
    // later, between this check and the start, reach the user through `Cmd`).
    let err = run.single_error();
    assert!(err.contains("is taken by another process"), "{err}");
    assert!(!err.contains("--help' for more information"), "{err}");
    assert_eq!(
        docker_ok(&[
            "ps",
            "-aq",
            "--filter",
            &format!("name=^{}-", stage.container("staging"))
        ]),
        "",
        "nothing half-deployed"
    );
}
