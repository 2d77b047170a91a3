//! What cargo says about the api package: its version and repository, read
//! with `cargo metadata` so that `version.workspace = true` and
//! `repository.workspace = true` resolve as cargo resolves them.

use std::path::Path;

use anyhow::Context;

use crate::support::cmd::Cmd;

/// The package whose image is built.
const PACKAGE: &str = "api";

#[derive(Debug, PartialEq, serde::Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub repository: Option<String>,
}

#[derive(serde::Deserialize)]
struct Metadata {
    packages: Vec<Package>,
}

/// `cargo metadata --format-version 1 --no-deps` of the workspace at `root`
/// with the caller's cargo (the unit tests'): no network, no lock file change.
#[cfg(test)]
pub fn metadata_cmd(root: &Path) -> Cmd {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    Cmd::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml").display().to_string())
}

/// The same, asked of a clean build's sealed cargo (crate::build::compile):
/// the pinned toolchain, run from `/`, nothing of the caller's environment.
pub fn sealed_cmd(
    layout: &crate::build::worktree::Layout,
    toolchain: &crate::build::compile::Toolchain,
    config: &[String],
) -> Cmd {
    crate::build::compile::cargo(layout, toolchain, config, "metadata").args([
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ])
}

/// The api package as cargo resolves it.
#[cfg(test)]
pub fn api(root: &Path) -> anyhow::Result<Package> {
    api_with(&metadata_cmd(root), root)
}

/// The api package, as `cmd` (a metadata command of the workspace at
/// `root`) reports it.
pub fn api_with(cmd: &Cmd, root: &Path) -> anyhow::Result<Package> {
    let json = cmd.read()?;
    let metadata: Metadata = serde_json::from_str(&json)
        .with_context(|| format!("`{cmd}` printed something that is not cargo's metadata"))?;
    metadata
        .packages
        .into_iter()
        .find(|p| p.name == PACKAGE)
        .with_context(|| {
            format!(
                "the workspace at {} has no `{PACKAGE}` package",
                root.display()
            )
        })
}

/// The source label: the GitHub repository in CI, else the api package's
/// `repository` (empty when it has none).
pub fn source_url(api: &Package) -> String {
    if let (Ok(server), Ok(repo)) = (
        std::env::var("GITHUB_SERVER_URL"),
        std::env::var("GITHUB_REPOSITORY"),
    ) {
        return format!("{server}/{repo}");
    }
    api.repository.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(name: &str, root_manifest: &str, api_manifest: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("xtask-metadata-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("api/src")).expect("dirs");
        std::fs::write(dir.join("Cargo.toml"), root_manifest).expect("write");
        std::fs::write(dir.join("api/Cargo.toml"), api_manifest).expect("write");
        std::fs::write(dir.join("api/src/main.rs"), "fn main() {}\n").expect("write");
        dir
    }

    #[test]
    fn version_and_repository_inherited_from_the_workspace() {
        let dir = workspace(
            "inherited",
            "[workspace]\nmembers = [\"api\"]\nresolver = \"3\"\n\n[workspace.package]\nversion = \"2.7.1\"\nrepository = \"https://example.org/team/shipyard\"\n",
            "[package]\nname = \"api\"\nversion.workspace = true\nrepository.workspace = true\nedition = \"2024\"\n",
        );
        let api = api(&dir).expect("metadata");
        assert_eq!(api.version, "2.7.1");
        assert_eq!(
            api.repository.as_deref(),
            Some("https://example.org/team/shipyard")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_version_of_its_own_and_no_repository() {
        let dir = workspace(
            "own",
            "[workspace]\nmembers = [\"api\"]\nresolver = \"3\"\n",
            "[package]\nname = \"api\"\nversion = \"0.3.0-rc.1\"\nedition = \"2024\"\n",
        );
        let api = api(&dir).expect("metadata");
        assert_eq!((api.version.as_str(), api.repository), ("0.3.0-rc.1", None));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_broken_manifest_is_cargos_own_error_on_one_line() {
        let dir = workspace(
            "broken",
            "[workspace]\nmembers = [\"api\"]\n",
            "[package]\nname = \"api\"\nversion.workspace = true\nedition = \"2024\"\n",
        );
        let err = api(&dir).expect_err("no workspace version").to_string();
        assert!(
            err.contains("failed (exit 101)")
                && err.contains("`workspace.package.version` was not defined"),
            "{err}"
        );
        assert!(!err.contains('\n'), "one line: {err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn this_workspace_has_an_api_with_a_version() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let api = api(root).expect("metadata");
        assert_eq!(api.name, "api");
        assert!(!api.version.is_empty());
    }
}
