//! The local Docker engine: the embedded default, for a laptop and for tests.
//!
//! One container per environment under a stable name, publishing a stable
//! port on 127.0.0.1. To switch, the old container is stopped and kept as
//! `<name>-previous`, the new one started under the name; once the new one
//! is verified the old one is removed, otherwise it is started again.
//!
//! A container is ours only when its `xtask.environment` and `xtask.state`
//! labels say so; anything else under our names is refused before anything
//! is stopped. After an unclean death (`kill -9` mid-verification) both
//! names may be taken: the one holding the last verified release is kept,
//! whichever name it has, until a new release is verified.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::{Applied, Running, Target, TargetKind};
use crate::model::environment::Environment;
use crate::model::image::ImageRef;
use crate::support::cmd::Cmd;
use crate::support::docker::docker;
use crate::support::project::EnvironmentConfig;

const ENVIRONMENT_LABEL: &str = "xtask.environment";
const STATE_LABEL: &str = "xtask.state";

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

/// One container, as `docker container inspect` describes it.
struct Container {
    name: String,
    running: bool,
    id: String,
    image: String,
    labels: BTreeMap<String, String>,
}

impl Container {
    fn runs(&self, image: &ImageRef) -> bool {
        self.image.parse::<ImageRef>().is_ok_and(|i| i == *image)
    }
}

impl Docker {
    pub fn new(environment: Environment, settings: &EnvironmentConfig, state_dir: &Path) -> Docker {
        // The defaults live with the config, which checks them for clashes.
        Docker {
            container: settings.container_or_default(environment),
            port: settings.port_or_default(environment),
            env: settings.env.clone(),
            environment,
            state_dir: state_dir.display().to_string(),
        }
    }

    fn previous(&self) -> String {
        format!("{}-previous", self.container)
    }

    /// `Ok(None)`: no such container. `Err`: the engine could not be asked.
    fn inspect(&self, name: &str) -> anyhow::Result<Option<Container>> {
        let cmd = docker().args([
            "container",
            "inspect",
            "--format",
            "{{.State.Running}} {{.Id}} {{.Config.Image}} {{json .Config.Labels}}",
            name,
        ]);
        let out = cmd.output()?;
        if !out.status.success() {
            let said = out.last_words();
            if said.contains("No such container") || said.contains("No such object") {
                return Ok(None);
            }
            bail!("could not ask docker about container {name}: {said}");
        }
        let mut words = out.stdout.trim().splitn(4, ' ');
        let running = words.next() == Some("true");
        let id = words.next().unwrap_or_default().chars().take(12).collect();
        let image = words.next().unwrap_or_default().to_owned();
        let labels = serde_json::from_str::<Option<BTreeMap<String, String>>>(
            words.next().unwrap_or("null"),
        )
        .with_context(|| format!("`{cmd}` printed labels that are not JSON"))?
        .unwrap_or_default();
        Ok(Some(Container {
            name: name.to_owned(),
            running,
            id,
            image,
            labels,
        }))
    }

    /// Refuse a container under our names that is not this environment's,
    /// from this checkout.
    fn check_ours(&self, c: &Container) -> anyhow::Result<()> {
        let name = &c.name;
        let Some(env) = c.labels.get(ENVIRONMENT_LABEL) else {
            bail!(
                "container {name} exists but was not created by xtask (no {ENVIRONMENT_LABEL} label): remove it (`docker rm -f {name}`) or give {} its own `container` name in the release config",
                self.environment
            );
        };
        if *env != self.environment.to_string() {
            bail!(
                "container {name} belongs to {env} ({ENVIRONMENT_LABEL}={env}), not {}: the release config names another environment's container; give {} its own `container` and `port`",
                self.environment,
                self.environment
            );
        }
        match c.labels.get(STATE_LABEL) {
            Some(owner) if *owner == self.state_dir => Ok(()),
            Some(owner) => bail!(
                "container {name} is managed from another checkout (state in {owner}; its lock and ledger are there): deploy from that checkout, give this one its own `container` and `port` in the release config, or take it over with `docker rm -f {name}`"
            ),
            None => bail!(
                "container {name} has no {STATE_LABEL} label, so no lock guards it: remove it (`docker rm -f {name}`) and deploy again"
            ),
        }
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

    /// Make room for the new container, keeping the last verified one.
    /// Normally that is the running container, stopped and renamed
    /// `-previous`. When an interrupted run left `-previous` holding the
    /// verified release and an unverified one under the name, the
    /// unverified one goes and `-previous` stays as it is.
    fn set_aside_cmds(&self, keep: Option<&ImageRef>) -> anyhow::Result<Vec<Cmd>> {
        let current = self.inspect(&self.container)?;
        let previous = self.inspect(&self.previous())?;
        let keeps_previous = match (keep, &previous) {
            (Some(keep), Some(prev)) => {
                prev.runs(keep) && !current.as_ref().is_some_and(|c| c.runs(keep))
            }
            _ => false,
        };
        let mut cmds = Vec::new();
        if keeps_previous {
            if current.is_some() {
                cmds.push(docker().args(["rm", "--force", &self.container]));
            }
            return Ok(cmds);
        }
        if previous.is_some() {
            cmds.push(docker().args(["rm", "--force", &self.previous()]));
        }
        if current.is_some() {
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

    /// The container names are machine-wide, the lock and ledger are per
    /// checkout and environment: only containers whose labels say they are
    /// this environment's, from this checkout, may be replaced.
    fn preflight(&self) -> anyhow::Result<()> {
        crate::support::docker::ensure_daemon()?;
        for name in [&self.container, &self.previous()] {
            if let Some(c) = self.inspect(name)? {
                self.check_ours(&c)?;
            }
        }
        Ok(())
    }

    fn render(&self, image: &ImageRef, release_id: &str, dir: &Path) -> anyhow::Result<PathBuf> {
        let labels = BTreeMap::from([
            (ENVIRONMENT_LABEL.to_owned(), self.environment.to_string()),
            ("xtask.release".to_owned(), release_id.to_owned()),
            ("xtask.sha".to_owned(), image.sha.to_string()),
            ("xtask.digest".to_owned(), image.digest.to_string()),
            (STATE_LABEL.to_owned(), self.state_dir.clone()),
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

    fn image_in(&self, config: &Path) -> anyhow::Result<ImageRef> {
        read(config)?.image.parse()
    }

    /// The release's env comes back with its image; container, port and
    /// labels are the environment's now (issue 23).
    fn carry_over(&self, frozen: &Path, fresh: &Path) -> anyhow::Result<()> {
        let env = read(frozen)?.env;
        let mut config = read(fresh)?;
        config.env = env;
        crate::support::output::write_file(fresh, &config)
    }

    fn plan(&self, config: &Path, keep: Option<&ImageRef>) -> anyhow::Result<Vec<String>> {
        let config = read(config)?;
        let mut cmds: Vec<String> = self
            .set_aside_cmds(keep)?
            .iter()
            .map(ToString::to_string)
            .collect();
        cmds.push(Self::run_cmd(&config).to_string());
        Ok(cmds)
    }

    fn apply(&self, config: &Path, keep: Option<&ImageRef>) -> anyhow::Result<Applied> {
        let config = read(config)?;
        let env = config.labels.get(ENVIRONMENT_LABEL);
        if config.container != self.container || env != Some(&self.environment.to_string()) {
            // Refused before anything is stopped: nothing to restore.
            return Err(super::NothingChanged(format!(
                "that release config is for container {} ({}), but {}'s container is {}: nothing was changed",
                config.container,
                env.map_or("no environment", String::as_str),
                self.environment,
                self.container,
            ))
            .into());
        }
        for cmd in self.set_aside_cmds(keep)? {
            cmd.read()?;
        }
        let id = Self::run_cmd(&config).read()?;
        Ok(Applied {
            url: format!("http://127.0.0.1:{}", config.port),
            deployment_ref: id.chars().take(12).collect(),
        })
    }

    fn commit(&self) -> anyhow::Result<()> {
        if self.inspect(&self.previous())?.is_some() {
            docker().args(["rm", "--force", &self.previous()]).read()?;
        }
        Ok(())
    }

    fn restore_kept(&self) -> anyhow::Result<Option<Applied>> {
        if self.inspect(&self.container)?.is_some() {
            docker().args(["rm", "--force", &self.container]).read()?;
        }
        if self.inspect(&self.previous())?.is_none() {
            return Ok(None);
        }
        docker()
            .args(["rename", &self.previous(), &self.container])
            .read()?;
        docker().args(["start", &self.container]).read()?;
        let id = self
            .inspect(&self.container)?
            .map(|c| c.id)
            .context("the restored container vanished")?;
        Ok(Some(Applied {
            url: self.url_of(&self.container)?,
            deployment_ref: id,
        }))
    }

    /// The old container is stopped before the new one starts.
    fn rollout_overlaps(&self) -> bool {
        false
    }

    fn status(&self) -> anyhow::Result<Running> {
        let Some(c) = self.inspect(&self.container)? else {
            return Ok(Running::default());
        };
        let pinned = c.image.parse::<ImageRef>().ok();
        Ok(Running {
            image_sha: pinned.as_ref().map(|i| i.sha.clone()),
            image_digest: pinned.map(|i| i.digest),
            url: if c.running {
                Some(self.url_of(&self.container)?)
            } else {
                None
            },
            deployment_ref: Some(c.id),
            image_ref: Some(c.image),
        })
    }
}

fn read(config: &Path) -> anyhow::Result<RunConfig> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a docker run config", config.display()))
}
