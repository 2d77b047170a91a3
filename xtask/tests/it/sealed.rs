//! Issue 25: a sealed clean build, and records that tell the truth about it.
//!
//! Every contamination vector is planted for real in one clone of the tiny
//! api, each leaving its own marker file if it ever runs (and each changing
//! the binary its own way): a `.cargo/config.toml` with a `rustc-wrapper` in
//! a parent of the scratch dir (`$TMPDIR/.cargo`), a `post-checkout` hook, a
//! smudge filter set through `.git/info/attributes` and `git config`, and
//! `cc` and `rustup` shims first on PATH; `git` and `docker` on PATH record
//! whether they were handed the signing secrets. `Cargo.lock` and
//! `deploy/Dockerfile` are edited in the work tree behind `skip-worktree`.
//! That clone's ci-build (signing with a key) is compared with a ci-build of
//! the same commit from a clone where nothing was planted; both share one
//! state dir, as two builds of one SHA into two repositories on one runner.
//! The two tiny builds run at once (seconds each).
//!
//! The SBOM's content is checked on the shared world's real api build.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::support::world::world;
use crate::support::*;
use serde_json::Value;

fn field<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("`{k}` is not a string in {v}"))
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// An executable shell script.
fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir");
    }
    std::fs::write(path, format!("#!/bin/sh\n{body}")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The marker each planted vector leaves when it runs.
const VECTORS: &[&str] = &["rustc-wrapper", "post-checkout", "smudge", "cc", "rustup"];

/// The tools that record whether they saw a signing secret.
const RECORDERS: &[&str] = &["git", "docker"];

struct Pair {
    registry: Registry,
    /// The planted clone, and what its ci-build printed and recorded.
    planted: Project,
    planted_run: Run,
    planted_record: Value,
    /// A clone of the same commit where nothing was planted.
    clean: Project,
    clean_record: Value,
    markers: TempDir,
    shims: TempDir,
    /// The work tree's edited Cargo.lock and Dockerfile (hidden from status).
    edited_lock: String,
    edited_dockerfile: String,
    _cosign: FakeCosign,
    _tmp: TempDir,
    _state: TempDir,
    _records: TempDir,
    _docker: DockerGuard,
}

fn pair() -> &'static Pair {
    static PAIR: OnceLock<Pair> = OnceLock::new();
    PAIR.get_or_init(|| {
        let registry = Registry::start();
        let docker = DockerGuard::new();
        docker.images_under(&format!("{}/", registry.host()));
        docker.clean_at_exit();
        let planted = Project::tiny();
        planted.remove_at_exit();
        let clean = planted.clone_repo("sealed-clean");
        clean.remove_at_exit();
        let markers = TempDir::new("sealed-markers");
        markers.remove_at_exit();
        let m = markers.path().display().to_string();
        let shims = TempDir::new("sealed-shims");
        shims.remove_at_exit();

        // 1. A parent dir of the scratch dir ($TMPDIR) holds a cargo config
        // whose rustc-wrapper stamps another GIT_SHA into the binary.
        let tmp = TempDir::new("sealed-tmpdir");
        tmp.remove_at_exit();
        let wrapper = tmp.join("wrapper.sh");
        script(
            &wrapper,
            &format!("touch {m}/rustc-wrapper\nGIT_SHA=planted-by-a-rustc-wrapper exec \"$@\"\n"),
        );
        std::fs::create_dir_all(tmp.join(".cargo")).expect("mkdir");
        std::fs::write(
            tmp.join(".cargo/config.toml"),
            format!("[build]\nrustc-wrapper = \"{}\"\n", wrapper.display()),
        )
        .expect("write the parent-dir cargo config");
        // 2. A post-checkout hook edits the checkout.
        script(
            &planted.root().join(".git/hooks/post-checkout"),
            &format!(
                "touch {m}/post-checkout\nsed -i 's/as-committed/edited-by-a-hook/' api/src/main.rs 2>/dev/null\nexit 0\n"
            ),
        );
        // 3. A smudge filter, through .git/info/attributes and git config.
        std::fs::create_dir_all(planted.root().join(".git/info")).expect("mkdir");
        std::fs::write(
            planted.root().join(".git/info/attributes"),
            "*.rs filter=planted\n",
        )
        .expect("write attributes");
        planted.git(&[
            "config",
            "filter.planted.smudge",
            &format!("touch {m}/smudge; sed s/as-committed/smudged/"),
        ]);
        // 4. `cc` and `rustup` first on PATH, each changing the binary.
        let real = |tool: &str| {
            find_tool(tool)
                .unwrap_or_else(|| panic!("{tool} on PATH"))
                .display()
                .to_string()
        };
        script(
            &shims.join("cc"),
            &format!("touch {m}/cc\nexec /usr/bin/cc \"$@\" -Wl,--build-id=0xdeadbeef\n"),
        );
        script(
            &shims.join("rustup"),
            &format!(
                "touch {m}/rustup\nexport GIT_SHA=planted-by-a-rustup-shim\nexec {} \"$@\"\n",
                real("rustup")
            ),
        );
        // git and docker record which signing secrets they were handed.
        for tool in RECORDERS {
            script(
                &shims.join(tool),
                &format!(
                    "touch {m}/{tool}-ran\nenv | cut -d= -f1 | grep -E '^(COSIGN_KEY|COSIGN_PASSWORD)$' >> {m}/{tool}-saw-secrets\nexec {} \"$@\"\n",
                    real(tool)
                ),
            );
        }
        // 5. Cargo.lock and the Dockerfile edited where `git status` cannot see.
        planted.git(&[
            "update-index",
            "--skip-worktree",
            "Cargo.lock",
            "deploy/Dockerfile",
        ]);
        let append = |path: &str, line: &str| {
            let file = planted.root().join(path);
            let text = std::fs::read_to_string(&file).expect("read") + line;
            std::fs::write(&file, &text).expect("write");
            text
        };
        let edited_lock = append("Cargo.lock", "# edited in the work tree\n");
        let edited_dockerfile = append("deploy/Dockerfile", "# edited in the work tree\n");
        assert_eq!(planted.git(&["status", "--porcelain"]), "", "git sees nothing");

        let cosign = FakeCosign::new();
        let (private, public) = cosign.key_pair("sealed");
        let state = TempDir::new("sealed-state");
        state.remove_at_exit();
        let records = TempDir::new("sealed-records");
        records.remove_at_exit();
        let build = |project: &Project, path: &str, planted: bool| {
            let out = records.join(format!("{path}.json")).display().to_string();
            let mut cmd = project
                .xtask_cmd(&[
                    "ci-build",
                    "--json",
                    "--out",
                    &out,
                    "--repository",
                    &registry.repo(&format!("{path}/api")),
                    "--staging-repository",
                    &registry.repo(&format!("{path}/api-staging")),
                ])
                .path(path_without(&["cosign"]))
                .env("XTASK_STATE_DIR", state.path());
            if planted {
                cmd = cmd
                    .fake_cosign(&cosign)
                    .path_prefix(shims.path())
                    .env("TMPDIR", tmp.path())
                    .env("COSIGN_KEY", &private)
                    .env("COSIGN_PASSWORD", KEY_PASSWORD)
                    .env("COSIGN_PUBLIC_KEY", &public);
            }
            let run = cmd.run();
            eprintln!(
                "ci-build of the tiny api ({}) took {:.1}s",
                if planted { "planted" } else { "clean" },
                run.elapsed.as_secs_f64()
            );
            run.expect_success();
            let record = read_json(Path::new(&out));
            (run, record)
        };
        let ((planted_run, planted_record), (_, clean_record)) = std::thread::scope(|s| {
            let a = s.spawn(|| build(&planted, "planted", true));
            let b = s.spawn(|| build(&clean, "clean", false));
            (a.join().expect("planted build"), b.join().expect("clean build"))
        });
        Pair {
            registry,
            planted,
            planted_run,
            planted_record,
            clean,
            clean_record,
            markers,
            shims,
            edited_lock,
            edited_dockerfile,
            _cosign: cosign,
            _tmp: tmp,
            _state: state,
            _records: records,
            _docker: docker,
        }
    })
}

fn provenance(record: &Value) -> Value {
    read_json(Path::new(field(record, "provenance_path")))
}

fn dependency_sha256<'a>(provenance: &'a Value, name: &str) -> &'a str {
    provenance["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .expect("resolvedDependencies")
        .iter()
        .find(|d| d["name"] == name)
        .and_then(|d| d["digest"]["sha256"].as_str())
        .unwrap_or_else(|| panic!("no {name} in {provenance}"))
}

#[test]
fn planted_vectors_never_run_and_the_shipped_api_is_the_clean_one() {
    let p = pair();
    for vector in VECTORS {
        assert!(
            !p.markers.join(vector).exists(),
            "the planted {vector} ran during the build"
        );
    }
    // The shipped /api is byte for byte the uncontaminated build's.
    let (planted, clean) = (&p.planted_record, &p.clean_record);
    assert_eq!(
        field(planted, "binary_sha256"),
        field(clean, "binary_sha256"),
        "the planted clone shipped another binary"
    );
    assert_eq!(
        field(planted, "layer_diff_id"),
        field(clean, "layer_diff_id")
    );
    let dir = TempDir::new("sealed-api");
    let api = extract_api(field(planted, "image_ref"), &dir);
    assert_eq!(sha256sum(&api), field(clean, "binary_sha256"));
    let out = std::process::Command::new(&api)
        .output()
        .expect("run the shipped binary");
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        said.trim(),
        format!("tiny api {} marker:as-committed", p.planted.sha()),
        "the committed bytes, built with the commit's SHA"
    );
    // The seal is recorded in the provenance.
    let prov = provenance(planted);
    let seal = &prov["buildDefinition"]["internalParameters"]["seal"];
    assert_eq!(seal["cwd"], "/", "{prov}");
    assert_eq!(seal["linker"], "/usr/bin/cc", "{prov}");
    let shims = p.shims.path().display().to_string();
    for key in ["cargo", "rustc", "path"] {
        let value = field(seal, key);
        assert!(
            value.starts_with('/') && !value.contains(&shims),
            "{key}: {value}"
        );
    }
    assert!(
        field(seal, "checkout").contains("cat-file --batch"),
        "{seal}"
    );
    assert_eq!(p.planted.git(&["worktree", "list"]).lines().count(), 1);
}

#[test]
fn signing_secrets_reach_cosign_alone() {
    let p = pair();
    assert_eq!(field(&p.planted_record, "signing_status"), "signed");
    for tool in RECORDERS {
        assert!(
            p.markers.join(format!("{tool}-ran")).exists(),
            "{tool} on PATH was never called: the check saw nothing"
        );
        let saw = std::fs::read_to_string(p.markers.join(format!("{tool}-saw-secrets")))
            .unwrap_or_default();
        assert_eq!(saw, "", "{tool} was handed {saw}");
    }
    let prov = provenance(&p.planted_record);
    let names = prov["buildDefinition"]["internalParameters"]["seal"]["env"]
        .as_array()
        .expect("the compile's variables");
    assert!(
        names
            .iter()
            .all(|n| !n.as_str().unwrap_or("").starts_with("COSIGN")),
        "{names:?}"
    );
    assert!(
        !p.planted_run.stderr.contains(KEY_PASSWORD),
        "the password was printed"
    );
}

#[test]
fn provenance_hashes_the_commits_lock_and_dockerfile_not_the_work_tree() {
    let p = pair();
    let prov = provenance(&p.planted_record);
    let committed = |path: &str| {
        let dir = TempDir::new("sealed-committed");
        let file = dir.join("f");
        std::fs::write(
            &file,
            p.clean.git(&["show", &format!("HEAD:{path}")]) + "\n",
        )
        .expect("write");
        sha256sum(&file)
    };
    for (name, path, edited) in [
        ("Cargo.lock", "Cargo.lock", &p.edited_lock),
        (
            "deploy/Dockerfile",
            "deploy/Dockerfile",
            &p.edited_dockerfile,
        ),
    ] {
        let work_tree = sha256sum(&p.planted.root().join(path));
        assert!(edited.ends_with("# edited in the work tree\n"));
        assert_ne!(committed(path), work_tree, "the edit is real");
        assert_eq!(
            dependency_sha256(&prov, name),
            sha256sum(&p.clean.root().join(path)),
            "{name}: the committed file's sha256 (the uncontaminated clone's)"
        );
        assert_eq!(dependency_sha256(&prov, name), committed(path));
    }
    // Both builds of the commit record the same inputs.
    let clean = provenance(&p.clean_record);
    for name in ["Cargo.lock", "deploy/Dockerfile"] {
        assert_eq!(
            dependency_sha256(&prov, name),
            dependency_sha256(&clean, name)
        );
    }
}

#[test]
fn sbom_and_provenance_files_are_keyed_by_digest() {
    let p = pair();
    let (a, b) = (&p.planted_record, &p.clean_record);
    assert_eq!(field(a, "image_sha"), field(b, "image_sha"), "one SHA");
    assert_ne!(field(a, "image_digest"), field(b, "image_digest"));
    for record in [a, b] {
        let hex = field(record, "image_digest").trim_start_matches("sha256:");
        for key in ["sbom_path", "provenance_path"] {
            let path = PathBuf::from(field(record, key));
            assert!(
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains(hex)),
                "{key} {} is not named by the digest",
                path.display()
            );
            assert!(path.is_file(), "{} is gone", path.display());
        }
        // Still the file the record describes, after the other build.
        assert_eq!(
            sha256sum(Path::new(field(record, "sbom_path"))),
            field(record, "sbom_sha256")
        );
        let sbom = read_json(Path::new(field(record, "sbom_path")));
        assert_eq!(sbom["packages"][0]["versionInfo"], record["image_digest"]);
    }
    assert_ne!(a["provenance_path"], b["provenance_path"]);
    assert_ne!(a["sbom_path"], b["sbom_path"]);
    assert!(
        p.registry
            .tags("planted/api")
            .contains(&field(a, "image_sha").to_owned())
    );
}

#[test]
fn a_one_line_base64_cosign_key_is_refused_and_never_printed() {
    let registry = Registry::start();
    let project = Project::tiny();
    let cosign = FakeCosign::new();
    let (private, public) = cosign.key_pair("b64");
    let encoded = run_clean(
        std::process::Command::new("base64")
            .arg("-w0")
            .arg(&private),
    );
    let encoded = String::from_utf8_lossy(&encoded.stdout).trim().to_owned();
    assert!(encoded.len() > 100 && !encoded.contains('\n'));
    let out = TempDir::new("b64-out");
    let out_file = out.join("m.json").display().to_string();
    let run = project
        .xtask_cmd(&[
            "ci-build",
            "--json",
            "--out",
            &out_file,
            "--repository",
            &registry.repo("b64/api"),
            "--staging-repository",
            &registry.repo("b64/api-staging"),
        ])
        .path(path_without(&["cosign"]))
        .fake_cosign(&cosign)
        .env("COSIGN_KEY", &encoded)
        .env("COSIGN_PASSWORD", KEY_PASSWORD)
        .env("COSIGN_PUBLIC_KEY", &public)
        .run();
    let error = run.single_error();
    assert!(
        error.contains("COSIGN_KEY") && error.contains("base64") && error.contains("PEM"),
        "names the variable and the form: {error}"
    );
    let body: Vec<String> = std::fs::read_to_string(&private)
        .expect("key")
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_owned)
        .collect();
    for secret in std::iter::once(&encoded).chain(&body) {
        let head = &secret[..secret.len().min(24)];
        assert!(
            !run.stderr.contains(head) && !run.stdout.contains(head),
            "the key was printed"
        );
    }
    assert!(
        !Path::new(&out_file).exists(),
        "no record for a refused build"
    );
    assert!(
        registry.tags("b64/api").is_empty(),
        "refused before anything was pushed"
    );
}

/// `name version` of each `cargo tree` line of the api.
fn tree(root: &Path, edges: &str) -> std::collections::BTreeSet<(String, String)> {
    let out = run_clean(
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["tree", "-p", "api", "--locked", "--offline", "-e", edges])
            .args(["--prefix", "none", "--format", "{p}"])
            .args(["--target", "x86_64-unknown-linux-gnu"])
            .current_dir(root),
    );
    assert!(
        out.status.success(),
        "cargo tree: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((
                w.next()?.to_owned(),
                w.next()?.strip_prefix('v')?.to_owned(),
            ))
        })
        .collect()
}

#[test]
fn the_sbom_lists_what_was_compiled_build_time_crates_marked() {
    let w = world();
    let record = &w.a.record;
    let sbom = read_json(Path::new(field(record, "sbom_path")));
    let id_of = |p: &Value| field(p, "SPDXID").to_owned();
    let crates: Vec<(String, String, String)> = sbom["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| {
            p["externalRefs"][0]["referenceLocator"]
                .as_str()
                .is_some_and(|r| r.starts_with("pkg:cargo/"))
        })
        .map(|p| {
            (
                field(p, "name").to_owned(),
                field(p, "versionInfo").to_owned(),
                id_of(p),
            )
        })
        .collect();
    let listed: std::collections::BTreeSet<(String, String)> = crates
        .iter()
        .map(|(n, v, _)| (n.clone(), v.clone()))
        .collect();
    let compiled = tree(w.project.root(), "normal,build");
    assert_eq!(
        listed, compiled,
        "the SBOM is `cargo tree -e normal,build` of the api"
    );
    assert_eq!(
        record["sbom_components"].as_u64(),
        Some(crates.len() as u64)
    );
    let build_time: std::collections::BTreeSet<String> = sbom["relationships"]
        .as_array()
        .expect("relationships")
        .iter()
        .filter(|r| r["relationshipType"] == "BUILD_DEPENDENCY_OF")
        .filter_map(|r| r["spdxElementId"].as_str().map(str::to_owned))
        .collect();
    let linked = tree(w.project.root(), "normal,no-proc-macro");
    for (name, version, id) in &crates {
        let is_linked = linked.contains(&(name.clone(), version.clone()));
        assert_eq!(
            build_time.contains(id),
            !is_linked,
            "{name} {version}: marked build-time iff it is not linked"
        );
    }
    let marked = |name: &str| {
        crates
            .iter()
            .any(|(n, _, id)| n == name && build_time.contains(id))
    };
    for proc_macro in ["serde_derive", "tokio-macros", "syn", "proc-macro2"] {
        assert!(marked(proc_macro), "{proc_macro}: listed, as build-time");
    }
    for runtime in ["api", "axum", "tokio", "serde_json"] {
        assert!(
            crates.iter().any(|(n, _, _)| n == runtime) && !marked(runtime),
            "{runtime}: listed, linked"
        );
    }
    let lock = std::fs::read_to_string(w.project.root().join("Cargo.lock")).expect("lock");
    if lock.contains("name = \"aho-corasick\"") {
        assert!(
            !crates.iter().any(|(n, _, _)| n == "aho-corasick"),
            "aho-corasick is in Cargo.lock but never compiled for the api"
        );
    }
    eprintln!(
        "FIGURE sbom: {} crates compiled, {} of them build-time only",
        crates.len(),
        build_time.len()
    );
}
