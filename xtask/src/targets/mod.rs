//! Deploy targets: where a pinned image runs. One small trait, one file each.
//!
//! A release is applied from a *rendered config* (the docker run settings, the
//! Akash SDL, the Kubernetes manifest) written under
//! `target/xtask/releases/<id>/`; a rollback re-applies the rendered config of
//! the release it returns to, so config comes back with the image.

pub mod akash;
pub mod docker;
pub mod kubernetes;

use std::path::{Path, PathBuf};

use crate::model::digest::Digest;
use crate::model::environment::Environment;
use crate::model::image::ImageRef;
use crate::model::sha::GitSha;
use crate::support::project::{EnvironmentConfig, Project};

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

/// A refusal that left the target exactly as it was (a transaction the
/// chain refused): the engine records the failure and restores nothing, so
/// no second transaction is spent undoing what never happened.
#[derive(Debug)]
pub struct NothingChanged(pub String);

impl std::fmt::Display for NothingChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NothingChanged {}

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
    /// The image a rendered (or frozen) config runs: checked against the
    /// registry before it is applied.
    fn image_in(&self, config: &Path) -> anyhow::Result<ImageRef>;
    /// The commands `apply` would run, for `--dry-run`.
    fn plan(&self, config: &Path, keep: Option<&ImageRef>) -> anyhow::Result<Vec<String>>;
    /// Put a rendered config in place. `keep`: the last verified release,
    /// whose instance a target that keeps one (docker) holds on to until the
    /// new release is verified, whatever an interrupted run left behind.
    fn apply(&self, config: &Path, keep: Option<&ImageRef>) -> anyhow::Result<Applied>;
    /// The new release is verified: drop what the target kept of the old one.
    fn commit(&self) -> anyhow::Result<()>;
    /// The new release failed: bring back what the target kept of the old one.
    /// `Ok(None)`: nothing was kept, re-apply the old release's config instead.
    fn restore_kept(&self) -> anyhow::Result<Option<Applied>>;
    /// What runs now, asked of the target. `Ok(Running::default())`:
    /// nothing is deployed; `Err`: the target could not be asked (daemon
    /// down, lease-status failing), which is never "nothing runs".
    fn status(&self) -> anyhow::Result<Running>;
    /// Whether the old release may still answer while the new one rolls out
    /// (a provider's or a cluster's rolling update); verification waits it out.
    fn rollout_overlaps(&self) -> bool {
        true
    }
    /// The longest verification this target allows (`--verify-timeout` is
    /// cut to it): a provider that closes a failing workload's lease by
    /// itself (akash) must see the failed release replaced before that.
    fn max_verify(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The target an environment runs on: `--target` when given; in CI the
/// environment's target in deploy/release.json; else the local engine (a dev
/// shell never reaches CI's targets by accident).
pub fn select(
    project: &Project,
    env: Environment,
    requested: Option<TargetKind>,
) -> anyhow::Result<Box<dyn Target>> {
    let settings = project.release_config()?.environment(env);
    let configured = std::env::var_os("CI").and(settings.target);
    let kind = requested.or(configured).unwrap_or(TargetKind::Docker);
    Ok(for_environment(kind, env, &settings, project))
}

fn for_environment(
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

/// The one `image:` a rendered config file names (an SDL, a manifest): the
/// config runs exactly that image, or it is refused.
pub fn single_image_in(config: &Path) -> anyhow::Result<ImageRef> {
    let text = std::fs::read_to_string(config)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", config.display()))?;
    single_image(&text, config)
}

fn single_image(text: &str, what: &Path) -> anyhow::Result<ImageRef> {
    let mut images: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image:"))
        .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\''))
        .collect();
    images.dedup();
    match images.as_slice() {
        [one] => one.parse(),
        [] => anyhow::bail!("{} names no image", what.display()),
        more => anyhow::bail!(
            "{} names {} different images ({}): expected exactly one",
            what.display(),
            more.len(),
            more.join(", ")
        ),
    }
}

impl Running {
    /// The running image as an [`ImageRef`], when the target names it fully
    /// (`repo:sha@sha256:…`).
    pub fn image(&self) -> Option<ImageRef> {
        self.image_ref.as_deref()?.parse().ok()
    }
}
