//! `cargo xtask verify-build` end to end: the real binary, the real Docker
//! engine, a real registry.
//!
//! One real rebuild: commit A of the shared world (`support/world.rs`),
//! built at the same time from a second clone at another path, must give
//! the binary and the layer A's ci-build pushed. `verify-build` itself is
//! run on B (the tiny api, a main build), from another clone. The rest use
//! the tiny api
//! (`support/world.rs`, `tiny_build`): a swapped binary, a digest taken
//! from a ledger, and the one-line refusals that come before any build.

use std::path::Path;

use crate::support::world::{CANONICAL, tiny_build, world};
use crate::support::*;
use serde_json::Value;

fn field<'a>(record: &'a Value, name: &str) -> &'a str {
    record[name]
        .as_str()
        .unwrap_or_else(|| panic!("`{name}` is not a string in {record}"))
}

/// The directory a build compiled in (its `CARGO_HOME=<scratch>/cargo`).
fn scratch(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.split(" CARGO_HOME=").nth(1))
        .map(|rest| rest.split("/cargo ").next().unwrap_or("").to_owned())
        .expect("a compile line")
}

#[test]
fn a_clone_at_another_path_rebuilds_the_same_binary_and_layer() {
    let w = world();
    let twin = &w.a_twin;
    eprintln!(
        "FIGURE the real api's clean build: A {:.1}s, its twin {:.1}s (side by side)",
        w.a.build_seconds, twin.build_seconds
    );
    assert_eq!(twin.sha, w.a.sha);
    for name in ["binary_sha256", "layer_diff_id"] {
        assert_eq!(
            twin.record[name], w.a.record[name],
            "{name}: {}\n{}",
            twin.record, w.a.record
        );
    }
    // Two clones at two paths, two scratch dirs: the build did not depend
    // on where it ran.
    assert_ne!(scratch(&w.a.stderr), scratch(&twin.stderr));
    // The image config is not reproduced: the legacy builder stamps the
    // time of the build into it, so the manifest digest differs (issue 24).
    eprintln!(
        "FIGURE a rebuild of A: same binary and layer; manifest digest {} ({} vs {})",
        if twin.digest == w.a.digest {
            "the same"
        } else {
            "differs"
        },
        w.a.digest,
        twin.digest
    );
}

#[test]
fn verify_build_of_a_main_build_from_another_clone_matches() {
    let w = world();
    let v = &w.verified_b;
    eprintln!(
        "verify-build of B took {:.1}s; B's ci-build took {:.1}s",
        v.seconds, w.b.build_seconds
    );
    let record = &v.record;
    let binary = field(&w.b.record, "binary_sha256");
    let layer = field(&w.b.record, "layer_diff_id");
    assert_eq!(record["record"], "verify-build");
    assert_eq!(record["match"], Value::Bool(true), "{record}\n{}", v.stderr);
    assert_eq!(field(record, "image_sha"), w.b.sha);
    assert_eq!(field(record, "image_digest"), w.b.digest);
    assert_eq!(field(record, "digest_from"), "registry");
    assert_eq!(record["binary_sha256"]["built"], binary, "{record}");
    assert_eq!(record["binary_sha256"]["image"], binary, "{record}");
    assert_eq!(
        record["layer_diff_ids"]["built"],
        serde_json::json!([layer])
    );
    assert_eq!(
        record["layer_diff_ids"]["image"],
        serde_json::json!([layer])
    );
    assert_eq!(record["revision_label"], w.b.sha.as_str());
    assert!(
        v.stderr
            .contains(&format!("match: {}@{}", w.canonical, w.b.digest))
            && v.stderr.contains(binary),
        "{}",
        v.stderr
    );
    assert_ne!(scratch(&w.b.stderr), scratch(&v.stderr));
    assert_ne!(v.clone.root(), w.project.root());
    // The user's checkout is neither read nor changed.
    assert_eq!(v.clone.git(&["status", "--porcelain", "--ignored"]), "");
    assert_eq!(v.clone.git(&["worktree", "list"]).lines().count(), 1);
}

#[test]
fn a_swapped_binary_fails_naming_both_hashes() {
    let build = tiny_build();
    let path = "swap-verify/api";
    let tag = format!("{}:{}", build.registry.repo(path), build.sha());
    let swapped = b"#!/bin/true\nswapped after the build\n";
    docker_build_swapped(&build.tag(), &tag, swapped);
    docker_ok(&["push", &tag]);
    let dir = TempDir::new("verify-swapped");
    std::fs::write(dir.join("swapped"), swapped).expect("write");
    let swapped_sha256 = sha256sum(&dir.join("swapped"));

    let run = build.project.xtask(&[
        "verify-build",
        build.sha(),
        "--repository",
        &build.registry.repo(path),
        "--json",
    ]);
    let error = run.single_error();
    assert_eq!(run.code(), Some(1));
    assert!(
        error.contains(&swapped_sha256) && error.contains(build.binary_sha256()),
        "names both hashes: {error}"
    );
    assert!(error.contains("Do not deploy it"), "{error}");
    let record = run.last_json();
    assert_eq!(record["match"], Value::Bool(false));
    assert_eq!(record["binary_sha256"]["image"], swapped_sha256.as_str());
    assert_eq!(record["binary_sha256"]["built"], build.binary_sha256());
    assert_eq!(
        record["binary_label"],
        build.binary_sha256(),
        "the label was inherited and says nothing about the swap"
    );
    let layers = &record["layer_diff_ids"];
    assert_eq!(
        layers["built"],
        serde_json::json!([build.record["layer_diff_id"]])
    );
    assert_eq!(
        layers["image"].as_array().map(Vec::len),
        Some(2),
        "the real layer and the swap on top: {layers}"
    );
}

/// A complete deploy of the tiny image in `<state>/ledger/<env>.jsonl`, as
/// `deploy` writes it (docs/log-schema.md).
fn write_ledger(state: &Path, env: &str, sha: &str, repository: &str, digest: &str) {
    let line = serde_json::json!({
        "record": "deploy",
        "id": format!("20261123T113434.706Z-{}", &sha[..12]),
        "status": "complete",
        "environment": env,
        "target": "docker",
        "image_sha": sha,
        "image_digest": digest,
        "repository": repository,
        "image_ref": format!("{repository}:{sha}@{digest}"),
        "previous_sha": null,
        "previous_release": null,
        "signature_status": "unverified",
        "signature_reason": "cosign not found",
        "initiated_by": "xtask-tests@example.invalid",
        "deployment_ref": "b0d47695659a",
        "url": "http://127.0.0.1:18080",
        "config": null,
        "verified": {"health": true, "sha": true},
        "started_at": "2026-11-23T11:34:34Z",
        "duration_sec": 0.3,
        "at": "2026-11-23T11:34:35Z"
    });
    let dir = state.join("ledger");
    std::fs::create_dir_all(&dir).expect("ledger dir");
    std::fs::write(dir.join(format!("{env}.jsonl")), format!("{line}\n")).expect("ledger");
}

#[test]
fn with_env_the_ledger_names_the_digest_that_is_checked() {
    let build = tiny_build();
    let repository = build.registry.repo(CANONICAL);

    // What runs in staging, by the ledger: the tiny image. No SHA given.
    let state = TempDir::new("verify-ledger");
    write_ledger(
        state.path(),
        "staging",
        build.sha(),
        &repository,
        build.digest(),
    );
    let run = build
        .project
        .xtask_cmd(&["verify-build", "--env", "staging", "--json"])
        .env("XTASK_STATE_DIR", state.path())
        .run();
    run.expect_success();
    let record = run.last_json();
    assert_eq!(record["match"], Value::Bool(true), "{record}");
    assert_eq!(field(&record, "digest_from"), "ledger");
    assert_eq!(field(&record, "environment"), "staging");
    assert_eq!(field(&record, "image_digest"), build.digest());

    // The ledger recorded another digest than the tag's (a swapped image was
    // deployed by digest): that digest is the one checked.
    let path = "swap-ledger/api";
    let tag = format!("{}:swapped", build.registry.repo(path));
    docker_build_swapped(&build.tag(), &tag, b"deployed, not built\n");
    docker_ok(&["push", &tag]);
    let swapped = build.registry.digest(path, "swapped").expect("pushed");
    let state = TempDir::new("verify-ledger-swapped");
    write_ledger(
        state.path(),
        "production",
        build.sha(),
        &build.registry.repo(path),
        &swapped,
    );
    let run = build
        .project
        .xtask_cmd(&["verify-build", build.sha(), "--env", "production"])
        .env("XTASK_STATE_DIR", state.path())
        .run();
    let error = run.single_error();
    assert!(
        error.contains(&swapped) && error.contains(build.binary_sha256()),
        "{error}"
    );
}

#[test]
fn refusals_come_in_one_line_before_anything_is_built() {
    let registry = Registry::start();
    let project = Project::tiny();
    let sha = project.sha();
    let repository = registry.repo("nothing/api");

    let mut printed = String::new();

    // In git, not in the registry.
    let run = project.xtask(&["verify-build", &sha, "--repository", &repository]);
    let error = run.single_error();
    assert!(
        error.contains(&format!("{repository}:{sha} is not in the registry")),
        "{error}"
    );
    assert!(error.contains("ci-build"), "fix: {error}");
    printed.push_str(&run.stderr);

    // Not in git.
    let unknown = "feedface".repeat(5);
    let run = project.xtask(&["verify-build", &unknown, "--repository", &repository]);
    let error = run.single_error();
    assert!(
        error.contains(&format!("commit {unknown} is not in this clone's history"))
            && error.contains("git fetch"),
        "{error}"
    );
    printed.push_str(&run.stderr);

    // No release in the ledger.
    let state = TempDir::new("empty-state");
    let run = project
        .xtask_cmd(&["verify-build", "--env", "production"])
        .env("XTASK_STATE_DIR", state.path())
        .run();
    assert!(run.single_error().contains("the production ledger"));
    printed.push_str(&run.stderr);

    // Neither a SHA nor an environment; a short SHA: usage errors.
    project.xtask(&["verify-build"]).expect_code(2);
    let run = project.xtask(&["verify-build", &sha[..12]]);
    run.expect_code(2);
    assert!(run.single_error().contains("full 40-character SHA"));

    assert!(
        !printed.contains("$ env -i"),
        "nothing compiled:\n{printed}"
    );
    assert_eq!(project.git(&["worktree", "list"]).lines().count(), 1);
}
