//! Keeps `.github/workflows/` thin and safe.
//!
//! Every workflow file is parsed with yaml-rust2 and checked by small rules,
//! each a function from a parsed workflow (or its text) to a list of
//! violations. Each rule has a unit test on a bad snippet, so it is shown to
//! fail, and one on a good snippet, so it is shown not to fail on everything.
//!
//! The rules:
//! - `direct_tool_calls`: a `run:` script names `docker`, `cosign`,
//!   `provider-services` or `kubectl` as a word. Those tools belong to
//!   `cargo xtask`, which prints each command it runs. Deliberately strict:
//!   any standalone word counts, not only a command position, so that
//!   `bash -c "docker push …"` or `x=$(kubectl …)` cannot slip through.
//!   `docker-registry` or `dockerfile` are other words and pass.
//! - `thin_run_steps`: a `run:` script does not call `cargo xtask` (cargo's
//!   own lock-file flags may come between: `cargo --locked xtask`), the built
//!   binary `./target/debug/xtask`, the build of it (exactly
//!   `cargo build --locked -p xtask`) or the repository's `bash .ci/run`.
//!   Anything of substance lives in the xtask.
//! - `compiles_with_secrets`: a `run:` that compiles (any `cargo` call, or
//!   `bash .ci/run`) where a secret can be read: the step's or the job's
//!   `env:` holds `secrets.*` or `github.token`, or an earlier step of the
//!   job logged in to a registry (docker/login-action leaves the token in
//!   ~/.docker/config.json). Build scripts and proc macros of every
//!   dependency run during a compile; they must not see credentials. Jobs
//!   that need secrets build the xtask first, then run the binary.
//! - `cached_targets_with_credentials`: a job that holds credentials (as
//!   above) restores `target/` through Swatinem/rust-cache without
//!   `cache-targets: "false"`: a poisoned cache would hand it an xtask (or
//!   api) binary nobody built from this commit.
//! - `unpinned_uses`: a `uses:` is not pinned by a full 40-hex commit SHA
//!   (`./` local actions excepted; `docker://` images need `@sha256:`).
//! - `pins_without_version_comment`: a SHA pin has no `# vX.Y.Z` comment,
//!   so a reviewer cannot tell what it is.
//! - `missing_workflow_permissions`: no top-level `permissions`, or one that
//!   grants any `write` (writes belong to the one job that needs them).
//! - `jobs_without_permissions`: a job has no `permissions` of its own.
//!   Decision: every job states its token scopes even under a top-level
//!   `permissions: {}`, so a job's access is read where the job is, and a new
//!   job starts with nothing rather than with whatever the workflow grants.
//! - `expressions_in_run`: any `${{ … }}` inside a `run:` script. Inputs,
//!   `github.event.*`, branch names and step outputs reach the shell through
//!   `env:` only; interpolated, they are script injection. Stricter than
//!   forbidding `inputs.*` and `github.event.*` alone: the rule has no list
//!   of "safe" contexts to get wrong.
//! - `dangerous_triggers`: `pull_request_target` (a fork's code with the
//!   base repository's token) and `workflow_run` (this repository's secrets
//!   on a run that another event raised) are not used. The staging deploy is
//!   a job of api-build's own run instead (`workflow_call`).
//!
//! Then zizmor (`zizmor --offline`, pinned in `.ci/requirements.txt`) audits
//! the same files with its own rules and must find nothing; an inline
//! `# zizmor: ignore[...]` carries its reason beside it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

use crate::support::{TempDir, printed, require_tool, run_captured, run_clean};

/// Tools that only `cargo xtask` may run.
const XTASK_ONLY_TOOLS: [&str; 4] = ["docker", "cosign", "provider-services", "kubectl"];

fn workflows_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.github/workflows")
}

fn workflow_files() -> Vec<PathBuf> {
    let dir = workflows_dir();
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")))
        .collect();
    files.sort();
    files
}

fn parse(text: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("invalid YAML: {e}"));
    assert_eq!(docs.len(), 1, "a workflow is exactly one YAML document");
    docs.remove(0)
}

/// `(job id, job)` for every job, in file order.
fn jobs(workflow: &Yaml) -> Vec<(String, &Yaml)> {
    workflow["jobs"]
        .as_hash()
        .map(|jobs| {
            jobs.iter()
                .map(|(id, job)| (id.as_str().unwrap_or("?").to_owned(), job))
                .collect()
        })
        .unwrap_or_default()
}

/// `(where, step)` for every step of every job.
fn steps(workflow: &Yaml) -> Vec<(String, &Yaml)> {
    let mut out = Vec::new();
    for (job_id, job) in jobs(workflow) {
        for (index, step) in job["steps"].as_vec().into_iter().flatten().enumerate() {
            let label = step["name"]
                .as_str()
                .or_else(|| step["id"].as_str())
                .or_else(|| step["uses"].as_str())
                .unwrap_or("");
            out.push((format!("jobs.{job_id}.steps[{index}] {label}"), step));
        }
    }
    out
}

/// `(where, script)` for every `run:` step.
fn run_scripts(workflow: &Yaml) -> Vec<(String, &str)> {
    steps(workflow)
        .into_iter()
        .filter_map(|(place, step)| step["run"].as_str().map(|script| (place, script)))
        .collect()
}

/// The words of a shell script with comments removed: split on whitespace,
/// quotes and shell punctuation, but not on `-`, `.`, `/` or `_`, so that
/// `docker-registry` and `dockerfile` stay whole words.
fn shell_words(script: &str) -> Vec<&str> {
    let mut words = Vec::new();
    for line in script.lines() {
        let code = strip_comment(line);
        words.extend(
            code.split(|c: char| c.is_whitespace() || "\"'`;|&()<>{}$=,".contains(c))
                .filter(|w| !w.is_empty()),
        );
    }
    words
}

/// A `#` at the start of a word begins a comment (`${#array[@]}` does not).
fn strip_comment(line: &str) -> &str {
    let mut previous = ' ';
    for (index, c) in line.char_indices() {
        if c == '#' && previous.is_whitespace() {
            return &line[..index];
        }
        previous = c;
    }
    line
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

// ---------------------------------------------------------------- the rules

fn direct_tool_calls(workflow: &Yaml) -> Vec<String> {
    let mut violations = Vec::new();
    for (place, script) in run_scripts(workflow) {
        for word in shell_words(script) {
            let program = word.rsplit('/').next().unwrap_or(word);
            if XTASK_ONLY_TOOLS.contains(&program) {
                violations.push(format!(
                    "{place}: `run:` calls `{program}` directly; move it into a `cargo xtask` task"
                ));
            }
        }
    }
    violations
}

fn thin_run_steps(workflow: &Yaml) -> Vec<String> {
    run_scripts(workflow)
        .into_iter()
        .filter(|(_, script)| {
            let words = shell_words(script);
            let xtask = words.iter().enumerate().any(|(i, w)| {
                *w == "cargo"
                    && words[i + 1..]
                        .iter()
                        .find(|w| !matches!(**w, "--locked" | "--frozen" | "--offline"))
                        == Some(&"xtask")
            });
            let binary = words.contains(&XTASK_BINARY);
            let build = script.trim() == XTASK_BUILD;
            let ci_script = words.windows(2).any(|w| w == ["bash", ".ci/run"]);
            !(xtask || binary || build || ci_script)
        })
        .map(|(place, _)| {
            format!("{place}: `run:` does not call `cargo xtask` or {XTASK_BINARY}; workflows stay thin, logic lives in xtask/")
        })
        .collect()
}

fn unpinned_uses(workflow: &Yaml) -> Vec<String> {
    let mut uses: Vec<(String, &str)> = Vec::new();
    for (job_id, job) in jobs(workflow) {
        // A job-level `uses:` calls a reusable workflow: same rule.
        if let Some(target) = job["uses"].as_str() {
            uses.push((format!("jobs.{job_id}"), target));
        }
    }
    for (place, step) in steps(workflow) {
        if let Some(target) = step["uses"].as_str() {
            uses.push((place, target));
        }
    }
    uses.into_iter()
        .filter(|(_, target)| !is_pinned(target))
        .map(|(place, target)| {
            format!("{place}: `uses: {target}` is not pinned by a full 40-character commit SHA")
        })
        .collect()
}

fn is_pinned(target: &str) -> bool {
    if target.starts_with("./") {
        return true;
    }
    if let Some(image) = target.strip_prefix("docker://") {
        return image
            .rsplit_once("@sha256:")
            .is_some_and(|(_, hex)| is_lower_hex(hex, 64));
    }
    target
        .rsplit_once('@')
        .is_some_and(|(_, reference)| is_lower_hex(reference, 40))
}

/// Works on the text: YAML parsers drop comments.
fn pins_without_version_comment(text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let trimmed = line.trim_start().trim_start_matches("- ").trim_start();
            let value = trimmed.strip_prefix("uses:")?.trim();
            let (target, comment) = match value.split_once('#') {
                Some((target, comment)) => (target.trim(), Some(comment.trim())),
                None => (value, None),
            };
            let pinned_by_sha = target
                .rsplit_once('@')
                .is_some_and(|(_, reference)| is_lower_hex(reference, 40));
            let has_version = comment.is_some_and(|c| c.chars().any(|ch| ch.is_ascii_digit()));
            (pinned_by_sha && !has_version).then(|| {
                format!(
                    "line {}: `uses: {target}` needs the release it pins in a comment, e.g. `# v4.2.2`",
                    index + 1
                )
            })
        })
        .collect()
}

fn missing_workflow_permissions(workflow: &Yaml) -> Vec<String> {
    let permissions = &workflow["permissions"];
    if permissions.is_badvalue() {
        return vec![
            "no top-level `permissions:`; use `permissions: {}` (or `contents: read`) and grant per job"
                .to_owned(),
        ];
    }
    let writes = granted_writes(permissions);
    if writes.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "top-level `permissions` grants {}; grant writes in the job that needs them",
            writes.join(", ")
        )]
    }
}

/// Scopes a `permissions` value grants `write` to (`write-all` counts).
fn granted_writes(permissions: &Yaml) -> Vec<String> {
    match permissions {
        Yaml::String(all) if all == "write-all" => vec!["write-all".to_owned()],
        Yaml::Hash(scopes) => scopes
            .iter()
            .filter(|(_, level)| level.as_str() == Some("write"))
            .map(|(scope, _)| format!("{}: write", scope.as_str().unwrap_or("?")))
            .collect(),
        _ => Vec::new(),
    }
}

fn jobs_without_permissions(workflow: &Yaml) -> Vec<String> {
    jobs(workflow)
        .into_iter()
        .filter(|(_, job)| job["permissions"].is_badvalue())
        .map(|(id, _)| {
            format!("jobs.{id}: no `permissions:`; state the token scopes this job needs")
        })
        .collect()
}

fn expressions_in_run(workflow: &Yaml) -> Vec<String> {
    let mut violations = Vec::new();
    for (place, script) in run_scripts(workflow) {
        let mut rest = script;
        while let Some(start) = rest.find("${{") {
            let after = &rest[start..];
            let end = after.find("}}").map_or(after.len(), |e| e + 2);
            violations.push(format!(
                "{place}: `{}` is interpolated into the shell script; pass it through `env:` and use \"$NAME\"",
                &after[..end]
            ));
            rest = &after[end..];
        }
    }
    violations
}

fn dangerous_triggers(workflow: &Yaml) -> Vec<String> {
    // yaml-rust2 reads YAML 1.2: `on` is a string key, not `true`.
    let on = &workflow["on"];
    let triggers: Vec<&str> = match on {
        Yaml::String(one) => vec![one.as_str()],
        Yaml::Array(many) => many.iter().filter_map(Yaml::as_str).collect(),
        Yaml::Hash(map) => map.keys().filter_map(Yaml::as_str).collect(),
        _ => Vec::new(),
    };
    triggers
        .into_iter()
        .filter_map(|t| match t {
            "pull_request_target" => Some(format!(
                "`on: {t}` runs a fork's code with this repository's token; use `pull_request`"
            )),
            "workflow_run" => Some(format!(
                "`on: {t}` runs with this repository's secrets for a run another event raised; \
                 call the workflow from that run's job instead (`workflow_call`)"
            )),
            _ => None,
        })
        .collect()
}

/// Every rule over one workflow's text.
fn violations(text: &str) -> Vec<String> {
    let workflow = parse(text);
    let rules: [fn(&Yaml) -> Vec<String>; 9] = [
        direct_tool_calls,
        thin_run_steps,
        compiles_with_secrets,
        cached_targets_with_credentials,
        unpinned_uses,
        missing_workflow_permissions,
        jobs_without_permissions,
        expressions_in_run,
        dangerous_triggers,
    ];
    let mut found: Vec<String> = rules.iter().flat_map(|rule| rule(&workflow)).collect();
    found.extend(pins_without_version_comment(text));
    found
}

// ------------------------------------------------- the repository's workflows

#[test]
fn every_workflow_follows_every_rule() {
    let files = workflow_files();
    assert!(
        !files.is_empty(),
        "no workflow found in {}",
        workflows_dir().display()
    );
    let mut report = Vec::new();
    for file in &files {
        let text =
            fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        report.extend(
            violations(&text)
                .into_iter()
                .map(|v| format!("{name}: {v}")),
        );
    }
    assert!(
        report.is_empty(),
        "workflow rules broken:\n  {}",
        report.join("\n  ")
    );
}

#[test]
fn the_release_workflows_exist() {
    let names: Vec<String> = workflow_files()
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect();
    for expected in [
        "ci.yml",
        "api-build.yml",
        "api-deploy.yml",
        "api-rollback.yml",
        "api-verify.yml",
        "release.yml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "missing .github/workflows/{expected}: {names:?}"
        );
    }
}

fn load(name: &str) -> Yaml {
    let path = workflows_dir().join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    parse(&text)
}

#[test]
fn deploy_and_rollback_queue_per_environment_and_never_cancel() {
    for name in ["api-deploy.yml", "api-rollback.yml"] {
        let workflow = load(name);
        let concurrency = &workflow["concurrency"];
        assert_eq!(
            concurrency["group"].as_str(),
            Some("deploy-${{ inputs.environment || 'staging' }}"),
            "{name}: deploy and rollback must share one group per environment"
        );
        assert_eq!(
            concurrency["cancel-in-progress"].as_bool(),
            Some(false),
            "{name}"
        );
        for (id, job) in jobs(&workflow) {
            assert!(
                job["environment"]
                    .as_str()
                    .is_some_and(|e| e.contains("inputs.environment")),
                "{name}: jobs.{id} must run in the chosen GitHub environment (reviewers gate production)"
            );
        }
    }
}

#[test]
fn only_the_release_job_can_write_contents_and_only_on_version_tags() {
    let mut writers = Vec::new();
    for file in workflow_files() {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_owned();
        let text =
            fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        for (id, job) in jobs(&parse(&text)) {
            if granted_writes(&job["permissions"])
                .iter()
                .any(|w| w == "contents: write")
            {
                writers.push(format!("{name}:{id}"));
            }
        }
    }
    assert_eq!(writers, ["release.yml:release"]);
    let release = load("release.yml");
    let tags: Vec<&str> = release["on"]["push"]["tags"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(tags, ["v*.*.*"]);
    assert!(release["on"]["push"]["branches"].is_badvalue(), "tags only");
    let scripts: Vec<&str> = release["jobs"]["release"]["steps"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(|step| step["run"].as_str())
        .collect();
    // Built in a step with no secret, then run with the token.
    assert_eq!(scripts.len(), 2, "{scripts:?}");
    assert!(scripts[0].trim() == XTASK_BUILD, "{}", scripts[0]);
    assert!(
        scripts[1].contains(
            "./target/debug/xtask release \"$GITHUB_REF_NAME\" --sha \"$GITHUB_SHA\" --publish"
        ),
        "{}",
        scripts[1]
    );
    let steps = release["jobs"]["release"]["steps"]
        .as_vec()
        .cloned()
        .unwrap_or_default();
    let build = steps
        .iter()
        .position(|s| s["run"].as_str() == Some(scripts[0]))
        .expect("build step");
    let login = steps
        .iter()
        .position(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("docker/login-action@"))
        })
        .expect("login step");
    assert!(
        build < login,
        "xtask is compiled before any credential is on the runner"
    );
    assert!(
        steps[build]["env"].is_badvalue(),
        "no env (no secret) on the build step"
    );
}

#[test]
fn only_the_build_job_can_push_or_mint_oidc_tokens() {
    let mut pushers = Vec::new();
    let mut signers = Vec::new();
    for file in workflow_files() {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_owned();
        let text =
            fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let workflow = parse(&text);
        for (id, job) in jobs(&workflow) {
            let writes = granted_writes(&job["permissions"]);
            if writes.iter().any(|w| w == "packages: write") {
                pushers.push(format!("{name}:{id}"));
            }
            // Keyless signing in ci-build is the one use of an OIDC token.
            if writes.iter().any(|w| w == "id-token: write") {
                signers.push(format!("{name}:{id}"));
            }
        }
    }
    // The release job pushes a tag of a digest api-build pushed (no image).
    assert_eq!(pushers, ["api-build.yml:build", "release.yml:release"]);
    assert_eq!(signers, ["api-build.yml:build"]);
}

/// The one expression that keeps production to main, on every job that can
/// release to it.
const PRODUCTION_ONLY_FROM_MAIN: &str =
    "inputs.environment != 'production' || github.ref == 'refs/heads/main'";

#[test]
fn staging_deploys_from_the_build_run_after_a_green_main_build() {
    let build = load("api-build.yml");
    let caller = &build["jobs"]["deploy-staging"];
    assert_eq!(
        caller["uses"].as_str(),
        Some("./.github/workflows/api-deploy.yml"),
        "api-build.yml: jobs.deploy-staging calls api-deploy.yml of the same commit"
    );
    let needs: Vec<&str> = caller["needs"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .collect();
    assert_eq!(
        needs,
        ["build", "scan"],
        "deploy only a built and scanned image"
    );
    assert_eq!(
        caller["if"].as_str(),
        Some("github.event_name == 'push' && github.ref == 'refs/heads/main'"),
        "only a push to main deploys"
    );
    let with = &caller["with"];
    assert_eq!(with["environment"].as_str(), Some("staging"));
    assert_eq!(with["image_sha"].as_str(), Some("${{ github.sha }}"));
    // Pinned to the digest the build pushed: the artifact it uploaded.
    let uploaded = build["jobs"]["build"]["steps"]
        .as_vec()
        .into_iter()
        .flatten()
        .find(|step| {
            step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
        })
        .and_then(|step| step["with"]["name"].as_str())
        .expect("the build job uploads its metadata artifact");
    assert_eq!(with["metadata_artifact"].as_str(), Some(uploaded));

    let deploy = load("api-deploy.yml");
    let called = &deploy["on"]["workflow_call"]["inputs"];
    for input in ["image_sha", "environment", "metadata_artifact"] {
        assert!(
            !called[input].is_badvalue(),
            "api-deploy.yml: workflow_call input {input}"
        );
    }
    let downloads: Vec<&Yaml> = deploy["jobs"]["deploy"]["steps"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter(|step| {
            step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/download-artifact@"))
        })
        .collect();
    assert_eq!(downloads.len(), 1, "api-deploy.yml downloads the metadata");
    assert_eq!(
        downloads[0]["with"]["name"].as_str(),
        Some("${{ inputs.metadata_artifact }}")
    );
}

#[test]
fn the_deploy_checks_out_the_deployed_sha() {
    let deploy = load("api-deploy.yml");
    let job = &deploy["jobs"]["deploy"];
    let checkout = job["steps"]
        .as_vec()
        .into_iter()
        .flatten()
        .find(|step| {
            step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/checkout@"))
        })
        .expect("api-deploy.yml checks out the repository");
    // The manifests, release config and xtask of the commit being deployed,
    // not of the branch the workflow was started from.
    assert_eq!(
        checkout["with"]["ref"].as_str(),
        Some("${{ inputs.image_sha }}")
    );
    assert_eq!(
        job["env"]["IMAGE_SHA"].as_str(),
        Some("${{ inputs.image_sha }}"),
        "the SHA checked out is the SHA deployed"
    );
}

#[test]
fn production_is_deployed_and_rolled_back_only_from_main() {
    for (name, job_id) in [
        ("api-deploy.yml", "deploy"),
        ("api-rollback.yml", "rollback"),
    ] {
        let workflow = load(name);
        assert_eq!(
            workflow["jobs"][job_id]["if"].as_str(),
            Some(PRODUCTION_ONLY_FROM_MAIN),
            "{name}: jobs.{job_id}"
        );
    }
}

#[test]
fn zizmor_finds_nothing_in_the_workflows() {
    let Some(zizmor) = require_tool("zizmor", "the workflows' security audit") else {
        return;
    };
    run_clean(
        Command::new(zizmor)
            .args(["--offline", "--no-progress", "--color", "never"])
            .arg(workflows_dir()),
    );
}

#[test]
fn zizmor_reports_a_workflow_run_deploy() {
    let Some(zizmor) = require_tool("zizmor", "the workflows' security audit") else {
        return;
    };
    // The deploy trigger this repository used to have, alone in a repository.
    let repo = TempDir::new("zizmor");
    let dir = repo.join(".github/workflows");
    fs::create_dir_all(&dir).expect("create .github/workflows");
    fs::write(
        dir.join("deploy.yml"),
        "name: deploy\non:\n  workflow_run:\n    workflows: [build]\n    types: [completed]\n\
         permissions: {}\njobs:\n  deploy:\n    runs-on: ubuntu-24.04\n    permissions: {}\n    \
         steps:\n      - run: cargo xtask deploy\n",
    )
    .expect("write deploy.yml");
    let output = run_captured(
        Command::new(zizmor)
            .args(["--offline", "--no-progress", "--color", "never"])
            .arg(&dir),
    );
    let text = printed(&output);
    assert!(
        !output.status.success() && text.contains("dangerous-triggers"),
        "zizmor must report workflow_run ({}):\n{text}",
        output.status
    );
}

// ------------------------------------------------ each rule fails when it must

const GOOD: &str = r#"
name: good
on: [push]
permissions: {}
jobs:
  build:
    runs-on: ubuntu-24.04
    permissions:
      contents: read
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
      - uses: ./.github/actions/local
      - name: build
        env:
          SHA: ${{ inputs.image_sha }}
        run: |
          # a comment may say docker
          cargo xtask ci-build --dockerfile deploy/Dockerfile "$SHA"
          echo "${#SHA}"
      - run: bash .ci/run # installs docker-registry
"#;

#[test]
fn a_good_workflow_passes_every_rule() {
    assert_eq!(violations(GOOD), Vec::<String>::new());
}

fn job_with_run(script: &str) -> String {
    format!(
        "on: push\npermissions: {{}}\njobs:\n  j:\n    permissions: {{}}\n    steps:\n      - run: |\n{}\n",
        script
            .lines()
            .map(|l| format!("          {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[test]
fn direct_tool_calls_are_caught_as_words() {
    for script in [
        "docker push ghcr.io/x/api:abc",
        "sudo /usr/bin/docker build .",
        "digest=$(kubectl get deploy api -o json)",
        "bash -c \"cosign verify x\"",
        "cargo xtask deploy x && provider-services tx deployment update sdl.yaml",
    ] {
        let found = direct_tool_calls(&parse(&job_with_run(script)));
        assert_eq!(found.len(), 1, "{script}: {found:?}");
    }
    for script in [
        "cargo xtask ci-build --dockerfile deploy/Dockerfile",
        "apt-get install docker-registry",
        "cargo xtask deploy x # not docker itself",
    ] {
        assert_eq!(
            direct_tool_calls(&parse(&job_with_run(script))),
            Vec::<String>::new(),
            "{script}"
        );
    }
}

#[test]
fn run_steps_without_xtask_are_caught() {
    let found = thin_run_steps(&parse(&job_with_run("make release\n./deploy.sh")));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(thin_run_steps(&parse(&job_with_run("cargo xtask rollback --env staging"))).is_empty());
    assert!(
        thin_run_steps(&parse(&job_with_run("cargo --locked xtask release v1.2.3"))).is_empty()
    );
    let other = thin_run_steps(&parse(&job_with_run("cargo --locked build -p xtask")));
    assert_eq!(other.len(), 1, "{other:?}");
}

#[test]
fn unpinned_actions_are_caught() {
    let bad = r#"
on: push
permissions: {}
jobs:
  reusable:
    permissions: {}
    uses: org/repo/.github/workflows/x.yml@main
  j:
    permissions: {}
    steps:
      - uses: actions/checkout@v4
      - uses: actions/checkout@11bd719
      - uses: actions/checkout@11BD71901BBE5B1630CEEA73D27597364C9AF683
      - uses: docker://alpine:3.20
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
      - uses: docker://alpine@sha256:0000000000000000000000000000000000000000000000000000000000000000
      - uses: ./local
"#;
    let found = unpinned_uses(&parse(bad));
    assert_eq!(found.len(), 5, "{found:?}");
    assert!(found[0].contains("jobs.reusable"), "{found:?}");
}

#[test]
fn sha_pins_without_a_version_comment_are_caught() {
    let bad = "      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683\n\
               \x20     - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # pinned\n\
               \x20     - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2\n";
    let found = pins_without_version_comment(bad);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("line 1:") && found[1].starts_with("line 2:"),
        "{found:?}"
    );
}

#[test]
fn missing_or_writing_top_level_permissions_are_caught() {
    let missing = "on: push\njobs:\n  j:\n    permissions: {}\n    steps: []\n";
    assert_eq!(missing_workflow_permissions(&parse(missing)).len(), 1);
    let writes = "on: push\npermissions:\n  contents: read\n  packages: write\njobs: {}\n";
    let found = missing_workflow_permissions(&parse(writes));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("packages: write"), "{found:?}");
    let all = "on: push\npermissions: write-all\njobs: {}\n";
    assert_eq!(missing_workflow_permissions(&parse(all)).len(), 1);
    let read = "on: push\npermissions:\n  contents: read\njobs: {}\n";
    assert!(missing_workflow_permissions(&parse(read)).is_empty());
}

#[test]
fn jobs_without_permissions_are_caught() {
    let bad = "on: push\npermissions: {}\njobs:\n  a:\n    permissions: {}\n    steps: []\n  b:\n    steps: []\n";
    assert_eq!(
        jobs_without_permissions(&parse(bad)),
        ["jobs.b: no `permissions:`; state the token scopes this job needs"]
    );
}

#[test]
fn expressions_in_run_scripts_are_caught() {
    for script in [
        "cargo xtask deploy ${{ inputs.image_sha }} --env staging",
        "echo \"${{ github.event.pull_request.title }}\"",
        "cargo xtask deploy x --env ${{ github.event.inputs.environment }}",
        "echo ${{ steps.build.outputs.image_ref }}",
    ] {
        let found = expressions_in_run(&parse(&job_with_run(script)));
        assert_eq!(found.len(), 1, "{script}: {found:?}");
    }
    let two = expressions_in_run(&parse(&job_with_run("x ${{ inputs.a }} ${{ inputs.b }}")));
    assert_eq!(two.len(), 2, "{two:?}");
    assert!(
        expressions_in_run(&parse(&job_with_run("cargo xtask deploy \"$IMAGE_SHA\""))).is_empty()
    );
}

#[test]
fn pull_request_target_and_workflow_run_are_caught() {
    let bad = "on:\n  pull_request_target:\n    types: [opened]\npermissions: {}\njobs: {}\n";
    assert_eq!(dangerous_triggers(&parse(bad)).len(), 1);
    let listed = "on: [push, pull_request_target]\npermissions: {}\njobs: {}\n";
    assert_eq!(dangerous_triggers(&parse(listed)).len(), 1);
    let run = "on:\n  workflow_run:\n    workflows: [api-build]\n    types: [completed]\npermissions: {}\njobs: {}\n";
    let found = dangerous_triggers(&parse(run));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("workflow_call"), "{found:?}");
    let called = "on:\n  workflow_call:\n  workflow_dispatch:\npermissions: {}\njobs: {}\n";
    assert!(dangerous_triggers(&parse(called)).is_empty());
    assert!(dangerous_triggers(&parse("on: pull_request\npermissions: {}\njobs: {}\n")).is_empty());
}

/// The one build step allowed besides the xtask calls: the binary that
/// steps holding secrets run (see `compiles_with_secrets`).
const XTASK_BUILD: &str = "cargo build --locked -p xtask";

/// Where [`XTASK_BUILD`] puts it.
const XTASK_BINARY: &str = "./target/debug/xtask";

const SECRET_STEPS: &str = r#"
on: push
permissions: {}
jobs:
  j:
    permissions: {}
    steps:
      - name: env secret
        env:
          AKASH_KEY_MNEMONIC: ${{ secrets.AKASH_KEY_MNEMONIC }}
        run: cargo xtask deploy "$SHA" --env staging
      - name: token
        env:
          GH: ${{ github.token }}
        run: cargo build --locked -p xtask
      - name: no secret yet
        run: cargo build --locked -p xtask
      - uses: docker/login-action@74a5d142397b4f367a81961eba4e8cd7edddf772 # v3.4.0
      - name: after the login
        run: cargo xtask ci-build
      - name: the built binary
        env:
          XTASK_NOTIFY_WEBHOOK: ${{ secrets.XTASK_NOTIFY_WEBHOOK }}
        run: ./target/debug/xtask deploy "$SHA" --env staging
  k:
    permissions: {}
    env:
      TOKEN: ${{ secrets.TOKEN }}
    steps:
      - run: bash .ci/run
"#;

/// Whether an `env:` mapping hands out a secret.
fn env_has_secret(env: &Yaml) -> bool {
    env.as_hash().is_some_and(|vars| {
        vars.values().any(|v| {
            v.as_str()
                .is_some_and(|v| v.contains("secrets.") || v.contains("github.token"))
        })
    })
}

/// A step that leaves registry credentials on disk for the rest of the job.
fn is_registry_login(step: &Yaml) -> bool {
    step["uses"]
        .as_str()
        .is_some_and(|u| u.starts_with("docker/login-action@"))
}

/// One job, as far as credentials go.
struct Exposure<'a> {
    job_id: String,
    /// Some step of the job holds credentials.
    holds: bool,
    /// `(where, step, whether credentials are readable in it)`.
    steps: Vec<(String, &'a Yaml, bool)>,
}

fn credential_exposure(workflow: &Yaml) -> Vec<Exposure<'_>> {
    let mut out = Vec::new();
    for (job_id, job) in jobs(workflow) {
        let job_secret = env_has_secret(&job["env"]);
        let mut logged_in = false;
        let mut holds = job_secret;
        let mut steps = Vec::new();
        for (index, step) in job["steps"].as_vec().into_iter().flatten().enumerate() {
            let label = step["name"]
                .as_str()
                .or_else(|| step["id"].as_str())
                .or_else(|| step["uses"].as_str())
                .unwrap_or("");
            let exposed = job_secret || logged_in || env_has_secret(&step["env"]);
            holds |= exposed || is_registry_login(step);
            steps.push((
                format!("jobs.{job_id}.steps[{index}] {label}"),
                step,
                exposed,
            ));
            logged_in |= is_registry_login(step);
        }
        out.push(Exposure {
            job_id,
            holds,
            steps,
        });
    }
    out
}

fn compiles_with_secrets(workflow: &Yaml) -> Vec<String> {
    let mut violations = Vec::new();
    for job in credential_exposure(workflow) {
        for (place, step, exposed) in job.steps {
            let Some(script) = step["run"].as_str() else {
                continue;
            };
            let words = shell_words(script);
            let compiles =
                words.contains(&"cargo") || words.windows(2).any(|w| w == ["bash", ".ci/run"]);
            if compiles && exposed {
                violations.push(format!(
                    "{place}: compiles with secrets readable (in env, or a registry login earlier in the job); `{XTASK_BUILD}` in an earlier step without them, then run {XTASK_BINARY}"
                ));
            }
        }
    }
    violations
}

fn cached_targets_with_credentials(workflow: &Yaml) -> Vec<String> {
    let mut violations = Vec::new();
    for job in credential_exposure(workflow) {
        if !job.holds {
            continue;
        }
        let job_id = &job.job_id;
        for (place, step, _) in job.steps {
            let rust_cache = step["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("Swatinem/rust-cache@"));
            if rust_cache && step["with"]["cache-targets"].as_str() != Some("false") {
                violations.push(format!(
                    "{place}: jobs.{job_id} holds credentials and restores target/ from a cache; set `cache-targets: \"false\"`"
                ));
            }
        }
    }
    violations
}

#[test]
fn compiling_where_a_secret_is_readable_is_caught() {
    let found = compiles_with_secrets(&parse(SECRET_STEPS));
    let places: Vec<&str> = found
        .iter()
        .map(|v| v.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(
        places,
        [
            "jobs.j.steps[0] env secret",
            "jobs.j.steps[1] token",
            "jobs.j.steps[4] after the login",
            "jobs.k.steps[0] ",
        ],
        "{found:?}"
    );
}

#[test]
fn a_cached_target_dir_in_a_job_with_credentials_is_caught() {
    let bad = r#"
on: push
permissions: {}
jobs:
  holds:
    permissions: {}
    steps:
      - uses: Swatinem/rust-cache@9d47c6ad4b02e050fd481d890b2ea34778fd09d6 # v2.7.8
      - uses: docker/login-action@74a5d142397b4f367a81961eba4e8cd7edddf772 # v3.4.0
  registry-only:
    permissions: {}
    steps:
      - uses: Swatinem/rust-cache@9d47c6ad4b02e050fd481d890b2ea34778fd09d6 # v2.7.8
        with:
          cache-targets: "false"
      - uses: docker/login-action@74a5d142397b4f367a81961eba4e8cd7edddf772 # v3.4.0
  tests:
    permissions: {}
    steps:
      - uses: Swatinem/rust-cache@9d47c6ad4b02e050fd481d890b2ea34778fd09d6 # v2.7.8
      - run: bash .ci/run
"#;
    let found = cached_targets_with_credentials(&parse(bad));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("jobs.holds"), "{found:?}");
}

#[test]
fn each_release_job_builds_the_xtask_then_runs_it_once() {
    let expectations = [
        ("api-build.yml", "build", "./target/debug/xtask ci-build"),
        (
            "api-deploy.yml",
            "deploy",
            "./target/debug/xtask \"${args[@]}\"",
        ),
        (
            "api-rollback.yml",
            "rollback",
            "./target/debug/xtask \"${args[@]}\"",
        ),
        (
            "api-verify.yml",
            "verify",
            "./target/debug/xtask verify-build --env production",
        ),
    ];
    for (name, job_id, call) in expectations {
        let workflow = load(name);
        let scripts: Vec<&str> = workflow["jobs"][job_id]["steps"]
            .as_vec()
            .into_iter()
            .flatten()
            .filter_map(|step| step["run"].as_str())
            .collect();
        assert_eq!(
            scripts.len(),
            2,
            "{name}: jobs.{job_id} has two run steps: {scripts:?}"
        );
        assert_eq!(scripts[0].trim(), XTASK_BUILD, "{name}: jobs.{job_id}");
        assert!(
            scripts[1].contains(call),
            "{name}: jobs.{job_id} runs `{call}`"
        );
    }
    let ci = load("ci.yml");
    let scripts: Vec<&str> = ci["jobs"]["test"]["steps"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(|step| step["run"].as_str())
        .collect();
    assert_eq!(scripts, ["bash .ci/run"]);
    let deploy = load("api-deploy.yml");
    let script = deploy["jobs"]["deploy"]["steps"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(|step| step["run"].as_str())
        .next_back()
        .unwrap_or_default();
    assert!(
        script.contains("args=(deploy \"$IMAGE_SHA\" --env \"$ENVIRONMENT\""),
        "{script}"
    );
    assert!(
        script.contains("--metadata \"$BUILD_METADATA\""),
        "{script}"
    );
}

#[test]
fn the_xtask_alias_is_locked() {
    let config = fs::read_to_string(workflows_dir().join("../../.cargo/config.toml"))
        .expect(".cargo/config.toml");
    let alias = config
        .lines()
        .find_map(|l| l.trim().strip_prefix("xtask = "))
        .expect("an xtask alias");
    assert!(
        alias.contains("--locked"),
        "`cargo xtask` must not re-resolve dependencies: {alias}"
    );
}

#[test]
fn verification_runs_nightly_on_what_production_runs() {
    let verify = load("api-verify.yml");
    assert!(
        verify["on"]["schedule"][0]["cron"].as_str().is_some(),
        "api-verify.yml runs on a schedule"
    );
    let job = &verify["jobs"]["verify"];
    assert_eq!(job["permissions"]["packages"].as_str(), Some("read"));
    let checkout = job["steps"]
        .as_vec()
        .into_iter()
        .flatten()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/checkout@"))
        })
        .expect("a checkout");
    assert_eq!(
        checkout["with"]["fetch-depth"].as_i64(),
        Some(0),
        "production's SHA may be older than the head: full history"
    );
}
