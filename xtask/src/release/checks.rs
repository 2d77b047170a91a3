//! The checks before anything is touched: which repository holds the SHA
//! (a staging build never reaches production), whether the registry still
//! serves the digest recorded at build, and what ci-build's metadata says.

use std::path::Path;

use anyhow::{Context, bail};

use crate::build::BuildRecord;
use crate::ledger::{Ledger, RecordKind, Release, Status, Verified};
use crate::model::digest::Digest;
use crate::model::environment::Environment;
use crate::model::image::{ImageRef, full_tag};
use crate::model::repository::RepositoryKind;
use crate::model::sha::GitSha;
use crate::registry;
use crate::supply::policy::Checked;
use crate::support::project::ResolvedRepositories;
use crate::targets::TargetKind;

/// The image for `sha` that `env` may run: looked up in the repositories the
/// environment accepts, in order; a SHA found only in the staging repository
/// is refused for production by name.
pub fn find_image(
    env: Environment,
    repos: &ResolvedRepositories,
    sha: &GitSha,
    only: Option<RepositoryKind>,
) -> anyhow::Result<(RepositoryKind, Digest)> {
    let accepted = env.accepted_repositories();
    if let Some(kind) = only
        && !accepted.contains(&kind)
    {
        bail!(
            "{sha} was built into the {kind} repository {} (a branch build): {env} takes only images from {}, built from main",
            repos.get(kind),
            repos.canonical
        );
    }
    for kind in accepted
        .iter()
        .copied()
        .filter(|k| only.is_none_or(|o| o == *k))
    {
        if let Some(digest) = registry::digest_of(repos.get(kind), sha.as_str())? {
            eprintln!("found {} → {digest}", full_tag(repos.get(kind), sha));
            return Ok((kind, digest));
        }
    }
    if env == Environment::Production
        && only.is_none()
        && registry::digest_of(&repos.staging, sha.as_str())?.is_some()
    {
        bail!(
            "{sha} exists only in the staging repository {} (a branch build): production takes only images built from main into {}",
            repos.staging,
            repos.canonical
        );
    }
    let looked: Vec<String> = accepted
        .iter()
        .map(|k| full_tag(repos.get(*k), sha))
        .collect();
    bail!(
        "no image tagged {sha} (looked for {}): build that commit first with `cargo xtask ci-build`",
        looked.join(" and ")
    )
}

/// The registry's digest must be the one recorded at build time.
pub fn check_digest(
    image: &ImageRef,
    expected: Option<&Digest>,
    source: &str,
) -> anyhow::Result<()> {
    match expected {
        Some(expected) if *expected != image.digest => bail!(
            "{} now points at {} but {source} recorded {expected}: the tag was moved to other bytes; refusing to deploy it (rebuild the commit or investigate the registry)",
            full_tag(&image.repository, &image.sha),
            image.digest
        ),
        Some(_) => {
            eprintln!("digest matches {source}");
            Ok(())
        }
        None => Ok(()),
    }
}

/// A refusal before the target was touched, as one ledger line (status
/// `refused`): who tried what, and why, so the audit shows attempts the
/// policy stopped and not only the releases it let through (issue 24).
pub struct Refusal<'a> {
    pub kind: RecordKind,
    pub env: Environment,
    pub target: TargetKind,
    pub image: &'a ImageRef,
    pub checked: Option<&'a Checked>,
    pub initiated_by: String,
    pub why: String,
}

pub fn record_refusal(ledger: &Ledger, r: &Refusal) -> anyhow::Result<()> {
    let now = crate::support::output::now_rfc3339();
    let unchecked = crate::verify::cosign::Signature::unverified("not checked");
    let signature = r.checked.map_or(&unchecked, |c| &c.signature);
    ledger.append(&Release {
        record: r.kind,
        id: super::run::release_id(&r.image.sha),
        status: Status::Refused,
        environment: r.env,
        target: r.target,
        image_sha: r.image.sha.clone(),
        image_digest: r.image.digest.clone(),
        repository: r.image.repository.clone(),
        image_ref: r.image.pinned(),
        previous_sha: None,
        previous_release: None,
        new_sha: None,
        reason: None,
        signature_status: signature.status,
        signature_reason: signature.reason.clone(),
        attestations: r.checked.map(Checked::attestations).unwrap_or_default(),
        initiated_by: r.initiated_by.clone(),
        deployment_ref: None,
        url: None,
        config: None,
        config_sha256: None,
        strategy: None,
        analysis: None,
        content: None,
        rebuild_of: None,
        verified: Verified::default(),
        error: Some(r.why.clone()),
        left_on_sha: None,
        started_at: now.clone(),
        duration_sec: 0.0,
        at: now,
    })
}

/// Read `metadata.json` from ci-build for its digest (and repository).
pub fn read_metadata(path: &Path, sha: &GitSha) -> anyhow::Result<BuildRecord> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the build metadata {}: pass the metadata.json that `cargo xtask ci-build` wrote (default target/xtask/metadata.json)",
            path.display()
        )
    })?;
    let build: BuildRecord = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a ci-build metadata.json: {e}", path.display()))?;
    if &build.image_sha != sha {
        bail!(
            "{} records {}, not {sha}: pass the metadata of the commit you deploy",
            path.display(),
            build.image_sha
        );
    }
    Ok(build)
}
