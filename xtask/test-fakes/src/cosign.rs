//! FAKE `cosign` for xtask's tests. This is NOT sigstore/cosign, but it signs
//! for real: ECDSA P-256 keys, signatures and attestations stored in the
//! REAL registry in cosign v2's layout (`sha256-<hex>.sig` / `.att`, see
//! `test_fakes::cosign_oci`), so what it wrote can be read by any registry
//! client and tampered with by a test. It checks the argument shapes of
//! cosign and answers with its exit codes and output shapes. Only
//! `calls.log` lives in `$FAKE_COSIGN_STATE`.
//!
//! Sources for each shape it checks (read through the code/docs search):
//! - Exit codes 10 (no signatures), 11 (tag not found), 12 (no matching
//!   signatures), 1 (anything else): sigstore/cosign
//!   cmd/cosign/errors/exit_codes.go and exit_code_lookup.go.
//! - "no signatures found", "no matching signatures: <reasons>", "image tag
//!   not found", "no matching attestations: <reasons>": pkg/cosign/verify.go
//!   and pkg/cosign/errors.go. "invalid or missing digest in claim: <d>":
//!   pkg/cosign/verifiers.go `SimpleClaimVerifier`. "none of the
//!   attestations matched the predicate type: <t>, found: <types>":
//!   cmd/cosign/cli/verify/verify_attestation.go.
//! - `--key` is a path, `env://VAR`, a URL or a KMS URI, never PEM text
//!   (pkg/signature/keys.go `SignerVerifierFromKeyRef`,
//!   `PublicKeyFromKeyRef`; pkg/blob `LoadFileOrURL`). PEM text given as
//!   `--key` is opened as a file name, as the real one does.
//! - The private key's password comes from `COSIGN_PASSWORD`, else stdin
//!   when it is not a terminal (cmd/cosign/cli/generate `readPasswordFn`);
//!   a wrong one fails with "decrypt: encrypted: decryption failed"
//!   (pkg/cosign/keys.go `LoadPrivateKey`, go-securesystemslib `encrypted`).
//! - `sign`/`attest` flags (`--key`, `--yes`, `--tlog-upload`, `--predicate`,
//!   `--type`, `--replace`) and `verify`/`verify-attestation` flags
//!   (`--key`, `--certificate-identity[-regexp]`,
//!   `--certificate-oidc-issuer[-regexp]`, `--insecure-ignore-tlog`,
//!   `--output`, `--type`): cmd/cosign/cli/options/{sign,attest,verify,
//!   certificate,predicate}.go. Predicate type names: options/predicate.go.
//! - Keyless needs an identity: "--certificate-identity or
//!   --certificate-identity-regexp is required for verification in keyless
//!   mode" (options/certificate.go `Identities()`); regexps match like Go's
//!   `regexp.MatchString` (see `go_regexp.rs`).
//! - Key-based signing without the transparency log (`--tlog-upload=false`)
//!   verifies only with `--insecure-ignore-tlog` (else exit 12): a
//!   signature with no tlog entry does not match.
//! - v3 signs in the new bundle format by default, as an OCI referrer, which
//!   distribution 2.8 (no referrers API) stores under the fallback tag
//!   `sha256-<hex>`; v2 looks only at `.sig` and finds nothing (exit 10).
//!   `FAKE_COSIGN_VERSION=v3.0.6` makes the fake a v3.
//! - Header on stderr ("Verification for <ref> --", "The following checks
//!   were performed ...") and the JSON array of payloads on stdout:
//!   cmd/cosign/cli/verify/verify.go `PrintVerificationHeader`,
//!   `PrintVerification`. verify-attestation prints each verified DSSE
//!   envelope as one JSON line.
//!
//! - `sign-blob` flags (`--key`, `--yes`, `--tlog-upload`,
//!   `--output-signature`, `--output-certificate`, `--bundle`):
//!   cmd/cosign/cli/options/signblob.go; `verify-blob` flags (`--key`,
//!   `--signature` a file or the base64 text, `--certificate`, `--bundle`,
//!   `--insecure-ignore-tlog`): options/verify.go `VerifyBlobOptions`;
//!   "Verified OK" on stderr: cmd/cosign/cli/verify/verify_blob.go.
//!
//! Deliberate differences (so tests stay honest):
//! - The private key file format is the fake's own (see `cosign_oci`): a
//!   real `cosign.key` is refused with "unsupported pem type".
//! - KMS URIs, URLs and hardware keys are refused ("not modelled").
//! - Nothing is uploaded to a transparency log: the "tlog entry" is a
//!   marker annotation. Keyless signing takes its identity from
//!   `FAKE_COSIGN_IDENTITY` / `FAKE_COSIGN_ISSUER` instead of an OIDC token.
//! - `sign` and `attest` REQUIRE a digest-pinned image; the real one warns
//!   and resolves tags. `verify` of a tag without a digest: exit 11.
//! - `--key` with any identity flag is refused with cobra's
//!   mutually-exclusive text (real v2 appears to ignore the identity flags).
//! - Only loopback registries, over plain HTTP.
//!
//! Environment: `FAKE_COSIGN_STATE` (required), `FAKE_COSIGN_EXIT` (force an
//! exit code), `FAKE_COSIGN_IDENTITY` / `FAKE_COSIGN_ISSUER` (keyless),
//! `FAKE_COSIGN_VERSION` (default v2.5.3), `COSIGN_PASSWORD`.

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::{SigningKey, VerifyingKey};
use serde_json::{Map, Value, json};
use test_fakes::cli::{self, FlagSpec, Parsed};
use test_fakes::cosign_oci::{self as oci, Layer};
use test_fakes::go_regexp::{self, Regex};
use test_fakes::image_ref::ImageRef;
use test_fakes::registry::Registry;
use test_fakes::state;

const STATE_ENV: &str = "FAKE_COSIGN_STATE";
const DEFAULT_VERSION: &str = "v2.5.3";
const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

const FLAGS: &[FlagSpec] = &[
    cli::value("key"),
    cli::value("certificate-identity"),
    cli::value("certificate-identity-regexp"),
    cli::value("certificate-oidc-issuer"),
    cli::value("certificate-oidc-issuer-regexp"),
    cli::value_short("output", 'o'),
    cli::value("identity-token"),
    cli::value("rekor-url"),
    cli::value("max-workers"),
    cli::value_short("annotations", 'a'),
    cli::value_short("timeout", 't'),
    cli::value("output-file"),
    cli::value("output-key-prefix"),
    cli::value("predicate"),
    cli::value("type"),
    cli::boolean_short("yes", 'y'),
    cli::boolean("tlog-upload"),
    cli::boolean("upload"),
    cli::boolean("replace"),
    cli::boolean_short("recursive", 'r'),
    cli::boolean("allow-insecure-registry"),
    cli::boolean("allow-http-registry"),
    cli::boolean("insecure-ignore-tlog"),
    cli::boolean("check-claims"),
    cli::boolean("new-bundle-format"),
    cli::boolean_short("verbose", 'd'),
    cli::boolean("json"),
    cli::value("output-signature"),
    cli::value("output-certificate"),
    cli::value("bundle"),
    cli::value("signature"),
    cli::value("certificate"),
];

const COMMON: &[&str] = &["timeout", "verbose", "output-file"];
const SIGNING: &[&str] = &[
    "key",
    "yes",
    "identity-token",
    "tlog-upload",
    "upload",
    "recursive",
    "annotations",
    "allow-insecure-registry",
    "allow-http-registry",
    "new-bundle-format",
];
const VERIFYING: &[&str] = &[
    "key",
    "certificate-identity",
    "certificate-identity-regexp",
    "certificate-oidc-issuer",
    "certificate-oidc-issuer-regexp",
    "rekor-url",
    "max-workers",
    "allow-insecure-registry",
    "allow-http-registry",
    "insecure-ignore-tlog",
    "check-claims",
    "new-bundle-format",
];
const IDENTITY_FLAGS: &[&str] = &[
    "certificate-identity",
    "certificate-identity-regexp",
    "certificate-oidc-issuer",
    "certificate-oidc-issuer-regexp",
];

/// A failure as cosign reports it: message and exit code.
struct Failure {
    message: String,
    code: u8,
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        code: 1,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = match state::dir_from_env(STATE_ENV, "cosign") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    match run(&dir, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("Error: {}", f.message);
            eprintln!("main.go:74: error during command execution: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn redacted_argv(args: &[String]) -> Value {
    let mut out = Vec::with_capacity(args.len());
    let mut hide_next = false;
    for a in args {
        if hide_next {
            out.push("<redacted>".to_string());
            hide_next = false;
        } else if a == "--identity-token" {
            out.push(a.clone());
            hide_next = true;
        } else if a.starts_with("--identity-token=") {
            out.push("--identity-token=<redacted>".to_string());
        } else {
            out.push(a.clone());
        }
    }
    json!(out)
}

fn cosign_version() -> String {
    std::env::var("FAKE_COSIGN_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_VERSION.to_owned())
}

fn is_v3() -> bool {
    cosign_version().starts_with("v3")
}

fn run(dir: &Path, args: &[String]) -> Result<(), Failure> {
    state::append_line(dir, "calls.log", &redacted_argv(args)).map_err(fail)?;

    if let Ok(raw) = std::env::var("FAKE_COSIGN_EXIT") {
        let code: u8 = raw.trim().parse().map_err(|_| {
            fail(format!(
                "fake cosign: FAKE_COSIGN_EXIT={raw} is not an exit code"
            ))
        })?;
        if code != 0 {
            return Err(Failure {
                message: format!("fake cosign: forced failure (FAKE_COSIGN_EXIT={code})"),
                code,
            });
        }
    }

    let parsed = cli::parse(args, FLAGS).map_err(fail)?;
    let Some((command, rest)) = parsed.positionals.split_first() else {
        println!("A tool for Container Signing, Verification and Storage in an OCI registry.");
        println!();
        println!("Usage:\n  cosign [command]");
        return Ok(());
    };
    let allow = |extra: &[&[&str]]| {
        let mut all: Vec<&str> = COMMON.to_vec();
        for e in extra {
            all.extend_from_slice(e);
        }
        cli::only_allowed(&parsed, &all).map_err(fail)
    };
    match command.as_str() {
        "version" => {
            allow(&[&["json"]])?;
            version(parsed.bool("json"));
            Ok(())
        }
        "generate-key-pair" => {
            allow(&[&["output-key-prefix"]])?;
            generate_key_pair(&parsed)
        }
        "sign" => {
            allow(&[SIGNING])?;
            sign(&parsed, rest)
        }
        "attest" => {
            allow(&[SIGNING, &["predicate", "type", "replace"]])?;
            attest(&parsed, rest)
        }
        "verify" => {
            allow(&[VERIFYING, &["output", "annotations"]])?;
            verify(&parsed, rest)
        }
        "verify-attestation" => {
            allow(&[VERIFYING, &["type", "output"]])?;
            verify_attestation(&parsed, rest)
        }
        "sign-blob" => {
            allow(&[
                SIGNING,
                &["output-signature", "output-certificate", "bundle"],
            ])?;
            sign_blob(&parsed, rest)
        }
        "verify-blob" => {
            allow(&[VERIFYING, &["signature", "certificate", "bundle"]])?;
            verify_blob(&parsed, rest)
        }
        other => Err(fail(format!(
            "unknown command \"{other}\" for \"cosign\"\nRun 'cosign --help' for usage."
        ))),
    }
}

/// The block sigs.k8s.io/release-utils prints for `cosign version`.
fn version(as_json: bool) {
    let v = cosign_version();
    let fields = [
        ("gitVersion", "GitVersion", v.as_str()),
        ("gitCommit", "GitCommit", "fake-cosign-for-tests"),
        ("gitTreeState", "GitTreeState", "clean"),
        ("buildDate", "BuildDate", "2025-07-10T17:01:50Z"),
        ("goVersion", "GoVersion", "go1.24.4"),
        ("compiler", "Compiler", "gc"),
        ("platform", "Platform", "linux/amd64"),
    ];
    if as_json {
        let mut m = Map::new();
        for (k, _, v) in fields {
            m.insert(k.into(), json!(v));
        }
        println!("{}", Value::Object(m));
        return;
    }
    println!("cosign: A tool for Container Signing, Verification and Storage in an OCI registry.");
    println!();
    for (_, label, v) in fields {
        println!("{:<15}{v}", format!("{label}:"));
    }
}

/// Go's wording for the common I/O errors.
fn io_text(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory",
        std::io::ErrorKind::PermissionDenied => "permission denied",
        _ => "input/output error",
    }
}

/// The bytes a key reference names: a file, or `env://VAR`.
fn key_ref_text(reference: &str, what: &str) -> Result<String, Failure> {
    if let Some(var) = reference.strip_prefix("env://") {
        return std::env::var(var)
            .map_err(|_| fail(format!("{what}: loading URL: env var ${var} not found")));
    }
    for scheme in [
        "awskms://",
        "gcpkms://",
        "azurekms://",
        "hashivault://",
        "k8s://",
        "gitlab://",
        "pkcs11:",
        "https://",
        "http://",
    ] {
        if reference.starts_with(scheme) {
            return Err(fail(format!(
                "{what}: fake cosign: {scheme} key references are not modelled (the real cosign takes them)"
            )));
        }
    }
    std::fs::read_to_string(reference)
        .map_err(|e| fail(format!("{what}: open {reference}: {}", io_text(&e))))
}

/// `COSIGN_PASSWORD`, else stdin (not a terminal here), as cosign reads it.
fn password() -> String {
    if let Ok(p) = std::env::var("COSIGN_PASSWORD") {
        return p;
    }
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    input.trim_end_matches(['\r', '\n']).to_owned()
}

fn generate_key_pair(parsed: &Parsed) -> Result<(), Failure> {
    let prefix = parsed.last("output-key-prefix").unwrap_or("cosign");
    let key = oci::generate().map_err(fail)?;
    let private = oci::private_pem(&key, &password()).map_err(fail)?;
    let public = oci::public_pem(key.verifying_key()).map_err(fail)?;
    for (ext, text) in [("key", &private), ("pub", &public)] {
        let path = format!("{prefix}.{ext}");
        std::fs::write(&path, text).map_err(|e| fail(format!("writing {path}: {e}")))?;
    }
    eprintln!("Private key written to {prefix}.key");
    eprintln!("Public key written to {prefix}.pub");
    Ok(())
}

/// Who signs: a key from `--key`, or (keyless) an ephemeral key and the
/// identity of `FAKE_COSIGN_IDENTITY` / `FAKE_COSIGN_ISSUER`.
struct Signer {
    key: SigningKey,
    certificate: Option<String>,
}

fn signer(parsed: &Parsed) -> Result<Signer, Failure> {
    if let Some(reference) = parsed.last("key") {
        let text = key_ref_text(reference, "getting signer: reading key")?;
        let key = oci::load_private(&text, &password())
            .map_err(|e| fail(format!("getting signer: reading key: {e}")))?;
        return Ok(Signer {
            key,
            certificate: None,
        });
    }
    let id = std::env::var("FAKE_COSIGN_IDENTITY").unwrap_or_default();
    let issuer = std::env::var("FAKE_COSIGN_ISSUER").unwrap_or_default();
    if id.is_empty() || issuer.is_empty() {
        return Err(fail(
            "getting signer: getting key from Fulcio: retrieving cert: no identity token \
             (fake cosign: keyless signing needs FAKE_COSIGN_IDENTITY and FAKE_COSIGN_ISSUER)",
        ));
    }
    let key = oci::generate().map_err(fail)?;
    let certificate = Some(oci::certificate(&id, &issuer, key.verifying_key()).map_err(fail)?);
    Ok(Signer { key, certificate })
}

/// A digest-pinned image that exists in its (loopback) registry.
struct Target {
    r: ImageRef,
    digest: String,
    reg: Registry,
}

fn target(img: &str, require_digest: bool) -> Result<Target, Failure> {
    let r = ImageRef::parse(img).map_err(|e| fail(format!("parsing reference: {e}")))?;
    let Some(digest) = r.digest.clone() else {
        if require_digest {
            return Err(fail(format!(
                "fake cosign: sign needs a digest-pinned image (repo@sha256:<hex>), got {img}: \
                 the real cosign would warn and sign whatever the tag points at now"
            )));
        }
        let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
        return Err(Failure {
            message: format!(
                "image tag not found: GET {}://{}/v2/{}/manifests/{tag}: MANIFEST_UNKNOWN: manifest unknown; map[Tag:{tag}]",
                r.scheme(),
                r.registry,
                r.repository
            ),
            code: 11,
        });
    };
    let reg = Registry::new(&r.registry).map_err(fail)?;
    if reg
        .manifest(&r.repository, &digest)
        .map_err(fail)?
        .is_none()
    {
        return Err(Failure {
            message: format!(
                "image tag not found: GET http://{}/v2/{}/manifests/{digest}: MANIFEST_UNKNOWN: manifest unknown; map[]",
                r.registry, r.repository
            ),
            code: 11,
        });
    }
    Ok(Target { r, digest, reg })
}

fn annotations(signature: &str, signer: &Signer, tlog: bool) -> Map<String, Value> {
    let mut a = Map::new();
    a.insert(oci::SIGNATURE_ANNOTATION.into(), json!(signature));
    if let Some(cert) = &signer.certificate {
        a.insert(oci::CERTIFICATE_ANNOTATION.into(), json!(cert));
    }
    if tlog {
        a.insert(
            oci::BUNDLE_ANNOTATION.into(),
            json!(
                json!({"fake": "no transparency log: the fake cosign uploads nothing"}).to_string()
            ),
        );
    }
    a
}

/// Append `layer` to the manifest under `tag` (cosign appends signatures).
fn append(t: &Target, tag: &str, layer: Layer, replace_type: Option<&str>) -> Result<(), Failure> {
    let mut layers = oci::read_layers(&t.reg, &t.r.repository, tag)
        .map_err(fail)?
        .unwrap_or_default();
    if let Some(kind) = replace_type {
        layers.retain(|l| l.annotation(oci::PREDICATE_TYPE_ANNOTATION) != Some(kind));
    }
    // A layer whose blob is gone cannot be re-pushed: drop it, as a fresh
    // cosign would fail on it.
    layers.retain(|l| l.verified_blob().is_some());
    layers.push(layer);
    oci::write_layers(&t.reg, &t.r.repository, tag, &layers).map_err(fail)
}

fn sign(parsed: &Parsed, images: &[String]) -> Result<(), Failure> {
    if images.is_empty() {
        return Err(fail("requires at least 1 arg(s), only received 0"));
    }
    let signer = signer(parsed)?;
    let tlog = parsed.last("tlog-upload") != Some("false");
    for img in images {
        let t = target(img, true)?;
        let payload = oci::simple_signing(&t.r.context_name(), &t.digest);
        let signature = oci::sign(&signer.key, &payload);
        let new_format = is_v3() && parsed.last("new-bundle-format") != Some("false");
        if new_format {
            // v3: a sigstore bundle as an OCI referrer; distribution 2.8 has no
            // referrers API, so it lands under the fallback tag `sha256-<hex>`.
            let bundle = json!({
                "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                "payload": B64.encode(&payload),
                "signature": signature,
                "certificate": signer.certificate,
            })
            .to_string()
            .into_bytes();
            let tag = t.digest.replacen(':', "-", 1);
            append(&t, &tag, Layer::new(BUNDLE_V03, bundle, Map::new()), None)?;
        } else {
            let layer = Layer::new(
                oci::SIMPLESIGNING,
                payload,
                annotations(&signature, &signer, tlog),
            );
            append(&t, &oci::tag(&t.digest, "sig"), layer, None)?;
        }
        eprintln!("Pushing signature to: {}", t.r.context_name());
    }
    Ok(())
}

/// `cosign sign-blob [--key K] [--output-signature F] [--output-certificate
/// F] [--bundle F] <blob>` (cmd/cosign/cli/options/signblob.go): ECDSA
/// P-256 over the blob's bytes, the base64 signature on stdout and in
/// `--output-signature`; the bundle (v2's format,
/// pkg/cosign/bundle `LocalSignedPayload`: `base64Signature`, `cert`,
/// `rekorBundle`) when asked. Exactly one blob.
fn sign_blob(parsed: &Parsed, blobs: &[String]) -> Result<(), Failure> {
    let [blob] = blobs else {
        return Err(fail(format!("accepts 1 arg(s), received {}", blobs.len())));
    };
    let bytes = std::fs::read(blob)
        .map_err(|e| fail(format!("reading {blob}: open {blob}: {}", io_text(&e))))?;
    let signer = signer(parsed)?;
    let tlog = parsed.last("tlog-upload") != Some("false");
    let signature = oci::sign(&signer.key, &bytes);
    let write = |path: &str, text: &str| {
        std::fs::write(path, text).map_err(|e| fail(format!("create {path}: {}", io_text(&e))))
    };
    if let Some(path) = parsed.last("output-signature") {
        write(path, &signature)?;
        eprintln!("Signature wrote in the file {path}");
    }
    if let (Some(path), Some(cert)) = (parsed.last("output-certificate"), &signer.certificate) {
        write(path, cert)?;
        eprintln!("Certificate wrote in the file {path}");
    }
    if let Some(path) = parsed.last("bundle") {
        let mut bundle = json!({"base64Signature": signature, "cert": signer.certificate});
        if tlog {
            bundle["rekorBundle"] =
                json!({"fake": "no transparency log: the fake cosign uploads nothing"});
        }
        write(path, &bundle.to_string())?;
        eprintln!("Wrote bundle to file {path}");
    }
    println!("{signature}");
    Ok(())
}

/// `cosign verify-blob (--key K | --certificate C --certificate-identity …)
/// (--signature S | --bundle B) <blob>` (cmd/cosign/cli/verify/verify_blob.go):
/// `--signature` is a file or the base64 text itself; "Verified OK" on
/// stderr. Without `--insecure-ignore-tlog`, a signature with no tlog
/// entry does not verify (as for images).
fn verify_blob(parsed: &Parsed, blobs: &[String]) -> Result<(), Failure> {
    let [blob] = blobs else {
        return Err(fail(format!("accepts 1 arg(s), received {}", blobs.len())));
    };
    let trust = trust_from(parsed)?;
    let bundle: Option<Value> = match parsed.last("bundle") {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| fail(format!("open {path}: {}", io_text(&e))))?;
            Some(serde_json::from_str(&text).map_err(|e| fail(format!("parsing bundle: {e}")))?)
        }
        None => None,
    };
    let signature = match (parsed.last("signature"), &bundle) {
        (Some(s), _) => std::fs::read_to_string(s)
            .unwrap_or_else(|_| s.to_owned())
            .trim()
            .to_owned(),
        (None, Some(b)) => b["base64Signature"].as_str().unwrap_or("").to_owned(),
        (None, None) => return Err(fail("missing flag '--signature'")),
    };
    let certificate = match parsed.last("certificate") {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| fail(format!("open {path}: {}", io_text(&e))))?,
        ),
        None => bundle
            .as_ref()
            .and_then(|b| b["cert"].as_str().map(str::to_owned)),
    };
    let bytes = std::fs::read(blob).map_err(|e| fail(format!("open {blob}: {}", io_text(&e))))?;
    check_signature(&trust, &bytes, &signature, certificate.as_deref()).map_err(fail)?;
    let logged = bundle
        .as_ref()
        .is_some_and(|b| b.get("rekorBundle").is_some());
    if !parsed.bool("insecure-ignore-tlog") && !logged {
        return Err(fail(
            "fake cosign: no transparency log entry for this signature (pass --insecure-ignore-tlog for a key signed with --tlog-upload=false)",
        ));
    }
    eprintln!("Verified OK");
    Ok(())
}

/// cosign's predicate type names (cmd/cosign/cli/options/predicate.go);
/// anything else is taken as a URI.
fn predicate_uri(kind: &str) -> String {
    match kind {
        "slsaprovenance" | "slsaprovenance02" => "https://slsa.dev/provenance/v0.2",
        "slsaprovenance1" => "https://slsa.dev/provenance/v1",
        "link" => "https://in-toto.io/Link/v1",
        "spdx" | "spdxjson" => "https://spdx.dev/Document",
        "cyclonedx" => "https://cyclonedx.org/bom",
        "vuln" => "https://cosign.sigstore.dev/attestation/vuln/v1",
        "openvex" => "https://openvex.dev/ns",
        "custom" => "https://cosign.sigstore.dev/attestation/v1",
        other => other,
    }
    .to_owned()
}

fn attest(parsed: &Parsed, images: &[String]) -> Result<(), Failure> {
    if images.is_empty() {
        return Err(fail("requires at least 1 arg(s), only received 0"));
    }
    let file = parsed
        .last("predicate")
        .ok_or_else(|| fail("required flag(s) \"predicate\" not set"))?;
    let text =
        std::fs::read_to_string(file).map_err(|e| fail(format!("open {file}: {}", io_text(&e))))?;
    let predicate: Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("invalid predicate {file}: {e}")))?;
    let uri = predicate_uri(parsed.last("type").unwrap_or("custom"));
    let signer = signer(parsed)?;
    let tlog = parsed.last("tlog-upload") != Some("false");
    eprintln!("Using payload from: {file}");
    for img in images {
        let t = target(img, true)?;
        let hex = t.digest.trim_start_matches("sha256:");
        let statement = json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": uri,
            "subject": [{"name": t.r.context_name(), "digest": {"sha256": hex}}],
            "predicate": predicate,
        })
        .to_string();
        let sig = oci::sign(&signer.key, &oci::pae(oci::INTOTO, statement.as_bytes()));
        let envelope = json!({
            "payloadType": oci::INTOTO,
            "payload": B64.encode(statement.as_bytes()),
            "signatures": [{"keyid": "", "sig": sig}],
        })
        .to_string()
        .into_bytes();
        let mut a = annotations("", &signer, tlog);
        a.insert(oci::PREDICATE_TYPE_ANNOTATION.into(), json!(uri));
        let replace = parsed.bool("replace").then_some(uri.as_str());
        append(
            &t,
            &oci::tag(&t.digest, "att"),
            Layer::new(oci::DSSE, envelope, a),
            replace,
        )?;
    }
    Ok(())
}

/// What `verify` was asked to trust.
enum Trust {
    Key(VerifyingKey),
    Keyless(Identity),
}

struct Identity {
    subject: Option<String>,
    subject_re: Option<Regex>,
    issuer: Option<String>,
    issuer_re: Option<Regex>,
}

impl Identity {
    fn matches(&self, subject: &str, issuer: &str) -> bool {
        self.subject.as_deref().is_none_or(|s| s == subject)
            && self.subject_re.as_ref().is_none_or(|r| r.is_match(subject))
            && self.issuer.as_deref().is_none_or(|s| s == issuer)
            && self.issuer_re.as_ref().is_none_or(|r| r.is_match(issuer))
    }
}

fn trust_from(parsed: &Parsed) -> Result<Trust, Failure> {
    if parsed.is_set("key") {
        for other in IDENTITY_FLAGS {
            if parsed.is_set(other) {
                let mut both = ["key", other];
                both.sort_unstable();
                return Err(fail(format!(
                    "if any flags in the group [key {other}] are set none of the others can be; [{}] were all set",
                    both.join(" ")
                )));
            }
        }
    }
    if let Some(k) = parsed.last("key") {
        let text = key_ref_text(k, "loading public key")?;
        let key = oci::load_public(&text).map_err(|e| fail(format!("loading public key: {e}")))?;
        return Ok(Trust::Key(key));
    }
    let text = |f: &str| parsed.last(f).filter(|v| !v.is_empty()).map(str::to_string);
    let re = |f: &str| -> Result<Option<Regex>, Failure> {
        text(f)
            .map(|p| go_regexp::compile(&p).map_err(fail))
            .transpose()
    };
    let identity = Identity {
        subject: text("certificate-identity"),
        subject_re: re("certificate-identity-regexp")?,
        issuer: text("certificate-oidc-issuer"),
        issuer_re: re("certificate-oidc-issuer-regexp")?,
    };
    if identity.subject.is_none() && identity.subject_re.is_none() {
        return Err(fail(
            "--certificate-identity or --certificate-identity-regexp is required for verification in keyless mode",
        ));
    }
    if identity.issuer.is_none() && identity.issuer_re.is_none() {
        return Err(fail(
            "--certificate-oidc-issuer or --certificate-oidc-issuer-regexp is required for verification in keyless mode",
        ));
    }
    Ok(Trust::Keyless(identity))
}

/// Check one signature (`sig` over `message`, with the layer's annotations)
/// under `trust`; `Ok(Some((subject, issuer)))` for keyless.
fn check_signature(
    trust: &Trust,
    message: &[u8],
    sig: &str,
    certificate: Option<&str>,
) -> Result<Option<(String, String)>, String> {
    match trust {
        Trust::Key(key) => {
            if oci::verify(key, message, sig) {
                Ok(None)
            } else {
                Err("invalid signature when validating ASN.1 encoded signature".into())
            }
        }
        Trust::Keyless(identity) => {
            let cert = certificate
                .and_then(oci::read_certificate)
                .ok_or("no certificate found on signature")?;
            if !identity.matches(&cert.subject, &cert.issuer) {
                return Err(format!(
                    "none of the expected identities matched what was in the certificate, got subjects [{}] with issuer {}",
                    cert.subject, cert.issuer
                ));
            }
            if !oci::verify(&cert.key, message, sig) {
                return Err("invalid signature when validating ASN.1 encoded signature".into());
            }
            Ok(Some((cert.subject, cert.issuer)))
        }
    }
}

/// The transparency-log rule: without `--insecure-ignore-tlog`, a signature
/// with no tlog entry does not verify.
fn check_tlog(parsed: &Parsed, layer: &Layer) -> Result<(), String> {
    if parsed.bool("insecure-ignore-tlog") || layer.annotation(oci::BUNDLE_ANNOTATION).is_some() {
        Ok(())
    } else {
        Err("signature not found in transparency log".into())
    }
}

/// Signature layers of the image: `.sig` (v2 and v3) and, for v3, the
/// bundle referrers under the fallback tag.
fn signature_layers(t: &Target) -> Result<Vec<Layer>, Failure> {
    let mut layers = oci::read_layers(&t.reg, &t.r.repository, &oci::tag(&t.digest, "sig"))
        .map_err(fail)?
        .unwrap_or_default();
    if is_v3() {
        let fallback = t.digest.replacen(':', "-", 1);
        layers.extend(
            oci::read_layers(&t.reg, &t.r.repository, &fallback)
                .map_err(fail)?
                .unwrap_or_default(),
        );
    }
    Ok(layers)
}

/// (payload, signature, certificate, tlog entry present) of a layer.
fn layer_parts(layer: &Layer) -> Result<(Vec<u8>, String, Option<String>), String> {
    let blob = layer.verified_blob().ok_or_else(|| {
        format!(
            "fetching payload {}: blob missing or digest mismatch",
            layer.digest
        )
    })?;
    if layer.media_type == BUNDLE_V03 {
        let b: Value = serde_json::from_slice(blob).map_err(|e| format!("bundle: {e}"))?;
        let payload = B64
            .decode(b.get("payload").and_then(Value::as_str).unwrap_or_default())
            .map_err(|e| format!("bundle payload: {e}"))?;
        let sig = b
            .get("signature")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let cert = b
            .get("certificate")
            .and_then(Value::as_str)
            .map(str::to_owned);
        return Ok((payload, sig.to_owned(), cert));
    }
    let sig = layer
        .annotation(oci::SIGNATURE_ANNOTATION)
        .ok_or("no signature annotation on layer")?;
    Ok((
        blob.to_vec(),
        sig.to_owned(),
        layer
            .annotation(oci::CERTIFICATE_ANNOTATION)
            .map(str::to_owned),
    ))
}

fn verify(parsed: &Parsed, images: &[String]) -> Result<(), Failure> {
    if images.is_empty() {
        return Err(fail("requires at least 1 arg(s), only received 0"));
    }
    let trust = trust_from(parsed)?;
    let text_output = parsed.last("output") == Some("text");
    for img in images {
        let t = target(img, false)?;
        let layers = signature_layers(&t)?;
        if layers.is_empty() {
            return Err(Failure {
                message: "no signatures found".into(),
                code: 10,
            });
        }
        let mut reasons = Vec::new();
        let mut good = Vec::new();
        for layer in &layers {
            let checked = layer_parts(layer).and_then(|(payload, sig, cert)| {
                let who = check_signature(&trust, &payload, &sig, cert.as_deref())?;
                if layer.media_type != BUNDLE_V03 {
                    check_tlog(parsed, layer)?;
                }
                let claims: Value = serde_json::from_slice(&payload)
                    .map_err(|e| format!("parsing payload: {e}"))?;
                let found = claims
                    .pointer("/critical/image/docker-manifest-digest")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if found != t.digest {
                    return Err(format!("invalid or missing digest in claim: {found}"));
                }
                Ok((claims, who))
            });
            match checked {
                Ok(ok) => good.push(ok),
                Err(why) => reasons.push(why),
            }
        }
        if good.is_empty() {
            return Err(Failure {
                message: format!("no matching signatures: {}", reasons.join("\n ")),
                code: 12,
            });
        }
        print_header(&t.r.name(), &trust, parsed);
        let payloads: Vec<Value> = good
            .into_iter()
            .map(|(mut claims, who)| {
                if let (Some((subject, issuer)), Some(o)) = (who, claims.as_object_mut()) {
                    o.insert(
                        "optional".into(),
                        json!({"1.3.6.1.4.1.57264.1.1": issuer, "Issuer": issuer, "Subject": subject}),
                    );
                }
                claims
            })
            .collect();
        if text_output {
            for p in &payloads {
                if let Some(s) = p.pointer("/optional/Subject").and_then(Value::as_str) {
                    eprintln!("Certificate subject: {s}");
                }
                if let Some(i) = p.pointer("/optional/Issuer").and_then(Value::as_str) {
                    eprintln!("Certificate issuer URL: {i}");
                }
                println!("{p}");
            }
        } else {
            println!("{}", Value::Array(payloads));
        }
    }
    Ok(())
}

fn verify_attestation(parsed: &Parsed, images: &[String]) -> Result<(), Failure> {
    if images.is_empty() {
        return Err(fail("requires at least 1 arg(s), only received 0"));
    }
    let trust = trust_from(parsed)?;
    let kind = parsed.last("type").unwrap_or("custom");
    let uri = predicate_uri(kind);
    for img in images {
        let t = target(img, false)?;
        let layers = oci::read_layers(&t.reg, &t.r.repository, &oci::tag(&t.digest, "att"))
            .map_err(fail)?
            .unwrap_or_default();
        if layers.is_empty() {
            return Err(fail("no matching attestations: no attestations found"));
        }
        let hex = t.digest.trim_start_matches("sha256:");
        let mut reasons = Vec::new();
        let mut good: Vec<(String, Value)> = Vec::new();
        for layer in &layers {
            let checked = (|| -> Result<(String, Value), String> {
                let blob = layer.verified_blob().ok_or_else(|| {
                    format!(
                        "fetching attestation {}: blob missing or digest mismatch",
                        layer.digest
                    )
                })?;
                let envelope: Value =
                    serde_json::from_slice(blob).map_err(|e| format!("parsing envelope: {e}"))?;
                let payload_type = envelope
                    .get("payloadType")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let payload = B64
                    .decode(
                        envelope
                            .get("payload")
                            .and_then(Value::as_str)
                            .unwrap_or(""),
                    )
                    .map_err(|e| format!("decoding payload: {e}"))?;
                let sig = envelope
                    .pointer("/signatures/0/sig")
                    .and_then(Value::as_str)
                    .ok_or("no signature in the envelope")?;
                check_signature(
                    &trust,
                    &oci::pae(payload_type, &payload),
                    sig,
                    layer.annotation(oci::CERTIFICATE_ANNOTATION),
                )?;
                check_tlog(parsed, layer)?;
                let statement: Value = serde_json::from_slice(&payload)
                    .map_err(|e| format!("parsing statement: {e}"))?;
                let names_image = statement
                    .get("subject")
                    .and_then(Value::as_array)
                    .is_some_and(|s| {
                        s.iter().any(|x| {
                            x.pointer("/digest/sha256").and_then(Value::as_str) == Some(hex)
                        })
                    });
                if !names_image {
                    return Err("no matching subject digest found".into());
                }
                let predicate_type = statement
                    .get("predicateType")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                Ok((predicate_type, envelope))
            })();
            match checked {
                Ok(ok) => good.push(ok),
                Err(why) => reasons.push(why),
            }
        }
        if good.is_empty() {
            return Err(fail(format!(
                "no matching attestations: {}",
                reasons.join("\n ")
            )));
        }
        let found: Vec<&str> = good.iter().map(|(t, _)| t.as_str()).collect();
        let matching: Vec<&Value> = good
            .iter()
            .filter(|(t, _)| *t == uri)
            .map(|(_, e)| e)
            .collect();
        if matching.is_empty() {
            return Err(fail(format!(
                "none of the attestations matched the predicate type: {kind}, found: {}",
                found.join(",")
            )));
        }
        print_header(&t.r.name(), &trust, parsed);
        for envelope in matching {
            println!("{envelope}");
        }
    }
    Ok(())
}

fn print_header(name: &str, trust: &Trust, parsed: &Parsed) {
    eprintln!();
    eprintln!("Verification for {name} --");
    eprintln!("The following checks were performed on each of these signatures:");
    if parsed.last("check-claims") != Some("false") {
        eprintln!("  - The cosign claims were validated");
    }
    if !parsed.bool("insecure-ignore-tlog") {
        eprintln!("  - Existence of the claims in the transparency log was verified offline");
    }
    match trust {
        Trust::Key(_) => {
            eprintln!("  - The signatures were verified against the specified public key");
        }
        Trust::Keyless(_) => eprintln!(
            "  - The code-signing certificate was verified using trusted certificate authority certificates"
        ),
    }
}
