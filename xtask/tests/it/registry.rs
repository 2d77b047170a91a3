//! `cargo xtask registry up|down`: the local registry a newcomer gets.

use std::time::Duration;

use crate::support::*;

#[test]
fn registry_up_serves_the_v2_api_and_down_stops_it() {
    let dir = TempDir::new("registry-up");
    let state = dir.join("state");
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
    assert!(state.join("registry/config.yml").exists());

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
