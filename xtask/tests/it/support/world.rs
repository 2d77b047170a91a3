//! The images the whole suite shares: every `ci-build` is a clean build (its
//! own checkout, an empty target dir, all dependencies compiled), so real
//! builds of the api are few and made once, here: two in all, A and its
//! twin (the only property that needs two: a rebuild elsewhere gives the
//! same binary and layer), built at the same time.
//!
//! One repository holds three commits: A and B on `main`, and F on
//! `feature/x`. A is the real api. B, after A, keeps everything but the
//! `api` crate, which is the tiny api (`Project::commit_tiny_api`: std
//! only, it serves `/health` and `/version`): a second main build that
//! runs, deploys and releases, built by the same clean build in seconds.
//! F's tree is all tiny (`Project::commit_tiny_tree`): only ever routed,
//! refused or dry-run. Each is built by `ci-build` from a clone with HEAD
//! on it.
//!
//! A, F and B at once (B in the background), then, once A is pushed,
//! `verify-build` of A from another clone at another path, which must give
//! A's binary and layer again (read by verify_build.rs). A's build also
//! writes the GitHub step outputs, for ci_build.rs. [`world`] returns once
//! A and F are built: B and the verify-build are [`Later`]s, so only a
//! test that reads `b` or `verified_a` waits for them.
//!
//! The engine's tests (deploy, rollback, status, targets) need none of
//! this: they run on stand-in images (`releases.rs`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use serde_json::Value;

use super::docker::{DockerGuard, docker_build_relabelled, docker_ok};
use super::process::{TempDir, path_without};
use super::project::Project;
use super::registry::Registry;

pub struct Built {
    pub sha: String,
    pub digest: String,
    /// Its metadata.json.
    pub metadata: PathBuf,
    pub record: Value,
    /// The last stdout line of its `ci-build --json`.
    pub json_line: Value,
    /// What its `ci-build` printed on stderr.
    pub stderr: String,
    pub build_seconds: f64,
}

/// `verify-build <B> --repository <canonical> --json`, run from a clone of
/// its own (another path than B's build).
pub struct Verified {
    pub clone: Project,
    pub record: Value,
    pub stderr: String,
    pub seconds: f64,
}

pub struct World {
    pub registry: Registry,
    /// The repository with all three commits, on `main` at B (each is
    /// built from a clone of it).
    pub project: Project,
    pub canonical: String,
    pub staging: String,
    pub a: Built,
    /// A again, built at the same time from another clone at another path
    /// into `it/api-twin`: a real rebuild, which must give A's binary and
    /// layer.
    pub a_twin: Later<Built>,
    /// Built in the background: read it as a `Built` (`w.b.sha`).
    pub b: Arc<Later<Built>>,
    pub feature: Built,
    /// A SHA whose tag holds A's bytes: its `/version` reports A, not itself.
    pub wrong_sha: String,
    /// Run in the background once B is pushed.
    pub verified_b: Later<Verified>,
    /// `$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY` of A's build.
    pub github: TempDir,
    /// The clone A was built from (HEAD at A): its build left no worktree.
    pub clone_a: Project,
    _records: Arc<TempDir>,
    _clones: Vec<Project>,
    _images: DockerGuard,
}

/// A value a background thread is making: the first read waits for it
/// (a failure there fails the reading test, with the thread's message).
pub struct Later<T> {
    what: &'static str,
    running: Mutex<Option<JoinHandle<T>>>,
    value: OnceLock<T>,
}

impl<T: Send + 'static> Later<T> {
    fn spawn(what: &'static str, make: impl FnOnce() -> T + Send + 'static) -> Later<T> {
        Later {
            what,
            running: Mutex::new(Some(std::thread::spawn(make))),
            value: OnceLock::new(),
        }
    }
}

impl<T> std::ops::Deref for Later<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.value.get_or_init(|| {
            let handle = self
                .running
                .lock()
                .unwrap_or_else(|e| panic!("{} was poisoned: {e}", self.what))
                .take()
                .unwrap_or_else(|| panic!("{} failed in another test", self.what));
            handle
                .join()
                .unwrap_or_else(|_| panic!("{} failed (its panic is printed above)", self.what))
        })
    }
}

impl World {
    /// `--repository <canonical> --staging-repository <staging>`.
    pub fn repo_flags(&self) -> Vec<String> {
        vec![
            "--repository".to_owned(),
            self.canonical.clone(),
            "--staging-repository".to_owned(),
            self.staging.clone(),
        ]
    }
}

/// The whole suite (a run with no test filter) starts the world's builds
/// at its first test, in the background: A's clean build is the longest
/// chain of the run and must not wait until a test sorted later asks for
/// it. A filtered run builds only what its tests ask for. Called by
/// `Registry::start`, which nearly every engine test calls first.
pub fn start_early() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        if whole_suite(std::env::args().skip(1)) {
            std::thread::spawn(|| {
                world();
            });
        }
    });
}

/// libtest's arguments hold no test filter: flags and their values only.
fn whole_suite(mut args: impl Iterator<Item = String>) -> bool {
    const VALUED: [&str; 7] = [
        "--test-threads",
        "--skip",
        "--format",
        "--logfile",
        "--color",
        "-Z",
        "--shuffle-seed",
    ];
    while let Some(arg) = args.next() {
        if VALUED.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            return false;
        }
    }
    true
}

pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let registry = Registry::start();
        let project = Project::new();
        project.remove_at_exit();
        let records = Arc::new(TempDir::new("records"));
        records.remove_at_exit();
        let github = TempDir::new("github");
        github.remove_at_exit();
        let images = DockerGuard::new();
        images.images_under(&format!("{}/", registry.host()));
        images.clean_at_exit();
        let canonical = registry.repo("it/api");
        let staging = registry.repo("it/api-staging");

        let a_sha = project.sha();
        project.commit_tiny_api("second commit, the tiny api");
        project.checkout_new_branch("feature/x");
        project.commit_tiny_tree("a branch commit (the tiny stand-in api)");
        project.git(&["checkout", "-q", "main"]);
        let clone_a = project.clone_repo("clone-a");
        clone_a.git(&["reset", "-q", "--hard", &a_sha]);
        let clone_b = project.clone_repo("clone-b");
        let clone_f = project.clone_repo("clone-f");
        clone_f.git(&["checkout", "-q", "feature/x"]);
        let clone_v = project.clone_repo("verify-clone");
        let clone_t = project.clone_repo("clone-a-twin");
        clone_t.git(&["reset", "-q", "--hard", &a_sha]);
        for clone in [&clone_a, &clone_b, &clone_f, &clone_v, &clone_t] {
            clone.remove_at_exit();
        }

        let repos = (canonical.clone(), staging.clone());
        // In the background from now, beside A: B (the tiny api) needs
        // nothing of A, and A's twin is A built elsewhere.
        let b = {
            let records = records.clone();
            let repos = repos.clone();
            Arc::new(Later::spawn("the build of B", move || {
                ci_build(&clone_b, &records, &repos, "b", None)
            }))
        };
        let a_twin = {
            let records = records.clone();
            let twins = (
                registry.repo("it/api-twin"),
                registry.repo("it/api-twin-staging"),
            );
            Later::spawn("the twin build of A", move || {
                ci_build(&clone_t, &records, &twins, "a-twin", None)
            })
        };
        let (a, feature) = std::thread::scope(|s| {
            let a = s.spawn(|| ci_build(&clone_a, &records, &repos, "a", Some(&github)));
            let f = s.spawn(|| ci_build(&clone_f, &records, &repos, "feature", None));
            (a.join().expect("build of A"), f.join().expect("build of F"))
        });
        assert_eq!(a.sha, a_sha);

        // Labelled as its tag's commit (so the label read before the target
        // is touched agrees), holding A's binary: only /version tells.
        let wrong_sha = "0badc0de".repeat(5);
        docker_build_relabelled(
            &format!("{canonical}:{}", a.sha),
            &format!("{canonical}:{wrong_sha}"),
            &[("org.opencontainers.image.revision", &wrong_sha)],
        );
        docker_ok(&["push", &format!("{canonical}:{wrong_sha}")]);

        // Once B is pushed: verify-build of it from another clone.
        let verified_b = {
            let (b, canonical) = (b.clone(), canonical.clone());
            Later::spawn("verify-build of B", move || {
                let run = clone_v
                    .xtask_cmd(&["verify-build", &b.sha, "--repository", &canonical, "--json"])
                    .run();
                Verified {
                    record: run.last_json(),
                    stderr: run.stderr.clone(),
                    seconds: run.elapsed.as_secs_f64(),
                    clone: clone_v,
                }
            })
        };
        World {
            registry,
            project,
            canonical,
            staging,
            a,
            a_twin,
            b,
            feature,
            wrong_sha,
            verified_b,
            github,
            clone_a,
            _records: records,
            _clones: vec![clone_f],
            _images: images,
        }
    })
}

/// `ci-build --json` of `checkout`'s HEAD (cosign not on PATH), its record
/// written to `<records>/<label>.json`.
fn ci_build(
    checkout: &Project,
    records: &TempDir,
    (canonical, staging): &(String, String),
    label: &str,
    github: Option<&TempDir>,
) -> Built {
    let out = records.join(format!("{label}.json"));
    let out_str = out.display().to_string();
    let mut cmd = checkout
        .xtask_cmd(&[
            "ci-build",
            "--json",
            "--repository",
            canonical,
            "--staging-repository",
            staging,
            "--out",
            &out_str,
        ])
        .path(path_without(&["cosign"]));
    if let Some(github) = github {
        cmd = cmd
            .env("GITHUB_OUTPUT", github.join("output"))
            .env("GITHUB_STEP_SUMMARY", github.join("summary.md"));
    }
    let run = cmd.run();
    eprintln!(
        "ci-build of {label} (a clean build) took {:.1}s",
        run.elapsed.as_secs_f64()
    );
    run.expect_success();
    let text = std::fs::read_to_string(&out).expect("metadata written");
    let record: Value = serde_json::from_str(&text).expect("metadata is JSON");
    Built {
        sha: record["image_sha"].as_str().expect("image_sha").to_owned(),
        digest: record["image_digest"]
            .as_str()
            .expect("image_digest")
            .to_owned(),
        metadata: out,
        json_line: run.last_json(),
        stderr: run.stderr.clone(),
        record,
        build_seconds: run.elapsed.as_secs_f64(),
    }
}

/// The tiny api's repositories in its registry (see [`tiny_build`]).
pub const CANONICAL: &str = "acme/api";
pub const STAGING: &str = "acme/api-staging";

/// `--repository <registry>/acme/api --staging-repository <registry>/acme/api-staging`.
pub fn repo_flags(host_repo: impl Fn(&str) -> String) -> Vec<String> {
    vec![
        "--repository".to_owned(),
        host_repo(CANONICAL),
        "--staging-repository".to_owned(),
        host_repo(STAGING),
    ]
}

/// One clean build of the tiny api (`Project::tiny`) on `main`, pushed to
/// `acme/api` of its own registry: the existing tag that adoption,
/// signature, push-fault and verify-build tests start from.
pub struct TinyBuild {
    pub registry: Registry,
    pub project: Project,
    pub docker: DockerGuard,
    /// metadata.json as the first (pushing) build wrote it.
    pub record: Value,
}

impl TinyBuild {
    pub fn flags(&self) -> Vec<String> {
        repo_flags(|p| self.registry.repo(p))
    }

    fn field(&self, name: &str) -> &str {
        self.record[name]
            .as_str()
            .unwrap_or_else(|| panic!("`{name}` is not a string in {}", self.record))
    }

    pub fn digest(&self) -> &str {
        self.field("image_digest")
    }

    pub fn sha(&self) -> &str {
        self.field("image_sha")
    }

    pub fn binary_sha256(&self) -> &str {
        self.field("binary_sha256")
    }

    /// `<registry>/acme/api:<sha>`, also tagged in the local engine.
    pub fn tag(&self) -> String {
        format!("{}:{}", self.registry.repo(CANONICAL), self.sha())
    }
}

pub fn tiny_build() -> &'static TinyBuild {
    static BUILD: OnceLock<TinyBuild> = OnceLock::new();
    BUILD.get_or_init(|| {
        let registry = Registry::start();
        let project = Project::tiny();
        project.remove_at_exit();
        let docker = DockerGuard::new();
        docker.images_under(&format!("{}/", registry.host()));
        docker.clean_at_exit();
        let mut args = vec!["ci-build".to_owned()];
        args.extend(repo_flags(|p| registry.repo(p)));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = project
            .xtask_cmd(&args)
            .path(path_without(&["cosign"]))
            .run();
        eprintln!(
            "ci-build of the tiny api took {:.1}s",
            run.elapsed.as_secs_f64()
        );
        run.expect_success();
        let text = std::fs::read_to_string(project.metadata_path()).expect("metadata written");
        let record: Value = serde_json::from_str(&text).expect("metadata is JSON");
        TinyBuild {
            registry,
            project,
            docker,
            record,
        }
    })
}
