//! The supply chain of a pushed image (issue 10): signed, with an SBOM and
//! a SLSA provenance attested, then all three verified, each outcome in the
//! build record.
//!
//! ```text
//! pushed digest ─► cosign sign ─► SPDX of the crates compiled ─► cosign attest --type spdxjson
//!                                  provenance predicate ─────────► cosign attest --type slsaprovenance1
//!               ─► cosign verify, verify-attestation ×2 ─► record (soft) or fail (--require-signature)
//! ```
//!
//! - sign.rs: who signs (key, keyless, or skipped with the reason), the commands
//! - sbom.rs: the crates compiled (SPDX); provenance.rs: the SLSA v1 predicate
//! - policy.rs: soft|strict per environment, enforced before a release
//! - bind.rs: the proof held to THIS commit and THESE bytes (issue 24)
//! - digest.rs

pub mod bind;
pub mod digest;
pub mod policy;
pub mod provenance;
pub mod sbom;
pub mod sign;

use std::path::{Path, PathBuf};

use anyhow::bail;

use crate::model::image::ImageRef;
use crate::support::output;
use crate::support::project::Project;
use crate::support::step::Steps;
use crate::verify::cosign::{Attestations, Predicate, Signature};
use sign::Signer;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SigningStatus {
    Signed,
    Skipped,
    Failed,
}

/// The supply-chain fields of `metadata.json` (docs/log-schema.md).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Record {
    #[serde(default)]
    pub signing_status: Option<SigningStatus>,
    #[serde(default)]
    pub signing_reason: Option<String>,
    #[serde(default)]
    pub sbom_path: Option<PathBuf>,
    #[serde(default)]
    pub sbom_sha256: Option<String>,
    /// Crates the SBOM lists (SPDX packages with a `pkg:cargo/` purl).
    #[serde(default)]
    pub sbom_components: Option<usize>,
    #[serde(default)]
    pub provenance_path: Option<PathBuf>,
    #[serde(flatten)]
    pub attestations: Attestations,
}

/// What ci-build hands over after the push and the read-back.
pub struct Pushed<'a> {
    pub project: &'a Project,
    pub image: &'a ImageRef,
    pub branch: Option<&'a str>,
    /// What this run built, when it pushed (else the image was already in
    /// the registry: it was signed and attested when it was pushed).
    pub built: Option<&'a provenance::Built>,
    pub started_on: String,
    pub require_signature: bool,
}

/// Sign, SBOM, attest (for a fresh push), then verify all three. Soft:
/// every outcome is recorded; `--require-signature` fails an unsigned or
/// unverified image (pushed, but no record is written).
pub fn after_push(p: &Pushed, steps: &mut Steps) -> anyhow::Result<(Signature, Record)> {
    let mut record = Record::default();
    let mut sbom_failure = None;
    match p.built {
        None => {
            record.signing_status = Some(SigningStatus::Skipped);
            record.signing_reason = Some(
                "already in the registry: signed and attested when it was pushed (if it was)"
                    .to_owned(),
            );
        }
        Some(built) => {
            let signer = sign::signer()?;
            let dir = p.project.state_dir().join("supply");
            // The SBOM and the provenance are build artifacts even unsigned.
            match steps.run("SBOM of the crates compiled", || {
                sbom::compiled(p.image, built, &dir, &p.started_on)
            }) {
                Ok(sbom) => {
                    eprintln!(
                        "    SBOM: {} crates, sha256 {}",
                        sbom.components, sbom.sha256
                    );
                    record.sbom_path = Some(sbom.path);
                    record.sbom_sha256 = Some(sbom.sha256);
                    record.sbom_components = Some(sbom.components);
                }
                Err(e) => {
                    eprintln!("warning: no SBOM: {e:#}");
                    sbom_failure = Some(format!("no SBOM was made: {e:#}"));
                }
            }
            let provenance = steps.run("provenance (SLSA v1)", || {
                let predicate = provenance::predicate(
                    p.project,
                    &provenance::Inputs {
                        image: p.image,
                        branch: p.branch,
                        built,
                        started_on: &p.started_on,
                        finished_on: &output::now_rfc3339(),
                    },
                )?;
                let path = provenance::path(&dir, &p.image.digest);
                output::write_file(&path, &predicate)?;
                Ok(path)
            })?;
            record.provenance_path = Some(provenance.clone());
            match signer {
                Err(reason) => {
                    if p.require_signature {
                        bail!(
                            "signature required (--require-signature) but {} cannot be signed: {reason}",
                            p.image.by_digest()
                        );
                    }
                    eprintln!("signing: skipped ({reason}); continuing (soft policy)");
                    record.signing_status = Some(SigningStatus::Skipped);
                    record.signing_reason = Some(reason);
                }
                Ok(signer) => {
                    let signed = steps.run("sign and attest the digest (cosign)", || {
                        sign_and_attest(&signer, p.image, record.sbom_path.as_deref(), &provenance)
                    })?;
                    match signed {
                        Ok(()) => record.signing_status = Some(SigningStatus::Signed),
                        Err(reason) => {
                            if p.require_signature {
                                bail!(
                                    "signature required (--require-signature) but signing {} failed: {reason}",
                                    p.image.by_digest()
                                );
                            }
                            eprintln!("signing: failed ({reason}); continuing (soft policy)");
                            record.signing_status = Some(SigningStatus::Failed);
                            record.signing_reason = Some(reason);
                        }
                    }
                }
            }
        }
    }
    let checked = steps.run("verify signature and attestations (cosign)", || {
        policy::check(p.image)
    })?;
    for (name, c) in [
        ("signature", &checked.signature),
        ("sbom", &checked.sbom),
        ("provenance", &checked.provenance),
    ] {
        match &c.reason {
            None => eprintln!("{name}: verified for {}", p.image.by_digest()),
            Some(reason) => eprintln!("{name}: unverified ({reason}); continuing (soft policy)"),
        }
    }
    if let (Some(reason), true) = (&checked.signature.reason, p.require_signature) {
        bail!(
            "signature required (--require-signature) but {} is unverified: {reason}",
            p.image.by_digest()
        );
    }
    record.attestations = checked.attestations();
    if let Some(why) = sbom_failure {
        record.attestations.sbom_reason = Some(why);
    }
    Ok((checked.signature, record))
}

/// `cosign sign`, then each attestation there is a file for. `Err` is
/// cosign's reason (soft); a tool that cannot start is an error.
fn sign_and_attest(
    signer: &Signer,
    image: &ImageRef,
    sbom: Option<&Path>,
    provenance: &Path,
) -> anyhow::Result<Result<(), String>> {
    let mut commands = vec![("cosign sign", sign::sign_cmd(signer, image))];
    if let Some(sbom) = sbom {
        commands.push((
            "cosign attest (SBOM)",
            sign::attest_cmd(signer, image, Predicate::Sbom, sbom),
        ));
    }
    commands.push((
        "cosign attest (provenance)",
        sign::attest_cmd(signer, image, Predicate::Provenance, provenance),
    ));
    for (what, cmd) in commands {
        let out = cmd.output()?;
        if !out.status.success() {
            return Ok(Err(format!("{what} failed: {}", cosign_words(&out))));
        }
    }
    Ok(Ok(()))
}

/// cosign's error message (its `Error: …` line), else its last line.
fn cosign_words(out: &crate::support::cmd::Output) -> String {
    out.stderr
        .lines()
        .find_map(|l| l.strip_prefix("Error: "))
        .unwrap_or_else(|| out.last_words())
        .trim()
        .to_owned()
}
