//! Values parsed once: a `GitSha`, `Digest` or `Repository` read from a
//! file (metadata.json, the ledger, deploy/release.json) goes through the
//! same `FromStr` as one typed on the command line, and is refused with the
//! same message.

macro_rules! deserialize_with_from_str {
    ($($type:ty),+) => {$(
        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <String as serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )+};
}

deserialize_with_from_str!(
    crate::model::sha::GitSha,
    crate::model::digest::Digest,
    crate::model::repository::Repository
);

#[cfg(test)]
mod tests {
    use crate::model::sha::GitSha;

    #[test]
    fn a_bad_value_in_a_file_is_refused_like_on_the_command_line() {
        let err = serde_json::from_str::<GitSha>("\"latest\"")
            .expect_err("floating tag")
            .to_string();
        assert!(err.contains("not a git SHA"), "{err}");
    }
}
