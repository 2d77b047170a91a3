//! Akash Network through the real `provider-services` CLI.
//!
//! A release is exactly one transaction: `tx deployment update <sdl>` with
//! gas and fee set, broadcast `sync`, judged by its JSON `code` (the CLI
//! exits 0 for a refused transaction) and waited for until a block includes
//! it; then `send-manifest` (prints `status: PASS|FAIL`; retried while the
//! provider has not processed the update: [`manifest`]) and `lease-status`
//! (JSON `services.<name>.uris`) for the URL to verify. Before it, read-only
//! checks ([`preflight`]) refuse what the chain or the provider would refuse
//! after the fee is spent. What runs is decided from the lease on chain
//! ([`lease`]), never from the text of a provider's 404. Every flag can
//! also come from `AKASH_<FLAG>`; the flags passed here win. Sources:
//! xtask/test-fakes/src/provider_services.rs and the modules here.

pub mod bech32;
mod cli;
mod lease;
mod manifest;
mod pem;
mod preflight;
mod rollout;
pub mod settings;
mod tx;

use std::cell::{Cell, OnceCell};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

use super::{Applied, Running, Target, TargetKind};
use crate::model::image::ImageRef;
use crate::support::cmd::describe;
use crate::support::project::Project;
use settings::{AkashConfig, AuthType, Settings};

/// The SDL template and the placeholders it must contain.
pub const TEMPLATE: &str = "deploy/akash/deploy.yaml";
const IMAGE: &str = "{{image}}";
const ATTRIBUTES: &str = "{{attributes}}";
const SIGNED_BY: &str = "{{signed_by}}";

/// The longest verification of an Akash release. A provider closes the
/// lease of a workload that stays unavailable for 41 checks at least 4 s
/// apart, never sooner than 164 s ([`lease::MONITOR_CLOSE_SECS`]); a bad
/// release must be sent back well before: 60 s of verification, then the
/// restore's one transaction (a block or two, about 6 to 12 s) and its
/// manifest (at most [`manifest::RETRY_DELAYS`], 31 s) come to about 105 s.
pub const MAX_VERIFY: Duration = Duration::from_secs(60);

pub struct Akash {
    template: PathBuf,
    project: Project,
    session: OnceCell<Session>,
    /// The lease as the chain listed it in the checks.
    lease: OnceCell<lease::Lease>,
    /// The provider runs no manifest for the (active) lease yet.
    no_manifest_yet: Cell<bool>,
}

/// Who deploys, with which CLI: established once per run (settings, CLI
/// version, the key in the keyring, the client certificate file).
pub struct Session {
    settings: Settings,
    version: cli::Version,
    family: cli::Family,
    auth: AuthType,
    /// The key's address: the deployment's owner.
    owner: String,
}

impl Session {
    fn open() -> anyhow::Result<Session> {
        let settings = Settings::from_env()?;
        if which::which(cli::PROGRAM).is_err() {
            bail!(
                "`provider-services` (the Akash provider CLI) is not on PATH: install the version pinned in deploy/release.json (akash.cli_version; CI does it with .ci/install-provider-services)"
            );
        }
        let cmd = cli::version();
        let out = cmd.read()?;
        let version = cli::Version::parse(&out)
            .with_context(|| format!("`{cmd}` printed `{out}`, not a version such as v0.6.10"))?;
        let family = version.family()?;
        let auth = cli::auth(family, &settings)?;
        let owner = ensure_key(&settings)?;
        let session = Session {
            settings,
            version,
            family,
            auth,
            owner,
        };
        if auth == AuthType::Mtls {
            session.ensure_cert_file()?;
        }
        Ok(session)
    }

    /// `--auth-type` for versions that take it.
    fn auth_flag(&self) -> Option<AuthType> {
        (self.family == cli::Family::Jwt).then_some(self.auth)
    }

    /// Where the CLI looks for the mTLS client certificate: `<home>/<address>.pem`
    /// (akash-network/node x/cert/utils key pair manager), home from
    /// `AKASH_HOME`, else `~/.akash`.
    fn cert_path(&self) -> PathBuf {
        let home = std::env::var_os("AKASH_HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".akash")
            });
        home.join(format!("{}.pem", self.owner))
    }

    /// On a fresh runner, the client certificate comes from the secret
    /// `AKASH_CLIENT_CERT_PEM` (written owner-only, never printed).
    fn ensure_cert_file(&self) -> anyhow::Result<()> {
        let path = self.cert_path();
        if path.exists() {
            return Ok(());
        }
        let Some(pem) = std::env::var("AKASH_CLIENT_CERT_PEM")
            .ok()
            .filter(|p| !p.trim().is_empty())
        else {
            return Ok(()); // the certificate check says what to do
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        write_owner_only(&path, &pem)?;
        eprintln!(
            "wrote the client certificate from AKASH_CLIENT_CERT_PEM to {}",
            path.display()
        );
        Ok(())
    }
}

fn write_owner_only(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The signing key `AKASH_FROM` in the keyring, and its address; on a
/// fresh runner imported from `AKASH_KEY_MNEMONIC` (on stdin, never in argv
/// or output) with `keys add --recover`, as cosmos-sdk's client/keys/add.go
/// reads it. Importing writes the local keyring only: no transaction.
fn ensure_key(s: &Settings) -> anyhow::Result<String> {
    let show = cli::keys_show_address(s);
    let mut out = show.output()?;
    if !out.status.success() {
        let Some(mnemonic) = std::env::var("AKASH_KEY_MNEMONIC")
            .ok()
            .filter(|m| !m.trim().is_empty())
        else {
            bail!(
                "the key `{}` is not in the {} keyring: import it (`provider-services keys add {} --recover`) or set AKASH_KEY_MNEMONIC",
                s.from,
                s.keyring_backend,
                s.from
            );
        };
        let add = cli::keys_recover(s, mnemonic);
        let added = add.output()?;
        if !added.status.success() {
            // Its output can echo what it read: say only how it ended.
            bail!(
                "`{add}` failed ({}): AKASH_KEY_MNEMONIC is not a valid bip39 mnemonic for the key `{}` (check every word), or AKASH_KEYRING_BACKEND is wrong",
                describe(added.status),
                s.from
            );
        }
        eprintln!(
            "imported the key `{}` into the {} keyring",
            s.from, s.keyring_backend
        );
        out = show.output()?;
        if !out.status.success() {
            bail!("`{show}` failed after the import: {}", out.last_words());
        }
    }
    let address = out.stdout.lines().last().unwrap_or("").trim().to_owned();
    if let Err(why) = bech32::check(&address, settings::HRP) {
        bail!("`{show}` printed `{address}`, which {why}");
    }
    Ok(address)
}

impl Akash {
    pub fn new(project: &Project) -> Akash {
        Akash {
            template: project.root.join(TEMPLATE),
            project: Project {
                root: project.root.clone(),
            },
            session: OnceCell::new(),
            lease: OnceCell::new(),
            no_manifest_yet: Cell::new(false),
        }
    }

    fn session(&self) -> anyhow::Result<&Session> {
        if let Some(s) = self.session.get() {
            return Ok(s);
        }
        let opened = Session::open()?;
        Ok(self.session.get_or_init(|| opened))
    }

    fn config(&self) -> anyhow::Result<AkashConfig> {
        let config = self.project.release_config()?.akash.unwrap_or_default();
        config.placement.check()?;
        Ok(config)
    }

    fn read_template(&self) -> anyhow::Result<String> {
        let template = std::fs::read_to_string(&self.template)
            .with_context(|| format!("reading the SDL template {}", self.template.display()))?;
        for p in [IMAGE, ATTRIBUTES, SIGNED_BY] {
            if !template.contains(p) {
                bail!(
                    "{} has no `{p}` placeholder (the pinned image, and the placement from deploy/release.json, go there)",
                    self.template.display()
                );
            }
        }
        Ok(template)
    }

    /// The lease as the chain lists it: from the checks when they ran.
    fn lease(&self) -> anyhow::Result<&lease::Lease> {
        if let Some(l) = self.lease.get() {
            return Ok(l);
        }
        let session = self.session()?;
        let found = lease::query(&session.settings, &session.owner)?;
        Ok(self.lease.get_or_init(|| found))
    }

    /// The active lease's order, else the error that says how to get a
    /// new lease.
    fn order(&self) -> anyhow::Result<cli::Order> {
        let session = self.session()?;
        match self.lease()? {
            lease::Lease::Active { order, .. } => Ok(*order),
            gone => bail!("{}", lease::gone(&session.settings, &session.owner, gone)),
        }
    }

    /// The URL of service `api` as the provider reports it; `None` when it
    /// runs nothing for the lease. The lease comes from the chain first: a
    /// closed or missing one is an error saying how to get a new lease.
    /// For the active one, the provider's bare 404 means it has no manifest
    /// (the watchdog is then said). Any other failure is an error (the
    /// target could not be asked), never "nothing runs".
    fn service_url(&self) -> anyhow::Result<Option<String>> {
        let session = self.session()?;
        let s = &session.settings;
        let order = self.order()?;
        let cmd = cli::lease_status(s, order, session.auth_flag());
        let out = cmd.output()?;
        if !out.status.success()
            && out.stderr.contains(NOT_FOUND)
            && let lease::Lease::Active { created_at, .. } = self.lease()?
        {
            self.no_manifest_yet.set(true);
            eprintln!("{}", lease::watchdog_note(s, created_at));
            return Ok(None);
        }
        if !out.status.success() {
            bail!(
                "could not ask the provider what runs: `{cmd}` failed ({}): {}",
                describe(out.status),
                out.last_words()
            );
        }
        let status: serde_json::Value = serde_json::from_str(out.stdout.trim())
            .with_context(|| format!("`{cmd}` printed no JSON"))?;
        Ok(status
            .pointer("/services/api/uris/0")
            .and_then(|u| u.as_str())
            .map(|uri| {
                if uri.starts_with("http://") || uri.starts_with("https://") {
                    uri.to_owned()
                } else {
                    format!("http://{uri}")
                }
            }))
    }

    fn deployment_ref(s: &Settings) -> String {
        format!("dseq {} at {}", s.dseq, s.provider)
    }
}

impl Target for Akash {
    fn kind(&self) -> TargetKind {
        TargetKind::Akash
    }

    /// Settings, CLI version, key, then the chain: deployment active with
    /// the SDL's placement and denom, lease active from the provider,
    /// balance for the fee, provider auth. Read-only: no transaction.
    fn preflight(&self) -> anyhow::Result<()> {
        let template = self.read_template()?;
        let config = self.config()?;
        let session = self.session()?;
        if let Some(pinned) = &config.cli_version
            && cli::Version::parse(pinned) != Some(session.version)
        {
            eprintln!(
                "warning: provider-services {} is not the pinned {pinned} (deploy/release.json akash.cli_version)",
                session.version
            );
        }
        let found = preflight::check(session, &template, &config.placement)?;
        let _ = self.lease.set(found);
        eprintln!("{}", rollout::expectation(&rollout::counts(&template)));
        eprintln!(
            "verification: at most {} s (--verify-timeout is cut to it): a provider closes the lease of a workload that stays unavailable for 41 checks at least 4 s apart ({} s at the soonest), so a failed release is sent back well before",
            MAX_VERIFY.as_secs(),
            lease::MONITOR_CLOSE_SECS
        );
        Ok(())
    }

    fn max_verify(&self) -> Option<Duration> {
        Some(MAX_VERIFY)
    }

    fn render(&self, image: &ImageRef, _release_id: &str, dir: &Path) -> anyhow::Result<PathBuf> {
        let template = self.read_template()?;
        let placement = self.config()?.placement;
        // YAML takes JSON flow style: the values go in as JSON.
        let attributes = serde_json::to_string(&placement.attributes)?;
        let signed_by = serde_json::to_string(&placement.signed_by)?;
        let path = dir.join("deploy.yaml");
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            &path,
            template
                .replace(IMAGE, &image.pinned())
                .replace(ATTRIBUTES, &attributes)
                .replace(SIGNED_BY, &signed_by),
        )?;
        Ok(path)
    }

    fn image_in(&self, config: &Path) -> anyhow::Result<ImageRef> {
        crate::targets::single_image_in(config)
    }

    fn plan(&self, config: &Path, _keep: Option<&ImageRef>) -> anyhow::Result<Vec<String>> {
        let session = self.session()?;
        let s = &session.settings;
        let order = self.order()?;
        Ok(vec![
            format!(
                "{}    # the one transaction",
                cli::deployment_update(s, config)
            ),
            format!(
                "{}    # every 1s until a block includes it (at most {}s)",
                cli::query_tx(s, "<txhash>"),
                s.tx_timeout_secs
            ),
            format!(
                "{}    {}",
                cli::send_manifest(s, config, order, session.auth_flag()),
                manifest::plan_note()
            ),
            cli::lease_status(s, order, session.auth_flag()).to_string(),
        ])
    }

    fn apply(&self, config: &Path, _keep: Option<&ImageRef>) -> anyhow::Result<Applied> {
        let session = self.session()?;
        let s = &session.settings;
        let order = self.order()?;
        let first = self.no_manifest_yet.get();
        let watchdog = |e: anyhow::Error| {
            // A first release that stops here leaves a lease without a
            // manifest, which the provider closes (manifest/watchdog.go).
            match (first, self.lease.get()) {
                (true, Some(lease::Lease::Active { created_at, .. })) => {
                    e.context(lease::watchdog_note(s, created_at))
                }
                _ => e,
            }
        };
        tx::update_and_wait(s, config).map_err(watchdog)?;
        let send = cli::send_manifest(s, config, order, session.auth_flag());
        manifest::send_with_retry(
            || manifest::attempt(&send),
            std::thread::sleep,
            &manifest::RETRY_DELAYS,
            &send.to_string(),
        )
        .map_err(watchdog)?;
        self.no_manifest_yet.set(false);
        let url = self
            .service_url()
            .context("verification failed: the manifest was sent")?
            .context("verification failed: lease-status lists no URI for service `api`")?;
        Ok(Applied {
            url,
            deployment_ref: Self::deployment_ref(s),
        })
    }

    fn commit(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn restore_kept(&self) -> anyhow::Result<Option<Applied>> {
        // A lease runs one manifest: restoring means sending the old one again.
        Ok(None)
    }

    fn status(&self) -> anyhow::Result<Running> {
        let url = self.service_url()?;
        let s = &self.session()?.settings;
        Ok(Running {
            url,
            deployment_ref: Some(Self::deployment_ref(s)),
            ..Running::default()
        })
    }
}

/// What the CLI prints for any lease the provider runs no manifest for:
/// the gateway's 404 has an empty body (akash-network/provider
/// gateway/rest/router.go `leaseStatusHandler`), so chain-sdk
/// go/provider/client/client.go's `ClientResponseError` says only this.
const NOT_FOUND: &str = "remote server returned 404";
