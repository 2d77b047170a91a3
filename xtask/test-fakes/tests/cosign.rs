//! Drives the fake cosign through its binary against a REAL registry
//! (Debian's `docker-registry`, started here): keys, signatures and
//! attestations stored in cosign's layout, every exit code and output shape
//! the release tool relies on, and tampering done with a plain registry
//! client.

mod common;

use common::{code, text};

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_fakes::cosign_oci::{self as oci, Layer};
use test_fakes::registry::{OCI_MANIFEST, Registry, sha256_digest};

fn scratch(name: &str) -> PathBuf {
    common::scratch("cosign", name)
}

/// A `docker-registry serve` on a free loopback port; killed on drop.
struct LiveRegistry {
    child: Child,
    host: String,
}

impl LiveRegistry {
    fn start() -> LiveRegistry {
        let dir = scratch("registry");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
                dir.join("data").display()
            ),
        )
        .expect("config");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Debian's docker-registry is installed (apt-get install docker-registry)");
        let host = format!("127.0.0.1:{port}");
        let reg = Registry::new(&host).expect("loopback");
        let deadline = Instant::now() + Duration::from_secs(15);
        while reg.request("GET", "/v2/", &[], b"").map(|r| r.status) != Ok(200) {
            assert!(Instant::now() < deadline, "registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        LiveRegistry { child, host }
    }

    fn client(&self) -> Registry {
        Registry::new(&self.host).expect("loopback")
    }

    /// A tiny one-layer image pushed as `repo:tag`; `repo@digest`.
    fn push_image(&self, repo: &str, content: &str) -> (String, String) {
        let reg = self.client();
        let layer = reg.put_blob(repo, content.as_bytes()).expect("layer");
        let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer]}})
            .to_string();
        let config_digest = reg.put_blob(repo, config.as_bytes()).expect("config");
        let manifest = json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": content.len(), "digest": layer}],
        })
        .to_string();
        let digest = reg
            .put_manifest(repo, "v1", OCI_MANIFEST, manifest.as_bytes())
            .expect("manifest");
        (format!("{}/{repo}@{digest}", self.host), digest)
    }
}

impl Drop for LiveRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cosign {
    state: PathBuf,
}

impl Cosign {
    fn new() -> Cosign {
        Cosign {
            state: scratch("state"),
        }
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cosign"));
        c.args(args)
            .current_dir(&self.state)
            .stdin(Stdio::null())
            .env("FAKE_COSIGN_STATE", &self.state);
        for k in [
            "FAKE_COSIGN_EXIT",
            "FAKE_COSIGN_IDENTITY",
            "FAKE_COSIGN_ISSUER",
            "FAKE_COSIGN_VERSION",
            "COSIGN_PASSWORD",
        ] {
            c.env_remove(k);
        }
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run fake cosign")
    }

    /// `generate-key-pair` with a password: (private, public) paths.
    fn key_pair(&self, prefix: &str, password: &str) -> (String, String) {
        let o = self.run(
            &["generate-key-pair", "--output-key-prefix", prefix],
            &[("COSIGN_PASSWORD", password)],
        );
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        let p = |ext: &str| {
            self.state
                .join(format!("{prefix}.{ext}"))
                .display()
                .to_string()
        };
        (p("key"), p("pub"))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.state.join(name)
    }
}

fn ok(o: &Output) {
    assert_eq!(code(o), 0, "{}", text(&o.stderr));
}

#[test]
fn without_state_dir_it_fails_and_calls_are_logged_with_tokens_redacted() {
    let o = Command::new(env!("CARGO_BIN_EXE_cosign"))
        .arg("version")
        .env_remove("FAKE_COSIGN_STATE")
        .output()
        .expect("run");
    assert_eq!(code(&o), 1);
    assert!(text(&o.stderr).contains("fake cosign: FAKE_COSIGN_STATE is not set"));
    let c = Cosign::new();
    let o = c.run(&["version"], &[]);
    ok(&o);
    assert!(text(&o.stdout).contains("GitVersion:    v2.5.3"));
    assert_eq!(
        code(&c.run(&["sign", "--identity-token", "SECRET", "x"], &[])),
        1
    );
    let log = std::fs::read_to_string(c.path("calls.log")).expect("calls.log");
    assert!(!log.contains("SECRET"), "{log}");
    assert!(
        log.contains(r#"["sign","--identity-token","<redacted>","x"]"#),
        "{log}"
    );
    let forced = c.run(
        &["verify", "--key", "k", "r@sha256:x"],
        &[("FAKE_COSIGN_EXIT", "7")],
    );
    assert_eq!(code(&forced), 7);
}

#[test]
fn key_signatures_live_in_the_registry_in_cosigns_layout() {
    let live = LiveRegistry::start();
    let c = Cosign::new();
    let (img, digest) = live.push_image("acme/api", "bytes of the image");
    let (key, public) = c.key_pair("release", "correct horse");
    let private_text = std::fs::read_to_string(&key).expect("key file");
    assert!(
        !private_text.contains("correct horse"),
        "the password is not stored"
    );
    assert!(
        std::fs::read_to_string(&public)
            .expect("pub")
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );

    // 10: nothing signed yet.
    let o = c.run(
        &["verify", "--key", &public, "--insecure-ignore-tlog", &img],
        &[],
    );
    assert_eq!(code(&o), 10, "{}", text(&o.stderr));
    assert!(text(&o.stderr).starts_with("Error: no signatures found\n"));

    // A wrong password, an unreadable key, PEM text as --key: nothing is signed.
    let wrong = c.run(
        &["sign", "--yes", "--key", &key, &img],
        &[("COSIGN_PASSWORD", "nope")],
    );
    assert_eq!(code(&wrong), 1);
    assert!(
        text(&wrong.stderr)
            .contains("getting signer: reading key: decrypt: encrypted: decryption failed")
    );
    let missing = c.run(
        &["sign", "--yes", "--key", "/nonexistent.key", &img],
        &[("COSIGN_PASSWORD", "x")],
    );
    assert!(text(&missing.stderr).contains("open /nonexistent.key: no such file or directory"));
    let pem = c.run(
        &["sign", "--yes", "--key", &private_text, &img],
        &[("COSIGN_PASSWORD", "x")],
    );
    assert_eq!(code(&pem), 1, "PEM text is a file name to cosign");
    assert!(
        live.client()
            .manifest("acme/api", &oci::tag(&digest, "sig"))
            .expect("get")
            .is_none()
    );

    // Sign without the tlog, with the key from env://.
    let o = c.run(
        &[
            "sign",
            "--yes",
            "--key",
            "env://SIGNING_KEY",
            "--tlog-upload=false",
            &img,
        ],
        &[
            ("COSIGN_PASSWORD", "correct horse"),
            ("SIGNING_KEY", &private_text),
        ],
    );
    ok(&o);

    // The registry holds cosign's layout, readable by any client.
    let reg = live.client();
    let layers = oci::read_layers(&reg, "acme/api", &oci::tag(&digest, "sig"))
        .expect("read")
        .expect("a .sig tag");
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].media_type, oci::SIMPLESIGNING);
    let payload: Value =
        serde_json::from_slice(layers[0].verified_blob().expect("blob")).expect("json");
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        digest.as_str()
    );
    assert_eq!(
        payload["critical"]["identity"]["docker-reference"],
        format!("{}/acme/api", live.host)
    );
    let pubkey = oci::load_public(&std::fs::read_to_string(&public).expect("pub")).expect("pub");
    let sig = layers[0]
        .annotation(oci::SIGNATURE_ANNOTATION)
        .expect("annotation");
    assert!(
        oci::verify(&pubkey, layers[0].verified_blob().expect("blob"), sig),
        "a real ECDSA signature"
    );

    // No tlog entry: only --insecure-ignore-tlog verifies it (else 12).
    let o = c.run(&["verify", "--key", &public, &img], &[]);
    assert_eq!(code(&o), 12, "{}", text(&o.stderr));
    let o = c.run(
        &[
            "verify",
            "--key",
            &public,
            "--insecure-ignore-tlog",
            "--output",
            "json",
            &img,
        ],
        &[],
    );
    ok(&o);
    let out: Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(
        out[0]["critical"]["image"]["docker-manifest-digest"],
        digest.as_str()
    );
    assert!(
        text(&o.stderr)
            .contains("  - The signatures were verified against the specified public key")
    );

    // Another key: 12.
    let (_, other) = c.key_pair("other", "x");
    let o = c.run(
        &["verify", "--key", &other, "--insecure-ignore-tlog", &img],
        &[],
    );
    assert_eq!(code(&o), 12);
    assert!(text(&o.stderr).contains("invalid signature when validating ASN.1 encoded signature"));

    // Tampered: the annotation edited in the registry.
    let mut tampered = layers[0].clone();
    let forged = oci::sign(
        &oci::generate().expect("key"),
        tampered.verified_blob().expect("blob"),
    );
    tampered
        .annotations
        .insert(oci::SIGNATURE_ANNOTATION.into(), json!(forged));
    oci::write_layers(&reg, "acme/api", &oci::tag(&digest, "sig"), &[tampered]).expect("tamper");
    let o = c.run(
        &["verify", "--key", &public, "--insecure-ignore-tlog", &img],
        &[],
    );
    assert_eq!(code(&o), 12, "{}", text(&o.stderr));

    // A signature of another digest, copied under this digest's tag.
    let (other_img, other_digest) = live.push_image("acme/api", "other bytes");
    ok(&c.run(
        &[
            "sign",
            "--yes",
            "--key",
            &key,
            "--tlog-upload=false",
            &other_img,
        ],
        &[("COSIGN_PASSWORD", "correct horse")],
    ));
    let theirs = oci::read_layers(&reg, "acme/api", &oci::tag(&other_digest, "sig"))
        .expect("read")
        .expect("signed");
    oci::write_layers(&reg, "acme/api", &oci::tag(&digest, "sig"), &theirs).expect("copy");
    let o = c.run(
        &["verify", "--key", &public, "--insecure-ignore-tlog", &img],
        &[],
    );
    assert_eq!(code(&o), 12);
    assert!(
        text(&o.stderr).contains(&format!(
            "invalid or missing digest in claim: {other_digest}"
        )),
        "{}",
        text(&o.stderr)
    );

    // The .sig deleted (its manifest, and with it the tag): 10 again.
    let sig = reg
        .manifest("acme/api", &oci::tag(&digest, "sig"))
        .expect("get")
        .expect("sig");
    reg.delete_manifest("acme/api", &sig.digest)
        .expect("delete");
    let o = c.run(
        &["verify", "--key", &public, "--insecure-ignore-tlog", &img],
        &[],
    );
    assert_eq!(code(&o), 10);

    // 11: a tag, or a digest the registry does not have.
    let o = c.run(
        &[
            "verify",
            "--key",
            &public,
            &format!("{}/acme/api:v9", live.host),
        ],
        &[],
    );
    assert_eq!(code(&o), 11);
    let absent = format!("{}/acme/api@{}", live.host, sha256_digest(b"absent"));
    assert_eq!(
        code(&c.run(&["verify", "--key", &public, &absent], &[])),
        11
    );
}

#[test]
fn attestations_are_dsse_envelopes_filtered_by_predicate_type() {
    let live = LiveRegistry::start();
    let c = Cosign::new();
    let (img, digest) = live.push_image("acme/att", "image");
    let (key, public) = c.key_pair("k", "pw");
    let predicate = c.path("sbom.json");
    std::fs::write(&predicate, r#"{"spdxVersion":"SPDX-2.3","packages":[]}"#).expect("predicate");
    let attest = |kind: &str| {
        c.run(
            &[
                "attest",
                "--yes",
                "--key",
                &key,
                "--tlog-upload=false",
                "--type",
                kind,
                "--predicate",
                &predicate.display().to_string(),
                &img,
            ],
            &[("COSIGN_PASSWORD", "pw")],
        )
    };
    let verify = |kind: &str| {
        c.run(
            &[
                "verify-attestation",
                "--key",
                &public,
                "--insecure-ignore-tlog",
                "--type",
                kind,
                &img,
            ],
            &[],
        )
    };
    let none = verify("spdxjson");
    assert_eq!(code(&none), 1);
    assert!(text(&none.stderr).contains("no matching attestations"));
    ok(&attest("spdxjson"));
    let o = verify("spdxjson");
    ok(&o);
    let envelope: Value = serde_json::from_str(text(&o.stdout).trim()).expect("one envelope");
    assert_eq!(envelope["payloadType"], oci::INTOTO);
    let wrong_type = verify("slsaprovenance1");
    assert_eq!(code(&wrong_type), 1);
    assert!(text(&wrong_type.stderr).contains(
        "none of the attestations matched the predicate type: slsaprovenance1, found: https://spdx.dev/Document"
    ));
    ok(&attest("slsaprovenance1"));
    ok(&verify("slsaprovenance1"));

    // The layout: DSSE layers with a predicateType annotation.
    let layers = oci::read_layers(&live.client(), "acme/att", &oci::tag(&digest, "att"))
        .expect("read")
        .expect(".att");
    let types: Vec<&str> = layers
        .iter()
        .map(|l| l.annotation(oci::PREDICATE_TYPE_ANNOTATION).unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        [
            "https://spdx.dev/Document",
            "https://slsa.dev/provenance/v1"
        ]
    );
    assert!(layers.iter().all(|l| l.media_type == oci::DSSE));

    // A tampered statement (another subject), re-signed by another key: refused.
    let mut bad = layers[0].clone();
    let mut env: Value = serde_json::from_slice(bad.verified_blob().expect("blob")).expect("env");
    env["signatures"][0]["sig"] = json!(oci::sign(&oci::generate().expect("k"), b"x"));
    bad = Layer::new(oci::DSSE, env.to_string().into_bytes(), bad.annotations);
    oci::write_layers(
        &live.client(),
        "acme/att",
        &oci::tag(&digest, "att"),
        &[bad],
    )
    .expect("tamper");
    let o = verify("spdxjson");
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stderr).contains("no matching attestations: invalid signature"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn keyless_identity_regexp_and_a_v3_bundle_invisible_to_v2() {
    let live = LiveRegistry::start();
    let c = Cosign::new();
    let (img, _) = live.push_image("acme/keyless", "image");
    let branch =
        "https://github.com/example/shipyard/.github/workflows/api-build.yml@refs/heads/feature/x";
    let signer = [
        ("FAKE_COSIGN_IDENTITY", branch),
        (
            "FAKE_COSIGN_ISSUER",
            "https://token.actions.githubusercontent.com",
        ),
    ];
    assert_eq!(
        code(&c.run(&["sign", "-y", &img], &[])),
        1,
        "keyless needs an identity"
    );
    ok(&c.run(&["sign", "-y", &img], &signer));
    let verify = |identity: &[&str]| {
        let mut args = vec!["verify"];
        args.extend_from_slice(identity);
        args.extend([
            "--certificate-oidc-issuer",
            "https://token.actions.githubusercontent.com",
            &img,
        ]);
        c.run(&args, &[])
    };
    let o = verify(&[
        "--certificate-identity-regexp",
        r"^https://github\.com/example/shipyard/\.github/workflows/api-build\.yml@refs/heads/.+$",
    ]);
    ok(&o);
    let out: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(out[0]["optional"]["Subject"], branch);
    let main_only = verify(&[
        "--certificate-identity",
        "https://github.com/example/shipyard/.github/workflows/api-build.yml@refs/heads/main",
    ]);
    assert_eq!(code(&main_only), 12);
    assert!(text(&main_only.stderr).contains("none of the expected identities matched"));
    let no_identity = c.run(&["verify", "--certificate-oidc-issuer", "x", &img], &[]);
    assert!(text(&no_identity.stderr).contains(
        "Error: --certificate-identity or --certificate-identity-regexp is required for verification in keyless mode"
    ));
    let (_, public) = c.key_pair("k", "");
    let both = c.run(
        &[
            "verify",
            "--key",
            &public,
            "--certificate-oidc-issuer",
            "x",
            &img,
        ],
        &[],
    );
    assert!(text(&both.stderr).contains(
        "if any flags in the group [key certificate-oidc-issuer] are set none of the others can be"
    ));

    // v3 signs in the bundle format, under the referrers fallback tag: a v2
    // verify finds no signature, a v3 one does.
    let (img3, digest3) = live.push_image("acme/keyless", "v3 image");
    let v3 = [("FAKE_COSIGN_VERSION", "v3.0.6")];
    let (key, public) = c.key_pair("k3", "");
    ok(&c.run(&["sign", "-y", "--key", &key, &img3], &v3));
    assert!(
        live.client()
            .manifest("acme/keyless", &digest3.replacen(':', "-", 1))
            .expect("get")
            .is_some(),
        "the fallback tag sha256-<hex>"
    );
    let v2 = c.run(&["verify", "--key", &public, &img3], &[]);
    assert_eq!(code(&v2), 10, "v2 cannot see a v3 bundle");
    ok(&c.run(&["verify", "--key", &public, &img3], &v3));
}
