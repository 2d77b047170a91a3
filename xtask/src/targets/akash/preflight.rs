//! Read-only checks before any transaction: each failure is one line, and
//! no transaction is spent. The deployment, its lease, the balance, the
//! provider auth and the SDL's groups are asked of the chain; what the
//! chain would refuse after charging a fee is refused here for free.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use serde_json::Value;

use super::settings::{AuthType, Placement, Settings};
use super::{Session, cli, lease, pem, rollout};

/// The whole list, in order; the session (settings, CLI version, key) is
/// already established. Returns the lease, active.
pub fn check(
    session: &Session,
    template: &str,
    placement: &Placement,
) -> anyhow::Result<lease::Lease> {
    let s = &session.settings;
    let owner = &session.owner;
    let denoms = template_denoms(template);
    deployment(s, owner, &denoms, placement, &rollout::counts(template))?;
    let found = active_lease(s, owner)?;
    balance(s, owner)?;
    if session.auth == AuthType::Mtls {
        certificate(session)?;
    } else {
        eprintln!(
            "provider auth: JWT signed by the key `{}` (provider-services {})",
            s.from, session.version
        );
    }
    Ok(found)
}

/// Runs a read-only query and parses its JSON; a failure names what was asked.
fn query_json(cmd: crate::support::cmd::Cmd, what: &str) -> anyhow::Result<Value> {
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("{what}: `{cmd}` failed: {}", out.last_words());
    }
    serde_json::from_str(out.stdout.trim())
        .with_context(|| format!("{what}: `{cmd}` printed no JSON"))
}

/// The pricing denoms the SDL template names (`denom: uakt` lines).
pub fn template_denoms(template: &str) -> BTreeSet<String> {
    template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("denom:"))
        .map(|d| d.trim().trim_matches(['"', '\'']).to_owned())
        .filter(|d| !d.is_empty())
        .collect()
}

fn deployment(
    s: &Settings,
    owner: &str,
    denoms: &BTreeSet<String>,
    placement: &Placement,
    counts: &[u64],
) -> anyhow::Result<()> {
    let out = cli::deployment_get(s, owner).output()?;
    if !out.status.success() {
        bail!(
            "deployment {} of {owner} (the key `{}`) is not on chain: {}; check AKASH_DSEQ and AKASH_FROM",
            s.dseq,
            s.from,
            out.last_words()
        );
    }
    let d: Value = serde_json::from_str(out.stdout.trim())
        .context("`query deployment get` printed no JSON")?;
    let state = d
        .pointer("/deployment/state")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    if state != "active" {
        bail!(
            "deployment {} is {state}, not active: an update cannot revive it; create a new deployment and set AKASH_DSEQ",
            s.dseq
        );
    }
    let groups = d
        .get("groups")
        .and_then(Value::as_array)
        .context("`query deployment get` lists no groups")?;
    let mut on_chain = BTreeSet::new();
    let mut chain_counts = Vec::new();
    for g in groups {
        let spec = g.get("group_spec").unwrap_or(&Value::Null);
        for r in spec
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(denom) = r.pointer("/price/denom").and_then(Value::as_str) {
                on_chain.insert(denom.to_owned());
            }
            if let Some(n) = r
                .get("count")
                .and_then(|c| c.as_u64().or_else(|| c.as_str()?.parse().ok()))
            {
                chain_counts.push(n);
            }
        }
        let name = spec.get("name").and_then(Value::as_str).unwrap_or("?");
        let req = spec.get("requirements").unwrap_or(&Value::Null);
        let attributes: BTreeMap<String, String> = req
            .get("attributes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| {
                Some((
                    a.get("key")?.as_str()?.to_owned(),
                    a.get("value")?.as_str()?.to_owned(),
                ))
            })
            .collect();
        let set = |p: &str| -> BTreeSet<String> {
            req.pointer(p)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        };
        let all_of = set("/signed_by/all_of");
        let any_of = set("/signed_by/any_of");
        let want_all: BTreeSet<String> = placement.signed_by.all_of.iter().cloned().collect();
        let want_any: BTreeSet<String> = placement.signed_by.any_of.iter().cloned().collect();
        if attributes != placement.attributes || all_of != want_all || any_of != want_any {
            bail!(
                "deploy/release.json akash.placement (attributes {:?}, signedBy allOf {:?} anyOf {:?}) differs from group `{name}` of deployment {} on chain (attributes {:?}, signedBy allOf {:?} anyOf {:?}): the chain refuses changed groups; put the on-chain placement back in deploy/release.json or create a new deployment",
                placement.attributes,
                want_all,
                want_any,
                s.dseq,
                attributes,
                all_of,
                any_of
            );
        }
    }
    let mut want = counts.to_vec();
    want.sort_unstable();
    chain_counts.sort_unstable();
    if !chain_counts.is_empty() && want != chain_counts {
        bail!(
            "deploy/akash/deploy.yaml asks for count {want:?} but deployment {} runs count {chain_counts:?}: count is part of the groups, which an update cannot change; create a new deployment from the template (`provider-services tx deployment create`, then a lease) and set AKASH_DSEQ, or put the count back",
            s.dseq
        );
    }
    if on_chain.is_empty() {
        bail!("deployment {} lists no priced resources on chain", s.dseq);
    }
    if *denoms != on_chain {
        bail!(
            "deploy/akash/deploy.yaml prices in {:?} but deployment {} pays in {:?}: the chain refuses changed groups; use the deployment's denom in the SDL",
            denoms,
            s.dseq,
            on_chain
        );
    }
    eprintln!(
        "deployment {} is active; placement and pricing ({}) match the SDL",
        s.dseq,
        on_chain.into_iter().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// The lease must be active: a closed one cannot be revived by an update.
fn active_lease(s: &Settings, owner: &str) -> anyhow::Result<lease::Lease> {
    let found = lease::query(s, owner)?;
    match &found {
        lease::Lease::Active { created_at, .. } => {
            eprintln!(
                "lease from {} is active (created at height {created_at})",
                s.provider
            );
            Ok(found)
        }
        gone => bail!("{}", lease::gone(s, owner, gone)),
    }
}

fn balance(s: &Settings, owner: &str) -> anyhow::Result<()> {
    let (budget, denom) = s.fee.budget();
    let b = query_json(cli::balances(s, owner), "the balance check")?;
    let held: u128 = b
        .get("balances")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c.get("denom").and_then(Value::as_str) == Some(denom.as_str()))
        .and_then(|c| c.get("amount")?.as_str()?.parse().ok())
        .unwrap_or(0);
    if held < budget {
        bail!(
            "the account {owner} holds {held}{denom}, less than the fee budget {budget}{denom} (gas {} × {}, prices {}): fund it, or lower AKASH_GAS_PRICES or AKASH_FEES",
            s.fee.gas,
            s.fee.gas_adjustment,
            s.fee
                .gas_prices
                .as_ref()
                .map_or("(fees set)", |p| p.text.as_str())
        );
    }
    eprintln!("balance {held}{denom} covers the fee budget {budget}{denom}");
    Ok(())
}

/// mTLS: the local client certificate must be one published on chain and
/// valid (the provider checks it against the chain on every call).
fn certificate(session: &Session) -> anyhow::Result<()> {
    let s = &session.settings;
    let path = session.cert_path();
    let publish = format!(
        "create and publish one once: `provider-services tx cert generate client --from {k}` then `provider-services tx cert publish client --from {k}` (one transaction); for CI store {} as the secret AKASH_CLIENT_CERT_PEM",
        path.display(),
        k = s.from
    );
    let local = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(_) => bail!(
            "provider-services {} authenticates to providers with a client certificate, and there is none at {}: {publish}",
            session.version,
            path.display()
        ),
    };
    let Some(body) = pem::certificate_body(&local) else {
        bail!(
            "{} holds no CERTIFICATE block: regenerate it (`provider-services tx cert generate client --from {} --overwrite`) and publish it",
            path.display(),
            s.from
        );
    };
    let certs = query_json(
        cli::cert_list(s, &session.owner),
        "the client certificate check",
    )?;
    let published = certs
        .get("certificates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.pointer("/certificate/state").and_then(Value::as_str) == Some("valid"))
        .filter_map(|c| c.pointer("/certificate/cert")?.as_str())
        .filter_map(pem::base64_decode)
        .filter_map(|bytes| pem::certificate_body(&String::from_utf8_lossy(&bytes)))
        .any(|b| b == body);
    if !published {
        bail!(
            "the client certificate {} is not published on chain as valid (never published, or revoked): publish it with `provider-services tx cert publish client --from {}` (one transaction, once)",
            path.display(),
            s.from
        );
    }
    eprintln!(
        "provider auth: mTLS with the published client certificate {}",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::template_denoms;

    #[test]
    fn reads_the_templates_denoms() {
        let t =
            "pricing:\n  api:\n    denom: uakt\n    amount: 1000\n  db:\n    denom: \"ibc/170C\"\n";
        let d: Vec<String> = template_denoms(t).into_iter().collect();
        assert_eq!(d, ["ibc/170C", "uakt"]);
    }
}
