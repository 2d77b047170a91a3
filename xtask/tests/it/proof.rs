//! The proof bound to the commit (issue 24), tried as a hostile operator
//! would: the world's real images copied into repositories of their own,
//! relabelled, swapped, re-tagged and deleted in the REAL registry, signed
//! and attested with the fake cosign's real P-256 signatures. Each case
//! would have gone through before: a deploy, rollback or version on bytes
//! whose proof names another commit.
//!
//! Few tests, each a story, so the shared world's images are reused and
//! few containers are started.

use std::path::PathBuf;

use crate::deploy::world;
use crate::support::world::Built;
use crate::support::*;
use serde_json::{Value, json};
use test_fakes::registry::Registry as Client;

const STRICT: &str = r#"{"signature":"strict","sbom":"strict","provenance":"strict"}"#;

/// A distinctive SPDX document: what is attested, and what a release must
/// ship (syft would never write this package).
fn spdx(marker: &str) -> Value {
    json!({"spdxVersion": "SPDX-2.3", "name": marker, "packages": [
        {"name": "axum", "externalRefs": [{"referenceType": "purl", "referenceLocator": "pkg:cargo/axum@0.8.4"}]},
        {"name": marker, "externalRefs": []}]})
}

/// What ci-build's provenance says (crate::supply::provenance's shape).
fn provenance(commit: &str, binary: &str, git_ref: &str) -> Value {
    json!({"buildDefinition": {
        "buildType": "test",
        "externalParameters": {"repository": "x", "ref": git_ref, "sha": commit},
        "resolvedDependencies": [
            {"uri": format!("git+x@{git_ref}"), "digest": {"gitCommit": commit}},
            {"name": "api", "uri": "file:/api", "digest": {"sha256": binary}}]},
        "runDetails": {"builder": {"id": "test"}}})
}

fn binary_of(b: &Built) -> String {
    b.record["binary_sha256"]
        .as_str()
        .expect("binary_sha256")
        .to_owned()
}

/// One story's registry paths, keys, state and config.
struct Story {
    path: String,
    repo: String,
    cosign: FakeCosign,
    private: PathBuf,
    public: PathBuf,
    state: TempDir,
    config: PathBuf,
    client: Client,
    _containers: DockerGuard,
    _images: DockerGuard,
}

impl Story {
    /// `policies`: (staging, production) policy objects.
    fn new(label: &str, staging: Value, production: Value) -> Story {
        let w = world();
        let path = format!("proof/{label}");
        let repo = w.registry.repo(&path);
        let cosign = FakeCosign::new();
        let (private, public) = cosign.key_pair("release");
        let state = TempDir::new(&format!("proof-{label}"));
        let containers = DockerGuard::new();
        let mut envs = serde_json::Map::new();
        for (env, policy) in [("staging", staging), ("production", production)] {
            let name = format!("xtask-it-proof-{label}-{}-{env}", std::process::id());
            // Its proxy and every release container it starts.
            containers.environment(&name);
            envs.insert(
                env.into(),
                json!({"port": free_port(), "container": name, "env": {"API_LOG": "warn"}, "policy": policy}),
            );
        }
        let config = state.join("release.json");
        std::fs::write(&config, json!({"environments": envs}).to_string()).expect("config");
        let images = DockerGuard::new();
        images.images_under(&format!("{repo}:"));
        Story {
            client: Client::new(&w.registry.host()).expect("loopback"),
            path,
            repo,
            cosign,
            private,
            public,
            state,
            config,
            _containers: containers,
            _images: images,
        }
    }

    /// Push `local` under `<repo>:<tag>`; its digest.
    fn push(&self, local: &str, tag: &str) -> String {
        let target = format!("{}:{tag}", self.repo);
        docker_ok(&["tag", local, &target]);
        docker_ok(&["push", &target]);
        world()
            .registry
            .digest(&self.path, tag)
            .expect("pushed and read back")
    }

    /// Sign `digest` and attest an SBOM and `provenance`.
    fn sign_and_attest(&self, digest: &str, sbom: &Value, provenance: &Value) {
        let image = format!("{}@{digest}", self.repo);
        self.cosign.sign(&self.private, &image);
        for (kind, body) in [("spdxjson", sbom), ("slsaprovenance1", provenance)] {
            let file = self.cosign.state_dir().join(format!("{kind}.json"));
            std::fs::write(&file, body.to_string()).expect("predicate");
            self.cosign.attest(&self.private, &image, kind, &file);
        }
    }

    fn xtask(&self, args: &[&str]) -> Xtask {
        world()
            .project
            .xtask_cmd(args)
            .path(path_without(&["cosign"]))
            .fake_cosign(&self.cosign)
            .env("COSIGN_PUBLIC_KEY", &self.public)
            .env("XTASK_STATE_DIR", self.state.path())
            .env("XTASK_CONFIG", &self.config)
            .env("XTASK_REPOSITORY", &self.repo)
            .env("XTASK_STAGING_REPOSITORY", format!("{}-staging", self.repo))
    }

    fn run(&self, args: &[&str]) -> Run {
        self.xtask(args).run()
    }

    fn ledger(&self, env: &str) -> Vec<Value> {
        std::fs::read_to_string(self.state.join(format!("ledger/{env}.jsonl")))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("ledger line"))
            .collect()
    }

    /// The image the environment serves, as the target reports it
    /// (`status --json`: the release behind the proxy), `None` when none.
    fn running_image(&self, env: &str) -> Option<String> {
        let run = self.run(&["status", "--env", env, "--json"]);
        let line = run.stdout.lines().last()?;
        let status: serde_json::Value = serde_json::from_str(line).ok()?;
        status["image_ref"].as_str().map(str::to_owned)
    }
}

/// A refusal before the target was touched: the error names `needles`,
/// nothing runs in `env`, and the ledger's last line is `refused`, with
/// who and why, which `history` marks.
fn assert_refused(s: &Story, run: &Run, env: &str, needles: &[&str]) {
    let error = run.single_error().to_owned();
    for n in needles {
        assert!(error.contains(n), "`{n}` not in: {error}");
    }
    assert!(error.contains("refusing"), "says it refused: {error}");
    let last = s.ledger(env).pop().expect("the refusal is in the ledger");
    assert_eq!(last["status"], "refused", "{last}");
    assert!(
        last["initiated_by"].as_str().is_some_and(|w| !w.is_empty()),
        "{last}"
    );
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains(needles[0])),
        "{last}"
    );
    let history = s.run(&["history", "--env", env]);
    history.expect_success();
    assert!(
        history.stdout.contains("refused")
            && history
                .stdout
                .contains("REFUSED before the target was touched"),
        "{}",
        history.stdout
    );
}

/// Items 2, 3, 6 and 11: the label is read first; strict binds the
/// provenance to the SHA and the binary label; production takes only
/// commits of main, asked of git; each refusal is a ledger line.
#[test]
fn the_proof_must_name_this_commit_and_these_bytes_before_the_target_is_touched() {
    let w = world();
    let strict: Value = serde_json::from_str(STRICT).expect("policy");
    let s = Story::new("bind", strict.clone(), json!({}));
    let a_local = format!("{}:{}", w.canonical, w.a.sha);
    let a_binary = binary_of(&w.a);

    // (2, 6) A's correctly signed, attested image under B's tag: the label
    // and the provenance both name A. Strict: refused, nothing touched.
    let moved = s.push(&a_local, &w.b.sha);
    s.sign_and_attest(
        &moved,
        &spdx("moved"),
        &provenance(&w.a.sha, &a_binary, "refs/heads/main"),
    );
    let run = s.run(&["deploy", &w.b.sha, "--env", "staging"]);
    assert_refused(
        &s,
        &run,
        "staging",
        &[
            &format!("its revision label says it was built from {}", w.a.sha),
            &format!("its signed provenance names commit {}", w.a.sha),
        ],
    );
    assert_eq!(s.running_image("staging"), None, "the target was touched");

    // (2) Relabelled as B (the label agrees), the signed provenance still A's.
    let relabelled = format!("{}:relabelled-b", s.repo);
    docker_build_relabelled(
        &a_local,
        &relabelled,
        &[("org.opencontainers.image.revision", &w.b.sha)],
    );
    let digest = s.push(&relabelled, &w.b.sha);
    s.sign_and_attest(
        &digest,
        &spdx("relabelled"),
        &provenance(&w.a.sha, &a_binary, "refs/heads/main"),
    );
    let run = s.run(&["deploy", &w.b.sha, "--env", "staging"]);
    let error = run.single_error();
    assert!(
        error.contains(&format!(
            "its signed provenance names commit {}, not {}",
            w.a.sha, w.b.sha
        )) && !error.contains("revision label says"),
        "{error}"
    );
    assert_eq!(s.running_image("staging"), None);

    // (6) Soft: the same lying label is refused before the target is
    // touched (before, it replaced the release and /version caught it).
    let soft = Story::new("bind-soft", json!({}), json!({}));
    soft.push(&a_local, &w.b.sha);
    let run = soft.run(&["deploy", &w.b.sha, "--env", "staging"]);
    assert_refused(
        &soft,
        &run,
        "staging",
        &["its revision label says it was built from"],
    );
    assert!(!run.stderr.contains("$ docker run"), "{}", run.stderr);
    assert_eq!(soft.running_image("staging"), None);

    // (3) The branch commit F copied into the canonical repository: git
    // knows F is not on main, whatever repository holds it.
    let f_local = format!("{}:{}", w.staging, w.feature.sha);
    soft.push(&f_local, &w.feature.sha);
    let run = soft.run(&["deploy", &w.feature.sha, "--env", "production"]);
    assert_refused(
        &soft,
        &run,
        "production",
        &[
            "production takes only commits of main",
            "is not on refs/heads/main",
        ],
    );
    assert_eq!(soft.running_image("production"), None);

    // And the genuine article passes all of it, strict, into production
    // (git places A on main; provenance, label and SHA agree).
    let good = Story::new("bind-good", json!({}), strict);
    let digest = good.push(&a_local, &w.a.sha);
    good.sign_and_attest(
        &digest,
        &spdx("good"),
        &provenance(&w.a.sha, &a_binary, "refs/heads/main"),
    );
    let run = good.run(&["deploy", &w.a.sha, "--env", "production", "--json"]);
    run.expect_success();
    let release = run.last_json();
    for check in ["signature", "sbom", "provenance"] {
        assert_eq!(release[format!("{check}_status")], "verified", "{release}");
    }
    assert!(
        run.stderr.contains("is on refs/heads/main"),
        "{}",
        run.stderr
    );
}

/// Items 4, 5, 7 (the recorded digest when the tag is gone) and 9: a SHA a
/// ledger knows is the bytes it was released at.
#[test]
fn a_released_sha_is_its_recorded_digest_and_rollback_takes_the_strictest() {
    let w = world();
    let s = Story::new("ledger", json!({}), json!({}));
    let a_local = format!("{}:{}", w.canonical, w.a.sha);
    let genuine = s.push(&a_local, &w.a.sha);
    s.sign_and_attest(
        &genuine,
        &spdx("genuine"),
        &provenance(&w.a.sha, &binary_of(&w.a), "refs/heads/main"),
    );
    let b_digest = s.push(&format!("{}:{}", w.canonical, w.b.sha), &w.b.sha);

    // (4) Production never ran B and no ledger knows it: the registry alone
    // is not trusted (soft policy); the fix is named.
    let run = s.run(&["rollback", &w.b.sha, "--env", "production"]);
    let error = run.single_error();
    assert!(
        error.contains("never released to production") && error.contains("--expect-digest"),
        "{error}"
    );
    // With the digest its build recorded, it goes ahead (checked, dry run).
    let run = s.run(&[
        "rollback",
        &w.b.sha,
        "--env",
        "production",
        "--expect-digest",
        &b_digest,
        "--dry-run",
    ]);
    run.expect_success();

    s.run(&["deploy", &w.a.sha, "--env", "staging"])
        .expect_success();
    // (4) Now staging's ledger has A's digest: production may take it.
    let run = s.run(&["rollback", &w.a.sha, "--env", "production", "--dry-run"]);
    run.expect_success();
    assert!(
        run.stderr
            .contains(&format!("recorded its digest {genuine}")),
        "{}",
        run.stderr
    );

    // (5) A's tag re-pointed at a rebuild with one extra label: a plain
    // deploy refuses (it used to deploy it with a warning), naming the
    // explicit way.
    let extra = format!("{}:extra-label", s.repo);
    docker_build_relabelled(&a_local, &extra, &[("org.example.extra", "1")]);
    let tampered = s.push(&extra, &w.a.sha);
    assert_ne!(tampered, genuine);
    let run = s.run(&["deploy", &w.a.sha, "--env", "staging"]);
    assert_refused(
        &s,
        &run,
        "staging",
        &["the tag was moved", &format!("--expect-digest {tampered}")],
    );
    // Said explicitly, it deploys (soft: unsigned, recorded so).
    s.run(&[
        "deploy",
        &w.a.sha,
        "--env",
        "staging",
        "--expect-digest",
        &tampered,
    ])
    .expect_success();
    s.run(&["deploy", &w.b.sha, "--env", "staging"])
        .expect_success();

    // (7) The tag is gone from the registry (its manifest deleted); the
    // genuine digest is still held, untagged.
    let m = s
        .client
        .manifest(&s.path, &tampered)
        .expect("get")
        .expect("there");
    s.client
        .delete_manifest(&s.path, &m.digest)
        .expect("delete");
    assert_eq!(
        w.registry.digest(&s.path, &w.a.sha),
        None,
        "the tag is gone"
    );

    // (9) A was released at two digests: flagged; the rollback takes the one
    // that passed the most checks (3 of 3), not the newest (0 of 3).
    let run = s.run(&["rollback", &w.a.sha, "--env", "staging", "--json"]);
    run.expect_success();
    assert!(
        run.stderr.contains("was released at 2 different digests"),
        "{}",
        run.stderr
    );
    // By the recorded digest from the registry, or (the docker target)
    // from the retained container holding it: the same bytes either way.
    assert!(
        run.stderr.contains("rolling back by the recorded digest")
            || run.stderr.contains("rolling back without the registry"),
        "{}",
        run.stderr
    );
    let record = run.last_json();
    assert_eq!(record["image_digest"], genuine.as_str(), "{record}");
    assert_eq!(record["signature_status"], "verified", "{record}");
    assert!(
        s.running_image("staging")
            .is_some_and(|i| i.contains(&genuine)),
        "{:?}",
        s.running_image("staging")
    );
}

/// `<tool> -c`-like check with the fake cosign: verify-blob of `blob`.
fn verify_blob(s: &Story, sig: &std::path::Path, blob: &std::path::Path) -> std::process::Output {
    std::process::Command::new(s.cosign.bin_dir().join("cosign"))
        .env("FAKE_COSIGN_STATE", s.cosign.state_dir())
        .args(["verify-blob", "--key"])
        .arg(&s.public)
        .args(["--insecure-ignore-tlog", "--signature"])
        .arg(sig)
        .arg(blob)
        .output()
        .expect("run the fake cosign")
}

/// Items 1 and 10: a version is tagged only on the digest whose policy
/// checks pass and whose `/api` is what the label and the signed
/// provenance name; it ships the ATTESTED SBOM and a signed SHA256SUMS.
#[test]
fn a_version_is_tagged_only_on_proven_bytes_and_ships_the_attested_sbom() {
    let w = world();
    let strict: Value = serde_json::from_str(STRICT).expect("policy");
    let s = Story::new("version", json!({}), strict);
    let b_local = format!("{}:{}", w.canonical, w.b.sha);
    let digest = s.push(&b_local, &w.b.sha);
    let attested = spdx("attested-sbom-of-b");
    s.sign_and_attest(
        &digest,
        &attested,
        &provenance(&w.b.sha, &binary_of(&w.b), "refs/heads/main"),
    );
    w.project
        .git(&["tag", "-a", "v5.0.0", "-m", "release v5.0.0", &w.b.sha]);
    let run = s
        .xtask(&["release", "v5.0.0", "--json"])
        .env("COSIGN_KEY", &s.private)
        .env("COSIGN_PASSWORD", KEY_PASSWORD)
        .run();
    run.expect_success();
    let record = run.last_json();
    assert_eq!(record["sums_signature"], "signed", "{record}");
    assert_eq!(record["binary_sha256"], binary_of(&w.b).as_str());
    assert_eq!(
        record["binary_matches"],
        json!(["its binary label", "its verified provenance"]),
        "{record}"
    );
    assert!(
        record["sbom_source"]
            .as_str()
            .is_some_and(|x| x.starts_with("attested")),
        "{record}"
    );
    assert!(
        !run.stderr.contains("syft"),
        "no fresh SBOM: {}",
        run.stderr
    );
    let dir = s.state.join("release/5.0.0");
    let shipped: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("api-5.0.0.spdx.json")).expect("SBOM"),
    )
    .expect("SPDX JSON");
    assert_eq!(shipped, attested, "the shipped SBOM is the attested one");
    // SHA256SUMS is signed: verified by cosign, and a changed byte is not.
    let (sums, sig) = (dir.join("SHA256SUMS"), dir.join("SHA256SUMS.sig"));
    let ok = verify_blob(&s, &sig, &sums);
    assert!(ok.status.success(), "{}", printed(&ok));
    assert!(printed(&ok).contains("Verified OK"));
    let mut text = std::fs::read(&sums).expect("sums");
    text[0] ^= 1;
    std::fs::write(&sums, text).expect("tamper");
    let bad = verify_blob(&s, &sig, &sums);
    assert!(!bad.status.success(), "a tampered SHA256SUMS verified");
    assert!(
        printed(&bad).contains("invalid signature"),
        "{}",
        printed(&bad)
    );

    // (1) B's tag re-pointed at an image whose /api was swapped, labels
    // inherited, unsigned; even under a soft production policy: refused,
    // no version tag pushed (a version tag is never moved).
    let soft = Story::new("version-soft", json!({}), json!({}));
    let swapped = format!("{}:swapped", soft.repo);
    docker_build_swapped(&b_local, &swapped, b"#!/bin/true\n");
    soft.push(&swapped, &w.b.sha);
    w.project
        .git(&["tag", "-a", "v5.1.0", "-m", "release v5.1.0", &w.b.sha]);
    let run = soft.run(&["release", "v5.1.0"]);
    let error = run.single_error();
    assert!(
        error.contains("refusing to tag a version")
            && error.contains(&format!("its binary label says {}", binary_of(&w.b))),
        "{error}"
    );
    assert!(!run.stderr.contains("$ docker push"), "{}", run.stderr);
    assert!(
        !w.registry.tags(&soft.path).iter().any(|t| t == "5.1.0"),
        "{:?}",
        w.registry.tags(&soft.path)
    );
}

/// Item 8: the tiny commit's real image plus an extra layer, `USER 0:0`
/// and `ENTRYPOINT ["/evil"]` under its SHA's tag: the same `/api` and
/// labels, so it used to be adopted ("nothing pushed") and never signed.
#[test]
fn adoption_refuses_an_image_whose_layers_or_run_config_a_clean_build_does_not_make() {
    use crate::support::world::tiny_build;
    let build = tiny_build();
    let path = "proof/evil";
    let repo = build.registry.repo(path);
    let tag = format!("{repo}:{}", build.sha());
    let images = DockerGuard::new();
    images.images_under(&format!("{repo}:"));
    docker_build_from(
        &build.tag(),
        &tag,
        "COPY evil /evil\nUSER 0:0\nENTRYPOINT [\"/evil\"]\n",
        &[("evil", b"#!/bin/sh\nid\n")],
    );
    docker_ok(&["push", &tag]);
    let before = build.registry.digest(path, build.sha()).expect("pushed");
    let out = TempDir::new("evil-out");
    let staging = build.registry.repo(&format!("{path}-staging"));
    let run = build
        .project
        .xtask_cmd(&[
            "ci-build",
            "--json",
            "--out",
            &out.join("m.json").display().to_string(),
            "--repository",
            &repo,
            "--staging-repository",
            &staging,
        ])
        .path(path_without(&["cosign"]))
        .run();
    let error = run.single_error();
    for needle in [
        "with the right /api but is not the image a clean build makes",
        "layers [",
        "entrypoint Some([\"/evil\"])",
        "user \"0:0\" (a clean build: \"65532:65532\")",
        "refusing to adopt",
    ] {
        assert!(error.contains(needle), "`{needle}` not in: {error}");
    }
    assert!(!out.join("m.json").exists(), "no record");
    assert!(!run.stderr.contains("$ docker push"), "{}", run.stderr);
    assert_eq!(build.registry.digest(path, build.sha()), Some(before));
}

/// Item 7: a released SHA whose tag and digest are both gone from the
/// registry. The rollback says how to rebuild; a forged image under the tag
/// (the same layers, `USER 0:0`) is refused as no rebuild of it; the
/// rebuild of a detached checkout goes to the repository of the original
/// build, gets another manifest digest (the builder stamps its time into
/// the image config), and is taken in the recorded release's place, the
/// link recorded; from then on the SHA counts as released at one digest.
/// The tiny api (it serves in its image), a registry of its own.
#[test]
fn a_rebuild_stands_for_a_released_digest_gone_from_the_registry() {
    let registry = Registry::start();
    let project = Project::tiny();
    let sha = project.sha();
    let state = TempDir::new("rebuilt-state");
    // One guard: its containers go first, then the images they ran.
    let docker = DockerGuard::new();
    docker.images_under(&format!("{}/", registry.host()));
    let mut envs = serde_json::Map::new();
    for env in ["staging", "production"] {
        let name = format!("xtask-it-rebuilt-{}-{env}", std::process::id());
        docker.environment(&name);
        envs.insert(
            env.into(),
            json!({"port": free_port(), "container": name, "drain_secs": 1}),
        );
    }
    let config = state.join("release.json");
    std::fs::write(&config, json!({"environments": envs}).to_string()).expect("config");
    let path = "rebuilt/api";
    let canonical = registry.repo(path);
    let xtask = |checkout: &Project, args: &[&str]| {
        checkout
            .xtask_cmd(args)
            .path(path_without(&["cosign"]))
            .env("XTASK_STATE_DIR", state.path())
            .env("XTASK_CONFIG", &config)
            .env("XTASK_REPOSITORY", &canonical)
            .env(
                "XTASK_STAGING_REPOSITORY",
                registry.repo("rebuilt/api-staging"),
            )
            .run()
    };
    let ledger = |env: &str| -> Vec<Value> {
        std::fs::read_to_string(state.join(format!("ledger/{env}.jsonl")))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("ledger line"))
            .collect()
    };

    let built = xtask(&project, &["ci-build", "--json"]);
    built.expect_success();
    let original = built.last_json()["image_digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    xtask(&project, &["deploy", &sha, "--env", "staging"]).expect_success();
    let staged = ledger("staging").pop().expect("a release");
    let layers = staged["content"]["layers"].clone();
    assert!(
        layers.as_array().is_some_and(|l| l.len() == 1),
        "the release records its layers: {staged}"
    );
    assert_eq!(staged["content"]["run"]["User"], "65532:65532", "{staged}");

    // The tag and the digest are deleted from the registry.
    let client = Client::new(&registry.host()).expect("loopback");
    client.delete_manifest(path, &original).expect("delete");
    assert_eq!(registry.digest(path, &sha), None);
    let gone = xtask(&project, &["rollback", &sha, "--env", "production"]);
    let error = gone.single_error();
    assert!(
        error.contains("is gone too") && error.contains("cargo xtask ci-build"),
        "{error}"
    );

    // A forged image under the tag: the same layers, run as root.
    let forged = format!("{canonical}:{sha}");
    let local = format!("{canonical}@{original}");
    docker_build_from(&local, &forged, "USER 0:0\n", &[]);
    docker_ok(&["push", &forged]);
    let refused = xtask(&project, &["rollback", &sha, "--env", "production"]);
    let error = refused.single_error();
    assert!(
        error.contains("not a rebuild of") && error.contains("user \"0:0\""),
        "{error}"
    );
    assert_eq!(
        ledger("production").last().expect("the refusal")["status"],
        "refused"
    );
    let forged_digest = registry.digest(path, &sha).expect("forged digest");
    client
        .delete_manifest(path, &forged_digest)
        .expect("delete the forgery");

    // The rebuild, from a detached checkout: into the original repository.
    let detached = project.clone_repo("rebuilt-detached");
    detached.git(&["checkout", "-q", "--detach", &sha]);
    let again = xtask(&detached, &["ci-build", "--json"]);
    again.expect_success();
    assert!(
        again
            .stderr
            .contains("building into it, the repository of its original build"),
        "{}",
        again.stderr
    );
    let rebuilt = again.last_json()["image_digest"]
        .as_str()
        .expect("digest")
        .to_owned();
    assert_eq!(again.last_json()["repository"], canonical.as_str());
    assert_ne!(rebuilt, original, "a rebuild gets another manifest digest");
    eprintln!("FIGURE rebuild of a released commit: {original} then {rebuilt}");

    let back = xtask(
        &project,
        &["rollback", &sha, "--env", "production", "--json"],
    );
    back.expect_success();
    assert!(
        back.stderr.contains(&format!("a rebuild of {original}")),
        "{}",
        back.stderr
    );
    let release = ledger("production").pop().expect("the rollback");
    assert_eq!(release["status"], "complete", "{release}");
    assert_eq!(release["image_digest"], rebuilt.as_str());
    assert_eq!(release["rebuild_of"], original.as_str());
    assert_eq!(release["content"]["layers"], layers);
    let history = xtask(&project, &["history", "--env", "production"]);
    assert!(
        history
            .stdout
            .contains(&format!("REBUILD: {rebuilt} in place of {original}")),
        "{}",
        history.stdout
    );

    // From now on the SHA is released at one digest: a plain deploy of it
    // goes, without a "moved tag" refusal or a split warning.
    let plain = xtask(&project, &["deploy", &sha, "--env", "staging"]);
    plain.expect_success();
    assert!(
        plain.stderr.contains("is a recorded rebuild of")
            && !plain.stderr.contains("different digests"),
        "{}",
        plain.stderr
    );
}
