//! The akash target through the fake `provider-services`
//! (xtask/test-fakes/src/provider_services.rs cites the real CLI's and the
//! real provider's behaviour it plays): the real xtask binary, the real
//! Docker engine and registry, stand-in api images (support/standin.rs).
//!
//! Figures measured here from the fake's `calls.log` (printed with
//! `--nocapture`): calls to `provider-services` per deploy and rollback, and
//! how many are transactions: exactly one per release, none when a check
//! fails.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::deploy::{Stage, last_json};
use crate::support::standin::{Standin, push};
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

/// A stand-in api image in the chain's registry.
struct Image {
    sha: String,
    digest: String,
}

/// A deployment with an active lease on the fake chain, owned by the key
/// `deployer`, created from the project's SDL template with image A; the
/// runner that deploys starts with an empty keyring and gets the key from
/// the mnemonic. Its own registry with stand-in images A and B, its own copy
/// of the workspace (so a test may change the template).
struct Chain {
    stage: Stage,
    project: Project,
    registry: Registry,
    canonical: String,
    a: Image,
    b: Image,
    state: TempDir,
    bin: TempDir,
    /// `AKASH_HOME`: where the mTLS client certificate lives.
    home: TempDir,
    _containers: FakeProviderContainers,
    _images: DockerGuard,
}

impl Chain {
    fn new(label: &str) -> Chain {
        Chain::with_template(label, |t| t)
    }

    /// A chain whose deployment was created from the template as `edit`
    /// leaves it (the project's template is that too).
    fn with_template(label: &str, edit: impl Fn(String) -> String) -> Chain {
        let registry = Registry::start();
        let project = Project::new();
        let template = project.root().join("deploy/akash/deploy.yaml");
        let text = std::fs::read_to_string(&template).expect("template");
        std::fs::write(&template, edit(text)).expect("write template");
        let canonical = registry.repo("it/api");
        let images = DockerGuard::new();
        images.images_under(&format!("{}/", registry.host()));
        let a_sha = project.sha();
        let b_sha = project.commit_empty("B");
        let image = |sha: &str| {
            let tag = format!("{canonical}:{sha}");
            Standin::new(sha).build(&tag);
            Image {
                sha: sha.to_owned(),
                digest: push(&tag),
            }
        };
        let (a, b) = (image(&a_sha), image(&b_sha));
        let state = TempDir::new(&format!("{label}-chain"));
        let chain = Chain {
            stage: Stage::new(label),
            project,
            canonical,
            a,
            b,
            bin: bin_dir(&[("provider-services", &fake_bin("provider-services"))]),
            home: TempDir::new(&format!("{label}-home")),
            _containers: FakeProviderContainers(state.path().to_path_buf()),
            state,
            registry,
            _images: images,
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
        let sdl = chain.sdl(&chain.pinned(&chain.a));
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

    fn pinned(&self, image: &Image) -> String {
        format!("{}:{}@{}", self.canonical, image.sha, image.digest)
    }

    /// The template rendered as xtask renders it with the empty placement.
    fn sdl(&self, image: &str) -> PathBuf {
        let template =
            std::fs::read_to_string(self.project.root().join("deploy/akash/deploy.yaml"))
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
        self.project
            .xtask_cmd(args)
            .env("XTASK_STATE_DIR", self.stage.state.path())
            .env("XTASK_CONFIG", &self.stage.config)
            .env("XTASK_REPOSITORY", &self.canonical)
            .env(
                "XTASK_STAGING_REPOSITORY",
                self.registry.repo("it/api-staging"),
            )
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

    fn status(&self) -> Xtask {
        self.xtask(&[
            "status",
            "--env",
            "production",
            "--target",
            "akash",
            "--json",
        ])
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
    let chain = Chain::new("akash-tx");

    let (run, calls) = chain.during(|| chain.deploy(&chain.a.sha).run());
    run.expect_success();
    figure("deploy (fresh runner, mTLS)", &calls);
    // The template's count: 2, said once; no downtime warning.
    assert_eq!(
        run.stderr.matches("rollout: 2 replicas").count(),
        1,
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("has downtime"), "{}", run.stderr);
    assert!(
        run.stderr.contains("verification: at most 60 s"),
        "{}",
        run.stderr
    );
    let record = last_json(&run);
    assert_eq!(
        record["deployment_ref"],
        format!("dseq {DSEQ} at {PROVIDER}")
    );
    let url = record["url"].as_str().expect("lease URI");
    let (_, body) = http_get(&format!("{url}/version"));
    assert!(body.contains(&chain.a.sha), "the provider runs A: {body}");
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

    let (run, calls) = chain.during(|| {
        chain
            .deploy_with(&chain.b.sha, &["--verify-timeout", "600"])
            .run()
    });
    run.expect_success();
    assert!(
        run.stderr.contains(
            "note: --verify-timeout 600s is cut to 60s, the most the akash target allows"
        ),
        "{}",
        run.stderr
    );
    // The provider had not processed the update when the first manifest
    // came (the fake's default lag; the first deploy's SDL was the one the
    // deployment was created with, so its version did not change): refused with "manifest version
    // validation failed", sent again after 1 s, accepted.
    let sends: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| is(c, &["send-manifest"]))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(sends.len(), 2, "one refusal, one retry: {calls:?}");
    assert!(
        run.stderr.contains("the provider has not processed the update yet (manifest version validation failed): sending again in 1 s"),
        "{}",
        run.stderr
    );
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
    assert_eq!(last_json(&run)["new_sha"], chain.a.sha.as_str());

    // A manifest the provider refuses: the release fails, and putting A's
    // SDL back is the second transaction of that run.
    let (run, calls) = chain.during(|| {
        chain
            .deploy(&chain.b.sha)
            .env("FAKE_AKASH_FAIL_IMAGE", &chain.b.sha)
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
    assert_eq!(status["image_sha"], chain.a.sha.as_str(), "{status}");
}

/// Every check that fails is one line, before any transaction; `--dry-run`
/// shows each call, the transaction only as a plan.
#[test]
fn akash_checks_refuse_before_any_transaction_and_dry_run_shows_every_call() {
    let chain = Chain::new("akash-checks");
    let refused = |label: &str, xtask: Xtask, words: &[&str]| {
        let (run, calls) = chain.during(|| xtask.run());
        let error = run.single_error().to_owned();
        // `!word`: must not be said.
        for word in words {
            match word.strip_prefix('!') {
                Some(absent) => assert!(!error.contains(absent), "{label}: `{absent}` in: {error}"),
                None => assert!(error.contains(word), "{label}: `{word}` not in: {error}"),
            }
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
    let sha = chain.a.sha.as_str();

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
    for said in [
        "# retried while the provider answers `manifest version validation failed` (it has not processed the update yet): after 1, 2, 4, 8, 8, 8 s (31 s in all)",
        "verification: at most 60 s (--verify-timeout is cut to it)",
        "rollout: 2 replicas, replaced one at a time",
    ] {
        assert!(run.stderr.contains(said), "{said} not said: {}", run.stderr);
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
    // Closed by its owner: the group stays open with a new order (node
    // x/market/handler/server.go `CloseLease`), so no `group start`.
    refused(
        "lease closed",
        chain.deploy(sha),
        &[
            "the lease of deployment 4242 from",
            PROVIDER,
            "was closed",
            "!group start",
            "`provider-services query market bid list --owner akash1",
            "`provider-services tx market lease create --dseq 4242 --gseq 1 --oseq 2",
        ],
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
    let chain = Chain::new("akash-code");
    let (run, calls) = chain.during(|| {
        chain
            .deploy(&chain.a.sha)
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
            .deploy(&chain.a.sha)
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
            .deploy(&chain.b.sha)
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
        .deploy(&chain.b.sha)
        .env("FAKE_AKASH_LEASE_FAIL_IMAGE", &chain.b.sha)
        .env("XTASK_AKASH_TX_TIMEOUT", "30")
        .run();
    let error = run.single_error();
    assert!(
        error.contains("verification failed") && error.contains("rolled back automatically"),
        "{error}"
    );
}

/// "Nothing deployed yet" is what the chain says (an active lease) plus
/// the provider's bare 404, never a text the fake made up; a first release
/// says the provider's watchdog will close a lease left without a manifest,
/// and once it has, `status` and `deploy` name the commands that get a new
/// lease, before any transaction.
#[test]
fn akash_nothing_deployed_comes_from_the_chain_and_a_closed_lease_names_the_way_back() {
    let chain = Chain::new("akash-lease");
    let run = chain.status().run();
    run.expect_success();
    let status = last_json(&run);
    assert!(status["url"].is_null(), "{status}");
    assert!(
        run.stderr.contains("has no manifest yet: the provider closes a lease that gets none within 5 min of its creation"),
        "{}",
        run.stderr
    );
    let bare = chain
        .fake_cmd(&[
            "lease-status",
            "--dseq",
            DSEQ,
            "--provider",
            PROVIDER,
            "--from",
            "deployer",
            "--node",
            NODE,
            "--keyring-backend",
            "test",
        ])
        .output()
        .expect("run the fake");
    assert_eq!(
        String::from_utf8_lossy(&bare.stderr),
        "Error: remote server returned 404\n",
        "what xtask read is the bare 404"
    );

    // A first release that stops before its manifest says what follows.
    let run = chain
        .deploy(&chain.a.sha)
        .env("FAKE_AKASH_FAIL", "deployment-update")
        .run();
    let error = run.single_error();
    assert!(
        error.contains("has no manifest yet") && error.contains("within 5 min"),
        "{error}"
    );

    // The watchdog fired: status names the way back, and deploy refuses
    // before spending a transaction.
    let run = chain
        .status()
        .env("FAKE_AKASH_MANIFEST_TIMEOUT", "0")
        .env("FAKE_AKASH_VERSION", "v0.10.7")
        .run();
    let error = run.single_error();
    for words in [
        "the lease of deployment 4242 from",
        "was closed at height",
        "no manifest arrived within its --manifest-timeout (5 min)",
        "`provider-services tx deployment group start --owner akash1",
        " --dseq 4242 --gseq 1 --from deployer`",
        "`provider-services query market bid list --owner akash1",
        " --dseq 4242 --gseq 1 --oseq 2 --state open`",
        "`provider-services tx market lease create --dseq 4242 --gseq 1 --oseq 2 --provider <provider> --from deployer`",
    ] {
        assert!(error.contains(words), "`{words}` not in: {error}");
    }
    assert_ne!(run.code(), Some(0));
    let (run, calls) = chain.during(|| chain.deploy(&chain.a.sha).run());
    assert!(run.single_error().contains("was closed"), "{}", run.stderr);
    assert!(transactions(&calls).is_empty(), "{calls:?}");

    // The way back, as printed: a new order for the paused group, a lease
    // of order 2, then a deploy that names that order to the provider.
    let printed: Vec<&str> = error.split('`').skip(1).step_by(2).collect();
    let start = printed
        .iter()
        .find(|c| c.contains("group start"))
        .expect("the group start command");
    let create = printed
        .iter()
        .find(|c| c.contains("lease create"))
        .expect("the lease create command")
        .replace("<provider>", PROVIDER);
    for command in [start.to_string(), create] {
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        chain.tx(&args);
    }
    let (run, calls) = chain.during(|| chain.deploy(&chain.a.sha).run());
    run.expect_success();
    let sent = &calls[position(&calls, &["send-manifest"])];
    assert!(
        has_pair(sent, "--gseq", "1") && has_pair(sent, "--oseq", "2"),
        "{sent:?}"
    );
}

/// `count: 1` means downtime on every update (the provider's maxSurge 0,
/// maxUnavailable 1, no readiness probe): `deploy` says so, once; a
/// template whose count differs from the deployment on chain is refused
/// before the transaction the chain would refuse.
#[test]
fn akash_count_one_is_a_downtime_warning_and_a_changed_count_is_refused() {
    let chain = Chain::with_template("akash-count", |t| t.replace("count: 2", "count: 1"));
    let run = chain.deploy(&chain.a.sha).run();
    run.expect_success();
    assert_eq!(
        run.stderr
            .matches("warning: this update has downtime")
            .count(),
        1,
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("RollingUpdate maxSurge 0, maxUnavailable 1, no readiness probe"),
        "{}",
        run.stderr
    );
    let template = chain.project.root().join("deploy/akash/deploy.yaml");
    let text = std::fs::read_to_string(&template).expect("template");
    std::fs::write(&template, text.replace("count: 1", "count: 2")).expect("template");
    let (run, calls) = chain.during(|| chain.deploy(&chain.b.sha).run());
    let error = run.single_error();
    assert!(
        error.contains("asks for count [2] but deployment 4242 runs count [1]")
            && error.contains("create a new deployment"),
        "{error}"
    );
    assert!(transactions(&calls).is_empty(), "{calls:?}");
}

/// A release whose workload does not stay up is sent back long before the
/// provider's monitor would close the lease (41 failed checks at least 4 s
/// apart: 164 s at the soonest; the verification is at most 60 s): the
/// lease is still active afterwards and runs the previous release.
#[test]
fn akash_a_release_that_does_not_stay_up_is_sent_back_before_the_lease_closes() {
    let chain = Chain::new("akash-down");
    chain.deploy(&chain.a.sha).run().expect_success();
    // A third image, in the registry like any build, whose process refuses
    // its arguments and exits at once.
    let sha = chain.project.commit_empty("C, which does not start");
    let tag = format!("{}:{sha}", chain.canonical);
    Standin::new(&sha).error_rate(2.0).build(&tag);
    push(&tag);
    let started = std::time::Instant::now();
    let run = chain.deploy_with(&sha, &["--verify-timeout", "5"]).run();
    let error = run.single_error();
    assert!(error.contains("rolled back automatically"), "{error}");
    eprintln!(
        "FIGURE a release that does not start, sent back in {:.1}s (the provider closes after 164 s at the soonest)",
        started.elapsed().as_secs_f64()
    );
    assert!(started.elapsed().as_secs() < 164);
    let owner = chain
        .fake_ok(&[
            "keys",
            "show",
            "deployer",
            "-a",
            "--keyring-backend",
            "test",
        ])
        .trim()
        .to_owned();
    let leases: Value = serde_json::from_str(&chain.fake_ok(&[
        "query", "market", "lease", "list", "--owner", &owner, "--dseq", DSEQ, "--node", NODE,
        "-o", "json",
    ]))
    .expect("lease list JSON");
    assert_eq!(leases["leases"][0]["lease"]["state"], "active", "{leases}");
    let status = chain.status().run();
    status.expect_success();
    assert_eq!(last_json(&status)["image_sha"], chain.a.sha.as_str());
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
