//! A real Prometheus Pushgateway (Debian's `prometheus-pushgateway`) on a
//! free loopback port, under the same supervisor as the registry: it stops
//! on drop, or when the test process exits for any reason.

use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use super::http::http_get;
use super::process::{TempDir, free_port, poll_until};
use super::tools::require_tool;

pub struct Pushgateway {
    port: u16,
    supervisor: Child,
    lifeline: Option<ChildStdin>,
    dir: TempDir,
}

impl Pushgateway {
    /// Start one and wait (with a deadline) until `/-/ready` answers 200;
    /// `None` (a loud skip) where it is not installed and not in CI.
    pub fn start() -> Option<Pushgateway> {
        let binary = require_tool(
            "prometheus-pushgateway",
            "pushing metrics to a real Pushgateway",
        )?;
        let dir = TempDir::new("pushgateway");
        let port = free_port();
        let log = std::fs::File::create(dir.join("pushgateway.log")).expect("log file");
        let mut supervisor = Command::new("sh")
            .args([
                "-c",
                r#""$0" --web.listen-address="$1" --persistence.file="$2" & pid=$!; read _ignored; kill "$pid" 2>/dev/null; wait "$pid""#,
            ])
            .arg(&binary)
            .arg(format!("127.0.0.1:{port}"))
            .arg(dir.join("persistence"))
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start prometheus-pushgateway");
        let lifeline = supervisor.stdin.take();
        let gateway = Pushgateway {
            port,
            supervisor,
            lifeline,
            dir,
        };
        let up = poll_until(Duration::from_secs(15), || {
            (http_get(&gateway.url("/-/ready")).0 == 200).then_some(())
        });
        assert!(
            up.is_some(),
            "prometheus-pushgateway did not get ready on port {port} within 15 s; log:\n{}",
            std::fs::read_to_string(gateway.dir.join("pushgateway.log")).unwrap_or_default()
        );
        Some(gateway)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What a Prometheus server would scrape from it.
    pub fn scrape(&self) -> String {
        let (status, body) = http_get(&self.url("/metrics"));
        assert_eq!(status, 200, "GET /metrics: {body}");
        body
    }
}

impl Drop for Pushgateway {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        let _ = self.supervisor.wait();
    }
}
