//! Optional webhook (`XTASK_NOTIFY_WEBHOOK`): one JSON POST per deploy and
//! rollback. Through curl (https, proxies). A failing webhook is a warning,
//! never a failed deploy.
//!
//! The URL usually carries a token: it reaches curl on stdin as a config
//! file (`--config -`, curl's `url = "…"`), never in argv, where any user
//! of the host can read it (`ps`, `/proc/<pid>/cmdline`). Records are
//! queued while the release runs and sent by [`flush`] once the task has
//! ended and its lock is released, all within [`BUDGET`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::cmd::Cmd;

/// The time all of a task's webhooks may take together.
pub const BUDGET: Duration = Duration::from_secs(10);

static QUEUE: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn webhook() -> Option<String> {
    std::env::var("XTASK_NOTIFY_WEBHOOK")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Queue a record for the webhook, if one is configured.
pub fn queue(record: &impl serde::Serialize) {
    if webhook().is_none() {
        return;
    }
    match serde_json::to_string(record) {
        Ok(body) => {
            if let Ok(mut q) = QUEUE.lock() {
                q.push(body);
            }
        }
        Err(e) => eprintln!("warning: webhook not sent: {e}"),
    }
}

/// Send what was queued. Called by `main` after the task returned, so the
/// environment's lock is already released.
pub fn flush() {
    let bodies = QUEUE.lock().map(|mut q| std::mem::take(&mut *q));
    let (Some(url), Ok(bodies)) = (webhook(), bodies) else {
        return;
    };
    send_all(&url, &bodies, BUDGET);
}

/// POST each body in turn until `budget` is spent; what is left is named.
fn send_all(url: &str, bodies: &[String], budget: Duration) -> usize {
    let deadline = Instant::now() + budget;
    let mut sent = 0;
    for (i, body) in bodies.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_secs(1) {
            eprintln!(
                "warning: the webhook's {}s are spent: {} record(s) not sent; the releases themselves are unaffected",
                budget.as_secs(),
                bodies.len() - i
            );
            break;
        }
        let cmd = command(url, body, left);
        match cmd.output() {
            Ok(out) if out.status.success() => {
                sent += 1;
                eprintln!("webhook notified");
            }
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
    sent
}

/// curl with the URL in a config read from stdin (curl's config syntax:
/// `url = "…"`, where `\` and `"` are escaped inside quotes), bounded by
/// `--max-time` and by the call's own deadline.
fn command(url: &str, body: &str, left: Duration) -> Cmd {
    let secs = left.as_secs().max(1);
    let quoted = url.replace('\\', "\\\\").replace('"', "\\\"");
    Cmd::new("curl")
        .args(["--silent", "--show-error", "--fail"])
        .args(["--connect-timeout", "5", "--max-time"])
        .arg(secs.to_string())
        .args([
            "--header",
            "Content-Type: application/json",
            "--data-binary",
            body,
            "--config",
            "-",
        ])
        .secret_stdin(format!("url = \"{quoted}\""))
        .deadline(Duration::from_secs(secs + 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// The token used to be curl's last argument, readable by every user
    /// on the host for the length of the call: now it is on stdin only.
    #[test]
    fn the_token_never_reaches_argv_and_the_post_still_arrives() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let url = format!("http://127.0.0.1:{port}/hooks/T0K3N?sig=\"q\"");
        let cmd = command(&url, r#"{"record":"deploy"}"#, BUDGET);
        assert!(
            cmd.argv().iter().all(|a| !a.contains("T0K3N")),
            "{:?}",
            cmd.argv()
        );
        assert!(!cmd.to_string().contains("T0K3N"), "{cmd}");
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("a POST");
            // While curl is connected: no process's argv holds the token.
            let leaked = std::fs::read_dir("/proc")
                .expect("/proc")
                .flatten()
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .any(|c| String::from_utf8_lossy(&c).contains("T0K3N"));
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).expect("read");
            conn.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                .expect("answer");
            (leaked, String::from_utf8_lossy(&buf[..n]).into_owned())
        });
        assert_eq!(
            send_all(&url, &[r#"{"record":"deploy"}"#.to_owned()], BUDGET),
            1
        );
        let (leaked, request) = server.join().expect("server");
        assert!(!leaked, "the token was in some process's argv");
        assert!(
            request.starts_with("POST /hooks/T0K3N?sig=%22q%22 ")
                || request.starts_with("POST /hooks/T0K3N?sig=\"q\" "),
            "{request}"
        );
    }

    /// A webhook that accepts and never answers costs the budget, once.
    #[test]
    fn a_silent_webhook_costs_at_most_the_budget() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let _held = std::thread::spawn(move || {
            let conns: Vec<_> = listener.incoming().take(2).collect();
            std::thread::sleep(Duration::from_secs(20));
            drop(conns);
        });
        let started = Instant::now();
        let bodies = vec!["{}".to_owned(), "{}".to_owned(), "{}".to_owned()];
        let sent = send_all(
            &format!("http://127.0.0.1:{port}/h"),
            &bodies,
            Duration::from_secs(2),
        );
        assert_eq!(sent, 0);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}
