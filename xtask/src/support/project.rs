//! Where things are: the project root (found once), the state directory, and
//! the checked-in release config `deploy/release.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::model::environment::Environment;
use crate::model::repository::{Repository, RepositoryKind};

/// The local registry a newcomer gets when nothing is configured, so that no
/// one pushes to the production registry by accident.
pub const LOCAL_REGISTRY: &str = "localhost:5000";
pub const LOCAL_CANONICAL: &str = "localhost:5000/shipyard/api";
pub const LOCAL_STAGING: &str = "localhost:5000/shipyard/api-staging";

pub struct Project {
    pub root: PathBuf,
}

impl Project {
    /// The workspace root: `XTASK_ROOT` when set (to drive another checkout
    /// with this binary, as the tests do), else the parent of this crate.
    pub fn locate() -> anyhow::Result<Project> {
        let root = match std::env::var_os("XTASK_ROOT") {
            Some(root) => PathBuf::from(root),
            None => Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .context("xtask crate has no parent directory")?
                .to_path_buf(),
        };
        let root = root
            .canonicalize()
            .with_context(|| format!("project root {} does not exist", root.display()))?;
        Ok(Project { root })
    }

    /// xtask's own state: records, ledger, locks, rendered release configs.
    /// `XTASK_STATE_DIR` moves it (e.g. to a disk that outlives the checkout).
    pub fn state_dir(&self) -> PathBuf {
        match std::env::var_os("XTASK_STATE_DIR") {
            Some(dir) => self.root.join(dir),
            None => self.root.join("target").join("xtask"),
        }
    }

    pub fn release_config(&self) -> anyhow::Result<ReleaseConfig> {
        let (path, explicit) = match std::env::var_os("XTASK_CONFIG") {
            Some(path) => (self.root.join(path), true),
            None => (self.root.join("deploy/release.json"), false),
        };
        if !path.exists() {
            if explicit {
                anyhow::bail!(
                    "XTASK_CONFIG names {}, which does not exist: fix the path or unset it",
                    path.display()
                );
            }
            return Ok(ReleaseConfig::default());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a valid release config: {e}; see deploy/release.json and docs/decisions.md for its shape",
                path.display()
            )
        })
    }
}

/// `deploy/release.json`: the production repositories and each environment's
/// target and settings.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseConfig {
    pub repositories: Option<Repositories>,
    #[serde(default)]
    pub environments: BTreeMap<Environment, EnvironmentConfig>,
    /// The akash target's pinned CLI and placement (`targets::akash::settings`).
    pub akash: Option<crate::targets::akash::settings::AkashConfig>,
    /// The docker target's reverse proxy (`XTASK_PROXY_IMAGE` overrides it).
    pub proxy: Option<ProxyConfig>,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// `name[:tag]@sha256:…`: an official HAProxy image, or the last line of
    /// `cargo xtask proxy build`.
    pub image: String,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Repositories {
    pub canonical: Repository,
    pub staging: Repository,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentConfig {
    /// `docker`, `akash` or `kubernetes`; used in CI (a dev shell defaults to docker).
    pub target: Option<crate::targets::TargetKind>,
    /// Docker: the port users reach on 127.0.0.1, published by the
    /// environment's proxy (staging 18080, production 18081).
    pub port: Option<u16>,
    /// Docker: seconds the old release drains after a switch (default 30).
    pub drain_secs: Option<u64>,
    /// Docker: stopped releases kept for an instant rollback (default 5).
    pub retain: Option<usize>,
    /// Docker: the prefix of every container of the environment (default
    /// `xtask-api-<env>`): `<container>-proxy`, `<container>-<release id>`.
    pub container: Option<String>,
    /// `API_*` settings passed to the service; part of each release's config.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Kubernetes: the kustomize overlay, relative to the root.
    pub overlay: Option<String>,
    /// Kubernetes: the namespace of the `api` Deployment (default `api-<env>`).
    pub namespace: Option<String>,
    /// Kubernetes: the URL that reaches the Service for verification.
    pub url: Option<String>,
    /// `signature`, `sbom`, `provenance`: each `soft` (default) or `strict`.
    #[serde(default)]
    pub policy: crate::supply::policy::Policy,
    /// `bluegreen` (default) or `canary` (`--strategy` wins).
    pub strategy: Option<crate::model::strategy::StrategyKind>,
    /// Canary weights in percent, `[10, 50, 100]` or `"10,50,100"` (`--steps` wins).
    pub steps: Option<crate::model::strategy::Steps>,
    /// Seconds each canary step is held and measured (`--step-duration` wins).
    pub step_duration: Option<u64>,
    /// The canary's analysis bounds (`analysis/template.rs`).
    pub analysis: Option<crate::analysis::AnalysisConfig>,
}

impl ReleaseConfig {
    pub fn environment(&self, env: Environment) -> EnvironmentConfig {
        self.environments.get(&env).cloned().unwrap_or_default()
    }
}

/// Repository flags shared by every task that touches images.
#[derive(Debug, Clone, clap::Args)]
pub struct RepositoryArgs {
    /// Canonical repository (images built from `main`) [env: XTASK_REPOSITORY]
    #[arg(long, value_name = "REPO")]
    pub repository: Option<Repository>,
    /// Staging repository (every other branch) [env: XTASK_STAGING_REPOSITORY]
    #[arg(long, value_name = "REPO")]
    pub staging_repository: Option<Repository>,
}

/// The two repositories, and where they came from (said to the user).
#[derive(Debug, Clone)]
pub struct ResolvedRepositories {
    pub canonical: Repository,
    pub staging: Repository,
    pub source: &'static str,
}

impl ResolvedRepositories {
    pub fn get(&self, kind: RepositoryKind) -> &Repository {
        match kind {
            RepositoryKind::Canonical => &self.canonical,
            RepositoryKind::Staging => &self.staging,
        }
    }

    /// True when both are the embedded local default (`localhost:5000`).
    pub fn is_local_default(&self) -> bool {
        self.source == "the local default"
    }
}

impl RepositoryArgs {
    /// Flags, then `XTASK_*` variables, then (in CI only) deploy/release.json,
    /// then the local registry on localhost:5000.
    pub fn resolve(&self, project: &Project) -> anyhow::Result<ResolvedRepositories> {
        let from_env = |name: &str| -> anyhow::Result<Option<Repository>> {
            match std::env::var(name) {
                Ok(v) if !v.is_empty() => v
                    .parse()
                    .map(Some)
                    .with_context(|| format!("{name} is set to a bad value")),
                _ => Ok(None),
            }
        };
        let canonical = match &self.repository {
            Some(r) => Some((r.clone(), "--repository")),
            None => from_env("XTASK_REPOSITORY")?.map(|r| (r, "XTASK_REPOSITORY")),
        };
        let staging = match &self.staging_repository {
            Some(r) => Some((r.clone(), "--staging-repository")),
            None => from_env("XTASK_STAGING_REPOSITORY")?.map(|r| (r, "XTASK_STAGING_REPOSITORY")),
        };
        let configured = if std::env::var_os("CI").is_some() {
            project.release_config()?.repositories
        } else {
            None
        };
        let (fallback_canonical, fallback_staging, fallback_source) = match configured {
            Some(repos) => (repos.canonical, repos.staging, "deploy/release.json (CI)"),
            None => (
                LOCAL_CANONICAL.parse()?,
                LOCAL_STAGING.parse()?,
                "the local default",
            ),
        };
        let source = match (&canonical, &staging) {
            (Some((_, a)), Some(_)) => a,
            (Some((_, a)), None) | (None, Some((_, a))) => a,
            (None, None) => fallback_source,
        };
        let canonical = canonical.map_or(fallback_canonical, |(r, _)| r);
        let staging = staging.map_or(fallback_staging, |(r, _)| r);
        if canonical == staging {
            anyhow::bail!(
                "the canonical and staging repositories are both `{canonical}`: staging images must live apart from production ones; set --staging-repository"
            );
        }
        Ok(ResolvedRepositories {
            canonical,
            staging,
            source,
        })
    }
}
