//! Images of the stand-in api (`standin-api`, a bin of `test-fakes`): they
//! answer `/health`, `/readiness`, `/version` (with the SHA they are built
//! for) and `/metrics` like the api, build in about a second, and can be
//! made faulty or slow. Deploy, proxy and canary tests run on them; only the
//! build tests need a real clean build of the api.
//!
//! ```ignore
//! let tag = format!("{}:{sha}", repo);
//! Standin::new(&sha).error_rate(0.25).build(&tag);
//! let digest = push(&tag);
//! ```
//!
//! The image is `FROM scratch` with the binary and its shared libraries (from
//! `ldd`: the fakes are ordinary dynamically linked test binaries), run as
//! 65532 on port 8080, labelled like an api image
//! (`org.opencontainers.image.revision`, `shipyard.binary.sha256`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::docker::docker_ok;
use super::fakes::fake_bin;
use super::process::TempDir;

pub struct Standin {
    sha: String,
    /// The commit its revision label names (default: `sha`).
    label: Option<String>,
    error_rate: Option<f64>,
    delay_ms: Option<u64>,
}

impl Standin {
    pub fn new(sha: &str) -> Standin {
        Standin {
            sha: sha.to_owned(),
            label: None,
            error_rate: None,
            delay_ms: None,
        }
    }

    /// Its revision label names `sha` while `/version` reports the one it
    /// was made with: an image that lies only where the service answers.
    pub fn labelled(mut self, sha: &str) -> Standin {
        self.label = Some(sha.to_owned());
        self
    }

    /// That fraction of non-probe requests is answered 500.
    pub fn error_rate(mut self, rate: f64) -> Standin {
        self.error_rate = Some(rate);
        self
    }

    /// Non-probe requests are answered after that many milliseconds.
    pub fn delay_ms(mut self, ms: u64) -> Standin {
        self.delay_ms = Some(ms);
        self
    }

    /// The command line baked into the image's ENTRYPOINT.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![
            "/standin-api".to_owned(),
            "--sha".to_owned(),
            self.sha.clone(),
        ];
        if let Some(rate) = self.error_rate {
            argv.extend(["--error-rate".to_owned(), rate.to_string()]);
        }
        if let Some(ms) = self.delay_ms {
            argv.extend(["--delay-ms".to_owned(), ms.to_string()]);
        }
        argv
    }

    /// `docker build` the image, tagged `tag` (local only; see [`push`]):
    /// `FROM` this process's base image, its entrypoint and labels on top.
    pub fn build(&self, tag: &str) {
        let rootfs = rootfs();
        let dir = TempDir::new("standin-image");
        let entrypoint = serde_json::to_string(&self.argv()).expect("argv as JSON");
        std::fs::write(
            dir.join("Dockerfile"),
            format!("FROM {}\nENTRYPOINT {entrypoint}\n", rootfs.base),
        )
        .expect("write Dockerfile");
        let labels = [
            format!(
                "org.opencontainers.image.revision={}",
                self.label.as_deref().unwrap_or(&self.sha)
            ),
            format!("shipyard.binary.sha256={}", rootfs.binary_sha256),
            "org.opencontainers.image.title=standin-api".to_owned(),
            // One image per tag: two tests building the same SHA under their
            // own registries never share an image ID that one's cleanup
            // (`docker rmi`) could take from the other.
            format!("xtask.test.tag={tag}"),
        ];
        let mut args = vec!["build", "--quiet", "--pull=false", "--tag", tag];
        for label in &labels {
            args.extend(["--label", label.as_str()]);
        }
        let context = dir.path().display().to_string();
        args.push(&context);
        docker_ok(&args);
    }
}

/// `docker push <tag>`; the manifest digest from its `digest: sha256:… size:` line.
pub fn push(tag: &str) -> String {
    let out = docker_ok(&["push", tag]);
    out.lines()
        .find_map(|l| {
            let rest = l.split("digest: ").nth(1)?;
            rest.split_whitespace().next().map(str::to_owned)
        })
        .unwrap_or_else(|| panic!("`docker push {tag}` printed no digest:\n{out}"))
}

struct Rootfs {
    /// The tagged base image every stand-in of this process is built FROM.
    base: String,
    binary_sha256: String,
}

/// The binary and its libraries laid out as they are found on this host, in
/// a base image tagged `xtask-it-standin-base:<pid>` (run as 65532, port
/// 8080), made once per test process. Tagged, so no test's `docker rmi` of
/// its own stand-in prunes it while another builds on it (an untagged
/// cached step was, and a concurrent build failed on the missing image).
/// Removed with every image built on it when the process exits (they carry
/// its label): a pass at a time, as a parent is refused while a child
/// exists, and images derived from a stand-in make chains of three or more.
fn rootfs() -> &'static Rootfs {
    static ROOTFS: OnceLock<Rootfs> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let dir = TempDir::new("standin-rootfs");
        let root = dir.join("rootfs");
        let binary = fake_bin("standin-api");
        copy_file(&binary, &root.join("standin-api"));
        for lib in shared_libs(&binary) {
            let rel = lib.strip_prefix("/").expect("absolute library path");
            copy_file(&lib, &root.join(rel));
        }
        let binary_sha256 = super::docker::sha256sum(&root.join("standin-api"));
        std::fs::write(
            dir.join("Dockerfile"),
            "FROM scratch\n\
             COPY rootfs/ /\n\
             USER 65532:65532\n\
             EXPOSE 8080\n\
             ENV API_PORT=8080 API_SHUTDOWN_GRACE_SECS=5\n",
        )
        .expect("write Dockerfile");
        let pid = std::process::id();
        let base = format!("xtask-it-standin-base:{pid}");
        let label = format!("xtask.test.standin-base={pid}");
        super::process::at_exit(&format!(
            "for i in 1 2 3 4 5 6; do ids=$(docker images -q --filter label={label} | sort -u); [ -n \"$ids\" ] || break; docker rmi -f $ids >/dev/null 2>&1; done"
        ));
        let context = dir.path().display().to_string();
        docker_ok(&[
            "build", "--quiet", "--pull=false", "--label", &label, "--tag", &base, &context,
        ]);
        Rootfs {
            base,
            binary_sha256,
        }
    })
}

/// What `ldd` names: `libc.so.6 => /lib/…/libc.so.6 (0x…)` and the loader
/// `/lib64/ld-linux-x86-64.so.2 (0x…)`; the vDSO has no file.
fn shared_libs(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("run ldd");
    assert!(out.status.success(), "ldd {} failed", binary.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Copy following symlinks (a library's name is often a link), mode kept.
fn copy_file(from: &Path, to: &Path) {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).expect("create folders");
    }
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} → {}: {e}", from.display(), to.display()));
}
