//! The GitHub release, with the real `gh` CLI (preinstalled on GitHub's
//! runners; it reads `GH_TOKEN` and, in Actions, `GITHUB_REPOSITORY`):
//! `gh release create <tag> --verify-tag --title <tag> --notes-file <notes>
//! [--prerelease] <files>…`. An existing release is left as it is.

use std::path::Path;

use anyhow::bail;

use crate::model::version::Version;
use crate::support::cmd::Cmd;

pub fn view_cmd(version: &Version) -> Cmd {
    Cmd::new("gh").args(["release", "view", &version.tag(), "--json", "tagName"])
}

/// `--verify-tag`: gh refuses to create the tag itself (it must be the
/// pushed annotated one).
pub fn create_cmd(version: &Version, notes: &Path, files: &[&Path]) -> Cmd {
    let tag = version.tag();
    let mut cmd = Cmd::new("gh").args(["release", "create", &tag, "--verify-tag"]);
    cmd = cmd
        .args(["--title", &tag])
        .args(["--notes-file", &notes.display().to_string()]);
    if version.is_prerelease() {
        cmd = cmd.arg("--prerelease");
    }
    cmd.arg("--")
        .args(files.iter().map(|f| f.display().to_string()))
}

/// Whether the release was created by this run (`false`: it existed).
/// gh's words for a missing one are `release not found` (cli/cli
/// `pkg/cmd/release/shared/fetch.go`).
pub fn publish(version: &Version, notes: &Path, files: &[&Path]) -> anyhow::Result<bool> {
    let view = view_cmd(version).output()?;
    if view.status.success() {
        return Ok(false);
    }
    let said = view.last_words();
    if !said.contains("release not found") {
        bail!(
            "`gh release view {}` failed: {said} (is GH_TOKEN set, and gh run inside the repository?)",
            version.tag()
        );
    }
    create_cmd(version, notes, files).run()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_attaches_the_files_with_the_notes_and_never_makes_a_tag() {
        let v: Version = "v1.2.3-rc.1".parse().expect("version");
        let cmd = create_cmd(
            &v,
            Path::new("d/notes.md"),
            &[Path::new("d/a"), Path::new("d/SHA256SUMS")],
        );
        assert_eq!(
            cmd.argv(),
            [
                "release",
                "create",
                "v1.2.3-rc.1",
                "--verify-tag",
                "--title",
                "v1.2.3-rc.1",
                "--notes-file",
                "d/notes.md",
                "--prerelease",
                "--",
                "d/a",
                "d/SHA256SUMS"
            ]
        );
        let v: Version = "v1.2.3".parse().expect("version");
        assert!(
            !create_cmd(&v, Path::new("n"), &[])
                .argv()
                .contains(&"--prerelease")
        );
    }
}
