//! Keys and addresses as the Cosmos SDK checks them, through reference
//! implementations that xtask does not share (so a bug in xtask's own
//! bech32 check cannot hide behind the same bug here):
//! - bech32 (BIP-173, rust-bitcoin's `bech32` crate): `sdk.AccAddressFromBech32`
//!   refuses a bad checksum or prefix with "decoding bech32 failed: …"
//!   (cosmos-sdk types/address.go, `GetFromBech32`).
//! - bip39 (rust-bitcoin's `bip39` crate): `keys add --recover` refuses a
//!   mnemonic whose words or checksum are wrong with "invalid mnemonic"
//!   (cosmos-sdk client/keys/add.go, `bip39.IsMnemonicValid`).
//!
//! Addresses are made from the mnemonic (a fingerprint, not HD derivation):
//! the same words give the same account, other valid words another one.

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32, Hrp};

use crate::state::hex64;

pub const HRP: &str = "akash";

/// `akash1…` for 20 bytes.
pub fn address_from_bytes(bytes: &[u8; 20]) -> String {
    let hrp = Hrp::parse(HRP).expect("static hrp");
    bech32::encode_lower::<Bech32>(hrp, bytes).expect("20 bytes always encode")
}

/// The account of a mnemonic (normalised to single spaces).
pub fn address_of_mnemonic(mnemonic: &str) -> String {
    let words: Vec<&str> = mnemonic.split_whitespace().collect();
    address_of_seed(&words.join(" "))
}

/// An account derived from any text (fake providers, auditors).
pub fn address_of_seed(seed: &str) -> String {
    let hex = hex64(format!("account/{seed}").as_bytes());
    let mut bytes = [0u8; 20];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap_or(0);
    }
    address_from_bytes(&bytes)
}

/// `Ok` for a valid `akash1…` account address (20 bytes), else the SDK's words.
pub fn check_address(address: &str) -> Result<(), String> {
    if address.is_empty() {
        return Err("empty address string is not allowed".into());
    }
    let checked = CheckedHrpstring::new::<Bech32>(address)
        .map_err(|e| format!("decoding bech32 failed: {e}"))?;
    if checked.hrp().as_str() != HRP {
        return Err(format!(
            "invalid Bech32 prefix; expected {HRP}, got {}",
            checked.hrp().as_str()
        ));
    }
    let len = checked.byte_iter().count();
    if len != 20 && len != 32 {
        return Err(format!(
            "address length must be 20 or 32 bytes, got {len}: invalid address"
        ));
    }
    Ok(())
}

/// `Ok` for a valid English bip39 mnemonic (words and checksum).
pub fn check_mnemonic(mnemonic: &str) -> Result<(), String> {
    let words: Vec<&str> = mnemonic.split_whitespace().collect();
    bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &words.join(" "))
        .map(|_| ())
        .map_err(|_| "invalid mnemonic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BIP-39's published English test vector (entropy 0x7f × 16).
    const VALID: &str =
        "legal winner thank year wave sausage worth useful legal winner thank yellow";

    #[test]
    fn mnemonics_are_checked_word_and_checksum() {
        assert_eq!(check_mnemonic(VALID), Ok(()));
        assert_eq!(
            check_mnemonic(&format!("  {}  ", VALID.replace(' ', "   "))),
            Ok(())
        );
        // A valid word with a wrong checksum, an unknown word, a wrong count.
        assert!(check_mnemonic(&VALID.replace("yellow", "year")).is_err());
        assert!(check_mnemonic(&VALID.replace("yellow", "SECRETWORD")).is_err());
        assert!(check_mnemonic("legal winner thank").is_err());
    }

    #[test]
    fn addresses_round_trip_and_typos_fail() {
        let a = address_of_mnemonic(VALID);
        assert!(a.starts_with("akash1"), "{a}");
        assert_eq!(check_address(&a), Ok(()));
        assert_eq!(a, address_of_mnemonic(&VALID.replace(' ', "  ")));
        let last = a.chars().last().expect("non-empty");
        let typo = format!(
            "{}{}",
            &a[..a.len() - 1],
            if last == 'q' { 'p' } else { 'q' }
        );
        assert!(
            check_address(&typo)
                .expect_err("typo")
                .contains("decoding bech32 failed")
        );
        assert!(check_address("akash1provider").is_err());
        // xtask's own check agrees on this vector (bytes 1..=20).
        assert_eq!(
            address_from_bytes(&core::array::from_fn(|i| i as u8 + 1)),
            "akash1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5jepelx"
        );
    }
}
