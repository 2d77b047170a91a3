//! The compiled fakes of crate `test-fakes` (`cosign`, `provider-services`):
//! located or built once, put on a CHILD's PATH only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

use super::process::{TempDir, bin_dir};
use super::project::workspace_root;

const FAKES: &[&str] = &["cosign", "provider-services", "standin-api"];

/// The path of a fake binary of `test-fakes` (`"cosign"`, `"provider-services"`).
///
/// `cargo test --workspace` builds them next to this test binary
/// (`<target>/debug/`); they are used when present and newer than the
/// fakes' sources. Otherwise they are built once per process with
/// `$CARGO build -p test-fakes --bins --target-dir <target>/fakes`.
pub fn fake_bin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("current test binary");
        // <target>/debug/deps/<test binary>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary under <target>/<profile>/deps")
            .to_path_buf();
        let sources = newest_mtime(&workspace_root().join("xtask/test-fakes"));
        let fresh = FAKES.iter().all(|f| {
            std::fs::metadata(profile_dir.join(f))
                .and_then(|m| m.modified())
                .is_ok_and(|built| built >= sources)
        });
        if fresh {
            return profile_dir;
        }
        let target = profile_dir
            .parent()
            .expect("<target> above the profile dir")
            .join("fakes");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(&cargo)
            .args(["build", "--quiet", "--package", "test-fakes", "--bins"])
            .arg("--manifest-path")
            .arg(workspace_root().join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .expect("run cargo to build the fakes");
        assert!(status.success(), "building test-fakes failed ({status})");
        target.join("debug")
    });
    let path = dir.join(name);
    assert!(path.exists(), "no fake `{name}` at {}", path.display());
    path
}

/// The newest modification time of the files under `dir` (skipping `target`).
fn newest_mtime(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return newest;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            if entry.file_name() == "target" {
                continue;
            }
            newest_mtime(&path)
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        newest = newest.max(time);
    }
    newest
}

/// The fake `cosign` with its own state dir and a bin dir to prepend to a
/// child's PATH ([`super::Xtask::fake_cosign`] does both). It keeps its
/// signatures and attestations in the registry itself, in cosign's layout.
///
/// Keys are real ECDSA P-256 pairs from the fake's `generate-key-pair`:
/// `<name>.key` (the fake's own password-protected format) and `<name>.pub`
/// (a PKIX PEM public key, as real cosign writes).
pub struct FakeCosign {
    state: TempDir,
    bin: TempDir,
    keys: TempDir,
}

/// The password every test key pair is made with.
pub const KEY_PASSWORD: &str = "test-password-not-a-secret";

impl FakeCosign {
    pub fn new() -> FakeCosign {
        let cosign = fake_bin("cosign");
        FakeCosign {
            state: TempDir::new("cosign-state"),
            bin: bin_dir(&[("cosign", &cosign)]),
            keys: TempDir::new("cosign-keys"),
        }
    }

    /// A dir holding only `cosign` (to prepend to PATH).
    pub fn bin_dir(&self) -> &Path {
        self.bin.path()
    }

    /// The value for `FAKE_COSIGN_STATE`.
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    fn command(&self) -> Command {
        let mut c = Command::new(self.bin.join("cosign"));
        c.env("FAKE_COSIGN_STATE", self.state.path())
            .env("COSIGN_PASSWORD", KEY_PASSWORD)
            .env_remove("FAKE_COSIGN_EXIT")
            .env_remove("FAKE_COSIGN_VERSION")
            .stdin(std::process::Stdio::null());
        c
    }

    /// `cosign generate-key-pair` (password [`KEY_PASSWORD`]); returns
    /// (private, public).
    pub fn key_pair(&self, name: &str) -> (PathBuf, PathBuf) {
        let prefix = self.keys.join(name);
        let out = self
            .command()
            .args(["generate-key-pair", "--output-key-prefix"])
            .arg(&prefix)
            .output()
            .expect("run the fake cosign");
        assert!(
            out.status.success(),
            "fake cosign generate-key-pair failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (prefix.with_extension("key"), prefix.with_extension("pub"))
    }

    /// `cosign sign --yes --key <private> --tlog-upload=false <image>`
    /// (image pinned: `repo@sha256:…`): the signature lands in the registry.
    pub fn sign(&self, private: &Path, image: &str) {
        let out = self
            .command()
            .args(["sign", "--yes", "--key"])
            .arg(private)
            .args(["--tlog-upload=false", image])
            .output()
            .expect("run the fake cosign");
        assert!(
            out.status.success(),
            "fake cosign sign {image} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `cosign attest --yes --key <private> --tlog-upload=false --type <t>
    /// --predicate <file> <image>`.
    pub fn attest(&self, private: &Path, image: &str, kind: &str, predicate: &Path) {
        let out = self
            .command()
            .args(["attest", "--yes", "--key"])
            .arg(private)
            .args(["--tlog-upload=false", "--type", kind, "--predicate"])
            .arg(predicate)
            .arg(image)
            .output()
            .expect("run the fake cosign");
        assert!(
            out.status.success(),
            "fake cosign attest {image} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every call's argv, in order (the fake's `calls.log`).
    pub fn calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.state.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("calls.log line is a JSON argv"))
            .collect()
    }
}

impl Default for FakeCosign {
    fn default() -> Self {
        FakeCosign::new()
    }
}
