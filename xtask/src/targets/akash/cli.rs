//! The `provider-services` calls, as values (printed `$ …` before they run,
//! listed by `--dry-run`). Shapes from the real CLI's sources, cited in
//! xtask/test-fakes/src/provider_services.rs, which checks them.

use std::path::Path;

use anyhow::bail;

use super::settings::{AuthType, Settings};
use crate::support::cmd::Cmd;

pub const PROGRAM: &str = "provider-services";

/// A release of `provider-services` whose flags and auth this xtask drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

/// Which versions are driven, and how they authenticate to a provider.
pub const SUPPORTED: &str =
    "v0.6.x (mTLS client certificate) and v0.8.x to v0.10.x (JWT, `--auth-type`)";

impl Version {
    /// `provider-services version` prints e.g. `v0.6.10` (or `0.6.10`).
    pub fn parse(output: &str) -> Option<Version> {
        let line = output.lines().map(str::trim).find(|l| !l.is_empty())?;
        let core = line.strip_prefix('v').unwrap_or(line);
        let core = core.split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
        let (Some(Some(major)), Some(Some(minor)), Some(Some(patch)), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        Some(Version {
            major,
            minor,
            patch,
        })
    }

    /// Whether this version takes `--auth-type` (JWT) or only mTLS.
    pub fn family(self) -> anyhow::Result<Family> {
        match (self.major, self.minor) {
            (0, 6) => Ok(Family::MtlsOnly),
            (0, 8..=10) => Ok(Family::Jwt),
            _ => bail!(
                "provider-services {self} is not a version this xtask drives (supported: {SUPPORTED}); install the version pinned in deploy/release.json (akash.cli_version)"
            ),
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// v0.6: no `--auth-type`; the provider checks an on-chain client certificate.
    MtlsOnly,
    /// v0.8+: `--auth-type jwt|mtls`, JWT by default.
    Jwt,
}

/// How the provider will know us, given the CLI and `AKASH_AUTH_TYPE`.
pub fn auth(family: Family, s: &Settings) -> anyhow::Result<AuthType> {
    match (family, s.auth_type) {
        (Family::MtlsOnly, Some(AuthType::Jwt)) => bail!(
            "AKASH_AUTH_TYPE=jwt, but this provider-services only speaks mTLS (JWT needs v0.8 or later): unset it or install the pinned version"
        ),
        (Family::MtlsOnly, _) => Ok(AuthType::Mtls),
        (Family::Jwt, chosen) => Ok(chosen.unwrap_or(AuthType::Jwt)),
    }
}

fn cli() -> Cmd {
    Cmd::new(PROGRAM)
}

pub fn version() -> Cmd {
    cli().arg("version")
}

pub fn keys_show_address(s: &Settings) -> Cmd {
    cli().args([
        "keys",
        "show",
        &s.from,
        "--address",
        "--keyring-backend",
        &s.keyring_backend,
    ])
}

pub fn keys_recover(s: &Settings, mnemonic: String) -> Cmd {
    cli()
        .args([
            "keys",
            "add",
            &s.from,
            "--recover",
            "--keyring-backend",
            &s.keyring_backend,
        ])
        .secret_stdin(mnemonic)
}

fn query(s: &Settings, what: &[&str]) -> Cmd {
    cli()
        .arg("query")
        .args(what.iter().copied())
        .args(["--node", &s.node, "--output", "json"])
}

pub fn deployment_get(s: &Settings, owner: &str) -> Cmd {
    query(
        s,
        &["deployment", "get", "--owner", owner, "--dseq", &s.dseq],
    )
}

/// Every lease of the deployment from the provider, closed ones included
/// (a closed lease is told apart from one never created), of every order:
/// `--gseq`/`--oseq` default to 1 and a 0 matches any (chain-sdk
/// go/cli/flags/market.go, go/node/market/v1/filters.go), and a lease won
/// after the group was started again is of order 2 or later. Both are
/// given: akash-network/node v0.38's `BidFiltersFromFlags` (the CLI of
/// provider-services v0.6) fills the gseq filter from `--oseq`.
pub fn lease_list(s: &Settings, owner: &str) -> Cmd {
    query(
        s,
        &[
            "market",
            "lease",
            "list",
            "--owner",
            owner,
            "--dseq",
            &s.dseq,
            "--provider",
            &s.provider,
            "--gseq",
            "0",
            "--oseq",
            "0",
        ],
    )
}

pub fn balances(s: &Settings, owner: &str) -> Cmd {
    query(s, &["bank", "balances", owner])
}

pub fn cert_list(s: &Settings, owner: &str) -> Cmd {
    query(s, &["cert", "list", "--owner", owner, "--state", "valid"])
}

pub fn query_tx(s: &Settings, hash: &str) -> Cmd {
    query(s, &["tx", hash])
}

/// The one transaction of a release. Broadcast mode `sync` (the node
/// checks the fee and signature, then returns the hash; `block` is gone
/// from newer SDKs): inclusion is waited for with `query tx`.
pub fn deployment_update(s: &Settings, sdl: &Path) -> Cmd {
    cli()
        .args(["tx", "deployment", "update"])
        .arg(sdl.display().to_string())
        .args(["--dseq", &s.dseq, "--from", &s.from])
        .args([
            "--node",
            &s.node,
            "--chain-id",
            &s.chain_id,
            "--keyring-backend",
            &s.keyring_backend,
        ])
        .args(s.fee.flags())
        .args(["--broadcast-mode", "sync", "--output", "json", "--yes"])
}

/// The order a lease belongs to: `(gseq, oseq)`.
pub type Order = (u64, u64);

/// Which lease, who asks, and how the provider authenticates the asker.
/// The order is always named: `lease-status` asks for gseq 1 / oseq 1
/// unless told (cmd/provider-services/cmd/leaseStatus.go
/// `BidIDFromFlags`), and so does `send-manifest` from v0.8 on
/// (helpers.go `leasesForDeployment`).
fn lease_flags(cmd: Cmd, s: &Settings, order: Order, auth: Option<AuthType>) -> Cmd {
    let cmd = cmd
        .args(["--dseq", &s.dseq])
        .args(["--gseq".to_owned(), order.0.to_string()])
        .args(["--oseq".to_owned(), order.1.to_string()])
        .args([
            "--provider",
            &s.provider,
            "--from",
            &s.from,
            "--node",
            &s.node,
            "--keyring-backend",
            &s.keyring_backend,
        ]);
    match auth {
        Some(a) => cmd.args(["--auth-type", a.as_str()]),
        None => cmd,
    }
}

/// `auth` is `None` for versions without `--auth-type`.
pub fn send_manifest(s: &Settings, sdl: &Path, order: Order, auth: Option<AuthType>) -> Cmd {
    lease_flags(
        cli().arg("send-manifest").arg(sdl.display().to_string()),
        s,
        order,
        auth,
    )
}

pub fn lease_status(s: &Settings, order: Order, auth: Option<AuthType>) -> Cmd {
    lease_flags(cli().arg("lease-status"), s, order, auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_map_to_auth() {
        let v = Version::parse("v0.6.10\n").expect("parses");
        assert_eq!(v.to_string(), "v0.6.10");
        assert_eq!(v.family().expect("supported"), Family::MtlsOnly);
        let v = Version::parse("0.10.1-rc3").expect("parses");
        assert_eq!(v.family().expect("supported"), Family::Jwt);
        for old in ["v0.4.8", "v0.7.2", "v1.0.0"] {
            let err = Version::parse(old)
                .expect("parses")
                .family()
                .expect_err(old)
                .to_string();
            assert!(err.contains("not a version this xtask drives"), "{err}");
        }
        assert_eq!(Version::parse("dev"), None);
        assert_eq!(Version::parse(""), None);
    }
}
