//! `GET /version`: the build's identity, baked in by `build.rs`.

use axum::{Json, extract::State};
use serde::Serialize;

use crate::AppState;

/// What was built, from which commit, when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BuildInfo {
    /// Full commit SHA (40 lowercase hex), or `unknown` when built outside git without `GIT_SHA`.
    pub git_sha: &'static str,
    /// First 12 characters of `git_sha` (the short image tag), or `unknown`.
    pub short_sha: &'static str,
    /// The crate version.
    pub version: &'static str,
    /// Build time, RFC 3339 UTC (`SOURCE_DATE_EPOCH` when set).
    pub built_at: &'static str,
}

impl BuildInfo {
    /// This binary's build.
    pub const CURRENT: Self = Self {
        git_sha: env!("API_GIT_SHA"),
        short_sha: env!("API_SHORT_SHA"),
        version: env!("CARGO_PKG_VERSION"),
        built_at: env!("API_BUILT_AT"),
    };
}

/// `GET /version`.
pub async fn handler(State(state): State<AppState>) -> Json<BuildInfo> {
    Json(state.build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_build_is_consistent() {
        let build = BuildInfo::CURRENT;
        if build.git_sha == "unknown" {
            assert_eq!(build.short_sha, "unknown");
        } else {
            assert_eq!(build.git_sha.len(), 40);
            assert!(build.git_sha.starts_with(build.short_sha) && build.short_sha.len() == 12);
        }
        assert_eq!(build.built_at.len(), "2026-11-23T10:00:00Z".len());
        assert!(build.built_at.ends_with('Z'));
    }
}
