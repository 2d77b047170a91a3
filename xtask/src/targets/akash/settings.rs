//! What the akash target needs, read once and checked before any call:
//! `AKASH_*` from the environment (the same names the CLI itself reads, so
//! an override means the same thing to both) and the `akash` section of
//! deploy/release.json (pinned CLI version, placement attributes, signedBy).

use std::collections::BTreeMap;

use anyhow::bail;

use super::bech32;

/// Address prefix of Akash accounts.
pub const HRP: &str = "akash";

const REQUIRED: [&str; 6] = [
    "AKASH_NODE",
    "AKASH_CHAIN_ID",
    "AKASH_KEYRING_BACKEND",
    "AKASH_FROM",
    "AKASH_DSEQ",
    "AKASH_PROVIDER",
];

/// Gas and fee defaults: simulate (`--gas auto`) with headroom, and pay the
/// minimum gas price Akash's public nodes ask (chain registry:
/// `fixed_min_gas_price` 0.025 uakt; Akash's own tests set
/// `AKASH_GAS_PRICES=0.025uakt`). Without them the CLI sends 200000 gas and
/// no fee, which nodes with a minimum gas price refuse.
pub const DEFAULT_GAS: &str = "auto";
pub const DEFAULT_GAS_ADJUSTMENT: &str = "1.5";
pub const DEFAULT_GAS_PRICES: &str = "0.025uakt";
/// With `--gas auto` the gas is known only when the CLI simulates; the
/// balance check budgets this much gas (the CLI's own default limit, well
/// above what a deployment update uses) times the adjustment.
pub const GAS_BUDGET_FOR_AUTO: u64 = 200_000;

/// How long to wait for the update transaction to be included.
pub const DEFAULT_TX_TIMEOUT_SECS: u64 = 120;

#[derive(Clone, Debug)]
pub struct Settings {
    pub node: String,
    pub chain_id: String,
    pub keyring_backend: String,
    pub from: String,
    pub dseq: String,
    pub provider: String,
    pub fee: Fee,
    pub tx_timeout_secs: u64,
    /// `AKASH_AUTH_TYPE` when set (`jwt` or `mtls`); else by CLI version.
    pub auth_type: Option<AuthType>,
}

/// How the update transaction pays.
#[derive(Clone, Debug, PartialEq)]
pub struct Fee {
    /// `auto` or a gas limit.
    pub gas: String,
    pub gas_adjustment: String,
    /// Exactly one of these two (the CLI refuses both).
    pub gas_prices: Option<Coin>,
    pub fees: Option<Coin>,
}

/// `<amount><denom>`, as the CLI takes it (`0.025uakt`, `5000uakt`).
#[derive(Clone, Debug, PartialEq)]
pub struct Coin {
    pub amount: f64,
    pub denom: String,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthType {
    /// The provider checks a JWT signed by the key (CLI v0.8 and later).
    Jwt,
    /// The provider checks a client certificate published on chain.
    Mtls,
}

impl AuthType {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Jwt => "jwt",
            AuthType::Mtls => "mtls",
        }
    }
}

/// deploy/release.json `akash`: what CI installs and what the SDL places on.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AkashConfig {
    /// The `provider-services` release CI installs (e.g. `0.6.10`).
    pub cli_version: Option<String>,
    #[serde(default)]
    pub placement: Placement,
}

/// SDL `profiles.placement.<name>.{attributes, signedBy}`: which providers
/// may bid. Part of the deployment's groups: changing it needs a new
/// deployment, so the checks compare it with the one on chain.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default, rename = "signedBy")]
    pub signed_by: SignedBy,
}

#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignedBy {
    #[serde(default, rename = "allOf")]
    pub all_of: Vec<String>,
    #[serde(default, rename = "anyOf")]
    pub any_of: Vec<String>,
}

impl Placement {
    pub fn check(&self) -> anyhow::Result<()> {
        for a in self.signed_by.all_of.iter().chain(&self.signed_by.any_of) {
            if let Err(why) = bech32::check(a, HRP) {
                bail!(
                    "deploy/release.json akash.placement.signedBy names `{a}`, which {why}: name auditors by their akash1… address"
                );
            }
        }
        for (k, v) in &self.attributes {
            if k.trim().is_empty() || v.trim().is_empty() {
                bail!(
                    "deploy/release.json akash.placement.attributes has an empty key or value (`{k}`: `{v}`)"
                );
            }
        }
        Ok(())
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Coin {
    pub fn parse(name: &str, text: &str) -> anyhow::Result<Coin> {
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (amount, denom) = text.split_at(split);
        let valid_denom = denom.len() >= 3
            && denom.starts_with(|c: char| c.is_ascii_lowercase())
            && denom
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/:._-".contains(c));
        match amount.parse::<f64>() {
            Ok(a) if a.is_finite() && a >= 0.0 && valid_denom => Ok(Coin {
                amount: a,
                denom: denom.to_owned(),
                text: text.to_owned(),
            }),
            _ => bail!("{name} is `{text}`, expected an amount and a denom such as `0.025uakt`"),
        }
    }
}

impl Settings {
    pub fn from_env() -> anyhow::Result<Settings> {
        let missing: Vec<&str> = REQUIRED
            .iter()
            .copied()
            .filter(|k| var(k).is_none())
            .collect();
        if !missing.is_empty() {
            bail!(
                "the akash target needs {} set (missing: {}); see docs/quickstart-reference.md#akash",
                REQUIRED.join(", "),
                missing.join(", ")
            );
        }
        let get = |k: &str| var(k).unwrap_or_default().trim().to_owned();
        let dseq = get("AKASH_DSEQ");
        if dseq.is_empty() || !dseq.bytes().all(|b| b.is_ascii_digit()) {
            bail!("AKASH_DSEQ is `{dseq}`, expected the deployment's sequence number (digits)");
        }
        let provider = get("AKASH_PROVIDER");
        if let Err(why) = bech32::check(&provider, HRP) {
            bail!(
                "AKASH_PROVIDER `{provider}` {why}: copy the provider's akash1… address from the lease (`provider-services query market lease list`)"
            );
        }
        let tx_timeout_secs = match var("XTASK_AKASH_TX_TIMEOUT") {
            None => DEFAULT_TX_TIMEOUT_SECS,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(s) if s > 0 => s,
                _ => {
                    bail!("XTASK_AKASH_TX_TIMEOUT is `{v}`, expected seconds (a positive integer)")
                }
            },
        };
        let auth_type = match var("AKASH_AUTH_TYPE").as_deref().map(str::trim) {
            None => None,
            Some("jwt") => Some(AuthType::Jwt),
            Some("mtls") => Some(AuthType::Mtls),
            Some(other) => bail!("AKASH_AUTH_TYPE is `{other}`, expected `jwt` or `mtls`"),
        };
        Ok(Settings {
            node: get("AKASH_NODE"),
            chain_id: get("AKASH_CHAIN_ID"),
            keyring_backend: get("AKASH_KEYRING_BACKEND"),
            from: get("AKASH_FROM"),
            dseq,
            provider,
            fee: Fee::from_env()?,
            tx_timeout_secs,
            auth_type,
        })
    }
}

impl Fee {
    fn from_env() -> anyhow::Result<Fee> {
        let gas = var("AKASH_GAS").unwrap_or_else(|| DEFAULT_GAS.to_owned());
        let gas = gas.trim().to_owned();
        if gas != "auto" && gas.parse::<u64>().map_or(true, |g| g == 0) {
            bail!("AKASH_GAS is `{gas}`, expected `auto` or a gas limit (a positive integer)");
        }
        let adjustment =
            var("AKASH_GAS_ADJUSTMENT").unwrap_or_else(|| DEFAULT_GAS_ADJUSTMENT.to_owned());
        let adjustment = adjustment.trim().to_owned();
        if adjustment
            .parse::<f64>()
            .map_or(true, |a| !a.is_finite() || a < 1.0)
        {
            bail!(
                "AKASH_GAS_ADJUSTMENT is `{adjustment}`, expected a number of at least 1 (e.g. 1.5)"
            );
        }
        let fees = var("AKASH_FEES")
            .map(|f| Coin::parse("AKASH_FEES", f.trim()))
            .transpose()?;
        let prices = var("AKASH_GAS_PRICES")
            .map(|p| Coin::parse("AKASH_GAS_PRICES", p.trim()))
            .transpose()?;
        let gas_prices = match (&fees, prices) {
            (Some(_), Some(_)) => bail!(
                "both AKASH_FEES and AKASH_GAS_PRICES are set: the CLI refuses both (\"cannot provide both fees and gas prices\"); unset one"
            ),
            (Some(_), None) => None,
            (None, Some(p)) => Some(p),
            (None, None) => Some(Coin::parse("the default gas price", DEFAULT_GAS_PRICES)?),
        };
        Ok(Fee {
            gas,
            gas_adjustment: adjustment,
            gas_prices,
            fees,
        })
    }

    /// The CLI flags that set gas and fee.
    pub fn flags(&self) -> Vec<String> {
        let mut f = vec![
            "--gas".to_owned(),
            self.gas.clone(),
            "--gas-adjustment".to_owned(),
            self.gas_adjustment.clone(),
        ];
        if let Some(p) = &self.gas_prices {
            f.extend(["--gas-prices".to_owned(), p.text.clone()]);
        }
        if let Some(fees) = &self.fees {
            f.extend(["--fees".to_owned(), fees.text.clone()]);
        }
        f
    }

    /// The most this transaction can cost: `(amount, denom)`. With `--gas
    /// auto` the gas is budgeted as [`GAS_BUDGET_FOR_AUTO`] × adjustment.
    pub fn budget(&self) -> (u128, String) {
        if let Some(fees) = &self.fees {
            return (fees.amount.ceil() as u128, fees.denom.clone());
        }
        let adjustment: f64 = self.gas_adjustment.parse().unwrap_or(1.0);
        let gas = match self.gas.parse::<u64>() {
            Ok(g) => g as f64,
            Err(_) => GAS_BUDGET_FOR_AUTO as f64 * adjustment,
        };
        match &self.gas_prices {
            Some(p) => ((gas * p.amount).ceil() as u128, p.denom.clone()),
            None => (0, "uakt".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fee(gas: &str, prices: Option<&str>, fees: Option<&str>) -> Fee {
        Fee {
            gas: gas.into(),
            gas_adjustment: "1.5".into(),
            gas_prices: prices.map(|p| Coin::parse("p", p).expect("coin")),
            fees: fees.map(|f| Coin::parse("f", f).expect("coin")),
        }
    }

    #[test]
    fn coins_parse_or_name_the_setting() {
        let c = Coin::parse("X", "0.025uakt").expect("valid");
        assert_eq!((c.amount, c.denom.as_str()), (0.025, "uakt"));
        for bad in ["uakt", "0.025", "-1uakt", "1 uakt", "1UAKT", "abc"] {
            let err = Coin::parse("AKASH_GAS_PRICES", bad)
                .expect_err(bad)
                .to_string();
            assert!(
                err.contains("AKASH_GAS_PRICES") && err.contains(bad),
                "{err}"
            );
        }
    }

    #[test]
    fn the_budget_covers_the_worst_case() {
        // auto: 200000 × 1.5 × 0.025 = 7500
        assert_eq!(
            fee("auto", Some("0.025uakt"), None).budget(),
            (7500, "uakt".into())
        );
        assert_eq!(
            fee("100000", Some("0.025uakt"), None).budget(),
            (2500, "uakt".into())
        );
        assert_eq!(
            fee("auto", None, Some("6000uakt")).budget(),
            (6000, "uakt".into())
        );
    }

    #[test]
    fn flags_carry_gas_and_exactly_one_of_prices_and_fees() {
        let f = fee("auto", Some("0.025uakt"), None).flags();
        assert_eq!(
            f,
            [
                "--gas",
                "auto",
                "--gas-adjustment",
                "1.5",
                "--gas-prices",
                "0.025uakt"
            ]
        );
        let f = fee("auto", None, Some("6000uakt")).flags();
        assert!(f.contains(&"--fees".to_owned()) && !f.contains(&"--gas-prices".to_owned()));
    }

    #[test]
    fn placement_refuses_a_bad_auditor() {
        let p = Placement {
            signed_by: SignedBy {
                any_of: vec!["akash1notanaddress".into()],
                all_of: vec![],
            },
            ..Placement::default()
        };
        assert!(
            p.check()
                .expect_err("refused")
                .to_string()
                .contains("signedBy")
        );
    }
}
