//! The local Docker engine: the embedded default, for a laptop, a VM and the
//! tests. Zero-downtime blue/green behind a real reverse proxy (HAProxy).
//!
//! Per environment (all names start with its `container` name, all carry our
//! labels, so an operator lists and cleans them by name):
//!
//! ```text
//! 127.0.0.1:<port> ─► <container>-proxy (HAProxy, slots a|b) ─┬─► <container>-<release id>  (serving)
//!                     on the private network <container>-net  └─► <container>-<release id>  (new / draining)
//! stopped <container>-<release id> …: the last `retain` releases, for an instant rollback
//! ```
//!
//! A release (the engine's steps, [`Target`]):
//! 1. `apply`: the new container starts on the network (no port of its own),
//!    beside the one serving; the engine verifies it directly at its address.
//! 2. `switch`: the proxy loads it into the free slot, waits for its own
//!    health check, and moves all the weight to it in one runtime-API line;
//!    the engine verifies again through the proxy.
//! 3. `commit`: the old slot drains (in-flight requests finish; `drain`
//!    seconds at most), its container stops and is retained; old retained
//!    containers beyond `retain` are pruned, never the last verified release
//!    of any environment.
//!
//! A failure before the switch never touched traffic: the new container is
//! removed. A failure after it (verification through the proxy) switches
//! back at once: the old container still runs until it is drained. So at
//! every instant, even after a `kill -9` or a second Ctrl-C, the proxy
//! sends to a release that was verified.
//!
//! A rollback to a retained release starts that very container (no pull, no
//! registry: its image digest is checked against the ledger and the local
//! image) and switches to it like any release.
//!
//! The proxy's API for strategies (blue/green here, canary later) is in
//! [`proxy`]: `load`, `set_weights`, `switch_to`, `drain`, `empty`, `slots`.

mod canary;
pub mod containers;
pub mod haproxy;
pub mod proxy;
pub mod proxy_image;
pub mod retain;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};

use self::containers::{
    Container, DIGEST_LABEL, ENVIRONMENT_LABEL, Owner, RELEASE_LABEL, ROLE_LABEL, SHA_LABEL,
    STATE_LABEL,
};
use self::haproxy::Slot;
use self::proxy::Proxy;
use self::proxy_image::ProxyImage;
use self::retain::{Protected, Stopped};
use super::{Applied, NothingChanged, Running, Target, TargetKind};
use crate::model::environment::Environment;
use crate::model::image::ImageRef;
use crate::support::cmd::Cmd;
use crate::support::docker::docker;
use crate::support::project::EnvironmentConfig;

/// Kamal's `retain_containers` default.
pub const DEFAULT_RETAIN: usize = 5;
/// kamal-proxy's default drain.
pub const DEFAULT_DRAIN_SECS: u64 = 30;

/// What the docker target is made from, beyond the environment's settings.
pub struct Settings {
    pub state_dir: PathBuf,
    pub proxy_image: Option<ProxyImage>,
    /// Every environment's last verified release: never pruned.
    pub protected: Protected,
    /// `--drain` when given (else the environment's `drain_secs`).
    pub drain: Option<Duration>,
}

pub struct Docker {
    container: String,
    env: BTreeMap<String, String>,
    environment: Environment,
    /// Where this checkout keeps the lock and ledger that guard the containers.
    state_dir: String,
    proxy: Proxy,
    drain: Duration,
    retain: usize,
    protected: Protected,
    /// The container this run started, until it is committed or removed.
    started: Mutex<Option<String>>,
}

/// `run.json`: everything `docker run` needs, frozen with the release. The
/// port is not in it: it is the environment's (the proxy's), never a
/// release's, so a rollback cannot move it.
#[derive(serde::Serialize, serde::Deserialize)]
struct RunConfig {
    container: String,
    image: String,
    env: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

impl Docker {
    pub fn new(environment: Environment, settings: &EnvironmentConfig, s: Settings) -> Docker {
        // The defaults live with the config, which checks them for clashes.
        let container = settings.container_or_default(environment);
        let state_dir = s.state_dir.display().to_string();
        Docker {
            proxy: Proxy {
                name: format!("{container}-proxy"),
                network: format!("{container}-net"),
                port: settings.port_or_default(environment),
                environment,
                state_dir: state_dir.clone(),
                config_file: s.state_dir.join("proxy").join(format!("{environment}.cfg")),
                image: s.proxy_image,
                admin_port: Mutex::new(None),
            },
            container,
            env: settings.env.clone(),
            environment,
            state_dir,
            drain: s.drain.unwrap_or(Duration::from_secs(
                settings.drain_secs.unwrap_or(DEFAULT_DRAIN_SECS),
            )),
            retain: settings.retain.unwrap_or(DEFAULT_RETAIN),
            protected: s.protected,
            started: Mutex::new(None),
        }
    }

    fn owner(&self) -> Owner<'_> {
        Owner {
            environment: self.environment,
            state_dir: &self.state_dir,
        }
    }

    /// This environment's release containers, running or stopped.
    fn releases(&self) -> anyhow::Result<Vec<Container>> {
        containers::list(&self.container, self.environment, "release")
    }

    fn ip_of(&self, c: &Container) -> anyhow::Result<String> {
        c.ips.get(&self.proxy.network).cloned().with_context(|| {
            format!(
                "{} has no address on {} (is it running?)",
                c.name, self.proxy.network
            )
        })
    }

    fn run_cmd(&self, config: &RunConfig) -> Cmd {
        let mut cmd = docker()
            .args(["run", "--detach", "--name", &config.container])
            .args(["--network", &self.proxy.network])
            .args(["--restart", "unless-stopped"]);
        for (k, v) in &config.env {
            cmd = cmd.arg("--env").arg(format!("{k}={v}"));
        }
        for (k, v) in &config.labels {
            cmd = cmd.arg("--label").arg(format!("{k}={v}"));
        }
        cmd.arg(&config.image)
    }

    /// A frozen or rendered config must be this environment's: its
    /// container under our name, its labels ours. A refusal touches nothing.
    fn check_config(&self, config: &RunConfig) -> anyhow::Result<()> {
        let env = config.labels.get(ENVIRONMENT_LABEL);
        let prefix = format!("{}-", self.container);
        if !config.container.starts_with(&prefix) || env != Some(&self.environment.to_string()) {
            return Err(NothingChanged(format!(
                "that release config is for container {} ({}), not a release of {} ({}-…): it was made for another environment or another `container` name; deploy the SHA to render its config afresh",
                config.container,
                env.map_or("no environment", String::as_str),
                self.environment,
                self.container,
            ))
            .into());
        }
        Ok(())
    }

    /// The release container of `config`: the retained one when it exists
    /// (started as it is, nothing pulled), else a new one.
    fn start_release(&self, config: &RunConfig) -> anyhow::Result<Container> {
        let image: ImageRef = config.image.parse()?;
        *self.started.lock().unwrap_or_else(|e| e.into_inner()) = Some(config.container.clone());
        match containers::inspect(&config.container)? {
            Some(c) => {
                self.owner().check(&c, "release")?;
                if !c.runs(&image) {
                    bail!(
                        "container {} runs {}, not {}: refusing to start it as that release; remove it (`docker rm -f {}`)",
                        c.name,
                        c.image,
                        image.pinned(),
                        c.name
                    );
                }
                check_local_image(&image)?;
                if !c.running {
                    eprintln!("starting the retained container {} (no pull)", c.name);
                    docker().args(["start", &c.name]).read()?;
                }
            }
            None => {
                self.run_cmd(config).read()?;
            }
        }
        containers::inspect(&config.container)?
            .with_context(|| format!("container {} vanished as it started", config.container))
    }

    /// A release found running beside the proxy's slots (an interrupted
    /// run), or the one serving when the proxy has to be made.
    fn newest_running(&self) -> anyhow::Result<Option<Container>> {
        let mut running: Vec<Container> =
            self.releases()?.into_iter().filter(|c| c.running).collect();
        running.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(running.into_iter().next())
    }

    /// Stop every running release container that no slot sends to (the old
    /// one once drained, leftovers of an interrupted run), then prune.
    fn stop_unrouted(&self) -> anyhow::Result<()> {
        let slots = self.proxy.slots()?;
        let routed: Vec<String> = slots
            .iter()
            .filter(|s| s.active())
            .filter_map(|s| s.container.clone())
            .collect();
        for slot in slots
            .iter()
            .filter(|s| !s.active() && s.container.is_some())
        {
            self.proxy.empty(slot.stat.slot)?;
        }
        for c in self.releases()? {
            if c.running && !routed.contains(&c.name) {
                docker()
                    .args([
                        "stop",
                        "-t",
                        &self.drain.as_secs().max(1).to_string(),
                        &c.name,
                    ])
                    .read()?;
            }
        }
        self.prune()
    }

    fn prune(&self) -> anyhow::Result<()> {
        let stopped: Vec<Stopped> = self
            .releases()?
            .into_iter()
            .filter(|c| !c.running)
            .map(|c| Stopped {
                release: c.label(RELEASE_LABEL).map(str::to_owned),
                digest: c.label(DIGEST_LABEL).map(str::to_owned),
                name: c.name,
                created: c.created,
            })
            .collect();
        for name in retain::to_remove(&stopped, self.retain, &self.protected) {
            docker().args(["rm", &name]).read()?;
        }
        Ok(())
    }

    /// The stopped (retained) releases, newest first.
    fn retained(&self) -> anyhow::Result<Vec<Container>> {
        let mut stopped: Vec<Container> = self
            .releases()?
            .into_iter()
            .filter(|c| !c.running)
            .collect();
        stopped.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(stopped)
    }
}

/// The local image must be exactly the release's: its repository digest is
/// the one the ledger recorded (what a retained container runs without the
/// registry).
fn check_local_image(image: &ImageRef) -> anyhow::Result<()> {
    let out = docker()
        .args([
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &image.pinned(),
        ])
        .output()?;
    let digests: Vec<String> = serde_json::from_str(out.stdout.trim()).unwrap_or_default();
    let wanted = format!("{}@{}", image.repository, image.digest);
    if !out.status.success() || !digests.contains(&wanted) {
        bail!(
            "the local image of {} is not {wanted} (it has {}): refusing to start it; deploy it again from the registry",
            image.pinned(),
            if digests.is_empty() {
                "no repository digest".to_owned()
            } else {
                digests.join(", ")
            }
        );
    }
    Ok(())
}

impl Target for Docker {
    fn kind(&self) -> TargetKind {
        TargetKind::Docker
    }

    /// Before anything is touched: the engine answers, the proxy (if any) is
    /// ours and on this environment's port, or the port is free for it.
    fn preflight(&self) -> anyhow::Result<()> {
        crate::support::docker::ensure_daemon()?;
        self.proxy.check()
    }

    fn render(&self, image: &ImageRef, release_id: &str, dir: &Path) -> anyhow::Result<PathBuf> {
        let labels = BTreeMap::from([
            (ENVIRONMENT_LABEL.to_owned(), self.environment.to_string()),
            (RELEASE_LABEL.to_owned(), release_id.to_owned()),
            (SHA_LABEL.to_owned(), image.sha.to_string()),
            (DIGEST_LABEL.to_owned(), image.digest.to_string()),
            (STATE_LABEL.to_owned(), self.state_dir.clone()),
            (ROLE_LABEL.to_owned(), "release".to_owned()),
        ]);
        let config = RunConfig {
            container: release_container(&self.container, release_id),
            image: image.pinned(),
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

    /// A rollback or restore: the release's env comes back with its image
    /// (issue 23); the port is the proxy's, never a release's. When the
    /// frozen release container is one of this environment's names, the
    /// config keeps it, so a retained container is started as it is (no
    /// pull, no registry).
    fn carry_over(&self, frozen: &Path, fresh: &Path) -> anyhow::Result<()> {
        let frozen = read(frozen)?;
        let mut config = read(fresh)?;
        config.env = frozen.env;
        if frozen
            .container
            .starts_with(&format!("{}-", self.container))
        {
            config.container = frozen.container;
            if let Some(id) = frozen.labels.get(RELEASE_LABEL) {
                config.labels.insert(RELEASE_LABEL.to_owned(), id.clone());
            }
        }
        crate::support::output::write_file(fresh, &config)
    }

    fn plan(&self, config: &Path, _keep: Option<&ImageRef>) -> anyhow::Result<Vec<String>> {
        let config = read(config)?;
        let mut cmds = Vec::new();
        if containers::inspect(&self.proxy.name)?.is_none() {
            cmds.push(format!(
                "docker network create {} && docker create --name {} --publish 127.0.0.1:{}:8080 … (HAProxy)",
                self.proxy.network, self.proxy.name, self.proxy.port
            ));
        }
        cmds.push(self.run_cmd(&config).to_string());
        cmds.push(format!(
            "switch the proxy {} to {} once it verifies; drain the old release ({}s at most), stop it, keep the last {}",
            self.proxy.name,
            config.container,
            self.drain.as_secs(),
            self.retain
        ));
        Ok(cmds)
    }

    /// Start the new release beside the serving one; traffic is untouched.
    fn apply(&self, config: &Path, _keep: Option<&ImageRef>) -> anyhow::Result<Applied> {
        let config = read(config)?;
        self.check_config(&config)?;
        let serving = self.newest_running()?;
        self.proxy
            .ensure(serving.as_ref().map(|c| c.name.as_str()))?;
        let c = self.start_release(&config)?;
        Ok(Applied {
            url: format!("http://{}:{}", self.ip_of(&c)?, haproxy::HTTP_PORT),
            deployment_ref: c.id,
        })
    }

    /// Verified directly: the proxy sends everything to it from now on.
    fn switch(&self) -> anyhow::Result<Option<String>> {
        let name = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .context("nothing was started to switch to")?;
        let c = containers::inspect(&name)?.with_context(|| format!("{name} vanished"))?;
        let slots = self.proxy.slots()?;
        let holding = slots
            .iter()
            .find(|s| s.container.as_deref() == Some(name.as_str()));
        let active = slots
            .iter()
            .filter(|s| s.active())
            .max_by_key(|s| s.stat.weight);
        let free = match (holding, active) {
            // Already in a slot (a rollback onto a release still loaded): that slot.
            (Some(h), _) => h.stat.slot,
            (None, Some(active)) => active.stat.slot.other(),
            (None, None) => Slot::A,
        };
        eprintln!(
            "switching {} to {name} (slot {})",
            self.proxy.name,
            free.name()
        );
        self.proxy.switch_to(free, &name, &self.ip_of(&c)?)?;
        Ok(Some(self.proxy.url()))
    }

    /// Drain the old release, stop it (it is retained), prune.
    fn commit(&self) -> anyhow::Result<()> {
        let name = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let slots = self.proxy.slots()?;
        for old in slots
            .iter()
            .filter(|s| s.container.is_some() && s.container != name && s.stat.weight == 0)
        {
            let left = self.proxy.drain(old.stat.slot, self.drain)?;
            if left > 0 {
                eprintln!(
                    "warning: {} requests still in flight on {} after the {}s drain",
                    left,
                    old.container.as_deref().unwrap_or("-"),
                    self.drain.as_secs()
                );
            }
        }
        self.stop_unrouted()
    }

    /// Back to the release that served before: the proxy is switched back
    /// if it was switched (the old container still runs: it is only stopped
    /// once the new one is committed), and the new container is removed.
    fn restore_kept(&self) -> anyhow::Result<Option<Applied>> {
        let new = self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if containers::inspect(&self.proxy.name)?.is_none() {
            if let Some(new) = &new {
                docker().args(["rm", "--force", new]).read()?;
            }
            return Ok(None);
        }
        self.proxy.ensure(None)?;
        let slots = self.proxy.slots()?;
        let old = slots
            .iter()
            .find(|s| s.container.is_some() && s.container != new)
            .cloned();
        let restored = match old {
            Some(old) => {
                let name = old.container.clone().unwrap_or_default();
                match containers::inspect(&name)? {
                    Some(c) => {
                        if !c.running {
                            docker().args(["start", &name]).read()?;
                        }
                        let c = containers::inspect(&name)?
                            .with_context(|| format!("{name} vanished"))?;
                        self.proxy
                            .switch_to(old.stat.slot, &name, &self.ip_of(&c)?)?;
                        Some(Applied {
                            url: self.proxy.url(),
                            deployment_ref: c.id,
                        })
                    }
                    None => None,
                }
            }
            None => None,
        };
        if let Some(new) = &new {
            if let Some(slot) = slots.iter().find(|s| s.container.as_ref() == Some(new)) {
                self.proxy.empty(slot.stat.slot)?;
            }
            docker().args(["rm", "--force", new]).read()?;
        }
        Ok(restored)
    }

    /// The new container is verified at its own address, where the old SHA
    /// never answers.
    fn rollout_overlaps(&self) -> bool {
        false
    }

    /// Two slots behind weights: the canary runs here (`canary.rs`).
    fn split(&self) -> anyhow::Result<&dyn super::Split> {
        Ok(self)
    }

    fn retained_image(&self, image: &ImageRef) -> bool {
        self.releases()
            .is_ok_and(|all| all.iter().any(|c| c.runs(image)) && check_local_image(image).is_ok())
    }

    fn status(&self) -> anyhow::Result<Running> {
        let Some(proxy) = containers::inspect(&self.proxy.name)? else {
            return Ok(Running {
                notes: self.notes(None)?,
                ..Running::default()
            });
        };
        self.owner().check(&proxy, "proxy")?;
        let active = if proxy.running {
            self.proxy.active()?
        } else {
            None
        };
        let serving = match active.as_ref().and_then(|a| a.container.clone()) {
            Some(name) => containers::inspect(&name)?,
            None => None,
        };
        let notes = self.notes(Some((&proxy, active.as_ref())))?;
        let Some(c) = serving else {
            return Ok(Running {
                notes,
                ..Running::default()
            });
        };
        let pinned = c.image.parse::<ImageRef>().ok();
        Ok(Running {
            image_sha: pinned.as_ref().map(|i| i.sha.clone()),
            image_digest: pinned.map(|i| i.digest),
            url: (c.running && proxy.running).then(|| self.proxy.url()),
            deployment_ref: Some(c.id),
            image_ref: Some(c.image),
            notes,
        })
    }
}

impl Docker {
    /// What `status` shows beyond the serving release: the proxy (image,
    /// state, its upstream) and the retained releases.
    fn notes(
        &self,
        proxy: Option<(&Container, Option<&proxy::SlotState>)>,
    ) -> anyhow::Result<serde_json::Value> {
        let retained: Vec<serde_json::Value> = self
            .retained()?
            .iter()
            .map(|c| {
                serde_json::json!({
                    "container": c.name,
                    "image_sha": c.label(SHA_LABEL),
                    "image_digest": c.label(DIGEST_LABEL),
                    "release": c.label(RELEASE_LABEL),
                })
            })
            .collect();
        let proxy = proxy.map(|(p, active)| {
            serde_json::json!({
                "container": p.name,
                "running": p.running,
                "image": p.label(proxy::IMAGE_LABEL),
                "port": self.proxy.port,
                "upstream": active.and_then(|a| a.container.clone()),
                "slot": active.map(|a| a.stat.slot.name()),
            })
        });
        Ok(serde_json::json!({"proxy": proxy, "retained": retained}))
    }
}

/// `<container>-<release id>`, as a DNS label (the proxy finds releases by
/// name through Docker's DNS): lowercase, the id's `.` made `-`.
fn release_container(container: &str, release_id: &str) -> String {
    format!(
        "{container}-{}",
        release_id.to_ascii_lowercase().replace('.', "-")
    )
}

fn read(config: &Path) -> anyhow::Result<RunConfig> {
    let text =
        std::fs::read_to_string(config).with_context(|| format!("reading {}", config.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a docker run config", config.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_container_is_named_as_a_dns_label_under_the_environment() {
        assert_eq!(
            release_container("api-staging", "20261206T185820.807Z-0123456789ab"),
            "api-staging-20261206t185820-807z-0123456789ab"
        );
    }
}
