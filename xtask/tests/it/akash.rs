//! The akash target through the fake `provider-services`
//! (xtask/test-fakes/src/provider_services.rs cites the real CLI's shapes it
//! checks): the real xtask binary, the real Docker engine and registry.
//!
//! Figures measured here from the fake's `calls.log` (printed with
//! `--nocapture`): calls to `provider-services` per deploy and rollback, and
//! how many are transactions: exactly one per release, none when a check
//! fails.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::deploy::{Stage, last_json, releases};
use crate::support::*;
use serde_json::Value;

/// A valid bip39 mnemonic (BIP-39's English test vector for entropy 0x7f×16).
/// Its words `sausage worth useful` must never reach argv or output.
const MNEMONIC: &str =
    "legal winner thank year wave sausage worth useful legal winner thank yellow";
const SECRET_WORDS: &str = "sausage worth useful";
/// A valid akash address (bytes 1..=20, encoded by a reference encoder).
const PROVIDER: &str = "akash1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5jepelx";
const DSEQ: &str = "4242";
const NODE: &str = "http://127.0.0.1:26657";

/// A deployment with an active lease on the fake chain, owned by the key
/// `deployer`, created from the SDL template with image A; the runner that
/// deploys starts with an empty keyring and gets the key from the mnemonic.
struct Chain {
    stage: Stage,
    state: TempDir,
    bin: TempDir,
    /// `AKASH_HOME`: where the mTLS client certificate lives.
    home: TempDir,
    _containers: FakeProviderContainers,
}

impl Chain {
    fn new(label: &str) -> Chain {
        let w = releases();
        let state = TempDir::new(&format!("{label}-chain"));
        let chain = Chain {
            stage: Stage::standin(label),
            bin: bin_dir(&[("provider-services", &fake_bin("provider-services"))]),
            home: TempDir::new(&format!("{label}-home")),
            _containers: FakeProviderContainers(state.path().to_path_buf()),
            state,
        };
        let added = chain.fake_stdin(
            &[
                "keys",
                "add",
                "deployer",
                "--recover",
                "--keyring-backend",
                "test",
            ],
            MNEMONIC,
        );
        assert!(
            added.status.success(),
            "{}",
            String::from_utf8_lossy(&added.stderr)
        );
        let sdl = chain.sdl(&format!("{}:{}@{}", w.canonical, w.a.sha, w.a.digest));
        let sdl = sdl.display().to_string();
        chain.tx(&["tx", "deployment", "create", &sdl, "--dseq", DSEQ]);
        chain.tx(&[
            "tx",
            "market",
            "lease",
            "create",
            "--dseq",
            DSEQ,
            "--provider",
            PROVIDER,
        ]);
        chain.fake_ok(&[
            "tx",
            "cert",
            "generate",
            "client",
            "--from",
            "deployer",
            "--keyring-backend",
            "test",
        ]);
        chain.tx(&["tx", "cert", "publish", "client"]);
        std::fs::remove_file(chain.state.join("keyring.json")).expect("a keyring was written");
        chain
    }

    /// The template rendered as xtask renders it with the empty placement.
    fn sdl(&self, image: &str) -> PathBuf {
        let w = releases();
        let template = std::fs::read_to_string(w.project.root().join("deploy/akash/deploy.yaml"))
            .expect("template");
        let path = self.state.join(format!("seed-{}.yaml", self.calls().len()));
        let text = template
            .replace("{{image}}", image)
            .replace("{{attributes}}", "{}")
            .replace("{{signed_by}}", r#"{"allOf":[],"anyOf":[]}"#);
        std::fs::write(&path, text).expect("sdl");
        path
    }

    fn fake_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.bin.join("provider-services"));
        cmd.args(args)
            .env("FAKE_AKASH_STATE", self.state.path())
            .env("AKASH_HOME", self.home.path())
            .env_remove("FAKE_AKASH_VERSION");
        cmd
    }

    fn fake_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .fake_cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the fake");
        let mut stdin = child.stdin.take().expect("stdin");
        writeln!(stdin, "{input}").expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("fake ran")
    }

    fn fake_ok(&self, args: &[&str]) -> String {
        let out = self.fake_cmd(args).output().expect("run the fake");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// An operator's transaction, included at once (`-b block`, v0.6).
    fn tx(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend([
            "--from",
            "deployer",
            "--keyring-backend",
            "test",
            "--node",
            NODE,
            "--chain-id",
            "akash-testnet",
            "--gas-prices",
            "0.025uakt",
            "-b",
            "block",
            "-y",
            "-o",
            "json",
        ]);
        let tx: Value = serde_json::from_str(&self.fake_ok(&all)).expect("tx JSON");
        assert_eq!(tx["code"], 0, "{args:?}: {tx}");
        tx
    }

    /// xtask with the settings of a CI job and the fake on PATH.
    fn xtask(&self, args: &[&str]) -> Xtask {
        self.stage
            .xtask(args)
            .path_prefix(self.bin.path())
            .env("FAKE_AKASH_STATE", self.state.path())
            .env("AKASH_HOME", self.home.path())
            .env("AKASH_NODE", NODE)
            .env("AKASH_CHAIN_ID", "akash-testnet")
            .env("AKASH_KEYRING_BACKEND", "test")
            .env("AKASH_FROM", "deployer")
            .env("AKASH_DSEQ", DSEQ)
            .env("AKASH_PROVIDER", PROVIDER)
            .env("AKASH_KEY_MNEMONIC", MNEMONIC)
    }

    fn deploy(&self, sha: &str) -> Xtask {
        self.deploy_with(sha, &[])
    }

    fn deploy_with(&self, sha: &str, extra: &[&str]) -> Xtask {
        let args = [
            "deploy",
            sha,
            "--env",
            "production",
            "--target",
            "akash",
            "--json",
        ];
        self.xtask(&[&args[..], extra].concat())
    }

    fn calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.state.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("calls.log line is a JSON argv"))
            .collect()
    }

    /// The calls made by `f` (calls.log grows; nothing else writes it).
    fn during(&self, f: impl FnOnce() -> Run) -> (Run, Vec<Vec<String>>) {
        let before = self.calls().len();
        let run = f();
        (run, self.calls().split_off(before))
    }
}

fn transactions(calls: &[Vec<String>]) -> Vec<&Vec<String>> {
    calls.iter().filter(|c| c[0] == "tx").collect()
}

fn figure(what: &str, calls: &[Vec<String>]) {
    let names: Vec<String> = calls
        .iter()
        .map(|c| {
            c.iter()
                .take_while(|a| !a.starts_with('-') && !a.contains('/'))
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    eprintln!(
        "FIGURE {what}: {} provider-services calls, {} transaction(s): {}",
        calls.len(),
        transactions(calls).len(),
        names.join(" | ")
    );
}

fn position(calls: &[Vec<String>], prefix: &[&str]) -> usize {
    calls
        .iter()
        .position(|c| c.len() >= prefix.len() && c[..prefix.len()] == *prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in {calls:?}"))
}

fn is(call: &[String], prefix: &[&str]) -> bool {
    call.len() >= prefix.len() && call[..prefix.len()] == *prefix
}

fn has_pair(call: &[String], flag: &str, value: &str) -> bool {
    call.windows(2).any(|p| p[0] == flag && p[1] == value)
}

/// One transaction per deploy and per rollback, waited for before the
/// manifest is sent; the key comes from the mnemonic and never leaks.
#[test]
fn akash_releases_are_one_transaction_each_waited_for_before_the_manifest() {
    let w = releases();
    let chain = Chain::new("akash-tx");

    let (run, calls) = chain.during(|| chain.deploy(&w.a.sha).run());
    run.expect_success();
    figure("deploy (fresh runner, mTLS)", &calls);
    let record = last_json(&run);
    assert_eq!(
        record["deployment_ref"],
        format!("dseq {DSEQ} at {PROVIDER}")
    );
    let url = record["url"].as_str().expect("lease URI");
    let (_, body) = http_get(&format!("{url}/version"));
    assert!(body.contains(&w.a.sha), "the provider runs A: {body}");
    let txs = transactions(&calls);
    assert_eq!(txs.len(), 1, "exactly one transaction: {calls:?}");
    let update = txs[0];
    assert_eq!(update[..3], ["tx", "deployment", "update"]);
    for (flag, value) in [
        ("--gas", "auto"),
        ("--gas-adjustment", "1.5"),
        ("--gas-prices", "0.025uakt"),
        ("--broadcast-mode", "sync"),
        ("--dseq", DSEQ),
    ] {
        assert!(has_pair(update, flag, value), "{flag} {value}: {update:?}");
    }
    // Checks first (read-only), then the update, polled until included,
    // then the manifest: never before the block.
    let u = position(&calls, &["tx", "deployment", "update"]);
    for q in [
        &["query", "deployment", "get"][..],
        &["query", "market", "lease", "list"],
        &["query", "bank", "balances"],
        &["query", "cert", "list"],
        &["version"],
    ] {
        assert!(position(&calls, q) < u, "{q:?} before the transaction");
    }
    let polled = position(&calls, &["query", "tx"]);
    let sent = position(&calls, &["send-manifest"]);
    assert!(u < polled && polled < sent, "{calls:?}");
    assert!(
        is(&calls[sent - 1], &["query", "tx"]),
        "the manifest follows the poll that saw the block: {calls:?}"
    );
    assert!(
        !calls.iter().flatten().any(|a| a == "--auth-type"),
        "v0.6 has no --auth-type"
    );
    let keys: Vec<&Vec<String>> = calls.iter().filter(|c| c[0] == "keys").collect();
    assert_eq!(
        keys[1][..4],
        ["keys", "add", "deployer", "--recover"],
        "{keys:?}"
    );
    let all = format!("{}{}{:?}", run.stdout, run.stderr, chain.calls());
    assert!(
        !all.contains(SECRET_WORDS),
        "the mnemonic reached argv or output"
    );

    let (run, calls) = chain.during(|| chain.deploy(&w.b.sha).run());
    run.expect_success();
    figure("deploy (warm runner)", &calls);
    assert_eq!(transactions(&calls).len(), 1, "{calls:?}");

    let (run, calls) = chain.during(|| {
        chain
            .xtask(&[
                "rollback",
                "--env",
                "production",
                "--target",
                "akash",
                "--json",
            ])
            .run()
    });
    run.expect_success();
    figure("rollback", &calls);
    assert_eq!(transactions(&calls).len(), 1, "{calls:?}");
    assert_eq!(last_json(&run)["new_sha"], w.a.sha.as_str());

    // A manifest the provider refuses: the release fails, and putting A's
    // SDL back is the second transaction of that run.
    let (run, calls) = chain.during(|| {
        chain
            .deploy(&w.b.sha)
            .env("FAKE_AKASH_FAIL_IMAGE", &w.b.sha)
            .env("XTASK_AKASH_TX_TIMEOUT", "30")
            .run()
    });
    figure("deploy refused by the provider, restored", &calls);
    let error = run.single_error();
    assert!(
        error.contains("did not accept the manifest")
            && error.contains("rolled back automatically"),
        "{error}"
    );
    assert_eq!(transactions(&calls).len(), 2, "update + restore: {calls:?}");
    let status = last_json(
        &chain
            .xtask(&[
                "status",
                "--env",
                "production",
                "--target",
                "akash",
                "--json",
            ])
            .run(),
    );
    assert_eq!(status["image_sha"], w.a.sha.as_str(), "{status}");
}

/// Every check that fails is one line, before any transaction; `--dry-run`
/// shows each call, the transaction only as a plan.
#[test]
fn akash_checks_refuse_before_any_transaction_and_dry_run_shows_every_call() {
    let w = releases();
    let chain = Chain::new("akash-checks");
    let refused = |label: &str, xtask: Xtask, words: &[&str]| {
        let (run, calls) = chain.during(|| xtask.run());
        let error = run.single_error().to_owned();
        for word in words {
            assert!(error.contains(word), "{label}: `{word}` not in: {error}");
        }
        assert!(
            transactions(&calls).is_empty(),
            "{label}: a transaction ran: {calls:?}"
        );
        eprintln!(
            "REFUSED {label}: {error} ({} calls, 0 transactions)",
            calls.len()
        );
        calls
    };
    let sha = w.a.sha.as_str();

    let typo = PROVIDER.replace("jepelx", "jepelz");
    let calls = refused(
        "provider typo",
        chain.deploy(sha).env("AKASH_PROVIDER", &typo),
        &["AKASH_PROVIDER", "bech32 checksum"],
    );
    assert!(
        calls.is_empty(),
        "settings are checked before any call: {calls:?}"
    );
    refused(
        "gas prices and fees both",
        chain
            .deploy(sha)
            .env("AKASH_GAS_PRICES", "0.025uakt")
            .env("AKASH_FEES", "5000uakt"),
        &["AKASH_FEES", "AKASH_GAS_PRICES"],
    );
    refused(
        "unsupported CLI",
        chain.deploy(sha).env("FAKE_AKASH_VERSION", "v0.7.2"),
        &["v0.7.2", "not a version this xtask drives"],
    );
    refused(
        "JWT asked of a v0.6 CLI",
        chain.deploy(sha).env("AKASH_AUTH_TYPE", "jwt"),
        &["AKASH_AUTH_TYPE=jwt"],
    );
    let bad_words = MNEMONIC.replace("yellow", "year");
    let calls = refused(
        "mnemonic with a bad checksum",
        chain.deploy(sha).env("AKASH_KEY_MNEMONIC", &bad_words),
        &["not a valid bip39 mnemonic"],
    );
    assert!(calls.iter().any(|c| is(c, &["keys", "add"])), "{calls:?}");
    refused(
        "no such deployment",
        chain.deploy(sha).env("AKASH_DSEQ", "999"),
        &["deployment 999", "not on chain", "AKASH_DSEQ"],
    );
    refused(
        "balance below the fee",
        chain.deploy(sha).env("AKASH_GAS_PRICES", "100uakt"),
        &["less than the fee budget", "30000000uakt"],
    );
    let other_home = TempDir::new("akash-no-cert");
    refused(
        "no client certificate",
        chain.deploy(sha).env("AKASH_HOME", other_home.path()),
        &["client certificate", "tx cert publish client"],
    );
    let config = std::fs::read_to_string(&chain.stage.config).expect("config");
    let mut placed: Value = serde_json::from_str(&config).expect("config JSON");
    placed["akash"] = serde_json::json!({"placement": {"attributes": {"tier": "community"}}});
    let placed_path = chain.stage.state.join("placed.json");
    std::fs::write(&placed_path, placed.to_string()).expect("write config");
    refused(
        "placement differs from the chain",
        chain.deploy(sha).env("XTASK_CONFIG", &placed_path),
        &[
            "akash.placement",
            "differs from group `dcloud`",
            "create a new deployment",
        ],
    );

    // Dry run: every check runs and is printed, the plan lists the rest.
    let (run, calls) = chain.during(|| chain.deploy_with(sha, &["--dry-run"]).run());
    run.expect_success();
    figure("deploy --dry-run", &calls);
    assert!(transactions(&calls).is_empty(), "{calls:?}");
    for c in &calls {
        let shown = c.iter().take(3).cloned().collect::<Vec<_>>().join(" ");
        assert!(
            run.stderr.contains(&format!("$ provider-services {shown}")),
            "{shown} not printed: {}",
            run.stderr
        );
    }
    for planned in [
        "tx deployment update",
        "query tx '<txhash>'",
        "send-manifest",
        "lease-status",
    ] {
        assert!(
            run.stderr
                .contains(&format!("(dry run) $ provider-services {planned}")),
            "{planned} not planned: {}",
            run.stderr
        );
    }

    // The lease is closed: refused before the update.
    chain.tx(&[
        "tx",
        "market",
        "lease",
        "close",
        "--dseq",
        DSEQ,
        "--provider",
        PROVIDER,
    ]);
    refused(
        "lease closed",
        chain.deploy(sha),
        &["no active lease", PROVIDER],
    );
    chain.tx(&["tx", "deployment", "close", "--dseq", DSEQ]);
    refused(
        "deployment closed",
        chain.deploy(sha),
        &["is closed, not active"],
    );
}

/// A transaction the node refuses comes back with exit 0 and a code: a
/// failure naming the code, not a release; a failing lease-status is a
/// verification failure, and `status` says it could not ask.
#[test]
fn akash_a_refused_transaction_and_a_failing_lease_status_are_failures() {
    let w = releases();
    let chain = Chain::new("akash-code");
    let (run, calls) = chain.during(|| {
        chain
            .deploy(&w.a.sha)
            .env("FAKE_AKASH_MIN_GAS_PRICE", "1uakt")
            .run()
    });
    figure("deploy refused by the node (code 13)", &calls);
    let error = run.single_error();
    assert!(
        error.contains("code 13")
            && error.contains("insufficient fee")
            && error.contains("AKASH_GAS_PRICES"),
        "{error}"
    );
    assert!(
        !calls.iter().any(|c| c[0] == "send-manifest"),
        "nothing is sent after a refused transaction: {calls:?}"
    );

    // JWT (v0.8+): no certificate needed, `--auth-type jwt` passed.
    let no_cert = TempDir::new("akash-jwt-home");
    let (run, calls) = chain.during(|| {
        chain
            .deploy(&w.a.sha)
            .env("FAKE_AKASH_VERSION", "v0.8.3")
            .env("AKASH_HOME", no_cert.path())
            .run()
    });
    run.expect_success();
    figure("deploy (v0.8, JWT)", &calls);
    let sent = &calls[position(&calls, &["send-manifest"])];
    assert!(has_pair(sent, "--auth-type", "jwt"), "{sent:?}");
    assert!(
        !calls.iter().any(|c| is(c, &["query", "cert"])),
        "{calls:?}"
    );

    let run = chain
        .xtask(&[
            "status",
            "--env",
            "production",
            "--target",
            "akash",
            "--json",
        ])
        .env("FAKE_AKASH_FAIL", "lease-status")
        .run();
    let error = run.single_error();
    assert!(error.contains("could not ask the provider"), "{error}");
    assert!(run.code() != Some(0));

    // lease-status failing before a release: what runs cannot be known, so
    // nothing is sent (no transaction).
    let (run, calls) = chain.during(|| {
        chain
            .deploy(&w.b.sha)
            .env("FAKE_AKASH_FAIL", "lease-status")
            .run()
    });
    let error = run.single_error();
    assert!(
        error.contains("could not ask the akash target what runs")
            && error.contains("so nothing was touched"),
        "{error}"
    );
    assert!(transactions(&calls).is_empty(), "{calls:?}");

    // lease-status failing after the release: a verification failure, and
    // the previous release is sent again.
    let run = chain
        .deploy(&w.b.sha)
        .env("FAKE_AKASH_LEASE_FAIL_IMAGE", &w.b.sha)
        .env("XTASK_AKASH_TX_TIMEOUT", "30")
        .run();
    let error = run.single_error();
    assert!(
        error.contains("verification failed") && error.contains("rolled back automatically"),
        "{error}"
    );
}

/// Removes the containers the fake provider started for one state dir.
struct FakeProviderContainers(PathBuf);

impl Drop for FakeProviderContainers {
    fn drop(&mut self) {
        let label = format!("label=fake-akash-state={}", self.0.display());
        let out = docker(&["ps", "-aq", "--filter", &label]);
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = docker(&["rm", "-f", id]);
        }
    }
}
