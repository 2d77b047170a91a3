//! `cargo xtask ci-build`: a clean, SHA-tagged image of HEAD, pushed, read
//! back from the registry, signature-checked, and recorded.

use std::path::PathBuf;
use std::time::Instant;

use crate::build::{self, BuildRecord, git};
use crate::model::image::ImageRef;
use crate::registry;
use crate::supply;
use crate::support::docker;
use crate::support::output;
use crate::support::project::{LOCAL_REGISTRY, Project, RepositoryArgs};
use crate::support::step::Steps;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub repos: RepositoryArgs,
    /// Where to write the build record [default: target/xtask/metadata.json]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also print the record as one JSON line on stdout (the last line)
    #[arg(long)]
    pub json: bool,
    /// Print every command that would change something, run none of them
    #[arg(long)]
    pub dry_run: bool,
    /// Fail unless cosign verifies the pushed digest (default: soft, record `unverified`)
    #[arg(long)]
    pub require_signature: bool,
    /// Rebuild and push even if the SHA's tag already exists (overwrites it; said loudly)
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args, project: &Project) -> anyhow::Result<()> {
    let started = Instant::now();
    let started_at = output::now_rfc3339();
    let mut steps = Steps::new();
    let head = steps.run("read git HEAD", || git::clean_head(&project.root))?;
    let repos = args.repos.resolve(project)?;
    let kind = build::route(head.branch.as_deref());
    let repository = repos.get(kind).clone();
    eprintln!(
        "commit {} on branch {} → {kind} repository {repository} (from {})",
        head.sha,
        head.branch.as_deref().unwrap_or("(detached HEAD)"),
        repos.source
    );
    docker::ensure_daemon()?;
    if repos.is_local_default() {
        ensure_local_registry(project, args.dry_run)?;
    }
    let full = head.sha.as_str();
    let existing = steps.run("check the registry for this SHA", || {
        registry::digest_of(&repository, full)
    })?;
    let plan = build::plan(project, &repository, &head)?;

    let (digest, pushed) = match (existing, args.force) {
        (Some(digest), false) => {
            eprintln!(
                "{} already exists ({digest}): tags are immutable, nothing is built or pushed (--force rebuilds and overwrites)",
                plan.full_tag
            );
            if args.dry_run {
                eprintln!("(dry run) nothing would be built or pushed; nothing was recorded");
                return Ok(());
            }
            build::complete_short_tag(&plan, &repository, &head.sha, &digest)?;
            (digest, false)
        }
        (existing, force) => {
            if let (Some(digest), true) = (&existing, force) {
                eprintln!(
                    "--force: {} exists ({digest}) and will be OVERWRITTEN",
                    plan.full_tag
                );
            }
            if args.dry_run {
                return dry_run(&plan, args.json);
            }
            // supply chain (issue 10): the compile is `cargo auditable build`.
            supply::tools::require_cargo_auditable()?;
            (
                build::build_and_push(&plan, &repository, &head.sha, &mut steps)?,
                true,
            )
        }
    };

    let image = ImageRef {
        repository: repository.clone(),
        sha: head.sha.clone(),
        digest,
    };
    // ── supply chain (issue 10): after the push and read-back, sign the
    // digest, SBOM (syft on the pushed image), attest SBOM and provenance,
    // then verify all three (crate::supply). Only for a fresh push.
    let (signature, supply) = supply::after_push(
        &supply::Pushed {
            project,
            image: &image,
            branch: head.branch.as_deref(),
            built: pushed.then_some(plan.binary.as_path()),
            started_on: started_at,
            require_signature: args.require_signature,
        },
        &mut steps,
    )?;
    let build = BuildRecord {
        record: "build".to_owned(),
        short_sha: head.sha.short().to_owned(),
        image_sha: head.sha.clone(),
        repository,
        repository_kind: kind,
        branch: head.branch.clone(),
        image_ref: image.pinned(),
        image_digest: image.digest.clone(),
        pushed,
        signature_status: signature.status,
        signature_reason: signature.reason,
        supply,
        build_duration_sec: output::seconds(started.elapsed()),
        built_at: output::now_rfc3339(),
    };
    let out = args
        .out
        .unwrap_or_else(|| project.state_dir().join("metadata.json"));
    output::write_file(&out, &build)?;
    output::github(
        &[
            ("image_ref", &build.image_ref),
            ("image_digest", build.image_digest.as_str()),
            ("image_sha", build.image_sha.as_str()),
        ],
        &format!(
            "### api image\n\n| | |\n|---|---|\n| image | `{}` |\n| digest | `{}` |\n| pushed | {} |\n| signature | {} |\n",
            build.image_ref,
            build.image_digest,
            if build.pushed {
                "yes"
            } else {
                "no (already present)"
            },
            match &build.signature_reason {
                Some(reason) => format!("unverified ({reason})"),
                None => "verified".to_owned(),
            }
        ),
    )?;
    eprintln!("steps: {}", steps.summary());
    eprintln!("wrote {}", out.display());
    eprintln!("image {}", build.image_ref);
    if args.json {
        output::print_line(&build)?;
    }
    Ok(())
}

fn ensure_local_registry(project: &Project, dry_run: bool) -> anyhow::Result<()> {
    let url = format!("http://{LOCAL_REGISTRY}/v2/");
    if registry::local::answers(&url) {
        eprintln!(
            "using the local registry on {LOCAL_REGISTRY} (set --repository or XTASK_REPOSITORY for another)"
        );
        return Ok(());
    }
    if dry_run {
        eprintln!("(dry run) would start the local registry: cargo xtask registry up");
        return Ok(());
    }
    eprintln!("no registry on {LOCAL_REGISTRY}: starting one (cargo xtask registry up)");
    registry::local::up(&project.state_dir(), 5000)
}

fn dry_run(plan: &build::Plan, json: bool) -> anyhow::Result<()> {
    let commands = [
        plan.compile.to_string(),
        format!(
            "cp {} {}/api",
            plan.binary.display(),
            plan.context.display()
        ),
        plan.image_build.to_string(),
        format!("docker push {}", plan.full_tag),
        format!("docker push {}", plan.short_tag),
    ];
    for c in &commands {
        eprintln!("(dry run) $ {c}");
    }
    eprintln!("(dry run) nothing was built, pushed or recorded");
    if json {
        output::print_line(
            &serde_json::json!({"record": "build-plan", "dry_run": true, "commands": commands}),
        )?;
    }
    Ok(())
}
