//! A SLSA v1 provenance predicate (slsa.dev/spec/v1.0/provenance) for the
//! pushed image, attested with `cosign attest --type slsaprovenance1`:
//! - builder id: the workflow that built it (`GITHUB_WORKFLOW_REF`), or
//!   `cargo xtask ci-build` on a named host outside CI;
//! - external parameters: repository, ref, sha;
//! - resolved dependencies: the commit, `Cargo.lock`, the toolchain
//!   (`rustc --version`), `deploy/Dockerfile` and the api binary, by sha256;
//!   `Cargo.lock` and the Dockerfile as the commit holds them (the bytes the
//!   build read), never the work tree's;
//! - internal parameters: the platform, and `seal`: how the build was
//!   sealed from the machine (checkout method, cwd, absolute cargo, rustc
//!   and linker, the whole PATH, the cargo config files read, the names of
//!   the only variables the compile saw);
//! - invocation id: `GITHUB_RUN_ID` (and attempt).

use serde_json::{Value, json};

use crate::model::image::ImageRef;
use crate::support::project::Project;

pub const BUILD_TYPE: &str = "https://github.com/example/shipyard/docs/distribution.md#provenance";

pub struct Inputs<'a> {
    pub image: &'a ImageRef,
    pub branch: Option<&'a str>,
    pub built: &'a Built,
    pub started_on: &'a str,
    pub finished_on: &'a str,
}

/// What the clean build of the commit produced (crate::build::compile).
pub struct Built {
    /// sha256 of `/api` as compiled.
    pub binary_sha256: String,
    /// `rustc --version` of the commit's pinned toolchain.
    pub toolchain: String,
    /// sha256 of the commit's `Cargo.lock` and `deploy/Dockerfile`.
    pub lock_sha256: String,
    pub dockerfile_sha256: String,
    /// Every crate compiled (the SBOM's content).
    pub crates: Vec<crate::build::resolve::Crate>,
    pub seal: crate::build::compile::Seal,
}

/// `<dir>/sha256-<hex>.provenance.json`: one file per image digest, so a
/// second build of the same SHA (another repository, another digest) never
/// overwrites the file the first build's record names.
pub fn path(dir: &std::path::Path, digest: &crate::model::digest::Digest) -> std::path::PathBuf {
    dir.join(format!(
        "sha256-{}.provenance.json",
        super::sbom::hex(digest)
    ))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `https://github.com/OWNER/REPO` in CI, else the workspace's `repository`.
fn repository(project: &Project) -> String {
    if let (Some(server), Some(repo)) = (env("GITHUB_SERVER_URL"), env("GITHUB_REPOSITORY")) {
        return format!("{server}/{repo}");
    }
    std::fs::read_to_string(project.root.join("Cargo.toml"))
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                Some(
                    l.strip_prefix("repository = \"")?
                        .strip_suffix('"')?
                        .to_owned(),
                )
            })
        })
        .unwrap_or_else(|| format!("file://{}", project.root.display()))
}

pub fn predicate(project: &Project, inputs: &Inputs) -> anyhow::Result<Value> {
    let sums = [&inputs.built.lock_sha256, &inputs.built.dockerfile_sha256];
    let rustc = &inputs.built.toolchain;
    let repo = repository(project);
    let sha = inputs.image.sha.as_str();
    let git_ref = env("GITHUB_REF").unwrap_or_else(|| match inputs.branch {
        Some(b) => format!("refs/heads/{b}"),
        None => "HEAD".to_owned(),
    });
    let builder = match (env("GITHUB_SERVER_URL"), env("GITHUB_WORKFLOW_REF")) {
        (Some(server), Some(workflow)) => format!("{server}/{workflow}"),
        _ => format!(
            "cargo xtask ci-build (local, not CI) on {}",
            env("HOSTNAME").unwrap_or_else(|| "an unnamed host".to_owned())
        ),
    };
    let invocation = match (env("GITHUB_RUN_ID"), env("GITHUB_RUN_ATTEMPT")) {
        (Some(id), Some(attempt)) => format!("{id}/{attempt}"),
        (Some(id), None) => id,
        _ => format!("local-{}", inputs.started_on),
    };
    Ok(json!({
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"repository": repo, "ref": git_ref, "sha": sha},
            "internalParameters": {"platform": "linux/amd64", "seal": inputs.built.seal},
            "resolvedDependencies": [
                {"uri": format!("git+{repo}@{git_ref}"), "digest": {"gitCommit": sha}},
                {"name": "Cargo.lock", "digest": {"sha256": sums[0]}},
                {"name": "rustc", "annotations": {"version": rustc}},
                {"name": "deploy/Dockerfile", "digest": {"sha256": sums[1]}},
                {"name": "api", "uri": "file:/api", "digest": {"sha256": inputs.built.binary_sha256}},
            ]
        },
        "runDetails": {
            "builder": {"id": builder},
            "metadata": {
                "invocationId": invocation,
                "startedOn": inputs.started_on,
                "finishedOn": inputs.finished_on,
            }
        }
    }))
}
