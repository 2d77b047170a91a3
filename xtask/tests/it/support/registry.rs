//! A real registry (Debian's `docker-registry`, distribution 2.8) per test.

use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use super::http::{http_get, http_request};
use super::process::{TempDir, free_port, poll_until};

/// The Accept header without which distribution 2.8 answers 404 for OCI
/// manifests and may rewrite a Docker v2 manifest to schema1 (another digest).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A running `docker-registry serve` on `127.0.0.1:<free port>`, storage in a
/// temp dir. Stopped (and its storage removed) on drop; it also dies when the
/// test process exits, so a registry held in a `static` does not outlive it.
/// docker treats 127.0.0.0/8 as insecure (plain HTTP), so pushes just work.
pub struct Registry {
    port: u16,
    supervisor: Child,
    /// Closing this pipe stops the registry (see [`Registry::start`]).
    lifeline: Option<ChildStdin>,
    dir: TempDir,
}

impl Registry {
    /// Start one and wait (with a deadline) until `GET /v2/` answers 200.
    /// The first call of the whole suite also starts the world's builds
    /// (`world::start_early`).
    pub fn start() -> Registry {
        super::world::start_early();
        let binary = which::which("docker-registry")
            .expect("Debian's docker-registry is not installed: apt-get install docker-registry");
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let dir = TempDir::new("registry");
            let port = free_port();
            let config = dir.join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
                    dir.join("data").display()
                ),
            )
            .expect("write registry config");
            let log = std::fs::File::create(dir.join("registry.log")).expect("registry log");
            // The registry runs under a tiny supervisor that kills it when its
            // stdin closes: on drop, or when this process exits for any reason.
            let mut supervisor = Command::new("sh")
                .args([
                    "-c",
                    r#""$0" serve "$1" & pid=$!; read _ignored; kill "$pid" 2>/dev/null; wait "$pid""#,
                ])
                .arg(&binary)
                .arg(&config)
                .stdin(Stdio::piped())
                .stdout(log.try_clone().expect("log fd"))
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let lifeline = supervisor.stdin.take();
            let registry = Registry {
                port,
                supervisor,
                lifeline,
                dir,
            };
            let up = poll_until(Duration::from_secs(15), || {
                (http_get(&registry.url("/v2/")).0 == 200).then_some(())
            });
            if up.is_some() {
                return registry;
            }
            last_log =
                std::fs::read_to_string(registry.dir.join("registry.log")).unwrap_or_default();
        }
        panic!("docker-registry did not answer on /v2/ within 15 s (3 attempts); log:\n{last_log}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The repository name docker uses: `127.0.0.1:<port>/<path>`.
    pub fn repo(&self, path: &str) -> String {
        format!("127.0.0.1:{}/{path}", self.port)
    }

    /// The manifest digest `<path>:<reference>` has in the registry, read with
    /// a raw `HEAD /v2/<path>/manifests/<reference>` and the full Accept header
    /// (`Docker-Content-Digest`); `None` on 404. Independent of docker.
    pub fn digest(&self, path: &str, reference: &str) -> Option<String> {
        let url = self.url(&format!("/v2/{path}/manifests/{reference}"));
        let response = http_request("HEAD", &url, &[("Accept", MANIFEST_ACCEPT)])
            .unwrap_or_else(|e| panic!("HEAD {url}: {e}"));
        match response.status {
            200 => Some(
                response
                    .header("docker-content-digest")
                    .unwrap_or_else(|| panic!("HEAD {url}: no Docker-Content-Digest"))
                    .to_owned(),
            ),
            404 => None,
            other => panic!("HEAD {url}: unexpected status {other}"),
        }
    }

    /// The tags of `<path>`, sorted (`GET /v2/<path>/tags/list`); empty when
    /// the repository does not exist.
    pub fn tags(&self, path: &str) -> Vec<String> {
        let url = self.url(&format!("/v2/{path}/tags/list"));
        let (status, body) = http_get(&url);
        match status {
            404 => Vec::new(),
            200 => {
                let value: serde_json::Value = serde_json::from_str(&body)
                    .unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {body}"));
                let mut tags: Vec<String> = value["tags"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| t.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                tags.sort();
                tags
            }
            other => panic!("GET {url}: unexpected status {other}: {body}"),
        }
    }

    /// What the registry logged (warnings and errors), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        let _ = self.supervisor.wait();
    }
}
