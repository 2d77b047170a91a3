//! Reading tags back from the registry itself. `local`: the registry a
//! newcomer gets by default (`cargo xtask registry up|down`).

pub mod extract;
pub mod local;

use anyhow::{Context, bail};

use crate::model::digest::Digest;
use crate::model::repository::Repository;
use crate::support::cmd::Cmd;

/// `docker manifest inspect --verbose <repo>:<tag>`: docker's client asks the
/// registry with the full Accept header (OCI index, Docker manifest list, OCI
/// manifest, Docker v2 manifest) and uses docker's own TLS and credentials, so
/// the same call works for `ghcr.io` and for a plain-HTTP loopback registry.
pub fn inspect_cmd(repository: &Repository, reference: &str) -> Cmd {
    let mut cmd = Cmd::new("docker").args(["manifest", "inspect", "--verbose"]);
    if repository.is_loopback() {
        cmd = cmd.arg("--insecure");
    }
    cmd.arg(format!("{repository}:{reference}"))
}

/// The manifest digest a tag points at in the registry, or `None` when the
/// registry says it has no such tag. An unreachable registry is an error.
pub fn digest_of(repository: &Repository, reference: &str) -> anyhow::Result<Option<Digest>> {
    let out = inspect_cmd(repository, reference).output()?;
    if !out.status.success() {
        let said = out.last_words();
        if said.contains("no such manifest") || said.contains("manifest unknown") {
            return Ok(None);
        }
        let host = repository.host().unwrap_or("docker.io");
        let hint = if repository.is_loopback() {
            " (start it with `cargo xtask registry up`, or pass --repository)"
        } else {
            " (check the name and `docker login`)"
        };
        bail!("registry {host} did not answer for {repository}:{reference}: {said}{hint}");
    }
    parse_descriptor_digest(&out.stdout)
        .with_context(|| format!("reading the manifest of {repository}:{reference}"))
        .map(Some)
}

/// Whether the registry still holds the manifest `digest` in `repository`
/// (asked by digest, so a moved or deleted tag does not matter).
pub fn holds(repository: &Repository, digest: &Digest) -> anyhow::Result<bool> {
    let mut cmd = Cmd::new("docker").args(["manifest", "inspect", "--verbose"]);
    if repository.is_loopback() {
        cmd = cmd.arg("--insecure");
    }
    let out = cmd.arg(format!("{repository}@{digest}")).output()?;
    if out.status.success() {
        return Ok(parse_descriptor_digest(&out.stdout).is_ok_and(|d| &d == digest));
    }
    let said = out.last_words();
    if said.contains("no such manifest") || said.contains("manifest unknown") {
        return Ok(false);
    }
    bail!("registry did not answer for {repository}@{digest}: {said}")
}

fn parse_descriptor_digest(json: &str) -> anyhow::Result<Digest> {
    let value: serde_json::Value =
        serde_json::from_str(json).context("docker manifest inspect printed no JSON")?;
    if value.is_array() {
        bail!(
            "the tag is a multi-platform index; this tool ships single-platform linux/amd64 images"
        );
    }
    let digest = value
        .pointer("/Descriptor/digest")
        .and_then(|d| d.as_str())
        .context("no Descriptor.digest in docker's answer")?;
    digest.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_digest_from_docker_verbose_output() {
        let hex = "cc".repeat(32);
        let json = format!(
            r#"{{"Ref":"x","Descriptor":{{"mediaType":"m","digest":"sha256:{hex}","size":527}}}}"#
        );
        assert_eq!(parse_descriptor_digest(&json).expect("ok").hex(), hex);
        assert!(parse_descriptor_digest("[]").is_err());
        assert!(parse_descriptor_digest("{}").is_err());
    }

    #[test]
    fn loopback_registries_are_inspected_insecurely() {
        let local: Repository = "127.0.0.1:5000/a/api".parse().expect("repo");
        assert!(inspect_cmd(&local, "t").argv().contains(&"--insecure"));
        let remote: Repository = "ghcr.io/a/api".parse().expect("repo");
        assert!(!inspect_cmd(&remote, "t").argv().contains(&"--insecure"));
    }
}
