//! The release image as it ships: deploy/Dockerfile around the static api,
//! read from the shared world's A (`ci-build` of a commit, a clean build),
//! run on the real engine. ci_build.rs reads the labels that name the commit
//! and the binary; this reads the rest of what the Dockerfile promises:
//! size, entrypoint, port, environment, the HEALTHCHECK that works in a
//! `FROM scratch` image, and a non-root process.
//!
//! Moved here from api/tests/image.rs, which compiled the static api a
//! further time (a release build of its own, about a minute) to build the
//! same Dockerfile; every assertion it made is here, on A's values instead
//! of fixed build arguments.

use std::time::Duration;

use crate::support::world::world;
use crate::support::*;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const MAX_IMAGE_BYTES: u64 = 15_000_000;

#[test]
fn the_release_image_serves_its_sha_as_non_root_and_reports_healthy() {
    let w = world();
    let sha = &w.a.sha;
    let image = format!("{}:{sha}", w.canonical);

    let size: u64 = docker_ok(&["image", "inspect", "-f", "{{.Size}}", &image])
        .trim()
        .parse()
        .expect("image size is a number");
    println!("image size: {size} bytes ({:.2} MB)", size as f64 / 1e6);
    assert!(
        size <= MAX_IMAGE_BYTES,
        "image is {size} bytes, over {MAX_IMAGE_BYTES}"
    );

    let config: Value = serde_json::from_str(&docker_ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config}}",
        &image,
    ]))
    .expect("image config is JSON");
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["Entrypoint"], json!(["/api"]));
    assert_eq!(
        config["Healthcheck"]["Test"],
        json!(["CMD", "/api", "healthcheck"])
    );
    assert!(
        config["ExposedPorts"].get("8080/tcp").is_some(),
        "EXPOSE 8080: {config}"
    );
    let env_vars: Vec<&str> = config["Env"]
        .as_array()
        .expect("Env")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        env_vars.contains(&"API_PORT=8080") && env_vars.contains(&"API_BIND=0.0.0.0"),
        "{env_vars:?}"
    );
    let created = OffsetDateTime::from_unix_timestamp(
        w.project
            .git(&["show", "-s", "--format=%ct", sha])
            .parse()
            .expect("commit time"),
    )
    .expect("commit time")
    .format(&Rfc3339)
    .expect("format");
    // The version is the api crate's (workspace inheritance is ci_build.rs's).
    let manifest =
        std::fs::read_to_string(w.project.root().join("api/Cargo.toml")).expect("api/Cargo.toml");
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \"")?.strip_suffix('"'))
        .expect("the api's version");
    let labels = &config["Labels"];
    for (label, value) in [
        ("org.opencontainers.image.revision", sha.as_str()),
        (
            "org.opencontainers.image.source",
            "https://github.com/example/shipyard",
        ),
        ("org.opencontainers.image.created", created.as_str()),
        ("org.opencontainers.image.version", version),
        ("org.opencontainers.image.title", "api"),
        ("org.opencontainers.image.licenses", "MIT OR Apache-2.0"),
    ] {
        assert_eq!(labels[label], value, "label {label}");
    }

    let guard = DockerGuard::new();
    let id = docker_ok(&["run", "-d", "-p", "127.0.0.1::8080", &image])
        .trim()
        .to_owned();
    guard.container(&id);
    let published = docker_ok(&["port", &id, "8080/tcp"]);
    let address = published
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no host address in `docker port` output {published:?}"))
        .trim()
        .to_owned();
    let body = poll_until(Duration::from_secs(30), || {
        let (status, body) = http_get(&format!("http://{address}/version"));
        (status == 200).then_some(body)
    })
    .expect("the container to answer /version within 30 s");
    let reported: Value = serde_json::from_str(&body).expect("/version is JSON");
    assert_eq!(reported["git_sha"], sha.as_str());
    assert_eq!(reported["short_sha"], &sha[..12]);
    assert_eq!(
        reported["built_at"],
        created.as_str(),
        "SOURCE_DATE_EPOCH was baked in"
    );

    let top = docker_ok(&["top", &id, "-o", "pid,uid,comm"]);
    let processes: Vec<&str> = top.lines().skip(1).collect();
    assert!(
        !processes.is_empty(),
        "docker top shows no process: {top:?}"
    );
    for process in processes {
        assert_eq!(
            process.split_whitespace().nth(1),
            Some("65532"),
            "process not run as 65532: {process:?}"
        );
    }

    // The HEALTHCHECK runs `/api healthcheck` inside the scratch image (first
    // run after the 10 s interval).
    let healthy = poll_until(Duration::from_secs(60), || {
        let status = docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", &id]);
        (status.trim() == "healthy").then_some(())
    });
    assert!(
        healthy.is_some(),
        "the container did not report healthy within 60 s"
    );
}
