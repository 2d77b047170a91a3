//! The flags deploy and rollback share, and the last checks before a
//! release: signature, the target's own settings, then the lock.

use std::time::Duration;

use crate::build::{adopt, git};
use crate::ledger::lock::Lock;
use crate::ledger::{self, Ledger, RecordKind};
use crate::model::environment::Environment;
use crate::model::image::ImageRef;
use crate::release::{self, Engine};
use crate::supply::bind;
use crate::supply::policy::{self, Checked, Policy};
use crate::support::interrupt;
use crate::support::project::{Project, RepositoryArgs};
use crate::targets::{self, Target, TargetKind};
use crate::verify;

/// The longest `--verify-timeout` accepted: an hour. A bigger number is a
/// typo, and bounding it here keeps every deadline computed from it sane.
const MAX_VERIFY_SECS: u64 = 3600;
const DEFAULT_VERIFY_SECS: u64 = 120;

#[derive(Debug, clap::Args)]
pub struct ReleaseArgs {
    /// Which environment
    #[arg(long, value_enum)]
    pub env: Environment,
    /// Where it runs [default: docker; in CI, the environment's target in deploy/release.json]
    #[arg(long, value_enum)]
    pub target: Option<TargetKind>,
    #[command(flatten)]
    pub repos: RepositoryArgs,
    /// Seconds to wait for /health and /version to report the SHA (1 to 3600) [default: 120; akash: at most 60]
    #[arg(long, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=MAX_VERIFY_SECS))]
    pub verify_timeout: Option<u64>,
    /// Fail unless cosign verifies the image's signature (default: the environment's policy in deploy/release.json, soft unless set)
    #[arg(long)]
    pub require_signature: bool,
    /// Docker: seconds the old release drains after the switch before it is stopped [default: the environment's `drain_secs`, else 30]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(0..=MAX_VERIFY_SECS))]
    pub drain: Option<u64>,
    /// Break the environment's lock when its holder is gone, or held on another host (never a live one on this host)
    #[arg(long)]
    pub force_unlock: bool,
    /// Print the records as JSON lines on stdout
    #[arg(long)]
    pub json: bool,
    /// Run the checks, print what would change, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// What the last checks let through: their findings, the image's layers
/// and run config (recorded with the release), and the environment's lock,
/// held until the release ends.
pub struct Cleared {
    pub checked: Checked,
    pub content: crate::build::adopt::Content,
    _lock: Lock,
}

impl ReleaseArgs {
    pub fn target(&self, project: &Project) -> anyhow::Result<Box<dyn Target>> {
        targets::select_with(
            project,
            self.env,
            self.target,
            self.drain.map(Duration::from_secs),
        )
    }

    /// `--verify-timeout`, cut to what the target allows (akash: see
    /// `targets::akash::MAX_VERIFY`).
    pub fn verify_timeout(&self, target: &dyn Target) -> Duration {
        let asked = self.verify_timeout.unwrap_or(DEFAULT_VERIFY_SECS);
        let asked = Duration::from_secs(asked.min(MAX_VERIFY_SECS));
        match target.max_verify() {
            Some(max) if asked > max => {
                if self.verify_timeout.is_some() {
                    eprintln!(
                        "note: --verify-timeout {}s is cut to {}s, the most the {} target allows",
                        asked.as_secs(),
                        max.as_secs(),
                        target.kind()
                    );
                }
                max
            }
            _ => asked,
        }
    }

    /// The last checks before the target is touched, in the order every
    /// release keeps: the image's own config read by digest (its revision
    /// label), signature and attestations (soft or strict, per the
    /// environment's policy), the proof bound to this commit and these
    /// bytes (supply::bind), the target's own settings, then (unless
    /// `--dry-run`, which prints the plan and stops) Ctrl-C handling and the
    /// environment's lock, held until the release ends. A refusal is
    /// written to the ledger (status `refused`) before it is returned.
    pub fn last_checks(
        &self,
        target: &dyn Target,
        image: &ImageRef,
        project: &Project,
        kind: RecordKind,
    ) -> anyhow::Result<Option<Cleared>> {
        let policy = project.release_config()?.environment(self.env)?.policy;
        let found = adopt::examine(&image.repository, &image.digest)?;
        let checked = policy::check(image)?;
        let verdict = self.proven(image, project, policy, &checked, &found);
        if let Err(refused) = verdict {
            if !self.dry_run {
                release::record_refusal(
                    &Ledger::open(project, self.env),
                    &release::Refusal {
                        kind,
                        env: self.env,
                        target: target.kind(),
                        image,
                        checked: Some(&checked),
                        initiated_by: git::actor(&project.root),
                        why: format!("{refused:#}"),
                    },
                )?;
            }
            return Err(refused);
        }
        target.preflight()?;
        if self.dry_run {
            self.dry_run(target, image, project)?;
            return Ok(None);
        }
        interrupt::protect_steps()?;
        let lock = Lock::acquire(&project.state_dir(), self.env, self.force_unlock)?;
        Ok(Some(Cleared {
            checked,
            content: found.content(),
            _lock: lock,
        }))
    }

    /// The policy's checks, then the proof held to the commit and bytes.
    fn proven(
        &self,
        image: &ImageRef,
        project: &Project,
        policy: Policy,
        checked: &Checked,
        found: &adopt::Found,
    ) -> anyhow::Result<()> {
        policy::enforce(self.env, image, policy, self.require_signature, checked)?;
        let on_main = if self.env == Environment::Production {
            let claims: Vec<_> = checked.provenance_claims.iter().map(bind::claim).collect();
            Some(bind::on_main(&project.root, &image.sha, &claims)?)
        } else {
            None
        };
        if let Some(said) = &on_main {
            eprintln!("on main: {said:?}");
        }
        bind::enforce(
            self.env,
            image,
            &bind::findings(image, policy, checked, found, on_main.as_ref()),
        )
    }

    /// Everything a release runs against, for real.
    pub fn engine<'a>(
        &self,
        target: &'a dyn Target,
        ledger: &'a Ledger,
        project: &Project,
    ) -> Engine<'a> {
        Engine {
            target,
            probe: &verify::Http,
            ledger,
            releases_dir: project.state_dir().join("releases"),
            interrupted: &interrupt::requested,
        }
    }

    fn dry_run(
        &self,
        target: &dyn Target,
        image: &ImageRef,
        project: &Project,
    ) -> anyhow::Result<()> {
        let dir = project.state_dir().join("dry-run");
        let config = target.render(image, "dry-run", &dir)?;
        eprintln!("(dry run) rendered {}", config.display());
        let releases = Ledger::open(project, self.env).read_reporting()?;
        let keep = ledger::current(&releases).map(ledger::Release::image);
        for line in target.plan(&config, keep.as_ref())? {
            eprintln!("(dry run) $ {line}");
        }
        eprintln!("(dry run) then verify /health and /version; nothing was changed");
        Ok(())
    }
}
