//! `cargo xtask release vX.Y.Z` end to end: the real binary, the real Docker
//! engine, a real `docker-registry`, and coreutils. The images
//! are deploy.rs's shared world (A and B on main, F on a feature branch):
//! a release never builds, so these tests build nothing of their own.
//!
//! Each test tags its own version numbers in the world's project (v1.* for
//! the happy path, v2.* for the moved tag, v3.* for refusals), so tests run
//! in parallel without reading each other's tags as a previous version.

use std::path::Path;
use std::process::Command;

use crate::deploy::{Stage, world};
use crate::support::*;

const PATH: &str = "it/api";

fn release(stage: &Stage, args: &[&str]) -> Run {
    stage.xtask(args).run()
}

/// An annotated tag (as a release needs), created in the world's project.
fn tag_annotated(tag: &str, sha: &str) {
    world()
        .project
        .git(&["tag", "-a", tag, "-m", &format!("release {tag}"), sha]);
}

/// `<tool> -c <sums>` run for real in `dir`; its status and output.
fn check_sums(dir: &Path, tool: &str, sums: &str) -> (bool, String) {
    let out = Command::new(tool)
        .args(["-c", sums])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    (out.status.success(), printed(&out))
}

/// `/api` copied out of `image` by this test (docker create, cp, rm).
fn api_from_image(image: &str, dest: &Path) -> Vec<u8> {
    let id = docker_ok(&["create", image]);
    let id = id.trim();
    let copied = docker(&["cp", &format!("{id}:/api"), &dest.display().to_string()]);
    docker_ok(&["rm", id]);
    assert!(copied.status.success(), "docker cp: {}", printed(&copied));
    std::fs::read(dest).expect("the copied binary")
}

#[test]
fn a_version_is_the_shas_digest_with_verified_artifacts_and_a_rerun_is_a_noop() {
    let w = world();
    let stage = Stage::new("version-happy");
    tag_annotated("v1.0.0", &w.a.sha);
    tag_annotated("v1.1.0", &w.b.sha);

    let run = release(&stage, &["release", "v1.1.0", "--json"]);
    run.expect_success();
    let record = run.last_json();
    assert_eq!(record["promotion"], "pushed", "{record}");
    assert_eq!(record["image_sha"], w.b.sha.as_str());
    assert_eq!(record["previous_version"], "v1.0.0");
    // The version tag, read back from the registry over raw HTTP, is the
    // SHA tag's digest: promoted, not rebuilt.
    assert_eq!(
        w.registry.digest(PATH, "1.1.0").as_deref(),
        Some(w.b.digest.as_str())
    );
    assert_eq!(
        w.registry.digest(PATH, &w.b.sha).as_deref(),
        Some(w.b.digest.as_str())
    );
    assert!(
        !w.registry
            .tags(PATH)
            .iter()
            .any(|t| t == "latest" || t == "1.1"),
        "no floating tags: {:?}",
        w.registry.tags(PATH)
    );
    assert!(
        !run.stderr.contains("docker build"),
        "a release never builds"
    );

    let dir = stage.state.join("release/1.1.0");
    for (tool, sums) in [("sha256sum", "SHA256SUMS"), ("sha512sum", "SHA512SUMS")] {
        let (ok, said) = check_sums(&dir, tool, sums);
        assert!(ok, "{tool} -c {sums} in {}: {said}", dir.display());
        assert!(said.contains("api-1.1.0-x86_64-linux: OK"), "{said}");
    }
    let binary = std::fs::read(dir.join("api-1.1.0-x86_64-linux")).expect("binary artifact");
    let scratch = TempDir::new("version-api");
    let from_image = api_from_image(
        &format!("{}@{}", w.canonical, w.b.digest),
        &scratch.join("api"),
    );
    assert!(
        binary.len() > 100_000,
        "a static binary (B's api is the tiny one): {} bytes",
        binary.len()
    );
    assert!(
        binary == from_image,
        "the attached binary is the image's /api"
    );
    // B is not attested and no ci-build record of it is here: no SBOM is
    // shipped rather than a fresh syft run (proof.rs ships an attested one).
    assert!(
        record["sbom_source"]
            .as_str()
            .is_some_and(|x| x.starts_with("none")),
        "{record}"
    );
    assert!(!dir.join("api-1.1.0.spdx.json").exists());
    let notes = std::fs::read_to_string(dir.join("notes.md")).expect("notes");
    assert!(notes.starts_with("# v1.1.0\n"), "{notes}");
    assert!(notes.contains(&w.b.digest), "{notes}");
    assert!(notes.contains("Changes since v1.0.0:"), "{notes}");
    assert!(notes.contains("- second commit, the tiny api ("), "{notes}");

    // A changed byte is caught by the sums (they check something).
    let mut tampered = binary.clone();
    tampered[binary.len() / 2] ^= 0xff;
    std::fs::write(dir.join("api-1.1.0-x86_64-linux"), &tampered).expect("tamper");
    let (ok, said) = check_sums(&dir, "sha256sum", "SHA256SUMS");
    assert!(!ok, "a tampered binary passed sha256sum -c: {said}");

    // Again, same version and SHA: nothing pushed, said so, same digest,
    // the artifacts written again (so a CI re-run can attach them).
    let again = release(&stage, &["release", "v1.1.0", "--json", "--sha", &w.b.sha]);
    again.expect_success();
    assert_eq!(again.last_json()["promotion"], "already-there");
    assert!(
        again.stderr.contains("nothing to promote"),
        "{}",
        again.stderr
    );
    assert!(!again.stderr.contains("$ docker push"), "{}", again.stderr);
    assert_eq!(
        w.registry.digest(PATH, "1.1.0").as_deref(),
        Some(w.b.digest.as_str())
    );
    let (ok, said) = check_sums(&dir, "sha512sum", "SHA512SUMS");
    assert!(ok, "re-run rewrote the artifacts: {said}");
}

#[test]
fn a_second_sha_claiming_a_released_version_is_refused_and_the_tag_stays() {
    let w = world();
    let stage = Stage::new("version-moved");
    tag_annotated("v2.0.0", &w.a.sha);
    release(&stage, &["release", "v2.0.0"]).expect_success();
    assert_eq!(
        w.registry.digest(PATH, "2.0.0").as_deref(),
        Some(w.a.digest.as_str())
    );

    // The git tag is moved to B: the registry's version tag is not.
    w.project.git(&["tag", "-d", "v2.0.0"]);
    tag_annotated("v2.0.0", &w.b.sha);
    let moved = release(&stage, &["release", "v2.0.0"]);
    let err = moved.single_error();
    assert!(err.contains("never moved"), "{err}");
    assert!(
        err.contains(&w.a.digest) && err.contains(&w.b.digest),
        "{err}"
    );
    assert!(!moved.stderr.contains("$ docker push"), "{}", moved.stderr);
    assert_eq!(
        w.registry.digest(PATH, "2.0.0").as_deref(),
        Some(w.a.digest.as_str())
    );

    // --sha that is not the tag's commit: refused before the registry.
    let wrong = release(&stage, &["release", "v2.0.0", "--sha", &w.a.sha]);
    let err = wrong.single_error();
    assert!(err.contains("not the --sha"), "{err}");
}

#[test]
fn bad_versions_and_tags_are_refused_and_nothing_is_pushed() {
    let w = world();
    let stage = Stage::new("version-refused");
    for bad in ["1.2", "v1.2.3-", "latest", "v1.2", "1.2.3"] {
        let run = stage.xtask(&["release", bad]).run();
        run.expect_code(2);
        let err = run.single_error();
        assert!(err.contains("version"), "{bad}: {err}");
    }
    w.project.git(&["tag", "v3.0.0", &w.b.sha]);
    let err = release(&stage, &["release", "v3.0.0"])
        .single_error()
        .to_owned();
    assert!(
        err.contains("lightweight") && err.contains("git tag -a"),
        "{err}"
    );

    let err = release(&stage, &["release", "v3.1.0"])
        .single_error()
        .to_owned();
    assert!(err.contains("no git tag v3.1.0"), "{err}");

    tag_annotated("v3.2.0", &w.feature.sha);
    let err = release(&stage, &["release", "v3.2.0"])
        .single_error()
        .to_owned();
    assert!(err.contains("not on refs/heads/main"), "{err}");

    tag_annotated("v3.3.0", &w.b.sha);
    let empty = w.registry.repo("it/never-built");
    let run = stage
        .xtask(&["release", "v3.3.0", "--repository", &empty])
        .run();
    let err = run.single_error();
    assert!(
        err.contains("does not exist") && err.contains("ci-build"),
        "{err}"
    );

    let tags = w.registry.tags(PATH);
    assert!(
        !tags.iter().any(|t| t.starts_with("3.")),
        "a refusal pushes nothing: {tags:?}"
    );
    assert!(
        !stage.state.join("release").exists(),
        "a refusal writes nothing"
    );
}
