//! `keys show` and `keys add --recover` (cosmos-sdk client/keys/show.go and
//! add.go), and the signer behind `--from`. The keyring is `keyring.json`
//! in the state dir: name -> address.

use std::path::Path;

use serde_json::{Value, json};
use test_fakes::cli::Parsed;
use test_fakes::keys;
use test_fakes::state;

use super::flag;

const KEYRING: &str = "keyring.json";

fn load(dir: &Path) -> Result<Value, String> {
    state::read_json(&dir.join(KEYRING), json!({}))
}

fn not_found(name: &str) -> String {
    format!("{name} is not a valid name or address: {name}.info: key not found")
}

fn key_block(name: &str, address: &str) -> String {
    format!(
        "- address: {address}\n  name: {name}\n  pubkey: '{{\"@type\":\"/cosmos.crypto.secp256k1.PubKey\",\"key\":\"{}\"}}'\n  type: local\n",
        &state::hex64(address.as_bytes())[..44]
    )
}

/// `keys show NAME [-a|--address]`.
pub fn show(dir: &Path, p: &Parsed, name: &str) -> Result<(), String> {
    let keyring = load(dir)?;
    let Some(address) = keyring.get(name).and_then(Value::as_str) else {
        return Err(not_found(name));
    };
    if p.bool("address") {
        println!("{address}");
    } else {
        print!("{}", key_block(name, address));
    }
    Ok(())
}

/// `keys add NAME --recover`: the bip39 mnemonic is read from stdin, as the
/// real one prompts `> Enter your bip39 mnemonic`. Without --recover the real
/// one creates a key and prints a new mnemonic: not needed here, refused.
pub fn add(dir: &Path, p: &Parsed, name: &str) -> Result<(), String> {
    if !p.bool("recover") {
        return Err("fake provider-services: only `keys add NAME --recover` is supported".into());
    }
    let mut keyring = load(dir)?;
    if keyring.get(name).is_some() {
        return Err("aborted".into());
    }
    eprintln!("> Enter your bip39 mnemonic");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    keys::check_mnemonic(&line)?;
    let address = keys::address_of_mnemonic(&line);
    keyring[name] = json!(address);
    state::write_json(&dir.join(KEYRING), &keyring)?;
    print!("\n{}", key_block(name, &address));
    Ok(())
}

/// The signer: `--from` (or `AKASH_FROM`) names a key in the keyring, by
/// name or address (cosmos-sdk client/context `GetFromFields`).
pub fn owner(dir: &Path, p: &Parsed) -> Result<String, String> {
    let from = flag(p, "from").ok_or_else(|| {
        "empty address string is not allowed (fake provider-services: give --from or AKASH_FROM)"
            .to_string()
    })?;
    let keyring = load(dir)?;
    if let Some(a) = keyring.get(&from).and_then(Value::as_str) {
        return Ok(a.to_string());
    }
    let by_address = keyring
        .as_object()
        .is_some_and(|k| k.values().any(|a| a.as_str() == Some(from.as_str())));
    if by_address {
        return Ok(from);
    }
    Err(not_found(&from))
}
