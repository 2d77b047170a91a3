//! `Digest`: the content address of a pushed image manifest.

use std::fmt;
use std::str::FromStr;

use crate::model::sha::printable;

/// `sha256:` followed by 64 lowercase hex characters.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex characters after `sha256:`.
    #[cfg(test)]
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl FromStr for Digest {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.strip_prefix("sha256:") {
            Some(hex)
                if hex.len() == 64
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
            {
                Ok(Digest(s.to_owned()))
            }
            _ => anyhow::bail!(
                "`{}` is not an image digest: expected `sha256:` and 64 lowercase hex characters (as printed by `docker push` or in metadata.json)",
                printable(s)
            ),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sha256_digests_only() {
        let hex = "ab".repeat(32);
        let d: Digest = format!("sha256:{hex}").parse().expect("valid");
        assert_eq!(d.hex(), hex);
        for bad in [
            hex.clone(),
            format!("sha512:{hex}"),
            format!("sha256:{}", "AB".repeat(32)),
            format!("sha256:{}", &hex[1..]),
            "sha256:".into(),
        ] {
            let err = bad.parse::<Digest>().expect_err(&bad).to_string();
            assert!(err.contains("not an image digest"), "{err}");
        }
    }
}
