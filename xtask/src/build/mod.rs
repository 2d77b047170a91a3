//! The clean build: one commit, written out on its own (never the work
//! tree), compiled from nothing, sealed from the machine (no hook, filter,
//! parent cargo config, PATH shim or caller variable takes part), into an
//! image whose layer is the same on every rebuild. `ci-build` pushes it (or
//! adopts an existing tag that matches it); `verify-build` compares it with
//! what a registry serves.
//!
//! - worktree.rs: the scratch dir and its layout, removed on drop
//! - checkout.rs: the commit's blobs as stored (no git checkout machinery)
//! - sources.rs: crate archives reused only when they match `Cargo.lock`
//! - compile.rs: the pinned toolchain by absolute path, from `/`, `env -i`
//! - resolve.rs: the crates compiled, linked or build-time (the SBOM)
//! - image.rs: the build context, `docker build`, reading an image back
//! - adopt.rs: an existing registry image against the clean build
//! - push.rs: tags, pushes, and the registry's answer read back
//! - sha256.rs, git.rs

pub mod adopt;
pub mod checkout;
pub mod compile;
pub mod git;
pub mod image;
pub mod metadata;
pub mod push;
pub mod resolve;
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
use compile::{Seal, Toolchain};
use worktree::{Layout, Scratch};

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
    /// The first command of the checkout (crate::build::checkout).
    pub checkout: Cmd,
    pub toolchain: Toolchain,
    /// The commit's own cargo config files, passed with `--config`.
    pub cargo_config: Vec<String>,
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
        let mut cargo_config = Vec::new();
        for file in compile::CONFIG_FILES {
            if git::file_at(repo, sha, file)?.is_some() {
                cargo_config.push((*file).to_owned());
            }
        }
        let layout = Layout {
            base: Scratch::path_for(sha),
        };
        let toolchain = Toolchain::at(&channel);
        Ok(Plan {
            sha: sha.clone(),
            commit_time,
            checkout: checkout::list_cmd(repo, sha),
            compile: compile::command(&layout, &toolchain, &cargo_config, sha, commit_time),
            layout,
            toolchain,
            cargo_config,
        })
    }

    /// What the compile is sealed with, for the provenance.
    pub fn seal(&self) -> Seal {
        Seal::of(&self.compile, &self.toolchain, &self.cargo_config)
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
            self.checkout.to_string(),
            format!(
                "# xtask writes each blob `git cat-file --batch` gives for that listing into {}, as stored",
                self.layout.src().display()
            ),
            format!(
                "# xtask copies each crate archive whose sha256 is the checksum in {}/Cargo.lock into {}",
                self.layout.src().display(),
                self.layout.cargo_home().display()
            ),
            self.compile.to_string(),
            metadata::sealed_cmd(&self.layout, &self.toolchain, &self.cargo_config).to_string(),
            resolve::tree_cmd(
                &self.layout,
                &self.toolchain,
                &self.cargo_config,
                "normal,build",
            )
            .to_string(),
            resolve::tree_cmd(
                &self.layout,
                &self.toolchain,
                &self.cargo_config,
                "normal,no-proc-macro",
            )
            .to_string(),
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
    /// sha256 of the commit's `Cargo.lock` and `deploy/Dockerfile`, as
    /// committed (the files the build read), for the provenance.
    pub lock_sha256: String,
    pub dockerfile_sha256: String,
    /// Every crate compiled, linked or build-time (the SBOM).
    pub crates: Vec<resolve::Crate>,
    pub seal: Seal,
}

/// Write out the commit, verify the crate archives, compile. The checkout
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
    let src = layout.src();
    steps.run(
        &format!("write out {} (its blobs as stored)", plan.sha),
        || {
            let files = checkout::export(repo, &plan.sha, &src)?;
            eprintln!("    {files} file(s) written from the commit");
            Ok(())
        },
    )?;
    stop_if_interrupted()?;
    let lock = steps.run("reuse only crate archives that match Cargo.lock", || {
        let lock = std::fs::read_to_string(src.join("Cargo.lock"))
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
        std::fs::copy(src.join("deploy/Dockerfile"), plan.dockerfile())
            .context("the commit has no deploy/Dockerfile")?;
        Ok(lock)
    })?;
    stop_if_interrupted()?;
    plan.toolchain.check()?;
    let toolchain = compile::version_command(layout, &plan.toolchain).read()?;
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
    let api = metadata::api_with(
        &metadata::sealed_cmd(layout, &plan.toolchain, &plan.cargo_config),
        &src,
    )?;
    let crates = steps.run("the crates compiled (cargo tree)", || {
        let crates = resolve::compiled(layout, &plan.toolchain, &plan.cargo_config, &lock)?;
        resolve::check(&crates)?;
        eprintln!(
            "    {} crate(s) compiled, {} of them build-time only",
            crates.len(),
            crates.iter().filter(|c| c.build_time).count()
        );
        Ok(crates)
    })?;
    let lock_sha256 = sha256::of_bytes(lock.as_bytes());
    let dockerfile_sha256 = sha256::of_file(&plan.dockerfile())?;
    // The scratch dir goes on drop; the checkout is not needed any more.
    let _ = std::fs::remove_dir_all(&src);
    stop_if_interrupted()?;
    Ok(Compiled {
        sha256,
        toolchain,
        duration,
        source: metadata::source_url(&api),
        version: api.version,
        lock_sha256,
        dockerfile_sha256,
        crates,
        seal: plan.seal(),
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
