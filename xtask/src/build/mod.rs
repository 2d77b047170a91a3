//! The clean build: one commit, checked out on its own (never the work
//! tree), compiled from nothing, into an image whose layer is the same on
//! every rebuild. `ci-build` pushes it (or adopts an existing tag that
//! matches it); `verify-build` compares it with what a registry serves.
//!
//! - worktree.rs: the scratch dir and the detached checkout, removed on drop
//! - sources.rs: crate archives reused only when they match `Cargo.lock`
//! - compile.rs: `cargo build --locked` from an empty environment
//! - image.rs: the build context, `docker build`, reading an image back
//! - adopt.rs: an existing registry image against the clean build
//! - push.rs: tags, pushes, and the registry's answer read back
//! - sha256.rs, git.rs

pub mod adopt;
pub mod compile;
pub mod git;
pub mod image;
pub mod metadata;
pub mod push;
pub mod sha256;
pub mod sources;
pub mod worktree;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::model::digest::Digest;
use crate::model::repository::{Repository, RepositoryKind};
use crate::model::sha::GitSha;
use crate::support::cmd::Cmd;
use crate::support::interrupt;
use crate::support::output;
use crate::support::step::Steps;
use crate::verify::cosign::SignatureStatus;
use worktree::{Layout, Scratch, Worktree};

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
    /// sha256 of `/api` as the clean build produced it (also the image's
    /// `shipyard.binary.sha256` label). `None` only in records written
    /// before clean builds.
    #[serde(default)]
    pub binary_sha256: Option<String>,
    /// diff_id of the image's top layer (the one holding `/api`).
    #[serde(default)]
    pub layer_diff_id: Option<Digest>,
    /// `rustc --version` of the commit's pinned toolchain.
    #[serde(default)]
    pub toolchain: Option<String>,
    #[serde(default)]
    pub compile_duration_sec: Option<f64>,
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

/// A clean build of one commit, as data: every command it will run, with
/// the paths it will use. Read from the commit itself (`git show`), so the
/// user's work tree plays no part, and `--dry-run` can print it all.
pub struct Plan {
    pub sha: GitSha,
    pub commit_time: i64,
    pub layout: Layout,
    pub worktree_add: Cmd,
    pub channel: String,
    pub compile: Cmd,
}

impl Plan {
    pub fn new(repo: &Path, sha: &GitSha) -> anyhow::Result<Plan> {
        let commit_time = git::commit_time(repo, sha)?;
        let channel = compile::channel(
            git::file_at(repo, sha, "rust-toolchain.toml")?.as_deref(),
            git::file_at(repo, sha, "rust-toolchain")?.as_deref(),
        )?;
        git::file_at(repo, sha, "api/Cargo.toml")?
            .with_context(|| format!("commit {sha} has no api/Cargo.toml: nothing to build"))?;
        let layout = Layout {
            base: Scratch::path_for(sha),
        };
        Ok(Plan {
            sha: sha.clone(),
            commit_time,
            worktree_add: worktree::add_cmd(repo, &layout.src(), sha),
            compile: compile::command(&layout, sha, commit_time, &channel),
            layout,
            channel,
        })
    }

    /// The image build, once the binary's hash is known. Version and
    /// source come from `cargo metadata` in the commit's checkout, so
    /// `version.workspace = true` works.
    pub fn image_build(&self, binary_sha256: &str, version: &str, source: &str) -> Cmd {
        let created = output::from_unix(self.commit_time);
        image::build_cmd(
            &self.dockerfile(),
            &self.layout.context(),
            &self.iidfile(),
            &image::Labels {
                sha: &self.sha,
                version,
                created: &created,
                source,
                binary_sha256,
            },
        )
    }

    /// The commit's `deploy/Dockerfile`, copied out of the checkout.
    fn dockerfile(&self) -> PathBuf {
        self.layout.base.join("Dockerfile")
    }

    fn iidfile(&self) -> PathBuf {
        self.layout.base.join("image-id")
    }

    /// What a real run executes, in order, for `--dry-run`.
    pub fn commands(&self) -> Vec<String> {
        vec![
            self.worktree_add.to_string(),
            format!(
                "# xtask copies each crate archive whose sha256 is the checksum in {}/Cargo.lock into {}",
                self.layout.src().display(),
                self.layout.cargo_home().display()
            ),
            self.compile.to_string(),
            metadata::metadata_cmd(&self.layout.src()).to_string(),
            format!(
                "cp {} {}/api  # then mode 0755, mtime {}",
                compile::binary(&self.layout).display(),
                self.layout.context().display(),
                output::from_unix(self.commit_time)
            ),
            self.image_build(
                "<sha256 of the compiled binary>",
                "<version from cargo metadata>",
                "<repository from cargo metadata>",
            )
            .to_string(),
        ]
    }
}

/// A first Ctrl-C or SIGTERM ends the build between steps (the running
/// child is killed by `Cmd::run_interruptible`); the guards clean up.
pub fn stop_if_interrupted() -> anyhow::Result<()> {
    if interrupt::requested() {
        bail!("stopped between two steps");
    }
    Ok(())
}

/// A task that failed after a Ctrl-C or SIGTERM says so first: whatever
/// the killed child printed, the cause was the interruption.
pub fn name_interruption(result: anyhow::Result<()>) -> anyhow::Result<()> {
    result.map_err(|e| {
        if interrupt::requested() {
            e.context("interrupted (Ctrl-C or SIGTERM): the build stopped; its checkout and scratch dir were removed, nothing was pushed or recorded")
        } else {
            e
        }
    })
}

/// The compiled binary of a clean build.
pub struct Compiled {
    pub sha256: String,
    pub toolchain: String,
    pub duration: Duration,
    /// The api's version and source label, from `cargo metadata` in the
    /// commit's checkout (so `version.workspace = true` works).
    pub version: String,
    pub source: String,
}

/// Check out the commit, verify the crate archives, compile. The checkout
/// is removed before this returns (its Dockerfile is kept in the scratch
/// dir for the image build).
pub fn compile(
    plan: &Plan,
    repo: &Path,
    scratch: &Scratch,
    steps: &mut Steps,
) -> anyhow::Result<Compiled> {
    debug_assert_eq!(scratch.path(), plan.layout.base);
    let layout = &plan.layout;
    let checkout = steps.run(
        &format!("check out {} into a detached worktree", plan.sha),
        || Worktree::add(repo, &layout.src(), &plan.sha),
    )?;
    stop_if_interrupted()?;
    steps.run("reuse only crate archives that match Cargo.lock", || {
        let lock = std::fs::read_to_string(checkout.path().join("Cargo.lock"))
            .context("the commit has no Cargo.lock: a clean build is `--locked`")?;
        let user_home = compile::user_cargo_home()
            .context("neither CARGO_HOME nor HOME is set: cannot find the crate cache")?;
        let reused = sources::prepare(&lock, &user_home, &layout.cargo_home())?;
        eprintln!(
            "    {} archive(s) checked against Cargo.lock and copied; {} to download",
            reused.verified, reused.missing
        );
        for dir in [layout.home(), layout.target()] {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::copy(checkout.path().join("deploy/Dockerfile"), plan.dockerfile())
            .context("the commit has no deploy/Dockerfile")?;
        Ok(())
    })?;
    stop_if_interrupted()?;
    let toolchain = compile::version_command(layout, &plan.channel)
        .read()
        .with_context(|| {
            format!(
                "the commit pins toolchain {} (rust-toolchain.toml), which rustup cannot run: `rustup toolchain install {}`",
                plan.channel, plan.channel
            )
        })?;
    let started = Instant::now();
    steps.run(
        &format!("compile the api (clean, --locked, {toolchain})"),
        || {
            plan.compile.run_interruptible().map_err(|e| {
                if interrupt::requested() {
                    e
                } else {
                    e.context("compiling the api failed: fix the build, then run again")
                }
            })
        },
    )?;
    let duration = started.elapsed();
    let sha256 = sha256::of_file(&compile::binary(layout))?;
    eprintln!("    binary sha256 {sha256}");
    let api = metadata::api(&layout.src())?;
    drop(checkout);
    stop_if_interrupted()?;
    Ok(Compiled {
        sha256,
        toolchain,
        duration,
        source: metadata::source_url(&api),
        version: api.version,
    })
}

/// The local image of a clean build (untagged).
pub struct Image {
    pub id: String,
    pub layers: Vec<Digest>,
}

impl Image {
    pub fn top_layer(&self) -> anyhow::Result<&Digest> {
        self.layers
            .last()
            .context("the built image has no layer: check deploy/Dockerfile's COPY")
    }
}

/// Assemble the context and `docker build` it; read its layers back.
pub fn build_image(plan: &Plan, compiled: &Compiled, steps: &mut Steps) -> anyhow::Result<Image> {
    let layout = &plan.layout;
    image::assemble_context(
        &compile::binary(layout),
        &layout.context(),
        plan.commit_time,
    )?;
    steps.run("docker build (clean, linux/amd64)", || {
        plan.image_build(&compiled.sha256, &compiled.version, &compiled.source)
            .run_interruptible()
    })?;
    let id = std::fs::read_to_string(plan.iidfile())
        .context("docker build wrote no image id")?
        .trim()
        .to_owned();
    let inspected = image::inspect(&id)?;
    eprintln!(
        "    image {id}, layer diff_id(s) {}",
        inspected
            .layers
            .iter()
            .map(Digest::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    );
    stop_if_interrupted()?;
    Ok(Image {
        id,
        layers: inspected.layers,
    })
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
