//! The real docker CLI, and cleanup of what a test left in the engine.

use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use super::process::{TempDir, at_exit, sh_quote};

/// `docker <args>`, captured. Panics only when docker cannot be started.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker {args:?}: {e}"))
}

/// `docker <args>` that must succeed; its trimmed stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Build a tiny `FROM scratch` image holding one file with `content`, tagged
/// `tag` (no base image to pull; distinct content gives a distinct digest).
pub fn docker_build_tiny(tag: &str, content: &str) {
    let dir = TempDir::new("tiny-image");
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY marker.txt /\n")
        .expect("write Dockerfile");
    std::fs::write(dir.join("marker.txt"), content).expect("write marker");
    let context = dir.path().display().to_string();
    docker_ok(&["build", "--quiet", "--tag", tag, &context]);
}

/// Build a tiny `FROM scratch` image with these labels (a hand-made image,
/// as a careless operator would push one), tagged `tag`.
pub fn docker_build_labelled(tag: &str, content: &str, labels: &[(&str, &str)]) {
    let dir = TempDir::new("labelled-image");
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY marker.txt /\n")
        .expect("write Dockerfile");
    std::fs::write(dir.join("marker.txt"), content).expect("write marker");
    let mut args: Vec<String> = vec!["build".into(), "--quiet".into(), "--tag".into(), tag.into()];
    for (k, v) in labels {
        args.push("--label".into());
        args.push(format!("{k}={v}"));
    }
    args.push(dir.path().display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker_ok(&args);
}

/// An image made FROM `base` with these Dockerfile `lines` after the FROM
/// and these `files` in its context; every label of `base` is inherited.
/// Tagged `tag`.
pub fn docker_build_from(base: &str, tag: &str, lines: &str, files: &[(&str, &[u8])]) {
    let dir = TempDir::new("derived-image");
    std::fs::write(dir.join("Dockerfile"), format!("FROM {base}\n{lines}"))
        .expect("write Dockerfile");
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("write a context file");
    }
    let context = dir.path().display().to_string();
    docker_ok(&["build", "--quiet", "--pull=false", "--tag", tag, &context]);
}

/// An image made FROM `base` with another `/api` (a static copy of `true`,
/// or any file): every label of `base` is inherited, so it still claims to
/// be the commit and binary `base` was. Tagged `tag`.
pub fn docker_build_swapped(base: &str, tag: &str, replacement: &[u8]) {
    docker_build_from(base, tag, "COPY api /api\n", &[("api", replacement)]);
}

/// An image made FROM `base` with these labels over its own (same layers,
/// same `/api`): a relabelled copy that claims another commit. Tagged `tag`.
pub fn docker_build_relabelled(base: &str, tag: &str, labels: &[(&str, &str)]) {
    let dir = TempDir::new("relabelled-image");
    std::fs::write(dir.join("Dockerfile"), format!("FROM {base}\n")).expect("write Dockerfile");
    let mut args: Vec<String> = vec![
        "build".into(),
        "--quiet".into(),
        "--pull=false".into(),
        "--tag".into(),
        tag.into(),
    ];
    for (k, v) in labels {
        args.push("--label".into());
        args.push(format!("{k}={v}"));
    }
    args.push(dir.path().display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    docker_ok(&args);
}

/// Copy `/api` out of an image without running it; returns the file.
pub fn extract_api(image: &str, into: &TempDir) -> std::path::PathBuf {
    let id = docker_ok(&["create", "--entrypoint", "/api", image]);
    let dest = into.join("api");
    let copied = docker(&["cp", &format!("{id}:/api"), &dest.display().to_string()]);
    let _ = docker(&["rm", &id]);
    assert!(
        copied.status.success(),
        "docker cp {id}:/api: {}",
        String::from_utf8_lossy(&copied.stderr)
    );
    dest
}

/// coreutils' `sha256sum` of a file: an implementation independent of the
/// xtask's own.
pub fn sha256sum(path: &std::path::Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a hash")
        .to_owned()
}

/// `RootFS.Layers` of a local image: the diff_ids, bottom first.
pub fn layer_diff_ids(image: &str) -> Vec<String> {
    let json = docker_ok(&[
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        image,
    ]);
    serde_json::from_str(&json).expect("layers JSON")
}

/// Removes, on drop, the containers and images a test created: the ones
/// registered by name, and every local image whose repository starts with a
/// registered prefix (e.g. `127.0.0.1:<port>/`, everything a test pushed to
/// its own registry).
#[derive(Default)]
pub struct DockerGuard {
    containers: Mutex<Vec<String>>,
    /// Environments' `container` prefixes: every `<prefix>-…` container
    /// (proxy, releases) and the `<prefix>-net` network.
    environments: Mutex<Vec<String>>,
    images: Mutex<Vec<String>>,
    prefixes: Mutex<Vec<String>>,
}

impl DockerGuard {
    pub fn new() -> DockerGuard {
        DockerGuard::default()
    }

    pub fn container(&self, id: &str) {
        lock(&self.containers).push(id.to_owned());
    }

    /// Everything a docker-target environment made under `container`.
    pub fn environment(&self, container: &str) {
        lock(&self.environments).push(container.to_owned());
    }

    pub fn image(&self, reference: &str) {
        lock(&self.images).push(reference.to_owned());
    }

    /// Every image named `<prefix>…`, e.g. `registry.host() + "/"`.
    pub fn images_under(&self, prefix: &str) {
        lock(&self.prefixes).push(prefix.to_owned());
    }

    /// The local images (`repo:tag`) under the registered prefixes right now.
    pub fn local_images(&self) -> Vec<String> {
        let prefixes = lock(&self.prefixes).clone();
        let out = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| prefixes.iter().any(|p| l.starts_with(p.as_str())))
            .map(str::to_owned)
            .collect()
    }

    /// The cleanup as one shell line (what drop runs).
    fn script(&self) -> String {
        let mut line = String::from("true");
        for id in lock(&self.containers).iter() {
            line.push_str(&format!(
                "; docker rm -f -v {} >/dev/null 2>&1",
                sh_quote(id)
            ));
        }
        for prefix in lock(&self.environments).iter() {
            line.push_str(&format!(
                "; docker ps -aq --filter name={} | xargs -r docker rm -f -v >/dev/null 2>&1; docker network rm {} >/dev/null 2>&1",
                sh_quote(&format!("^{prefix}-")),
                sh_quote(&format!("{prefix}-net"))
            ));
        }
        for image in lock(&self.images).iter() {
            line.push_str(&format!(
                "; docker rmi -f {} >/dev/null 2>&1",
                sh_quote(image)
            ));
        }
        // By image ID: images pulled by digest have no tag to name them by.
        // A prefix ending in `:` is one repository (`<repo>:`), matched whole.
        for prefix in lock(&self.prefixes).iter() {
            let pattern = match prefix.strip_suffix(':') {
                Some(repo) => format!("^{} ", repo.replace('.', r"\.")),
                None => format!("^{}", prefix.replace('.', r"\.")),
            };
            // Three passes: an image another was built FROM (a relabelled or
            // forged copy) is refused while its child exists.
            line.push_str(&format!(
                "; for pass in 1 2 3; do docker images --no-trunc --format '{{{{.Repository}}}} {{{{.ID}}}}' | grep {} | cut -d' ' -f2 | sort -u | xargs -r docker rmi -f >/dev/null 2>&1; done",
                sh_quote(&pattern)
            ));
        }
        line
    }

    /// For a guard held in a `static` (never dropped): clean up when the test
    /// process exits.
    pub fn clean_at_exit(&self) {
        at_exit(&self.script());
    }
}

impl Drop for DockerGuard {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args(["-c", &self.script()])
            .stdin(Stdio::null())
            .status();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
