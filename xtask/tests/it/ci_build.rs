//! `cargo xtask ci-build` end to end: the real binary, the real Docker engine,
//! a real registry (Debian's docker-registry), the fake cosign.
//!
//! Every build is clean (own checkout, empty target dir, all dependencies
//! compiled), so real builds of the api are few: the main-branch and
//! feature-branch tests read the shared world's builds (`support/world.rs`,
//! also deploy's). Tests of the build machinery itself (adoption, refusals,
//! signatures, push faults, Ctrl-C) build the tiny api (`Project::tiny`):
//! the same clean build, seconds instead of minutes. Every other test fails
//! before building.

use std::path::Path;
use std::time::Duration;

use crate::support::world::{CANONICAL, STAGING, TinyBuild, repo_flags, tiny_build, world};
use crate::support::*;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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

#[test]
fn main_build_pushes_both_sha_tags_records_the_digest_and_runs_that_commit() {
    let w = world();
    let (registry, built, record) = (&w.registry, &w.a, &w.a.record);
    let sha = built.sha.clone();
    let short = &sha[..12];
    let repo = w.canonical.clone();
    let digest = built.digest.as_str();

    // The registry itself: both tags, the recorded digest, nothing floating.
    assert_eq!(registry.digest("it/api", &sha).as_deref(), Some(digest));
    assert_eq!(registry.digest("it/api", short).as_deref(), Some(digest));
    let tags = registry.tags("it/api");
    assert!(
        tags.contains(&sha) && tags.iter().any(|t| t == short),
        "{tags:?}"
    );
    assert!(
        tags.iter()
            .all(|t| (t.len() == 40 || t.len() == 12) && t.bytes().all(|b| b.is_ascii_hexdigit())),
        "only SHA tags, no `latest`: {tags:?}"
    );
    assert_eq!(registry.digest("it/api", "latest"), None);
    assert!(
        !registry.tags("it/api-staging").contains(&sha),
        "main never lands in staging"
    );

    // GitHub step outputs and the job summary.
    let outputs = std::fs::read_to_string(w.github.join("output")).expect("GITHUB_OUTPUT written");
    assert!(
        outputs.contains(&format!("image_ref={repo}:{sha}@{digest}\n")),
        "{outputs}"
    );
    assert!(
        outputs.contains(&format!("image_digest={digest}\n")),
        "{outputs}"
    );
    assert!(outputs.contains(&format!("image_sha={sha}\n")), "{outputs}");
    let summary = std::fs::read_to_string(w.github.join("summary.md")).expect("summary written");
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
    let compile = record["compile_duration_sec"].as_f64().expect("a number");
    assert!(
        compile > 0.0 && compile < took,
        "compile {compile} within build {took}"
    );
    assert!(
        field(record, "toolchain").starts_with("rustc 1.95.0 "),
        "the commit's pinned toolchain: {record}"
    );
    let built_at = field(record, "built_at");
    let at = OffsetDateTime::parse(built_at, &Rfc3339).expect("built_at is RFC 3339");
    assert!(
        (OffsetDateTime::now_utc() - at).whole_hours().abs() < 2,
        "built_at {built_at} is not now"
    );
    assert_eq!(
        built.json_line, *record,
        "--json prints the record as the last line"
    );

    // Built clean, from the commit: its blobs as stored, an empty
    // environment, --locked, the pinned toolchain by absolute path; all
    // cleaned up after.
    for part in [
        "$ git --no-replace-objects -c core.hooksPath=/dev/null -C ",
        " cat-file --batch",
        "$ env -i PATH=",
        "toolchains/1.95.0-x86_64-unknown-linux-gnu/bin/cargo build --config ",
        "/src/Cargo.toml --release --locked --package api --target x86_64-unknown-linux-gnu",
        "--remap-path-prefix=",
        "Compiling tokio ",
    ] {
        assert!(
            built.stderr.contains(part),
            "`{part}` in:\n{}",
            built.stderr
        );
    }
    assert!(
        w.clone_a.git(&["worktree", "list"]).lines().count() == 1,
        "the temporary checkout is gone: {}",
        w.clone_a.git(&["worktree", "list"])
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
    let commit_time: i64 = w
        .project
        .git(&["show", "-s", "--format=%ct", &sha])
        .parse()
        .expect("commit time");
    let commit_time = OffsetDateTime::from_unix_timestamp(commit_time)
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

    // The binary: its hash (by coreutils, not the xtask) is the record's and
    // the label's; its layer is the record's and holds a file with the
    // commit time as mtime.
    let dir = TempDir::new("main-api");
    let api = extract_api(&format!("{repo}:{sha}"), &dir);
    let hash = sha256sum(&api);
    assert_eq!(field(record, "binary_sha256"), hash);
    assert_eq!(
        labels["shipyard.binary.sha256"].as_str(),
        Some(hash.as_str())
    );
    let layers = layer_diff_ids(&format!("{repo}:{sha}"));
    assert_eq!(layers.len(), 1, "FROM scratch + one COPY: {layers:?}");
    assert_eq!(field(record, "layer_diff_id"), layers[0]);

    // It runs, and says it is this commit.
    let container = docker_ok(&[
        "run",
        "-d",
        "-p",
        "127.0.0.1::8080",
        field(record, "image_ref"),
    ]);
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
    assert_eq!(
        field(&version, "built_at"),
        commit_time,
        "SOURCE_DATE_EPOCH is the commit time"
    );
    let top = docker_ok(&["top", &container, "-o", "pid,uid"]);
    let uids: Vec<&str> = top
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(uids, ["65532"], "the process runs as 65532: {top}");
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
    let w = world();
    let record = &w.feature.record;
    let sha = &w.feature.sha;
    assert_eq!(field(record, "repository"), w.staging);
    assert_eq!(field(record, "repository_kind"), "staging");
    assert_eq!(field(record, "branch"), "feature/x");
    let digest = field(record, "image_digest");
    assert_eq!(
        w.registry.digest("it/api-staging", sha).as_deref(),
        Some(digest)
    );
    assert_eq!(
        w.registry.digest("it/api-staging", &sha[..12]).as_deref(),
        Some(digest)
    );
    assert_eq!(
        w.registry.digest("it/api", sha),
        None,
        "nothing in the canonical repository"
    );
    assert_eq!(w.feature.json_line, *record);
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
    // The clean build, in order: a checkout of the commit, then a compile
    // from an empty environment in it.
    let commands: Vec<&str> = plan["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        commands[0].contains(" ls-tree -r -z --full-tree ")
            && commands[0].ends_with(&format!(" {}", project.sha()))
            && commands[1].contains("/src, as stored"),
        "{commands:?}"
    );
    assert!(
        commands[3].starts_with("env -i PATH=")
            && commands[3].contains("/bin/cargo build ")
            && commands[3].contains("/src/Cargo.toml --release --locked --package api"),
        "{commands:?}"
    );
    assert_eq!(project.git(&["worktree", "list"]).lines().count(), 1);
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
    // A real clean build of the tiny stand-in api whose version and
    // repository are inherited from the workspace: cargo, not a line grep,
    // must name them (read in the commit's checkout).
    let registry = Registry::start();
    let project = Project::tiny();
    project.remove_at_exit();
    let docker = DockerGuard::new();
    docker.images_under(&format!("{}/", registry.host()));
    let read = |path: &str| {
        std::fs::read_to_string(project.root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let root_manifest = read("Cargo.toml");
    let workspace = root_manifest.replace(
        "[workspace.package]\n",
        "[workspace.package]\nversion = \"4.5.6-beta.2\"\n",
    );
    assert_ne!(
        workspace, root_manifest,
        "the tiny workspace has [workspace.package]"
    );
    project.write("Cargo.toml", &workspace);
    let api_manifest = read("api/Cargo.toml");
    let inherited = api_manifest.replacen(
        "version = \"0.1.0\"",
        "version.workspace = true\nrepository.workspace = true",
        1,
    );
    assert_ne!(inherited, api_manifest, "api/Cargo.toml had a version line");
    project.write("api/Cargo.toml", &inherited);
    let lock = read("Cargo.lock").replace("version = \"0.1.0\"", "version = \"4.5.6-beta.2\"");
    project.write("Cargo.lock", &lock);
    project.git(&["commit", "-q", "-am", "inherit the version"]);
    let run = project
        .xtask_cmd(&args(&["ci-build"], &repo_flags(|p| registry.repo(p))))
        .path(path_without(&["cosign"]))
        .run();
    run.expect_success();
    let build_line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("$ docker build"))
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
    let build = tiny_build();
    let out = TempDir::new("dry-existing");
    let out_file = out.join("m.json");
    let tags_before = image_tags(&build.registry.tags(CANONICAL));
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
    assert_eq!(image_tags(&build.registry.tags(CANONICAL)), tags_before);
    assert!(
        !out_file.exists(),
        "--dry-run wrote a record:\n{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("adopts it only if both hold the same /api"),
        "says what a real run would do:\n{}",
        run.stderr
    );
}

/// The tags that name images (cosign's own, `sha256-<hex>.sig` and
/// `.att`, left out): an image tag must not move.
fn image_tags(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter(|t| !t.starts_with("sha256-"))
        .cloned()
        .collect()
}

/// The shared tiny image under a repository of one test's own
/// (`<registry>/sig-<name>/api`, pushed from the local image): cosign keeps
/// a signature beside the image it signs (`<repo>:sha256-<hex>.sig`), so a
/// test that signs the image and one that expects it unsigned must not
/// share a repository. They did, and a "no signature" check read another
/// test's signature when the two ran at once.
struct Signable {
    repository: String,
    staging: String,
    digest: String,
}

impl Signable {
    fn new(name: &str) -> Signable {
        let build = tiny_build();
        let repository = build.registry.repo(&format!("sig-{name}/api"));
        let tag = format!("{repository}:{}", build.sha());
        docker_ok(&["tag", &build.tag(), &tag]);
        let digest = crate::support::standin::push(&tag);
        Signable {
            repository,
            staging: build.registry.repo(&format!("sig-{name}/api-staging")),
            digest,
        }
    }

    fn by_digest(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }

    /// A ci-build of the tiny commit into this repository (the tag exists:
    /// adopted after a clean compile, nothing pushed) with the fake cosign
    /// on PATH, `COSIGN_PUBLIC_KEY=<public>`, the record to a temp file.
    fn ci_build(&self, cosign: &FakeCosign, public: &Path, extra: &[&str]) -> (Run, TempDir) {
        let build = tiny_build();
        let out = TempDir::new("cosign-out");
        let out_file = out.join("m.json").display().to_string();
        let mut fixed = vec!["ci-build", "--json", "--out", &out_file];
        fixed.extend_from_slice(extra);
        fixed.extend([
            "--repository",
            &self.repository,
            "--staging-repository",
            &self.staging,
        ]);
        let run = build
            .project
            .xtask_cmd(&fixed)
            .path(path_without(&["cosign"]))
            .fake_cosign(cosign)
            .env("COSIGN_PUBLIC_KEY", public)
            .run();
        (run, out)
    }
}

#[test]
fn signature_made_with_the_key_is_verified() {
    let image = Signable::new("made-with-the-key");
    let cosign = FakeCosign::new();
    let (private, public) = cosign.key_pair("release");
    cosign.sign(&private, &image.by_digest());
    let (run, out) = image.ci_build(&cosign, &public, &[]);
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
            image.by_digest(),
        ]),
        "xtask verifies the pushed digest, with the key (no tlog: key-based signing uploads none), JSON asked for explicitly, insecure only for loopback"
    );
}

#[test]
fn signature_by_another_key_is_unverified_as_bad() {
    let image = Signable::new("another-key");
    let cosign = FakeCosign::new();
    let (_, public) = cosign.key_pair("release");
    let (other, _) = cosign.key_pair("someone-else");
    cosign.sign(&other, &image.by_digest());
    let (run, out) = image.ci_build(&cosign, &public, &[]);
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
    let image = Signable::new("missing");
    let cosign = FakeCosign::new();
    let (_, public) = cosign.key_pair("release");
    let (run, out) = image.ci_build(&cosign, &public, &[]);
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
    let image = Signable::new("required-missing");
    let cosign = FakeCosign::new();
    let (_, public) = cosign.key_pair("release");
    let (run, out) = image.ci_build(&cosign, &public, &["--require-signature"]);
    let error = run.single_error();
    assert!(
        error.contains("--require-signature") && error.contains("no signature"),
        "{error}"
    );
    assert!(
        error.contains(&image.by_digest()),
        "names the image: {error}"
    );
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
    let build = tiny_build();
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
    let run = build
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
        .run();
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

/// Push the tiny commit through a proxy that fails the manifest PUT of
/// `failing_tag(sha)`; returns the run.
fn push_through_failing_proxy(
    path: &str,
    failing_tag: impl Fn(&str) -> String,
) -> (Run, Proxy, DockerGuard) {
    let build = tiny_build();
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
    let run = build
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
        .run();
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
    let build = tiny_build();
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
fn rerun_after_a_half_failed_push_adopts_the_full_tag_and_completes_the_short_one() {
    let build = tiny_build();
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
    let rerun = build
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
        .run();
    // The full tag holds what a clean build of the commit produces: adopted,
    // and the missing short tag pushed from its digest.
    rerun.expect_success();
    assert!(
        rerun.stderr.contains("adopted, nothing pushed") && rerun.stderr.contains(&short),
        "{}",
        rerun.stderr
    );
    assert_eq!(
        build.registry.digest(path, &short),
        Some(full_digest.clone()),
        "both tags on one digest"
    );
    let record = read_json(&out.join("m.json"));
    assert_eq!(record["pushed"], Value::Bool(false));
    assert_eq!(field(&record, "image_digest"), full_digest);
}

// ------------------------------------------------------------ adoption

#[test]
fn same_commit_again_is_adopted_only_after_a_clean_build_matches_it() {
    let build = tiny_build();
    let tags_before = image_tags(&build.registry.tags(CANONICAL));
    let out = TempDir::new("again");
    let again = build
        .project
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
    again.expect_success();
    // Compiled clean, its image built and compared (layers, run config),
    // nothing pushed.
    assert!(
        again.stderr.contains("/bin/cargo build --manifest-path "),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains(&format!(
            "/api sha256 {}): adopted, nothing pushed",
            build.binary_sha256()
        )),
        "{}",
        again.stderr
    );
    assert!(!again.stderr.contains("$ docker push"), "{}", again.stderr);
    let second = again.last_json();
    assert_eq!(second["pushed"], Value::Bool(false));
    assert_eq!(field(&second, "image_digest"), build.digest());
    assert_eq!(field(&second, "binary_sha256"), build.binary_sha256());
    assert_eq!(second["layer_diff_id"], build.record["layer_diff_id"]);
    assert_eq!(read_json(&out.join("m.json")), second);
    assert_eq!(image_tags(&build.registry.tags(CANONICAL)), tags_before);
    assert_eq!(
        build.registry.digest(CANONICAL, build.sha()).as_deref(),
        Some(build.digest())
    );
}

/// A ci-build of the tiny commit with `--repository <registry>/<path>`.
fn ci_build_into(build: &TinyBuild, path: &str, extra: &[&str], out: &TempDir) -> Run {
    let out_file = out.join("m.json").display().to_string();
    let canonical = build.registry.repo(path);
    let staging = build.registry.repo(&format!("{path}-staging"));
    let mut argv = vec![
        "ci-build",
        "--json",
        "--out",
        &out_file,
        "--repository",
        &canonical,
        "--staging-repository",
        &staging,
    ];
    argv.extend_from_slice(extra);
    build
        .project
        .xtask_cmd(&argv)
        .path(path_without(&["cosign"]))
        .run()
}

#[test]
fn a_hand_pushed_tag_naming_another_commit_is_refused_before_compiling() {
    let build = tiny_build();
    let path = "hand/api";
    let tag = format!("{}:{}", build.registry.repo(path), build.sha());
    let other = "1234abcd".repeat(5);
    docker_build_labelled(
        &tag,
        "made by hand\n",
        &[("org.opencontainers.image.revision", &other)],
    );
    docker_ok(&["push", &tag]);
    let before = build.registry.digest(path, build.sha()).expect("pushed");

    let out = TempDir::new("hand");
    let run = ci_build_into(build, path, &[], &out);
    let error = run.single_error();
    assert!(
        error.contains(&other) && error.contains(build.sha()),
        "names both SHAs: {error}"
    );
    assert!(
        error.contains("refusing to adopt") && error.contains("--force"),
        "{error}"
    );
    assert!(
        !run.stderr.contains("/bin/cargo build "),
        "refused before compiling:\n{}",
        run.stderr
    );
    assert_eq!(
        build.registry.digest(path, build.sha()),
        Some(before),
        "tag untouched"
    );
    assert!(!out.join("m.json").exists(), "no record");
    assert!(run.stdout.trim().is_empty(), "no JSON line");
}

#[test]
fn a_swapped_binary_under_the_original_labels_is_refused_and_force_rebuilds_it() {
    let build = tiny_build();
    let path = "swap/api";
    let tag = format!("{}:{}", build.registry.repo(path), build.sha());
    // FROM the real image: every label (revision, binary sha256) inherited.
    let swapped = b"#!/bin/true\nnot the binary the commit builds\n";
    docker_build_swapped(&build.tag(), &tag, swapped);
    docker_ok(&["push", &tag]);
    let swapped_digest = build.registry.digest(path, build.sha()).expect("pushed");
    let dir = TempDir::new("swapped");
    std::fs::write(dir.join("swapped"), swapped).expect("write");
    let swapped_sha256 = sha256sum(&dir.join("swapped"));

    let out = TempDir::new("swap");
    let run = ci_build_into(build, path, &[], &out);
    let error = run.single_error();
    assert!(
        error.contains(&swapped_sha256) && error.contains(build.binary_sha256()),
        "names the image's /api sha256 and the clean build's: {error}"
    );
    assert!(error.contains("refusing to adopt"), "{error}");
    assert!(!out.join("m.json").exists(), "no record");
    assert_eq!(
        build.registry.digest(path, build.sha()).as_deref(),
        Some(swapped_digest.as_str())
    );

    // --force: built clean and pushed over it, said loudly.
    let forced = ci_build_into(build, path, &["--force"], &out);
    forced.expect_success();
    assert!(
        forced.stderr.contains("will be OVERWRITTEN"),
        "{}",
        forced.stderr
    );
    let record = forced.last_json();
    assert_eq!(record["pushed"], Value::Bool(true));
    assert_eq!(field(&record, "binary_sha256"), build.binary_sha256());
    let now = build.registry.digest(path, build.sha()).expect("pushed");
    assert_ne!(now, swapped_digest);
    let api = extract_api(&format!("{}@{now}", build.registry.repo(path)), &dir);
    assert_eq!(sha256sum(&api), build.binary_sha256());
}

// ---------------------------------------------- what a careless operator does

#[test]
fn an_edit_hidden_by_assume_unchanged_is_not_built() {
    let registry = Registry::start();
    let docker = DockerGuard::new();
    docker.images_under(&format!("{}/", registry.host()));
    let project = Project::tiny();
    project.git(&["update-index", "--assume-unchanged", "api/src/main.rs"]);
    let committed = std::fs::read_to_string(project.root().join("api/src/main.rs")).expect("read");
    let edited = committed.replace("marker:as-committed", "marker:edited-not-committed");
    project.write("api/src/main.rs", &edited);
    assert_eq!(
        project.git(&["status", "--porcelain"]),
        "",
        "git cannot see the edit"
    );

    let run = project
        .xtask_cmd(&args(
            &["ci-build", "--json"],
            &repo_flags(|p| registry.repo(p)),
        ))
        .path(path_without(&["cosign"]))
        .run();
    run.expect_success();
    assert!(
        run.stderr.contains("hidden from `git status`") && run.stderr.contains("api/src/main.rs"),
        "says so:\n{}",
        run.stderr
    );
    let record = run.last_json();
    let dir = TempDir::new("hidden-edit");
    let api = extract_api(field(&record, "image_ref"), &dir);
    let out = std::process::Command::new(&api)
        .output()
        .expect("run the extracted binary");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("tiny api {} marker:as-committed", project.sha())),
        "the committed bytes were built: {said}"
    );
    assert!(!said.contains("edited"), "{said}");
    assert_eq!(
        std::fs::read_to_string(project.root().join("api/src/main.rs")).expect("read"),
        edited,
        "the user's file is left as it was"
    );
}

/// Start a tiny ci-build as a terminal job, wait until `ready(scratch
/// dirs)` says so, press Ctrl-C (SIGINT to the whole job); then nothing may
/// be left: no checkout, no scratch dir, no tag, no record.
fn interrupt_when(label: &str, ready: impl Fn(&Path) -> bool) -> String {
    let registry = Registry::start();
    let docker = DockerGuard::new();
    docker.images_under(&format!("{}/", registry.host()));
    let project = Project::tiny();
    let tmp = TempDir::new("tmpdir");
    let child = project
        .xtask_cmd(&args(&["ci-build"], &repo_flags(|p| registry.repo(p))))
        .env("TMPDIR", tmp.path())
        .spawn_job();
    let reached = poll_until(Duration::from_secs(60), || {
        std::fs::read_dir(tmp.path())
            .ok()?
            .filter_map(Result::ok)
            .any(|e| ready(&e.path()))
            .then_some(())
    });
    let signalled = std::process::Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status()
        .expect("run kill");
    let out = child.wait_with_output().expect("wait for xtask");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        reached.is_some(),
        "{label}: not reached within 60 s:\n{stderr}"
    );
    assert!(signalled.success());
    assert!(
        !out.status.success(),
        "{label}: interrupted run succeeded:\n{stderr}"
    );
    let error: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert!(
        error.len() == 1 && error[0].starts_with("error: interrupted (Ctrl-C or SIGTERM)"),
        "{label}: one line that says why:\n{stderr}"
    );
    assert_eq!(
        project.git(&["worktree", "list"]).lines().count(),
        1,
        "{label}: the checkout is removed:\n{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("read tmp")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert!(
        left.is_empty(),
        "{label}: scratch dir removed: {left:?}\n{stderr}"
    );
    assert!(
        registry.tags(CANONICAL).is_empty(),
        "{label}: nothing pushed"
    );
    assert!(!project.metadata_path().exists(), "{label}: no record");
    stderr
}

#[test]
fn ctrl_c_during_the_build_removes_the_checkout_and_the_scratch_dir() {
    // While git is still checking the commit out.
    interrupt_when("during the checkout", |scratch| {
        scratch.join("src").exists()
    });
    // Once cargo has started writing into the empty target dir.
    let stderr = interrupt_when("during the compile", |scratch| {
        scratch.join("target/x86_64-unknown-linux-gnu").exists()
    });
    assert!(
        stderr.contains("$ env -i "),
        "the compile had started:\n{stderr}"
    );
}

#[test]
fn a_crate_archive_that_does_not_match_cargo_lock_is_refused() {
    let t = Refused::new();
    let lock = std::fs::read_to_string(t.project.root().join("Cargo.lock")).expect("Cargo.lock");
    // A dependency of the api, as the lock names it.
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"itoa\"\n"))
        .and_then(|p| {
            p.lines()
                .find_map(|l| l.strip_prefix("version = \"")?.strip_suffix('"'))
        })
        .expect("itoa in Cargo.lock");
    let home = TempDir::new("cargo-home");
    let cache = home.join("registry/cache/index.crates.io-0000000000000000");
    std::fs::create_dir_all(&cache).expect("mkdir");
    let poisoned = cache.join(format!("itoa-{version}.crate"));
    std::fs::write(&poisoned, "not what crates.io serves").expect("write");
    let tmp = TempDir::new("tmpdir");
    let run = t
        .project
        .xtask_cmd(&args(&["ci-build"], &t.flags()))
        .env("CARGO_HOME", home.path())
        .env("TMPDIR", tmp.path())
        .run();
    let error = run.single_error();
    assert!(
        error.contains(&poisoned.display().to_string())
            && error.contains("does not match Cargo.lock"),
        "names the file: {error}"
    );
    assert!(error.contains("delete that file"), "fix: {error}");
    assert!(
        !run.stderr.contains("$ env -i"),
        "nothing compiled:\n{}",
        run.stderr
    );
    assert_eq!(t.project.git(&["worktree", "list"]).lines().count(), 1);
    assert!(
        std::fs::read_dir(tmp.path()).expect("tmp").next().is_none(),
        "scratch dir removed"
    );
    t.assert_nothing_happened(&run);
}
