//! sha256 of files (crate::build::sha256, no subprocess).

use std::path::Path;

/// The lowercase hex sha256 of each file, in order.
pub fn sha256_files(files: &[&Path]) -> anyhow::Result<Vec<String>> {
    files
        .iter()
        .map(|f| crate::build::sha256::of_file(f))
        .collect()
}
