//! The SBOM: SPDX 2.3 JSON of what the clean build compiled
//! (crate::build::resolve: the lock's resolve for the target, asked of the
//! sealed cargo in the commit's checkout), describing the pushed image by
//! digest and the `/api` it holds by sha256:
//!
//! - one package per crate compiled, with its `pkg:cargo/` purl and the
//!   lock's sha256 of its archive;
//! - `/api STATIC_LINK <crate>` for each crate linked into the binary;
//! - `<crate> BUILD_DEPENDENCY_OF /api` for each build-time-only crate
//!   (proc-macros, build-script dependencies, and theirs), which ran during
//!   the compile and shaped the binary without being in it;
//! - no crate the lock names that the target never compiles.
//!
//! Not syft on the image: syft reads the crate list `cargo auditable`
//! embeds, which names crates never compiled and leaves out the
//! proc-macros (issue 25). The file is named by the image's digest, so a
//! second build of the same SHA (another repository, another digest) never
//! overwrites it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};

use crate::build::resolve::Crate;
use crate::model::digest::Digest;
use crate::model::image::ImageRef;
use crate::supply::provenance::Built;

pub struct Sbom {
    pub path: PathBuf,
    pub sha256: String,
    /// SPDX packages that are crates (`pkg:cargo/…` purls).
    pub components: usize,
}

/// `<dir>/sha256-<hex>.spdx.json`: one file per image digest.
pub fn path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join(format!("sha256-{}.spdx.json", hex(digest)))
}

/// The 64 hex characters of a digest.
pub fn hex(digest: &Digest) -> &str {
    digest.as_str().trim_start_matches("sha256:")
}

/// An SPDX id: letters, digits, `.` and `-` only.
fn spdx_id(c: &Crate) -> String {
    let clean = |s: &str| {
        s.chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '.' {
                    ch
                } else {
                    '-'
                }
            })
            .collect::<String>()
    };
    format!("SPDXRef-crate-{}-{}", clean(&c.name), clean(&c.version))
}

/// The SPDX document.
pub fn document(image: &ImageRef, built: &Built, created: &str) -> Value {
    let mut packages = vec![json!({
        "SPDXID": "SPDXRef-image",
        "name": image.repository.to_string(),
        "versionInfo": image.digest.as_str(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "externalRefs": [{
            "referenceCategory": "PACKAGE-MANAGER",
            "referenceType": "purl",
            "referenceLocator": format!("pkg:oci/api@{}?repository_url={}", image.digest, image.repository),
        }],
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-image",
    })];
    let api_id = built
        .crates
        .iter()
        .find(|c| c.name == "api" && !c.build_time)
        .map(spdx_id)
        .unwrap_or_else(|| "SPDXRef-image".to_owned());
    for c in &built.crates {
        let id = spdx_id(c);
        let mut package = json!({
            "SPDXID": id,
            "name": c.name,
            "versionInfo": c.version,
            "downloadLocation": match &c.checksum {
                Some(_) => format!("https://crates.io/api/v1/crates/{}/{}/download", c.name, c.version),
                None => "NOASSERTION".to_owned(),
            },
            "filesAnalyzed": false,
            "primaryPackagePurpose": if c.name == "api" && !c.build_time { "APPLICATION" } else { "LIBRARY" },
            "comment": if c.build_time {
                "build-time only: a proc-macro, a build-script dependency, or theirs; ran during the compile, not linked into /api"
            } else {
                "linked into /api"
            },
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": format!("pkg:cargo/{}@{}", c.name, c.version),
            }],
        });
        if let Some(sum) = &c.checksum {
            package["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": sum}]);
        }
        if c.name == "api" && !c.build_time {
            package["checksums"] =
                json!([{"algorithm": "SHA256", "checksumValue": built.binary_sha256}]);
            relationships.push(json!({
                "spdxElementId": "SPDXRef-image",
                "relationshipType": "CONTAINS",
                "relatedSpdxElement": id,
            }));
        } else if c.build_time {
            relationships.push(json!({
                "spdxElementId": id,
                "relationshipType": "BUILD_DEPENDENCY_OF",
                "relatedSpdxElement": api_id,
            }));
        } else {
            relationships.push(json!({
                "spdxElementId": api_id,
                "relationshipType": "STATIC_LINK",
                "relatedSpdxElement": id,
            }));
        }
        packages.push(package);
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}@{}", image.repository, image.digest),
        "documentNamespace": format!("https://github.com/example/shipyard/sbom/{}", hex(&image.digest)),
        "creationInfo": {
            "created": created,
            "creators": ["Tool: cargo-xtask-ci-build"],
            "comment": format!("the crates the clean build of {} compiled for x86_64-unknown-linux-gnu (cargo tree -e normal,build of the api, sealed)", image.sha),
        },
        "packages": packages,
        "relationships": relationships,
    })
}

/// Write the SBOM of what was compiled for the pushed image into `dir`.
pub fn compiled(
    image: &ImageRef,
    built: &Built,
    dir: &Path,
    created: &str,
) -> anyhow::Result<Sbom> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = path(dir, &image.digest);
    let doc = document(image, built, created);
    crate::support::output::write_file(&path, &doc)?;
    let components = cargo_packages(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )?
    .len();
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
