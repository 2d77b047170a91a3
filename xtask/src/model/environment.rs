//! `Environment`: staging or production, each with its repository policy.

use std::fmt;

use crate::model::repository::RepositoryKind;

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Staging,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }

    /// Where to look for a SHA's image, in order. Production takes only the
    /// canonical repository (images built from `main`); staging also takes
    /// branch builds.
    pub fn accepted_repositories(self) -> &'static [RepositoryKind] {
        match self {
            Environment::Production => &[RepositoryKind::Canonical],
            Environment::Staging => &[RepositoryKind::Canonical, RepositoryKind::Staging],
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_accepts_only_canonical() {
        assert_eq!(
            Environment::Production.accepted_repositories(),
            &[RepositoryKind::Canonical]
        );
        assert!(
            Environment::Staging
                .accepted_repositories()
                .contains(&RepositoryKind::Staging)
        );
    }
}
