//! `Version`: a release's name, `vX.Y.Z` (SemVer 2.0 by the `semver` crate),
//! the git tag that asks for it and, without the `v`, the image tag it becomes.

use std::fmt;
use std::str::FromStr;

use crate::model::sha::printable;

/// A semantic version written as its git tag: `v` + `MAJOR.MINOR.PATCH`, an
/// optional pre-release (`v1.2.3-rc.1`), no build metadata (`+` cannot be
/// part of an image tag, and a version that differs only by build metadata
/// would name the same release twice).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(semver::Version);

impl Version {
    /// The git tag: `v1.2.3`.
    pub fn tag(&self) -> String {
        format!("v{}", self.0)
    }

    /// The image tag and the artifacts' folder: `1.2.3`.
    pub fn number(&self) -> String {
        self.0.to_string()
    }

    pub fn is_prerelease(&self) -> bool {
        !self.0.pre.is_empty()
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tag())
    }
}

impl FromStr for Version {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        let shown = printable(s);
        let expected =
            "expected a version tag `vMAJOR.MINOR.PATCH` such as `v1.2.3` (or `v1.2.3-rc.1`)";
        let Some(number) = s.strip_prefix('v') else {
            anyhow::bail!(
                "`{shown}` is not a version tag: {expected}; floating names like `latest` or `1.2` are never released"
            );
        };
        let version = semver::Version::parse(number).map_err(|e| {
            anyhow::anyhow!("`{shown}` is not a semantic version ({e}): {expected}")
        })?;
        if !version.build.is_empty() {
            anyhow::bail!(
                "`{shown}` has build metadata (`+{}`): image tags cannot carry `+`; use `v{}.{}.{}` or a pre-release like `v{}.{}.{}-rc.1`",
                version.build,
                version.major,
                version.minor,
                version.patch,
                version.major,
                version.minor,
                version.patch
            );
        }
        Ok(Version(version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(s: &str) -> String {
        s.parse::<Version>().expect_err(s).to_string()
    }

    #[test]
    fn a_version_tag_names_its_image_tag() {
        let v: Version = "v1.2.3".parse().expect("version");
        assert_eq!((v.tag(), v.number()), ("v1.2.3".into(), "1.2.3".into()));
        assert!(!v.is_prerelease());
        let rc: Version = "v1.2.3-rc.1".parse().expect("pre-release");
        assert_eq!(rc.number(), "1.2.3-rc.1");
        assert!(rc.is_prerelease());
        assert!(rc < v, "a pre-release sorts before its release");
    }

    #[test]
    fn floating_partial_and_malformed_versions_are_refused() {
        for bad in [
            "1.2.3", "latest", "v1.2", "1.2", "v1.2.3-", "v01.2.3", "v1.2.3.4", "", "v", "V1.2.3",
            "v1.2.3\n",
        ] {
            let err = refused(bad);
            assert!(err.contains("version"), "{bad:?}: {err}");
            assert!(!err.contains('\n'), "{bad:?}: one line: {err}");
        }
        assert!(refused("v1.2.3+build.5").contains("build metadata"));
        assert!(refused("latest").contains("never released"));
    }
}
