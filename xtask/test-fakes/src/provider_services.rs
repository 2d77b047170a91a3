//! FAKE `provider-services` (Akash provider CLI) for xtask's tests. This is
//! NOT akash-network/provider: there is no chain and no provider. It checks
//! the argument shapes of the real CLI, keeps a pretend chain in
//! `$FAKE_AKASH_STATE` (provider_services/chain.rs), and plays the provider
//! by running the services on the local Docker engine
//! (provider_services/provider.rs).
//!
//! Sources for each shape it checks (read through the code/docs search):
//! - Commands and flags `tx deployment create|update|close <sdl> --dseq
//!   --from`, `send-manifest <sdl> --dseq --provider --from`, `lease-status
//!   --dseq --provider --from` (`--gseq/--oseq` optional): akash-network
//!   docs "Akash CLI" deployment guide; akash-network/provider
//!   cmd/provider-services/cmd/{manifest.go, leaseStatus.go, helpers.go
//!   (`addLeaseFlags`, `addAuthFlags`: `--auth-type`, default jwt)}. Env
//!   binding for every flag with prefixes AP_ and AKASH_:
//!   cmd/provider-services/cmd/root.go, whose `--node` defaults to
//!   http://localhost:26657.
//! - Versions (`FAKE_AKASH_VERSION`, default v0.6.10): v0.6.x (cosmos-sdk
//!   0.45) has no `--auth-type` and speaks mTLS only, broadcast modes
//!   sync|async|block; v0.8 and later take `--auth-type jwt|mtls` and have
//!   no `block` mode (removed from cosmos-sdk 0.50). Unknown flags are
//!   refused with pflag's "unknown flag: --x", per command and version.
//! - Transactions (cosmos-sdk client/tx/tx.go, client/flags/flags.go):
//!   `--gas` (default 200000, or `auto`: simulate and print `gas estimate:
//!   N` to stderr), `--gas-adjustment`, `--gas-prices` xor `--fees` ("cannot
//!   provide both fees and gas prices"), `--broadcast-mode`, `-y`. JSON
//!   `TxResponse` (height, txhash, codespace, code, data, raw_log, logs,
//!   info, gas_wanted, gas_used, tx, timestamp, events). A transaction the
//!   node refuses in CheckTx exits 0 with a non-zero `code`: 13 insufficient
//!   fee, 5 insufficient funds, 11 out of gas at DeliverTx (cosmos-sdk
//!   types/errors/errors.go). `query tx HASH` fails with "tx (HASH) not
//!   found" until a block includes it.
//! - Update refuses changed groups with "deployment update failed: groups
//!   are different than existing deployment, you cannot update groups":
//!   akash-network/node x/deployment/client/cli/tx.go (`cmdUpdate`).
//! - Queries, JSON by proto field names (akash-network/akash-api
//!   proto/node/akash/{deployment/v1beta3/{deployment,groupspec}.proto,
//!   cert/v1beta3/query.proto}, market lease and cosmos bank responses):
//!   see chain.rs for each shape.
//! - "chain ID required but not specified": cosmos-sdk client/tx/factory.go.
//! - Keys: bech32 addresses and bip39 mnemonics checked by reference crates
//!   (test_fakes::keys); `keys show NAME [-a]`, `keys add NAME --recover`
//!   reading the mnemonic on stdin (cosmos-sdk client/keys).
//! - cobra errors "unknown command \"x\" for \"provider-services\"".
//!
//! Differences from the real tool (documented, deliberate):
//! - No `--node` and no `AKASH_NODE` fails as the real default would
//!   (connection refused to localhost:26657); any given value is accepted.
//! - Addresses are fingerprints of the mnemonic, not HD-derived keys.
//! - Only `AKASH_*` env is read (not the `AP_*` prefix).
//! - One container per service whatever `count` says: when it runs, all
//!   `count` replicas are reported available. Block inclusion and the
//!   provider's update lag are counted in invocations; the provider's
//!   watchdog and health monitor in seconds (provider_services/chain.rs).
//! - The monitor sees availability when a manifest starts and at each
//!   `lease-status`, not on its own timer.
//! - Unconfirmed error texts and codes (the fake's own, marked where used):
//!   market code 8 for a lease on a closed deployment, "invalid broadcast
//!   mode", "invalid lease state"/"invalid certificate state", the text
//!   after `invalid manifest:` of a forced refusal.
//! - Stricter than real (deliberate): the `FAKE_AKASH_FAIL*` knobs fail a
//!   step on demand. `tx deployment update` compares what the real CLI
//!   compares before broadcasting (chain-sdk go/cli/deployment_tx.go: the
//!   number of groups, then `GroupSpec.Equal`: name, requirements,
//!   resources with count and price).
//! - Checked again against the sources (chain-sdk go/node/deployment/v1/
//!   errors.go, go/node/market/v1/errors.go, go/cli/cert_tx.go,
//!   go/util/tls/{utils.go, key_pair_manager.go}, go/cli/deployment_tx.go
//!   for "groups are different than existing deployment" and the default
//!   dseq = the latest block height; provider cmd/provider-services/main.go
//!   and cmd/root.go for the AP and AKASH env prefixes): deployment codes
//!   3/4/5, market 10 "lease not active", "certificate error: cannot
//!   overwrite certificate", "certificate error: certificate has not been
//!   committed to blockchain", "could not open certificate PEM file: open
//!   PATH: no such file or directory".
//!
//! What the provider does by itself, as its sources say (each cited where
//! it is played): `lease-status` for a lease it runs no manifest for is a
//! bare 404 (provider.rs `NOT_FOUND`); a manifest sent before it processed
//! the update event is refused with "manifest version validation failed"
//! (provider.rs `send_manifest`); a lease without a manifest is closed after
//! `--manifest-timeout`, an unavailable workload after 41 failed checks
//! (chain.rs `provider_closes`). The lease's order counts as in the real CLI:
//! `--gseq`/`--oseq` default to 1, 0 matches any (chain.rs `order_flags`);
//! `tx deployment group start --owner --dseq` starts a paused group again
//! (chain.rs `group_start`).
//!
//! Environment: `FAKE_AKASH_STATE` (required state dir), `FAKE_AKASH_VERSION`,
//! `FAKE_AKASH_MIN_GAS_PRICE` (node minimum, default 0.025uakt),
//! `FAKE_AKASH_BLOCK_CALLS` (invocations until a broadcast tx is included,
//! default 2), `FAKE_AKASH_FAIL` (comma list of `send-manifest`,
//! `deployment-update`, `lease-status`: force that step to fail),
//! `FAKE_AKASH_FAIL_IMAGE` (send-manifest fails for an SDL whose text
//! contains this), `FAKE_AKASH_LEASE_FAIL_IMAGE` (lease-status fails once the
//! lease's manifest contains this), `FAKE_AKASH_DOCKER` (docker binary,
//! default `docker`), `FAKE_AKASH_UPDATE_LAG_CALLS` (invocations after an
//! update's block before the provider accepts its manifest, default 2),
//! `FAKE_AKASH_MANIFEST_TIMEOUT` (seconds a lease waits for its first
//! manifest, default 300), `FAKE_AKASH_MONITOR_CLOSE_SECS` (seconds a
//! workload may stay unavailable, default 164).
//! State: `calls.log` (one JSON argv array per call), `calls.env.log` (same
//! line number: the AKASH_* env seen, secrets redacted), `chain.json`,
//! `keyring.json`.

#[path = "provider_services/chain.rs"]
mod chain;
#[path = "provider_services/keyring.rs"]
mod keyring;
#[path = "provider_services/provider.rs"]
mod provider;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};
use test_fakes::cli::{self, FlagSpec, Parsed};
use test_fakes::sdl::{self, Sdl};
use test_fakes::state;

const STATE_ENV: &str = "FAKE_AKASH_STATE";
const DEFAULT_NODE: &str = "http://localhost:26657";

const FLAGS: &[FlagSpec] = &[
    cli::value("from"),
    cli::value("dseq"),
    cli::value("gseq"),
    cli::value("oseq"),
    cli::value("provider"),
    cli::value("owner"),
    cli::value("state"),
    cli::value("serial"),
    cli::value("height"),
    cli::value("type"),
    cli::value("node"),
    cli::value("chain-id"),
    cli::value("keyring-backend"),
    cli::value("keyring-dir"),
    cli::value("home"),
    cli::value_short("output", 'o'),
    cli::value("gas"),
    cli::value("gas-prices"),
    cli::value("gas-adjustment"),
    cli::value("fees"),
    cli::value_short("broadcast-mode", 'b'),
    cli::value("sign-mode"),
    cli::value("deposit"),
    cli::value("note"),
    cli::value("auth-type"),
    cli::boolean_short("yes", 'y'),
    cli::boolean_short("address", 'a'),
    cli::boolean("recover"),
    cli::boolean("overwrite"),
    cli::boolean("trace"),
];

const COMMON: &[&str] = &["node", "home", "trace", "keyring-backend", "keyring-dir"];
const QUERY: &[&str] = &["node", "home", "trace", "output", "height"];
const TX: &[&str] = &[
    "from",
    "chain-id",
    "output",
    "gas",
    "gas-prices",
    "gas-adjustment",
    "fees",
    "broadcast-mode",
    "sign-mode",
    "note",
    "yes",
];
const PROVIDER: &[&str] = &["from", "dseq", "gseq", "oseq", "provider", "chain-id"];

/// The CLI generation being faked (`FAKE_AKASH_VERSION`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// v0.6.x: mTLS only, no `--auth-type`, `block` broadcast mode.
    V06,
    /// v0.8 and later: `--auth-type jwt|mtls`.
    Jwt,
}

fn version() -> String {
    std::env::var("FAKE_AKASH_VERSION").unwrap_or_else(|_| "v0.6.10".into())
}

/// The minor version of a v0.x CLI (99 for anything later).
pub(crate) fn minor_version() -> u32 {
    let v = version();
    let mut parts = v.trim_start_matches('v').split('.');
    match (parts.next(), parts.next()) {
        (Some("0"), Some(m)) => m.parse().unwrap_or(0),
        _ => 99,
    }
}

pub(crate) fn family() -> Family {
    if version().trim_start_matches('v').starts_with("0.6.") {
        Family::V06
    } else {
        Family::Jwt
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = match state::dir_from_env(STATE_ENV, "provider-services") {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    match run(&dir, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("Error: {message}");
            ExitCode::from(1)
        }
    }
}

/// Env names or values that must never reach a log.
fn is_secret(name: &str, value: &str) -> bool {
    let n = name.to_ascii_uppercase();
    let secret_name = [
        "MNEMONIC",
        "PASSWORD",
        "PASSPHRASE",
        "SECRET",
        "TOKEN",
        "PRIVATE",
        "SEED",
    ]
    .iter()
    .any(|w| n.contains(w))
        || n.ends_with("_KEY")
        || n.ends_with("_KEY_FILE");
    // A 12+ word value looks like a mnemonic whatever its name.
    secret_name || value.split_whitespace().count() >= 12
}

fn log_call(dir: &Path, args: &[String]) -> Result<(), String> {
    state::append_line(dir, "calls.log", &json!(args))?;
    let mut env = BTreeMap::new();
    for (k, v) in std::env::vars_os() {
        let (Some(k), v) = (k.to_str(), v.to_string_lossy().into_owned()) else {
            continue;
        };
        if k.starts_with("AKASH_") {
            let shown = if is_secret(k, &v) {
                "<redacted>".to_string()
            } else {
                v
            };
            env.insert(k.to_string(), shown);
        }
    }
    state::append_line(dir, "calls.env.log", &json!(env))
}

/// A flag's value: the command line wins, then `AKASH_<FLAG>`.
pub(crate) fn flag(p: &Parsed, name: &str) -> Option<String> {
    p.last(name).map(str::to_string).or_else(|| {
        let env = format!("AKASH_{}", name.to_ascii_uppercase().replace('-', "_"));
        std::env::var(env).ok().filter(|v| !v.is_empty())
    })
}

fn yes(p: &Parsed) -> bool {
    p.is_set("yes") && p.bool("yes")
        || !p.is_set("yes")
            && std::env::var("AKASH_YES")
                .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "True"))
}

pub(crate) fn forced(step: &str) -> bool {
    std::env::var("FAKE_AKASH_FAIL").is_ok_and(|v| v.split(',').any(|s| s.trim() == step))
}

pub(crate) fn dseq_of(p: &Parsed) -> Result<Option<u64>, String> {
    flag(p, "dseq")
        .map(|d| {
            d.parse::<u64>()
                .map_err(|_| format!("strconv.ParseUint: parsing \"{d}\": invalid syntax"))
        })
        .transpose()
}

pub(crate) fn read_sdl(path: &str) -> Result<(String, Sdl), String> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("open {path}: no such file or directory"),
        _ => format!("read {path}: {e}"),
    })?;
    let parsed = sdl::parse(&text)?;
    Ok((text, parsed))
}

pub(crate) fn confirm(p: &Parsed) -> Result<(), String> {
    if yes(p) {
        return Ok(());
    }
    eprint!("confirm transaction before signing and broadcasting [y/N]: ");
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    match line.trim() {
        "y" | "Y" | "yes" => Ok(()),
        _ => Err("canceled transaction".into()),
    }
}

pub(crate) fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// Fails the way the real CLI does without a reachable node.
pub(crate) fn node(p: &Parsed) -> Result<String, String> {
    flag(p, "node").ok_or_else(|| {
        format!(
            "post failed: Post \"{DEFAULT_NODE}\": dial tcp 127.0.0.1:26657: connect: connection refused \
             (fake provider-services: give --node or AKASH_NODE)"
        )
    })
}

fn allow(p: &Parsed, lists: &[&[&str]]) -> Result<(), String> {
    cli::only_allowed(p, &lists.concat())
}

fn provider_flags() -> Vec<&'static str> {
    let mut f = [COMMON, PROVIDER].concat();
    if family() == Family::Jwt {
        f.push("auth-type");
    }
    f
}

fn run(dir: &Path, args: &[String]) -> Result<(), String> {
    log_call(dir, args)?;
    chain::tick(dir)?;
    let parsed = cli::parse(args, FLAGS)?;
    let p = &parsed;
    let pos: Vec<&str> = parsed.positionals.iter().map(String::as_str).collect();
    match pos.as_slice() {
        ["version"] => {
            allow(p, &[COMMON])?;
            println!("{}", version());
            Ok(())
        }
        ["keys", "show", name] => {
            allow(p, &[COMMON, &["output", "address"]])?;
            keyring::show(dir, p, name)
        }
        ["keys", "add", name] => {
            allow(p, &[COMMON, &["recover", "output"]])?;
            keyring::add(dir, p, name)
        }
        ["tx", "deployment", "create", sdl_path] => {
            allow(p, &[COMMON, TX, &["dseq", "deposit"]])?;
            chain::deployment_create(dir, p, sdl_path)
        }
        ["tx", "deployment", "update", sdl_path] => {
            allow(p, &[COMMON, TX, &["dseq"]])?;
            chain::deployment_update(dir, p, sdl_path)
        }
        ["tx", "deployment", "close"] => {
            allow(p, &[COMMON, TX, &["dseq"]])?;
            chain::deployment_close(dir, p)
        }
        ["tx", "deployment", "group", "start"] => {
            allow(p, &[COMMON, TX, &["owner", "dseq", "gseq"]])?;
            chain::group_start(dir, p)
        }
        ["tx", "market", "lease", action @ ("create" | "close")] => {
            allow(p, &[COMMON, TX, &["dseq", "gseq", "oseq", "provider"]])?;
            chain::lease_tx(dir, p, &format!("lease-{action}"))
        }
        ["tx", "cert", "generate", "client"] => {
            allow(p, &[COMMON, &["from", "overwrite"]])?;
            provider::cert_generate(dir, p)
        }
        ["tx", "cert", "publish", "client"] => {
            allow(p, &[COMMON, TX])?;
            chain::cert_publish(dir, p)
        }
        ["query" | "q", "deployment", "get"] => {
            allow(p, &[QUERY, &["owner", "dseq"]])?;
            chain::deployment_get(dir, p)
        }
        ["query" | "q", "market", "lease", "list"] => {
            allow(
                p,
                &[
                    QUERY,
                    &["owner", "dseq", "gseq", "oseq", "provider", "state"],
                ],
            )?;
            chain::lease_list(dir, p)
        }
        ["query" | "q", "bank", "balances", address] => {
            allow(p, &[QUERY])?;
            chain::balances(dir, p, address)
        }
        ["query" | "q", "cert", "list"] => {
            allow(p, &[QUERY, &["owner", "state", "serial"]])?;
            chain::cert_list(dir, p)
        }
        ["query" | "q", "tx", hash] => {
            allow(p, &[QUERY, &["type"]])?;
            chain::query_tx(dir, p, hash)
        }
        ["send-manifest", sdl_path] => {
            allow(p, &[&provider_flags(), &["output"]])?;
            provider::send_manifest(dir, p, sdl_path)
        }
        ["lease-status"] => {
            allow(p, &[&provider_flags()])?;
            provider::lease_status(dir, p)
        }
        ["tx", "deployment", "create" | "update"] | ["send-manifest"] => {
            Err("accepts 1 arg(s), received 0".into())
        }
        ["tx", "deployment", "create" | "update", _, extra @ ..]
        | ["send-manifest", _, extra @ ..] => {
            Err(format!("accepts 1 arg(s), received {}", extra.len() + 1))
        }
        ["lease-status", rest @ ..] => Err(format!(
            "unknown command \"{}\" for \"provider-services lease-status\"",
            rest[0]
        )),
        ["tx", "deployment", other, ..] => Err(format!(
            "unknown command \"{other}\" for \"provider-services tx deployment\""
        )),
        ["tx", other, ..] => Err(format!(
            "unknown command \"{other}\" for \"provider-services tx\""
        )),
        ["query" | "q", other, ..] => Err(format!(
            "unknown command \"{other}\" for \"provider-services query\""
        )),
        [other, ..] => Err(format!(
            "unknown command \"{other}\" for \"provider-services\"\nRun 'provider-services --help' for usage."
        )),
        [] => {
            println!("Provider services commands\n\nUsage:\n  provider-services [command]");
            Ok(())
        }
    }
}
