//! A bad `API_*` value stops the real binary before it binds: exit code 2 and one
//! stderr line naming the variable, the value and what is expected.

mod common;

use std::{
    net::TcpListener,
    process::{Command, Stdio},
};

use common::poll;

/// Runs the binary with `env` while this test holds the port it would listen on. Had
/// the binary tried to bind before validating, it would fail on the taken port instead
/// (exit 1, "cannot listen"), so exit 2 with the config line shows nothing was bound.
fn run_with(env: &[(&str, &str)]) -> (i32, String, String) {
    let held = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = held.local_addr().expect("addr").port().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_api"))
        .env("API_BIND", "127.0.0.1")
        .env("API_PORT", &port)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn api");
    let status = poll("the api to exit", || child.try_wait().expect("try_wait"));
    let output = child.wait_with_output().expect("collect output");
    drop(held);
    (
        status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn each_bad_value_exits_2_with_one_line_naming_it() {
    for (variable, value, expected) in [
        ("API_PORT", "eighty", "port number"),
        ("API_PORT", "65536", "port number"),
        ("API_PORT", "", "port number"),
        ("API_BIND", "localhost", "IP address"),
        ("API_BIND", "300.1.1.1", "IP address"),
        ("API_SHUTDOWN_GRACE_SECS", "soon", "whole seconds"),
        ("API_SHUTDOWN_GRACE_SECS", "-1", "whole seconds"),
        ("API_LOG", "info,api=loud", "target=level pairs"),
    ] {
        let (code, stdout, stderr) = run_with(&[(variable, value)]);
        assert_eq!(code, 2, "{variable}={value:?}: stderr {stderr:?}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{variable}={value:?}: one stderr line, got {stderr:?}"
        );
        assert_eq!(
            lines[0],
            format!(
                "api: invalid {variable}={value:?}: expected {}",
                rest(lines[0])
            )
        );
        assert!(
            lines[0].contains(expected),
            "{:?} should say {expected:?}",
            lines[0]
        );
        assert!(
            stdout.is_empty(),
            "{variable}={value:?}: nothing logged, got {stdout:?}"
        );
    }
}

#[test]
fn a_taken_port_is_a_start_failure_not_a_config_error() {
    let held = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = held.local_addr().expect("addr").port().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_api"))
        .env("API_BIND", "127.0.0.1")
        .env("API_PORT", &port)
        .output()
        .expect("run api");
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stdout}"
    );
}

#[test]
fn unknown_arguments_exit_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_api"))
        .arg("--frobnicate")
        .output()
        .expect("run api");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .starts_with("api: unknown argument \"--frobnicate\"")
    );
}

fn rest(line: &str) -> &str {
    line.split_once(": expected ").map_or("", |(_, rest)| rest)
}
