//! Which stopped release containers to keep for an instant rollback: the
//! newest `retain` of the environment, and, whatever their age, every one
//! that holds the ledger's last verified release of ANY environment
//! (Kamal's pruning has deleted rollback targets, once across environments:
//! basecamp/kamal #1922).

use std::collections::BTreeSet;

/// What must never be pruned: release ids and image digests of each
/// environment's last verified release.
#[derive(Clone, Debug, Default)]
pub struct Protected {
    pub releases: BTreeSet<String>,
    pub digests: BTreeSet<String>,
}

/// A stopped release container, as far as pruning cares.
#[derive(Clone, Debug)]
pub struct Stopped {
    pub name: String,
    /// RFC 3339 from `docker inspect` (sorts as time within one engine).
    pub created: String,
    pub release: Option<String>,
    pub digest: Option<String>,
}

impl Protected {
    pub fn covers(&self, c: &Stopped) -> bool {
        c.release
            .as_ref()
            .is_some_and(|r| self.releases.contains(r))
            || c.digest.as_ref().is_some_and(|d| self.digests.contains(d))
    }
}

/// The names to remove: all but the newest `retain`, never a protected one.
pub fn to_remove(stopped: &[Stopped], retain: usize, protected: &Protected) -> Vec<String> {
    let mut newest_first: Vec<&Stopped> = stopped.iter().collect();
    newest_first.sort_by(|a, b| b.created.cmp(&a.created));
    newest_first
        .into_iter()
        .skip(retain)
        .filter(|c| !protected.covers(c))
        .map(|c| c.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stopped(n: u32, digest: &str) -> Stopped {
        Stopped {
            name: format!("api-{n}"),
            created: format!("2026-12-06T10:{n:02}:00Z"),
            release: Some(format!("r{n}")),
            digest: Some(digest.to_owned()),
        }
    }

    #[test]
    fn the_newest_are_kept_and_the_oldest_go() {
        let all: Vec<Stopped> = (1..=7).map(|n| stopped(n, &format!("d{n}"))).collect();
        assert_eq!(
            to_remove(&all, 5, &Protected::default()),
            vec!["api-2".to_owned(), "api-1".to_owned()]
        );
        assert!(to_remove(&all, 10, &Protected::default()).is_empty());
    }

    #[test]
    fn a_last_verified_release_of_any_environment_is_never_pruned() {
        let all: Vec<Stopped> = (1..=7).map(|n| stopped(n, &format!("d{n}"))).collect();
        let protected = Protected {
            releases: BTreeSet::from(["r1".to_owned()]),
            digests: BTreeSet::from(["d2".to_owned()]),
        };
        assert!(to_remove(&all, 5, &protected).is_empty());
        assert_eq!(
            to_remove(&all, 0, &protected),
            ["api-7", "api-6", "api-5", "api-4", "api-3"]
                .map(str::to_owned)
                .to_vec()
        );
    }
}
