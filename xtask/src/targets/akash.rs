//! Akash Network through the real `provider-services` CLI.
//!
//! Shapes (akash-network docs and provider source):
//! `provider-services tx deployment update <sdl> --dseq D --from K -y`
//! (image changes are fine, resource-group changes are refused),
//! `provider-services send-manifest <sdl> --dseq D --provider P --from K`
//! (prints `status: PASS|FAIL`), `provider-services lease-status --dseq D
//! --provider P --from K` (JSON with `services.<name>.uris`). Every flag can
//! also come from `AKASH_<FLAG>`; the flags we pass win.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::{Applied, Running, Target, TargetKind};
use crate::model::image::ImageRef;
use crate::support::cmd::Cmd;
use crate::support::project::Project;

/// The SDL template and the one placeholder it must contain.
pub const TEMPLATE: &str = "deploy/akash/deploy.yaml";
const PLACEHOLDER: &str = "{{image}}";
const SETTINGS: [&str; 6] = [
    "AKASH_NODE",
    "AKASH_CHAIN_ID",
    "AKASH_KEYRING_BACKEND",
    "AKASH_FROM",
    "AKASH_DSEQ",
    "AKASH_PROVIDER",
];

pub struct Akash {
    template: PathBuf,
}

struct Settings {
    node: String,
    chain_id: String,
    keyring_backend: String,
    from: String,
    dseq: String,
    provider: String,
}

impl Akash {
    pub fn new(project: &Project) -> Akash {
        Akash {
            template: project.root.join(TEMPLATE),
        }
    }

    fn settings() -> anyhow::Result<Settings> {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let missing: Vec<&str> = SETTINGS
            .iter()
            .copied()
            .filter(|k| get(k).is_none())
            .collect();
        if !missing.is_empty() {
            bail!(
                "the akash target needs {} set (missing: {}); see docs/quickstart.md",
                SETTINGS.join(", "),
                missing.join(", ")
            );
        }
        let get = |k: &str| get(k).unwrap_or_default();
        let dseq = get("AKASH_DSEQ");
        if !dseq.bytes().all(|b| b.is_ascii_digit()) {
            bail!("AKASH_DSEQ is `{dseq}`, expected the deployment's sequence number (digits)");
        }
        Ok(Settings {
            node: get("AKASH_NODE"),
            chain_id: get("AKASH_CHAIN_ID"),
            keyring_backend: get("AKASH_KEYRING_BACKEND"),
            from: get("AKASH_FROM"),
            dseq,
            provider: get("AKASH_PROVIDER"),
        })
    }

    fn cli() -> Cmd {
        Cmd::new("provider-services")
    }

    fn update_cmd(s: &Settings, sdl: &Path) -> Cmd {
        Self::cli()
            .args(["tx", "deployment", "update"])
            .arg(sdl.display().to_string())
            .args(["--dseq", &s.dseq, "--from", &s.from])
            .args([
                "--node",
                &s.node,
                "--chain-id",
                &s.chain_id,
                "--keyring-backend",
                &s.keyring_backend,
            ])
            .arg("-y")
    }

    fn send_manifest_cmd(s: &Settings, sdl: &Path) -> Cmd {
        Self::cli()
            .arg("send-manifest")
            .arg(sdl.display().to_string())
            .args(Self::lease_flags(s))
    }

    /// The signing key `AKASH_FROM` in the keyring; on a fresh runner,
    /// imported from `AKASH_KEY_MNEMONIC` (on stdin, never in argv or output)
    /// with `keys add --recover`, as cosmos-sdk's client/keys/add.go reads it.
    fn ensure_key(s: &Settings) -> anyhow::Result<()> {
        let show = Self::cli().args([
            "keys",
            "show",
            &s.from,
            "--keyring-backend",
            &s.keyring_backend,
        ]);
        if show.output()?.status.success() {
            return Ok(());
        }
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
        let add = Self::cli()
            .args([
                "keys",
                "add",
                &s.from,
                "--recover",
                "--keyring-backend",
                &s.keyring_backend,
            ])
            .secret_stdin(mnemonic);
        let out = add.output()?;
        if !out.status.success() {
            // Its output can echo what it read: say only how it ended.
            bail!(
                "`{add}` failed ({}): check AKASH_KEY_MNEMONIC and AKASH_KEYRING_BACKEND",
                crate::support::cmd::describe(out.status)
            );
        }
        eprintln!(
            "imported the key `{}` into the {} keyring",
            s.from, s.keyring_backend
        );
        Ok(())
    }

    fn lease_status_cmd(s: &Settings) -> Cmd {
        Self::cli().arg("lease-status").args(Self::lease_flags(s))
    }

    /// Which lease, and who asks: the provider checks the signer owns it.
    fn lease_flags(s: &Settings) -> [&str; 6] {
        [
            "--dseq",
            &s.dseq,
            "--provider",
            &s.provider,
            "--from",
            &s.from,
        ]
    }

    fn service_url(s: &Settings) -> anyhow::Result<String> {
        Self::ensure_key(s)?;
        let out = Self::lease_status_cmd(s).read()?;
        let status: serde_json::Value =
            serde_json::from_str(&out).context("provider-services lease-status printed no JSON")?;
        let uri = status
            .pointer("/services/api/uris/0")
            .and_then(|u| u.as_str())
            .context("lease-status lists no URI for service `api` yet")?;
        Ok(if uri.starts_with("http://") {
            uri.to_owned()
        } else {
            format!("http://{uri}")
        })
    }
}

impl Target for Akash {
    fn kind(&self) -> TargetKind {
        TargetKind::Akash
    }

    fn preflight(&self) -> anyhow::Result<()> {
        Self::settings()?;
        if which::which("provider-services").is_err() {
            bail!(
                "`provider-services` (the Akash provider CLI) is not on PATH: install it (akash-network/provider releases) before deploying to akash"
            );
        }
        let template = std::fs::read_to_string(&self.template)
            .with_context(|| format!("reading the SDL template {}", self.template.display()))?;
        if !template.contains(PLACEHOLDER) {
            bail!(
                "{} has no `{PLACEHOLDER}` placeholder for the pinned image",
                self.template.display()
            );
        }
        Ok(())
    }

    fn render(&self, image: &ImageRef, _release_id: &str, dir: &Path) -> anyhow::Result<PathBuf> {
        let template = std::fs::read_to_string(&self.template)
            .with_context(|| format!("reading {}", self.template.display()))?;
        let path = dir.join("deploy.yaml");
        std::fs::create_dir_all(dir)?;
        std::fs::write(&path, template.replace(PLACEHOLDER, &image.pinned()))?;
        Ok(path)
    }

    fn image_in(&self, config: &Path) -> anyhow::Result<ImageRef> {
        let text = std::fs::read_to_string(config)
            .with_context(|| format!("reading {}", config.display()))?;
        super::single_image(&text, config)
    }

    fn plan(&self, config: &Path, _keep: Option<&ImageRef>) -> anyhow::Result<Vec<String>> {
        let s = Self::settings()?;
        Ok(vec![
            Self::update_cmd(&s, config).to_string(),
            Self::send_manifest_cmd(&s, config).to_string(),
            Self::lease_status_cmd(&s).to_string(),
        ])
    }

    fn apply(&self, config: &Path, _keep: Option<&ImageRef>) -> anyhow::Result<Applied> {
        let s = Self::settings()?;
        Self::ensure_key(&s)?;
        let update = Self::update_cmd(&s, config);
        let out = update.tee()?;
        if !out.status.success() {
            bail!("`{update}` failed: {}", out.last_words());
        }
        let code = serde_json::from_str::<serde_json::Value>(out.stdout.trim())
            .ok()
            .and_then(|v| v.get("code")?.as_i64());
        if let Some(code) = code.filter(|c| *c != 0) {
            bail!(
                "the deployment update transaction failed on chain (code {code}): {}",
                out.last_words()
            );
        }
        let send = Self::send_manifest_cmd(&s, config);
        let out = send.tee()?;
        // `status:\tPASS` (provider cmd/provider-services/cmd/manifest.go prints a tab-indented table).
        let passed = out.stdout.lines().any(|l| {
            l.trim()
                .strip_prefix("status:")
                .is_some_and(|v| v.trim() == "PASS")
        });
        if !out.status.success() || !passed {
            bail!(
                "the provider did not accept the manifest (`{send}`): {}",
                out.last_words()
            );
        }
        Ok(Applied {
            url: Self::service_url(&s)?,
            deployment_ref: format!("dseq {} at {}", s.dseq, s.provider),
        })
    }

    fn commit(&self) -> anyhow::Result<()> {
        Ok(())
    }

    fn restore_kept(&self) -> anyhow::Result<Option<Applied>> {
        // A lease runs one manifest: restoring means sending the old one again.
        Ok(None)
    }

    /// A lease the provider has no manifest for yet runs nothing (the
    /// provider answers 404); any other failure means it could not be asked.
    fn status(&self) -> anyhow::Result<Running> {
        let s = Self::settings()?;
        let url = match Self::service_url(&s) {
            Ok(url) => url,
            Err(e) if no_manifest_yet(&format!("{e:#}")) => return Ok(Running::default()),
            Err(e) => return Err(e),
        };
        Ok(Running {
            url: Some(url),
            deployment_ref: Some(format!("dseq {} at {}", s.dseq, s.provider)),
            ..Running::default()
        })
    }
}

/// provider-services prints the gateway's answer: a lease without a
/// manifest is `remote server returned 404` (provider gateway/rest).
fn no_manifest_yet(error: &str) -> bool {
    error.contains("remote server returned 404") || error.contains("manifest not yet received")
}
