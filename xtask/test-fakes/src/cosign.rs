//! FAKE `cosign` for xtask's tests. This is NOT sigstore/cosign: it signs
//! nothing and checks no cryptography. It checks the argument shapes of
//! cosign v2 and answers with its exit codes and output shapes, keeping
//! "signatures" in `$FAKE_COSIGN_STATE`.
//!
//! Sources for each shape it checks (read through the code/docs search):
//! - Exit codes 10 (no signatures), 11 (tag not found), 12 (no matching
//!   signatures), 1 (anything else): sigstore/cosign
//!   cmd/cosign/errors/exit_codes.go and exit_code_lookup.go.
//! - Error texts "no signatures found", "no matching signatures: <reasons>",
//!   "image tag not found: <registry error>": sigstore/cosign pkg/cosign/verify.go
//!   (`verifySignatures`, `VerifyImageSignatures`) and pkg/cosign/errors.go.
//! - `verify` flags (`--key`, `--output/-o` json|text default json,
//!   `--check-claims`, `--insecure-ignore-tlog`, MinimumNArgs(1)):
//!   sigstore/cosign cmd/cosign/cli/verify.go and cli/options/verify.go.
//! - Keyless needs an identity: "--certificate-identity or
//!   --certificate-identity-regexp is required for verification in keyless
//!   mode" (and the same for --certificate-oidc-issuer[-regexp]):
//!   sigstore/cosign cmd/cosign/cli/options/certificate.go `Identities()`.
//! - Header on stderr ("Verification for <ref.Name()> --", "The following
//!   checks were performed ...") and the JSON array of
//!   `{"critical":{"identity":{"docker-reference"},"image":{"docker-manifest-digest"},"type"},"optional"}`
//!   on stdout, keyless adding Subject/Issuer/1.3.6.1.4.1.57264.1.1:
//!   sigstore/cosign cmd/cosign/cli/verify/verify.go `PrintVerificationHeader`,
//!   `PrintVerification`.
//! - "Error: <msg>" then "main.go:74: error during command execution: <msg>"
//!   (cobra prints the first, cosign's main the second): a captured real run
//!   quoted in public notes; the exclusive-flag text is cobra's
//!   `validateExclusiveFlagGroups` ("if any flags in the group [a b] are set
//!   none of the others can be; [a b] were all set").
//! - Image references are parsed like go-containerregistry `name.ParseReference`
//!   (see `image_ref.rs`).
//!
//! Deliberate differences (so tests stay honest):
//! - `sign` REQUIRES a digest-pinned image; the real one warns and resolves tags.
//! - `verify` of `repo:tag` without a digest cannot resolve tags: exit 11 with
//!   the real tag-not-found wording, as if the registry had no such tag.
//! - `--key` together with any `--certificate-*` identity flag is rejected with
//!   cobra's mutually-exclusive text. (Unconfirmed for real cosign v2, which
//!   appears to ignore the identity flags when `--key` is given; the release
//!   tool must never pass both, so the fake is strict.)
//! - Key pairing: a signature made with `--key D/x.key` verifies with
//!   `--key D/x.pub`, with the same file, or with a file of the same content.
//!
//! Environment: `FAKE_COSIGN_STATE` (required state dir), `FAKE_COSIGN_EXIT`
//! (force an exit code), `FAKE_COSIGN_IDENTITY` / `FAKE_COSIGN_ISSUER`
//! (keyless `sign`). State: `calls.log` (one JSON argv array per call, the
//! `--identity-token` value redacted) and `signatures.json`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Value, json};
use test_fakes::cli::{self, FlagSpec, Parsed};
use test_fakes::go_regexp::{self, Regex};
use test_fakes::image_ref::ImageRef;
use test_fakes::state;

const STATE_ENV: &str = "FAKE_COSIGN_STATE";
const SIGNATURES: &str = "signatures.json";

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
    cli::boolean_short("yes", 'y'),
    cli::boolean("tlog-upload"),
    cli::boolean("upload"),
    cli::boolean_short("recursive", 'r'),
    cli::boolean("allow-insecure-registry"),
    cli::boolean("allow-http-registry"),
    cli::boolean("insecure-ignore-tlog"),
    cli::boolean("check-claims"),
    cli::boolean_short("verbose", 'd'),
    cli::boolean("json"),
];

const COMMON: &[&str] = &["timeout", "verbose", "output-file"];
const SIGN_FLAGS: &[&str] = &[
    "key",
    "yes",
    "identity-token",
    "tlog-upload",
    "upload",
    "recursive",
    "annotations",
    "allow-insecure-registry",
    "allow-http-registry",
];
const VERIFY_FLAGS: &[&str] = &[
    "key",
    "certificate-identity",
    "certificate-identity-regexp",
    "certificate-oidc-issuer",
    "certificate-oidc-issuer-regexp",
    "output",
    "rekor-url",
    "max-workers",
    "annotations",
    "allow-insecure-registry",
    "allow-http-registry",
    "insecure-ignore-tlog",
    "check-claims",
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
    match command.as_str() {
        "version" => {
            cli::only_allowed(&parsed, &[COMMON, &["json"]].concat()).map_err(fail)?;
            version(parsed.bool("json"));
            Ok(())
        }
        "sign" => {
            cli::only_allowed(&parsed, &[COMMON, SIGN_FLAGS].concat()).map_err(fail)?;
            sign(dir, &parsed, rest)
        }
        "verify" => {
            cli::only_allowed(&parsed, &[COMMON, VERIFY_FLAGS].concat()).map_err(fail)?;
            verify(dir, &parsed, rest)
        }
        other => Err(fail(format!(
            "unknown command \"{other}\" for \"cosign\"\nRun 'cosign --help' for usage."
        ))),
    }
}

/// The block sigs.k8s.io/release-utils prints for `cosign version`.
fn version(as_json: bool) {
    let fields = [
        ("gitVersion", "GitVersion", "v2.4.1"),
        ("gitCommit", "GitCommit", "fake-cosign-for-tests"),
        ("gitTreeState", "GitTreeState", "clean"),
        ("buildDate", "BuildDate", "2024-10-03T17:01:50Z"),
        ("goVersion", "GoVersion", "go1.22.7"),
        ("compiler", "Compiler", "gc"),
        ("platform", "Platform", "linux/amd64"),
    ];
    if as_json {
        let mut m = serde_json::Map::new();
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

fn load_signatures(dir: &Path) -> Result<Value, Failure> {
    state::read_json(&dir.join(SIGNATURES), json!({})).map_err(fail)
}

fn key_file(path: &str, what: &str) -> Result<(PathBuf, String), Failure> {
    let bytes =
        std::fs::read(path).map_err(|e| fail(format!("{what}: open {path}: {}", io_text(&e))))?;
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
    Ok((canonical, state::hex64(&bytes)))
}

/// Go's wording for the common I/O errors.
fn io_text(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory",
        std::io::ErrorKind::PermissionDenied => "permission denied",
        _ => "input/output error",
    }
}

fn sign(dir: &Path, parsed: &Parsed, images: &[String]) -> Result<(), Failure> {
    if images.is_empty() {
        return Err(fail("requires at least 1 arg(s), only received 0"));
    }
    let entry = match parsed.last("key") {
        Some(k) => {
            let (path, fingerprint) = key_file(k, "getting signer: reading key")?;
            json!({"kind": "key", "key_path": path.to_string_lossy(), "key_fingerprint": fingerprint})
        }
        None => {
            let id = std::env::var("FAKE_COSIGN_IDENTITY").unwrap_or_default();
            let issuer = std::env::var("FAKE_COSIGN_ISSUER").unwrap_or_default();
            if id.is_empty() || issuer.is_empty() {
                return Err(fail(
                    "getting signer: getting key from Fulcio: retrieving cert: no identity token \
                     (fake cosign: keyless sign needs FAKE_COSIGN_IDENTITY and FAKE_COSIGN_ISSUER)",
                ));
            }
            json!({"kind": "keyless", "subject": id, "issuer": issuer})
        }
    };
    let mut refs = Vec::new();
    for img in images {
        let r = ImageRef::parse(img).map_err(|e| fail(format!("parsing reference: {e}")))?;
        if r.digest.is_none() {
            return Err(fail(format!(
                "fake cosign: sign needs a digest-pinned image (repo@sha256:<hex>), got {img}: \
                 the real cosign would warn and sign whatever the tag points at now"
            )));
        }
        refs.push(r);
    }
    let mut all = load_signatures(dir)?;
    for r in &refs {
        let key = r.name();
        let list = all
            .as_object_mut()
            .ok_or_else(|| fail("fake cosign: corrupt signatures.json"))?
            .entry(key)
            .or_insert_with(|| json!([]));
        if let Some(arr) = list.as_array_mut()
            && !arr.contains(&entry)
        {
            arr.push(entry.clone());
        }
        eprintln!("Pushing signature to: {}", r.context_name());
    }
    state::write_json(&dir.join(SIGNATURES), &all).map_err(fail)
}

/// What `verify` was asked to trust.
enum Trust {
    Key { path: PathBuf, fingerprint: String },
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
        let (path, fingerprint) = key_file(k, "loading public key")?;
        return Ok(Trust::Key { path, fingerprint });
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

/// Key files pair up as `x.key` (signing) and `x.pub` (verifying).
fn same_key_pair(signed_with: &Path, verify_with: &Path) -> bool {
    signed_with == verify_with
        || (signed_with.extension().is_some_and(|e| e == "key")
            && verify_with.extension().is_some_and(|e| e == "pub")
            && signed_with.with_extension("") == verify_with.with_extension(""))
}

/// Why one stored signature does not verify under `trust` (None = it does).
fn mismatch(sig: &Value, trust: &Trust) -> Option<String> {
    let kind = sig.get("kind").and_then(Value::as_str).unwrap_or("");
    let field = |k: &str| sig.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match trust {
        Trust::Key { path, fingerprint } => {
            let ok = kind == "key"
                && (same_key_pair(Path::new(&field("key_path")), path)
                    || field("key_fingerprint") == *fingerprint);
            (!ok).then(|| "invalid signature when validating ASN.1 encoded signature".to_string())
        }
        Trust::Keyless(identity) => {
            if kind != "keyless" {
                return Some("no certificate found on signature".to_string());
            }
            let (subject, issuer) = (field("subject"), field("issuer"));
            (!identity.matches(&subject, &issuer)).then(|| {
                format!(
                    "none of the expected identities matched what was in the certificate, got subjects [{subject}] with issuer {issuer}"
                )
            })
        }
    }
}

fn verify(dir: &Path, parsed: &Parsed, images: &[String]) -> Result<(), Failure> {
    if images.is_empty() {
        return Err(fail("requires at least 1 arg(s), only received 0"));
    }
    let trust = trust_from(parsed)?;
    let text_output = parsed.last("output") == Some("text");
    let all = load_signatures(dir)?;
    for img in images {
        let r = ImageRef::parse(img).map_err(|e| fail(format!("parsing reference: {e}")))?;
        let Some(digest) = r.digest.clone() else {
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
        let stored = all
            .get(r.name())
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if stored.is_empty() {
            return Err(Failure {
                message: "no signatures found".into(),
                code: 10,
            });
        }
        let mut reasons = Vec::new();
        let mut good = Vec::new();
        for sig in &stored {
            match mismatch(sig, &trust) {
                Some(why) => reasons.push(why),
                None => good.push(sig.clone()),
            }
        }
        if good.is_empty() {
            return Err(Failure {
                message: format!("no matching signatures: {}", reasons.join("\n ")),
                code: 12,
            });
        }
        print_header(&r.name(), &trust, parsed);
        let payloads: Vec<Value> = good
            .iter()
            .map(|sig| payload(&r.context_name(), &digest, sig))
            .collect();
        if text_output {
            for p in &payloads {
                if let Some(s) = p.pointer("/optional/Subject").and_then(Value::as_str) {
                    eprintln!("Certificate subject: {s}");
                }
                if let Some(i) = p.pointer("/optional/Issuer").and_then(Value::as_str) {
                    eprintln!("Certificate issuer URL: {i}");
                }
                let mut bare = p.clone();
                if let Some(o) = bare.as_object_mut() {
                    o.insert("optional".into(), Value::Null);
                }
                println!("{bare}");
            }
        } else {
            println!("{}", Value::Array(payloads));
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
        Trust::Key { .. } => {
            eprintln!("  - The signatures were verified against the specified public key");
        }
        Trust::Keyless(_) => eprintln!(
            "  - The code-signing certificate was verified using trusted certificate authority certificates"
        ),
    }
}

/// The simple-signing payload cosign prints for one verified signature.
fn payload(repo: &str, digest: &str, sig: &Value) -> Value {
    let optional = if sig.get("kind").and_then(Value::as_str) == Some("keyless") {
        let subject = sig.get("subject").cloned().unwrap_or(Value::Null);
        let issuer = sig.get("issuer").cloned().unwrap_or(Value::Null);
        json!({"1.3.6.1.4.1.57264.1.1": issuer, "Issuer": issuer, "Subject": subject})
    } else {
        Value::Null
    };
    json!({
        "critical": {
            "identity": {"docker-reference": repo},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": optional
    })
}
