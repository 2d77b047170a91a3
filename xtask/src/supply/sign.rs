//! Signing and attesting a pushed digest with the real `cosign` (v2).
//!
//! - With a key: `COSIGN_KEY` is a path, KMS URI or `env://VAR` (or the PEM
//!   text itself, passed as `env://COSIGN_KEY`); cosign reads the password
//!   from `COSIGN_PASSWORD` itself, so it is never on a command line.
//!   `--tlog-upload=false`: nothing goes to the public transparency log, so
//!   verification passes `--insecure-ignore-tlog`.
//! - Keyless in GitHub Actions: the job has `id-token: write`, which sets
//!   `ACTIONS_ID_TOKEN_REQUEST_URL`/`_TOKEN`; cosign gets a Fulcio
//!   certificate for the workflow's identity and logs to Rekor.
//! - Neither: signing is skipped, with the reason.
//!
//! `--yes` answers cosign's interactive confirmation; `--predicate`/`--type`
//! per cmd/cosign/cli/options/attest.go.

use std::path::Path;

use crate::model::image::ImageRef;
use crate::support::cmd::Cmd;
use crate::verify::cosign::{Predicate, key_reference};

#[derive(Debug, PartialEq)]
pub enum Signer {
    /// `--key <reference>`.
    Key(String),
    /// GitHub's OIDC token, through cosign's ambient credential detection.
    Keyless,
}

/// Who signs here, or why nothing can.
pub fn signer() -> anyhow::Result<Result<Signer, String>> {
    if which::which("cosign").is_err() {
        return Ok(Err("cosign not found".to_owned()));
    }
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if let Some(key) = var("COSIGN_KEY") {
        return Ok(Ok(Signer::Key(key_reference("COSIGN_KEY", &key)?)));
    }
    if var("ACTIONS_ID_TOKEN_REQUEST_URL").is_some()
        && var("ACTIONS_ID_TOKEN_REQUEST_TOKEN").is_some()
    {
        return Ok(Ok(Signer::Keyless));
    }
    Ok(Err(
        "no signing key or identity: set COSIGN_KEY (and COSIGN_PASSWORD), or run in GitHub Actions with `id-token: write`"
            .to_owned(),
    ))
}

fn common(cmd: Cmd, signer: &Signer, image: &ImageRef) -> Cmd {
    let mut cmd = cmd.arg("--yes");
    if let Signer::Key(key) = signer {
        cmd = cmd.args(["--key", key, "--tlog-upload=false"]);
    }
    if image.repository.is_loopback() {
        cmd = cmd.arg("--allow-insecure-registry");
    }
    cmd
}

pub fn sign_cmd(signer: &Signer, image: &ImageRef) -> Cmd {
    common(Cmd::new("cosign").arg("sign"), signer, image).arg(image.by_digest())
}

pub fn attest_cmd(signer: &Signer, image: &ImageRef, predicate: Predicate, file: &Path) -> Cmd {
    let cmd = Cmd::new("cosign")
        .arg("attest")
        .args(["--type", predicate.cosign_type()])
        .args(["--predicate", &file.display().to_string()]);
    common(cmd, signer, image).arg(image.by_digest())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(repo: &str) -> ImageRef {
        format!("{repo}:{}@sha256:{}", "a".repeat(40), "b".repeat(64))
            .parse()
            .expect("image")
    }

    #[test]
    fn key_signing_skips_the_tlog_and_keyless_does_not() {
        let img = image("127.0.0.1:5000/acme/api");
        let key = sign_cmd(&Signer::Key("env://COSIGN_KEY".into()), &img);
        assert_eq!(
            key.argv(),
            [
                "sign",
                "--yes",
                "--key",
                "env://COSIGN_KEY",
                "--tlog-upload=false",
                "--allow-insecure-registry",
                &img.by_digest()
            ]
        );
        let remote = image("ghcr.io/acme/api");
        let keyless = attest_cmd(
            &Signer::Keyless,
            &remote,
            Predicate::Provenance,
            Path::new("p.json"),
        );
        assert_eq!(
            keyless.argv(),
            [
                "attest",
                "--type",
                "slsaprovenance1",
                "--predicate",
                "p.json",
                "--yes",
                &remote.by_digest()
            ]
        );
    }
}
