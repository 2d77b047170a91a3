//! Drives the provider-services fake through its binary (the cosign fake:
//! tests/cosign.rs): every exit code and output shape
//! the release tool relies on. Docker is replaced by a recording script
//! (`FAKE_AKASH_DOCKER`), so these tests need no engine and no image.

mod common;

use common::{code, text};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const HEX2: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

fn image(digest_hex: &str) -> String {
    format!(
        "127.0.0.1:5000/shipyard/api:{}@sha256:{digest_hex}",
        "a".repeat(40)
    )
}

fn scratch(name: &str) -> PathBuf {
    common::scratch("fakes", name)
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("log line is JSON"))
        .collect()
}

// ------------------------------------------------------- provider-services

struct Akash {
    state: PathBuf,
    docker_log: PathBuf,
    docker: PathBuf,
}

impl Akash {
    fn new() -> Akash {
        let state = scratch("akash");
        let docker_log = state.join("docker.log");
        let docker = state.join("fake-docker");
        // Records each docker call; `port` answers with a fixed host port,
        // `inspect` says running, `run` fails for images named *fail*.
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{log}'\ncase \"$1\" in\n  port) echo 127.0.0.1:49153; echo '[::1]:49153';;\n  inspect) echo true;;\n  run) for a; do last=$a; done; case \"$last\" in *fail*) echo 'Unable to find image' >&2; exit 125;; esac; echo 0123abcd;;\n  rm) echo 'Error: No such container' >&2; exit 1;;\nesac\n",
            log = docker_log.display()
        );
        std::fs::write(&docker, script).expect("write fake docker");
        let mut perm = std::fs::metadata(&docker).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&docker, perm).expect("chmod");
        let akash = Akash {
            state,
            docker_log,
            docker,
        };
        // The signers the tests use are in the keyring, as on a set-up machine.
        // Each its own account (an address is made from the mnemonic).
        for (name, mnemonic) in [
            ("deployer", MNEMONIC),
            ("k", MNEMONIC_K),
            ("other", MNEMONIC_OTHER),
        ] {
            let o = akash.import(name, mnemonic);
            assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        }
        // v0.6 speaks mTLS: each signer's client certificate is published.
        for name in ["deployer", "k", "other"] {
            let o = akash.run(&["tx", "cert", "generate", "client", "--from", name], NET);
            assert_eq!(code(&o), 0, "{}", text(&o.stderr));
            tx_json(&akash.run(
                &["tx", "cert", "publish", "client", "--from", name, "-y"],
                NET,
            ));
        }
        akash
    }

    /// `keys add NAME --recover` with the mnemonic on stdin.
    fn import(&self, name: &str, mnemonic: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_provider-services"))
            .args([
                "keys",
                "add",
                name,
                "--recover",
                "--keyring-backend",
                "test",
            ])
            .env("FAKE_AKASH_STATE", &self.state)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn fake provider-services");
        let mut stdin = child.stdin.take().expect("stdin");
        // A key that exists is refused before stdin is read: the pipe may be
        // closed already, and the exit status says what happened.
        let _ = writeln!(stdin, "{mnemonic}");
        drop(stdin);
        child.wait_with_output().expect("keys add")
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_provider-services"));
        c.args(args)
            .env("FAKE_AKASH_STATE", &self.state)
            .env("FAKE_AKASH_DOCKER", &self.docker)
            .env_remove("FAKE_AKASH_FAIL")
            .env_remove("FAKE_AKASH_VERSION");
        for (k, _) in std::env::vars() {
            if k.starts_with("AKASH_") {
                c.env_remove(k);
            }
        }
        c.env("AKASH_HOME", self.state.join("home"));
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run fake provider-services")
    }

    /// The address of a key in the keyring.
    fn address(&self, name: &str) -> String {
        let o = self.run(&["keys", "show", name, "-a"], &[]);
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        text(&o.stdout).trim().to_owned()
    }

    /// An active lease from PROVIDER on the deployer's deployment `dseq`.
    fn lease(&self, dseq: &str, from: &str) {
        let args = [
            "tx",
            "market",
            "lease",
            "create",
            "--dseq",
            dseq,
            "--provider",
            PROVIDER,
        ];
        tx_json(&self.run(&[&args[..], &["--from", from, "-y"]].concat(), NET));
    }

    fn sdl(&self, name: &str, image: &str) -> String {
        let tpl = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/akash/deploy.yaml"),
        )
        .expect("read deploy/akash/deploy.yaml");
        assert_eq!(tpl.matches("{{image}}").count(), 1, "one placeholder");
        let p = self.state.join(name);
        let text = tpl
            .replace("{{image}}", image)
            .replace("{{attributes}}", "{}")
            .replace("{{signed_by}}", r#"{"allOf": [], "anyOf": []}"#);
        std::fs::write(&p, text).expect("write sdl");
        p.to_string_lossy().into_owned()
    }
}

/// Valid bip39 mnemonics (BIP-39's English test vectors).
const MNEMONIC: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
const MNEMONIC_K: &str =
    "legal winner thank year wave sausage worth useful legal winner thank yellow";
const MNEMONIC_OTHER: &str =
    "letter advice cage absurd amount doctor acoustic avoid letter advice cage above";
/// A valid provider address (bytes 1..=20).
const PROVIDER: &str = "akash1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5jepelx";

#[test]
fn akash_keyring_imports_from_stdin_and_signers_must_be_in_it() {
    let a = Akash::new();
    let shown = a.run(&["keys", "show", "deployer"], &[]);
    assert_eq!(code(&shown), 0, "{}", text(&shown.stderr));
    assert!(text(&shown.stdout).contains("name: deployer"));
    let missing = a.run(&["keys", "show", "nobody"], &[]);
    assert_eq!(code(&missing), 1);
    assert!(text(&missing.stderr).contains("nobody.info: key not found"));
    let again = a.import("deployer", MNEMONIC);
    assert_eq!(code(&again), 1, "an existing key is not overwritten");
    let bad = a.import("short", "too few words");
    assert!(text(&bad.stderr).contains("invalid mnemonic"));
    let log = std::fs::read_to_string(a.state.join("calls.log")).expect("calls.log");
    assert!(
        !log.contains("abandon"),
        "the mnemonic came on stdin, never in argv"
    );
    let v1 = a.sdl("v1.yaml", "ghcr.io/acme/api:1@sha256:0000000000000000000000000000000000000000000000000000000000000000");
    let o = a.run(
        &["tx", "deployment", "create", &v1, "--from", "nobody", "-y"],
        NET,
    );
    assert_eq!(code(&o), 1);
    assert!(
        text(&o.stderr).contains("nobody is not a valid name or address"),
        "{}",
        text(&o.stderr)
    );
}

const NET: &[(&str, &str)] = &[
    ("AKASH_NODE", "https://rpc.example:443"),
    ("AKASH_CHAIN_ID", "akashnet-2"),
    ("AKASH_KEYRING_BACKEND", "test"),
    // What a node with a minimum gas price takes; included at once (v0.6).
    ("AKASH_GAS_PRICES", "0.025uakt"),
    ("AKASH_BROADCAST_MODE", "block"),
    (
        "AKASH_MNEMONIC",
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
    ),
];

fn tx_json(o: &Output) -> Value {
    assert_eq!(code(o), 0, "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("tx JSON");
    assert_eq!(v["code"], 0);
    assert!(v["txhash"].as_str().is_some_and(|h| h.len() == 64));
    v
}

#[test]
fn akash_template_renders_to_a_valid_sdl() {
    let a = Akash::new();
    let sdl = a.sdl("deploy.yaml", &image(HEX));
    let v = tx_json(&a.run(
        &[
            "tx",
            "deployment",
            "create",
            &sdl,
            "--from",
            "deployer",
            "--dseq",
            "42",
            "-y",
        ],
        NET,
    ));
    assert_eq!(v["logs"][0]["events"][0]["attributes"][4]["value"], "42");
}

#[test]
fn akash_full_flow_update_send_manifest_lease_status() {
    let a = Akash::new();
    let v1 = a.sdl("v1.yaml", &image(HEX));
    let v2 = a.sdl("v2.yaml", &image(HEX2));
    let from = ["--from", "deployer"];

    tx_json(
        &a.run(
            &[
                &["tx", "deployment", "create", &v1, "--dseq", "7", "-y"][..],
                &from,
            ]
            .concat(),
            NET,
        ),
    );
    a.lease("7", "deployer");

    // Update: flags from env (AKASH_DSEQ), node/chain required.
    let mut env = NET.to_vec();
    env.push(("AKASH_DSEQ", "7"));
    tx_json(&a.run(
        &[
            "tx",
            "deployment",
            "update",
            &v2,
            "--from",
            "deployer",
            "-y",
        ],
        &env,
    ));

    // lease-status before any manifest: error.
    let o = a.run(
        &[
            "lease-status",
            "--dseq",
            "7",
            "--provider",
            PROVIDER,
            "--from",
            "deployer",
        ],
        NET,
    );
    assert_eq!(code(&o), 1);

    // The old SDL is no longer the on-chain version: provider rejects it.
    let o = a.run(
        &[
            "send-manifest",
            &v1,
            "--dseq",
            "7",
            "--provider",
            PROVIDER,
            "--from",
            "deployer",
        ],
        NET,
    );
    assert_eq!(code(&o), 1);
    assert!(text(&o.stdout).contains("\tstatus:       FAIL"));
    assert!(text(&o.stdout).contains("manifest version validation failed"));
    assert!(!a.docker_log.exists(), "a rejected manifest starts nothing");

    let o = a.run(
        &[
            "send-manifest",
            &v2,
            "--dseq",
            "7",
            "--provider",
            PROVIDER,
            "--from",
            "deployer",
        ],
        NET,
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "provider: akash1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5jepelx\n\tstatus:       PASS\n"
    );
    let docker = std::fs::read_to_string(&a.docker_log).expect("docker was called");
    let run_line = docker
        .lines()
        .find(|l| l.starts_with("run "))
        .expect("docker run");
    assert!(
        run_line.starts_with("run -d --label fake-akash-state="),
        "{run_line}"
    );
    assert!(run_line.contains("--label fake-akash-dseq=7 --name fake-akash-"));
    assert!(run_line.contains("-p 127.0.0.1::8080 -e API_PORT=8080 -e API_LOG=info"));
    assert!(run_line.ends_with(&image(HEX2)));
    assert!(
        docker
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("rm -f fake-akash-"))
    );

    let o = a.run(
        &[
            "lease-status",
            "--dseq",
            "7",
            "--provider",
            PROVIDER,
            "--from",
            "deployer",
        ],
        NET,
    );
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let s: Value = serde_json::from_slice(&o.stdout).expect("lease-status JSON");
    assert_eq!(
        s["services"]["api"]["uris"],
        serde_json::json!(["127.0.0.1:49153"])
    );
    // The template's `count: 2`: one container stands for both replicas.
    assert_eq!(s["services"]["api"]["available"], 2);
    assert_eq!(s["services"]["api"]["total"], 2);
    assert_eq!(s["services"]["api"]["ready_replicas"], 2);
    assert_eq!(s["forwarded_ports"], serde_json::json!({}));

    // calls.env.log: one line per call, secrets redacted.
    let envs = lines(&a.state.join("calls.env.log"));
    assert_eq!(envs.len(), lines(&a.state.join("calls.log")).len());
    // After Akash::new: three `keys add`, three certificates generated and
    // published; then create, lease create, update.
    let envs = &envs[9..];
    assert_eq!(envs[2]["AKASH_DSEQ"], "7");
    assert_eq!(envs[0]["AKASH_MNEMONIC"], "<redacted>");
    let all = std::fs::read_to_string(a.state.join("calls.env.log")).expect("env log");
    assert!(!all.contains("abandon"), "no mnemonic in logs");
}

/// Arguments, environment, expected stderr fragment.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn akash_update_rules() {
    let a = Akash::new();
    let v1 = a.sdl("v1.yaml", &image(HEX));
    tx_json(&a.run(
        &[
            "tx",
            "deployment",
            "create",
            &v1,
            "--from",
            "k",
            "--dseq",
            "9",
            "-y",
        ],
        NET,
    ));

    // Changed resources: refused.
    let bigger = a.state.join("bigger.yaml");
    let text_v1 = std::fs::read_to_string(&v1).expect("read");
    std::fs::write(&bigger, text_v1.replace("units: 0.5", "units: 1")).expect("write");
    let o = a.run(
        &[
            "tx",
            "deployment",
            "update",
            bigger.to_str().expect("utf8"),
            "--dseq",
            "9",
            "--from",
            "k",
            "-y",
        ],
        NET,
    );
    assert_eq!(code(&o), 1);
    assert!(text(&o.stderr).contains("groups are different than existing deployment"));

    // Unknown dseq, other owner, no node, no chain id, bad SDL, unknown flag/command.
    let cases: Vec<Case> = vec![
        (
            vec![
                "tx",
                "deployment",
                "update",
                &v1,
                "--dseq",
                "10",
                "--from",
                "k",
                "-y",
            ],
            NET.to_vec(),
            "deployment not found",
        ),
        (
            vec![
                "tx",
                "deployment",
                "update",
                &v1,
                "--dseq",
                "9",
                "--from",
                "other",
                "-y",
            ],
            NET.to_vec(),
            "deployment not found",
        ),
        (
            vec![
                "tx",
                "deployment",
                "update",
                &v1,
                "--dseq",
                "9",
                "--from",
                "k",
                "-y",
            ],
            vec![("AKASH_CHAIN_ID", "c")],
            "connection refused",
        ),
        (
            vec![
                "tx",
                "deployment",
                "update",
                &v1,
                "--dseq",
                "9",
                "--from",
                "k",
                "-y",
            ],
            vec![("AKASH_NODE", "http://n")],
            "chain ID required but not specified",
        ),
        (
            vec![
                "tx",
                "deployment",
                "update",
                "/nonexistent.yaml",
                "--dseq",
                "9",
                "--from",
                "k",
                "-y",
            ],
            NET.to_vec(),
            "no such file",
        ),
        (
            vec![
                "tx",
                "deployment",
                "update",
                &v1,
                "--dseq",
                "9",
                "--from",
                "k",
                "--bogus",
            ],
            NET.to_vec(),
            "unknown flag: --bogus",
        ),
        (
            vec!["deploy"],
            NET.to_vec(),
            "unknown command \"deploy\" for \"provider-services\"",
        ),
    ];
    for (args, env, want) in cases {
        let o = a.run(&args, &env);
        assert_eq!(code(&o), 1, "{args:?}");
        assert!(
            text(&o.stderr).contains(want),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }

    // The flag wins over the env.
    let mut env = NET.to_vec();
    env.push(("AKASH_DSEQ", "10"));
    tx_json(&a.run(
        &[
            "tx",
            "deployment",
            "update",
            &v1,
            "--dseq",
            "9",
            "--from",
            "k",
            "-y",
        ],
        &env,
    ));

    // A bad SDL (empty image) is refused.
    let bad = a.sdl("bad.yaml", "");
    let o = a.run(
        &[
            "tx",
            "deployment",
            "update",
            &bad,
            "--dseq",
            "9",
            "--from",
            "k",
            "-y",
        ],
        NET,
    );
    assert_eq!(code(&o), 1);
    assert!(text(&o.stderr).contains("image"));
}

#[test]
fn akash_send_manifest_failures() {
    let a = Akash::new();
    let good = a.sdl("good.yaml", &image(HEX));
    tx_json(&a.run(
        &[
            "tx",
            "deployment",
            "create",
            &good,
            "--from",
            "k",
            "--dseq",
            "5",
            "-y",
        ],
        NET,
    ));
    a.lease("5", "k");

    let send = [
        "send-manifest",
        &good,
        "--dseq",
        "5",
        "--provider",
        PROVIDER,
        "--from",
        "k",
    ];

    let mut env = NET.to_vec();
    env.push(("FAKE_AKASH_FAIL", "send-manifest"));
    let o = a.run(&send, &env);
    assert_eq!(code(&o), 1);
    assert!(text(&o.stdout).contains("\tstatus:       FAIL"));
    assert!(text(&o.stderr).contains("Error: submit manifest to some providers has been failed"));
    assert!(
        !a.docker_log.exists(),
        "forced failure touches no container"
    );

    let o = a.run(&[&send[..], &["-o", "json"]].concat(), NET);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v[0]["status"], "PASS");

    // docker run failing is reported as FAIL with docker's stderr.
    let failing = a.sdl("failing.yaml", "127.0.0.1:5000/will-fail:x");
    tx_json(&a.run(
        &[
            "tx",
            "deployment",
            "create",
            &failing,
            "--from",
            "k",
            "--dseq",
            "6",
            "-y",
        ],
        NET,
    ));
    a.lease("6", "k");
    let o = a.run(
        &[
            "send-manifest",
            &failing,
            "--dseq",
            "6",
            "--provider",
            PROVIDER,
            "--from",
            "k",
        ],
        NET,
    );
    // The real provider accepts a manifest whose image cannot be pulled
    // (router.go answers once the manager took it); the workload is then
    // unavailable, and cluster/monitor.go closes the lease after 41 failed
    // checks (here after FAKE_AKASH_MONITOR_CLOSE_SECS).
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("\tstatus:       PASS"));
    let leases = |env: &[(&str, &str)]| -> Value {
        let o = a.run(
            &[
                "query",
                "market",
                "lease",
                "list",
                "--owner",
                &a.address("k"),
                "--dseq",
                "6",
                "-o",
                "json",
            ],
            env,
        );
        assert_eq!(code(&o), 0, "{}", text(&o.stderr));
        serde_json::from_slice(&o.stdout).expect("lease list JSON")
    };
    assert_eq!(leases(NET)["leases"][0]["lease"]["state"], "active");
    let mut soon = NET.to_vec();
    soon.push(("FAKE_AKASH_MONITOR_CLOSE_SECS", "0"));
    soon.push(("FAKE_AKASH_VERSION", "v0.10.7"));
    let closed = leases(&soon);
    assert_eq!(closed["leases"][0]["lease"]["state"], "closed", "{closed}");
    assert_eq!(
        closed["leases"][0]["lease"]["reason"], "lease_closed_reason_unstable",
        "{closed}"
    );
    assert_ne!(closed["leases"][0]["lease"]["closed_on"], "0");

    // No such deployment.
    let o = a.run(
        &[
            "send-manifest",
            &good,
            "--dseq",
            "99",
            "--provider",
            PROVIDER,
            "--from",
            "k",
        ],
        NET,
    );
    assert_eq!(code(&o), 1);
}

/// What the real CLI and chain refuse, the way they refuse it: a refused
/// transaction exits 0 with a code; `query tx` finds a sync broadcast only
/// once a block holds it; per-version flags; bech32 and mTLS checks.
#[test]
fn akash_codes_inclusion_versions_and_auth() {
    let a = Akash::new();
    let v1 = a.sdl("v1.yaml", &image(HEX));
    let v2 = a.sdl("v2.yaml", &image(HEX2));
    tx_json(&a.run(
        &[
            "tx",
            "deployment",
            "create",
            &v1,
            "--dseq",
            "8",
            "--from",
            "deployer",
            "-y",
        ],
        NET,
    ));
    a.lease("8", "deployer");
    let update = [
        "tx",
        "deployment",
        "update",
        &v2,
        "--dseq",
        "8",
        "--from",
        "deployer",
        "-y",
    ];
    let sync: Vec<(&str, &str)> = NET
        .iter()
        .copied()
        .filter(|(k, _)| *k != "AKASH_BROADCAST_MODE" && *k != "AKASH_GAS_PRICES")
        .collect();

    // No gas price: 200000 gas for nothing; the node wants 5000uakt.
    let o = a.run(&update, &sync);
    assert_eq!(code(&o), 0, "refused, yet exit 0: {}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("tx JSON");
    assert_eq!(
        (v["code"].as_u64(), v["codespace"].as_str()),
        (Some(13), Some("sdk"))
    );
    assert!(
        v["raw_log"]
            .as_str()
            .is_some_and(|l| l.contains("required: 5000uakt")),
        "{v}"
    );
    let both = a.run(
        &[
            &update[..],
            &["--fees", "5000uakt", "--gas-prices", "0.025uakt"],
        ]
        .concat(),
        &sync,
    );
    assert!(text(&both.stderr).contains("cannot provide both fees and gas prices"));

    // Gas auto, sync: a hash now, the block later.
    let o = a.run(
        &[
            &update[..],
            &[
                "--gas",
                "auto",
                "--gas-adjustment",
                "1.5",
                "--gas-prices",
                "0.025uakt",
                "-o",
                "json",
            ],
        ]
        .concat(),
        &sync,
    );
    assert!(
        text(&o.stderr).contains("gas estimate: 141980"),
        "{}",
        text(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).expect("tx JSON");
    assert_eq!(
        (v["code"].as_u64(), v["height"].as_str()),
        (Some(0), Some("0"))
    );
    let hash = v["txhash"].as_str().expect("hash").to_string();
    let o = a.run(&["query", "tx", &hash, "-o", "json"], &sync);
    assert_eq!(code(&o), 1);
    assert!(text(&o.stderr).contains(&format!("tx ({hash}) not found")));
    let o = a.run(&["query", "tx", &hash, "-o", "json"], &sync);
    assert_eq!(code(&o), 0, "{}", text(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).expect("tx JSON");
    assert_eq!(v["code"], 0);
    assert_ne!(v["height"], "0");

    // Per version: v0.6 has no --auth-type and no JWT; v0.8 has no block mode.
    let status = [
        "lease-status",
        "--dseq",
        "8",
        "--provider",
        PROVIDER,
        "--from",
        "deployer",
    ];
    let o = a.run(&[&status[..], &["--auth-type", "jwt"]].concat(), NET);
    assert!(
        text(&o.stderr).contains("unknown flag: --auth-type"),
        "{}",
        text(&o.stderr)
    );
    let mut v08 = NET.to_vec();
    v08.push(("FAKE_AKASH_VERSION", "v0.8.3"));
    let o = a.run(&[&status[..], &["--auth-type", "bearer"]].concat(), &v08);
    assert!(text(&o.stderr).contains("invalid gateway auth type bearer"));
    let o = a.run(&update, &v08);
    assert!(
        text(&o.stderr).contains("invalid broadcast mode block"),
        "{}",
        text(&o.stderr)
    );

    // A provider address with a typo; a signer without a published certificate.
    let typo = PROVIDER.replace("jepelx", "jepelz");
    let o = a.run(
        &[
            "lease-status",
            "--dseq",
            "8",
            "--provider",
            &typo,
            "--from",
            "deployer",
        ],
        NET,
    );
    assert!(
        text(&o.stderr).contains("decoding bech32 failed"),
        "{}",
        text(&o.stderr)
    );
    let mut no_cert = NET.to_vec();
    let empty = a.state.join("empty-home");
    let empty = empty.to_string_lossy().into_owned();
    no_cert.push(("AKASH_HOME", &empty));
    let o = a.run(&status, &no_cert);
    assert!(
        text(&o.stderr).contains("could not open certificate PEM file"),
        "{}",
        text(&o.stderr)
    );
    let o = a.run(
        &["tx", "cert", "generate", "client", "--from", "deployer"],
        &no_cert,
    );
    assert_eq!(code(&o), 0);
    let o = a.run(&status, &no_cert);
    assert!(text(&o.stderr).contains("certificate has not been committed to blockchain"));
}

#[test]
fn akash_without_state_dir_fails() {
    let o = Command::new(env!("CARGO_BIN_EXE_provider-services"))
        .arg("version")
        .env_remove("FAKE_AKASH_STATE")
        .output()
        .expect("run");
    assert_eq!(code(&o), 1);
    assert!(text(&o.stderr).contains("FAKE_AKASH_STATE is not set"));
}

/// `lease-status` before a manifest, for an unknown lease and for a closed
/// one is what the real CLI prints for the gateway's empty 404: one line,
/// `Error: remote server returned 404` (gateway/rest/router.go
/// `leaseStatusHandler`, chain-sdk go/provider/client/client.go), nothing on
/// stdout. No invented text for the caller to rely on.
#[test]
fn akash_lease_status_without_a_manifest_is_a_bare_404() {
    let a = Akash::new();
    let v1 = a.sdl("v1.yaml", &image(HEX));
    tx_json(&a.run(
        &[
            "tx",
            "deployment",
            "create",
            &v1,
            "--dseq",
            "11",
            "--from",
            "deployer",
            "-y",
        ],
        NET,
    ));
    a.lease("11", "deployer");
    let status = |dseq: &str| {
        a.run(
            &[
                "lease-status",
                "--dseq",
                dseq,
                "--provider",
                PROVIDER,
                "--from",
                "deployer",
            ],
            NET,
        )
    };
    for (what, dseq) in [("no manifest yet", "11"), ("unknown lease", "12")] {
        let o = status(dseq);
        assert_eq!(code(&o), 1, "{what}");
        assert_eq!(
            text(&o.stderr),
            "Error: remote server returned 404\n",
            "{what}"
        );
        assert_eq!(text(&o.stdout), "", "{what}");
    }
    let send = [
        "send-manifest",
        &v1,
        "--dseq",
        "11",
        "--provider",
        PROVIDER,
        "--from",
        "deployer",
    ];
    assert_eq!(code(&a.run(&send, NET)), 0);
    assert_eq!(code(&status("11")), 0, "runs once the manifest is in");
    tx_json(&a.run(
        &[
            "tx",
            "market",
            "lease",
            "close",
            "--dseq",
            "11",
            "--provider",
            PROVIDER,
            "--from",
            "deployer",
            "-y",
        ],
        NET,
    ));
    let o = status("11");
    assert_eq!(
        text(&o.stderr),
        "Error: remote server returned 404\n",
        "closed lease"
    );
}

/// A manifest sent right after the update's block is refused until the
/// provider has processed the update event (manifest/manager.go
/// `validateRequest`): 500 up to v0.10 (router.go), 422 after
/// (manifest/gateway.go), with the body as `errorMessage`.
#[test]
fn akash_send_manifest_is_refused_until_the_provider_saw_the_update() {
    let a = Akash::new();
    let v1 = a.sdl("v1.yaml", &image(HEX));
    let v2 = a.sdl("v2.yaml", &image(HEX2));
    tx_json(&a.run(
        &[
            "tx",
            "deployment",
            "create",
            &v1,
            "--dseq",
            "13",
            "--from",
            "deployer",
            "-y",
        ],
        NET,
    ));
    a.lease("13", "deployer");
    let send = |sdl: &str, env: &[(&str, &str)]| {
        a.run(
            &[
                "send-manifest",
                sdl,
                "--dseq",
                "13",
                "--provider",
                PROVIDER,
                "--from",
                "deployer",
            ],
            env,
        )
    };
    assert_eq!(code(&send(&v1, NET)), 0, "a new lease knows the deployment");
    let mut lag = NET.to_vec();
    lag.push(("FAKE_AKASH_UPDATE_LAG_CALLS", "2"));
    // Included at once (-b block): the chain has v2, the provider not yet.
    tx_json(&a.run(
        &[
            "tx",
            "deployment",
            "update",
            &v2,
            "--dseq",
            "13",
            "--from",
            "deployer",
            "-y",
        ],
        &lag,
    ));
    let o = send(&v2, &lag);
    assert_eq!(code(&o), 1);
    assert_eq!(
        text(&o.stdout),
        format!(
            "provider: {PROVIDER}\n\tstatus:       FAIL\n\terror:        remote server returned 500\n\terrorMessage: manifest version validation failed\n\n"
        )
    );
    assert!(text(&o.stderr).contains("Error: submit manifest to some providers has been failed"));
    let o = send(&v2, &lag);
    assert_eq!(
        code(&o),
        0,
        "the provider has seen the update: {}",
        text(&o.stdout)
    );
    // Later providers answer 422 for the same refusal; JSON carries both fields.
    tx_json(&a.run(
        &[
            "tx",
            "deployment",
            "update",
            &v1,
            "--dseq",
            "13",
            "--from",
            "deployer",
            "-y",
        ],
        &lag,
    ));
    let mut later = lag.clone();
    later.push(("FAKE_AKASH_VERSION", "v0.11.0"));
    let o = a.run(
        &[
            "send-manifest",
            &v1,
            "--dseq",
            "13",
            "--provider",
            PROVIDER,
            "--from",
            "deployer",
            "-o",
            "json",
        ],
        &later,
    );
    assert_eq!(code(&o), 1);
    let v: Value = serde_json::from_slice(&o.stdout).expect("JSON result");
    assert_eq!(v[0]["status"], "FAIL");
    assert_eq!(v[0]["error"], "remote server returned 422");
    assert_eq!(v[0]["errorMessage"], "manifest version validation failed\n");
}

/// A lease that gets no manifest is closed by the provider's watchdog after
/// `--manifest-timeout` (manifest/watchdog.go; 5 min by default, here
/// FAKE_AKASH_MANIFEST_TIMEOUT), with its group paused on chain.
#[test]
fn akash_a_lease_without_a_manifest_is_closed_by_the_watchdog() {
    let a = Akash::new();
    let v1 = a.sdl("v1.yaml", &image(HEX));
    tx_json(&a.run(
        &[
            "tx",
            "deployment",
            "create",
            &v1,
            "--dseq",
            "14",
            "--from",
            "deployer",
            "-y",
        ],
        NET,
    ));
    a.lease("14", "deployer");
    let owner = a.address("deployer");
    let list = |env: &[(&str, &str)]| -> Value {
        let o = a.run(
            &[
                "query", "market", "lease", "list", "--owner", &owner, "--dseq", "14", "-o", "json",
            ],
            env,
        );
        serde_json::from_slice(&o.stdout).expect("lease list JSON")
    };
    assert_eq!(
        list(NET)["leases"][0]["lease"]["state"],
        "active",
        "within 5 min"
    );
    let mut timeout = NET.to_vec();
    timeout.push(("FAKE_AKASH_MANIFEST_TIMEOUT", "0"));
    let v = list(&timeout);
    assert_eq!(v["leases"][0]["lease"]["state"], "closed", "{v}");
    assert!(
        v["leases"][0]["lease"].get("reason").is_none(),
        "v0.6 leases carry no reason"
    );
    let mut v10 = NET.to_vec();
    v10.push(("FAKE_AKASH_VERSION", "v0.10.7"));
    assert_eq!(
        list(&v10)["leases"][0]["lease"]["reason"],
        "lease_closed_reason_manifest_timeout"
    );
    let o = a.run(
        &[
            "query",
            "deployment",
            "get",
            "--owner",
            &owner,
            "--dseq",
            "14",
            "-o",
            "json",
        ],
        NET,
    );
    let d: Value = serde_json::from_slice(&o.stdout).expect("deployment JSON");
    assert_eq!(d["groups"][0]["state"], "paused", "{d}");
    let o = a.run(
        &[
            "send-manifest",
            &v1,
            "--dseq",
            "14",
            "--provider",
            PROVIDER,
            "--from",
            "deployer",
        ],
        NET,
    );
    assert!(text(&o.stderr).contains("no active leases found  for dseq=14"));

    // The way back: the paused group gets a new order (oseq 2), leased
    // again. The CLI's --gseq/--oseq default to 1, so that lease is seen
    // only when they are given (0: any).
    let start = [
        "tx",
        "deployment",
        "group",
        "start",
        "--dseq",
        "14",
        "--from",
        "deployer",
        "-y",
    ];
    let o = a.run(&start, NET);
    assert!(
        text(&o.stderr).contains("required flag(s) \"owner\" not set"),
        "{}",
        text(&o.stderr)
    );
    tx_json(&a.run(&[&start[..], &["--owner", &owner]].concat(), NET));
    let again: Value = serde_json::from_slice(
        &a.run(&[&start[..], &["--owner", &owner]].concat(), NET)
            .stdout,
    )
    .expect("tx JSON");
    assert_eq!(
        (again["code"].as_u64(), again["codespace"].as_str()),
        (Some(16), Some("deployment"))
    );
    tx_json(&a.run(
        &[
            "tx",
            "market",
            "lease",
            "create",
            "--dseq",
            "14",
            "--gseq",
            "1",
            "--oseq",
            "2",
            "--provider",
            PROVIDER,
            "--from",
            "deployer",
            "-y",
        ],
        NET,
    ));
    assert_eq!(
        list(NET)["leases"].as_array().map(Vec::len),
        Some(1),
        "oseq 1 only"
    );
    let o = a.run(
        &[
            "query", "market", "lease", "list", "--owner", &owner, "--dseq", "14", "--gseq", "0",
            "--oseq", "0", "-o", "json",
        ],
        NET,
    );
    let all: Value = serde_json::from_slice(&o.stdout).expect("lease list JSON");
    assert_eq!(all["leases"][1]["lease"]["state"], "active", "{all}");
    let mut v10 = NET.to_vec();
    v10.push(("FAKE_AKASH_VERSION", "v0.10.7"));
    let send = [
        "send-manifest",
        &v1,
        "--dseq",
        "14",
        "--provider",
        PROVIDER,
        "--from",
        "deployer",
    ];
    let o = a.run(&send, &v10);
    assert!(
        text(&o.stderr).contains("no active leases found for dseq=14"),
        "{}",
        text(&o.stderr)
    );
    let o = a.run(&[&send[..], &["--gseq", "1", "--oseq", "2"]].concat(), &v10);
    assert_eq!(code(&o), 0, "{}", text(&o.stdout));
    let status = [
        "lease-status",
        "--dseq",
        "14",
        "--provider",
        PROVIDER,
        "--from",
        "deployer",
    ];
    assert_eq!(
        text(&a.run(&status, &v10).stderr),
        "Error: remote server returned 404\n"
    );
    assert_eq!(
        code(&a.run(&[&status[..], &["--oseq", "2"]].concat(), &v10)),
        0
    );
}
