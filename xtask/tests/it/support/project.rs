//! A throwaway git repository holding a copy of this workspace, and the real
//! `xtask` binary run in it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::fakes::FakeCosign;
use super::process::{TempDir, prepend_path};

/// The workspace this crate belongs to (the parent of `xtask/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ has a parent")
        .canonicalize()
        .expect("workspace root exists")
}

/// The `CARGO_TARGET_DIR` every child is given (`<workspace>/target/xtask-it`,
/// absolute), as a developer's shell may hold one: `ci-build` and
/// `verify-build` must ignore it, each compiles into an empty dir of its own.
pub fn shared_target_dir() -> PathBuf {
    workspace_root().join("target").join("xtask-it")
}

/// What a project holds: enough to build the api and run every xtask task.
const COPIED: &[&str] = &[
    "Cargo.toml",
    "Cargo.lock",
    "rust-toolchain.toml",
    ".gitignore",
    ".cargo",
    "api",
    "xtask",
    "deploy",
];

/// A temp git repository (branch `main`, one commit) holding a copy of the
/// workspace's working tree (cargo `target/` dirs excluded). Removed on drop.
pub struct Project {
    dir: TempDir,
}

impl Project {
    pub fn new() -> Project {
        let dir = TempDir::new("project");
        let from = workspace_root();
        for entry in COPIED {
            let src = from.join(entry);
            if src.exists() {
                copy_tree(&src, &dir.join(entry));
            }
        }
        if !dir.join(".gitignore").exists() {
            std::fs::write(dir.join(".gitignore"), "/target\n").expect("write .gitignore");
        }
        Project::commit_all(dir)
    }

    /// A workspace whose `api` is a few lines with no dependencies, built
    /// by the same clean build (own checkout, empty target dir, `--locked`,
    /// the pinned toolchain, the real deploy/Dockerfile) in seconds: for
    /// tests of the build machinery (adoption, refusals, push faults,
    /// interruption) that do not need the real service. It prints
    /// `tiny api <GIT_SHA> marker:as-committed`.
    pub fn tiny() -> Project {
        let dir = TempDir::new("tiny");
        write_tiny_tree(dir.path());
        Project::commit_all(dir)
    }

    /// A commit on the current branch whose tree is the tiny workspace of
    /// [`Project::tiny`] (everything else removed); returns its SHA.
    pub fn commit_tiny_tree(&self, message: &str) -> String {
        self.git(&["rm", "-r", "-q", "."]);
        write_tiny_tree(self.root());
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.sha()
    }

    /// A commit on the current branch whose `api` crate is the tiny api, with
    /// its light release profile (everything else as it was: deploy/,
    /// xtask/, the config); the lock
    /// file drops the api's dependencies (`cargo update --offline
    /// --workspace`: only removals, the other pins kept). Its clean build takes seconds and its image serves
    /// `/health` and `/version`: for the tests that need a built, signed
    /// or released image that runs, not the real api's bytes (the real api
    /// is built by the world's A and its verify-build). Returns its SHA.
    pub fn commit_tiny_api(&self, message: &str) -> String {
        self.git(&["rm", "-r", "-q", "api"]);
        self.write(
            "api/Cargo.toml",
            "[package]\nname = \"api\"\nversion = \"0.1.0\"\nedition = \"2024\"\nlicense = \"MIT OR Apache-2.0\"\n",
        );
        self.write("api/src/main.rs", TINY_API_MAIN);
        // Its light release profile too (the workspace's ends the file).
        let manifest = std::fs::read_to_string(self.root().join("Cargo.toml")).expect("Cargo.toml");
        let kept = manifest
            .find("[profile.release]")
            .map_or(manifest.as_str(), |i| &manifest[..i]);
        self.write("Cargo.toml", &format!("{kept}{TINY_PROFILE}"));
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
        cmd.args(["update", "--offline", "--workspace"])
            .current_dir(self.root())
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        scrub(&mut cmd);
        let out = cmd.output().expect("run cargo update");
        assert!(
            out.status.success(),
            "cargo update --offline --workspace failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
        self.sha()
    }

    /// `git init` (branch `main`), one commit of everything.
    fn commit_all(dir: TempDir) -> Project {
        let project = Project { dir };
        project.git(&["init", "-q", "-b", "main"]);
        project.configure_git();
        project.git(&["add", "-A"]);
        project.git(&["commit", "-q", "-m", "initial"]);
        project
    }

    fn configure_git(&self) {
        self.git(&["config", "user.name", "xtask tests"]);
        self.git(&["config", "user.email", "xtask-tests@example.invalid"]);
        self.git(&["config", "commit.gpgsign", "false"]);
    }

    /// `git clone` of this repository at another path (all branches fetched,
    /// the same branch checked out): another checkout of the same commits.
    pub fn clone_repo(&self, label: &str) -> Project {
        let dir = TempDir::new(label);
        let mut cmd = Command::new("git");
        cmd.arg("clone")
            .arg("-q")
            .arg(self.root())
            .arg(dir.path())
            .stdin(Stdio::null());
        scrub(&mut cmd);
        let out = cmd.output().expect("run git clone");
        assert!(
            out.status.success(),
            "git clone failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let clone = Project { dir };
        clone.configure_git();
        clone
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// For a project held in a `static` (never dropped): removed at exit
    /// (every project already is; kept so callers can say so explicitly).
    pub fn remove_at_exit(&self) {
        self.dir.remove_at_exit();
    }

    /// `git <args>` in the project; must succeed; trimmed stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(self.root())
            .args(args)
            .stdin(Stdio::null());
        scrub(&mut cmd);
        let out = cmd.output().expect("run git");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// HEAD's full SHA.
    pub fn sha(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// HEAD's committer time, seconds since the epoch.
    pub fn commit_time(&self) -> i64 {
        self.git(&["show", "-s", "--format=%ct", "HEAD"])
            .parse()
            .expect("commit time is a number")
    }

    /// A new commit with the same tree: a new SHA, the same bytes.
    pub fn commit_empty(&self, message: &str) -> String {
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.sha()
    }

    pub fn checkout_new_branch(&self, name: &str) {
        self.git(&["checkout", "-q", "-b", name]);
    }

    /// Write a file (creating folders): the tree becomes dirty until committed.
    pub fn write(&self, path: &str, text: &str) {
        let path = self.root().join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create folders");
        }
        std::fs::write(&path, text).expect("write file");
    }

    /// Where ci-build writes its record by default.
    pub fn metadata_path(&self) -> PathBuf {
        self.root().join("target/xtask/metadata.json")
    }

    /// The real xtask in this project, ready to run or to configure further.
    pub fn xtask_cmd(&self, args: &[&str]) -> Xtask {
        Xtask::at(self.root(), args)
    }

    /// Run the real xtask here with a clean environment.
    pub fn xtask(&self, args: &[&str]) -> Run {
        self.xtask_cmd(args).run()
    }
}

impl Default for Project {
    fn default() -> Self {
        Project::new()
    }
}

/// The tiny api's release profile (see `write_tiny_tree`).
const TINY_PROFILE: &str =
    "[profile.release]\nopt-level = 0\npanic = \"abort\"\nstrip = \"symbols\"\n";

/// The tiny api's whole source: std only, so its clean build takes seconds.
/// Run bare it prints `tiny api <GIT_SHA> marker:as-committed`; in its image
/// (`API_PORT` set, as deploy/Dockerfile sets it) it serves `/health`,
/// `/readiness` and `/version` (its `GIT_SHA`) and exits on SIGTERM; `api
/// healthcheck` GETs `/health`. A stand-in, NOT the api.
const TINY_API_MAIN: &str = r#"//! A stand-in for the api (see xtask/tests/it/support/project.rs).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

const MARKER: &str = "marker:as-committed";

unsafe extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(code: i32) -> !;
}

/// As PID 1 in a container, SIGTERM is ignored unless handled.
extern "C" fn stop(_: i32) {
    unsafe { _exit(0) }
}

fn main() {
    let sha = option_env!("GIT_SHA").unwrap_or("unknown");
    let Ok(port) = std::env::var("API_PORT") else {
        println!("tiny api {sha} {MARKER}");
        return;
    };
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        let ok = TcpStream::connect(format!("127.0.0.1:{port}"))
            .and_then(|mut s| {
                s.write_all(b"GET /health HTTP/1.0\r\n\r\n")?;
                let mut answer = String::new();
                s.read_to_string(&mut answer)?;
                Ok(answer)
            })
            .is_ok_and(|a| a.starts_with("HTTP/1.1 200"));
        std::process::exit(if ok { 0 } else { 1 });
    }
    unsafe {
        signal(15, stop);
        signal(2, stop);
    }
    let bind = std::env::var("API_BIND").unwrap_or_else(|_| "0.0.0.0".to_owned());
    let listener = TcpListener::bind(format!("{bind}:{port}")).expect("bind API_PORT");
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || answer(conn, sha));
    }
}

fn answer(mut conn: TcpStream, sha: &str) {
    let mut request = Vec::new();
    let mut buf = [0; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let path = text.split_whitespace().nth(1).unwrap_or("/");
    let short = &sha[..sha.len().min(12)];
    let (status, body) = match path {
        "/health" | "/readiness" => ("200 OK", "{\"status\":\"ok\"}".to_owned()),
        "/version" => ("200 OK", format!("{{\"git_sha\":\"{sha}\",\"short_sha\":\"{short}\"}}")),
        _ => ("404 Not Found", "{\"error\":\"not found\"}".to_owned()),
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}
"#;

/// The tiny workspace: the real release profile, deploy/Dockerfile and
/// rust-toolchain.toml, and an `api` of a few lines without dependencies.
fn write_tiny_tree(dir: &Path) {
    let from = workspace_root();
    let write = |rel: &str, text: &str| {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create folders");
        }
        std::fs::write(path, text).expect("write a tiny project file");
    };
    // A light release profile: the build machinery (sealed checkout, empty
    // target dir, the pinned toolchain, static, remapped paths, --locked,
    // deploy/Dockerfile) is the same, but the real profile's thin LTO with
    // one codegen unit re-optimises std: 4.4 CPU-s per tiny build against
    // 0.3 s (measured), and the suite makes some forty of them.
    write(
        "Cargo.toml",
        &format!(
            "[workspace]\nresolver = \"3\"\nmembers = [\"api\"]\n\n[workspace.package]\nrepository = \"https://github.com/example/shipyard\"\n\n{TINY_PROFILE}"
        ),
    );
    write(
        "Cargo.lock",
        "# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\nversion = 4\n\n[[package]]\nname = \"api\"\nversion = \"0.1.0\"\n",
    );
    write(
        "api/Cargo.toml",
        "[package]\nname = \"api\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    );
    write("api/src/main.rs", TINY_API_MAIN);
    write(".gitignore", "/target\n");
    for entry in ["rust-toolchain.toml", "deploy/Dockerfile"] {
        copy_tree(&from.join(entry), &dir.join(entry));
    }
}

/// Copy a file or a directory tree, skipping `.git` and cargo target dirs
/// (`target/` holding `CACHEDIR.TAG`, or any `target` at a crate's top).
fn copy_tree(src: &Path, dst: &Path) {
    if src.is_file() {
        if let Some(dir) = dst.parent() {
            std::fs::create_dir_all(dir).expect("create folders");
        }
        std::fs::copy(src, dst)
            .unwrap_or_else(|e| panic!("copy {} → {}: {e}", src.display(), dst.display()));
        return;
    }
    let is_cargo_target = src.file_name().is_some_and(|n| n == "target")
        && (src.join("CACHEDIR.TAG").exists()
            || src.parent().is_some_and(|p| p.join("Cargo.toml").exists()));
    if src.file_name().is_some_and(|n| n == ".git") || is_cargo_target {
        return;
    }
    std::fs::create_dir_all(dst).expect("create folder");
    for entry in std::fs::read_dir(src).expect("read dir").flatten() {
        copy_tree(&entry.path(), &dst.join(entry.file_name()));
    }
}

/// Remove what must not leak into a child: CI and GitHub context (CI runs the
/// suite with CI=true), xtask/cosign settings, fake state, git's repository
/// overrides (set inside git hooks), and the variables `cargo test` sets for
/// the test binary.
fn scrub(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let drop = key == "CI"
            || key == "SOURCE_DATE_EPOCH"
            || key == "CARGO_TARGET_DIR"
            || [
                "GITHUB_", "XTASK_", "COSIGN_", "FAKE_", "GIT_", "RUNNER_", "AKASH_",
            ]
            .iter()
            .any(|p| key.starts_with(p))
            || [
                "CARGO_MANIFEST_",
                "CARGO_PKG_",
                "CARGO_BIN_",
                "CARGO_CRATE_",
                "CARGO_PRIMARY_",
            ]
            .iter()
            .any(|p| key.starts_with(p));
        if drop {
            cmd.env_remove(key);
        }
    }
}

/// One run of the real `xtask` binary: `XTASK_ROOT=<root>`, `CARGO` = the
/// cargo running the tests, `CARGO_TARGET_DIR` = [`shared_target_dir`] (a
/// clean build ignores it: it compiles into its own empty dir), the
/// environment scrubbed (see `scrub`), plus what a test adds.
pub struct Xtask {
    root: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, OsString)>,
    path: Option<OsString>,
    path_prefix: Vec<PathBuf>,
}

impl Xtask {
    /// `xtask <args>` with `XTASK_ROOT=<root>` (any dir: a plain temp dir too).
    pub fn at(root: &Path, args: &[&str]) -> Xtask {
        Xtask {
            root: root.to_path_buf(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            envs: Vec::new(),
            path: None,
            path_prefix: Vec::new(),
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Xtask {
        self.envs.push((key.to_owned(), value.into()));
        self
    }

    /// Replace the child's whole PATH.
    pub fn path(mut self, path: impl Into<OsString>) -> Xtask {
        self.path = Some(path.into());
        self
    }

    /// Prepend a dir to the child's PATH (after any [`Xtask::path`]).
    pub fn path_prefix(mut self, dir: &Path) -> Xtask {
        self.path_prefix.push(dir.to_path_buf());
        self
    }

    /// The fake cosign on PATH with its state dir.
    pub fn fake_cosign(self, cosign: &FakeCosign) -> Xtask {
        self.path_prefix(cosign.bin_dir())
            .env("FAKE_COSIGN_STATE", cosign.state_dir())
    }

    /// Start it without waiting (stdout and stderr piped), e.g. to signal it
    /// mid-flight.
    pub fn spawn(self) -> std::process::Child {
        let mut cmd = self.command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().expect("spawn the xtask binary")
    }

    /// Like [`Xtask::spawn`], in a process group of its own, as a shell runs
    /// a foreground job: `kill -INT -- -<pid>` then reaches it and its
    /// children (cargo, rustc, docker) as Ctrl-C in a terminal does.
    pub fn spawn_job(self) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        let mut cmd = self.command();
        cmd.process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().expect("spawn the xtask binary")
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
        cmd.args(&self.args)
            .current_dir(&self.root)
            .stdin(Stdio::null());
        scrub(&mut cmd);
        cmd.env("XTASK_ROOT", &self.root)
            .env(
                "CARGO",
                std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
            )
            .env("CARGO_TARGET_DIR", shared_target_dir());
        let mut path = self
            .path
            .clone()
            .unwrap_or_else(|| std::env::var_os("PATH").unwrap_or_default());
        for dir in self.path_prefix.iter().rev() {
            path = prepend_path(dir, &path);
        }
        cmd.env("PATH", path);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(self) -> Run {
        let mut cmd = self.command();
        let label = format!("xtask {}", self.args.join(" "));
        let started = Instant::now();
        let out = cmd.output().expect("run the xtask binary");
        let run = Run {
            label,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        };
        eprintln!(
            "[{:>6.1}s] {} → {}",
            run.elapsed.as_secs_f64(),
            run.label,
            run.status
        );
        if std::env::var_os("XTASK_TEST_VERBOSE").is_some() {
            eprintln!("{}", run.transcript());
        }
        // Whatever a test expects, the binary never panics.
        assert!(
            !run.stderr.contains("panicked"),
            "xtask panicked:\n{}",
            run.transcript()
        );
        run
    }
}

/// What a run printed, and how it ended. Its full output is printed when the
/// test fails (the run is dropped while panicking), by the `expect_*`s, and
/// always when `XTASK_TEST_VERBOSE` is set in the test's environment.
pub struct Run {
    pub label: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    fn transcript(&self) -> String {
        format!(
            "--- {} ({}, {:.1}s)\n--- stdout:\n{}\n--- stderr:\n{}---",
            self.label,
            self.status,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panic (with the transcript) unless it exited 0.
    pub fn expect_success(&self) -> &Run {
        assert!(
            self.status.success(),
            "expected success:\n{}",
            self.transcript()
        );
        self
    }

    /// Panic unless it failed with exactly this exit code.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.status.code(),
            Some(code),
            "expected exit {code}:\n{}",
            self.transcript()
        );
        self
    }

    /// The stderr lines that start with `error:`.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect()
    }

    /// The run failed (non-zero) with exactly one `error:` line on stderr;
    /// returns it.
    pub fn single_error(&self) -> &str {
        assert!(
            !self.status.success(),
            "expected a failure:\n{}",
            self.transcript()
        );
        let errors = self.error_lines();
        assert_eq!(
            errors.len(),
            1,
            "expected exactly one `error:` line:\n{}",
            self.transcript()
        );
        errors[0]
    }

    /// The last non-empty stdout line, parsed as JSON.
    pub fn last_json(&self) -> serde_json::Value {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("no stdout:\n{}", self.transcript()));
        serde_json::from_str(line).unwrap_or_else(|e| {
            panic!("last stdout line is not JSON ({e}):\n{}", self.transcript())
        })
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.transcript());
        }
    }
}
