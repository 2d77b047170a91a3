//! `cargo xtask ci-build`: HEAD's commit built clean (its own checkout, an
//! empty target dir, `--locked`, the pinned toolchain), pushed under its SHA
//! tags, read back from the registry, signature-checked, and recorded. An
//! existing tag is adopted only when it holds what the clean build produced.

use std::path::PathBuf;
use std::time::Instant;

use crate::build::push::{self, Tags};
use crate::build::worktree::Scratch;
use crate::build::{self, BuildRecord, adopt, git};
use crate::model::image::ImageRef;
use crate::registry;
use crate::supply;
use crate::support::docker;
use crate::support::interrupt;
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
    /// Build and push even if the SHA's tag exists and was not adopted (overwrites it; said loudly)
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args, project: &Project) -> anyhow::Result<()> {
    build::name_interruption(run_inner(args, project))
}

fn run_inner(args: Args, project: &Project) -> anyhow::Result<()> {
    let started = Instant::now();
    let started_at = output::now_rfc3339();
    let mut steps = Steps::new();
    let head = steps.run("read git HEAD", || git::clean_head(&project.root))?;
    let hidden = git::hidden_from_status(&project.root)?;
    if !hidden.is_empty() {
        eprintln!(
            "note: {} file(s) are hidden from `git status` (assume-unchanged or skip-worktree; first: {}): the build reads the commit, not the work tree, so edits to them are not built",
            hidden.len(),
            hidden[0]
        );
    }
    let repos = args.repos.resolve(project)?;
    let kind = match released_from(project, &head.sha, &repos)? {
        Some(kind) => kind,
        None => build::route(head.branch.as_deref()),
    };
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
    let existing = steps.run("check the registry for this SHA", || {
        registry::digest_of(&repository, head.sha.as_str())
    })?;
    let plan = build::Plan::new(&project.root, &head.sha)?;
    let tags = Tags::new(&repository, &head.sha);
    if let (Some(digest), true) = (&existing, args.force) {
        eprintln!(
            "--force: {} exists ({digest}) and will be OVERWRITTEN",
            tags.full
        );
    }
    let adopting = existing.clone().filter(|_| !args.force);
    if args.dry_run {
        return dry_run(&plan, &tags, &repository, adopting.as_ref(), args.json);
    }
    // A signing key in a form cosign cannot read is refused now, before
    // anything is built or pushed (its value is never printed).
    let _ = supply::sign::signer()?;
    interrupt::install()?;
    let scratch = Scratch::create(plan.layout.base.clone())?;

    let outcome = match adopting {
        Some(digest) => {
            eprintln!(
                "{} already exists ({digest}): tags are immutable; it is adopted only if it is what a clean build of {} produces",
                tags.full, head.sha
            );
            let found = steps.run("read the existing image", || {
                adopt::examine(&repository, &digest)
            })?;
            adopt::check_revision(&found, &tags.full, &head.sha)?;
            let held = found.hash_api(&plan.layout.pulled())?;
            let compiled = build::compile(&plan, &project.root, &scratch, &mut steps)?;
            adopt::check_binary(&found, &held, &tags.full, &head.sha, &compiled.sha256)?;
            // Issue 24: the layers and the run config too, against the
            // image the clean build makes (built locally, never pushed).
            let clean = build::build_image(&plan, &compiled, &mut steps)?;
            let same = adopt::RunConfig::of(&clean.id)
                .and_then(|c| adopt::check_image(&found, &tags.full, &clean.layers, &c));
            build::image::remove(&clean.id);
            same?;
            eprintln!(
                "{} holds exactly what {} builds (/api sha256 {}): adopted, nothing pushed",
                tags.full, head.sha, compiled.sha256
            );
            push::complete_short_tag(&tags, &repository, &head.sha, &digest)?;
            Outcome {
                digest,
                pushed: false,
                layer_diff_id: found.top_layer().cloned(),
                compiled,
            }
        }
        None => {
            let compiled = build::compile(&plan, &project.root, &scratch, &mut steps)?;
            let image = build::build_image(&plan, &compiled, &mut steps)?;
            let layer_diff_id = image.top_layer()?.clone();
            let digest = push::push(&image.id, &tags, &repository, &head.sha, &mut steps)?;
            Outcome {
                digest,
                pushed: true,
                layer_diff_id: Some(layer_diff_id),
                compiled,
            }
        }
    };
    drop(scratch);

    let image = ImageRef {
        repository: repository.clone(),
        sha: head.sha.clone(),
        digest: outcome.digest.clone(),
    };
    let built = supply::provenance::Built {
        binary_sha256: outcome.compiled.sha256.clone(),
        toolchain: outcome.compiled.toolchain.clone(),
        lock_sha256: outcome.compiled.lock_sha256.clone(),
        dockerfile_sha256: outcome.compiled.dockerfile_sha256.clone(),
        crates: outcome.compiled.crates.clone(),
        seal: outcome.compiled.seal.clone(),
    };
    // ── supply chain (issue 10): after the push and read-back, sign the
    // digest, SBOM (syft on the pushed image), attest SBOM and provenance,
    // then verify all three (crate::supply). Only for a fresh push.
    let (signature, supply) = supply::after_push(
        &supply::Pushed {
            project,
            image: &image,
            branch: head.branch.as_deref(),
            built: outcome.pushed.then_some(&built),
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
        pushed: outcome.pushed,
        binary_sha256: Some(outcome.compiled.sha256),
        layer_diff_id: outcome.layer_diff_id,
        toolchain: Some(outcome.compiled.toolchain),
        compile_duration_sec: Some(output::seconds(outcome.compiled.duration)),
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
    // The durable record `image_build_total` is derived from (metrics/).
    crate::metrics::builds::append(
        project,
        &crate::metrics::builds::Build {
            image_sha: build.image_sha.clone(),
            repository_type: kind,
            pushed: build.pushed,
            build_duration_sec: build.build_duration_sec,
            built_at: build.built_at.clone(),
        },
    );
    output::github(
        &[
            ("image_ref", &build.image_ref),
            ("image_digest", build.image_digest.as_str()),
            ("image_sha", build.image_sha.as_str()),
        ],
        &format!(
            "### api image\n\n| | |\n|---|---|\n| image | `{}` |\n| digest | `{}` |\n| binary sha256 | `{}` |\n| pushed | {} |\n| signature | {} |\n",
            build.image_ref,
            build.image_digest,
            build.binary_sha256.as_deref().unwrap_or_default(),
            if build.pushed {
                "yes"
            } else {
                "no (already present, matches a clean build)"
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

struct Outcome {
    digest: crate::model::digest::Digest,
    pushed: bool,
    layer_diff_id: Option<crate::model::digest::Digest>,
    compiled: build::Compiled,
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

fn dry_run(
    plan: &build::Plan,
    tags: &Tags,
    repository: &crate::model::repository::Repository,
    adopting: Option<&crate::model::digest::Digest>,
    json: bool,
) -> anyhow::Result<()> {
    let mut commands = Vec::new();
    if let Some(digest) = adopting {
        let by_digest = format!("{repository}@{digest}");
        eprintln!(
            "(dry run) {} exists: a real run reads it ({by_digest}), compiles {} clean, and adopts it only if both hold the same /api; nothing is pushed",
            tags.full, plan.sha
        );
        commands.push(format!("docker pull --platform linux/amd64 {by_digest}"));
        commands.extend(plan.commands().into_iter().take(4));
    } else {
        commands.extend(plan.commands());
        commands.extend(tags.commands("<image id>"));
    }
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

/// A commit some ledger released is rebuilt into the repository of that
/// release, whatever the branch (issue 24, item 7: a rebuild from a
/// detached checkout of a production release must not land in staging,
/// which production refuses). `None`: never released, or from a
/// repository this run does not build into (the branch decides).
fn released_from(
    project: &Project,
    sha: &crate::model::sha::GitSha,
    repos: &crate::support::project::ResolvedRepositories,
) -> anyhow::Result<Option<crate::model::repository::RepositoryKind>> {
    use crate::model::repository::RepositoryKind;
    // The ledgers only route; one that cannot be read does not stop a build.
    let all = match crate::release::recorded::all_ledgers(project) {
        Ok(all) => all,
        Err(e) => {
            eprintln!("note: the ledgers could not be read ({e:#}): the branch decides");
            return Ok(None);
        }
    };
    let known = crate::release::recorded::digests_of(&all, sha);
    let Some(k) = known.first() else {
        return Ok(None);
    };
    let kind = [RepositoryKind::Canonical, RepositoryKind::Staging]
        .into_iter()
        .find(|kind| repos.get(*kind) == &k.newest.repository);
    match kind {
        Some(_) => eprintln!(
            "{sha} was released from {} ({}): building into it, the repository of its original build",
            k.newest.repository,
            k.source()
        ),
        None => eprintln!(
            "note: {sha} was released from {} ({}), which is not a repository of this run: the branch decides",
            k.newest.repository,
            k.source()
        ),
    }
    Ok(kind)
}
