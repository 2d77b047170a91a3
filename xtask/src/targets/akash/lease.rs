//! The lease as the chain knows it, and what the provider does to a lease
//! by itself. What runs is decided from this (a fact on chain), never from
//! the text of a provider's error: for a lease it runs no manifest for, the
//! provider answers `lease-status` with a bare 404 whatever the reason
//! (akash-network/provider gateway/rest/router.go `leaseStatusHandler`).
//!
//! A provider closes a lease itself (akash-network/provider):
//! - when no manifest arrives within `--manifest-timeout` of winning the
//!   lease, 5 minutes by default (cmd/provider-services/cmd/flags.go,
//!   manifest/watchdog.go);
//! - when the workload stays below its `count` for more than
//!   `monitor-max-retries` (40) checks at least `monitor-retry-period` (4 s,
//!   plus up to 15 s of jitter) apart (cluster/monitor.go,
//!   cluster/config.go): never sooner than 41 × 4 s = 164 s after it went
//!   down. Only availability counts: the provider adds no health probe, so
//!   a release that runs but answers 500 keeps its lease.
//!
//! On chain the lease is then closed and its group paused (akash-network/node
//! x/market/handler/server.go `CloseBid`, x/deployment/keeper `OnBidClosed`);
//! `tx deployment group start` opens a new order for the group
//! (x/deployment/handler/server.go `StartGroup`).

use anyhow::{Context, bail};
use serde_json::Value;

use super::cli;
use super::settings::Settings;

/// The provider's `--manifest-timeout` default.
pub const MANIFEST_TIMEOUT_MIN: u64 = 5;
/// The earliest the provider's monitor closes an unavailable workload's
/// lease: 41 failed checks, at least 4 s apart.
pub const MONITOR_CLOSE_SECS: u64 = 41 * 4;

/// This deployment's lease from `AKASH_PROVIDER`, as the chain lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lease {
    Active {
        /// Block height it was created at.
        created_at: String,
        /// Its order: `(gseq, oseq)`.
        order: (u64, u64),
    },
    Closed {
        gseq: u64,
        oseq: u64,
        /// Block height it was closed at, when the chain says.
        closed_on: String,
        /// `lease_closed_reason_*` (market v1 leases only).
        reason: Option<String>,
        /// Whether its group is paused (the provider closed the lease) and
        /// needs `group start`; an owner's close leaves it open with a new
        /// order (x/market/handler/server.go `CloseLease`). `None`: unknown.
        group_paused: Option<bool>,
    },
    /// The chain lists no lease of this deployment from this provider.
    Missing,
}

impl Lease {
    /// From `query market lease list --owner --dseq --provider` JSON (any
    /// state); an active lease wins over closed ones of earlier orders.
    pub fn from_list(list: &Value, provider: &str) -> Lease {
        let leases: Vec<&Value> = list
            .get("leases")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|l| l.get("lease"))
            .filter(|l| l.pointer("/lease_id/provider").and_then(Value::as_str) == Some(provider))
            .collect();
        let number = |l: &Value, p: &str| {
            l.pointer(p)
                .and_then(|g| g.as_u64().or_else(|| g.as_str()?.parse().ok()))
                .unwrap_or(1)
        };
        let text = |l: &Value, p: &str| {
            l.pointer(p)
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .unwrap_or_default()
        };
        if let Some(l) = leases
            .iter()
            .find(|l| l.get("state").and_then(Value::as_str) == Some("active"))
        {
            return Lease::Active {
                created_at: text(l, "/created_at"),
                order: (number(l, "/lease_id/gseq"), number(l, "/lease_id/oseq")),
            };
        }
        match leases.last() {
            None => Lease::Missing,
            Some(l) => Lease::Closed {
                gseq: number(l, "/lease_id/gseq"),
                oseq: number(l, "/lease_id/oseq"),
                closed_on: text(l, "/closed_on"),
                reason: l
                    .get("reason")
                    .and_then(Value::as_str)
                    .filter(|r| !r.is_empty())
                    .map(str::to_owned),
                group_paused: None,
            },
        }
    }
}

/// Asks the chain (read-only).
pub fn query(s: &Settings, owner: &str) -> anyhow::Result<Lease> {
    let cmd = cli::lease_list(s, owner);
    let out = cmd.output()?;
    if !out.status.success() {
        bail!("the lease check: `{cmd}` failed: {}", out.last_words());
    }
    let list: Value = serde_json::from_str(out.stdout.trim())
        .with_context(|| format!("the lease check: `{cmd}` printed no JSON"))?;
    let mut found = Lease::from_list(&list, &s.provider);
    if let Lease::Closed {
        gseq, group_paused, ..
    } = &mut found
    {
        *group_paused = group_state(s, owner, *gseq).map(|state| state == "paused");
    }
    Ok(found)
}

/// The state of group `gseq` of the deployment (`open`, `paused`, …), when
/// `query deployment get` answers.
fn group_state(s: &Settings, owner: &str, gseq: u64) -> Option<String> {
    let out = cli::deployment_get(s, owner).output().ok()?;
    let d: Value = serde_json::from_str(out.stdout.trim()).ok()?;
    d.get("groups")?
        .as_array()?
        .iter()
        .find(|g| {
            g.pointer("/group_id/gseq")
                .and_then(|n| n.as_u64().or_else(|| n.as_str()?.parse().ok()))
                == Some(gseq)
        })?
        .get("state")?
        .as_str()
        .map(str::to_owned)
}

/// Why the provider closed it, in words.
fn reason_words(reason: Option<&str>) -> &'static str {
    match reason {
        Some("lease_closed_reason_unstable") => {
            "the provider closed it: its workload stayed unavailable for 41 health checks"
        }
        Some("lease_closed_reason_manifest_timeout") => {
            "the provider closed it: no manifest arrived within its --manifest-timeout (5 min)"
        }
        Some("lease_closed_reason_insufficient_funds") => "the deployment ran out of funds",
        Some("lease_closed_reason_owner") => "its owner closed it",
        Some("lease_closed_reason_decommission") => "the provider was decommissioned",
        _ => {
            "a provider closes a lease whose workload stays unavailable for 41 health checks (at least 164 s) or that gets no manifest within 5 min; an empty escrow or its owner closes it too"
        }
    }
}

/// The one line for a lease that is gone, with the commands that get a new one.
pub fn gone(s: &Settings, owner: &str, lease: &Lease) -> String {
    let (what, gseq, oseq) = match lease {
        Lease::Closed {
            gseq,
            oseq,
            closed_on,
            reason,
            ..
        } => {
            let at = if closed_on.is_empty() || closed_on == "0" {
                String::new()
            } else {
                format!(" at height {closed_on}")
            };
            (
                format!("was closed{at} ({})", reason_words(reason.as_deref())),
                *gseq,
                // `group start` opens the group's next order.
                oseq + 1,
            )
        }
        _ => (
            "does not exist (never created, or from another provider: check AKASH_PROVIDER)"
                .to_owned(),
            1,
            1,
        ),
    };
    // A closed lease paused its group: it needs a new order first
    // (`--owner` is required: chain-sdk go/cli/flags/deployment.go
    // `MarkReqDeploymentIDFlags`).
    let start = format!(
        "`provider-services tx deployment group start --owner {owner} --dseq {dseq} --gseq {gseq} --from {from}`",
        dseq = s.dseq,
        from = s.from
    );
    let reopen = match lease {
        Lease::Closed {
            group_paused: Some(true),
            ..
        } => format!("{start} (its group is paused: this opens a new order), then "),
        Lease::Closed {
            group_paused: None, ..
        } => format!(
            "if `query deployment get` shows its group paused, {start} (a new order), then "
        ),
        _ => String::new(),
    };
    format!(
        "the lease of deployment {dseq} from {provider} {what}, so nothing runs there; get a new one: {reopen}pick a bid from `provider-services query market bid list --owner {owner} --dseq {dseq} --gseq {gseq} --oseq {oseq} --state open` and accept it with `provider-services tx market lease create --dseq {dseq} --gseq {gseq} --oseq {oseq} --provider <provider> --from {from}`; set AKASH_PROVIDER to that provider and deploy again within {MANIFEST_TIMEOUT_MIN} min (a lease with no manifest is closed after that)",
        dseq = s.dseq,
        provider = s.provider,
        from = s.from,
    )
}

/// Said when a lease has no manifest yet: the provider's watchdog is running.
pub fn watchdog_note(s: &Settings, created_at: &str) -> String {
    format!(
        "the lease from {} (created at height {created_at}) has no manifest yet: the provider closes a lease that gets none within {MANIFEST_TIMEOUT_MIN} min of its creation (its --manifest-timeout), and a new lease is needed then; a first deploy interrupted before `send-manifest` leaves it so",
        s.provider
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const P: &str = "akash1provider";

    fn lease(state: &str, provider: &str, extra: Value) -> Value {
        let mut l = json!({"lease": {"lease_id": {"provider": provider, "gseq": 1, "oseq": 1},
            "state": state, "created_at": "101", "closed_on": "0"}});
        if let Value::Object(m) = extra {
            for (k, v) in m {
                l["lease"][k] = v;
            }
        }
        l
    }

    #[test]
    fn reads_the_lease_of_this_provider() {
        let list = json!({"leases": [
            lease("closed", P, json!({"closed_on": "140", "reason": "lease_closed_reason_unstable"})),
            lease("active", "akash1other", json!({})),
        ]});
        assert_eq!(
            Lease::from_list(&list, P),
            Lease::Closed {
                gseq: 1,
                oseq: 1,
                closed_on: "140".into(),
                reason: Some("lease_closed_reason_unstable".into()),
                group_paused: None,
            }
        );
        let list =
            json!({"leases": [lease("closed", P, json!({})), lease("active", P, json!({}))]});
        assert_eq!(
            Lease::from_list(&list, P),
            Lease::Active {
                created_at: "101".into(),
                order: (1, 1)
            }
        );
        assert_eq!(Lease::from_list(&json!({"leases": []}), P), Lease::Missing);
    }
}
