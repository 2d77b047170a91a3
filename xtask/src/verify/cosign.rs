//! Soft signature verification with the real `cosign` CLI.
//!
//! Shapes follow sigstore/cosign: `cosign verify --key <key> <image>` or
//! keyless `--certificate-identity … --certificate-oidc-issuer …` (the two
//! exclude each other); exit codes from `cmd/cosign/errors/exit_codes.go`:
//! 10 no signatures found, 11 image tag not found, 12 no matching signatures.

use anyhow::bail;

use crate::model::image::ImageRef;
use crate::support::cmd::Cmd;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureStatus {
    Verified,
    Unverified,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub status: SignatureStatus,
    /// Why not verified (`None` when verified).
    pub reason: Option<String>,
}

impl Signature {
    fn unverified(reason: impl Into<String>) -> Signature {
        Signature {
            status: SignatureStatus::Unverified,
            reason: Some(reason.into()),
        }
    }
}

/// How to verify, from `COSIGN_PUBLIC_KEY` or the keyless identity pair.
enum Policy {
    Key(String),
    Keyless { identity: String, issuer: String },
}

fn policy() -> anyhow::Result<Option<Policy>> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let key = var("COSIGN_PUBLIC_KEY");
    let identity = var("COSIGN_CERTIFICATE_IDENTITY");
    let issuer = var("COSIGN_CERTIFICATE_OIDC_ISSUER");
    match (key, identity, issuer) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => bail!(
            "both COSIGN_PUBLIC_KEY and a keyless identity are set: cosign takes one (`--key` excludes the identity flags); unset one of them"
        ),
        (Some(key), None, None) => Ok(Some(Policy::Key(key))),
        (None, Some(identity), Some(issuer)) => Ok(Some(Policy::Keyless { identity, issuer })),
        (None, Some(_), None) => bail!(
            "COSIGN_CERTIFICATE_IDENTITY is set without COSIGN_CERTIFICATE_OIDC_ISSUER: set both for keyless verification"
        ),
        (None, None, Some(_)) => bail!(
            "COSIGN_CERTIFICATE_OIDC_ISSUER is set without COSIGN_CERTIFICATE_IDENTITY: set both for keyless verification"
        ),
        (None, None, None) => Ok(None),
    }
}

pub fn verify_cmd(image: &ImageRef, policy_args: &[String]) -> Cmd {
    let mut cmd = Cmd::new("cosign")
        .arg("verify")
        .args(policy_args.iter().cloned());
    if image.repository.is_loopback() {
        cmd = cmd.arg("--allow-insecure-registry");
    }
    cmd.arg(image.by_digest())
}

/// Verify `repo@digest`. Soft: every outcome but a configuration mistake is
/// a [`Signature`]; `require` turns "unverified" into an error.
pub fn verify(image: &ImageRef, require: bool) -> anyhow::Result<Signature> {
    let signature = check(image)?;
    match (&signature.reason, require) {
        (Some(reason), true) => bail!(
            "signature required (--require-signature) but {} is unverified: {reason}",
            image.by_digest()
        ),
        (Some(reason), false) => {
            eprintln!("signature: unverified ({reason}); continuing (soft policy)")
        }
        (None, _) => eprintln!("signature: verified for {}", image.by_digest()),
    }
    Ok(signature)
}

fn check(image: &ImageRef) -> anyhow::Result<Signature> {
    if which::which("cosign").is_err() {
        return Ok(Signature::unverified("cosign not found"));
    }
    let policy_args = match policy()? {
        Some(Policy::Key(key)) => vec!["--key".to_owned(), key],
        Some(Policy::Keyless { identity, issuer }) => vec![
            "--certificate-identity".to_owned(),
            identity,
            "--certificate-oidc-issuer".to_owned(),
            issuer,
        ],
        None => {
            return Ok(Signature::unverified(
                "no key or identity configured (set COSIGN_PUBLIC_KEY, or COSIGN_CERTIFICATE_IDENTITY and COSIGN_CERTIFICATE_OIDC_ISSUER)",
            ));
        }
    };
    let out = verify_cmd(image, &policy_args).output()?;
    Ok(match out.status.code() {
        Some(0) => match verified_digests(&out.stdout) {
            Some(digests)
                if !digests.is_empty() && digests.iter().all(|d| d == image.digest.as_str()) =>
            {
                Signature {
                    status: SignatureStatus::Verified,
                    reason: None,
                }
            }
            _ => Signature::unverified("cosign output does not name the image digest"),
        },
        Some(10) => Signature::unverified("no signature"),
        Some(11) => Signature::unverified("image not found by cosign"),
        Some(12) => Signature::unverified("bad signature (no matching signatures)"),
        _ => Signature::unverified(format!("cosign failed: {}", out.last_words())),
    })
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
}
