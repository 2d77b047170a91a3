//! The provider's side: `send-manifest` and `lease-status`, played by
//! running the services on the local Docker engine; how the provider knows
//! the caller (mTLS client certificate or JWT); `tx cert generate client`.
//!
//! Auth (akash-network/provider cmd/provider-services/cmd/helpers.go
//! `loadAuthOpts`): `--auth-type jwt|mtls` (default jwt) from v0.8 on,
//! "invalid gateway auth type X. supported are jwt|mtls"; JWT is signed by
//! the `--from` key; mTLS loads `<home>/<address>.pem` and needs it
//! published and valid on chain, else "certificate has not been committed
//! to blockchain" (akash-network/node x/cert/utils `LoadAndQueryPEMForAccount`).
//! v0.6 speaks mTLS only and has no `--auth-type` flag.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use test_fakes::cli::Parsed;
use test_fakes::keys;
use test_fakes::sdl::Sdl;
use test_fakes::state;

use super::chain;
use super::{Family, dseq_of, family, flag, forced, keyring, node, read_sdl};

/// `--home`, else `AKASH_HOME`, else `~/.akash`.
fn home(p: &Parsed) -> PathBuf {
    flag(p, "home").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".akash"),
        PathBuf::from,
    )
}

/// Where the client certificate of `owner` lives (x/cert/utils key pair manager).
pub fn cert_path(p: &Parsed, owner: &str) -> PathBuf {
    home(p).join(format!("{owner}.pem"))
}

/// The CERTIFICATE block of a PEM text, with its armour lines.
pub fn certificate_pem(text: &str) -> Option<String> {
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let end_marker = "-----END CERTIFICATE-----";
    let end = text[start..].find(end_marker)? + start + end_marker.len();
    Some(format!("{}\n", &text[start..end]))
}

pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `tx cert generate client --from K [--overwrite]`: a local key pair, no
/// transaction (akash-network/node x/cert/client/cli).
pub fn cert_generate(dir: &Path, p: &Parsed) -> Result<(), String> {
    let owner = keyring::owner(dir, p)?;
    let path = cert_path(p, &owner);
    // chain-sdk go/cli/cert_tx.go `errCannotOverwriteCertificate`, wrapping
    // go/util/tls `ErrCertificate`.
    if path.exists() && !p.bool("overwrite") {
        return Err("certificate error: cannot overwrite certificate".into());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let der = state::hex64(format!("cert/{owner}/{nonce}").as_bytes());
    let text = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
        base64(der.as_bytes()),
        base64(state::hex64(der.as_bytes()).as_bytes())
    );
    std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// How the provider knows the caller; Err is what the real CLI prints.
fn authenticate(dir: &Path, p: &Parsed, owner: &str) -> Result<(), String> {
    let auth = match family() {
        Family::V06 => "mtls".to_string(),
        Family::Jwt => flag(p, "auth-type").unwrap_or_else(|| "jwt".into()),
    };
    match auth.as_str() {
        "jwt" => Ok(()), // signed by the --from key, which owner() found
        "mtls" => {
            let path = cert_path(p, owner);
            let text = std::fs::read_to_string(&path).map_err(|_| {
                format!(
                    "could not open certificate PEM file: open {}: no such file or directory",
                    path.display()
                )
            })?;
            let local = certificate_pem(&text).map(|c| base64(c.as_bytes()));
            let chain = chain::load(dir)?;
            let published = chain["certs"].as_array().into_iter().flatten().any(|c| {
                c["owner"] == owner
                    && c["state"] == "valid"
                    && c["cert"].as_str() == local.as_deref()
            });
            if published {
                Ok(())
            } else {
                // chain-sdk go/util/tls/utils.go (`%w` of `ErrCertificate`).
                Err("certificate error: certificate has not been committed to blockchain".into())
            }
        }
        other => Err(format!(
            "invalid gateway auth type {other}. supported are jwt|mtls"
        )),
    }
}

/// Who asks about which lease: signer, provider address, dseq, auth.
fn lease_of(dir: &Path, p: &Parsed) -> Result<(String, String, u64), String> {
    node(p)?;
    let owner = keyring::owner(dir, p)?;
    let provider = flag(p, "provider").unwrap_or_default();
    keys::check_address(&provider)?;
    let dseq = dseq_of(p)?.ok_or("required flag(s) \"dseq\" not set")?;
    authenticate(dir, p, &owner)?;
    Ok((owner, provider, dseq))
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

/// Starts each service's container. A container that cannot start (an
/// image that cannot be pulled) does not fail the manifest: the real
/// provider accepts the manifest (gateway/rest/router.go
/// `createManifestHandler` answers once the manager took it) and the
/// workload fails afterwards in the cluster, where cluster/monitor.go sees
/// it unavailable. Returns the first start error, recorded with the manifest.
fn start_services(dir: &Path, dseq: u64, sdl: &Sdl) -> Option<String> {
    let mut failed = None;
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
        if let Err(e) = run_docker(&args) {
            failed.get_or_insert(e);
        }
    }
    failed
}

/// Removes the containers of a deployment whose lease the provider closed
/// (it deletes the lease's namespace).
pub fn stop_services(dir: &Path, dseq: u64, manifest: &Value) {
    for svc in manifest
        .get("services")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = svc.get("name").and_then(Value::as_str).unwrap_or("");
        let _ = run_docker(&["rm".into(), "-f".into(), container_name(dir, dseq, name)]);
    }
}

/// The HTTP status a provider answers a manifest whose version is not the
/// one it expects. v0.6.10 to v0.10.7 map `ErrManifestVersion` to 500
/// (gateway/rest/router.go `createManifestHandler`: anything but an invalid
/// manifest or a missing lease is `StatusInternalServerError`); the
/// provider after v0.10 maps it to 422 (manifest/gateway.go
/// `ManifestSubmitErrorToHTTP`).
fn version_mismatch_status() -> u16 {
    if super::minor_version() <= 10 {
        500
    } else {
        422
    }
}

/// One provider's refusal as the CLI reports it: chain-sdk
/// go/provider/client/client.go `ClientResponseError` (`Error()` is
/// "remote server returned N", `Message` the body); Go's `http.Error`
/// writes the text and a newline.
struct Refusal {
    status: u16,
    body: String,
}

impl Refusal {
    fn new(status: u16, text: &str) -> Refusal {
        Refusal {
            status,
            body: format!("{text}\n"),
        }
    }
}

fn print_send_result(format: &str, provider: &str, refusal: Option<&Refusal>) {
    let status = if refusal.is_some() { "FAIL" } else { "PASS" };
    let error = refusal.map(|r| format!("remote server returned {}", r.status));
    match format {
        "json" => {
            let mut r = json!({"provider": provider, "status": status});
            if let (Some(e), Some(refusal)) = (&error, refusal) {
                r["error"] = json!(e);
                r["errorMessage"] = json!(refusal.body);
            }
            // Go's json.Encoder ends the document with a newline.
            println!("{}", json!([r]));
        }
        "yaml" => {
            println!("- provider: {provider}\n  status: {status}");
            if let (Some(e), Some(refusal)) = (&error, refusal) {
                println!("  error: {}", json!(e));
                println!("  errorMessage: {}", json!(refusal.body));
            }
        }
        _ => {
            println!("provider: {provider}\n\tstatus:       {status}");
            if let (Some(e), Some(refusal)) = (&error, refusal) {
                println!("\terror:        {e}");
                println!("\terrorMessage: {}", refusal.body);
            }
        }
    }
}

/// `send-manifest <sdl>`: output "provider: <addr>\n\tstatus: PASS|FAIL"
/// (+ "\terror: …" and "\terrorMessage: …"), `-o json|yaml` as a list of
/// {provider,status,error,errorMessage}, on failure the final error "submit
/// manifest to some providers has been failed" (akash-network/provider
/// cmd/provider-services/cmd/manifest.go `doSendManifest`); only to
/// providers with an active lease ("no active leases found", helpers.go
/// `leasesForDeployment`; v0.6.10 prints two spaces before "for").
///
/// The provider checks the manifest's version against the last version it
/// learnt: the deployment's hash fetched from the chain, or the last
/// update event it processed (manifest/manager.go `validateRequest`,
/// `ErrManifestVersion` "manifest version validation failed"). It learns
/// of an update from the chain's event stream, after the block: until then
/// a manifest of the new version is refused, even with the transaction
/// already in a block. The fake's provider learns
/// `FAKE_AKASH_UPDATE_LAG_CALLS` (default 2) invocations after inclusion.
pub fn send_manifest(dir: &Path, p: &Parsed, sdl_path: &str) -> Result<(), String> {
    let (owner, provider, dseq) = lease_of(dir, p)?;
    let (text, sdl) = read_sdl(sdl_path)?;
    let format = p.last("output").unwrap_or("text").to_string();
    let mut chain = chain::load(dir)?;
    // v0.6.10 filters by --gseq/--oseq only when given (helpers.go
    // `leasesForDeployment`, `flags.Changed`); v0.10.7 always, 1 by default.
    let order = if family() == Family::V06 {
        (
            super::flag(p, "gseq").and_then(|g| g.parse().ok()),
            super::flag(p, "oseq").and_then(|o| o.parse().ok()),
        )
    } else {
        chain::order_flags(p)?
    };
    if !chain::active_lease(&chain, &owner, dseq, &provider, order) {
        let gap = if family() == Family::V06 { "  " } else { " " };
        return Err(format!("no active leases found{gap}for dseq={dseq}"));
    }
    const FAILED: &str = "submit manifest to some providers has been failed";
    let expected = chain::provider_expects(&chain, dseq);
    let refused_image = std::env::var("FAKE_AKASH_FAIL_IMAGE")
        .ok()
        .filter(|needle| !needle.is_empty() && text.contains(needle.as_str()));
    // Forced refusals stand for a manifest the provider finds invalid
    // (422 `ErrInvalidManifest` in every version); their text is the fake's.
    let refusal = if forced("send-manifest") {
        Some(Refusal::new(
            422,
            "invalid manifest: fake provider-services: forced failure (FAKE_AKASH_FAIL=send-manifest)",
        ))
    } else if let Some(needle) = refused_image {
        Some(Refusal::new(
            422,
            &format!(
                "invalid manifest: fake provider-services: forced failure for image {needle} (FAKE_AKASH_FAIL_IMAGE)"
            ),
        ))
    } else if expected.as_deref() != Some(sdl.version.as_str()) {
        Some(Refusal::new(
            version_mismatch_status(),
            "manifest version validation failed",
        ))
    } else {
        None
    };
    if let Some(r) = refusal {
        print_send_result(&format, &provider, Some(&r));
        return Err(FAILED.into());
    }
    let start_error = start_services(dir, dseq, &sdl);
    let services: Vec<Value> = sdl
        .services
        .iter()
        .map(|s| json!({"name": s.name, "image": s.image, "count": s.count, "ports": s.ports}))
        .collect();
    let mut manifest = json!({"version": sdl.version, "provider": provider, "services": services});
    if let Some(e) = start_error {
        manifest["start_error"] = json!(e);
        manifest["unavailable_since"] = json!(chain::now_secs());
    }
    chain["deployments"][dseq.to_string()]["manifest"] = manifest;
    chain::save(dir, &chain)?;
    print_send_result(&format, &provider, None);
    Ok(())
}

/// What the CLI prints for every lease the provider runs no manifest for
/// (before the first manifest, an unknown lease, a closed one): the gateway
/// answers 404 with an empty body (gateway/rest/router.go
/// `leaseStatusHandler`: "If the manifest doesn't exist, there is no
/// lease", `w.WriteHeader(http.StatusNotFound)`), the client turns it into
/// `ClientResponseError` "remote server returned 404" (chain-sdk
/// go/provider/client/client.go), and with an empty message
/// `showErrorToUser` (cmd/provider-services/cmd/run.go) adds nothing: cobra
/// prints `Error: remote server returned 404`.
const NOT_FOUND: &str = "remote server returned 404";

/// `lease-status` JSON `{"services":{"<name>":{"name","available","total",
/// "uris","observed_generation","replicas","updated_replicas",
/// "ready_replicas","available_replicas"}},"forwarded_ports":{}}` (docs
/// sample output; akash-network/provider cmd/provider-services/cmd/leaseStatus.go).
pub fn lease_status(dir: &Path, p: &Parsed) -> Result<(), String> {
    let (owner, provider, dseq) = lease_of(dir, p)?;
    if forced("lease-status") {
        return Err("fake provider-services: forced failure (FAKE_AKASH_FAIL=lease-status)".into());
    }
    let mut chain = chain::load(dir)?;
    // The lease asked about is (dseq, --gseq, --oseq, provider), 1 by
    // default (leaseStatus.go `BidIDFromFlags`): another order's lease is
    // the provider's 404.
    if !chain::active_lease(&chain, &owner, dseq, &provider, chain::order_flags(p)?) {
        return Err(NOT_FOUND.into());
    }
    let manifest = chain
        .pointer(&format!("/deployments/{dseq}/manifest"))
        .filter(|m| !m.is_null())
        .filter(|m| m.get("provider").and_then(Value::as_str) == Some(provider.as_str()))
        .cloned()
        .ok_or(NOT_FOUND)?;
    // The provider stops answering once this manifest is in place: a
    // lease-status that fails after a release, not before it.
    if let Ok(needle) = std::env::var("FAKE_AKASH_LEASE_FAIL_IMAGE")
        && manifest.to_string().contains(&needle)
    {
        return Err(format!(
            "fake provider-services: forced failure for image {needle} (FAKE_AKASH_LEASE_FAIL_IMAGE)"
        ));
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
        // One container stands for all `count` replicas (a documented
        // difference): when it runs, every replica is available.
        let available = if running { count } else { 0 };
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
    // cluster/monitor.go counts a service below its `count` as a failed
    // check; the fake observes availability here (see chain::tick).
    let all_up = services
        .values()
        .all(|s| s["available"].as_u64() >= s["total"].as_u64());
    let key = format!("/deployments/{dseq}/manifest");
    if let Some(m) = chain.pointer_mut(&key) {
        match (all_up, m.get("unavailable_since").is_some()) {
            (true, true) => {
                m.as_object_mut().map(|o| o.remove("unavailable_since"));
            }
            (false, false) => m["unavailable_since"] = json!(chain::now_secs()),
            _ => {}
        }
    }
    chain::save(dir, &chain)?;
    let out = json!({"services": services, "forwarded_ports": {}});
    println!(
        "{}",
        serde_json::to_string_pretty(&out).unwrap_or_else(|_| out.to_string())
    );
    Ok(())
}
