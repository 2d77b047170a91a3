//! The image of a clean build, and reading an image back: labels, layer
//! diff_ids, and the `/api` it holds.
//!
//! The build context is the binary alone, its mode fixed (0755) and its
//! mtime set to the commit time: the legacy builder's COPY keeps both, so
//! the layer (and its diff_id, the sha256 of the uncompressed layer tar) is
//! the same on every rebuild of the commit. The image config still carries
//! the build time (the legacy builder stamps it), so the manifest digest
//! differs per build; docs/distribution.md says so.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, bail};

use crate::model::digest::Digest;
use crate::model::sha::GitSha;
use crate::support::cmd::Cmd;
use crate::support::docker::docker;

/// The commit an image was built from (OCI annotation, set by deploy/Dockerfile).
pub const REVISION_LABEL: &str = "org.opencontainers.image.revision";
/// The sha256 of the image's `/api`, as the clean build computed it.
pub const BINARY_LABEL: &str = "shipyard.binary.sha256";

/// The platform every image is built for, whatever the builder's host.
pub const PLATFORM: &str = "linux/amd64";

/// Copy the binary into an empty context as `api`, mode 0755, mtime = the
/// commit time.
pub fn assemble_context(binary: &Path, context: &Path, commit_time: i64) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(context).with_context(|| format!("creating {}", context.display()))?;
    let file = context.join("api");
    std::fs::copy(binary, &file).with_context(|| format!("copying {}", binary.display()))?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod 0755 {}", file.display()))?;
    let when = UNIX_EPOCH + Duration::from_secs(u64::try_from(commit_time).unwrap_or(0));
    std::fs::File::options()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_modified(when))
        .with_context(|| format!("setting the mtime of {}", file.display()))?;
    Ok(())
}

/// What the Dockerfile's labels say (all build args; see deploy/Dockerfile).
pub struct Labels<'a> {
    pub sha: &'a GitSha,
    pub version: &'a str,
    pub created: &'a str,
    pub source: &'a str,
    pub binary_sha256: &'a str,
}

/// `docker build --no-cache --platform linux/amd64 --pull=false -f
/// <Dockerfile> --build-arg … --iidfile <file> <context>`: untagged; the
/// caller tags it only when it is to be pushed.
pub fn build_cmd(dockerfile: &Path, context: &Path, iidfile: &Path, labels: &Labels) -> Cmd {
    let arg = |k: &str, v: &str| ["--build-arg".to_owned(), format!("{k}={v}")];
    docker()
        .args([
            "build",
            "--no-cache",
            "--platform",
            PLATFORM,
            "--pull=false",
        ])
        .arg("--file")
        .arg(dockerfile.display().to_string())
        .args(arg("GIT_SHA", labels.sha.as_str()))
        .args(arg("VERSION", labels.version))
        .args(arg("CREATED", labels.created))
        .args(arg("SOURCE", labels.source))
        .args(arg("BINARY_SHA256", labels.binary_sha256))
        .arg("--iidfile")
        .arg(iidfile.display().to_string())
        .arg(context.display().to_string())
}

/// What the engine says about an image.
#[derive(Debug)]
pub struct Inspected {
    pub labels: BTreeMap<String, String>,
    /// `RootFS.Layers`: the diff_id of each layer, bottom first.
    pub layers: Vec<Digest>,
    /// `Config`: what it runs, as whom, with what.
    pub run: crate::build::adopt::RunConfig,
}

impl Inspected {
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }
}

/// `docker image inspect <reference>`.
pub fn inspect(reference: &str) -> anyhow::Result<Inspected> {
    let text = docker()
        .args(["image", "inspect", "--format", "{{json .}}", reference])
        .read()?;
    parse_inspect(&text).with_context(|| format!("reading `docker image inspect {reference}`"))
}

fn parse_inspect(text: &str) -> anyhow::Result<Inspected> {
    let value: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    let labels = value["Config"]["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let layers = value["RootFS"]["Layers"]
        .as_array()
        .context("no RootFS.Layers")?
        .iter()
        .map(|l| l.as_str().context("a layer is not a string")?.parse())
        .collect::<anyhow::Result<Vec<Digest>>>()?;
    let run = serde_json::from_value(value["Config"].clone())
        .map_err(|e| anyhow::anyhow!("an unreadable image config: {e}"))?;
    Ok(Inspected {
        labels,
        layers,
        run,
    })
}

/// Copy `/api` out of an image without running it: `docker create`, `docker
/// cp`, `docker rm`.
pub fn extract_api(reference: &str, dest: &Path) -> anyhow::Result<()> {
    let id = docker()
        .args(["create", "--platform", PLATFORM, "--entrypoint", "/api"])
        .arg(reference)
        .read()?;
    let copied = docker()
        .args(["cp", &format!("{id}:/api")])
        .arg(dest.display().to_string())
        .output();
    let _ = docker().args(["rm", "--volumes", &id]).output();
    let copied = copied?;
    if !copied.status.success() {
        bail!(
            "{reference} has no readable /api ({}): it is not an api image",
            copied.last_words()
        );
    }
    Ok(())
}

/// `docker pull --platform linux/amd64 <repo>@sha256:…`.
pub fn pull(by_digest: &str) -> anyhow::Result<()> {
    docker()
        .args(["pull", "--platform", PLATFORM, by_digest])
        .run()
}

/// Remove a local image made only for a comparison (never a tagged one).
pub fn remove(id: &str) {
    let _ = docker().args(["image", "rm", id]).output();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_gives_labels_and_layers() {
        let hex = "ab".repeat(32);
        let text = format!(
            r#"{{"Id":"sha256:{hex}","Config":{{"Labels":{{"{REVISION_LABEL}":"x"}}}},"RootFS":{{"Type":"layers","Layers":["sha256:{hex}"]}}}}"#
        );
        let got = parse_inspect(&text).expect("parses");
        assert_eq!(got.label(REVISION_LABEL), Some("x"));
        assert_eq!(got.label(BINARY_LABEL), None);
        assert_eq!(
            got.layers,
            [format!("sha256:{hex}").parse::<Digest>().expect("digest")]
        );
        let no_labels = format!(
            r#"{{"Id":"i","Config":{{"Labels":null}},"RootFS":{{"Layers":["sha256:{hex}"]}}}}"#
        );
        assert!(parse_inspect(&no_labels).expect("parses").labels.is_empty());
        assert!(parse_inspect(r#"{"Id":"i","RootFS":{"Layers":["nope"]}}"#).is_err());
    }

    #[test]
    fn the_context_file_carries_the_commit_time_and_a_fixed_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("xtask-unit-context-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let binary = dir.join("built");
        std::fs::write(&binary, b"\x7fELF").expect("write");
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        assemble_context(&binary, &dir.join("context"), 1_700_000_000).expect("context");
        let meta = std::fs::metadata(dir.join("context/api")).expect("api");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        assert_eq!(
            meta.modified().expect("mtime"),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
