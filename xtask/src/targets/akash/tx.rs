//! The one transaction of a release: broadcast, judged by its JSON `code`
//! (the CLI exits 0 for a transaction the chain refused), then waited for
//! until a block includes it, so `send-manifest` never races the block.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::targets::NothingChanged;
use serde_json::Value;

use super::cli;
use super::settings::Settings;
use crate::support::cmd::describe;

/// Between two `query tx` polls (Akash blocks come about every 6 s).
const POLL_EVERY: Duration = Duration::from_secs(1);

/// A transaction result as the CLI prints it (cosmos-sdk `TxResponse`).
#[derive(Debug)]
pub struct TxResult {
    pub txhash: String,
    pub height: u64,
    pub code: i64,
    pub codespace: String,
    pub raw_log: String,
}

impl TxResult {
    pub fn parse(stdout: &str) -> Option<TxResult> {
        let v: Value = serde_json::from_str(stdout.trim()).ok()?;
        let txhash = v.get("txhash")?.as_str()?.to_owned();
        let number = |k: &str| -> Option<i64> {
            match v.get(k)? {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.parse().ok(),
                _ => None,
            }
        };
        Some(TxResult {
            txhash,
            height: number("height")
                .and_then(|h| u64::try_from(h).ok())
                .unwrap_or(0),
            code: number("code").unwrap_or(0),
            codespace: v
                .get("codespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            raw_log: v
                .get("raw_log")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        })
    }

    fn refused(&self) -> String {
        let space = if self.codespace.is_empty() {
            String::new()
        } else {
            format!(", codespace {}", self.codespace)
        };
        format!("code {}{space}: {}", self.code, self.raw_log.trim())
    }
}

/// `tx deployment update`, then `query tx` until included. Ok when the
/// transaction is in a block with code 0.
pub fn update_and_wait(s: &Settings, sdl: &Path) -> anyhow::Result<TxResult> {
    let update = cli::deployment_update(s, sdl);
    let out = update.tee()?;
    if !out.status.success() {
        return Err(NothingChanged(format!(
            "`{update}` failed ({}) before anything was broadcast: {}",
            describe(out.status),
            out.last_words()
        ))
        .into());
    }
    let sent = TxResult::parse(&out.stdout).with_context(|| {
        format!(
            "`{update}` printed no transaction JSON (txhash, code): {}",
            out.last_words()
        )
    })?;
    if sent.code != 0 {
        return Err(NothingChanged(format!(
            "the chain refused the deployment update ({}); nothing changed{}",
            sent.refused(),
            hint(&sent)
        ))
        .into());
    }
    let included = wait_included(s, &sent.txhash)?;
    if included.code != 0 {
        return Err(NothingChanged(format!(
            "the deployment update {} was included at height {} but failed ({}); the deployment is unchanged",
            included.txhash,
            included.height,
            included.refused()
        ))
        .into());
    }
    eprintln!(
        "transaction {} included at height {}",
        included.txhash, included.height
    );
    Ok(included)
}

/// What to do about the common refusals (cosmos-sdk types/errors: 5
/// insufficient funds, 11 out of gas, 13 insufficient fee).
fn hint(tx: &TxResult) -> &'static str {
    match (tx.codespace.as_str(), tx.code) {
        ("sdk", 13) => {
            " (raise AKASH_GAS_PRICES to the node's minimum gas price, or set AKASH_FEES)"
        }
        ("sdk", 5) => " (fund the account AKASH_FROM)",
        ("sdk", 11) => " (use AKASH_GAS=auto or a higher AKASH_GAS)",
        _ => "",
    }
}

/// Polls `query tx <hash>` until a block includes it or the deadline passes.
fn wait_included(s: &Settings, hash: &str) -> anyhow::Result<TxResult> {
    let deadline = Instant::now() + Duration::from_secs(s.tx_timeout_secs);
    let query = cli::query_tx(s, hash);
    loop {
        let out = query.output()?;
        if out.status.success()
            && let Some(tx) = TxResult::parse(&out.stdout).filter(|t| t.height > 0)
        {
            return Ok(tx);
        }
        // Not found yet (the CLI exits 1 until a block holds it).
        if Instant::now() >= deadline {
            bail!(
                "the deployment update {hash} was not included within {}s (last answer: {}); it may still land: check `{query}` before deploying again, and raise XTASK_AKASH_TX_TIMEOUT if blocks are slow",
                s.tx_timeout_secs,
                out.last_words()
            );
        }
        std::thread::sleep(POLL_EVERY.min(deadline.saturating_duration_since(Instant::now())));
    }
}

#[cfg(test)]
mod tests {
    use super::TxResult;

    #[test]
    fn reads_code_and_height_as_numbers_or_strings() {
        let t = TxResult::parse(
            r#"{"height":"0","txhash":"AB12","codespace":"sdk","code":13,"raw_log":"insufficient fees; got: 0uakt required: 5000uakt: insufficient fee"}"#,
        )
        .expect("parses");
        assert_eq!((t.height, t.code), (0, 13));
        assert!(
            t.refused()
                .contains("code 13, codespace sdk: insufficient fees")
        );
        let t = TxResult::parse(r#"{"height":"101","txhash":"AB12","code":0}"#).expect("parses");
        assert_eq!((t.height, t.code), (101, 0));
        assert!(TxResult::parse("not json").is_none());
        assert!(TxResult::parse(r#"{"code":0}"#).is_none(), "no hash");
    }
}
