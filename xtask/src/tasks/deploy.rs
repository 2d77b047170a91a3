//! `cargo xtask deploy <SHA> --env …`: exactly the bytes built from that
//! commit, checked before the target is touched, verified after, rolled
//! back by itself when verification fails.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;

use crate::build::git;
use crate::ledger::lock::Lock;
use crate::ledger::{Ledger, RecordKind};
use crate::model::digest::Digest;
use crate::model::environment::Environment;
use crate::model::image::ImageRef;
use crate::model::sha::GitSha;
use crate::release::{self, Request};
use crate::support::interrupt;
use crate::support::project::{Project, RepositoryArgs};
use crate::targets::{self, TargetKind};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The full 40-character commit SHA to deploy (never a tag like `latest`)
    #[arg(value_name = "SHA")]
    pub sha: GitSha,
    #[command(flatten)]
    pub common: Common,
    /// The digest recorded at build; the registry must still serve it
    #[arg(long, value_name = "DIGEST", conflicts_with = "metadata")]
    pub expect_digest: Option<Digest>,
    /// ci-build's metadata.json: its digest must match the registry's
    #[arg(long, value_name = "FILE")]
    pub metadata: Option<PathBuf>,
}

/// Flags shared by deploy and rollback.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Which environment
    #[arg(long, value_enum)]
    pub env: Environment,
    /// Where it runs [default: docker; in CI, the environment's target in deploy/release.json]
    #[arg(long, value_enum)]
    pub target: Option<TargetKind>,
    #[command(flatten)]
    pub repos: RepositoryArgs,
    /// Seconds to wait for /health and /version to report the SHA
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub verify_timeout: u64,
    /// Fail unless cosign verifies the image (default: soft, record `unverified`)
    #[arg(long)]
    pub require_signature: bool,
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

impl Common {
    /// The last checks before the target is touched, in the order every
    /// release keeps: signature (soft or strict), the target's own settings,
    /// then (unless `--dry-run`, which prints the plan and stops) Ctrl-C
    /// handling and the environment's lock, held until the release ends.
    pub fn last_checks(
        &self,
        target: &dyn targets::Target,
        image: &ImageRef,
        project: &Project,
    ) -> anyhow::Result<Option<(crate::verify::cosign::Signature, Lock)>> {
        let signature = release::signature(image, self.require_signature)?;
        target.preflight()?;
        if self.dry_run {
            dry_run(target, image, project)?;
            return Ok(None);
        }
        interrupt::install()?;
        let lock = Lock::acquire(&project.state_dir(), self.env, self.force_unlock)?;
        Ok(Some((signature, lock)))
    }

    pub fn target(&self, project: &Project) -> anyhow::Result<Box<dyn targets::Target>> {
        targets::select(project, self.env, self.target)
    }
}

pub fn run(args: Args, project: &Project) -> anyhow::Result<()> {
    let c = &args.common;
    // Settings first: a broken config is reported before the registry is asked.
    let target = c.target(project)?;
    let repos = c.repos.resolve(project)?;
    let metadata = args
        .metadata
        .as_deref()
        .map(|p| release::read_metadata(p, &args.sha))
        .transpose()?;
    let only = match &metadata {
        Some(build) => {
            if repos.get(build.repository_kind) != &build.repository {
                bail!(
                    "the metadata names {} as the {} repository, but the configured one is {}: pass --repository/--staging-repository to match the build",
                    build.repository,
                    build.repository_kind,
                    repos.get(build.repository_kind)
                );
            }
            Some(build.repository_kind)
        }
        None => None,
    };
    let (kind, digest) = release::find_image(c.env, &repos, &args.sha, only)?;
    let image = ImageRef {
        repository: repos.get(kind).clone(),
        sha: args.sha.clone(),
        digest,
    };
    match (&args.expect_digest, &metadata) {
        (Some(d), _) => release::check_digest(&image, Some(d), "--expect-digest")?,
        (None, Some(build)) => {
            release::check_digest(&image, Some(&build.image_digest), "the build metadata")?
        }
        (None, None) => eprintln!(
            "warning: no --metadata or --expect-digest: trusting the registry's digest {}",
            image.digest
        ),
    }
    let Some((signature, _lock)) = c.last_checks(&*target, &image, project)? else {
        return Ok(());
    };
    let ledger = Ledger::open(project, c.env);
    eprintln!(
        "deploying {} to {} on {}",
        image.pinned(),
        c.env,
        target.kind()
    );
    let (records, ok) = release::execute(
        Request {
            kind: RecordKind::Deploy,
            env: c.env,
            image,
            signature,
            config: None,
            reason: None,
            verify_timeout: Duration::from_secs(c.verify_timeout),
            initiated_by: git::actor(&project.root),
            target: &*target,
        },
        project,
        &ledger,
    )?;
    release::finish(&records, ok, c.json)
}

fn dry_run(
    target: &dyn targets::Target,
    image: &ImageRef,
    project: &Project,
) -> anyhow::Result<()> {
    let dir = project.state_dir().join("dry-run");
    let config = target.render(image, "dry-run", &dir)?;
    eprintln!("(dry run) rendered {}", config.display());
    for line in target.plan(&config)? {
        eprintln!("(dry run) $ {line}");
    }
    eprintln!("(dry run) then verify /health and /version; nothing was changed");
    Ok(())
}
