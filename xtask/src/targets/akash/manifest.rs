//! `send-manifest`, retried while the provider has not yet processed the
//! update the manifest belongs to.
//!
//! The provider checks a manifest's version against the last version it
//! learnt: the deployment's hash read from the chain, or the last update
//! event it processed (akash-network/provider manifest/manager.go
//! `validateRequest`, `ErrManifestVersion` "manifest version validation
//! failed"). The event reaches it after the block, so a manifest sent as
//! soon as `query tx` sees the transaction can be refused. v0.6.10 to
//! v0.10.7 answer it with HTTP 500 (gateway/rest/router.go
//! `createManifestHandler`), later providers with 422
//! (manifest/gateway.go); the CLI prints the status as `error: remote
//! server returned N` and the body as `errorMessage:`
//! (cmd/provider-services/cmd/manifest.go `doSendManifest`, chain-sdk
//! go/provider/client/client.go `ClientResponseError`). That one refusal
//! is retried, a bounded number of times; any other is final.

use std::time::Duration;

use anyhow::bail;

use crate::support::cmd::{Cmd, Output};

/// The provider's text for a manifest of a version it has not seen yet.
pub const VERSION_NOT_SEEN: &str = "manifest version validation failed";

/// Waits between attempts: 31 s in all, 7 attempts. The provider usually
/// processes the update within a block (about 6 s); past this, something
/// else is wrong, and the engine restores the previous release.
pub const RETRY_DELAYS: [Duration; 6] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(8),
    Duration::from_secs(8),
];

/// How one `send-manifest` ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    Accepted,
    /// Refused because the provider has not processed the update yet.
    VersionNotSeen,
    /// Refused for another reason: the provider's words.
    Refused(String),
}

/// Reads `send-manifest`'s text output (`status:\tPASS|FAIL`, `error:`,
/// `errorMessage:`) and exit status.
pub fn classify(out: &Output) -> Sent {
    let field = |name: &str| -> Option<String> {
        out.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
    };
    let passed = field("status:").is_some_and(|v| v == "PASS");
    if out.status.success() && passed {
        return Sent::Accepted;
    }
    let error = field("error:").unwrap_or_default();
    let message = field("errorMessage:").unwrap_or_default();
    let status_fits = error.ends_with(" 500") || error.ends_with(" 422");
    if status_fits && message.contains(VERSION_NOT_SEEN) {
        return Sent::VersionNotSeen;
    }
    let said = [error, message]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    Sent::Refused(if said.is_empty() {
        out.last_words().to_owned()
    } else {
        said
    })
}

/// What `--dry-run` prints after the `send-manifest` line.
pub fn plan_note() -> String {
    let delays: Vec<String> = RETRY_DELAYS
        .iter()
        .map(|d| d.as_secs().to_string())
        .collect();
    let total: u64 = RETRY_DELAYS.iter().map(Duration::as_secs).sum();
    format!(
        "# retried while the provider answers `{VERSION_NOT_SEEN}` (it has not processed the update yet): after {} s ({total} s in all)",
        delays.join(", ")
    )
}

/// Sends until accepted, retrying only [`Sent::VersionNotSeen`] after each
/// of `delays`. `send` runs one attempt; `sleep` waits.
pub fn send_with_retry(
    mut send: impl FnMut() -> anyhow::Result<Sent>,
    mut sleep: impl FnMut(Duration),
    delays: &[Duration],
    shown: &str,
) -> anyhow::Result<()> {
    let mut waited = Duration::ZERO;
    let mut delays = delays.iter();
    loop {
        match send()? {
            Sent::Accepted => return Ok(()),
            Sent::Refused(why) => {
                bail!("the provider did not accept the manifest (`{shown}`): {why}")
            }
            Sent::VersionNotSeen => match delays.next() {
                Some(d) => {
                    eprintln!(
                        "the provider has not processed the update yet ({VERSION_NOT_SEEN}): sending again in {} s",
                        d.as_secs()
                    );
                    sleep(*d);
                    waited += *d;
                }
                None => bail!(
                    "the provider still answered `{VERSION_NOT_SEEN}` after {} s of retries (`{shown}`): it has not processed the update, which is on chain; the previous release is sent back",
                    waited.as_secs()
                ),
            },
        }
    }
}

/// One real attempt: the command run with its output shown.
pub fn attempt(send: &Cmd) -> anyhow::Result<Sent> {
    Ok(classify(&send.tee()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    fn output(code: i32, stdout: &str) -> Output {
        Output {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.to_owned(),
            stderr: if code == 0 {
                String::new()
            } else {
                "Error: submit manifest to some providers has been failed\n".to_owned()
            },
        }
    }

    const P: &str = "provider: akash1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5jepelx\n";

    #[test]
    fn reads_what_the_cli_prints() {
        let pass = output(0, &format!("{P}\tstatus:       PASS\n"));
        assert_eq!(classify(&pass), Sent::Accepted);
        for status in [500, 422] {
            let lag = output(
                1,
                &format!(
                    "{P}\tstatus:       FAIL\n\terror:        remote server returned {status}\n\terrorMessage: manifest version validation failed\n\n"
                ),
            );
            assert_eq!(classify(&lag), Sent::VersionNotSeen, "{status}");
        }
        let invalid = output(
            1,
            &format!(
                "{P}\tstatus:       FAIL\n\terror:        remote server returned 422\n\terrorMessage: invalid manifest: bad image\n\n"
            ),
        );
        assert_eq!(
            classify(&invalid),
            Sent::Refused("remote server returned 422: invalid manifest: bad image".into())
        );
        let nothing = output(1, "");
        assert_eq!(
            classify(&nothing),
            Sent::Refused("Error: submit manifest to some providers has been failed".into())
        );
    }

    fn run(script: Vec<Sent>) -> (anyhow::Result<()>, Vec<u64>, usize) {
        let mut script = script.into_iter();
        let mut sends = 0;
        let mut slept = Vec::new();
        let r = send_with_retry(
            || {
                sends += 1;
                Ok(script.next().expect("no more answers"))
            },
            |d| slept.push(d.as_secs()),
            &RETRY_DELAYS,
            "send-manifest",
        );
        (r, slept, sends)
    }

    #[test]
    fn retries_only_the_version_refusal_and_gives_up_in_time() {
        let (r, slept, sends) = run(vec![
            Sent::VersionNotSeen,
            Sent::VersionNotSeen,
            Sent::Accepted,
        ]);
        assert!(r.is_ok());
        assert_eq!((slept, sends), (vec![1, 2], 3));

        let (r, slept, sends) = run(vec![Sent::Refused("invalid manifest".into())]);
        assert!(
            r.expect_err("final")
                .to_string()
                .contains("invalid manifest")
        );
        assert_eq!((slept.len(), sends), (0, 1));

        let (r, slept, sends) = run((0..7).map(|_| Sent::VersionNotSeen).collect());
        let err = r.expect_err("bounded").to_string();
        assert!(err.contains("after 31 s of retries"), "{err}");
        assert_eq!((slept, sends), (vec![1, 2, 4, 8, 8, 8], 7));
        assert!(plan_note().contains("after 1, 2, 4, 8, 8, 8 s (31 s in all)"));
    }
}
