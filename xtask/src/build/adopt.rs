//! An image already in the registry, held against a clean build of the SHA
//! its tag names. `ci-build` adopts an existing tag (pushes nothing) only
//! when its revision label is this SHA and both its binary label and the
//! `/api` it really holds hash to what the clean build produced; otherwise
//! it refuses, naming both. `verify-build` reads images the same way.
//!
//! Issue 24: the same `/api` is not enough (an extra layer, `USER 0:0`,
//! `ENTRYPOINT ["/evil"]` keep it): the image is adopted only when its
//! layers and run config (entrypoint, cmd, user, env, exposed ports,
//! working dir) are those of the image a clean build of the commit gives.

use std::path::Path;

use anyhow::bail;

use crate::build::{image, sha256};
use crate::model::digest::Digest;
use crate::model::repository::Repository;
use crate::model::sha::GitSha;

/// What a registry image says about itself (labels, layers), read by digest.
pub struct Found {
    /// `repo@sha256:…`: pulled and read by digest, never by tag.
    pub by_digest: String,
    pub revision: Option<String>,
    pub binary_label: Option<String>,
    pub layers: Vec<Digest>,
    pub run: RunConfig,
}

impl Found {
    /// What a release of it records: its layers and run config.
    pub fn content(&self) -> Content {
        Content {
            layers: self.layers.clone(),
            run: self.run.clone(),
        }
    }

    pub fn top_layer(&self) -> Option<&Digest> {
        self.layers.last()
    }

    /// The sha256 of the `/api` the image really holds (copied out into `dir`).
    pub fn hash_api(&self, dir: &Path) -> anyhow::Result<String> {
        std::fs::create_dir_all(dir)?;
        let api = dir.join("api");
        image::extract_api(&self.by_digest, &api)?;
        let hash = sha256::of_file(&api)?;
        eprintln!("    {}: /api sha256 {hash}", self.by_digest);
        Ok(hash)
    }
}

/// Read the labels and layers of the image by digest: the local one when
/// the engine holds it under that digest (a retained release: a rollback
/// works with the registry down), else pulled first. A digest names its
/// bytes, so either way it is the same image.
pub fn examine(repository: &Repository, digest: &Digest) -> anyhow::Result<Found> {
    let by_digest = format!("{repository}@{digest}");
    let inspected = match image::inspect(&by_digest) {
        Ok(local) => local,
        Err(_) => {
            image::pull(&by_digest)?;
            image::inspect(&by_digest)?
        }
    };
    eprintln!(
        "    {by_digest}: revision label {}, binary label {}",
        inspected.label(image::REVISION_LABEL).unwrap_or("(none)"),
        inspected.label(image::BINARY_LABEL).unwrap_or("(none)"),
    );
    Ok(Found {
        revision: inspected.label(image::REVISION_LABEL).map(str::to_owned),
        binary_label: inspected.label(image::BINARY_LABEL).map(str::to_owned),
        layers: inspected.layers,
        run: inspected.run,
        by_digest,
    })
}

/// Checked before compiling: an image that says it is another commit (or
/// says nothing) is refused at once.
pub fn check_revision(found: &Found, tag: &str, sha: &GitSha) -> anyhow::Result<()> {
    match found.revision.as_deref() {
        Some(revision) if revision == sha.as_str() => Ok(()),
        Some(other) => bail!(
            "{tag} exists ({}) but its revision label says it was built from {other}, not {sha}: it was not built from this commit (pushed by hand?); refusing to adopt it. Investigate, then delete the tag or rebuild over it with --force",
            found.by_digest
        ),
        None => bail!(
            "{tag} exists ({}) but has no {} label, so nothing says which commit it is: refusing to adopt it. Investigate, then delete the tag or rebuild over it with --force",
            found.by_digest,
            image::REVISION_LABEL
        ),
    }
}

/// Checked after the clean compile: the label and the bytes (`held`, the
/// sha256 of the image's `/api`) must both be what this commit builds.
pub fn check_binary(
    found: &Found,
    held: &str,
    tag: &str,
    sha: &GitSha,
    built: &str,
) -> anyhow::Result<()> {
    let label = found.binary_label.as_deref().unwrap_or("(none)");
    if held == built && label == built {
        return Ok(());
    }
    bail!(
        "{tag} exists ({}) but does not hold what {sha} builds: its /api has sha256 {held} (label {label}), a clean build of {sha} gives {built}; refusing to adopt it. Investigate, then delete the tag or rebuild over it with --force",
        found.by_digest
    )
}

/// What an image runs as: the parts of its config that decide what
/// executes, as whom, with what (labels are checked on their own). Named
/// as docker names them (`.Config`), in the ledger too.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RunConfig {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub user: String,
    pub env: Option<Vec<String>>,
    pub exposed_ports: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    pub working_dir: String,
}

impl RunConfig {
    /// `docker image inspect --format '{{json .Config}}'` of a local image.
    pub fn of(reference: &str) -> anyhow::Result<RunConfig> {
        let text = crate::support::docker::docker()
            .args([
                "image",
                "inspect",
                "--format",
                "{{json .Config}}",
                reference,
            ])
            .read()?;
        parse_config(&text)
    }

    /// Each field that differs: `name: image … , clean build …`.
    pub fn differences(&self, built: &RunConfig) -> Vec<String> {
        let mut out = Vec::new();
        let mut cmp = |name: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{name} {a} (a clean build: {b})"));
            }
        };
        cmp(
            "entrypoint",
            format!("{:?}", self.entrypoint),
            format!("{:?}", built.entrypoint),
        );
        cmp("cmd", format!("{:?}", self.cmd), format!("{:?}", built.cmd));
        cmp(
            "user",
            format!("{:?}", self.user),
            format!("{:?}", built.user),
        );
        cmp("env", format!("{:?}", self.env), format!("{:?}", built.env));
        let ports = |c: &RunConfig| {
            format!(
                "{:?}",
                c.exposed_ports
                    .as_ref()
                    .map(|p| p.keys().collect::<Vec<_>>())
            )
        };
        cmp("exposed ports", ports(self), ports(built));
        cmp(
            "working dir",
            format!("{:?}", self.working_dir),
            format!("{:?}", built.working_dir),
        );
        out
    }
}

/// What a release ran, as its ledger line records it (issue 24, item 7):
/// the layers' diff_ids (the bytes, uncompressed: the same on a rebuild of
/// the commit) and the run config. The manifest digest is not in it: the
/// builder stamps the build's time into the image config, so a rebuild of
/// the same bytes gets another digest.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Content {
    pub layers: Vec<Digest>,
    pub run: RunConfig,
}

impl Content {
    /// Each difference of `other` (an image now) from this record.
    pub fn differences(&self, other: &Content) -> Vec<String> {
        let mut out = Vec::new();
        if self.layers != other.layers {
            let list = |l: &[Digest]| l.iter().map(Digest::as_str).collect::<Vec<_>>().join(", ");
            out.push(format!(
                "layers [{}] (recorded: [{}])",
                list(&other.layers),
                list(&self.layers)
            ));
        }
        out.extend(
            other
                .run
                .differences(&self.run)
                .into_iter()
                .map(|d| d.replace("(a clean build:", "(recorded:")),
        );
        out
    }
}

fn parse_config(text: &str) -> anyhow::Result<RunConfig> {
    serde_json::from_str(text.trim())
        .map_err(|e| anyhow::anyhow!("docker printed an unreadable image config: {e}"))
}

/// Checked after the clean image is built: same layers (diff_ids, in
/// order) and the same run config, else refused naming each difference.
pub fn check_image(
    found: &Found,
    tag: &str,
    built_layers: &[Digest],
    built_config: &RunConfig,
) -> anyhow::Result<()> {
    let mut differences = Vec::new();
    if found.layers != built_layers {
        let list = |l: &[Digest]| l.iter().map(Digest::as_str).collect::<Vec<_>>().join(", ");
        differences.push(format!(
            "layers [{}] (a clean build: [{}])",
            list(&found.layers),
            list(built_layers)
        ));
    }
    differences.extend(found.run.differences(built_config));
    if differences.is_empty() {
        return Ok(());
    }
    bail!(
        "{tag} exists ({}) with the right /api but is not the image a clean build makes: {}; refusing to adopt it. Investigate, then delete the tag or rebuild over it with --force",
        found.by_digest,
        differences.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_evil_run_config_is_named_field_by_field() {
        let built = parse_config(r#"{"User":"65532:65532","Env":["API_PORT=8080"],"ExposedPorts":{"8080/tcp":{}},"Entrypoint":["/api"],"Cmd":null,"WorkingDir":"","Labels":{"a":"b"}}"#).expect("built");
        let evil = parse_config(r#"{"User":"0:0","Env":["API_PORT=8080"],"ExposedPorts":{"8080/tcp":{},"22/tcp":{}},"Entrypoint":["/evil"],"Cmd":null,"WorkingDir":"","Labels":{"a":"c"}}"#).expect("evil");
        assert!(
            built.differences(&built).is_empty(),
            "labels are not compared here"
        );
        let d = evil.differences(&built).join("; ");
        assert!(d.contains("entrypoint Some([\"/evil\"])"), "{d}");
        assert!(
            d.contains("user \"0:0\" (a clean build: \"65532:65532\")"),
            "{d}"
        );
        assert!(d.contains("exposed ports") && d.contains("22/tcp"), "{d}");
        assert!(!d.contains("env"), "{d}");
    }

    fn found(revision: Option<&str>, label: Option<&str>) -> Found {
        Found {
            by_digest: format!("r/api@sha256:{}", "c".repeat(64)),
            revision: revision.map(str::to_owned),
            binary_label: label.map(str::to_owned),
            layers: Vec::new(),
            run: RunConfig::default(),
        }
    }

    #[test]
    fn another_commits_image_is_refused_naming_both_shas() {
        let sha: GitSha = "a".repeat(40).parse().expect("sha");
        let other = "b".repeat(40);
        let err = check_revision(&found(Some(&other), None), "r/api:aaa", &sha)
            .expect_err("refused")
            .to_string();
        assert!(err.contains(&other) && err.contains(sha.as_str()), "{err}");
        assert!(err.contains("--force"), "{err}");
        assert!(check_revision(&found(None, None), "t", &sha).is_err());
        assert!(check_revision(&found(Some(sha.as_str()), None), "t", &sha).is_ok());
    }

    #[test]
    fn label_and_content_must_both_be_the_clean_builds() {
        let sha: GitSha = "a".repeat(40).parse().expect("sha");
        let (built, other) = ("1".repeat(64), "2".repeat(64));
        let labelled = found(Some(sha.as_str()), Some(&built));
        assert!(check_binary(&labelled, &built, "t", &sha, &built).is_ok());
        // A swapped /api under the original labels (FROM the real image).
        let err = check_binary(&labelled, &other, "t", &sha, &built)
            .expect_err("refused")
            .to_string();
        assert!(err.contains(&built) && err.contains(&other), "{err}");
        let relabelled = found(Some(sha.as_str()), Some(&other));
        assert!(check_binary(&relabelled, &built, "t", &sha, &built).is_err());
    }
}
