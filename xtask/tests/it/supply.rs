//! The supply chain end to end: ci-build signs, makes the SBOM of the crates
//! it compiled, attests SBOM and provenance, verifies all three;
//! deploy holds them to the environment's soft|strict policy. The fake
//! cosign keeps everything in the real registry, where these tests read it
//! back and tamper with it through a plain registry client.
//!
//! One signed build (`signed()`, of the tiny api); the bad-input deploy cases sign copies of
//! the deploy world's image A with the fake cosign directly (no build).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use crate::deploy::{read_json, world};
use crate::support::*;
use serde_json::{Value, json};
use test_fakes::cosign_oci as oci;
use test_fakes::registry::Registry as Client;

fn field<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("`{k}` is not a string in {v}"))
}

/// Every secret a run was given must appear nowhere in what it printed.
fn assert_no_secrets(run: &Run, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !run.stdout.contains(s) && !run.stderr.contains(s),
            "a secret leaked into the output of {}",
            run.label
        );
    }
}

/// The private key's PEM body lines (what must never be printed).
fn key_material(private: &Path) -> Vec<String> {
    std::fs::read_to_string(private)
        .expect("key")
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_owned)
        .collect()
}

struct Signed {
    registry: Registry,
    project: Project,
    cosign: FakeCosign,
    private: PathBuf,
    public: PathBuf,
    record: Value,
    run: Option<Run>,
    _images: DockerGuard,
}

impl Signed {
    fn xtask(&self, args: &[&str]) -> Xtask {
        self.project
            .xtask_cmd(args)
            .path(path_without(&["cosign"]))
            .fake_cosign(&self.cosign)
            .env("COSIGN_PUBLIC_KEY", &self.public)
    }

    fn repo_flags(&self, path: &str) -> Vec<String> {
        vec![
            "--repository".into(),
            self.registry.repo(path),
            "--staging-repository".into(),
            self.registry.repo(&format!("{path}-staging")),
        ]
    }
}

/// One ci-build of `main` with a signing key.
fn signed() -> &'static Signed {
    static SIGNED: OnceLock<Signed> = OnceLock::new();
    SIGNED.get_or_init(|| {
        let registry = Registry::start();
        // The workspace with the tiny api: the same clean build and
        // supply chain in seconds (the real api's SBOM is read from
        // the world's A).
        let project = Project::new();
        project.commit_tiny_api("the tiny api");
        project.remove_at_exit();
        let images = DockerGuard::new();
        images.images_under(&format!("{}/", registry.host()));
        images.clean_at_exit();
        let cosign = FakeCosign::new();
        let (private, public) = cosign.key_pair("release");
        let mut s = Signed {
            registry,
            project,
            cosign,
            private,
            public,
            record: Value::Null,
            run: None,
            _images: images,
        };
        let mut args = vec!["ci-build".to_owned(), "--json".to_owned()];
        args.extend(s.repo_flags("signed/api"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = s
            .xtask(&args)
            .env("COSIGN_KEY", &s.private)
            .env("COSIGN_PASSWORD", KEY_PASSWORD)
            .run();
        eprintln!("ci-build (signed) took {:.1}s", run.elapsed.as_secs_f64());
        run.expect_success();
        s.record = run.last_json();
        s.run = Some(run);
        s
    })
}

/// The seconds ci-build's `steps:` line gives the supply-chain steps.
fn supply_seconds(stderr: &str) -> f64 {
    let steps = stderr
        .lines()
        .find_map(|l| l.strip_prefix("steps: "))
        .expect("a steps: line");
    steps
        .split(", ")
        .filter(|s| {
            ["SBOM", "provenance", "sign and attest", "verify signature"]
                .iter()
                .any(|p| s.starts_with(p))
        })
        .filter_map(|s| s.rsplit(' ').next()?.strip_suffix('s')?.parse::<f64>().ok())
        .sum()
}

/// `name version` of every package in Cargo.lock.
fn lock_versions(root: &Path) -> Vec<(String, String)> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).expect("Cargo.lock");
    let mut out = Vec::new();
    let mut name = None;
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = \"") {
            name = n.strip_suffix('"').map(str::to_owned);
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = \""), name.take()) {
            out.push((n, v.trim_end_matches('"').to_owned()));
        }
    }
    out
}

/// The crates a build record's SBOM lists (`pkg:cargo/<name>@<version>`):
/// the file's sha256 and count are the record's, each crate at the version
/// the Cargo.lock of `root` pins.
fn sbom_crates(r: &Value, root: &Path) -> Vec<(String, String)> {
    let sbom = PathBuf::from(field(r, "sbom_path"));
    let text = std::fs::read_to_string(&sbom).expect("the SBOM artifact");
    let sum = run_clean(std::process::Command::new("sha256sum").arg(&sbom));
    let sum = String::from_utf8_lossy(&sum.stdout);
    assert_eq!(sum.split_whitespace().next(), Some(field(r, "sbom_sha256")));
    let doc: Value = serde_json::from_str(&text).expect("SPDX JSON");
    let crates: Vec<(String, String)> = doc["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .flat_map(|p| p["externalRefs"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| {
            let purl = e["referenceLocator"].as_str()?.strip_prefix("pkg:cargo/")?;
            let (n, v) = purl.split_once('@')?;
            Some((n.to_owned(), v.to_owned()))
        })
        .collect();
    assert_eq!(r["sbom_components"].as_u64(), Some(crates.len() as u64));
    let lock = lock_versions(root);
    for (name, version) in &crates {
        assert!(
            lock.iter().any(|(n, v)| n == name && v == version),
            "{name} {version} is not in Cargo.lock"
        );
    }
    crates
}

#[test]
fn a_signed_build_records_sbom_provenance_and_three_verified_checks() {
    let s = signed();
    let r = &s.record;
    assert_eq!(field(r, "signing_status"), "signed");
    assert_eq!(r["signing_reason"], Value::Null);
    for check in ["signature", "sbom", "provenance"] {
        assert_eq!(
            field(r, &format!("{check}_status")),
            "verified",
            "{check}: {r}"
        );
        assert_eq!(r[format!("{check}_reason")], Value::Null, "{r}");
    }
    let digest = field(r, "image_digest");
    let sha = field(r, "image_sha");
    // In the registry, in cosign's layout, readable by another client.
    let tags = s.registry.tags("signed/api");
    let hex = digest.trim_start_matches("sha256:");
    for suffix in ["sig", "att"] {
        assert!(
            tags.contains(&format!("sha256-{hex}.{suffix}")),
            "{suffix}: {tags:?}"
        );
    }
    let client = Client::new(&s.registry.host()).expect("loopback");
    let att = oci::read_layers(&client, "signed/api", &oci::tag(digest, "att"))
        .expect("read")
        .expect(".att");
    let types: Vec<&str> = att
        .iter()
        .filter_map(|l| l.annotation(oci::PREDICATE_TYPE_ANNOTATION))
        .collect();
    assert_eq!(
        types,
        [
            "https://spdx.dev/Document",
            "https://slsa.dev/provenance/v1"
        ]
    );

    // The SBOM: a file whose sha256 is recorded, every crate compiled at
    // its Cargo.lock version; this build's api is the tiny one (its only
    // crate), so the real api's crates are read from the world's A.
    let crates = sbom_crates(r, s.project.root());
    assert_eq!(crates, [("api".to_owned(), "0.1.0".to_owned())]);
    let w = world();
    let real = sbom_crates(&w.a.record, w.clone_a.root());
    for must in ["api", "axum", "tokio", "hyper", "serde_json"] {
        assert!(real.iter().any(|(n, _)| n == must), "{must} missing");
    }
    let tree = run_clean(
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "tree",
                "-p",
                "api",
                "-e",
                "normal",
                "--prefix",
                "none",
                "--target",
                "x86_64-unknown-linux-gnu",
            ])
            .current_dir(w.clone_a.root()),
    );
    let mut unique: Vec<String> = String::from_utf8_lossy(&tree.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some(format!("{} {}", w.next()?, w.next()?))
        })
        .collect();
    unique.sort();
    unique.dedup();
    eprintln!(
        "FIGURE sbom: {} crates in the real api's SBOM; `cargo tree -p api -e normal` lists {} unique crates",
        real.len(),
        unique.len()
    );

    // The provenance.
    let provenance = read_json(Path::new(field(r, "provenance_path")));
    let deps = provenance["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .expect("deps");
    assert_eq!(deps[0]["digest"]["gitCommit"], sha);
    let lock_sum =
        run_clean(std::process::Command::new("sha256sum").arg(s.project.root().join("Cargo.lock")));
    let lock_sum = String::from_utf8_lossy(&lock_sum.stdout);
    assert!(
        deps.iter().any(|d| d["name"] == "Cargo.lock"
            && Some(d["digest"]["sha256"].as_str().unwrap_or(""))
                == lock_sum.split_whitespace().next()),
        "{provenance}"
    );
    assert_eq!(
        provenance["buildDefinition"]["externalParameters"]["sha"],
        sha
    );
    assert!(
        deps.iter().any(|d| d["name"] == "rustc"
            && d["annotations"]["version"]
                .as_str()
                .is_some_and(|v| v.starts_with("rustc "))),
        "{provenance}"
    );

    // Commands as printed; nothing secret.
    let run = s.run.as_ref().expect("the build's run");
    assert!(
        run.stderr.contains(&format!(
            "--key {} --tlog-upload=false",
            s.private.display()
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--insecure-ignore-tlog --output json"));
    let mut secrets = vec![KEY_PASSWORD.to_owned()];
    secrets.extend(key_material(&s.private));
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_no_secrets(run, &secrets);
    eprintln!(
        "FIGURE ci-build supply-chain steps (sign + SBOM + attest + verify): {:.1}s of {:.1}s",
        supply_seconds(&run.stderr),
        run.elapsed.as_secs_f64()
    );
}

/// One test's deploy environment: state, config with `policy`, containers.
struct Env {
    state: TempDir,
    config: PathBuf,
    container: String,
    _containers: DockerGuard,
}

impl Env {
    fn new(label: &str, policy: Value) -> Env {
        let state = TempDir::new(label);
        let container = format!("xtask-it-supply-{label}-{}", std::process::id());
        let containers = DockerGuard::new();
        containers.environment(&container);
        let config = state.join("release.json");
        // Each environment its own port and container: a config that
        // shares them is refused as a whole.
        containers.environment(&format!("{container}-production"));
        let env = |name: &str| json!({"port": free_port(), "container": name, "env": {"API_LOG": "warn"}, "policy": policy});
        std::fs::write(
            &config,
            json!({"environments": {"staging": env(&container), "production": env(&format!("{container}-production"))}}).to_string(),
        )
        .expect("config");
        Env {
            state,
            config,
            container,
            _containers: containers,
        }
    }

    fn ledger(&self) -> Vec<Value> {
        std::fs::read_to_string(self.state.join("ledger/staging.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("ledger line"))
            .collect()
    }

    fn container_exists(&self) -> bool {
        !docker_ok(&[
            "ps",
            "-aq",
            "--filter",
            &format!("name=^{}-", self.container),
        ])
        .is_empty()
    }
}

const STRICT: &str = r#"{"signature":"strict","sbom":"strict","provenance":"strict"}"#;

#[test]
fn a_strict_environment_deploys_the_fully_signed_build() {
    let s = signed();
    let env = Env::new("strict-ok", serde_json::from_str(STRICT).expect("policy"));
    let sha = field(&s.record, "image_sha");
    let started = Instant::now();
    let run = s
        .xtask(&["deploy", sha, "--env", "staging", "--json"])
        .env("XTASK_STATE_DIR", env.state.path())
        .env("XTASK_CONFIG", &env.config)
        .env("XTASK_REPOSITORY", s.registry.repo("signed/api"))
        .env(
            "XTASK_STAGING_REPOSITORY",
            s.registry.repo("signed/api-staging"),
        )
        .run();
    run.expect_success();
    eprintln!(
        "FIGURE deploy with a strict policy (3 cosign checks): {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let release = run.last_json();
    for check in ["signature", "sbom", "provenance"] {
        assert_eq!(
            field(&release, &format!("{check}_status")),
            "verified",
            "{release}"
        );
    }
}

/// A copy of the deploy world's image A in its own repository, signed and
/// attested (both) by a fresh key with the fake cosign.
struct Case {
    cosign: FakeCosign,
    private: PathBuf,
    public: PathBuf,
    path: String,
    repo: String,
    sha: String,
    digest: String,
    client: Client,
    _images: DockerGuard,
}

impl Case {
    fn new(label: &str, attest: &[&str]) -> Case {
        let w = world();
        let path = format!("supply/{label}");
        let repo = w.registry.repo(&path);
        let images = DockerGuard::new();
        images.image(&format!("{repo}:{}", w.a.sha));
        docker_ok(&[
            "tag",
            &format!("{}:{}", w.canonical, w.a.sha),
            &format!("{repo}:{}", w.a.sha),
        ]);
        docker_ok(&["push", &format!("{repo}:{}", w.a.sha)]);
        let digest = w.registry.digest(&path, &w.a.sha).expect("pushed");
        let cosign = FakeCosign::new();
        let (private, public) = cosign.key_pair("release");
        let image = format!("{repo}@{digest}");
        cosign.sign(&private, &image);
        let predicate = cosign.state_dir().join("predicate.json");
        std::fs::write(&predicate, r#"{"note":"a test predicate"}"#).expect("predicate");
        for kind in attest {
            cosign.attest(&private, &image, kind, &predicate);
        }
        Case {
            client: Client::new(&w.registry.host()).expect("loopback"),
            cosign,
            private,
            public,
            path,
            repo,
            sha: w.a.sha.clone(),
            digest,
            _images: images,
        }
    }

    fn sig_tag(&self) -> String {
        oci::tag(&self.digest, "sig")
    }

    fn deploy(&self, env: &Env, public: &Path) -> Run {
        let w = world();
        w.project
            .xtask_cmd(&["deploy", &self.sha, "--env", "staging", "--json"])
            .path(path_without(&["cosign"]))
            .fake_cosign(&self.cosign)
            .env("COSIGN_PUBLIC_KEY", public)
            .env("XTASK_STATE_DIR", env.state.path())
            .env("XTASK_CONFIG", &env.config)
            .env("XTASK_REPOSITORY", &self.repo)
            .env("XTASK_STAGING_REPOSITORY", format!("{}-staging", self.repo))
            .run()
    }

    /// Soft: deployed, the reason recorded. Strict on `check`: refused
    /// before the target is touched, naming it. Returns the soft reason.
    fn soft_and_strict(&self, label: &str, check: &str, public: &Path) -> String {
        let soft = Env::new(&format!("{label}-soft"), json!({}));
        let run = self.deploy(&soft, public);
        run.expect_success();
        let release = run.last_json();
        assert_eq!(
            field(&release, &format!("{check}_status")),
            "unverified",
            "{release}"
        );
        let reason = field(&release, &format!("{check}_reason")).to_owned();
        assert!(
            run.stderr.contains("continuing (soft policy)"),
            "{}",
            run.stderr
        );
        assert_eq!(
            soft.ledger().last().map(|l| l["status"].clone()),
            Some(json!("complete"))
        );

        let strict = Env::new(&format!("{label}-strict"), json!({check: "strict"}));
        let run = self.deploy(&strict, public);
        let error = run.single_error();
        assert!(
            error.contains("refusing before the target is touched")
                && error.contains(&format!("{check} (")),
            "names what was missing: {error}"
        );
        assert!(error.contains(&reason), "with the reason: {error}");
        assert!(!strict.container_exists(), "the target was touched");
        // No release was started: the one line is the refusal (issue 24),
        // with who and why.
        let lines = strict.ledger();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0]["status"], "refused", "{lines:?}");
        assert!(
            lines[0]["error"]
                .as_str()
                .is_some_and(|e| e.contains(&reason)),
            "{lines:?}"
        );
        reason
    }
}

#[test]
fn a_signature_of_another_digest_is_refused() {
    let c = Case::new("other-digest", &["spdxjson", "slsaprovenance1"]);
    // Another image in the same repository, signed by the same key; its
    // .sig copied over this image's.
    let decoy = format!("{}:decoy", c.repo);
    let guard = DockerGuard::new();
    guard.image(&decoy);
    docker_build_tiny(&decoy, "a decoy\n");
    docker_ok(&["push", &decoy]);
    let decoy_digest = world().registry.digest(&c.path, "decoy").expect("decoy");
    c.cosign
        .sign(&c.private, &format!("{}@{decoy_digest}", c.repo));
    let theirs = oci::read_layers(&c.client, &c.path, &oci::tag(&decoy_digest, "sig"))
        .expect("read")
        .expect("decoy signed");
    oci::write_layers(&c.client, &c.path, &c.sig_tag(), &theirs).expect("copy");
    let reason = c.soft_and_strict("other-digest", "signature", &c.public);
    assert!(
        reason.contains(&format!(
            "invalid or missing digest in claim: {decoy_digest}"
        )),
        "{reason}"
    );
}

#[test]
fn a_tampered_signature_is_refused() {
    let c = Case::new("tampered", &["spdxjson", "slsaprovenance1"]);
    let mut layers = oci::read_layers(&c.client, &c.path, &c.sig_tag())
        .expect("read")
        .expect("signed");
    // Flip one character of the base64 signature in the manifest annotation.
    let sig = layers[0]
        .annotation(oci::SIGNATURE_ANNOTATION)
        .expect("annotation")
        .to_owned();
    let flipped: String = sig
        .char_indices()
        .map(|(i, ch)| {
            if i == 20 {
                if ch == 'A' { 'B' } else { 'A' }
            } else {
                ch
            }
        })
        .collect();
    layers[0]
        .annotations
        .insert(oci::SIGNATURE_ANNOTATION.into(), json!(flipped));
    oci::write_layers(&c.client, &c.path, &c.sig_tag(), &layers).expect("tamper");
    let reason = c.soft_and_strict("tampered", "signature", &c.public);
    assert!(reason.starts_with("bad signature"), "{reason}");
}

#[test]
fn a_deleted_signature_tag_is_no_signature() {
    let c = Case::new("deleted", &["spdxjson", "slsaprovenance1"]);
    let sig = c
        .client
        .manifest(&c.path, &c.sig_tag())
        .expect("get")
        .expect("signed");
    c.client
        .delete_manifest(&c.path, &sig.digest)
        .expect("delete");
    assert!(!world().registry.tags(&c.path).contains(&c.sig_tag()));
    let reason = c.soft_and_strict("deleted", "signature", &c.public);
    assert_eq!(reason, "no signature");
}

#[test]
fn a_missing_sbom_attestation_is_named() {
    let c = Case::new("no-sbom", &["slsaprovenance1"]);
    let reason = c.soft_and_strict("no-sbom", "sbom", &c.public);
    assert!(reason.starts_with("no SBOM attestation"), "{reason}");
}

#[test]
fn an_unreadable_verification_key_is_recorded_then_refused() {
    let c = Case::new("unreadable", &["spdxjson", "slsaprovenance1"]);
    let missing = c.cosign.state_dir().join("nowhere/cosign.pub");
    let reason = c.soft_and_strict("unreadable", "signature", &missing);
    assert!(
        reason.starts_with("cosign failed") && reason.contains("no such file or directory"),
        "{reason}"
    );
}

/// ci-build with a signing setup that fails, of a tiny project (the same
/// clean build and signing steps, seconds: a build of the real api would
/// be compiled from scratch again, as every ci-build is), into a fresh
/// repository path of the signed world's registry, with its cosign and keys.
fn failing_signing(label: &str, key: &Path, password: &str, extra: &[&str]) -> (Run, TempDir) {
    let s = signed();
    let tiny = Project::tiny();
    let out = TempDir::new(label);
    let out_file = out.join("m.json").display().to_string();
    let mut args = vec![
        "ci-build".to_owned(),
        "--json".to_owned(),
        "--out".to_owned(),
        out_file,
    ];
    args.extend(s.repo_flags(&format!("signing/{label}")));
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = tiny
        .xtask_cmd(&args)
        .path(path_without(&["cosign"]))
        .fake_cosign(&s.cosign)
        .env("COSIGN_PUBLIC_KEY", &s.public)
        .env("COSIGN_KEY", key)
        .env("COSIGN_PASSWORD", password)
        .run();
    (run, out)
}

#[test]
fn a_wrong_cosign_password_or_an_unreadable_key_fails_signing_softly() {
    let s = signed();
    let wrong = "wrong-password-do-not-print";
    let (run, out) = failing_signing("wrong-password", &s.private, wrong, &[]);
    run.expect_success();
    let record = read_json(&out.join("m.json"));
    assert_eq!(field(&record, "signing_status"), "failed");
    assert!(
        field(&record, "signing_reason").contains("decrypt: encrypted: decryption failed"),
        "{record}"
    );
    assert_eq!(field(&record, "signature_status"), "unverified");
    assert_eq!(field(&record, "signature_reason"), "no signature");
    let mut secrets = vec![wrong.to_owned()];
    secrets.extend(key_material(&s.private));
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_no_secrets(&run, &secrets);

    let gone = s.cosign.state_dir().join("gone.key");
    let (run, out) = failing_signing(
        "unreadable-key",
        &gone,
        KEY_PASSWORD,
        &["--require-signature"],
    );
    let error = run.single_error();
    assert!(
        error.contains("--require-signature") && error.contains("no such file or directory"),
        "{error}"
    );
    assert!(
        !out.join("m.json").exists(),
        "no record for a refused build"
    );
    assert_no_secrets(&run, &[KEY_PASSWORD]);
}

#[test]
fn signing_report_names_the_setting_to_flip() {
    let w = world();
    let stage = Env::new("report", json!({}));
    // 30 verified complete releases, written as the ledger holds them.
    let ledger = stage.state.join("ledger");
    std::fs::create_dir_all(&ledger).expect("ledger dir");
    let line = |i: usize| {
        json!({"record":"deploy","id":format!("r{i}"),"status":"complete","environment":"production","target":"docker",
            "image_sha": w.a.sha, "image_digest": w.a.digest, "repository": w.canonical, "image_ref": "x",
            "previous_sha": null, "previous_release": null, "signature_status": "verified", "signature_reason": null,
            "sbom_status": "verified", "sbom_reason": null, "provenance_status": "unverified", "provenance_reason": "no provenance attestation",
            "initiated_by": "t", "deployment_ref": null, "url": null, "config": null, "verified": {"health": true, "sha": true},
            "started_at": "2026-01-01T00:00:00Z", "duration_sec": 1.0, "at": "2026-01-01T00:00:00Z"})
        .to_string()
    };
    let lines: Vec<String> = (0..30).map(line).collect();
    std::fs::write(ledger.join("production.jsonl"), lines.join("\n") + "\n").expect("ledger");
    let run = w
        .project
        .xtask_cmd(&["signing-report", "--json"])
        .env("XTASK_STATE_DIR", stage.state.path())
        .env("XTASK_CONFIG", &stage.config)
        .run();
    run.expect_success();
    let report = run.last_json();
    assert_eq!(report["escalate"], true, "{report}");
    assert_eq!(
        report["flip"],
        json!([
            "environments.production.policy.signature = \"strict\"",
            "environments.production.policy.sbom = \"strict\""
        ]),
        "{report}"
    );
    assert_eq!(report["provenance"]["escalate"], false);
}
