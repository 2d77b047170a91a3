//! The build log: one JSON line per finished `ci-build` in
//! `<state dir>/metrics/builds.jsonl`, the durable record that
//! `image_build_total` and `image_build_duration_seconds` are derived from
//! (a build leaves no ledger line: it releases nothing).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::model::repository::RepositoryKind;
use crate::model::sha::GitSha;
use crate::support::project::Project;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Build {
    pub image_sha: GitSha,
    pub repository_type: RepositoryKind,
    /// False when an existing image was adopted (still a build: it compiled).
    pub pushed: bool,
    pub build_duration_sec: f64,
    pub built_at: String,
}

pub fn path(project: &Project) -> PathBuf {
    project.state_dir().join("metrics").join("builds.jsonl")
}

/// Append one build (one `write`, fsynced). A failure is a warning: the
/// image is built and recorded in metadata.json all the same.
pub fn append(project: &Project, build: &Build) {
    let path = path(project);
    let written = (|| -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut line = serde_json::to_string(build)?;
        line.push('\n');
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        file.write_all(line.as_bytes())?;
        file.sync_all()?;
        Ok(())
    })()
    .with_context(|| format!("appending to {}", path.display()));
    if let Err(e) = written {
        eprintln!("warning: the build was not added to the build log: {e:#}");
    }
}

/// Every readable line; a torn one is skipped (it counted no build).
pub fn read(project: &Project) -> Vec<Build> {
    let Ok(bytes) = std::fs::read(path(project)) else {
        return Vec::new();
    };
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect()
}
