//! The two sinks: a textfile-collector folder and a Pushgateway.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};

use crate::support::cmd::{Cmd, describe};

pub const FILE_NAME: &str = "xtask.prom";

/// node_exporter reads `*.prom` files whenever it is scraped: write a temp
/// file (a name it does not read) in the same folder, fsync, then rename it
/// over `xtask.prom`; a rename within a filesystem is atomic.
pub fn textfile(dir: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, dir.join(FILE_NAME)));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", dir.join(FILE_NAME).display()));
    }
    Ok(())
}

/// `PUT <url>/metrics/job/xtask`: replaces every metric of the group, which
/// is right for totals derived afresh each time (a POST would keep series
/// that no longer exist). Through curl, as the webhook: proxies and https.
pub fn push(url: &str, text: &str) -> anyhow::Result<()> {
    let endpoint = format!("{}/metrics/job/xtask", url.trim_end_matches('/'));
    // The body from a file, so that the printed command is one a user can
    // run again (stdin would print as a masked secret).
    let body = std::env::temp_dir().join(format!("xtask-metrics-{}.prom", std::process::id()));
    std::fs::write(&body, text).with_context(|| format!("writing {}", body.display()))?;
    let cmd = Cmd::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--fail",
            "--connect-timeout",
            "3",
        ])
        .args(["--max-time", "10", "--request", "PUT"])
        .args(["--header", "Content-Type: text/plain; version=0.0.4"])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(endpoint);
    let out = cmd.output();
    let _ = std::fs::remove_file(&body);
    let out = out?;
    if !out.status.success() {
        bail!(
            "`curl` failed ({}): {}",
            describe(out.status),
            out.last_words()
        );
    }
    Ok(())
}
