//! The operations tools that check the repository's files (zizmor, yamllint,
//! kubernetes-validate, shellcheck, kubectl): found where `.ci/setup` installs
//! the pinned ones (`target/ci-tools/venv/bin`), else on PATH.
//!
//! Under CI a missing tool fails the test: CI installs every one of them, so
//! a skip there would be a check that silently stopped running. On a laptop
//! the test is skipped with a loud message naming `bash .ci/setup`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use super::project::workspace_root;

/// Where `.ci/setup` puts the PyPI tools pinned in `.ci/requirements.txt`.
pub fn ci_tools_bin() -> PathBuf {
    workspace_root().join("target/ci-tools/venv/bin")
}

/// `CI` is set to something other than `false`/`0` (GitHub and `.ci/run`
/// callers set `CI=true`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The tool's path: the pinned install first, then PATH.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let pinned = ci_tools_bin().join(name);
    if pinned.is_file() {
        return Some(pinned);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The tool, or `None` after a loud skip message; under CI, a panic.
/// `check` says what goes unchecked without it.
pub fn require_tool(name: &str, check: &str) -> Option<PathBuf> {
    if let Some(path) = find_tool(name) {
        return Some(path);
    }
    assert!(
        !in_ci(),
        "`{name}` is not installed, so {check} cannot be checked: CI must install it (`bash .ci/setup`)"
    );
    eprintln!(
        "!!!! `{name}` not found (neither in {} nor on PATH): {check} is NOT checked. \
         Run `bash .ci/setup` to install it. !!!!",
        ci_tools_bin().display()
    );
    None
}

/// Runs `command` from the workspace root with no stdin, captured.
pub fn run_captured(command: &mut Command) -> Output {
    command
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

/// What a tool printed, both streams, for a failure message.
pub fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `command` and panics with the tool's own output unless it succeeds.
pub fn run_clean(command: &mut Command) -> Output {
    let output = run_captured(command);
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}",
        output.status,
        printed(&output)
    );
    output
}
