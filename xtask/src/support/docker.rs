//! The docker CLI, as the release flow uses it.

use anyhow::{Context, bail};

use crate::model::digest::Digest;
use crate::support::cmd::Cmd;

pub fn docker() -> Cmd {
    Cmd::new("docker")
}

/// Fail early, with the fix, when docker is missing or its daemon is down.
pub fn ensure_daemon() -> anyhow::Result<()> {
    let out = docker()
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()?;
    if !out.status.success() || out.stdout.trim().is_empty() {
        bail!(
            "the Docker daemon is not answering ({}): start it (e.g. `sudo systemctl start docker`) or point DOCKER_HOST at one",
            out.last_words()
        );
    }
    Ok(())
}

/// `docker push <tag>` streamed live; returns the manifest digest from the
/// `<tag>: digest: sha256:… size: N` line (the legacy builder has no
/// `--metadata-file`, and `--iidfile` is the config digest, not this one).
pub fn push(tag: &str) -> anyhow::Result<Digest> {
    let cmd = docker().args(["push", tag]);
    let out = cmd.tee()?;
    if !out.status.success() {
        bail!("`{cmd}` failed: {}", out.last_words());
    }
    pushed_digest(&out.stdout)
        .with_context(|| format!("`{cmd}` printed no `digest: sha256:…` line"))
}

fn pushed_digest(output: &str) -> anyhow::Result<Digest> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.contains(" digest: sha256:"))
        .context("no digest line")?;
    let digest = line
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .context("no digest after `digest:`")?;
    digest.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_comes_from_the_push_summary_line() {
        let hex = "cc".repeat(32);
        let out = format!(
            "The push refers to repository [127.0.0.1:5055/probe/api]\n23e504424ccd: Pushed\nabc: digest: sha256:{hex} size: 527\n"
        );
        assert_eq!(pushed_digest(&out).expect("ok").hex(), hex);
        assert!(pushed_digest("23e504424ccd: Pushed\n").is_err());
    }
}
