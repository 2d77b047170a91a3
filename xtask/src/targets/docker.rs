//! The local Docker engine: the embedded default, for a laptop and for tests.
//!
//! One container per environment under a stable name, publishing a stable
//! port on 127.0.0.1. To switch, the old container is stopped and kept as
//! `<name>-previous`, the new one started under the name; once the new one
//! is verified the old one is removed, otherwise it is started again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::{Applied, Running, Target, TargetKind};
use crate::model::environment::Environment;
use crate::model::image::ImageRef;
use crate::support::cmd::Cmd;
use crate::support::docker::docker;
use crate::support::project::EnvironmentConfig;

pub struct Docker {
    container: String,
    port: u16,
    env: BTreeMap<String, String>,
    environment: Environment,
    /// Where this checkout keeps the lock and ledger that guard the container.
    state_dir: String,
}

/// `run.json`: everything `docker run` needs, frozen with the release.
#[derive(serde::Serialize, serde::Deserialize)]
struct RunConfig {
    container: String,
    image: String,
    port: u16,
    env: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

impl Docker {
    pub fn new(environment: Environment, settings: &EnvironmentConfig, state_dir: &Path) -> Docker {
        let default_port = match environment {
            Environment::Staging => 18080,
            Environment::Production => 18081,
        };
        Docker {
            container: settings
                .container
                .clone()
                .unwrap_or_else(|| format!("xtask-api-{environment}")),
            port: settings.port.unwrap_or(default_port),
            env: settings.env.clone(),
            environment,
            state_dir: state_dir.display().to_string(),
        }
    }

    fn previous(&self) -> String {
        format!("{}-previous", self.container)
    }

    fn exists(&self, name: &str) -> anyhow::Result<bool> {
        Ok(docker()
            .args(["container", "inspect", "--format", "{{.Id}}", name])
            .output()?
            .status
            .success())
    }

    fn run_cmd(config: &RunConfig) -> Cmd {
        let mut cmd = docker()
            .args([
                "run",
                "--detach",
                "--name",
                &config.container,
                "--restart",
                "unless-stopped",
            ])
            .arg("--publish")
            .arg(format!("127.0.0.1:{}:8080", config.port));
        for (k, v) in &config.env {
            cmd = cmd.arg("--env").arg(format!("{k}={v}"));
        }
        for (k, v) in &config.labels {
            cmd = cmd.arg("--label").arg(format!("{k}={v}"));
        }
        cmd.arg(&config.image)
    }

    /// Stop and set aside the running container, if any.
    fn set_aside_cmds(&self) -> anyhow::Result<Vec<Cmd>> {
        let mut cmds = Vec::new();
        if self.exists(&self.previous())? {
            cmds.push(docker().args(["rm", "--force", &self.previous()]));
        }
        if self.exists(&self.container)? {
            // -t: `--time` is deprecated in newer clients, `--timeout` unknown to older ones.
            cmds.push(docker().args(["stop", "-t", "30", &self.container]));
            cmds.push(docker().args(["rename", &self.container, &self.previous()]));
        }
        Ok(cmds)
    }

    fn url_of(&self, name: &str) -> anyhow::Result<String> {
        let port = docker().args(["port", name, "8080/tcp"]).read()?;
        let first = port
            .lines()
            .next()
            .context("the container publishes no port")?;
        Ok(format!(
            "http://{}",
            first.trim().replace("0.0.0.0", "127.0.0.1")
        ))
    }
}

impl Target for Docker {
    fn kind(&self) -> TargetKind {
        TargetKind::Docker
    }

    /// The container name is machine-wide, the lock and ledger are per
    /// checkout: a container managed from another state dir is not ours to replace.
    fn preflight(&self) -> anyhow::Result<()> {
        crate::support::docker::ensure_daemon()?;
        for name in [&self.container, &self.previous()] {
            let out = docker()
                .args([
                    "container",
                    "inspect",
                    "--format",
                    "{{index .Config.Labels \"xtask.state\"}}",
                    name,
                ])
                .output()?;
            let owner = out.stdout.trim();
            if out.status.success()
                && !owner.is_empty()
                && owner != "<no value>"
                && owner != self.state_dir
            {
                bail!(
                    "container {name} is managed from another checkout (state in {owner}; its lock and ledger are there): deploy from that checkout, give this one its own `container` and `port` in the release config, or take it over with `docker rm -f {name}`"
                );
            }
        }
        Ok(())
    }

    fn render(&self, image: &ImageRef, release_id: &str, dir: &Path) -> anyhow::Result<PathBuf> {
        let labels = BTreeMap::from([
            ("xtask.environment".to_owned(), self.environment.to_string()),
            ("xtask.release".to_owned(), release_id.to_owned()),
            ("xtask.sha".to_owned(), image.sha.to_string()),
            ("xtask.digest".to_owned(), image.digest.to_string()),
            ("xtask.state".to_owned(), self.state_dir.clone()),
        ]);
        let config = RunConfig {
            container: self.container.clone(),
            image: image.pinned(),
            port: self.port,
            env: self.env.clone(),
            labels,
        };
        let path = dir.join("run.json");
        crate::support::output::write_file(&path, &config)?;
        Ok(path)
    }

    fn plan(&self, config: &Path) -> anyhow::Result<Vec<String>> {
        let config = read(config)?;
        let mut cmds: Vec<String> = self
            .set_aside_cmds()?
            .iter()
            .map(ToString::to_string)
            .collect();
        cmds.push(Self::run_cmd(&config).to_string());
        Ok(cmds)
    }

    fn apply(&self, config: &Path) -> anyhow::Result<Applied> {
        let config = read(config)?;
        if config.container != self.container {
            bail!(
                "that release config is for container {}, not {}: it belongs to another environment",
                config.container,
                self.container
            );
        }
        for cmd in self.set_aside_cmds()? {
            cmd.run()?;
        }
        let id = Self::run_cmd(&config).read()?;
        Ok(Applied {
            url: format!("http://127.0.0.1:{}", config.port),
            deployment_ref: id.chars().take(12).collect(),
        })
    }

    fn commit(&self) -> anyhow::Result<()> {
        if self.exists(&self.previous())? {
            docker().args(["rm", "--force", &self.previous()]).run()?;
        }
        Ok(())
    }

    fn restore_kept(&self) -> anyhow::Result<Option<Applied>> {
        if self.exists(&self.container)? {
            docker().args(["rm", "--force", &self.container]).run()?;
        }
        if !self.exists(&self.previous())? {
            return Ok(None);
        }
        docker()
            .args(["rename", &self.previous(), &self.container])
            .run()?;
        docker().args(["start", &self.container]).run()?;
        let id = docker()
            .args([
                "container",
                "inspect",
                "--format",
                "{{.Id}}",
                &self.container,
            ])
            .read()?;
        Ok(Some(Applied {
            url: self.url_of(&self.container)?,
            deployment_ref: id.chars().take(12).collect(),
        }))
    }

    /// The old container is stopped before the new one starts.
    fn rollout_overlaps(&self) -> bool {
        false
    }

    fn status(&self) -> anyhow::Result<Running> {
        let out = docker()
            .args([
                "container",
                "inspect",
                "--format",
                "{{.State.Running}} {{.Id}} {{.Config.Image}}",
                &self.container,
            ])
            .output()?;
        if !out.status.success() {
            return Ok(Running::default());
        }
        let mut words = out.stdout.split_whitespace();
        let running = words.next() == Some("true");
        let id: String = words.next().unwrap_or_default().chars().take(12).collect();
        let image = words.next().unwrap_or_default().to_owned();
        let pinned = image.parse::<ImageRef>().ok();
        Ok(Running {
            image_sha: pinned.as_ref().map(|i| i.sha.clone()),
            image_digest: pinned.map(|i| i.digest),
            image_ref: Some(image),
            url: if running {
                self.url_of(&self.container).ok()
            } else {
                None
            },
            deployment_ref: Some(id),
        })
    }
}

fn read(config: &Path) -> anyhow::Result<RunConfig> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a docker run config", config.display()))
}
