//! The canary on the docker target: the stable release and the canary in
//! the proxy's two slots, their weights set through HAProxy's runtime API
//! (`Proxy::set_weights`, both in one line), each release's `/metrics` read
//! directly at its address on the environment's network.
//!
//! ```text
//! start_canary: the canary's container beside the stable one, loaded in the free slot at weight 0
//! set_weight:   canary w, stable 100 - w            (one runtime-API line)
//! promote:      canary 100, stable 0; `commit` drains the stable, stops and retains it
//! abort:        canary 0, stable 100 first; then the slot emptied, the container removed
//! recover:      after a `kill -9` mid-step: stable 100, the other slot emptied
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, bail};

use super::haproxy::{FULL, HTTP_PORT, Slot};
use super::{Docker, containers};
use crate::analysis::Side;
use crate::model::image::ImageRef;
use crate::support::docker::docker;
use crate::support::http;
use crate::targets::{Applied, Split, Target};

/// The stable release's container while a canary runs beside it (one
/// release per process), so each scrape goes straight to the two releases.
static STABLE: Mutex<Option<String>> = Mutex::new(None);

/// The canary's and the stable's slots, and the containers they send to.
struct Slots {
    canary: (Slot, String),
    stable: (Slot, String),
}

impl Docker {
    fn canary_name(&self) -> anyhow::Result<String> {
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .context("no canary was started in this run")
    }

    /// The slot sending to a container of `stable`, if any.
    fn slot_of(&self, stable: &ImageRef) -> anyhow::Result<Option<(Slot, String)>> {
        for s in self.proxy.slots()? {
            let Some(name) = s.container else { continue };
            if containers::inspect(&name)?.is_some_and(|c| c.runs(stable)) {
                return Ok(Some((s.stat.slot, name)));
            }
        }
        Ok(None)
    }

    fn canary_slots(&self) -> anyhow::Result<Slots> {
        let canary = self.canary_name()?;
        let slots = self.proxy.slots()?;
        let mine = slots
            .iter()
            .find(|s| s.container.as_deref() == Some(canary.as_str()))
            .with_context(|| format!("the proxy has no slot sending to the canary {canary}"))?;
        let other = mine.stat.slot.other();
        let stable = slots
            .iter()
            .find(|s| s.stat.slot == other)
            .and_then(|s| s.container.clone())
            .with_context(|| {
                format!("the proxy's slot {} holds no stable release", other.name())
            })?;
        Ok(Slots {
            canary: (mine.stat.slot, canary),
            stable: (other, stable),
        })
    }

    /// A release's address on the network, asked of docker once per
    /// container: a running container keeps it, and the scrapes every
    /// interval should not each print two `docker inspect` lines.
    fn address_of(&self, name: &str) -> anyhow::Result<String> {
        static KNOWN: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
        let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ip) = known.get(name) {
            return Ok(ip.clone());
        }
        let c = containers::inspect(name)?.with_context(|| format!("{name} vanished"))?;
        let ip = self.ip_of(&c)?;
        known.insert(name.to_owned(), ip.clone());
        Ok(ip)
    }
}

impl Split for Docker {
    fn recover(&self, stable: &ImageRef) -> anyhow::Result<()> {
        if self.proxy.inspect()?.is_none() {
            return Ok(());
        }
        self.proxy.ensure(None)?;
        let Some((slot, _)) = self.slot_of(stable)? else {
            bail!(
                "the proxy {} sends to no container of the last verified release {}: see `cargo xtask status --env {}`, then roll back to it",
                self.proxy.name,
                stable.sha,
                self.environment
            );
        };
        let other = slot.other();
        let leftover = self
            .proxy
            .slots()?
            .into_iter()
            .find(|s| s.stat.slot == other)
            .and_then(|s| s.container);
        self.proxy.set_weights(&[(slot, FULL), (other, 0)])?;
        if let Some(name) = leftover {
            eprintln!(
                "removing {name}, a canary an interrupted run left in slot {}",
                other.name()
            );
            self.proxy.empty(other)?;
            docker().args(["rm", "--force", &name]).read()?;
        }
        Ok(())
    }

    fn start_canary(&self, config: &std::path::Path, stable: &ImageRef) -> anyhow::Result<Applied> {
        let applied = self.apply(config, Some(stable))?;
        let name = self.canary_name()?;
        let (slot, stable_name) = self.slot_of(stable)?.with_context(|| {
            format!(
                "the proxy {} sends to no container of the stable release {}",
                self.proxy.name, stable.sha
            )
        })?;
        *STABLE.lock().unwrap_or_else(|e| e.into_inner()) = Some(stable_name);
        eprintln!(
            "loading the canary {name} into slot {} of {} at weight 0",
            slot.other().name(),
            self.proxy.name
        );
        self.proxy
            .load(slot.other(), &name, &self.address_of(&name)?)?;
        Ok(applied)
    }

    fn set_weight(&self, canary: u8) -> anyhow::Result<()> {
        let s = self.canary_slots()?;
        let canary = canary.min(FULL);
        self.proxy
            .set_weights(&[(s.canary.0, canary), (s.stable.0, FULL - canary)])
    }

    /// Straight to the release's address: neither docker nor the proxy is
    /// asked (a hiccup of the proxy's runtime API is not the canary's fault).
    fn metrics(&self, side: Side) -> anyhow::Result<String> {
        let name = match side {
            Side::Canary => self.canary_name()?,
            Side::Stable => STABLE
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .context("no stable release was found beside the canary")?,
        };
        let url = format!("http://{}:{HTTP_PORT}/metrics", self.address_of(&name)?);
        let r = http::get(&url, Duration::from_secs(2)).with_context(|| format!("GET {url}"))?;
        if r.status != 200 {
            bail!("GET {url} answered {}", r.status);
        }
        Ok(r.body)
    }

    fn promote(&self) -> anyhow::Result<Applied> {
        let s = self.canary_slots()?;
        self.proxy
            .set_weights(&[(s.canary.0, FULL), (s.stable.0, 0)])?;
        let c = containers::inspect(&s.canary.1)?
            .with_context(|| format!("{} vanished", s.canary.1))?;
        Ok(Applied {
            url: self.proxy.url(),
            deployment_ref: c.id,
        })
    }

    /// The weight first (one runtime-API line), then the cleanup.
    fn abort(&self) -> anyhow::Result<()> {
        let Ok(name) = self.canary_name() else {
            return Ok(());
        };
        if let Ok(s) = self.canary_slots() {
            self.proxy
                .set_weights(&[(s.canary.0, 0), (s.stable.0, FULL)])?;
            self.proxy.empty(s.canary.0)?;
        }
        docker().args(["rm", "--force", &name]).read()?;
        *self.started.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(())
    }
}
