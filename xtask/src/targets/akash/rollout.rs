//! How a provider rolls an update out, and what that means for the api.
//!
//! Every service runs as a Kubernetes Deployment with a RollingUpdate of
//! `maxSurge: 0, maxUnavailable: 1` and no readiness probe
//! (akash-network/provider cluster/kube/builder/deployment.go, the same
//! from v0.6.10 to now). So with `count: 1` the one replica is stopped
//! before its successor starts: each update has downtime, from the old
//! container's stop until the new one listens (image pull included). With
//! `count` ≥ 2 one replica is replaced at a time and the others serve; what
//! remains is a replica that gets traffic as soon as its container runs
//! (no probe: the api binds within milliseconds of starting, and its own
//! `/readiness` is not consulted) and one that stops taking connections at
//! SIGTERM while the ingress may still route to it for a moment.

/// The replica counts of `deployment.<service>.<placement>.count` in an
/// SDL's text (the template's layout: a top-level `deployment:` section).
pub fn counts(sdl: &str) -> Vec<u64> {
    let mut in_deployment = false;
    let mut counts = Vec::new();
    for line in sdl.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            in_deployment = line.trim_end() == "deployment:";
            continue;
        }
        if in_deployment
            && let Some(n) = line.trim().strip_prefix("count:")
            && let Ok(n) = n.trim().parse()
        {
            counts.push(n);
        }
    }
    counts
}

/// What a release will do to the service while it rolls out; said once per
/// release (deploy and rollback run the checks once).
pub fn expectation(counts: &[u64]) -> String {
    match counts.iter().min() {
        Some(1) | Some(0) | None => "warning: this update has downtime: deploy/akash/deploy.yaml runs `count: 1`, and the provider replaces that one replica in place (RollingUpdate maxSurge 0, maxUnavailable 1, no readiness probe: akash-network/provider cluster/kube/builder/deployment.go): nothing answers from the old container's stop until the new one listens, image pull included; `count: 2` keeps one replica serving (a new deployment: count is part of its groups; see docs/decisions.md)".to_owned(),
        Some(n) => format!(
            "rollout: {n} replicas, replaced one at a time with no readiness probe (akash-network/provider cluster/kube/builder/deployment.go): the others serve meanwhile; a request can still fail in the moment a replica starts (it gets traffic before the api listens) or stops (it refuses new connections at SIGTERM while the ingress may still route to it)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_counts_from_the_deployment_section_only() {
        let sdl = "version: \"2.0\"\nservices:\n  api:\n    count: 9\ndeployment:\n  api:\n    dcloud:\n      profile: api\n      count: 2\n";
        assert_eq!(counts(sdl), [2]);
        let template = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/akash/deploy.yaml"
        ))
        .expect("the template");
        assert!(
            counts(&template).iter().all(|&c| c >= 2),
            "the template runs at least two replicas"
        );
    }

    #[test]
    fn one_replica_is_a_downtime_warning() {
        let one = expectation(&[1]);
        assert!(
            one.starts_with("warning: this update has downtime"),
            "{one}"
        );
        assert!(one.contains("maxSurge 0, maxUnavailable 1"));
        let two = expectation(&[2]);
        assert!(two.contains("2 replicas, replaced one at a time"), "{two}");
    }
}
