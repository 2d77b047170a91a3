//! The verification policy of an environment (`deploy/release.json`,
//! `environments.<env>.policy`): `signature`, `sbom` and `provenance`, each
//! `soft` (record the outcome and go on, the default) or `strict` (refuse
//! an unverified image before the target is touched).

use anyhow::bail;

use crate::model::environment::Environment;
use crate::model::image::ImageRef;
use crate::verify::cosign::{self, Attestations, Predicate, Signature};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[default]
    Soft,
    Strict,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    pub signature: Level,
    pub sbom: Level,
    pub provenance: Level,
}

/// What cosign found for an image: its signature and both attestations.
#[derive(Clone, Debug)]
pub struct Checked {
    pub signature: Signature,
    pub sbom: Signature,
    pub provenance: Signature,
    /// The predicates of the verified provenance statements (empty when
    /// unverified): what the signed proof says about commit and bytes.
    pub provenance_claims: Vec<serde_json::Value>,
    /// The verified SBOM predicates (SPDX documents), as attested.
    pub sbom_documents: Vec<serde_json::Value>,
}

impl Checked {
    pub fn attestations(&self) -> Attestations {
        Attestations::new(&self.sbom, &self.provenance)
    }

    fn each(&self) -> [(&'static str, &Signature); 3] {
        [
            ("signature", &self.signature),
            ("sbom", &self.sbom),
            ("provenance", &self.provenance),
        ]
    }
}

/// Verify the signature and both attestations of `image` (each recorded,
/// none an error by itself).
pub fn check(image: &ImageRef) -> anyhow::Result<Checked> {
    let (sbom, sbom_documents) = cosign::read_attestation(image, Predicate::Sbom)?;
    let (provenance, provenance_claims) = cosign::read_attestation(image, Predicate::Provenance)?;
    Ok(Checked {
        signature: cosign::check(image)?,
        sbom,
        provenance,
        provenance_claims,
        sbom_documents,
    })
}

/// Print each outcome; refuse when a strict one is unverified, naming what
/// was missing. `require_signature` (the flag) makes the signature strict.
pub fn enforce(
    env: Environment,
    image: &ImageRef,
    policy: Policy,
    require_signature: bool,
    checked: &Checked,
) -> anyhow::Result<()> {
    let levels = [
        if require_signature {
            Level::Strict
        } else {
            policy.signature
        },
        policy.sbom,
        policy.provenance,
    ];
    let mut refused = Vec::new();
    for ((name, check), level) in checked.each().into_iter().zip(levels) {
        match (&check.reason, level) {
            (None, _) => eprintln!("{name}: verified"),
            (Some(reason), Level::Soft) => {
                eprintln!("{name}: unverified ({reason}); continuing (soft policy)")
            }
            (Some(reason), Level::Strict) => {
                eprintln!("{name}: unverified ({reason}); the {env} policy is strict");
                refused.push(format!("{name} ({reason})"));
            }
        }
    }
    if !refused.is_empty() {
        bail!(
            "the {env} policy is strict and {} is missing a verified {}: refusing before the target is touched (sign and attest it with `cargo xtask ci-build`, or see environments.{env}.policy in deploy/release.json{})",
            image.by_digest(),
            refused.join(", "),
            if require_signature {
                " and --require-signature"
            } else {
                ""
            }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ImageRef {
        format!(
            "localhost:5000/a/api:{}@sha256:{}",
            "a".repeat(40),
            "b".repeat(64)
        )
        .parse()
        .expect("image")
    }

    fn ok() -> Signature {
        Signature {
            status: cosign::SignatureStatus::Verified,
            reason: None,
        }
    }

    #[test]
    fn strict_refuses_naming_only_what_is_missing() {
        let checked = Checked {
            signature: ok(),
            sbom: Signature::unverified("no SBOM attestation"),
            provenance: Signature::unverified("cosign not found"),
            provenance_claims: Vec::new(),
            sbom_documents: Vec::new(),
        };
        let soft = Policy::default();
        assert!(enforce(Environment::Production, &image(), soft, false, &checked).is_ok());
        let strict_sbom = Policy {
            sbom: Level::Strict,
            ..Policy::default()
        };
        let err = enforce(
            Environment::Production,
            &image(),
            strict_sbom,
            false,
            &checked,
        )
        .expect_err("strict")
        .to_string();
        assert!(err.contains("sbom (no SBOM attestation)"), "{err}");
        assert!(
            !err.contains("provenance"),
            "soft ones are not named: {err}"
        );
        let unsigned = Checked {
            signature: Signature::unverified("no signature"),
            ..checked
        };
        let err = enforce(Environment::Staging, &image(), soft, true, &unsigned)
            .expect_err("--require-signature")
            .to_string();
        assert!(
            err.contains("signature (no signature)") && err.contains("--require-signature"),
            "{err}"
        );
    }

    #[test]
    fn parses_the_release_json_shape() {
        let p: Policy = serde_json::from_str(r#"{"signature":"strict"}"#).expect("policy");
        assert_eq!((p.signature, p.sbom), (Level::Strict, Level::Soft));
        assert!(serde_json::from_str::<Policy>(r#"{"signatures":"strict"}"#).is_err());
        assert!(serde_json::from_str::<Policy>(r#"{"sbom":"hard"}"#).is_err());
    }
}
