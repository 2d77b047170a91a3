//! The pretend chain (`chain.json`): deployments, leases, certificates,
//! balances and transactions; the transaction pipeline (simulate, fee,
//! CheckTx, inclusion a few calls later, DeliverTx) and the queries.
//!
//! Each invocation of the fake is one step of time: a transaction broadcast
//! `sync` is included `FAKE_AKASH_BLOCK_CALLS` (default 2) invocations
//! later, so a `send-manifest` right after the update still sees the old
//! version on chain (the race in the real tool), and `query tx` answers
//! "not found" until then.

use std::path::Path;

use serde_json::{Value, json};
use test_fakes::cli::Parsed;
use test_fakes::keys;
use test_fakes::state;

use super::{Family, confirm, dseq_of, family, flag, forced, keyring, node, print_json};

const CHAIN: &str = "chain.json";
/// Gas a deployment transaction uses in this fake (a real update is of this order).
pub const GAS_USED: u64 = 94_653;
/// The CLI's default gas limit when `--gas` is not given.
const DEFAULT_GAS: u64 = 200_000;
/// A funded account's balance unless the chain recorded another.
const DEFAULT_BALANCE: u128 = 5_000_000;

pub fn load(dir: &Path) -> Result<Value, String> {
    state::read_json(
        &dir.join(CHAIN),
        json!({"height": 100, "calls": 0, "deployments": {}, "leases": [], "certs": [], "balances": {}, "txs": {}}),
    )
}

pub fn save(dir: &Path, chain: &Value) -> Result<(), String> {
    state::write_json(&dir.join(CHAIN), chain)
}

fn block_calls() -> u64 {
    std::env::var("FAKE_AKASH_BLOCK_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// Wall-clock seconds (the provider's timers are in time, not calls).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn secs_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The version the provider accepts a manifest for: the deployment's, once
/// it has processed the update event `FAKE_AKASH_UPDATE_LAG_CALLS`
/// invocations after the block (default 2: the first `send-manifest` after
/// the poll that saw the block is refused); the previous one before that
/// (akash-network/provider manifest/manager.go: `versions` grows on the
/// update event, `validateRequest` compares with its last entry).
pub fn provider_expects(chain: &Value, dseq: u64) -> Option<String> {
    let d = chain.pointer(&format!("/deployments/{dseq}"))?;
    let lag = secs_env("FAKE_AKASH_UPDATE_LAG_CALLS", 2);
    let calls = chain["calls"].as_u64().unwrap_or(0);
    let learnt = d["updated_at_call"]
        .as_u64()
        .is_none_or(|at| calls >= at + lag);
    let v = if learnt {
        &d["version"]
    } else {
        &d["previous_version"]
    };
    v.as_str().map(str::to_string)
}

/// The provider closes a lease by itself (MsgCloseBid; on chain the lease
/// is closed and the group paused: akash-network/node
/// x/market/handler/server.go `CloseBid`, x/deployment/keeper `OnBidClosed`),
/// and deletes what runs for it:
/// - no manifest within `--manifest-timeout` (default 5m) of winning the
///   lease: manifest/watchdog.go, reason
///   `lease_closed_reason_manifest_timeout` (`FAKE_AKASH_MANIFEST_TIMEOUT`
///   seconds, default 300);
/// - a workload below its count for more than `monitor-max-retries` (40)
///   checks at least `monitor-retry-period` (4s, plus up to 15s jitter)
///   apart: cluster/monitor.go and cluster/config.go, reason
///   `lease_closed_reason_unstable`; so never sooner than 41 × 4s = 164s
///   (`FAKE_AKASH_MONITOR_CLOSE_SECS`, default 164). The fake sees
///   availability when the manifest starts and at each `lease-status`.
fn provider_closes(dir: &Path, chain: &mut Value) {
    let now = now_secs();
    let manifest_timeout = secs_env("FAKE_AKASH_MANIFEST_TIMEOUT", 300);
    let monitor_close = secs_env("FAKE_AKASH_MONITOR_CLOSE_SECS", 164);
    let height = chain["height"].as_u64().unwrap_or(100);
    let mut closing = Vec::new();
    for (i, l) in chain["leases"].as_array().into_iter().flatten().enumerate() {
        if l["state"] != "active" {
            continue;
        }
        let dseq = l["dseq"].as_u64().unwrap_or(0);
        let manifest = chain
            .pointer(&format!("/deployments/{dseq}/manifest"))
            .filter(|m| !m.is_null() && m["provider"] == l["provider"]);
        let reason = match manifest {
            None => l["created_unix"]
                .as_u64()
                .is_some_and(|c| now >= c + manifest_timeout)
                .then_some("lease_closed_reason_manifest_timeout"),
            Some(m) => m["unavailable_since"]
                .as_u64()
                .is_some_and(|s| now >= s + monitor_close)
                .then_some("lease_closed_reason_unstable"),
        };
        if let Some(reason) = reason {
            closing.push((i, dseq, reason));
        }
    }
    for (i, dseq, reason) in closing {
        let lease = &mut chain["leases"][i];
        lease["state"] = json!("closed");
        lease["closed_on"] = json!(height);
        lease["reason"] = json!(reason);
        let key = format!("/deployments/{dseq}/manifest");
        if let Some(m) = chain.pointer_mut(&key) {
            super::provider::stop_services(dir, dseq, m);
            *m = Value::Null;
        }
        if let Some(d) = chain.pointer_mut(&format!("/deployments/{dseq}")) {
            d["group_state"] = json!("paused");
        }
    }
}

/// One invocation passes: include the transactions whose block has come,
/// and let the provider close the leases its timers give up on.
pub fn tick(dir: &Path) -> Result<(), String> {
    let mut chain = load(dir)?;
    let calls = chain["calls"].as_u64().unwrap_or(0) + 1;
    chain["calls"] = json!(calls);
    let due: Vec<String> = chain["txs"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, t)| {
            t["height"].as_u64() == Some(0) && t["include_at"].as_u64().is_some_and(|c| c <= calls)
        })
        .map(|(h, _)| h.clone())
        .collect();
    for hash in due {
        deliver(&mut chain, &hash);
    }
    provider_closes(dir, &mut chain);
    save(dir, &chain)
}

fn next_height(chain: &mut Value) -> u64 {
    let h = chain["height"].as_u64().unwrap_or(100) + 1;
    chain["height"] = json!(h);
    h
}

/// A module error: (codespace, code, log).
type TxError = (&'static str, u32, String);

fn deployment_mut<'a>(chain: &'a mut Value, owner: &str, dseq: u64) -> Option<&'a mut Value> {
    chain
        .pointer_mut(&format!("/deployments/{dseq}"))
        .filter(|d| d["owner"].as_str() == Some(owner))
}

/// The akash.v1 event of a deployment message (module, action, version,
/// owner, dseq: the docs' `tx deployment create` sample output).
fn deployment_event(action: &str, op: &Value) -> Vec<(String, String)> {
    vec![
        ("module".into(), "deployment".into()),
        ("action".into(), action.into()),
        (
            "version".into(),
            op["version"].as_str().unwrap_or("").into(),
        ),
        ("owner".into(), op["owner"].as_str().unwrap_or("").into()),
        ("dseq".into(), op["dseq"].to_string()),
    ]
}

/// Runs a message against the state (DeliverTx, or a simulation on a copy).
/// Codes and texts: deployment 3 "Deployment exists", 4 "Deployment not
/// found", 5 "Deployment closed" (chain-sdk go/node/deployment/v1/errors.go,
/// registered from 1 in that order); market 10 "lease not active"
/// (go/node/market/v1/errors.go). Market 8 "deployment not active" for a
/// lease on a closed deployment is the fake's own (the real chain refuses
/// earlier: a closed deployment has no open order to bid on).
fn apply(chain: &mut Value, op: &Value) -> Result<Vec<(String, String)>, TxError> {
    let owner = op["owner"].as_str().unwrap_or("").to_string();
    let dseq = op["dseq"].as_u64().unwrap_or(0);
    let kind = op["kind"].as_str().unwrap_or("");
    let height = chain["height"].as_u64().unwrap_or(100);
    let calls = chain["calls"].as_u64().unwrap_or(0);
    match kind {
        "deployment-create" => {
            if chain.pointer(&format!("/deployments/{dseq}")).is_some() {
                return Err(("deployment", 3, "Deployment exists".into()));
            }
            let mut d = op.clone();
            d["state"] = json!("active");
            d["created_at"] = json!(height);
            d["manifest"] = Value::Null;
            chain["deployments"][dseq.to_string()] = d;
            Ok(deployment_event("deployment-created", op))
        }
        "deployment-update" => {
            let d = deployment_mut(chain, &owner, dseq).ok_or((
                "deployment",
                4,
                "Deployment not found".to_string(),
            ))?;
            if d["state"] != "active" {
                return Err(("deployment", 5, "Deployment closed".into()));
            }
            // The provider still expects the old version until it has
            // processed this update's event (provider_expects).
            d["previous_version"] = d["version"].clone();
            d["version"] = op["version"].clone();
            d["updated_at_call"] = json!(calls);
            d["sdl"] = op["sdl"].clone();
            Ok(deployment_event("deployment-updated", op))
        }
        "deployment-close" => {
            let d = deployment_mut(chain, &owner, dseq).ok_or((
                "deployment",
                4,
                "Deployment not found".to_string(),
            ))?;
            if d["state"] != "active" {
                return Err(("deployment", 5, "Deployment closed".into()));
            }
            d["state"] = json!("closed");
            for l in chain["leases"].as_array_mut().into_iter().flatten() {
                if l["owner"] == owner.as_str() && l["dseq"] == dseq {
                    l["state"] = json!("closed");
                }
            }
            Ok(vec![("action".into(), "deployment-closed".into())])
        }
        "group-start" => {
            let d = deployment_mut(chain, &owner, dseq).ok_or((
                "deployment",
                4,
                "Deployment not found".to_string(),
            ))?;
            // ValidateStartable (chain-sdk go/node/deployment/v1beta3/types.go):
            // only a paused group starts; 15 "Group already closed", 16 "Group open".
            match (d["state"].as_str(), d["group_state"].as_str()) {
                (Some("active"), Some("paused")) => {
                    d["group_state"] = json!("open");
                    Ok(vec![("action".into(), "group-started".into())])
                }
                (Some("active"), _) => Err(("deployment", 16, "Group open".into())),
                _ => Err(("deployment", 15, "Group already closed".into())),
            }
        }
        "lease-create" => {
            let active =
                deployment_mut(chain, &owner, dseq).is_some_and(|d| d["state"] == "active");
            if !active {
                return Err(("market", 8, "deployment not active".into()));
            }
            let mut lease = op.clone();
            lease["state"] = json!("active");
            lease["created_at"] = json!(height);
            lease["created_unix"] = json!(now_secs());
            chain["leases"]
                .as_array_mut()
                .ok_or(("market", 1, "corrupt state".to_string()))?
                .push(lease);
            Ok(vec![("action".into(), "lease-created".into())])
        }
        "lease-close" => {
            let provider = op["provider"].as_str().unwrap_or("");
            let lease = chain["leases"]
                .as_array_mut()
                .into_iter()
                .flatten()
                .find(|l| {
                    l["owner"] == owner.as_str()
                        && l["dseq"] == dseq
                        && l["provider"] == provider
                        && l["state"] == "active"
                })
                .ok_or(("market", 10, "lease not active".to_string()))?;
            lease["state"] = json!("closed");
            lease["closed_on"] = json!(height);
            lease["reason"] = json!("lease_closed_reason_owner");
            Ok(vec![("action".into(), "lease-closed".into())])
        }
        "cert-publish" => {
            let serial = chain["certs"].as_array().map_or(0, Vec::len) + 1;
            let mut cert = op.clone();
            cert["serial"] = json!(serial.to_string());
            cert["state"] = json!("valid");
            chain["certs"]
                .as_array_mut()
                .ok_or(("cert", 1, "corrupt state".to_string()))?
                .push(cert);
            Ok(vec![("action".into(), "cert-create-certificate".into())])
        }
        other => Err(("sdk", 1, format!("unknown message {other}"))),
    }
}

fn balance_of(chain: &Value, address: &str) -> u128 {
    chain["balances"][address]
        .as_str()
        .and_then(|b| b.parse().ok())
        .unwrap_or(DEFAULT_BALANCE)
}

/// `<amount><denom>` as the CLI parses coins.
fn coin(text: &str) -> Result<(f64, String), String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (a, d) = text.split_at(split);
    match a.parse::<f64>() {
        Ok(a) if !d.is_empty() => Ok((a, d.to_string())),
        _ => Err(format!("invalid decimal coin expression: {text}")),
    }
}

/// The node's minimum gas price (`FAKE_AKASH_MIN_GAS_PRICE`, default
/// 0.025uakt like Akash's public nodes; `0uakt` for a node without one).
fn min_gas_price() -> Result<(f64, String), String> {
    coin(&std::env::var("FAKE_AKASH_MIN_GAS_PRICE").unwrap_or_else(|_| "0.025uakt".into()))
}

fn tx_json(hash: &str, height: u64, gas_wanted: u64, gas_used: u64, result: &Value) -> Value {
    let code = result["code"].as_u64().unwrap_or(0);
    let logs = if code == 0 && height > 0 {
        json!([{"msg_index": 0, "log": "", "events": [{"type": "akash.v1", "attributes": result["events"]}]}])
    } else {
        json!([])
    };
    let raw_log = if code == 0 {
        logs.to_string()
    } else {
        result["raw_log"].as_str().unwrap_or("").to_string()
    };
    json!({
        "height": height.to_string(),
        "txhash": hash,
        "codespace": result["codespace"].as_str().unwrap_or(""),
        "code": code,
        "data": "",
        "raw_log": raw_log,
        "logs": logs,
        "info": "",
        "gas_wanted": gas_wanted.to_string(),
        "gas_used": gas_used.to_string(),
        "tx": null,
        "timestamp": "",
        "events": [],
    })
}

fn deliver(chain: &mut Value, hash: &str) {
    let tx = chain["txs"][hash].clone();
    let gas = tx["gas_limit"].as_u64().unwrap_or(DEFAULT_GAS);
    let height = next_height(chain);
    let result = if gas < GAS_USED {
        json!({"code": 11, "codespace": "sdk", "raw_log": format!("out of gas in location: WriteFlat; gasWanted: {gas}, gasUsed: {GAS_USED}: out of gas")})
    } else {
        match apply(chain, &tx["op"]) {
            Ok(attrs) => {
                let events: Vec<Value> = attrs
                    .into_iter()
                    .map(|(k, v)| json!({"key": k, "value": v}))
                    .collect();
                json!({"code": 0, "codespace": "", "events": events})
            }
            Err((space, code, log)) => json!({
                "code": code,
                "codespace": space,
                "raw_log": format!("failed to execute message; message index: 0: {log}"),
            }),
        }
    };
    chain["txs"][hash]["height"] = json!(height);
    chain["txs"][hash]["result"] = result;
}

/// Signs and broadcasts `op` from the signer of `p`, as cosmos-sdk
/// client/tx/tx.go `GenerateOrBroadcastTxWithFactory` does: simulate when
/// `--gas auto` (printing `gas estimate: N` to stderr), confirm, then the
/// node's CheckTx (fee ≥ min gas price × gas, else code 13; balance ≥ fee,
/// else code 5) answers with exit 0 and the code in the JSON; DeliverTx
/// (out of gas: code 11; a failing message: its module's code) comes with
/// the block.
pub fn broadcast(dir: &Path, p: &Parsed, owner: &str, op: Value) -> Result<(), String> {
    node(p)?;
    if flag(p, "chain-id").is_none() {
        return Err("chain ID required but not specified".into());
    }
    let fees = flag(p, "fees");
    let prices = flag(p, "gas-prices");
    if fees.is_some() && prices.is_some() {
        return Err("cannot provide both fees and gas prices".into());
    }
    let mode = flag(p, "broadcast-mode").unwrap_or_else(|| "sync".into());
    let modes: &[&str] = match family() {
        Family::V06 => &["sync", "async", "block"],
        Family::Jwt => &["sync", "async"],
    };
    if !modes.contains(&mode.as_str()) {
        return Err(format!(
            "invalid broadcast mode {mode}; supported: {}",
            modes.join(", ")
        ));
    }
    let adjustment: f64 = match flag(p, "gas-adjustment") {
        None => 1.0,
        Some(a) => a
            .parse()
            .map_err(|_| format!("invalid argument \"{a}\" for \"--gas-adjustment\" flag"))?,
    };
    let mut chain = load(dir)?;
    let gas_limit = match flag(p, "gas").as_deref() {
        Some("auto") => {
            let mut copy = chain.clone();
            apply(&mut copy, &op).map_err(|(_, _, log)| {
                format!("rpc error: code = Unknown desc = failed to execute message; message index: 0: {log} [simulate]")
            })?;
            let estimate = (GAS_USED as f64 * adjustment).ceil() as u64;
            eprintln!("gas estimate: {estimate}");
            estimate
        }
        Some(g) => g.parse().map_err(|_| {
            format!("invalid gas value {g}: strconv.ParseUint: parsing \"{g}\": invalid syntax")
        })?,
        None => DEFAULT_GAS,
    };
    confirm(p)?;
    let (fee, fee_denom) = match (&fees, &prices) {
        (Some(f), _) => {
            let (a, d) = coin(f)?;
            (a.ceil() as u128, d)
        }
        (None, Some(pr)) => {
            let (a, d) = coin(pr)?;
            ((a * gas_limit as f64).ceil() as u128, d)
        }
        (None, None) => (0, "uakt".to_string()),
    };
    let hash = state::hex64(format!("{}/{}/{op}", chain["calls"], chain["height"]).as_bytes())
        .to_ascii_uppercase();
    let (min_price, min_denom) = min_gas_price()?;
    let required = (min_price * gas_limit as f64).ceil() as u128;
    let refused = if required > 0 && (fee_denom != min_denom || fee < required) {
        Some(json!({"code": 13, "codespace": "sdk", "raw_log": format!(
            "insufficient fees; got: {fee}{fee_denom} required: {required}{min_denom}: insufficient fee"
        )}))
    } else if balance_of(&chain, owner) < fee {
        Some(json!({"code": 5, "codespace": "sdk", "raw_log": format!(
            "{}{fee_denom} is smaller than {fee}{fee_denom}: insufficient funds",
            balance_of(&chain, owner)
        )}))
    } else {
        None
    };
    if let Some(result) = refused {
        // CheckTx refused it: nothing is stored, the CLI still exits 0.
        print_json(&tx_json(&hash, 0, gas_limit, 0, &result));
        return Ok(());
    }
    let left = balance_of(&chain, owner) - fee;
    chain["balances"][owner] = json!(left.to_string());
    let include_at = chain["calls"].as_u64().unwrap_or(0) + block_calls();
    chain["txs"][&hash] = json!({
        "op": op, "gas_limit": gas_limit, "include_at": include_at, "height": 0,
        "result": null,
    });
    if mode == "block" {
        deliver(&mut chain, &hash);
        let tx = chain["txs"][&hash].clone();
        save(dir, &chain)?;
        let height = tx["height"].as_u64().unwrap_or(0);
        print_json(&tx_json(&hash, height, gas_limit, GAS_USED, &tx["result"]));
        return Ok(());
    }
    save(dir, &chain)?;
    print_json(&tx_json(&hash, 0, gas_limit, 0, &json!({"code": 0})));
    Ok(())
}

/// `query tx HASH`: not found until a block includes it.
pub fn query_tx(dir: &Path, p: &Parsed, hash: &str) -> Result<(), String> {
    node(p)?;
    let chain = load(dir)?;
    let tx = &chain["txs"][hash];
    let height = tx["height"].as_u64().unwrap_or(0);
    if tx.is_null() || height == 0 {
        return Err(format!("tx ({hash}) not found"));
    }
    let gas = tx["gas_limit"].as_u64().unwrap_or(DEFAULT_GAS);
    print_json(&tx_json(hash, height, gas, GAS_USED, &tx["result"]));
    Ok(())
}

pub fn sdl_op(kind: &str, owner: &str, dseq: u64, text: &str, sdl: &test_fakes::sdl::Sdl) -> Value {
    json!({
        "kind": kind, "owner": owner, "dseq": dseq, "version": sdl.version,
        "groups": sdl.groups, "group_specs": sdl.group_specs, "sdl": text,
    })
}

/// `tx deployment update <sdl>`: the CLI first compares the groups with the
/// deployment on chain (akash-network/node x/deployment/client/cli/tx.go
/// `cmdUpdate`: "groups are different than existing deployment").
pub fn deployment_update(dir: &Path, p: &Parsed, sdl_path: &str) -> Result<(), String> {
    node(p)?;
    let owner = keyring::owner(dir, p)?;
    let dseq = dseq_of(p)?.unwrap_or(0);
    let (text, sdl) = super::read_sdl(sdl_path)?;
    let chain = load(dir)?;
    let existing = chain
        .pointer(&format!("/deployments/{dseq}"))
        .filter(|d| d["owner"].as_str() == Some(owner.as_str()))
        .ok_or("rpc error: code = NotFound desc = deployment not found: key not found")?;
    if existing["groups"].as_str() != Some(sdl.groups.as_str()) {
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
    broadcast(
        dir,
        p,
        &owner,
        sdl_op("deployment-update", &owner, dseq, &text, &sdl),
    )
}

pub fn deployment_create(dir: &Path, p: &Parsed, sdl_path: &str) -> Result<(), String> {
    node(p)?;
    let owner = keyring::owner(dir, p)?;
    let (text, sdl) = super::read_sdl(sdl_path)?;
    let chain = load(dir)?;
    // The real dseq is the block height unless given.
    let dseq = dseq_of(p)?.unwrap_or(chain["height"].as_u64().unwrap_or(100) + 1);
    broadcast(
        dir,
        p,
        &owner,
        sdl_op("deployment-create", &owner, dseq, &text, &sdl),
    )
}

pub fn deployment_close(dir: &Path, p: &Parsed) -> Result<(), String> {
    let owner = keyring::owner(dir, p)?;
    let dseq = dseq_of(p)?.unwrap_or(0);
    broadcast(
        dir,
        p,
        &owner,
        json!({"kind": "deployment-close", "owner": owner, "dseq": dseq}),
    )
}

/// `tx deployment group start --owner --dseq [--gseq]`: a paused group gets
/// a new order (akash-network/node x/deployment/handler/server.go
/// `StartGroup`). `--owner` and `--dseq` are required (chain-sdk
/// go/cli/flags/deployment.go `MarkReqDeploymentIDFlags`, cobra's
/// "required flag(s) … not set"); an owner other than the signer is the
/// fake's own refusal (the real chain rejects the signature).
pub fn group_start(dir: &Path, p: &Parsed) -> Result<(), String> {
    let signer = keyring::owner(dir, p)?;
    let missing: Vec<&str> = ["dseq", "owner"]
        .into_iter()
        .filter(|f| p.last(f).is_none())
        .collect();
    if !missing.is_empty() {
        let quoted: Vec<String> = missing.iter().map(|f| format!("\"{f}\"")).collect();
        return Err(format!("required flag(s) {} not set", quoted.join(", ")));
    }
    let owner = p.last("owner").unwrap_or_default().to_string();
    keys::check_address(&owner)?;
    if owner != signer {
        return Err(format!(
            "fake provider-services: --owner {owner} is not the signer {signer}"
        ));
    }
    let dseq = dseq_of(p)?.unwrap_or(0);
    broadcast(
        dir,
        p,
        &owner,
        json!({"kind": "group-start", "owner": owner, "dseq": dseq}),
    )
}

fn lease_op(dir: &Path, p: &Parsed, kind: &str) -> Result<(String, Value), String> {
    let owner = keyring::owner(dir, p)?;
    let provider = flag(p, "provider").unwrap_or_default();
    keys::check_address(&provider)?;
    let dseq = dseq_of(p)?.unwrap_or(0);
    let seq = |n: &str| flag(p, n).and_then(|v| v.parse::<u64>().ok()).unwrap_or(1);
    let op = json!({
        "kind": kind, "owner": owner, "dseq": dseq, "gseq": seq("gseq"), "oseq": seq("oseq"),
        "provider": provider,
    });
    Ok((owner, op))
}

/// `tx market lease create|close --dseq --gseq --oseq --provider`
/// (akash-network/node x/market/client/cli/tx.go).
pub fn lease_tx(dir: &Path, p: &Parsed, kind: &str) -> Result<(), String> {
    let (owner, op) = lease_op(dir, p, kind)?;
    broadcast(dir, p, &owner, op)
}

/// `tx cert publish client`: the local certificate goes on chain, base64 of
/// its PEM (`certificate.cert` in `query cert list`).
pub fn cert_publish(dir: &Path, p: &Parsed) -> Result<(), String> {
    let owner = keyring::owner(dir, p)?;
    let path = super::provider::cert_path(p, &owner);
    let text = std::fs::read_to_string(&path).map_err(|_| {
        format!(
            "could not open certificate PEM file: open {}: no such file or directory",
            path.display()
        )
    })?;
    let cert = super::provider::certificate_pem(&text)
        .ok_or("certificate PEM file has no CERTIFICATE block")?;
    let op = json!({
        "kind": "cert-publish", "owner": owner,
        "cert": super::provider::base64(cert.as_bytes()),
        "pubkey": super::provider::base64(state::hex64(owner.as_bytes()).as_bytes()),
    });
    broadcast(dir, p, &owner, op)
}

fn query_owner(p: &Parsed) -> Result<Option<String>, String> {
    match p.last("owner") {
        None => Ok(None),
        Some(o) => keys::check_address(o).map(|()| Some(o.to_string())),
    }
}

const PAGINATION: &str = r#"{"next_key":null,"total":"0"}"#;

fn pagination() -> Value {
    serde_json::from_str(PAGINATION).unwrap_or(Value::Null)
}

/// `query deployment get --owner --dseq` (akash.deployment.v1beta3
/// QueryDeploymentResponse: deployment {deployment_id {owner, dseq}, state,
/// version, created_at}, groups [{group_id, state, group_spec, created_at}],
/// escrow_account; JSON by proto field names, enums by name, 64-bit
/// integers as strings, as cosmos-sdk's `PrintProto` prints them).
pub fn deployment_get(dir: &Path, p: &Parsed) -> Result<(), String> {
    node(p)?;
    let owner = query_owner(p)?.ok_or("empty address string is not allowed")?;
    let dseq = dseq_of(p)?.unwrap_or(0);
    let chain = load(dir)?;
    let d = chain
        .pointer(&format!("/deployments/{dseq}"))
        .filter(|d| d["owner"].as_str() == Some(owner.as_str()))
        .ok_or("rpc error: code = NotFound desc = deployment not found: key not found")?;
    let state = d["state"].as_str().unwrap_or("active");
    let group_state = match (state, d["group_state"].as_str()) {
        ("active", Some(g)) => g,
        ("active", None) => "open",
        _ => "closed",
    };
    let groups: Vec<Value> = d["group_specs"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, spec)| {
            json!({
                "group_id": {"owner": owner, "dseq": dseq.to_string(), "gseq": i + 1},
                "state": group_state,
                "group_spec": spec,
                "created_at": d["created_at"].to_string(),
            })
        })
        .collect();
    print_json(&json!({
        "deployment": {
            "deployment_id": {"owner": owner, "dseq": dseq.to_string()},
            "state": state,
            "version": super::provider::base64(d["version"].as_str().unwrap_or("").as_bytes()),
            "created_at": d["created_at"].to_string(),
        },
        "groups": groups,
        "escrow_account": {
            "id": {"scope": "deployment", "xid": format!("{owner}/{dseq}")},
            "owner": owner,
            "state": if state == "active" { "open" } else { "closed" },
            "balance": {"denom": "uakt", "amount": "5000000.000000000000000000"},
            "transferred": {"denom": "uakt", "amount": "0.000000000000000000"},
            "settled_at": d["created_at"].to_string(),
            "depositor": owner,
            "funds": {"denom": "uakt", "amount": "0.000000000000000000"},
        },
    }));
    Ok(())
}

/// `query market lease list --owner --dseq --provider --state` (QueryLeasesResponse:
/// leases [{lease {lease_id {owner, dseq, gseq, oseq, provider}, state,
/// price, created_at, closed_on}, escrow_payment}], pagination).
pub fn lease_list(dir: &Path, p: &Parsed) -> Result<(), String> {
    node(p)?;
    let owner = query_owner(p)?;
    if let Some(pr) = p.last("provider") {
        keys::check_address(pr)?;
    }
    let dseq = dseq_of(p)?;
    let (gseq, oseq) = order_flags(p)?;
    let want_state = p.last("state");
    if let Some(s) = want_state
        && !["active", "insufficient_funds", "closed"].contains(&s)
    {
        return Err(format!("invalid lease state: {s}"));
    }
    let chain = load(dir)?;
    let leases: Vec<Value> = chain["leases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| owner.as_deref().is_none_or(|o| l["owner"] == o))
        .filter(|l| dseq.is_none_or(|d| l["dseq"] == d))
        .filter(|l| p.last("provider").is_none_or(|pr| l["provider"] == pr))
        .filter(|l| gseq.is_none_or(|g| g == 0 || l["gseq"].as_u64() == Some(g)))
        .filter(|l| oseq.is_none_or(|o| o == 0 || l["oseq"].as_u64() == Some(o)))
        .filter(|l| want_state.is_none_or(|s| l["state"] == s))
        .map(|l| {
            let mut entry = json!({
                "lease": {
                    "lease_id": {
                        "owner": l["owner"], "dseq": l["dseq"].to_string(),
                        "gseq": l["gseq"], "oseq": l["oseq"], "provider": l["provider"],
                    },
                    "state": l["state"],
                    "price": {"denom": "uakt", "amount": "1000.000000000000000000"},
                    "created_at": l["created_at"].to_string(),
                    "closed_on": l["closed_on"].as_u64().unwrap_or(0).to_string(),
                },
                "escrow_payment": {
                    "account_id": {"scope": "deployment", "xid": format!("{}/{}", l["owner"].as_str().unwrap_or(""), l["dseq"])},
                    "payment_id": format!("{}/{}/{}", l["gseq"], l["oseq"], l["provider"].as_str().unwrap_or("")),
                    "owner": l["provider"],
                    "state": if l["state"] == "active" { "open" } else { "closed" },
                    "rate": {"denom": "uakt", "amount": "1000.000000000000000000"},
                    "balance": {"denom": "uakt", "amount": "0.000000000000000000"},
                    "withdrawn": {"denom": "uakt", "amount": "0"},
                },
            });
            // Why a lease closed is on chain from the market v1 types on
            // (chain-sdk proto/node/akash/market/v1/lease.proto `reason`,
            // types.proto `LeaseClosedReason`), which provider v0.10
            // (pkg.akt.dev/go) uses; v0.6 and v0.8 (akash-api v1beta
            // leases, MsgCloseBid without a reason) have no such field.
            if super::minor_version() >= 10 && l["state"] != "active" {
                entry["lease"]["reason"] = l["reason"].clone();
            }
            entry
        })
        .collect();
    print_json(&json!({"leases": leases, "pagination": pagination()}));
    Ok(())
}

/// `query bank balances ADDR` (cosmos bank QueryAllBalancesResponse).
pub fn balances(dir: &Path, p: &Parsed, address: &str) -> Result<(), String> {
    node(p)?;
    keys::check_address(address)?;
    let chain = load(dir)?;
    let amount = balance_of(&chain, address);
    print_json(&json!({
        "balances": [{"denom": "uakt", "amount": amount.to_string()}],
        "pagination": pagination(),
    }));
    Ok(())
}

/// `query cert list --owner --state --serial` (akash.cert.v1beta3
/// QueryCertificatesResponse: certificates [{certificate {state, cert,
/// pubkey}, serial}], pagination; akash-network/akash-api
/// proto/node/akash/cert/v1beta3/query.proto).
pub fn cert_list(dir: &Path, p: &Parsed) -> Result<(), String> {
    node(p)?;
    let owner = query_owner(p)?;
    let state = p.last("state");
    if let Some(s) = state
        && !["valid", "revoked"].contains(&s)
    {
        return Err(format!("invalid certificate state: {s}"));
    }
    let chain = load(dir)?;
    let certs: Vec<Value> = chain["certs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| owner.as_deref().is_none_or(|o| c["owner"] == o))
        .filter(|c| state.is_none_or(|s| c["state"] == s))
        .filter(|c| p.last("serial").is_none_or(|s| c["serial"] == s))
        .map(|c| {
            json!({
                "certificate": {"state": c["state"], "cert": c["cert"], "pubkey": c["pubkey"]},
                "serial": c["serial"],
            })
        })
        .collect();
    print_json(&json!({"certificates": certs, "pagination": pagination()}));
    Ok(())
}

/// An active lease of `owner`'s deployment `dseq` from `provider`, of the
/// order `gseq`/`oseq` when given (0 or `None`: any).
pub fn active_lease(
    chain: &Value,
    owner: &str,
    dseq: u64,
    provider: &str,
    order: (Option<u64>, Option<u64>),
) -> bool {
    let fits = |l: &Value, key: &str, want: Option<u64>| {
        want.is_none_or(|w| w == 0 || l[key].as_u64() == Some(w))
    };
    chain["leases"].as_array().into_iter().flatten().any(|l| {
        l["owner"] == owner
            && l["dseq"] == dseq
            && l["provider"] == provider
            && l["state"] == "active"
            && fits(l, "gseq", order.0)
            && fits(l, "oseq", order.1)
    })
}

/// `--gseq`/`--oseq` as the real CLI reads them: the flags default to 1
/// (chain-sdk go/cli/flags/market.go `AddLeaseFilterFlags`,
/// `AddOrderIDFlags`), and the query skips a 0 (go/node/market/v1/filters.go
/// `LeaseFilters.Accept`), so a lease of a later order (oseq 2 after the
/// group was started again) is invisible unless they are given.
pub fn order_flags(p: &Parsed) -> Result<(Option<u64>, Option<u64>), String> {
    let read = |name: &str| -> Result<u64, String> {
        match flag(p, name) {
            None => Ok(1),
            Some(v) => v.parse().map_err(|_| {
                format!("invalid argument \"{v}\" for \"--{name}\" flag: strconv.ParseUint: parsing \"{v}\": invalid syntax")
            }),
        }
    };
    Ok((Some(read("gseq")?), Some(read("oseq")?)))
}
