//! The containers and the network of one environment, as the engine sees
//! them: asked with `docker container inspect`, `docker ps`, and checked to
//! be ours by their labels before anything touches them.

use std::collections::BTreeMap;

use anyhow::{Context, bail};

use crate::model::environment::Environment;
use crate::model::image::ImageRef;
use crate::support::docker::docker;

pub const ENVIRONMENT_LABEL: &str = "xtask.environment";
pub const STATE_LABEL: &str = "xtask.state";
/// `proxy`, `release` or `network`.
pub const ROLE_LABEL: &str = "xtask.role";
pub const RELEASE_LABEL: &str = "xtask.release";
pub const SHA_LABEL: &str = "xtask.sha";
pub const DIGEST_LABEL: &str = "xtask.digest";

/// One container, as `docker container inspect` describes it.
#[derive(Clone, Debug)]
pub struct Container {
    pub name: String,
    pub running: bool,
    pub id: String,
    pub image: String,
    pub created: String,
    pub labels: BTreeMap<String, String>,
    /// Its address on each network it is attached to.
    pub ips: BTreeMap<String, String>,
}

impl Container {
    pub fn runs(&self, image: &ImageRef) -> bool {
        self.image.parse::<ImageRef>().is_ok_and(|i| i == *image)
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// `Ok(None)`: no such container. `Err`: the engine could not be asked.
pub fn inspect(name: &str) -> anyhow::Result<Option<Container>> {
    let cmd = docker().args([
        "container",
        "inspect",
        "--format",
        "{{.State.Running}} {{.Id}} {{.Created}} {{.Config.Image}} {{json .NetworkSettings.Networks}} {{json .Config.Labels}}",
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
    let mut words = out.stdout.trim().splitn(6, ' ');
    let running = words.next() == Some("true");
    let id = words.next().unwrap_or_default().chars().take(12).collect();
    let created = words.next().unwrap_or_default().to_owned();
    let image = words.next().unwrap_or_default().to_owned();
    let networks: BTreeMap<String, serde_json::Value> =
        serde_json::from_str::<Option<_>>(words.next().unwrap_or("null"))
            .with_context(|| format!("`{cmd}` printed networks that are not JSON"))?
            .unwrap_or_default();
    let ips = networks
        .into_iter()
        .filter_map(|(net, v)| {
            let ip = v.get("IPAddress")?.as_str()?;
            (!ip.is_empty()).then(|| (net, ip.to_owned()))
        })
        .collect();
    let labels =
        serde_json::from_str::<Option<BTreeMap<String, String>>>(words.next().unwrap_or("null"))
            .with_context(|| format!("`{cmd}` printed labels that are not JSON"))?
            .unwrap_or_default();
    Ok(Some(Container {
        name: name.to_owned(),
        running,
        id,
        image,
        created,
        labels,
        ips,
    }))
}

/// Every container whose name starts with `<prefix>-` and whose labels say
/// it is `role` of `environment`.
pub fn list(prefix: &str, environment: Environment, role: &str) -> anyhow::Result<Vec<Container>> {
    let names = docker()
        .args([
            "ps",
            "--all",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("name=^{prefix}-"),
            "--filter",
            &format!("label={ENVIRONMENT_LABEL}={environment}"),
            "--filter",
            &format!("label={ROLE_LABEL}={role}"),
        ])
        .read()?;
    let mut found = Vec::new();
    for name in names.lines().map(str::trim).filter(|n| !n.is_empty()) {
        if let Some(c) = inspect(name)? {
            found.push(c);
        }
    }
    Ok(found)
}

/// Who may touch a container: this environment, from this checkout.
pub struct Owner<'a> {
    pub environment: Environment,
    pub state_dir: &'a str,
}

impl Owner<'_> {
    /// Refuse a container under our names that is not this environment's,
    /// from this checkout, in the role we expect.
    pub fn check(&self, c: &Container, role: &str) -> anyhow::Result<()> {
        let name = &c.name;
        let environment = self.environment;
        let Some(env) = c.labels.get(ENVIRONMENT_LABEL) else {
            bail!(
                "container {name} exists but was not created by xtask (no {ENVIRONMENT_LABEL} label): remove it (`docker rm -f {name}`) or give {environment} its own `container` name in the release config"
            );
        };
        if *env != environment.to_string() {
            bail!(
                "container {name} belongs to {env} ({ENVIRONMENT_LABEL}={env}), not {environment}: the release config names another environment's container; give {environment} its own `container` and `port`"
            );
        }
        match c.labels.get(STATE_LABEL) {
            Some(owner) if *owner == self.state_dir => {}
            Some(owner) => bail!(
                "container {name} is managed from another checkout (state in {owner}; its lock and ledger are there): deploy from that checkout, give this one its own `container` and `port` in the release config, or take it over with `docker rm -f {name}`"
            ),
            None => bail!(
                "container {name} has no {STATE_LABEL} label, so no lock guards it: remove it (`docker rm -f {name}`) and deploy again"
            ),
        }
        match c.label(ROLE_LABEL) {
            Some(r) if r == role => Ok(()),
            other => bail!(
                "container {name} is {environment}'s, but not its {role} ({ROLE_LABEL}={}): an older xtask made it; remove it (`docker rm -f {name}`) and deploy again",
                other.unwrap_or("none")
            ),
        }
    }
}
