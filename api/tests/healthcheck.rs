//! `api healthcheck`: the image's HEALTHCHECK, run as the real binary.

mod common;

use std::process::Command;

use common::{InProcess, closed_port};

fn healthcheck(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_api"))
        .arg("healthcheck")
        .args(args)
        .env_remove("API_PORT")
        .envs(env.iter().copied())
        .output()
        .expect("run api healthcheck");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), said)
}

#[test]
fn exits_0_against_a_running_server() {
    let server = InProcess::start();
    let url = format!("http://{}/health", server.addr);
    let (code, said) = healthcheck(&["--url", &url], &[]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("answered 200"), "{said}");
}

#[test]
fn default_url_uses_api_port() {
    let server = InProcess::start();
    let port = server.addr.port().to_string();
    let (code, said) = healthcheck(&[], &[("API_PORT", &port)]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!("http://127.0.0.1:{port}/health")),
        "{said}"
    );
}

#[test]
fn exits_1_against_a_closed_port() {
    let url = format!("http://127.0.0.1:{}/health", closed_port());
    let (code, said) = healthcheck(&["--url", &url], &[]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("refused"), "{said}");
}

#[test]
fn exits_1_when_the_answer_is_not_200() {
    let server = InProcess::start();
    let url = format!("http://{}/missing", server.addr);
    let (code, said) = healthcheck(&["--url", &url], &[]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("answered 404"), "{said}");
}
