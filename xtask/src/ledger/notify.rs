//! Optional webhook (`XTASK_NOTIFY_WEBHOOK`): one JSON POST per deploy and
//! rollback. Through curl (https, proxies), with the URL masked in what is
//! printed. A failing webhook is a warning, never a failed deploy.

use crate::support::cmd::Cmd;

pub fn send(record: &impl serde::Serialize) {
    let Ok(url) = std::env::var("XTASK_NOTIFY_WEBHOOK") else {
        return;
    };
    if url.is_empty() {
        return;
    }
    let body = match serde_json::to_string(record) {
        Ok(body) => body,
        Err(e) => return eprintln!("warning: webhook not sent: {e}"),
    };
    let cmd = Cmd::new("curl")
        .args(["--silent", "--show-error", "--fail", "--max-time", "10"])
        .args([
            "--header",
            "Content-Type: application/json",
            "--data-binary",
            &body,
        ])
        .secret_arg(url);
    match cmd.output() {
        Ok(out) if out.status.success() => eprintln!("webhook notified"),
        // curl's message can quote the URL: do not print it.
        Ok(out) => eprintln!(
            "warning: the webhook failed ({}); the release itself is unaffected",
            crate::support::cmd::describe(out.status)
        ),
        Err(e) => eprintln!(
            "warning: the webhook could not be sent ({e:#}); the release itself is unaffected"
        ),
    }
}
