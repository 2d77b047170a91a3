//! The release image: the static binary, built with a fixed GIT_SHA, on
//! `deploy/Dockerfile`, run on the real Docker engine. Skips (loudly) only when
//! `docker` is not on PATH. Every command is printed before it runs.

mod common;

use std::{
    env, fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use common::{poll_for, try_get};

const TEST_SHA: &str = "a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4a1b2c3d4";
const TEST_VERSION: &str = "0.0.0-image-test";
const TEST_CREATED: &str = "2026-11-23T10:00:00Z";
const TEST_SOURCE: &str = "https://example.test/shipyard";
const TARGET: &str = "x86_64-unknown-linux-gnu";
const MAX_IMAGE_BYTES: u64 = 15_000_000;

#[test]
fn image_serves_the_built_sha_as_non_root() {
    if !on_path("docker") {
        eprintln!("\n************************************************************");
        eprintln!("* SKIPPED image test: `docker` is not on PATH              *");
        eprintln!("************************************************************\n");
        return;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("api/ is in the workspace");
    // The same dir xtask's integration tests build the static api in
    // (xtask/tests/it/support/project.rs `shared_target_dir`): the release
    // build of the dependencies is paid once per machine, not twice.
    let scratch_dir = workspace.join("target").join("xtask-it");
    let binary = build_static_binary(workspace, &scratch_dir);

    let context = TempDir(scratch_dir.join(format!("context-{}", std::process::id())));
    let _ = fs::remove_dir_all(&context.0);
    fs::create_dir_all(&context.0).expect("create the build context");
    fs::copy(&binary, context.0.join("api")).expect("copy the binary into the context");

    let tag = format!("api-image-test:{}-{}", &TEST_SHA[..12], std::process::id());
    let image = Image(tag.clone());
    run(Command::new("docker")
        .args(["build", "--no-cache", "--platform", "linux/amd64", "-f"])
        .arg(workspace.join("deploy/Dockerfile"))
        .args(["--build-arg", &format!("GIT_SHA={TEST_SHA}")])
        .args(["--build-arg", &format!("VERSION={TEST_VERSION}")])
        .args(["--build-arg", &format!("CREATED={TEST_CREATED}")])
        .args(["--build-arg", &format!("SOURCE={TEST_SOURCE}")])
        .args(["-t", &tag])
        .arg(&context.0));

    let size: u64 =
        run(Command::new("docker").args(["image", "inspect", "-f", "{{.Size}}", &image.0]))
            .trim()
            .parse()
            .expect("image size is a number");
    println!("image size: {size} bytes ({:.2} MB)", size as f64 / 1e6);
    assert!(
        size <= MAX_IMAGE_BYTES,
        "image is {size} bytes, over {MAX_IMAGE_BYTES}"
    );

    let config: serde_json::Value = serde_json::from_str(&run(Command::new("docker").args([
        "image",
        "inspect",
        "-f",
        "{{json .Config}}",
        &image.0,
    ])))
    .expect("image config is JSON");
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/api"]));
    assert_eq!(
        config["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/api", "healthcheck"])
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
    let labels = &config["Labels"];
    for (label, value) in [
        ("org.opencontainers.image.revision", TEST_SHA),
        ("org.opencontainers.image.source", TEST_SOURCE),
        ("org.opencontainers.image.created", TEST_CREATED),
        ("org.opencontainers.image.version", TEST_VERSION),
        ("org.opencontainers.image.title", "api"),
        ("org.opencontainers.image.licenses", "MIT OR Apache-2.0"),
    ] {
        assert_eq!(labels[label], value, "label {label}");
    }

    let id = run(Command::new("docker").args(["run", "-d", "-p", "127.0.0.1::8080", &image.0]))
        .trim()
        .to_owned();
    let container = Container(id);
    let published = run(Command::new("docker").args(["port", &container.0, "8080/tcp"]));
    let addr: SocketAddr = published
        .lines()
        .find_map(|line| line.trim().parse().ok())
        .unwrap_or_else(|| panic!("no host address in `docker port` output {published:?}"));

    let version = poll_for(
        Duration::from_secs(30),
        "the container to answer /version",
        || try_get(addr, "/version").filter(|reply| reply.status == 200),
    )
    .json();
    assert_eq!(version["git_sha"], TEST_SHA);
    assert_eq!(version["short_sha"], &TEST_SHA[..12]);
    assert_eq!(
        version["built_at"], "2026-11-23T10:00:00Z",
        "SOURCE_DATE_EPOCH was baked in"
    );

    let top = run(Command::new("docker").args(["top", &container.0, "-o", "pid,uid,comm"]));
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

    // The HEALTHCHECK runs `/api healthcheck` inside the scratch image (first run after
    // the 10 s interval).
    let mut inspect = Command::new("docker");
    inspect.args(["inspect", "-f", "{{.State.Health.Status}}", &container.0]);
    println!(
        "$ docker inspect -f {{{{.State.Health.Status}}}} {} (polled)",
        container.0
    );
    poll_for(
        Duration::from_secs(60),
        "the container to report healthy",
        || {
            let output = inspect.output().expect("run docker inspect");
            (String::from_utf8_lossy(&output.stdout).trim() == "healthy").then_some(())
        },
    );
}

/// `cargo build --release --locked -p api --target x86_64-unknown-linux-gnu`, static,
/// with [`TEST_SHA`] and a fixed `SOURCE_DATE_EPOCH`, in its own target dir so it does
/// not wait on the lock of the `cargo test` that runs this.
fn build_static_binary(workspace: &Path, target_dir: &Path) -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "api",
            "--target",
            TARGET,
        ])
        // Target-scoped flags keep build scripts dynamic; a global RUSTFLAGS would override them.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static",
        )
        .env("CARGO_TARGET_DIR", target_dir)
        .env("GIT_SHA", TEST_SHA)
        .env("SOURCE_DATE_EPOCH", "1795428000"));
    let binary = target_dir.join(TARGET).join("release/api");
    assert!(binary.is_file(), "no binary at {}", binary.display());
    binary
}

fn on_path(program: &str) -> bool {
    env::var_os("PATH")
        .is_some_and(|path| env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Prints the command, runs it, fails the test on a non-zero exit, returns stdout.
fn run(command: &mut Command) -> String {
    let shown: Vec<String> = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let envs: Vec<String> = command
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    println!(
        "$ {}{}",
        envs.iter().map(|e| format!("{e} ")).collect::<String>(),
        shown.join(" ")
    );
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", shown[0]));
    assert!(
        output.status.success(),
        "{} failed ({}):\n{}\n{}",
        shown.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Removes the image on drop (also when an assertion failed).
struct Image(String);

impl Drop for Image {
    fn drop(&mut self) {
        println!("$ docker rmi -f {}", self.0);
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

/// Removes the container on drop.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        println!("$ docker rm -f {}", self.0);
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
