//! Signature and attestation verification with the real `cosign` CLI.
//!
//! Shapes follow sigstore/cosign v2 (the one major version every workflow
//! pins, see docs/distribution.md): `cosign verify --key <ref> <image>` or
//! keyless `--certificate-identity[-regexp] … --certificate-oidc-issuer …`
//! (the two exclude each other); `cosign verify-attestation --type <t>`.
//! `--key` takes a path, URL, KMS URI or `env://VAR`, never PEM text: a
//! variable that holds PEM text is passed as `env://<that variable>`.
//! Key-based signatures are made without the transparency log, so they are
//! verified with `--insecure-ignore-tlog` (cosign v2 answers exit 12
//! otherwise). Exit codes from `cmd/cosign/errors/exit_codes.go`: 10 no
//! signatures found, 11 image tag not found, 12 no matching signatures.
//! Every flag also reads `COSIGN_<FLAG>`, so `--output json` is explicit.

use anyhow::bail;

use crate::model::image::ImageRef;
use crate::support::base64;
use crate::support::cmd::Cmd;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureStatus {
    Verified,
    Unverified,
}

/// The outcome of one cosign check: a signature, or an attestation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub status: SignatureStatus,
    /// Why not verified (`None` when verified).
    pub reason: Option<String>,
}

impl Signature {
    pub fn unverified(reason: impl Into<String>) -> Signature {
        Signature {
            status: SignatureStatus::Unverified,
            reason: Some(reason.into()),
        }
    }

    fn verified() -> Signature {
        Signature {
            status: SignatureStatus::Verified,
            reason: None,
        }
    }
}

/// The two attestations' checks, as the build and release records keep
/// them (`None`: not checked, e.g. a record written before attestations).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attestations {
    #[serde(default)]
    pub sbom_status: Option<SignatureStatus>,
    #[serde(default)]
    pub sbom_reason: Option<String>,
    #[serde(default)]
    pub provenance_status: Option<SignatureStatus>,
    #[serde(default)]
    pub provenance_reason: Option<String>,
}

impl Attestations {
    pub fn new(sbom: &Signature, provenance: &Signature) -> Attestations {
        Attestations {
            sbom_status: Some(sbom.status),
            sbom_reason: sbom.reason.clone(),
            provenance_status: Some(provenance.status),
            provenance_reason: provenance.reason.clone(),
        }
    }
}

/// The attestations this tool makes: cosign's `--type` name, and the
/// in-toto predicate type it stands for (cosign options/predicate.go).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Predicate {
    Sbom,
    Provenance,
}

impl Predicate {
    pub fn cosign_type(self) -> &'static str {
        match self {
            Predicate::Sbom => "spdxjson",
            Predicate::Provenance => "slsaprovenance1",
        }
    }

    pub fn uri(self) -> &'static str {
        match self {
            Predicate::Sbom => "https://spdx.dev/Document",
            Predicate::Provenance => "https://slsa.dev/provenance/v1",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Predicate::Sbom => "SBOM",
            Predicate::Provenance => "provenance",
        }
    }
}

/// What `--key` gets for a variable: its value when it is a reference
/// (path, URL, KMS URI, `env://…`), `env://<var>` when it holds PEM text, so
/// key material never appears on a command line or in output.
pub fn key_reference(var: &str, value: &str) -> anyhow::Result<String> {
    let v = value.trim();
    if v.starts_with("-----BEGIN") {
        return Ok(format!("env://{var}"));
    }
    if v.contains('\n') || v.contains("PRIVATE KEY") || v.contains("PUBLIC KEY") {
        bail!(
            "{var} is neither a key reference nor a PEM key: set it to a path, a KMS URI or env://VAR (cosign's --key), or to the whole PEM text"
        );
    }
    Ok(v.to_owned())
}

/// How to verify, from `COSIGN_PUBLIC_KEY` or the keyless identity.
#[derive(Debug, PartialEq)]
pub enum Policy {
    Key(String),
    Keyless { identity: Identity, issuer: String },
}

#[derive(Debug, PartialEq)]
pub enum Identity {
    Exact(String),
    /// Go RE2, matched unanchored by cosign: anchor it (`^…$`).
    Regexp(String),
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub fn policy() -> anyhow::Result<Option<Policy>> {
    let key = var("COSIGN_PUBLIC_KEY");
    let exact = var("COSIGN_CERTIFICATE_IDENTITY");
    let regexp = var("COSIGN_CERTIFICATE_IDENTITY_REGEXP");
    let issuer = var("COSIGN_CERTIFICATE_OIDC_ISSUER");
    let identity = match (exact, regexp) {
        (Some(_), Some(_)) => bail!(
            "both COSIGN_CERTIFICATE_IDENTITY and COSIGN_CERTIFICATE_IDENTITY_REGEXP are set: set one (a regexp for branch builds)"
        ),
        (Some(e), None) => Some(Identity::Exact(e)),
        (None, Some(r)) => Some(Identity::Regexp(r)),
        (None, None) => None,
    };
    match (key, identity, issuer) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => bail!(
            "both COSIGN_PUBLIC_KEY and a keyless identity are set: cosign takes one (`--key` excludes the identity flags); unset one of them"
        ),
        (Some(key), None, None) => Ok(Some(Policy::Key(key_reference("COSIGN_PUBLIC_KEY", &key)?))),
        (None, Some(identity), Some(issuer)) => Ok(Some(Policy::Keyless { identity, issuer })),
        (None, Some(_), None) => bail!(
            "a certificate identity is set without COSIGN_CERTIFICATE_OIDC_ISSUER: set both for keyless verification"
        ),
        (None, None, Some(_)) => bail!(
            "COSIGN_CERTIFICATE_OIDC_ISSUER is set without COSIGN_CERTIFICATE_IDENTITY or COSIGN_CERTIFICATE_IDENTITY_REGEXP: set both for keyless verification"
        ),
        (None, None, None) => Ok(None),
    }
}

impl Policy {
    fn args(&self) -> Vec<String> {
        match self {
            Policy::Key(key) => vec![
                "--key".to_owned(),
                key.clone(),
                // Key-based signing uploads nothing to the transparency log.
                "--insecure-ignore-tlog".to_owned(),
            ],
            Policy::Keyless { identity, issuer } => {
                let (flag, value) = match identity {
                    Identity::Exact(v) => ("--certificate-identity", v),
                    Identity::Regexp(v) => ("--certificate-identity-regexp", v),
                };
                vec![
                    flag.to_owned(),
                    value.clone(),
                    "--certificate-oidc-issuer".to_owned(),
                    issuer.clone(),
                ]
            }
        }
    }
}

impl Policy {
    /// The same trust for `cosign verify-blob` (its flags are verify's).
    pub fn blob_args(&self) -> Vec<String> {
        self.args()
    }
}

const NO_POLICY: &str = "no key or identity configured (set COSIGN_PUBLIC_KEY, or COSIGN_CERTIFICATE_IDENTITY[_REGEXP] and COSIGN_CERTIFICATE_OIDC_ISSUER)";

fn registry_flag(cmd: Cmd, image: &ImageRef) -> Cmd {
    if image.repository.is_loopback() {
        cmd.arg("--allow-insecure-registry")
    } else {
        cmd
    }
}

pub fn verify_cmd(image: &ImageRef, policy: &Policy) -> Cmd {
    let cmd = Cmd::new("cosign")
        .arg("verify")
        .args(policy.args())
        .args(["--output", "json"]);
    registry_flag(cmd, image).arg(image.by_digest())
}

pub fn verify_attestation_cmd(image: &ImageRef, policy: &Policy, predicate: Predicate) -> Cmd {
    let cmd = Cmd::new("cosign")
        .arg("verify-attestation")
        .args(policy.args())
        .args(["--type", predicate.cosign_type()]);
    registry_flag(cmd, image).arg(image.by_digest())
}

/// The signature check alone, never an error but for a policy mistake.
pub fn check(image: &ImageRef) -> anyhow::Result<Signature> {
    if which::which("cosign").is_err() {
        return Ok(Signature::unverified("cosign not found"));
    }
    let Some(policy) = policy()? else {
        return Ok(Signature::unverified(NO_POLICY));
    };
    let out = verify_cmd(image, &policy).output()?;
    Ok(match out.status.code() {
        Some(0) => match verified_digests(&out.stdout) {
            Some(digests)
                if !digests.is_empty() && digests.iter().all(|d| d == image.digest.as_str()) =>
            {
                Signature::verified()
            }
            _ => Signature::unverified("cosign output does not name the image digest"),
        },
        Some(10) => Signature::unverified("no signature"),
        Some(11) => Signature::unverified("image not found by cosign"),
        Some(12) => Signature::unverified(format!(
            "bad signature (no matching signatures: {})",
            cosign_reason(&out.stderr, "no matching signatures: ")
        )),
        _ => Signature::unverified(format!("cosign failed: {}", out.last_words())),
    })
}

/// The attestation of `predicate` on `repo@digest`, checked (cosign verifies
/// the DSSE signature, this checks each statement names the image digest),
/// and the predicates of the verified statements (empty unless verified): what the signed proof SAYS, so a caller can
/// hold it to the commit and the bytes (issue 24), and release can ship the
/// attested SBOM itself rather than a fresh one.
pub fn read_attestation(
    image: &ImageRef,
    predicate: Predicate,
) -> anyhow::Result<(Signature, Vec<serde_json::Value>)> {
    if which::which("cosign").is_err() {
        return Ok((Signature::unverified("cosign not found"), Vec::new()));
    }
    let Some(policy) = policy()? else {
        return Ok((Signature::unverified(NO_POLICY), Vec::new()));
    };
    let out = verify_attestation_cmd(image, &policy, predicate).output()?;
    let name = predicate.name();
    if out.status.success() {
        return Ok(match attested_statements(&out.stdout, predicate) {
            Some(statements)
                if !statements.is_empty()
                    && statements.iter().all(|(d, _)| d == image.digest.as_str()) =>
            {
                (
                    Signature::verified(),
                    statements.into_iter().map(|(_, p)| p).collect(),
                )
            }
            _ => (
                Signature::unverified(format!(
                    "cosign output does not name the image digest as the {name} subject"
                )),
                Vec::new(),
            ),
        });
    }
    Ok((unverified_attestation(&out, name), Vec::new()))
}

fn unverified_attestation(out: &crate::support::cmd::Output, name: &str) -> Signature {
    let said = cosign_reason(&out.stderr, "");
    if said.starts_with("none of the attestations matched the predicate type") {
        Signature::unverified(format!("no {name} attestation ({said})"))
    } else if said.contains("no attestations found") {
        Signature::unverified(format!("no {name} attestation (no attestations at all)"))
    } else if said.starts_with("no matching attestations") {
        Signature::unverified(format!("bad {name} attestation ({said})"))
    } else {
        Signature::unverified(format!("cosign failed: {}", out.last_words()))
    }
}

/// cosign's own message: the text after `Error: ` on its first error line,
/// without `prefix`; the rest of a multi-line message joined with `; `.
fn cosign_reason(stderr: &str, prefix: &str) -> String {
    let mut lines = stderr.lines();
    let Some(first) = lines.by_ref().find_map(|l| l.strip_prefix("Error: ")) else {
        return stderr.lines().last().unwrap_or("").trim().to_owned();
    };
    let mut parts = vec![
        first
            .strip_prefix(prefix)
            .unwrap_or(first)
            .trim()
            .to_owned(),
    ];
    parts.extend(
        lines
            .take_while(|l| {
                !l.starts_with("main.go") && !l.contains("error during command execution")
            })
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty()),
    );
    parts.join("; ")
}

/// `critical.image.docker-manifest-digest` of each verified payload.
fn verified_digests(stdout: &str) -> Option<Vec<String>> {
    let value: serde_json::Value = serde_json::from_str(stdout.trim()).ok()?;
    value
        .as_array()?
        .iter()
        .map(|p| {
            p.pointer("/critical/image/docker-manifest-digest")?
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// `sha256:<subject digest>` of each verified DSSE envelope (one per line),
/// `None` if a line is not an in-toto statement of `predicate`.
#[cfg(test)]
fn attested_subjects(stdout: &str, predicate: Predicate) -> Option<Vec<String>> {
    attested_statements(stdout, predicate)
        .map(|statements| statements.into_iter().map(|(d, _)| d).collect())
}

/// `(sha256:<subject digest>, predicate)` of each verified DSSE envelope
/// (one per line), `None` if a line is not an in-toto statement of
/// `predicate`.
fn attested_statements(
    stdout: &str,
    predicate: Predicate,
) -> Option<Vec<(String, serde_json::Value)>> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let envelope: serde_json::Value = serde_json::from_str(line).ok()?;
            let payload = base64::decode(envelope.get("payload")?.as_str()?)?;
            let statement: serde_json::Value = serde_json::from_slice(&payload).ok()?;
            if statement.get("predicateType")?.as_str()? != predicate.uri() {
                return None;
            }
            let hex = statement.pointer("/subject/0/digest/sha256")?.as_str()?;
            let body = statement.get("predicate").cloned().unwrap_or_default();
            Some((format!("sha256:{hex}"), body))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_digest_of_each_verified_payload() {
        let out = r#"[{"critical":{"identity":{"docker-reference":"r"},"image":{"docker-manifest-digest":"sha256:ab"},"type":"cosign container image signature"},"optional":null}]"#;
        assert_eq!(verified_digests(out), Some(vec!["sha256:ab".to_owned()]));
        assert_eq!(verified_digests("not json"), None);
        assert_eq!(verified_digests(r#"[{"critical":{}}]"#), None);
    }

    #[test]
    fn pem_text_becomes_an_env_reference_never_an_argument() {
        assert_eq!(
            key_reference(
                "COSIGN_PUBLIC_KEY",
                "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n"
            )
            .expect("pem"),
            "env://COSIGN_PUBLIC_KEY"
        );
        for reference in [
            "/keys/cosign.pub",
            "env://OTHER",
            "awskms:///arn:aws:kms:x",
            "k8s://ns/secret",
        ] {
            assert_eq!(key_reference("V", reference).expect("ref"), reference);
        }
        let err = key_reference("COSIGN_KEY", "MFkw\nsecret-body").expect_err("garbled");
        assert!(!err.to_string().contains("secret-body"), "{err}");
    }

    const STATEMENT_B64: &str = "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjAuMSIsInByZWRpY2F0ZVR5cGUiOiJodHRwczovL3NwZHguZGV2L0RvY3VtZW50Iiwic3ViamVjdCI6W3sibmFtZSI6InIiLCJkaWdlc3QiOnsic2hhMjU2IjoiYWIifX1dLCJwcmVkaWNhdGUiOnt9fQ==";

    #[test]
    fn reads_cosigns_error_and_the_attested_subject() {
        let stderr = "Error: no matching signatures: invalid signature when validating ASN.1 encoded signature\nmain.go:74: error during command execution: no matching signatures: …\n";
        assert_eq!(
            cosign_reason(stderr, "no matching signatures: "),
            "invalid signature when validating ASN.1 encoded signature"
        );
        // STATEMENT_B64 is base64 of an in-toto statement of an SPDX predicate about sha256:ab.
        let line = serde_json::json!({
            "payloadType": "application/vnd.in-toto+json",
            // base64 of `statement`, from `base64 -w0`.
            "payload": STATEMENT_B64,
            "signatures": [{"keyid": "", "sig": "x"}]
        })
        .to_string();
        assert_eq!(
            attested_subjects(&line, Predicate::Sbom),
            Some(vec!["sha256:ab".to_owned()])
        );
        assert_eq!(attested_subjects(&line, Predicate::Provenance), None);
    }
}
