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

    /// `deploy/release.json`, or the file `XTASK_CONFIG` names; parsed and
    /// validated as a whole (see [`ReleaseConfig::validate`]) before any
    /// task touches anything.
    pub fn release_config(&self) -> anyhow::Result<ReleaseConfig> {
        match std::env::var_os("XTASK_CONFIG") {
            Some(path) => ReleaseConfig::load(&self.root.join(path), true),
            None => ReleaseConfig::load(&self.root.join("deploy/release.json"), false),
        }
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
    /// The file named by `XTASK_CONFIG`: it must name every environment it
    /// is used for (a config that does not is refused, never defaulted).
    #[serde(skip)]
    pub explicit: Option<PathBuf>,
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

/// Docker's rule for container names (moby `daemon/names/names.go`:
/// `RestrictedNameChars = [a-zA-Z0-9][a-zA-Z0-9_.-]`, `RestrictedNamePattern
/// = ^RestrictedNameChars+$`): a letter or digit, then at least one more of
/// letters, digits, `_`, `.`, `-`.
fn valid_container_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.len() >= 2
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// A variable name a process environment can carry: `[A-Za-z_][A-Za-z0-9_]*`.
fn valid_variable(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl EnvironmentConfig {
    /// The host port the docker target publishes (staging 18080,
    /// production 18081 unless set).
    pub fn port_or_default(&self, env: Environment) -> u16 {
        self.port.unwrap_or(match env {
            Environment::Staging => 18080,
            Environment::Production => 18081,
        })
    }

    /// The docker target's container name (`xtask-api-<env>` unless set).
    pub fn container_or_default(&self, env: Environment) -> String {
        self.container
            .clone()
            .unwrap_or_else(|| format!("xtask-api-{env}"))
    }
}

impl ReleaseConfig {
    /// Read and validate a config file. A missing file is the built-in
    /// defaults, unless it was named explicitly (`explicit`).
    pub fn load(path: &Path, explicit: bool) -> anyhow::Result<ReleaseConfig> {
        if !path.exists() {
            if explicit {
                anyhow::bail!(
                    "XTASK_CONFIG names {}, which does not exist: fix the path or unset it",
                    path.display()
                );
            }
            return Ok(ReleaseConfig::default());
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut config: ReleaseConfig = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a valid release config: {e}; see deploy/release.json and docs/decisions.md for its shape",
                path.display()
            )
        })?;
        config.validate().map_err(|e| {
            anyhow::anyhow!(
                "{}: {e}; nothing was touched: fix the file and run again",
                path.display()
            )
        })?;
        config.explicit = explicit.then(|| path.to_path_buf());
        Ok(config)
    }

    /// The whole file at once, before anything is touched: every port is a
    /// real one and no two environments share a port or a container name
    /// (the docker target's defaults count), names are names docker takes,
    /// `env` keys are variable names.
    pub fn validate(&self) -> anyhow::Result<()> {
        let all = [Environment::Staging, Environment::Production];
        for env in all {
            let Some(c) = self.environments.get(&env) else {
                continue;
            };
            if c.port == Some(0) {
                anyhow::bail!(
                    "environments.{env}.port is 0 (a random port each run): give {env} a fixed port between 1 and 65535"
                );
            }
            if let Some(name) = &c.container
                && !valid_container_name(name)
            {
                anyhow::bail!(
                    "environments.{env}.container `{name}` is not a docker container name (a letter or digit, then letters, digits, `_`, `.` or `-`)"
                );
            }
            if let Some(key) = c.env.keys().find(|k| !valid_variable(k)) {
                anyhow::bail!(
                    "environments.{env}.env has `{key}`, which is not a variable name ([A-Za-z_][A-Za-z0-9_]*)"
                );
            }
        }
        let [a, b] = all.map(|env| self.environments.get(&env).cloned().unwrap_or_default());
        let (sa, sb) = (Environment::Staging, Environment::Production);
        if a.port_or_default(sa) == b.port_or_default(sb) {
            anyhow::bail!(
                "staging and production both use port {}: each environment needs its own port",
                a.port_or_default(sa)
            );
        }
        if a.container_or_default(sa) == b.container_or_default(sb) {
            anyhow::bail!(
                "staging and production both use container `{}`: each environment needs its own container name",
                a.container_or_default(sa)
            );
        }
        Ok(())
    }

    /// The settings of `env`. An explicit config (`XTASK_CONFIG`) that does
    /// not name `env` is refused: falling back to the defaults would run a
    /// second instance beside the real one and record it as `env`'s.
    pub fn environment(&self, env: Environment) -> anyhow::Result<EnvironmentConfig> {
        match (self.environments.get(&env), &self.explicit) {
            (Some(c), _) => Ok(c.clone()),
            (None, Some(path)) => anyhow::bail!(
                "XTASK_CONFIG names {}, which has no `environments.{env}`: an explicit config must name the environment it is used for; add it there, or point XTASK_CONFIG at {env}'s config",
                path.display()
            ),
            (None, None) => Ok(EnvironmentConfig::default()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, text: &str, explicit: bool) -> anyhow::Result<ReleaseConfig> {
        let dir = std::env::temp_dir().join(format!("xtask-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("release.json");
        std::fs::write(&path, text).expect("write");
        ReleaseConfig::load(&path, explicit)
    }

    /// `XTASK_CONFIG` holding `{}` used to deploy a second staging container
    /// on the default port: an explicit config must name the environment.
    #[test]
    fn an_explicit_config_without_the_environment_is_refused_naming_the_file() {
        let config = load("explicit", "{}", true).expect("parses");
        let err = config
            .environment(Environment::Staging)
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("XTASK_CONFIG names")
                && err.contains("release.json")
                && err.contains("no `environments.staging`"),
            "{err}"
        );
        // The checked-in default (not named by XTASK_CONFIG) keeps its defaults.
        let implicit = load("implicit", "{}", false).expect("parses");
        assert_eq!(
            implicit
                .environment(Environment::Staging)
                .expect("defaults")
                .port_or_default(Environment::Staging),
            18080
        );
        let named = load(
            "named",
            r#"{"environments": {"staging": {"port": 19000}}}"#,
            true,
        )
        .expect("valid");
        assert_eq!(
            named.environment(Environment::Staging).expect("named").port,
            Some(19000)
        );
        assert!(named.environment(Environment::Production).is_err());
    }

    #[test]
    fn the_whole_config_is_validated_when_it_is_read() {
        let cases = [
            (
                r#"{"environments": {"staging": {"port": 19000}, "production": {"port": 19000}}}"#,
                "staging and production both use port 19000",
            ),
            (
                // A port set for one equal to the other's default.
                r#"{"environments": {"staging": {"port": 18081}}}"#,
                "both use port 18081",
            ),
            (
                r#"{"environments": {"production": {"port": 0}}}"#,
                "environments.production.port is 0",
            ),
            (
                r#"{"environments": {"staging": {"container": "api"}, "production": {"container": "api"}}}"#,
                "both use container `api`",
            ),
            (
                r#"{"environments": {"staging": {"container": "my api"}}}"#,
                "`my api` is not a docker container name",
            ),
            (
                r#"{"environments": {"staging": {"env": {"API LOG": "x"}}}}"#,
                "`API LOG`, which is not a variable name",
            ),
        ];
        for (text, expected) in cases {
            let err = load("invalid", text, false).expect_err(text).to_string();
            assert!(
                err.contains(expected) && err.contains("nothing was touched"),
                "{text}: {err}"
            );
            assert!(err.contains("release.json"), "names the file: {err}");
        }
        let repo_config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/release.json");
        ReleaseConfig::load(&repo_config, false).expect("the checked-in config is valid");
    }
}
