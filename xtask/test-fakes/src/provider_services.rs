//! FAKE `provider-services` (Akash provider CLI) for xtask's tests. This is
//! NOT akash-network/provider: there is no chain and no provider. It checks
//! the argument shapes of the real CLI, keeps a pretend chain in
//! `$FAKE_AKASH_STATE`, and plays the provider by running the services on the
//! local Docker engine.
//!
//! Sources for each shape it checks (read through the code/docs search):
//! - Commands and flags `tx deployment create|update <sdl> --dseq --from`,
//!   `send-manifest <sdl> --dseq --provider --from`, `lease-status --dseq
//!   --provider --from` (`--gseq/--oseq` optional), env `AKASH_NODE`,
//!   `AKASH_CHAIN_ID`, `AKASH_KEYRING_BACKEND`, `AKASH_DSEQ`, `AKASH_PROVIDER`:
//!   akash-network docs, "Akash CLI" deployment guide (docs.akash.network,
//!   sandbox/CLI pages); env binding for every flag with prefixes AP_ and
//!   AKASH_: akash-network/provider cmd/provider-services/cmd/root.go
//!   (`GetPersistentPreRunE(encodingConfig, []string{"AP", "AKASH"})`), whose
//!   `--node` defaults to http://localhost:26657.
//! - Tx response JSON (`height, txhash, codespace, code, data, raw_log, logs,
//!   info, gas_wanted, gas_used, tx, timestamp`) with akash.v1 events
//!   (`module: deployment, action: deployment-created, version, owner, dseq`):
//!   the same docs page's `tx deployment create` sample output.
//! - Update refuses changed groups with "deployment update failed: groups are
//!   different than existing deployment, you cannot update groups":
//!   akash-network/node x/deployment/client/cli/tx.go (`cmdUpdate`,
//!   `errDeploymentUpdateGroupsChanged`); image/env changes only change the
//!   version hash.
//! - "chain ID required but not specified": cosmos-sdk client/tx/factory.go.
//! - `send-manifest` text output "provider: <addr>\n\tstatus:       PASS|FAIL"
//!   plus "\terror:        <err>", `-o json|yaml` as a list of
//!   {provider,status,error}, and on failure the final error "submit manifest
//!   to some providers has been failed": akash-network/provider
//!   cmd/provider-services/cmd/manifest.go (`doSendManifest`).
//! - Provider rejects a manifest whose version is not the on-chain one:
//!   "manifest version validation failed" (akash-network/provider
//!   manifest/manager.go `ErrManifestVersion`).
//! - `lease-status` JSON `{"services":{"<name>":{"name","available","total",
//!   "uris","observed_generation","replicas","updated_replicas",
//!   "ready_replicas","available_replicas"}},"forwarded_ports":{}}`: docs
//!   sample output; command shape: akash-network/provider
//!   cmd/provider-services/cmd/leaseStatus.go.
//! - cobra errors "unknown command \"x\" for \"provider-services\"",
//!   "unknown flag: --x".
//!
//! Differences from the real tool (documented, deliberate):
//! - No `--node` and no `AKASH_NODE` fails as the real default would
//!   (connection refused to localhost:26657); any given value is accepted.
//! - `--from` is any key name; the owner address is derived from it.
//! - Only `AKASH_*` env is read (not the `AP_*` prefix).
//! - One container per service whatever `count` says (`total` still reports
//!   `count`). Resource groups compared: compute resources, placement
//!   attributes and pricing, counts; not the endpoint list.
//! - Unconfirmed error texts (the fake's best guess): deployment not found,
//!   no leases for deployment, manifest not yet received, lease not found,
//!   missing --from.
//!
//! Environment: `FAKE_AKASH_STATE` (required state dir), `FAKE_AKASH_FAIL`
//! (comma list of `send-manifest`, `deployment-update`, `lease-status`:
//! force that step to fail), `FAKE_AKASH_FAIL_IMAGE` (send-manifest fails
//! for an SDL whose text contains this, e.g. one SHA: a bad release that can
//! still be rolled back within the same run), `FAKE_AKASH_DOCKER` (docker binary, default
//! `docker`). State: `calls.log` (one JSON argv array per call),
//! `calls.env.log` (same line number: the AKASH_* env seen, secrets
//! redacted), `chain.json` (deployments).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, ExitCode};

use serde_json::{Value, json};
use test_fakes::cli::{self, FlagSpec, Parsed};
use test_fakes::sdl::{self, Sdl};
use test_fakes::state;

const STATE_ENV: &str = "FAKE_AKASH_STATE";
const CHAIN: &str = "chain.json";
const DEFAULT_NODE: &str = "http://localhost:26657";

const FLAGS: &[FlagSpec] = &[
    cli::value("from"),
    cli::value("dseq"),
    cli::value("gseq"),
    cli::value("oseq"),
    cli::value("provider"),
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
    cli::boolean("recover"),
    cli::boolean("trace"),
];

const COMMON: &[&str] = &["node", "home", "trace", "keyring-backend", "keyring-dir"];
const TX: &[&str] = &[
    "from",
    "dseq",
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
const PROVIDER: &[&str] = &[
    "from",
    "dseq",
    "gseq",
    "oseq",
    "provider",
    "chain-id",
    "auth-type",
];

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
fn flag(p: &Parsed, name: &str) -> Option<String> {
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

fn forced(step: &str) -> bool {
    std::env::var("FAKE_AKASH_FAIL").is_ok_and(|v| v.split(',').any(|s| s.trim() == step))
}

fn run(dir: &Path, args: &[String]) -> Result<(), String> {
    log_call(dir, args)?;
    let parsed = cli::parse(args, FLAGS)?;
    let pos: Vec<&str> = parsed.positionals.iter().map(String::as_str).collect();
    match pos.as_slice() {
        ["version"] => {
            cli::only_allowed(&parsed, COMMON)?;
            println!("v0.6.10");
            Ok(())
        }
        ["keys", "show", name] => {
            cli::only_allowed(&parsed, &[COMMON, &["output"]].concat())?;
            keys_show(dir, name)
        }
        ["keys", "add", name] => {
            cli::only_allowed(&parsed, &[COMMON, &["recover", "output"]].concat())?;
            keys_add(dir, &parsed, name)
        }
        ["tx", "deployment", "create", sdl_path] => {
            cli::only_allowed(&parsed, &[COMMON, TX, &["deposit"]].concat())?;
            deployment_create(dir, &parsed, sdl_path)
        }
        ["tx", "deployment", "update", sdl_path] => {
            cli::only_allowed(&parsed, &[COMMON, TX].concat())?;
            deployment_update(dir, &parsed, sdl_path)
        }
        ["send-manifest", sdl_path] => {
            cli::only_allowed(&parsed, &[COMMON, PROVIDER, &["output"]].concat())?;
            send_manifest(dir, &parsed, sdl_path)
        }
        ["lease-status"] => {
            cli::only_allowed(&parsed, &[COMMON, PROVIDER].concat())?;
            lease_status(dir, &parsed)
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
        [other, ..] => Err(format!(
            "unknown command \"{other}\" for \"provider-services\"\nRun 'provider-services --help' for usage."
        )),
        [] => {
            println!("Provider services commands\n\nUsage:\n  provider-services [command]");
            Ok(())
        }
    }
}

/// Fails the way the real CLI does without a reachable node.
fn node(p: &Parsed) -> Result<String, String> {
    flag(p, "node").ok_or_else(|| {
        format!(
            "post failed: Post \"{DEFAULT_NODE}\": dial tcp 127.0.0.1:26657: connect: connection refused \
             (fake provider-services: give --node or AKASH_NODE)"
        )
    })
}

/// bech32-looking owner address derived from the key name.
fn address_of(key: &str) -> String {
    const CHARSET: &[u8] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    let hex = state::hex64(key.as_bytes());
    let body: String = hex
        .bytes()
        .take(38)
        .map(|b| CHARSET[usize::from(b) % CHARSET.len()] as char)
        .collect();
    format!("akash1{body}")
}

/// The signer: `--from` must name a key in the keyring (by name or address),
/// as the real CLI needs it to sign (cosmos-sdk client/context: `from`).
fn owner(dir: &Path, p: &Parsed) -> Result<String, String> {
    let from = flag(p, "from").ok_or_else(|| {
        "empty address string is not allowed (fake provider-services: give --from or AKASH_FROM)".to_string()
    })?;
    let keyring = load_keyring(dir)?;
    let known = keyring.get(&from).is_some()
        || keyring
            .as_object()
            .is_some_and(|k| k.values().any(|a| a.as_str() == Some(from.as_str())));
    if !known {
        return Err(format!(
            "{from} is not a valid name or address: {from}.info: key not found"
        ));
    }
    Ok(address_of(&from))
}

const KEYRING: &str = "keyring.json";

fn load_keyring(dir: &Path) -> Result<Value, String> {
    state::read_json(&dir.join(KEYRING), json!({}))
}

fn key_block(name: &str) -> String {
    format!(
        "- address: {}\n  name: {name}\n  pubkey: '{{\"@type\":\"/cosmos.crypto.secp256k1.PubKey\",\"key\":\"{}\"}}'\n  type: local\n",
        address_of(name),
        &state::hex64(name.as_bytes())[..44]
    )
}

/// `keys show NAME` (cosmos-sdk client/keys/show.go).
fn keys_show(dir: &Path, name: &str) -> Result<(), String> {
    if load_keyring(dir)?.get(name).is_none() {
        return Err(format!(
            "{name} is not a valid name or address: {name}.info: key not found"
        ));
    }
    print!("{}", key_block(name));
    Ok(())
}

/// `keys add NAME --recover`: the bip39 mnemonic is read from stdin, as the
/// real one prompts `> Enter your bip39 mnemonic` (cosmos-sdk client/keys/add.go).
/// Without --recover the real one creates a key and prints a new mnemonic:
/// not needed by any caller here, refused.
fn keys_add(dir: &Path, p: &Parsed, name: &str) -> Result<(), String> {
    if !p.bool("recover") {
        return Err("fake provider-services: only `keys add NAME --recover` is supported".into());
    }
    let mut keyring = load_keyring(dir)?;
    if keyring.get(name).is_some() {
        return Err("aborted".into());
    }
    eprintln!("> Enter your bip39 mnemonic");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let words = line.split_whitespace().count();
    if ![12, 15, 18, 21, 24].contains(&words) {
        return Err("invalid mnemonic".into());
    }
    keyring[name] = json!(address_of(name));
    state::write_json(&dir.join(KEYRING), &keyring)?;
    print!("\n{}", key_block(name));
    Ok(())
}

fn dseq_of(p: &Parsed) -> Result<Option<u64>, String> {
    flag(p, "dseq")
        .map(|d| {
            d.parse::<u64>()
                .map_err(|_| format!("strconv.ParseUint: parsing \"{d}\": invalid syntax"))
        })
        .transpose()
}

fn read_sdl(path: &str) -> Result<(String, Sdl), String> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("open {path}: no such file or directory"),
        _ => format!("read {path}: {e}"),
    })?;
    let parsed = sdl::parse(&text)?;
    Ok((text, parsed))
}

fn load_chain(dir: &Path) -> Result<Value, String> {
    state::read_json(&dir.join(CHAIN), json!({"height": 100, "deployments": {}}))
}

fn save_chain(dir: &Path, chain: &Value) -> Result<(), String> {
    state::write_json(&dir.join(CHAIN), chain)
}

/// The on-chain deployment `dseq` owned by `owner`, as the chain query would find it.
fn deployment<'a>(chain: &'a mut Value, dseq: u64, owner: &str) -> Result<&'a mut Value, String> {
    let d = chain
        .pointer_mut(&format!("/deployments/{dseq}"))
        .filter(|d| d.get("owner").and_then(Value::as_str) == Some(owner));
    d.ok_or_else(|| "rpc error: code = NotFound desc = deployment not found".to_string())
}

fn confirm(p: &Parsed) -> Result<(), String> {
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

fn tx_preflight(dir: &Path, p: &Parsed) -> Result<String, String> {
    node(p)?;
    let owner = owner(dir, p)?;
    if flag(p, "chain-id").is_none() {
        return Err("chain ID required but not specified".into());
    }
    Ok(owner)
}

fn next_height(chain: &mut Value) -> u64 {
    let h = chain.get("height").and_then(Value::as_u64).unwrap_or(100) + 1;
    chain["height"] = json!(h);
    h
}

fn print_tx(height: u64, action: &str, owner: &str, dseq: u64, version: &str) {
    let events = json!([{
        "type": "akash.v1",
        "attributes": [
            {"key": "module", "value": "deployment"},
            {"key": "action", "value": action},
            {"key": "version", "value": version},
            {"key": "owner", "value": owner},
            {"key": "dseq", "value": dseq.to_string()},
        ]
    }]);
    let logs = json!([{"msg_index": 0, "log": "", "events": events}]);
    let tx = json!({
        "height": height.to_string(),
        "txhash": state::hex64(format!("{action}/{dseq}/{height}").as_bytes()).to_ascii_uppercase(),
        "codespace": "",
        "code": 0,
        "data": "",
        "raw_log": logs.to_string(),
        "logs": logs,
        "info": "",
        "gas_wanted": "200000",
        "gas_used": "94653",
        "tx": null,
        "timestamp": "",
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&tx).unwrap_or_else(|_| tx.to_string())
    );
}

fn deployment_create(dir: &Path, p: &Parsed, sdl_path: &str) -> Result<(), String> {
    let owner = tx_preflight(dir, p)?;
    let (text, sdl) = read_sdl(sdl_path)?;
    confirm(p)?;
    let mut chain = load_chain(dir)?;
    let height = next_height(&mut chain);
    // The real dseq is the block height unless given.
    let dseq = dseq_of(p)?.unwrap_or(height);
    if chain.pointer(&format!("/deployments/{dseq}")).is_some() {
        return Err("failed to execute message; message index: 0: Deployment exists".into());
    }
    chain["deployments"][dseq.to_string()] = json!({
        "owner": owner,
        "version_counter": 1,
        "version": sdl.version,
        "groups": sdl.groups,
        "sdl": text,
        "manifest": null,
    });
    save_chain(dir, &chain)?;
    print_tx(height, "deployment-created", &owner, dseq, &sdl.version);
    Ok(())
}

fn deployment_update(dir: &Path, p: &Parsed, sdl_path: &str) -> Result<(), String> {
    let owner = tx_preflight(dir, p)?;
    let dseq = dseq_of(p)?.unwrap_or(0);
    let (text, sdl) = read_sdl(sdl_path)?;
    let mut chain = load_chain(dir)?;
    let d = deployment(&mut chain, dseq, &owner)?;
    if d.get("groups").and_then(Value::as_str) != Some(sdl.groups.as_str()) {
        return Err(
            "deployment update failed: groups are different than existing deployment, you cannot update groups"
                .into(),
        );
    }
    if forced("deployment-update") {
        return Err(
            "fake provider-services: forced failure (FAKE_AKASH_FAIL=deployment-update)".into(),
        );
    }
    confirm(p)?;
    let counter = d
        .get("version_counter")
        .and_then(Value::as_u64)
        .unwrap_or(1);
    if d.get("version").and_then(Value::as_str) != Some(sdl.version.as_str()) {
        d["version_counter"] = json!(counter + 1);
    }
    d["version"] = json!(sdl.version);
    d["sdl"] = json!(text);
    let height = next_height(&mut chain);
    save_chain(dir, &chain)?;
    print_tx(height, "deployment-updated", &owner, dseq, &sdl.version);
    Ok(())
}

fn docker() -> String {
    std::env::var("FAKE_AKASH_DOCKER")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "docker".into())
}

fn container_name(dir: &Path, dseq: u64, service: &str) -> String {
    let tag = state::fnv64(dir.to_string_lossy().as_bytes());
    format!(
        "fake-akash-{:012x}-{dseq}-{service}",
        tag & 0xffff_ffff_ffff
    )
}

/// Runs docker; Ok(stdout) or Err(stderr).
fn run_docker(args: &[String]) -> Result<String, String> {
    let out = Command::new(docker())
        .args(args)
        .output()
        .map_err(|e| format!("exec {}: {e}", docker()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(if err.is_empty() {
            format!(
                "docker {} failed with {}",
                args.first().map_or("", String::as_str),
                out.status
            )
        } else {
            err
        })
    }
}

fn start_services(dir: &Path, dseq: u64, sdl: &Sdl) -> Result<(), String> {
    for svc in &sdl.services {
        let name = container_name(dir, dseq, &svc.name);
        // The previous container may not exist; that is fine.
        let _ = run_docker(&["rm".into(), "-f".into(), name.clone()]);
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--label".into(),
            format!("fake-akash-state={}", dir.display()),
            "--label".into(),
            format!("fake-akash-dseq={dseq}"),
            "--name".into(),
            name,
        ];
        for port in &svc.ports {
            args.push("-p".into());
            args.push(format!("127.0.0.1::{port}"));
        }
        for kv in &svc.env {
            args.push("-e".into());
            args.push(kv.clone());
        }
        args.push(svc.image.clone());
        run_docker(&args)?;
    }
    Ok(())
}

fn print_send_result(format: &str, provider: &str, error: Option<&str>) {
    let status = if error.is_some() { "FAIL" } else { "PASS" };
    match format {
        "json" => {
            let mut r = json!({"provider": provider, "status": status});
            if let Some(e) = error {
                r["error"] = json!(e);
            }
            println!("{}", json!([r]));
        }
        "yaml" => {
            println!("- provider: {provider}\n  status: {status}");
            if let Some(e) = error {
                println!("  error: {}", json!(e));
            }
        }
        _ => {
            println!("provider: {provider}\n\tstatus:       {status}");
            if let Some(e) = error {
                println!("\terror:        {e}");
            }
        }
    }
}

fn send_manifest(dir: &Path, p: &Parsed, sdl_path: &str) -> Result<(), String> {
    node(p)?;
    let owner = owner(dir, p)?;
    let (text, sdl) = read_sdl(sdl_path)?;
    let provider = flag(p, "provider").ok_or("empty address string is not allowed")?;
    let dseq = dseq_of(p)?.unwrap_or(0);
    let format = p.last("output").unwrap_or("text").to_string();
    let mut chain = load_chain(dir)?;
    let d =
        deployment(&mut chain, dseq, &owner).map_err(|_| "no leases for deployment".to_string())?;
    const FAILED: &str = "submit manifest to some providers has been failed";

    let refused_image = std::env::var("FAKE_AKASH_FAIL_IMAGE")
        .ok()
        .filter(|needle| !needle.is_empty() && text.contains(needle.as_str()));
    let outcome = if forced("send-manifest") {
        Err("fake provider-services: forced failure (FAKE_AKASH_FAIL=send-manifest)".to_string())
    } else if let Some(needle) = refused_image {
        Err(format!(
            "fake provider-services: forced failure for image {needle} (FAKE_AKASH_FAIL_IMAGE)"
        ))
    } else if d.get("version").and_then(Value::as_str) != Some(sdl.version.as_str()) {
        Err("manifest version validation failed".to_string())
    } else {
        start_services(dir, dseq, &sdl)
    };
    if let Err(e) = outcome {
        print_send_result(&format, &provider, Some(&e));
        return Err(FAILED.into());
    }
    let services: Vec<Value> = sdl
        .services
        .iter()
        .map(|s| json!({"name": s.name, "count": s.count, "ports": s.ports}))
        .collect();
    d["manifest"] = json!({"version": sdl.version, "provider": provider, "services": services});
    save_chain(dir, &chain)?;
    print_send_result(&format, &provider, None);
    Ok(())
}

fn lease_status(dir: &Path, p: &Parsed) -> Result<(), String> {
    node(p)?;
    let owner = owner(dir, p)?;
    let provider = flag(p, "provider").ok_or("empty address string is not allowed")?;
    let dseq = dseq_of(p)?.unwrap_or(0);
    if forced("lease-status") {
        return Err("fake provider-services: forced failure (FAKE_AKASH_FAIL=lease-status)".into());
    }
    let mut chain = load_chain(dir)?;
    let d = deployment(&mut chain, dseq, &owner)?;
    let manifest = d
        .get("manifest")
        .filter(|m| !m.is_null())
        .ok_or("remote server returned 404: manifest not yet received for that deployment")?;
    if manifest.get("provider").and_then(Value::as_str) != Some(provider.as_str()) {
        return Err("remote server returned 404: lease not found".into());
    }
    let mut services = serde_json::Map::new();
    for svc in manifest
        .get("services")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let name = svc
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let count = svc.get("count").and_then(Value::as_u64).unwrap_or(1);
        let container = container_name(dir, dseq, &name);
        let running = run_docker(&[
            "inspect".into(),
            "--format".into(),
            "{{.State.Running}}".into(),
            container.clone(),
        ])
        .is_ok_and(|o| o.trim() == "true");
        let mut uris = Vec::new();
        if running {
            for port in svc
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(port) = port.as_u64() else { continue };
                let out = run_docker(&["port".into(), container.clone(), format!("{port}/tcp")])
                    .unwrap_or_default();
                if let Some(line) = out
                    .lines()
                    .map(str::trim)
                    .find(|l| l.starts_with("127.0.0.1:"))
                {
                    uris.push(line.to_string());
                }
            }
        }
        let available = u64::from(running).min(count);
        services.insert(
            name.clone(),
            json!({
                "name": name,
                "available": available,
                "total": count,
                "uris": uris,
                "observed_generation": 1,
                "replicas": count,
                "updated_replicas": count,
                "ready_replicas": available,
                "available_replicas": available,
            }),
        );
    }
    let out = json!({"services": services, "forwarded_ports": {}});
    println!(
        "{}",
        serde_json::to_string_pretty(&out).unwrap_or_else(|_| out.to_string())
    );
    Ok(())
}
