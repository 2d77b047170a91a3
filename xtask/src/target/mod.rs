//! Deploy targets: where a pinned image runs. One small trait, one file each.
//!
//! A release is applied from a *rendered config* (the docker run settings, the
//! Akash SDL, the Kubernetes manifest) written under
//! `target/xtask/releases/<id>/`; a rollback re-applies the rendered config of
//! the release it returns to, so config comes back with the image.

mod akash;
mod docker;
mod kubernetes;

use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::environment::Environment;
use crate::image::ImageRef;
use crate::project::{EnvironmentConfig, Project};
use crate::sha::GitSha;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The local Docker engine (the default where nothing is configured)
    Docker,
    /// Akash Network through the `provider-services` CLI
    Akash,
    /// A Kubernetes cluster through `kubectl` and the kustomize overlays
    Kubernetes,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Docker => "docker",
            TargetKind::Akash => "akash",
            TargetKind::Kubernetes => "kubernetes",
        }
    }
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A release put in place, before it is verified.
pub struct Applied {
    /// Base URL the service answers on (`/health`, `/version`).
    pub url: String,
    /// The target's handle: container id, `dseq/provider`, deployment name.
    pub deployment_ref: String,
}

/// What runs now, as the target reports it.
#[derive(Debug, Default, serde::Serialize)]
pub struct Running {
    pub image_ref: Option<String>,
    pub image_sha: Option<GitSha>,
    pub image_digest: Option<Digest>,
    pub url: Option<String>,
    pub deployment_ref: Option<String>,
}

pub trait Target {
    fn kind(&self) -> TargetKind;
    /// Settings the target needs, checked before anything is touched.
    fn preflight(&self) -> anyhow::Result<()>;
    /// Write this release's config into `dir`; returns its path.
    fn render(&self, image: &ImageRef, release_id: &str, dir: &Path) -> anyhow::Result<PathBuf>;
    /// The commands `apply` would run, for `--dry-run`.
    fn plan(&self, config: &Path) -> anyhow::Result<Vec<String>>;
    /// Put a rendered config in place.
    fn apply(&self, config: &Path) -> anyhow::Result<Applied>;
    /// The new release is verified: drop what the target kept of the old one.
    fn commit(&self) -> anyhow::Result<()>;
    /// The new release failed: bring back what the target kept of the old one.
    /// `Ok(None)`: nothing was kept, re-apply the old release's config instead.
    fn restore_kept(&self) -> anyhow::Result<Option<Applied>>;
    /// What runs now, asked of the target.
    fn status(&self) -> anyhow::Result<Running>;
    /// Whether the old release may still answer while the new one rolls out
    /// (a provider's or a cluster's rolling update); verification waits it out.
    fn rollout_overlaps(&self) -> bool {
        true
    }
}

pub fn for_environment(
    kind: TargetKind,
    env: Environment,
    settings: &EnvironmentConfig,
    project: &Project,
) -> Box<dyn Target> {
    match kind {
        TargetKind::Docker => Box::new(docker::Docker::new(env, settings, &project.state_dir())),
        TargetKind::Akash => Box::new(akash::Akash::new(project)),
        TargetKind::Kubernetes => Box::new(kubernetes::Kubernetes::new(env, settings, project)),
    }
}

impl Running {
    /// The running image as an [`ImageRef`], when the target names it fully
    /// (`repo:sha@sha256:…`).
    pub fn image(&self) -> Option<ImageRef> {
        let image = self.image_ref.as_deref()?;
        let (name, digest) = image.rsplit_once('@')?;
        let (repository, sha) = name.rsplit_once(':')?;
        Some(ImageRef {
            repository: repository.parse().ok()?,
            sha: sha.parse().ok()?,
            digest: digest.parse().ok()?,
        })
    }
}

/// `repo:sha@sha256:…` (or `repo@sha256:…`) → the SHA and digest it pins.
pub fn parse_pinned(image: &str) -> (Option<GitSha>, Option<Digest>) {
    let (name, digest) = match image.rsplit_once('@') {
        Some((name, digest)) => (name, digest.parse().ok()),
        None => (image, None),
    };
    let sha = name.rsplit_once(':').and_then(|(_, tag)| tag.parse().ok());
    (sha, digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sha_and_digest_from_a_pinned_reference() {
        let sha = "a".repeat(40);
        let digest = format!("sha256:{}", "b".repeat(64));
        let (s, d) = parse_pinned(&format!("127.0.0.1:5000/x/api:{sha}@{digest}"));
        assert_eq!(s.map(|s| s.to_string()), Some(sha));
        assert_eq!(d.map(|d| d.to_string()), Some(digest.clone()));
        assert_eq!(parse_pinned("127.0.0.1:5000/x/api:latest").0, None);
        assert_eq!(parse_pinned(&format!("ghcr.io/x/api@{digest}")).0, None);
    }
}
