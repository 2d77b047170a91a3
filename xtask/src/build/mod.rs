//! The build: HEAD's commit compiled into a static api binary, a clean
//! linux/amd64 image tagged by SHA, pushed, and read back from the registry.

pub mod git;
pub mod metadata;

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::model::digest::Digest;
use crate::model::image::{full_tag, short_tag};
use crate::model::repository::{Repository, RepositoryKind};
use crate::model::sha::GitSha;
use crate::registry;
use crate::support::cmd::Cmd;
use crate::support::docker::{self, docker};
use crate::support::output;
use crate::support::project::Project;
use crate::support::step::Steps;
use crate::verify::cosign::SignatureStatus;

/// The platform every image is built for, whatever the builder's host.
pub const PLATFORM: &str = "linux/amd64";
const RUST_TARGET: &str = "x86_64-unknown-linux-gnu";

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
    /// Signing, SBOM, provenance and their verification (crate::supply).
    #[serde(flatten)]
    pub supply: crate::supply::Record,
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
    let created = output::from_unix(head.commit_time);
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
            // `cargo auditable build`: the binary carries its crate list,
            // which syft reads into the SBOM (crate::supply::sbom).
            "auditable",
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
    let api = metadata::api(root)?;
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
        .args(build_arg("VERSION", &api.version))
        .args(build_arg("CREATED", &created))
        .args(build_arg("SOURCE", &metadata::source_url(&api)))
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

/// The full tag exists: the short tag must name the same digest. A push that
/// failed midway left it missing: push it from the full tag's digest (no
/// rebuild, the bytes are the registry's). One pointing elsewhere was moved:
/// refuse, never overwrite.
pub fn complete_short_tag(
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

pub fn build_and_push(
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
