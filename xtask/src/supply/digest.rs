//! sha256 of files, with coreutils' `sha256sum` (one command for all of
//! them, printed like every other).

use std::path::Path;

use anyhow::{Context, bail};

use crate::support::cmd::Cmd;

/// The lowercase hex sha256 of each file, in order.
pub fn sha256_files(files: &[&Path]) -> anyhow::Result<Vec<String>> {
    let out = Cmd::new("sha256sum")
        .arg("--")
        .args(files.iter().map(|f| f.display().to_string()))
        .read()
        .context("hashing the build's inputs and outputs")?;
    let sums: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|h| h.trim_start_matches('\\').to_owned())
        .collect();
    if sums.len() != files.len() || sums.iter().any(|h| h.len() != 64) {
        bail!(
            "sha256sum printed {} sums for {} files: {out}",
            sums.len(),
            files.len()
        );
    }
    Ok(sums)
}
