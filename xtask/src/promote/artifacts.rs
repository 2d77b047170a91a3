//! The files a release attaches, under `<state dir>/release/X.Y.Z/`: the
//! api binary out of the image, its SBOM, `SHA256SUMS` and `SHA512SUMS`
//! (written by coreutils themselves, so `sha256sum -c` reads them back).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::build::BuildRecord;
use crate::model::image::ImageRef;
use crate::model::version::Version;
use crate::registry::extract;
use crate::supply::{digest, sbom};
use crate::support::cmd::Cmd;
use crate::support::project::Project;

/// The checksum files, and the coreutils tool that writes and checks each.
pub const SUMS: [(&str, &str); 2] = [("SHA256SUMS", "sha256sum"), ("SHA512SUMS", "sha512sum")];

pub struct Artifacts {
    pub dir: PathBuf,
    /// The attached files (binary, SBOM), in the order the sums list them.
    pub files: Vec<String>,
    /// Where the SBOM came from (said to the user and recorded).
    pub sbom_source: String,
}

pub fn binary_name(version: &Version) -> String {
    format!("api-{}-x86_64-linux", version.number())
}

pub fn sbom_name(version: &Version) -> String {
    format!("api-{}.spdx.json", version.number())
}

/// Extract, SBOM, checksums: every file is written again on each run
/// (the same image gives the same bytes).
pub fn write(project: &Project, image: &ImageRef, version: &Version) -> anyhow::Result<Artifacts> {
    let dir = project.state_dir().join("release").join(version.number());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let binary = binary_name(version);
    extract::api_binary(&image.by_digest(), &dir.join(&binary))?;
    let sbom = sbom_name(version);
    let sbom_source = sbom_into(project, image, &dir.join(&sbom))?;
    let files = vec![binary, sbom];
    for (sums, tool) in SUMS {
        let out = Cmd::new(tool)
            .arg("--")
            .args(files.iter().cloned())
            .dir(&dir)
            .read()?;
        std::fs::write(dir.join(sums), format!("{out}\n"))
            .with_context(|| format!("writing {}", dir.join(sums).display()))?;
    }
    Ok(Artifacts {
        dir,
        files,
        sbom_source,
    })
}

/// The SBOM ci-build made for this digest when its record is here and the
/// file still has the recorded sha256; else syft on the pushed image.
fn sbom_into(project: &Project, image: &ImageRef, dest: &Path) -> anyhow::Result<String> {
    let record = project.state_dir().join("metadata.json");
    let reuse = match built_sbom(&project.root, &record, image) {
        Ok(path) => Some(path),
        Err(why) => {
            eprintln!("SBOM: not reusing ci-build's ({why}): generating it with syft");
            None
        }
    };
    let (from, source) = match reuse {
        Some(path) => {
            let source = format!("ci-build ({})", path.display());
            (path, source)
        }
        None => {
            let dir = project.state_dir().join("supply");
            let made = sbom::generate(project, image, &dir)?;
            (made.path, format!("syft on {}", image.by_digest()))
        }
    };
    std::fs::copy(&from, dest)
        .with_context(|| format!("copying {} to {}", from.display(), dest.display()))?;
    Ok(source)
}

/// The SBOM file ci-build recorded for exactly this SHA and digest, checked
/// against the sha256 it recorded. `Err` says why it cannot be reused.
fn built_sbom(root: &Path, record: &Path, image: &ImageRef) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(record)
        .with_context(|| format!("no ci-build record at {}", record.display()))?;
    let build: BuildRecord = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a ci-build record", record.display()))?;
    if build.image_sha != image.sha || build.image_digest != image.digest {
        bail!(
            "{} records {} {}, not this release's image",
            record.display(),
            build.image_sha,
            build.image_digest
        );
    }
    let (Some(path), Some(sha256)) = (build.supply.sbom_path, build.supply.sbom_sha256) else {
        bail!("{} records no SBOM", record.display());
    };
    let path = root.join(path);
    let actual = digest::sha256_files(&[&path])?;
    if actual.first() != Some(&sha256) {
        bail!(
            "{} changed since ci-build recorded its sha256",
            path.display()
        );
    }
    Ok(path)
}
