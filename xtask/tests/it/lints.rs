//! The repository's YAML and shell scripts, read by the real linters.
//!
//! - yamllint, pinned in `.ci/requirements.txt`, with the project's rules in
//!   `.yamllint`: `yamllint --strict -c .yamllint .` from the workspace root
//!   (warnings fail too), and every YAML file git tracks is among the files
//!   it reads.
//! - shellcheck (Debian's): `shellcheck -x` on every script in `bench/` and
//!   `.ci/`, following what they `source`.
//!
//! Each also runs once on a small bad file, so a clean result means the tool
//! and its rules are really at work.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{TempDir, printed, require_tool, run_captured, run_clean, workspace_root};

/// Every path git tracks under the workspace that matches `patterns`.
fn tracked(patterns: &[&str]) -> BTreeSet<String> {
    let out = run_clean(Command::new("git").args(["ls-files", "--"]).args(patterns));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn yamllint_is_clean_under_the_projects_rules() {
    let Some(yamllint) = require_tool("yamllint", "the repository's YAML") else {
        return;
    };
    run_clean(Command::new(&yamllint).args([
        "--strict",
        "--format",
        "parsable",
        "-c",
        ".yamllint",
        ".",
    ]));

    // The rules must not skip the project's own files (only target/ is ignored).
    let listed = run_clean(Command::new(&yamllint).args(["--list-files", "-c", ".yamllint", "."]));
    let listed: BTreeSet<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_owned())
        .collect();
    let yaml = tracked(&["*.yml", "*.yaml", ".yamllint"]);
    assert!(
        yaml.len() >= 20,
        "git lists the repository's YAML files: {yaml:?}"
    );
    let unread: Vec<&String> = yaml.difference(&listed).collect();
    assert!(
        unread.is_empty(),
        ".yamllint leaves tracked YAML unread: {unread:?}"
    );
}

#[test]
fn yamllint_rules_refuse_what_the_project_forbids() {
    let Some(yamllint) = require_tool("yamllint", "the repository's YAML") else {
        return;
    };
    let dir = TempDir::new("yamllint");
    let file = dir.join("bad.yaml");
    fs::write(
        &file,
        format!(
            "on:\n  push:\nenabled: yes\nwide: \"{}\"\n",
            "a sentence that goes on ".repeat(5)
        ),
    )
    .expect("write bad.yaml");
    let out = run_captured(
        Command::new(&yamllint)
            .args(["--strict", "--format", "parsable", "-c", ".yamllint"])
            .arg(&file),
    );
    let text = printed(&out);
    assert!(!out.status.success(), "yamllint accepted bad YAML:\n{text}");
    assert!(text.contains("(truthy)"), "`yes` is refused:\n{text}");
    assert!(
        text.contains("(line-length)"),
        "a long line is refused:\n{text}"
    );
    // GitHub's `on:` key is allowed: the one truthy finding is `yes`.
    assert_eq!(text.matches("(truthy)").count(), 1, "{text}");
}

/// The shell scripts in `bench/` and `.ci/`: files that start with a shell
/// shebang, or end in `.sh`.
fn shell_scripts() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut scripts = Vec::new();
    for dir in ["bench", ".ci"] {
        let entries = fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("read {dir}/: {e}"));
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let text = fs::read_to_string(&path).unwrap_or_default();
            let first = text.lines().next().unwrap_or("");
            let shebang =
                first.starts_with("#!") && (first.ends_with("bash") || first.ends_with("sh"));
            if shebang || path.extension().is_some_and(|e| e == "sh") {
                scripts.push(path.strip_prefix(&root).unwrap_or(&path).to_path_buf());
            }
        }
    }
    scripts.sort();
    scripts
}

#[test]
fn shellcheck_is_clean_on_bench_and_ci() {
    let Some(shellcheck) = require_tool("shellcheck", "the scripts in bench/ and .ci/") else {
        return;
    };
    let scripts = shell_scripts();
    let names: Vec<String> = scripts.iter().map(|p| p.display().to_string()).collect();
    for expected in [
        ".ci/run",
        ".ci/setup",
        "bench/ci-build-vs-raw",
        "bench/deploy-vs-rollback",
        "bench/lib.sh",
        "bench/zero-downtime",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} is checked: {names:?}"
        );
    }
    run_clean(Command::new(&shellcheck).arg("-x").args(&scripts));
}

#[test]
fn shellcheck_reports_a_bad_script() {
    let Some(shellcheck) = require_tool("shellcheck", "the scripts in bench/ and .ci/") else {
        return;
    };
    let dir = TempDir::new("shellcheck");
    let script = dir.join("bad.sh");
    // No shebang (as bench/lib.sh had), and an unquoted expansion.
    fs::write(&script, "rm -rf $1/build\n").expect("write bad.sh");
    let out = run_captured(Command::new(&shellcheck).arg(Path::new(&script)));
    let text = printed(&out);
    assert!(
        !out.status.success() && text.contains("SC2148") && text.contains("SC2086"),
        "shellcheck must report the missing shebang and the unquoted $1:\n{text}"
    );
}
