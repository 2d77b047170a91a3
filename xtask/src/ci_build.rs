//! `cargo xtask ci-build`: a clean, SHA-tagged image of HEAD, pushed, read
//! back from the registry, signature-checked, and recorded.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::cmd::Cmd;
use crate::cosign::{self, SignatureStatus};
use crate::digest::Digest;
use crate::docker::{self, docker};
use crate::git;
use crate::image::{ImageRef, full_tag, short_tag};
use crate::project::{LOCAL_REGISTRY, Project, RepositoryArgs};
use crate::record;
use crate::registry;
use crate::repository::{Repository, RepositoryKind};
use crate::sha::GitSha;
use crate::step::Steps;

/// The platform every image is built for, whatever the builder's host.
pub const PLATFORM: &str = "linux/amd64";
const RUST_TARGET: &str = "x86_64-unknown-linux-gnu";

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

/// `metadata.json`: see docs/log-schema.md.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct BuildRecord {
    pub record: String,
    pub image_sha: GitSha,
    pub short_sha: String,
    pub repository: Repository,
    pub repository_kind: RepositoryKind,
    pub branch: Option<String>,
    pub image_ref: String,
    pub image_digest: Digest,
    pub pushed: bool,
    pub signature_status: SignatureStatus,
    pub signature_reason: Option<String>,
    pub build_duration_sec: f64,
    pub built_at: String,
}

/// main → canonical; every other branch (and a detached HEAD) → staging.
pub fn route(branch: Option<&str>) -> RepositoryKind {
    match branch {
        Some("main") => RepositoryKind::Canonical,
        _ => RepositoryKind::Staging,
    }
}

/// Everything a build runs that changes something, in order, as data.
pub struct Plan {
    pub compile: Cmd,
    pub binary: PathBuf,
    pub context: PathBuf,
    pub image_build: Cmd,
    pub full_tag: String,
    pub short_tag: String,
}

pub fn plan(project: &Project, repository: &Repository, head: &git::Head) -> anyhow::Result<Plan> {
    let root = &project.root;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let created = record::from_unix(head.commit_time);
    // Static glibc (static-pie) for the FROM scratch image. RUSTFLAGS scoped to
    // the target triple so build scripts and proc macros stay dynamic.
    let compile = Cmd::new(cargo)
        .env("GIT_SHA", head.sha.as_str())
        .env("SOURCE_DATE_EPOCH", head.commit_time.to_string())
        .env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "-C target-feature=+crt-static",
        )
        .args([
            "build",
            "--release",
            "--locked",
            "--package",
            "api",
            "--target",
            RUST_TARGET,
        ])
        .dir(root);
    let binary = project
        .target_dir()
        .join(RUST_TARGET)
        .join("release")
        .join("api");
    let context = project.state_dir().join("image-context");
    let full_tag = full_tag(repository, &head.sha);
    let short_tag = short_tag(repository, &head.sha);
    let image_build = docker()
        .args([
            "build",
            "--no-cache",
            "--platform",
            PLATFORM,
            "--pull=false",
        ])
        .arg("--file")
        .arg(root.join("deploy/Dockerfile").display().to_string())
        .args(build_arg("GIT_SHA", head.sha.as_str()))
        .args(build_arg("VERSION", &crate_version(root)?))
        .args(build_arg("CREATED", &created))
        .args(build_arg("SOURCE", &source_url(root)))
        .args(["--tag", &full_tag, "--tag", &short_tag])
        .arg(context.display().to_string());
    Ok(Plan {
        compile,
        binary,
        context,
        image_build,
        full_tag,
        short_tag,
    })
}

fn build_arg(key: &str, value: &str) -> [String; 2] {
    ["--build-arg".to_owned(), format!("{key}={value}")]
}

/// The api's version, from `api/Cargo.toml`.
fn crate_version(root: &Path) -> anyhow::Result<String> {
    let manifest =
        std::fs::read_to_string(root.join("api/Cargo.toml")).context("reading api/Cargo.toml")?;
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \"")?.strip_suffix('"'))
        .map(str::to_owned)
        .context("api/Cargo.toml has no `version = \"…\"` line")
}

/// The source label: the GitHub repository in CI, else the workspace's `repository`.
fn source_url(root: &Path) -> String {
    if let (Ok(server), Ok(repo)) = (
        std::env::var("GITHUB_SERVER_URL"),
        std::env::var("GITHUB_REPOSITORY"),
    ) {
        return format!("{server}/{repo}");
    }
    std::fs::read_to_string(root.join("Cargo.toml"))
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                Some(
                    l.strip_prefix("repository = \"")?
                        .strip_suffix('"')?
                        .to_owned(),
                )
            })
        })
        .unwrap_or_default()
}

pub fn run(args: Args, project: &Project) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut steps = Steps::new();
    let head = steps.run("read git HEAD", || git::clean_head(&project.root))?;
    let repos = args.repos.resolve(project)?;
    let kind = route(head.branch.as_deref());
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
    let plan = plan(project, &repository, &head)?;

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
            complete_short_tag(&plan, &repository, &head.sha, &digest)?;
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
            (
                build_and_push(&plan, &repository, &head.sha, &mut steps)?,
                true,
            )
        }
    };

    let image = ImageRef {
        repository: repository.clone(),
        sha: head.sha.clone(),
        digest,
    };
    let signature = steps.run("verify signature", || {
        cosign::verify(&image, args.require_signature)
    })?;
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
        build_duration_sec: record::seconds(started.elapsed()),
        built_at: record::now_rfc3339(),
    };
    let out = args
        .out
        .unwrap_or_else(|| project.state_dir().join("metadata.json"));
    record::write_file(&out, &build)?;
    record::github(
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
        record::print_line(&build)?;
    }
    Ok(())
}

fn ensure_local_registry(project: &Project, dry_run: bool) -> anyhow::Result<()> {
    let url = format!("http://{LOCAL_REGISTRY}/v2/");
    if registry::answers(&url) {
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
    registry::up(&project.state_dir(), 5000)
}

fn dry_run(plan: &Plan, json: bool) -> anyhow::Result<()> {
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
        record::print_line(
            &serde_json::json!({"record": "build-plan", "dry_run": true, "commands": commands}),
        )?;
    }
    Ok(())
}

/// The full tag exists: the short tag must name the same digest. A push that
/// failed midway left it missing: push it from the full tag's digest (no
/// rebuild, the bytes are the registry's). One pointing elsewhere was moved:
/// refuse, never overwrite.
fn complete_short_tag(
    plan: &Plan,
    repository: &Repository,
    sha: &GitSha,
    digest: &Digest,
) -> anyhow::Result<()> {
    match registry::digest_of(repository, sha.short())? {
        Some(short) if short == *digest => Ok(()),
        Some(other) => bail!(
            "{} points at {other}, but {} is {digest}: the short tag was moved; investigate before anything deploys it",
            plan.short_tag,
            plan.full_tag
        ),
        None => {
            eprintln!(
                "{} is missing (an earlier push stopped midway): pushing it from {digest}",
                plan.short_tag
            );
            let by_digest = format!("{repository}@{digest}");
            docker()
                .args(["pull", "--platform", PLATFORM, &by_digest])
                .run()?;
            docker().args(["tag", &by_digest, &plan.short_tag]).run()?;
            let pushed = docker::push(&plan.short_tag)?;
            match registry::digest_of(repository, sha.short())? {
                Some(d) if d == *digest && pushed == *digest => Ok(()),
                other => bail!(
                    "re-pushing {} gave {}, not {digest}: investigate the registry",
                    plan.short_tag,
                    other.map_or_else(|| "nothing".to_owned(), |d| d.to_string())
                ),
            }
        }
    }
}

fn build_and_push(
    plan: &Plan,
    repository: &Repository,
    sha: &GitSha,
    steps: &mut Steps,
) -> anyhow::Result<Digest> {
    steps.run("compile the static api binary", || {
        plan.compile
            .run()
            .context("compiling the api failed: fix the build, then run ci-build again")
    })?;
    steps.run("assemble the build context", || {
        if plan.context.exists() {
            std::fs::remove_dir_all(&plan.context)?;
        }
        std::fs::create_dir_all(&plan.context)?;
        std::fs::copy(&plan.binary, plan.context.join("api"))
            .with_context(|| format!("copying {}", plan.binary.display()))?;
        Ok(())
    })?;
    steps.run("docker build (clean, linux/amd64)", || {
        plan.image_build.run()
    })?;
    let pushed = steps.run("push both tags", || {
        let full = docker::push(&plan.full_tag)?;
        let short = docker::push(&plan.short_tag).with_context(|| {
            format!("{} was pushed but {} was not: run ci-build again to complete it", plan.full_tag, plan.short_tag)
        })?;
        if full != short {
            bail!("the two tags were pushed with different digests ({full} and {short}): push again with --force");
        }
        Ok(full)
    })?;
    steps.run("read both tags back from the registry", || {
        for reference in [sha.as_str(), sha.short()] {
            match registry::digest_of(repository, reference)? {
                Some(d) if d == pushed => {}
                Some(d) => bail!(
                    "the registry serves {repository}:{reference} as {d}, but docker pushed {pushed}: something rewrote the tag; do not deploy it, investigate the registry"
                ),
                None => bail!(
                    "the registry has no {repository}:{reference} right after the push of {pushed}: check the registry's storage and push again"
                ),
            }
        }
        eprintln!("    registry agrees: both tags → {pushed}");
        Ok(())
    })?;
    Ok(pushed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_main_goes_to_the_canonical_repository() {
        assert_eq!(route(Some("main")), RepositoryKind::Canonical);
        for other in [Some("feature/x"), Some("master"), Some("main2"), None] {
            assert_eq!(route(other), RepositoryKind::Staging, "{other:?}");
        }
    }
}
