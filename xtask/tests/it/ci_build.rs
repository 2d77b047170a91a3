//! `cargo xtask ci-build` end to end: the real binary, the real Docker engine,
//! a real registry (Debian's docker-registry), the fake cosign.
//!
//! Real image builds are few: one build of `main` shared by the happy path,
//! the signature tests and the fault tests that need a built binary (they push
//! the same commit to other repository paths, so cargo has nothing to redo),
//! and one feature-branch build. Every other test fails before building.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::support::*;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const CANONICAL: &str = "acme/api";
const STAGING: &str = "acme/api-staging";

/// `--repository <registry>/acme/api --staging-repository <registry>/acme/api-staging`.
fn repo_flags(host_repo: impl Fn(&str) -> String) -> Vec<String> {
    vec![
        "--repository".to_owned(),
        host_repo(CANONICAL),
        "--staging-repository".to_owned(),
        host_repo(STAGING),
    ]
}

fn args<'a>(fixed: &[&'a str], more: &'a [String]) -> Vec<&'a str> {
    fixed
        .iter()
        .copied()
        .chain(more.iter().map(String::as_str))
        .collect()
}

fn field<'a>(record: &'a Value, name: &str) -> &'a str {
    record[name]
        .as_str()
        .unwrap_or_else(|| panic!("`{name}` is not a string in {record}"))
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// One build of `main`, shared: the first test that needs it builds it.
struct MainBuild {
    registry: Registry,
    project: Project,
    docker: DockerGuard,
    /// metadata.json as the first (pushing) build wrote it.
    record: Value,
    /// The first build's last stdout line (`--json`).
    json_line: Value,
    /// Builds in `project` share `target/xtask/image-context`: one at a time.
    builds: Mutex<()>,
    /// `$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY` of the first build.
    github: TempDir,
}

impl MainBuild {
    fn flags(&self) -> Vec<String> {
        repo_flags(|p| self.registry.repo(p))
    }

    fn digest(&self) -> &str {
        field(&self.record, "image_digest")
    }

    fn build_lock(&self) -> MutexGuard<'_, ()> {
        self.builds.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn main_build() -> &'static MainBuild {
    static BUILD: OnceLock<MainBuild> = OnceLock::new();
    BUILD.get_or_init(|| {
        let registry = Registry::start();
        let project = Project::new();
        let docker = DockerGuard::new();
        docker.images_under(&format!("{}/", registry.host()));
        docker.clean_at_exit();
        let flags = repo_flags(|p| registry.repo(p));
        let github = TempDir::new("github");
        github.remove_at_exit();
        let run = project
            .xtask_cmd(&args(&["ci-build", "--json"], &flags))
            .path(path_without(&["cosign"]))
            .env("GITHUB_OUTPUT", github.join("output"))
            .env("GITHUB_STEP_SUMMARY", github.join("summary.md"))
            .run();
        eprintln!(
            "ci-build (first build of main) took {:.1}s",
            run.elapsed.as_secs_f64()
        );
        run.expect_success();
        let record = read_json(&project.metadata_path());
        let json_line = run.last_json();
        MainBuild {
            registry,
            project,
            docker,
            record,
            json_line,
            builds: Mutex::new(()),
            github,
        }
    })
}

#[test]
fn main_build_pushes_both_sha_tags_records_the_digest_and_runs_that_commit() {
    let build = main_build();
    let (registry, project, record) = (&build.registry, &build.project, &build.record);
    let sha = project.sha();
    let short = &sha[..12];
    let repo = registry.repo(CANONICAL);
    let digest = build.digest();

    // The registry itself: both tags, the recorded digest, nothing floating.
    assert_eq!(registry.digest(CANONICAL, &sha).as_deref(), Some(digest));
    assert_eq!(registry.digest(CANONICAL, short).as_deref(), Some(digest));
    let mut expected_tags = vec![sha.clone(), short.to_owned()];
    expected_tags.sort();
    assert_eq!(
        registry.tags(CANONICAL),
        expected_tags,
        "no `latest`, no other tag"
    );
    assert_eq!(registry.digest(CANONICAL, "latest"), None);
    assert!(
        registry.tags(STAGING).is_empty(),
        "main never lands in staging"
    );

    // GitHub step outputs and the job summary.
    let outputs =
        std::fs::read_to_string(build.github.join("output")).expect("GITHUB_OUTPUT written");
    assert!(
        outputs.contains(&format!("image_ref={repo}:{sha}@{digest}\n")),
        "{outputs}"
    );
    assert!(
        outputs.contains(&format!("image_digest={digest}\n")),
        "{outputs}"
    );
    assert!(outputs.contains(&format!("image_sha={sha}\n")), "{outputs}");
    let summary =
        std::fs::read_to_string(build.github.join("summary.md")).expect("summary written");
    assert!(
        summary.contains(digest) && summary.contains("unverified (cosign not found)"),
        "{summary}"
    );

    // The record.
    assert_eq!(field(record, "record"), "build");
    assert_eq!(field(record, "image_sha"), sha);
    assert_eq!(field(record, "short_sha"), short);
    assert_eq!(field(record, "repository"), repo);
    assert_eq!(field(record, "repository_kind"), "canonical");
    assert_eq!(field(record, "branch"), "main");
    assert_eq!(field(record, "image_ref"), format!("{repo}:{sha}@{digest}"));
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(record["pushed"], Value::Bool(true));
    assert_eq!(field(record, "signature_status"), "unverified");
    assert_eq!(field(record, "signature_reason"), "cosign not found");
    let took = record["build_duration_sec"].as_f64().expect("a number");
    assert!(took > 0.0, "build_duration_sec {took}");
    let built_at = field(record, "built_at");
    let built = OffsetDateTime::parse(built_at, &Rfc3339).expect("built_at is RFC 3339");
    assert!(
        (OffsetDateTime::now_utc() - built).whole_hours().abs() < 2,
        "built_at {built_at} is not now"
    );
    assert_eq!(
        build.json_line, *record,
        "--json prints the record as the last line"
    );

    // The image's labels and user, from the engine.
    let inspect = |format: &str| {
        docker_ok(&[
            "image",
            "inspect",
            "--format",
            format,
            &format!("{repo}:{sha}"),
        ])
    };
    let labels: Value =
        serde_json::from_str(&inspect("{{json .Config.Labels}}")).expect("labels JSON");
    let label = |k: &str| {
        labels[format!("org.opencontainers.image.{k}")]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(label("revision"), sha);
    let commit_time = OffsetDateTime::from_unix_timestamp(project.commit_time())
        .expect("commit time")
        .format(&Rfc3339)
        .expect("format");
    assert_eq!(label("created"), commit_time, "created is the commit time");
    assert_eq!(label("version"), api_version());
    assert_eq!(label("source"), "https://github.com/example/shipyard");
    assert!(
        !label("title").is_empty() && !label("licenses").is_empty(),
        "{labels}"
    );
    assert_eq!(inspect("{{.Config.User}}"), "65532:65532");
    assert_eq!(inspect("{{.Os}}/{{.Architecture}}"), "linux/amd64");

    // It runs, and says it is this commit.
    let container = docker_ok(&[
        "run",
        "-d",
        "-p",
        "127.0.0.1::8080",
        field(record, "image_ref"),
    ]);
    build.docker.container(&container);
    let guard = DockerGuard::new();
    guard.container(&container);
    let port = docker_ok(&["port", &container, "8080/tcp"]);
    let address = port.lines().next().expect("a published port").to_owned();
    let version = poll_until(Duration::from_secs(30), || {
        let (status, body) = http_get(&format!("http://{address}/version"));
        (status == 200).then_some(body)
    })
    .unwrap_or_else(|| {
        panic!(
            "/version did not answer within 30 s; logs:\n{}",
            String::from_utf8_lossy(&docker(&["logs", &container]).stderr)
        )
    });
    let version: Value = serde_json::from_str(&version).expect("/version is JSON");
    assert_eq!(field(&version, "git_sha"), sha);
    assert_eq!(field(&version, "short_sha"), short);
    let top = docker_ok(&["top", &container, "-o", "pid,uid"]);
    let uids: Vec<&str> = top
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(uids, ["65532"], "the process runs as 65532: {top}");

    // Same commit again: nothing built or pushed, same digest, registry unchanged.
    let out = TempDir::new("second");
    let again = project
        .xtask_cmd(&args(
            &[
                "ci-build",
                "--json",
                "--out",
                &out.join("m.json").display().to_string(),
            ],
            &build.flags(),
        ))
        .path(path_without(&["cosign"]))
        .run();
    eprintln!(
        "ci-build (same commit again) took {:.1}s",
        again.elapsed.as_secs_f64()
    );
    again.expect_success();
    assert!(
        again.stderr.contains("already exists"),
        "says so:\n{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("nothing is built or pushed"),
        "{}",
        again.stderr
    );
    assert!(!again.stderr.contains("$ docker build") && !again.stderr.contains("$ docker push"));
    let second = again.last_json();
    assert_eq!(second["pushed"], Value::Bool(false));
    assert_eq!(field(&second, "image_digest"), digest);
    assert_eq!(field(&second, "image_ref"), field(record, "image_ref"));
    assert_eq!(read_json(&out.join("m.json")), second);
    assert_eq!(registry.tags(CANONICAL), expected_tags);
    assert_eq!(registry.digest(CANONICAL, &sha).as_deref(), Some(digest));
}

fn api_version() -> String {
    let manifest =
        std::fs::read_to_string(workspace_root().join("api/Cargo.toml")).expect("api/Cargo.toml");
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \"")?.strip_suffix('"'))
        .expect("api version")
        .to_owned()
}

#[test]
fn feature_branch_build_lands_in_the_staging_repository_only() {
    let registry = Registry::start();
    let docker = DockerGuard::new();
    docker.images_under(&format!("{}/", registry.host()));
    let project = Project::new();
    project.checkout_new_branch("feature/login");
    let sha = project.sha();
    let run = project.xtask(&args(
        &["ci-build", "--json"],
        &repo_flags(|p| registry.repo(p)),
    ));
    eprintln!(
        "ci-build (feature branch) took {:.1}s",
        run.elapsed.as_secs_f64()
    );
    run.expect_success();
    let record = run.last_json();
    assert_eq!(field(&record, "repository"), registry.repo(STAGING));
    assert_eq!(field(&record, "repository_kind"), "staging");
    assert_eq!(field(&record, "branch"), "feature/login");
    let digest = field(&record, "image_digest");
    assert_eq!(registry.digest(STAGING, &sha).as_deref(), Some(digest));
    assert_eq!(
        registry.digest(STAGING, &sha[..12]).as_deref(),
        Some(digest)
    );
    assert!(
        registry.tags(CANONICAL).is_empty(),
        "nothing in the canonical repository"
    );
    assert_eq!(record, read_json(&project.metadata_path()));
}

#[test]
fn dry_run_prints_the_clean_build_and_changes_nothing() {
    let registry = Registry::start();
    let docker = DockerGuard::new();
    docker.images_under(&format!("{}/", registry.host()));
    let project = Project::new();
    let run = project.xtask(&args(
        &["ci-build", "--dry-run", "--json"],
        &repo_flags(|p| registry.repo(p)),
    ));
    run.expect_success();
    let build_line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("(dry run) $ docker build"))
        .unwrap_or_else(|| panic!("no docker build line:\n{}", run.stderr));
    assert!(
        build_line.contains("docker build --no-cache --platform linux/amd64"),
        "{build_line}"
    );
    assert!(
        build_line.contains(&format!("--build-arg GIT_SHA={}", project.sha())),
        "{build_line}"
    );
    assert!(run.stderr.contains(&format!(
        "(dry run) $ docker push {}:{}",
        registry.repo(CANONICAL),
        project.sha()
    )));
    let plan = run.last_json();
    assert_eq!(plan["dry_run"], Value::Bool(true));
    assert!(registry.tags(CANONICAL).is_empty() && registry.tags(STAGING).is_empty());
    assert!(!project.metadata_path().exists(), "no metadata.json");
    assert!(
        !project.root().join("target/xtask/image-context").exists(),
        "no build context"
    );
    assert!(
        docker.local_images().is_empty(),
        "no image built: {:?}",
        docker.local_images()
    );
}

/// The image's VERSION and SOURCE labels are what cargo says of the api
/// package, so inheriting them from the workspace works.
#[test]
fn version_and_source_come_from_cargo_with_workspace_inheritance() {
    let registry = Registry::start();
    let project = Project::new();
    let root_manifest =
        std::fs::read_to_string(project.root().join("Cargo.toml")).expect("read Cargo.toml");
    project.write(
        "Cargo.toml",
        &root_manifest.replace(
            "[workspace.package]\n",
            "[workspace.package]\nversion = \"4.5.6-beta.2\"\n",
        ),
    );
    let api_manifest =
        std::fs::read_to_string(project.root().join("api/Cargo.toml")).expect("read api");
    let inherited = api_manifest.replacen("version = \"0.1.0\"", "version.workspace = true", 1);
    assert_ne!(inherited, api_manifest, "api/Cargo.toml had a version line");
    project.write("api/Cargo.toml", &inherited);
    project.git(&["commit", "-q", "-am", "inherit the version"]);
    let run = project.xtask(&args(
        &["ci-build", "--dry-run"],
        &repo_flags(|p| registry.repo(p)),
    ));
    run.expect_success();
    let build_line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("(dry run) $ docker build"))
        .unwrap_or_else(|| panic!("no docker build line:\n{}", run.stderr));
    assert!(
        build_line.contains("--build-arg VERSION=4.5.6-beta.2"),
        "{build_line}"
    );
    assert!(
        build_line.contains("--build-arg SOURCE=https://github.com/example/shipyard"),
        "{build_line}"
    );
}

#[test]
fn dry_run_of_an_already_pushed_commit_records_nothing() {
    let build = main_build();
    let out = TempDir::new("dry-existing");
    let out_file = out.join("m.json");
    let tags_before = build.registry.tags(CANONICAL);
    let run = build
        .project
        .xtask_cmd(&args(
            &[
                "ci-build",
                "--dry-run",
                "--out",
                &out_file.display().to_string(),
            ],
            &build.flags(),
        ))
        .path(path_without(&["cosign"]))
        .run();
    run.expect_success();
    assert_eq!(build.registry.tags(CANONICAL), tags_before);
    assert!(
        !out_file.exists(),
        "--dry-run wrote a record:\n{}",
        run.stderr
    );
}

/// A ci-build of the shared commit (already pushed: no build) with the fake
/// cosign on PATH, `COSIGN_PUBLIC_KEY=<public>`, the record to a temp file.
fn ci_build_with_cosign(cosign: &FakeCosign, public: &Path, extra: &[&str]) -> (Run, TempDir) {
    let build = main_build();
    let out = TempDir::new("cosign-out");
    let out_file = out.join("m.json").display().to_string();
    let mut fixed = vec!["ci-build", "--json", "--out", &out_file];
    fixed.extend_from_slice(extra);
    let run = build
        .project
        .xtask_cmd(&args(&fixed, &build.flags()))
        .path(path_without(&["cosign"]))
        .fake_cosign(cosign)
        .env("COSIGN_PUBLIC_KEY", public)
        .run();
    (run, out)
}

fn by_digest() -> String {
    let build = main_build();
    format!("{}@{}", build.registry.repo(CANONICAL), build.digest())
}

#[test]
fn signature_made_with_the_key_is_verified() {
    let cosign = FakeCosign::new();
    let (private, public) = cosign.key_pair("release");
    cosign.sign(&private, &by_digest());
    let (run, out) = ci_build_with_cosign(&cosign, &public, &[]);
    run.expect_success();
    let record = read_json(&out.join("m.json"));
    assert_eq!(field(&record, "signature_status"), "verified");
    assert_eq!(record["signature_reason"], Value::Null);
    let verify = cosign
        .calls()
        .into_iter()
        .find(|c| c.first().is_some_and(|c| c == "verify"));
    assert_eq!(
        verify,
        Some(vec![
            "verify".to_owned(),
            "--key".to_owned(),
            public.display().to_string(),
            "--insecure-ignore-tlog".to_owned(),
            "--output".to_owned(),
            "json".to_owned(),
            "--allow-insecure-registry".to_owned(),
            by_digest(),
        ]),
        "xtask verifies the pushed digest, with the key (no tlog: key-based signing uploads none), JSON asked for explicitly, insecure only for loopback"
    );
}

#[test]
fn signature_by_another_key_is_unverified_as_bad() {
    let cosign = FakeCosign::new();
    let (_, public) = cosign.key_pair("release");
    let (other, _) = cosign.key_pair("someone-else");
    cosign.sign(&other, &by_digest());
    let (run, out) = ci_build_with_cosign(&cosign, &public, &[]);
    run.expect_success();
    let record = read_json(&out.join("m.json"));
    assert_eq!(field(&record, "signature_status"), "unverified");
    let reason = field(&record, "signature_reason");
    assert!(
        reason.contains("bad signature") && reason.contains("no matching signatures"),
        "{reason}"
    );
}

#[test]
fn missing_signature_is_unverified_with_reason_no_signature() {
    let cosign = FakeCosign::new();
    let (_, public) = cosign.key_pair("release");
    let (run, out) = ci_build_with_cosign(&cosign, &public, &[]);
    run.expect_success();
    let record = read_json(&out.join("m.json"));
    assert_eq!(field(&record, "signature_status"), "unverified");
    assert_eq!(field(&record, "signature_reason"), "no signature");
    assert!(
        run.stderr.contains("continuing (soft policy)"),
        "{}",
        run.stderr
    );
}

#[test]
fn required_signature_missing_fails_and_records_nothing() {
    let cosign = FakeCosign::new();
    let (_, public) = cosign.key_pair("release");
    let (run, out) = ci_build_with_cosign(&cosign, &public, &["--require-signature"]);
    let error = run.single_error();
    assert!(
        error.contains("--require-signature") && error.contains("no signature"),
        "{error}"
    );
    assert!(error.contains(&by_digest()), "names the image: {error}");
    assert!(!out.join("m.json").exists(), "a failed build left a record");
    assert!(
        run.stdout.trim().is_empty(),
        "no JSON record on stdout: {}",
        run.stdout
    );
}

/// A project and a registry for a run that must fail before anything is
/// built: after it, no tag, no record, no local image.
struct Refused {
    registry: Registry,
    project: Project,
    docker: DockerGuard,
}

impl Refused {
    fn new() -> Refused {
        let registry = Registry::start();
        let docker = DockerGuard::new();
        docker.images_under(&format!("{}/", registry.host()));
        Refused {
            registry,
            project: Project::new(),
            docker,
        }
    }

    fn flags(&self) -> Vec<String> {
        repo_flags(|p| self.registry.repo(p))
    }

    fn assert_nothing_happened(&self, run: &Run) {
        assert!(!run.status.success());
        assert!(
            self.registry.tags(CANONICAL).is_empty(),
            "pushed to canonical"
        );
        assert!(self.registry.tags(STAGING).is_empty(), "pushed to staging");
        assert!(!self.project.metadata_path().exists(), "recorded a build");
        assert!(self.docker.local_images().is_empty(), "built an image");
        assert!(
            !run.stderr.contains("$ docker build"),
            "ran a build:\n{}",
            run.stderr
        );
    }
}

#[test]
fn dirty_tree_is_refused() {
    let t = Refused::new();
    t.project.write("api/src/wip.rs", "// not committed\n");
    let run = t.project.xtask(&args(&["ci-build"], &t.flags()));
    let error = run.single_error();
    assert!(
        error.contains("uncommitted change") && error.contains("api/src/wip.rs"),
        "cause: {error}"
    );
    assert!(error.contains("commit or stash"), "fix: {error}");
    t.assert_nothing_happened(&run);
}

#[test]
fn not_a_git_repository_is_refused() {
    let t = Refused::new();
    let plain = TempDir::new("plain");
    let run = Xtask::at(plain.path(), &args(&["ci-build"], &t.flags()))
        .env(
            "GIT_CEILING_DIRECTORIES",
            plain.path().parent().expect("parent"),
        )
        .run();
    let error = run.single_error();
    assert!(error.contains("is not a git repository"), "cause: {error}");
    assert!(error.contains("build from a git checkout"), "fix: {error}");
    t.assert_nothing_happened(&run);
}

#[test]
fn missing_docker_is_named() {
    let t = Refused::new();
    let tools = tools_only(&["git", "cargo"]);
    let run = t
        .project
        .xtask_cmd(&args(&["ci-build"], &t.flags()))
        .path(tools.path())
        .run();
    let error = run.single_error();
    assert!(
        error.contains("`docker` is not installed or not on PATH"),
        "cause and fix: {error}"
    );
    t.assert_nothing_happened(&run);
}

#[test]
fn docker_daemon_down_is_named() {
    let t = Refused::new();
    let run = t
        .project
        .xtask_cmd(&args(&["ci-build"], &t.flags()))
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .run();
    let error = run.single_error();
    assert!(
        error.contains("Docker daemon is not answering"),
        "cause: {error}"
    );
    assert!(
        error.contains("start it") && error.contains("DOCKER_HOST"),
        "fix: {error}"
    );
    t.assert_nothing_happened(&run);
}

#[test]
fn unreachable_registry_is_named() {
    let t = Refused::new();
    let closed = format!("127.0.0.1:{}", free_port());
    let run = t.project.xtask(&args(
        &["ci-build"],
        &repo_flags(|p| format!("{closed}/{p}")),
    ));
    let error = run.single_error();
    assert!(
        error.contains(&format!("registry {closed} did not answer")),
        "cause: {error}"
    );
    assert!(
        error.contains("connection refused"),
        "docker's words: {error}"
    );
    assert!(
        error.contains("registry up") || error.contains("--repository"),
        "fix: {error}"
    );
    t.assert_nothing_happened(&run);
}

#[test]
fn malformed_repository_names_are_one_line_usage_errors() {
    let t = Refused::new();
    for bad in ["Acme/API", "ghcr.io/acme/api:latest"] {
        let run = t.project.xtask(&["ci-build", "--repository", bad]);
        run.expect_code(2);
        let lines: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "one line: {lines:?}");
        assert!(
            lines[0].starts_with("error:") && lines[0].contains("not an image repository"),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains(bad), "names the value: {}", lines[0]);
        t.assert_nothing_happened(&run);
    }
}

#[test]
fn registry_serving_another_digest_than_pushed_is_caught() {
    let build = main_build();
    let path = "fault/rewritten";
    let sha = build.project.sha();
    let guard = DockerGuard::new();
    // Another image in the same repository: what the "broken" registry serves.
    let decoy = format!("{}:decoy", build.registry.repo(path));
    guard.image(&decoy);
    docker_build_tiny(&decoy, "not the api\n");
    docker_ok(&["push", &decoy]);
    let decoy_digest = build.registry.digest(path, "decoy").expect("decoy pushed");

    let proxy = Proxy::start(
        build.registry.port(),
        vec![ProxyRule::ServeOtherReference {
            path: path.to_owned(),
            tag: sha[..12].to_owned(),
            instead: "decoy".to_owned(),
        }],
    );
    guard.images_under(&format!("127.0.0.1:{}/", proxy.port()));
    let out = TempDir::new("rewritten-out");
    let out_file = out.join("m.json").display().to_string();
    let run = {
        let _one_build = build.build_lock();
        build
            .project
            .xtask_cmd(&[
                "ci-build",
                "--out",
                &out_file,
                "--repository",
                &proxy.repo(path),
                "--staging-repository",
                &proxy.repo("fault/staging"),
            ])
            .path(path_without(&["cosign"]))
            .run()
    };
    eprintln!(
        "ci-build (registry rewrites a tag) took {:.1}s",
        run.elapsed.as_secs_f64()
    );
    let error = run.single_error();
    let pushed = build
        .registry
        .digest(path, &sha)
        .expect("the full tag was pushed");
    assert_ne!(pushed, decoy_digest);
    assert!(
        error.contains(&pushed) && error.contains(&decoy_digest),
        "names both digests: {error}"
    );
    assert!(error.contains(&sha[..12]), "names the tag: {error}");
    assert!(error.contains("do not deploy"), "fix: {error}");
    assert!(
        !Path::new(&out_file).exists(),
        "recorded a build that does not read back"
    );
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.contains("→ /v2/fault/rewritten/manifests/decoy")),
        "the fault was injected: {:?}",
        proxy.requests()
    );
}

/// Push `main`'s commit through a proxy that fails the manifest PUT of
/// `failing_tag(sha)`; returns the run.
fn push_through_failing_proxy(
    path: &str,
    failing_tag: impl Fn(&str) -> String,
) -> (Run, Proxy, DockerGuard) {
    let build = main_build();
    let sha = build.project.sha();
    let proxy = Proxy::start(
        build.registry.port(),
        vec![ProxyRule::FailManifestPut {
            path: path.to_owned(),
            tag: failing_tag(&sha),
        }],
    );
    let guard = DockerGuard::new();
    guard.images_under(&format!("127.0.0.1:{}/", proxy.port()));
    let out = TempDir::new("failing-push");
    let out_file = out.join("m.json");
    let run = {
        let _one_build = build.build_lock();
        build
            .project
            .xtask_cmd(&[
                "ci-build",
                "--out",
                &out_file.display().to_string(),
                "--repository",
                &proxy.repo(path),
                "--staging-repository",
                &proxy.repo(&format!("{path}-staging")),
            ])
            .path(path_without(&["cosign"]))
            .run()
    };
    eprintln!(
        "ci-build (push fails midway) took {:.1}s",
        run.elapsed.as_secs_f64()
    );
    assert!(!out_file.exists(), "recorded a failed push");
    assert!(
        proxy
            .requests()
            .iter()
            .any(|r| r.ends_with("500 (injected)")),
        "the fault was injected: {:?}",
        proxy.requests()
    );
    (run, proxy, guard)
}

#[test]
fn push_failing_midway_is_an_error_that_names_the_tag() {
    let build = main_build();
    let sha = build.project.sha();
    let short = sha[..12].to_owned();

    // The full tag goes through, the short one fails.
    let path = "fault/short-fails";
    let (run, proxy, _guard) = push_through_failing_proxy(path, |sha| sha[..12].to_owned());
    let error = run.single_error();
    assert!(
        error.contains(&format!("{}:{short}", proxy.repo(path))),
        "names the tag: {error}"
    );
    assert!(
        error.contains("500"),
        "names the registry's answer: {error}"
    );
    assert!(
        build.registry.digest(path, &sha).is_some(),
        "the full tag was pushed first"
    );
    assert_eq!(build.registry.digest(path, &short), None);

    // Vice versa: the full tag fails, so the short one is never pushed.
    let path = "fault/full-fails";
    let (run, proxy, _guard) = push_through_failing_proxy(path, str::to_owned);
    let error = run.single_error();
    assert!(
        error.contains(&format!("{}:{sha}", proxy.repo(path))),
        "names the tag: {error}"
    );
    assert!(build.registry.tags(path).is_empty(), "nothing pushed");
}

#[test]
fn rerun_after_a_half_failed_push_completes_or_refuses() {
    let build = main_build();
    let sha = build.project.sha();
    let short = sha[..12].to_owned();
    let path = "fault/half-pushed";
    let (failed, _proxy, _guard) = push_through_failing_proxy(path, |sha| sha[..12].to_owned());
    let first_error = failed.single_error();
    assert!(
        first_error.contains("again") || first_error.contains("--force"),
        "the error says how to recover: {first_error}"
    );
    let full_digest = build
        .registry
        .digest(path, &sha)
        .expect("the full tag was pushed");

    // The registry is healthy again: the same commit, the same repository.
    let guard = DockerGuard::new();
    guard.images_under(&format!("{}/{path}:", build.registry.host()));
    let out = TempDir::new("half-pushed");
    let rerun = {
        let _one_build = build.build_lock();
        build
            .project
            .xtask_cmd(&[
                "ci-build",
                "--out",
                &out.join("m.json").display().to_string(),
                "--repository",
                &build.registry.repo(path),
                "--staging-repository",
                &build.registry.repo(&format!("{path}-staging")),
            ])
            .path(path_without(&["cosign"]))
            .run()
    };
    if rerun.status.success() {
        assert_eq!(
            build.registry.digest(path, &short),
            Some(full_digest),
            "a successful re-run leaves both tags on one digest"
        );
    } else {
        assert!(
            rerun.single_error().contains(&short),
            "names the missing tag"
        );
        assert!(!out.join("m.json").exists());
    }
}
