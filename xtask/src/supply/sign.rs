//! Signing and attesting a pushed digest with the real `cosign` (v2).
//!
//! - With a key: `COSIGN_KEY` is a path, KMS URI or `env://VAR` (or the PEM
//!   text itself, passed as `env://COSIGN_KEY`); cosign reads the password
//!   from `COSIGN_PASSWORD` itself, so it is never on a command line. Any
//!   other one-line value is refused before anything runs, naming the
//!   variable and the form it should take, never the value: a key stored
//!   as one line of base64 (a common CI secret) would otherwise become
//!   `--key <the key>` in the printed command, in cosign's error, and in
//!   the record's `signing_reason`.
//! - The signing secrets reach cosign sign/attest alone (`Cmd::signing`);
//!   every other child starts without them (support::cmd).
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
        return Ok(Ok(Signer::Key(signing_key(&key)?)));
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

/// URI schemes cosign's `--key` reads (cosign `pkg/signature/kms`,
/// `pkg/cosign/kubernetes`, `pkg/cosign/git/gitlab`, `pkg/cosign/pkcs11key`,
/// `env://` in `pkg/signature/keys.go`).
const KEY_SCHEMES: &[&str] = &[
    "env://",
    "awskms://",
    "gcpkms://",
    "azurekms://",
    "hashivault://",
    "k8s://",
    "gitlab://",
    "pkcs11:",
    "https://",
    "http://",
];

/// `COSIGN_KEY` as cosign's `--key`: a PEM text becomes `env://COSIGN_KEY`;
/// a URI or a path is passed as is (a missing file is cosign's to name);
/// a value that is none of them (one line of base64, a key's body) is
/// refused, its value never shown.
fn signing_key(value: &str) -> anyhow::Result<String> {
    let v = value.trim();
    if v.starts_with("-----BEGIN") || v.contains('\n') {
        return key_reference("COSIGN_KEY", v);
    }
    if KEY_SCHEMES.iter().any(|s| v.starts_with(s)) || std::path::Path::new(v).is_file() {
        return Ok(v.to_owned());
    }
    // Padded or not (some secret stores drop the `=`).
    let padded = format!("{v}{}", "=".repeat((4 - v.len() % 4) % 4));
    let pem_in_base64 =
        crate::support::base64::decode(&padded).is_some_and(|b| b.starts_with(b"-----BEGIN"));
    let too_long_for_a_path = v.len() > 4095 || v.split('/').any(|component| component.len() > 255);
    if pem_in_base64 || too_long_for_a_path || v.contains("PRIVATE KEY") {
        anyhow::bail!(
            "COSIGN_KEY holds {} (value not shown), which cosign's --key cannot read: set COSIGN_KEY to the PEM text of the key (`-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----` … on several lines; decode a base64 secret with `base64 -d` first), to the path of a file holding it, or to a KMS URI or env://VAR",
            if pem_in_base64 {
                "one line of base64 that decodes to a PEM key"
            } else {
                "one line that is neither a path, a URI nor a PEM key"
            }
        );
    }
    Ok(v.to_owned())
}

fn common(cmd: Cmd, signer: &Signer, image: &ImageRef) -> Cmd {
    let mut cmd = cmd.signing().arg("--yes");
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
    fn a_key_in_a_form_cosign_cannot_read_is_refused_without_its_value() {
        let pem = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nZXhhbXBsZSBib2R5\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n";
        assert_eq!(signing_key(pem).expect("pem"), "env://COSIGN_KEY");
        let one_line = "LS0tLS1CRUdJTiBFTkNSWVBURUQgU0lHU1RPUkUgUFJJVkFURSBLRVktLS0tLQpaWGhoYlhCc1pTQmliMlI1Ci0tLS0tRU5EIEVOQ1JZUFRFRCBTSUdTVE9SRSBQUklWQVRFIEtFWS0tLS0tCg==";
        assert_eq!(
            crate::support::base64::decode(one_line).expect("base64"),
            pem.as_bytes(),
            "the test's base64 is the PEM"
        );
        let err = signing_key(one_line).expect_err("base64").to_string();
        assert!(
            err.contains("COSIGN_KEY") && err.contains("base64 -d"),
            "{err}"
        );
        assert!(!err.contains(one_line) && !err.contains("ZXhh"), "{err}");
        let long = "x".repeat(300);
        assert!(signing_key(&long).is_err());
        for reference in [
            "env://OTHER",
            "awskms:///arn:aws:kms:x",
            "/no/such/dir/gone.key",
            "k8s://ns/s",
        ] {
            assert_eq!(signing_key(reference).expect("reference"), reference);
        }
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
