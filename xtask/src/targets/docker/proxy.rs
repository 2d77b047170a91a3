//! The proxy of one environment: the container `<container>-proxy` running
//! HAProxy, owner of the environment's `port` on 127.0.0.1, on the
//! environment's private network `<container>-net`, with two server slots
//! (`a`, `b`) for releases.
//!
//! The small API a strategy drives (blue/green here; a canary moves weights
//! with the same calls):
//!
//! - [`Proxy::ensure`]: the proxy runs (created or started when it is not),
//!   is ours, and publishes this environment's port.
//! - [`Proxy::slots`]: which release container each slot holds, its weight,
//!   its health, its requests in flight.
//! - [`Proxy::load`]: put a release container in a slot, at weight 0, and
//!   wait until the proxy's own health check says it is UP.
//! - [`Proxy::set_weights`]: both slots' weights in one runtime-API line (a
//!   switch is `set_weights(new: 100, old: 0)`; a canary step `(90, 10)`).
//! - [`Proxy::switch_to`]: `load` then all the weight on that slot.
//! - [`Proxy::drain`]: no new requests to a slot; wait (up to a deadline)
//!   until its requests in flight are done.
//! - [`Proxy::empty`]: the slot holds nothing (maintenance).
//!
//! Every change goes through the runtime API (no reload: client connections
//! to the proxy stay open) and is then written to the config file inside
//! the container, so a `docker restart` of the proxy comes back as it was.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::containers::{self, Container, ENVIRONMENT_LABEL, Owner, ROLE_LABEL, STATE_LABEL};
use super::haproxy::{
    self, ADMIN_PORT, Admin, CONFIG_PATH, FULL, HTTP_PORT, Slot, SlotConfig, SlotStat,
};
use super::proxy_image::ProxyImage;
use crate::model::environment::Environment;
use crate::support::docker::docker;

pub const IMAGE_LABEL: &str = "xtask.proxy.image";
/// How long a release loaded into a slot may take to pass the proxy's own
/// health check (every second, UP after one success).
const UP_DEADLINE: Duration = Duration::from_secs(15);
/// How long a (re)started proxy may take to answer on its runtime API.
const START_DEADLINE: Duration = Duration::from_secs(15);

pub struct Proxy {
    pub name: String,
    pub network: String,
    pub port: u16,
    pub environment: Environment,
    pub state_dir: String,
    /// Where the config file is written before it is copied in.
    pub config_file: PathBuf,
    pub image: Option<ProxyImage>,
    /// The runtime API's host port, asked of docker once per start of the proxy.
    pub admin_port: std::sync::Mutex<Option<u16>>,
}

/// One slot: what the proxy says, and the release container it holds.
#[derive(Clone, Debug)]
pub struct SlotState {
    pub stat: SlotStat,
    /// The container name the slot sends to (its FQDN in the proxy).
    pub container: Option<String>,
}

impl SlotState {
    pub fn active(&self) -> bool {
        self.stat.weight > 0 && self.container.is_some()
    }
}

impl Proxy {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn owner(&self) -> Owner<'_> {
        Owner {
            environment: self.environment,
            state_dir: &self.state_dir,
        }
    }

    pub fn inspect(&self) -> anyhow::Result<Option<Container>> {
        let found = containers::inspect(&self.name)?;
        if let Some(c) = &found {
            self.owner().check(c, "proxy")?;
        }
        Ok(found)
    }

    /// Checks that touch nothing: the proxy, when there is one, is ours and
    /// publishes this environment's port; when there is none, the port is
    /// free for it.
    pub fn check(&self) -> anyhow::Result<()> {
        match self.inspect()? {
            Some(c) => {
                let runs = c.label(IMAGE_LABEL).unwrap_or("-");
                if let Some(wanted) = self.image.as_ref().filter(|w| w.to_string() != runs) {
                    eprintln!(
                        "warning: the proxy {} runs {runs}, the config names {wanted}: a release does not replace the proxy; to move to it, `docker rm -f {}` and deploy again (the service is down until the new proxy answers; see docs/rollback.md)",
                        self.name, self.name
                    );
                }
                let published = published_port(&c.name)?;
                if let Some(published) = published.filter(|p| *p != self.port) {
                    bail!(
                        "the release config moves {}'s port from {published} to {}, but its proxy {} publishes {published}: moving the port is not a release (users would lose the service); put `port` back to {published}, or move it by hand: `docker rm -f {}`, then deploy (the service is down in between; see docs/rollback.md)",
                        self.environment,
                        self.port,
                        self.name,
                        self.name
                    );
                }
            }
            None => {
                if std::net::TcpListener::bind(("127.0.0.1", self.port)).is_err() {
                    bail!(
                        "port {} on 127.0.0.1 is taken by another process, so {}'s proxy cannot publish it: stop that process (`ss -ltnp 'sport = :{}'` names it) or give {} another `port` in the release config",
                        self.port,
                        self.environment,
                        self.port,
                        self.environment
                    );
                }
            }
        }
        Ok(())
    }

    /// The proxy runs and answers on its runtime API: created (its slots
    /// holding `serving`, when a release runs already) or started as needed.
    pub fn ensure(&self, serving: Option<&str>) -> anyhow::Result<Admin> {
        self.ensure_network()?;
        match self.inspect()? {
            Some(c) if c.running => {}
            Some(_) => {
                docker().args(["start", &self.name]).read()?;
            }
            None => self.create(serving)?,
        }
        self.wait_admin()
    }

    fn ensure_network(&self) -> anyhow::Result<()> {
        let out = docker()
            .args([
                "network",
                "inspect",
                "--format",
                "{{json .Labels}}",
                &self.network,
            ])
            .output()?;
        if out.status.success() {
            let labels: std::collections::BTreeMap<String, String> =
                serde_json::from_str::<Option<_>>(out.stdout.trim())
                    .ok()
                    .flatten()
                    .unwrap_or_default();
            if labels.get(ENVIRONMENT_LABEL) != Some(&self.environment.to_string()) {
                bail!(
                    "network {} exists but is not {}'s (no {ENVIRONMENT_LABEL}={} label): remove it (`docker network rm {}`) or give {} its own `container` name",
                    self.network,
                    self.environment,
                    self.environment,
                    self.network,
                    self.environment
                );
            }
            return Ok(());
        }
        docker()
            .args(["network", "create", "--driver", "bridge"])
            .arg("--label")
            .arg(format!("{ENVIRONMENT_LABEL}={}", self.environment))
            .arg("--label")
            .arg(format!("{STATE_LABEL}={}", self.state_dir))
            .arg("--label")
            .arg(format!("{ROLE_LABEL}=network"))
            .arg(&self.network)
            .read()?;
        Ok(())
    }

    fn create(&self, serving: Option<&str>) -> anyhow::Result<()> {
        self.check()?;
        let image = match &self.image {
            Some(image) => image.clone(),
            None => {
                eprintln!(
                    "no proxy image configured ({} or deploy/release.json proxy.image): building one from this machine's HAProxy",
                    super::proxy_image::ENV_VAR
                );
                let dir = PathBuf::from(&self.state_dir);
                super::proxy_image::build(&dir)?
            }
        };
        let run_as = image.resolve()?;
        docker()
            .args(["create", "--name", &self.name, "--network", &self.network])
            .args(["--restart", "unless-stopped"])
            // HAProxy runs as PID 1, where the kernel ignores a signal its
            // process has no handler for: SIGTERM, docker's default, did
            // nothing, and `docker stop` (a restart, the engine's shutdown)
            // waited 10 s and killed it mid-request. SIGUSR1 is HAProxy's
            // soft stop (management.txt §4; the official image's STOPSIGNAL):
            // it stops listening and lets requests in flight finish.
            .args(["--stop-signal", "SIGUSR1"])
            .arg("--publish")
            .arg(format!("127.0.0.1:{}:{HTTP_PORT}", self.port))
            .arg("--publish")
            .arg(format!("127.0.0.1::{ADMIN_PORT}"))
            .arg("--label")
            .arg(format!("{ENVIRONMENT_LABEL}={}", self.environment))
            .arg("--label")
            .arg(format!("{STATE_LABEL}={}", self.state_dir))
            .arg("--label")
            .arg(format!("{ROLE_LABEL}=proxy"))
            .arg("--label")
            .arg(format!("{IMAGE_LABEL}={image}"))
            .arg(run_as)
            .args(["haproxy", "-db", "-f", CONFIG_PATH])
            .read()?;
        let a = SlotConfig {
            container: serving.map(str::to_owned),
            weight: if serving.is_some() { FULL } else { 0 },
        };
        let b = SlotConfig {
            container: None,
            weight: 0,
        };
        self.write_config(&a, &b)?;
        if let Err(e) = docker().args(["start", &self.name]).read() {
            // Nothing may stay half-made: a proxy that cannot start (its
            // port taken since the check) is removed.
            let _ = docker().args(["rm", "--force", &self.name]).read();
            return Err(e);
        }
        Ok(())
    }

    /// The runtime API's address on the host (an ephemeral port, new at each
    /// start of the proxy).
    pub fn admin(&self) -> anyhow::Result<Admin> {
        let mut cached = self.admin_port.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(port) = *cached {
            let admin = Admin {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            };
            // A restarted proxy publishes its runtime API on a new port.
            if std::net::TcpStream::connect_timeout(&admin.addr, Duration::from_secs(2)).is_ok() {
                return Ok(admin);
            }
        }
        let port = published(&self.name, ADMIN_PORT)?.with_context(|| {
            format!(
                "the proxy {} publishes no runtime API port: it was not made by this xtask; remove it (`docker rm -f {}`) and deploy again",
                self.name, self.name
            )
        })?;
        *cached = Some(port);
        Ok(Admin {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    fn wait_admin(&self) -> anyhow::Result<Admin> {
        let started = Instant::now();
        loop {
            let last = match self.admin() {
                Ok(admin) => match admin.stats() {
                    Ok(_) => return Ok(admin),
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if started.elapsed() > START_DEADLINE {
                return Err(last.context(format!(
                    "the proxy {} did not answer on its runtime API within {}s (see `docker logs {}`)",
                    self.name,
                    START_DEADLINE.as_secs(),
                    self.name
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Both slots, with the container each sends to.
    pub fn slots(&self) -> anyhow::Result<Vec<SlotState>> {
        let admin = self.admin()?;
        let stats = admin.stats()?;
        let fqdns = parse_fqdns(&admin.ask(&format!("show servers state {}", haproxy::BACKEND))?);
        Ok(stats
            .into_iter()
            .map(|stat| {
                let container = fqdns
                    .iter()
                    .find(|(s, _)| *s == stat.slot.name())
                    .and_then(|(_, f)| f.clone())
                    .filter(|_| !stat.status.starts_with("MAINT"));
                SlotState { stat, container }
            })
            .collect())
    }

    /// The slot holding all (or most) of the traffic, if any.
    pub fn active(&self) -> anyhow::Result<Option<SlotState>> {
        Ok(self
            .slots()?
            .into_iter()
            .filter(SlotState::active)
            .max_by_key(|s| s.stat.weight))
    }

    /// Put `container` (at `ip`) in `slot` at weight 0 and wait until the
    /// proxy's health check passes on it.
    ///
    /// A slot that already holds `container` at `ip` and is UP is left as
    /// it is: setting its weight to 0 first would take the traffic off the
    /// release serving it (a failed release going back to the slot that
    /// never stopped serving answered 503 for a moment).
    pub fn load(&self, slot: Slot, container: &str, ip: &str) -> anyhow::Result<()> {
        let admin = self.admin()?;
        let s = slot.name();
        let b = haproxy::BACKEND;
        let held = self
            .slots()?
            .into_iter()
            .find(|st| st.stat.slot == slot)
            .is_some_and(|st| {
                st.container.as_deref() == Some(container)
                    && st.stat.addr == format!("{ip}:{HTTP_PORT}")
                    && st.stat.status == "UP"
            });
        if held {
            return Ok(());
        }
        admin.set(&[
            haproxy::set_weight(slot, 0),
            format!("set server {b}/{s} fqdn {container}"),
            haproxy::set_addr(slot, ip),
            haproxy::set_state(slot, "ready"),
        ])?;
        let started = Instant::now();
        loop {
            let stat = self.admin()?.slot(slot)?;
            if stat.status == "UP" {
                return Ok(());
            }
            if started.elapsed() > UP_DEADLINE {
                bail!(
                    "the proxy's health check never passed on {container} in slot {s} within {}s (last: {})",
                    UP_DEADLINE.as_secs(),
                    stat.status
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Both weights in one line, so no request sees a moment with neither;
    /// then the file, so a restart of the proxy keeps them.
    pub fn set_weights(&self, weights: &[(Slot, u8)]) -> anyhow::Result<()> {
        let cmds: Vec<String> = weights
            .iter()
            .map(|(slot, w)| haproxy::set_weight(*slot, *w))
            .collect();
        self.admin()?.set(&cmds)?;
        self.save()
    }

    /// `load`, then all the weight on `slot` and none on the other.
    pub fn switch_to(&self, slot: Slot, container: &str, ip: &str) -> anyhow::Result<()> {
        self.load(slot, container, ip)?;
        self.set_weights(&[(slot, FULL), (slot.other(), 0)])
    }

    /// No new requests to `slot`; wait until those in flight are done (or
    /// `timeout`). Returns how many were still in flight at the deadline.
    pub fn drain(&self, slot: Slot, timeout: Duration) -> anyhow::Result<u32> {
        self.admin()?.set(&[
            haproxy::set_weight(slot, 0),
            haproxy::set_state(slot, "drain"),
        ])?;
        let started = Instant::now();
        loop {
            let current = self.admin()?.slot(slot)?.current;
            if current == 0 || started.elapsed() >= timeout {
                return Ok(current);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The slot holds nothing any more.
    pub fn empty(&self, slot: Slot) -> anyhow::Result<()> {
        self.admin()?.set(&[
            haproxy::set_weight(slot, 0),
            haproxy::set_state(slot, "maint"),
        ])?;
        self.save()
    }

    /// Write what the runtime API holds now into the config file in the
    /// container (read back at the next start of the proxy).
    fn save(&self) -> anyhow::Result<()> {
        let slots = self.slots()?;
        let config_of = |slot: Slot| {
            slots.iter().find(|s| s.stat.slot == slot).map_or(
                SlotConfig {
                    container: None,
                    weight: 0,
                },
                |s| SlotConfig {
                    container: s.container.clone(),
                    weight: u8::try_from(s.stat.weight).unwrap_or(FULL),
                },
            )
        };
        self.write_config(&config_of(Slot::A), &config_of(Slot::B))
    }

    fn write_config(&self, a: &SlotConfig, b: &SlotConfig) -> anyhow::Result<()> {
        if let Some(dir) = self.config_file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&self.config_file, haproxy::config(a, b))
            .with_context(|| format!("writing {}", self.config_file.display()))?;
        docker()
            .arg("cp")
            .arg(self.config_file.display().to_string())
            .arg(format!("{}:{CONFIG_PATH}", self.name))
            .read()?;
        Ok(())
    }
}

/// `show servers state <backend>`: `# be_id be_name srv_id srv_name srv_addr
/// … srv_fqdn …` then one line per server; `-` for no FQDN.
fn parse_fqdns(text: &str) -> Vec<(String, Option<String>)> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.find(|l| l.starts_with('#')).unwrap_or_default();
    let cols: Vec<&str> = header.trim_start_matches('#').split_whitespace().collect();
    let (Some(name), Some(fqdn)) = (
        cols.iter().position(|c| *c == "srv_name"),
        cols.iter().position(|c| *c == "srv_fqdn"),
    ) else {
        return Vec::new();
    };
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n = (*f.get(name)?).to_owned();
            let q = f.get(fqdn).filter(|q| **q != "-").map(|q| (*q).to_owned());
            Some((n, q))
        })
        .collect()
}

/// The host port a container publishes for `port/tcp` on 127.0.0.1.
fn published(name: &str, port: u16) -> anyhow::Result<Option<u16>> {
    let out = docker()
        .args(["port", name, &format!("{port}/tcp")])
        .output()?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| l.trim().rsplit_once(':')?.1.parse().ok())
        .next())
}

/// The port users reach: from the container's config, so a stopped proxy
/// answers too.
fn published_port(name: &str) -> anyhow::Result<Option<u16>> {
    let out = docker()
        .args([
            "container",
            "inspect",
            "--format",
            "{{json .HostConfig.PortBindings}}",
            name,
        ])
        .read()?;
    let bindings: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
        serde_json::from_str::<Option<_>>(&out)
            .ok()
            .flatten()
            .unwrap_or_default();
    Ok(bindings
        .get(&format!("{HTTP_PORT}/tcp"))
        .and_then(|b| b.first())
        .and_then(|b| b.get("HostPort")?.as_str()?.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fqdn_of_each_slot_comes_from_show_servers_state() {
        let text = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n3 release 1 a 172.18.0.2 2 0 100 100 10 15 3 2 6 0 0 0 api-staging-x 8080 -\n3 release 2 b 127.0.0.1 0 5 0 0 5 15 3 2 6 0 0 0 - 8080 -\n";
        assert_eq!(
            parse_fqdns(text),
            vec![
                ("a".to_owned(), Some("api-staging-x".to_owned())),
                ("b".to_owned(), None)
            ]
        );
    }
}
