//! Before a version tag is pushed (issue 24): a version tag is never moved,
//! so whatever it names is permanent. The digest is held to the production
//! policy (signature, SBOM, provenance, each soft or strict), and, under
//! any policy:
//!
//! - its revision label and any verified provenance name the tag's commit;
//! - the `/api` it really holds (copied out) hashes to its binary label,
//!   to every verified provenance's `api` sha256, and to the build
//!   record's `binary_sha256` when ci-build's record of this digest is here.
//!
//! A mismatch is a refusal naming both values; nothing is pushed.

use std::path::Path;

use anyhow::{Context, bail};

use crate::build::{BuildRecord, adopt};
use crate::model::environment::Environment;
use crate::model::image::ImageRef;
use crate::supply::bind;
use crate::supply::policy::{self, Checked, Level, Policy};
use crate::support::project::Project;

pub struct Proven {
    pub checked: Checked,
    pub policy: Policy,
    /// The sha256 of the image's `/api`, as copied out.
    pub binary_sha256: String,
    /// Where each comparison came from, for the record.
    pub compared_with: Vec<String>,
}

pub fn check(project: &Project, image: &ImageRef, scratch: &Path) -> anyhow::Result<Proven> {
    let env = Environment::Production;
    let policy = project.release_config()?.environment(env)?.policy;
    let checked = policy::check(image)?;
    policy::enforce(env, image, policy, false, &checked)?;
    let found = adopt::examine(&image.repository, &image.digest)?;
    // A version is permanent: a verified proof naming another commit or
    // binary refuses even under soft policy (only a MISSING proof is soft).
    let binding = Policy {
        provenance: Level::Strict,
        ..policy
    };
    bind::enforce(
        env,
        image,
        &bind::findings(image, binding, &checked, &found, None),
    )?;
    let held = found.hash_api(scratch)?;
    let mut compared_with = Vec::new();
    let mut refused = Vec::new();
    let mut compare = |what: String, value: Option<&str>| match value {
        Some(v) if v == held => compared_with.push(what),
        Some(v) => refused.push(format!("{what} says {v}")),
        None => refused.push(format!("{what} names no binary")),
    };
    compare("its binary label".into(), found.binary_label.as_deref());
    for c in checked.provenance_claims.iter().map(bind::claim) {
        compare("its verified provenance".into(), c.binary_sha256.as_deref());
    }
    match build_record(project, image)? {
        Some(record) => compare("ci-build's record".into(), record.binary_sha256.as_deref()),
        None => eprintln!(
            "no ci-build record of {} here ({}): compared with the label and the provenance only",
            image.by_digest(),
            project.state_dir().join("metadata.json").display()
        ),
    }
    if !refused.is_empty() {
        bail!(
            "{} holds an /api with sha256 {held}, but {}: these are not the bytes built from {}; refusing to tag a version (a version tag is never moved). Find out who pushed it; rebuild the commit with `cargo xtask ci-build`",
            image.by_digest(),
            refused.join(", "),
            image.sha
        );
    }
    // SHA256SUMS is signed after the tag is pushed: a strict policy that
    // cannot sign must refuse now, before anything is pushed.
    if policy.signature == Level::Strict
        && let Err(reason) = crate::supply::sign::signer()?
    {
        bail!(
            "the production policy is strict on signatures, but SHA256SUMS could not be signed here: {reason}; refusing before the version tag is pushed"
        );
    }
    eprintln!("/api sha256 {held} = {}", compared_with.join(" = "));
    Ok(Proven {
        checked,
        policy,
        binary_sha256: held,
        compared_with,
    })
}

/// ci-build's record of exactly this SHA and digest, when it is here.
pub fn build_record(project: &Project, image: &ImageRef) -> anyhow::Result<Option<BuildRecord>> {
    let path = project.state_dir().join("metadata.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let record: BuildRecord = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a ci-build record", path.display()))?;
    Ok((record.image_sha == image.sha && record.image_digest == image.digest).then_some(record))
}
