//! BIP-173 bech32 checking for Akash addresses (`akash1…`), so a mistyped
//! provider address is refused before any call, not by the chain after a
//! transaction. Decoding only: xtask never makes an address.

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
const GENERATOR: [u32; 5] = [
    0x3b6a_57b2,
    0x2650_8e6d,
    0x1ea1_19fa,
    0x3d42_33dd,
    0x2a14_62b3,
];

fn polymod(values: impl IntoIterator<Item = u8>) -> u32 {
    let mut chk: u32 = 1;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GENERATOR.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

/// Why an address is not a valid bech32 address with the expected prefix.
pub fn check(address: &str, hrp: &str) -> Result<(), String> {
    if address.len() > 90 {
        return Err("longer than 90 characters".into());
    }
    if address.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("has upper-case letters (addresses are lower-case)".into());
    }
    let Some((prefix, data)) = address.rsplit_once('1') else {
        return Err(format!("has no `1` separator (expected `{hrp}1…`)"));
    };
    if prefix != hrp {
        return Err(format!("has prefix `{prefix}`, expected `{hrp}`"));
    }
    if data.len() < 6 + 32 {
        return Err("is too short for an account address".into());
    }
    let mut values = Vec::with_capacity(data.len());
    for c in data.bytes() {
        match CHARSET.iter().position(|x| *x == c) {
            Some(v) => values.push(v as u8),
            None => return Err(format!("has `{}`, not a bech32 character", c as char)),
        }
    }
    let expanded = hrp
        .bytes()
        .map(|b| b >> 5)
        .chain([0])
        .chain(hrp.bytes().map(|b| b & 31))
        .chain(values.iter().copied());
    if polymod(expanded) != 1 {
        return Err("fails its bech32 checksum (a typo?)".into());
    }
    // 5-bit groups without the 6 checksum characters → bytes: an account
    // address is 20 bytes (32 groups).
    let payload_bits = (values.len() - 6) * 5;
    if payload_bits / 8 != 20 && payload_bits / 8 != 32 {
        return Err(format!(
            "holds {} bytes, expected a 20-byte account address",
            payload_bits / 8
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    // Encoded independently (a reference BIP-173 encoder) from bytes 1..=20,
    // 1..=32 and 1..=16.
    const TWENTY: &str = "akash1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5jepelx";
    const THIRTY_TWO: &str = "akash1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5z5tpwxqergd3c8g7rusqaq6prh";

    #[test]
    fn accepts_account_addresses() {
        assert_eq!(check(TWENTY, "akash"), Ok(()));
        assert_eq!(check(THIRTY_TWO, "akash"), Ok(()));
    }

    #[test]
    fn names_what_is_wrong() {
        let typo = TWENTY.replace("jepelx", "jepelz");
        assert!(
            check(&typo, "akash")
                .expect_err("refused")
                .contains("checksum")
        );
        let other_chain = "cosmos1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5lzv7xu";
        assert!(
            check(other_chain, "akash")
                .expect_err("refused")
                .contains("prefix `cosmos`")
        );
        assert!(
            check("akash1provider", "akash")
                .expect_err("refused")
                .contains("too short")
        );
        assert!(
            check(&TWENTY.to_uppercase(), "akash")
                .expect_err("refused")
                .contains("upper-case")
        );
        assert!(
            check("akash1qypqxpq9qcrsszg2pvxq6rs0zqz0a8lp", "akash").is_err(),
            "16 bytes"
        );
        assert!(
            check("akash1qypqxpq9qcrsszg2pvxq6rs0zqg3yyc5jepelb", "akash")
                .expect_err("refused")
                .contains("`b`")
        );
    }
}
