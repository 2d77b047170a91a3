//! `cargo xtask registry up|down`: the local registry a newcomer gets.

use std::time::Duration;

use crate::support::*;

#[test]
fn registry_up_serves_the_v2_api_and_down_stops_it() {
    let dir = TempDir::new("registry-up");
    // A state dir whose path YAML's plain scalars cannot hold: the config is
    // written by serde (JSON, which distribution's YAML parser reads).
    let state = dir.join("state a, b: c");
    let port = free_port().to_string();
    let xtask = |args: &[&str]| {
        Xtask::at(dir.path(), args)
            .env("XTASK_STATE_DIR", &state)
            .run()
    };
    let url = format!("http://127.0.0.1:{port}/v2/");

    let up = xtask(&["registry", "up", "--port", &port]);
    up.expect_success();
    at_exit(&format!(
        "kill $(cat '{}') 2>/dev/null",
        state.join("registry/pid").display()
    ));
    assert!(
        up.stderr
            .contains(&format!("registry up on localhost:{port}")),
        "{}",
        up.stderr
    );
    assert_eq!(http_get(&url).0, 200, "the registry answers /v2/");
    let config = std::fs::read_to_string(state.join("registry/config.yml")).expect("config");
    let config: serde_json::Value = serde_json::from_str(&config).expect("config is JSON");
    assert_eq!(
        config["storage"]["filesystem"]["rootdirectory"],
        state.join("registry/data").display().to_string()
    );
    // The registry stores into that very folder (a YAML flow mapping would
    // have cut the path at `, ` and stored into `state a`): starting an
    // upload creates the repository under the storage root.
    let upload = http_request(
        "POST",
        &format!("http://127.0.0.1:{port}/v2/probe/blobs/uploads/"),
        &[("Content-Length", "0")],
    )
    .expect("POST an upload");
    assert_eq!(upload.status, 202, "{upload:?}");
    let repo = state.join("registry/data/docker/registry/v2/repositories/probe");
    assert!(repo.is_dir(), "no {}", repo.display());

    let again = xtask(&["registry", "up", "--port", &port]);
    again.expect_success();
    assert!(again.stderr.contains("already answers"), "{}", again.stderr);

    let down = xtask(&["registry", "down"]);
    down.expect_success();
    assert!(down.stderr.contains("registry stopped"), "{}", down.stderr);
    let gone = poll_until(Duration::from_secs(10), || {
        (http_get(&url).0 == 0).then_some(())
    });
    assert!(
        gone.is_some(),
        "the registry still answers after `registry down`"
    );
}

/// A pid file naming a live process that is not our registry (the registry
/// died, the pid was reused): `registry down` leaves it alone.
#[test]
fn registry_down_kills_only_the_registry_it_started() {
    let dir = TempDir::new("registry-down-stale");
    let state = dir.join("state");
    std::fs::create_dir_all(state.join("registry")).expect("dirs");
    let mut bystander = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("spawn sleep");
    std::fs::write(state.join("registry/pid"), bystander.id().to_string()).expect("pid file");

    let down = Xtask::at(dir.path(), &["registry", "down"])
        .env("XTASK_STATE_DIR", &state)
        .run();
    let alive = bystander.try_wait().expect("try_wait").is_none();
    let _ = bystander.kill();
    let _ = bystander.wait();
    down.expect_success();
    assert!(alive, "registry down killed an unrelated process");
    assert!(
        down.stderr
            .contains("is not the registry `registry up` started"),
        "{}",
        down.stderr
    );
    assert!(
        !state.join("registry/pid").exists(),
        "the stale pid file is removed"
    );
}
