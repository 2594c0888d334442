//! Cryptocurrency addresses, each with its checksum verified: Bitcoin base58check (P2PKH,
//! P2SH), Bitcoin bech32/bech32m (segwit v0 and v1+), and Ethereum EIP-55 mixed-case.

use super::context::Context;
use super::{LazyRegex, Recognizer, Scan, compile};
use crate::pii::Finding;
use bech32::primitives::decode::SegwitHrpstring;
use ring::digest::{SHA256, digest};
use sha3::{Digest as _, Keccak256};
use std::sync::LazyLock;

/// A verified checksum: random strings pass one time in 2³² (base58check), 2³⁰ (bech32)
/// or, for EIP-55, about one in 2^(number of letters).
const CHECKSUMMED: f32 = 0.95;
/// An all-lowercase or all-uppercase Ethereum address has no checksum to verify: a hex
/// hash with `0x` looks the same, so it needs a context word.
const UNCHECKED_ETH: f32 = 0.3;

const CONTEXT: Context = Context {
    support: &[
        "wallet", "address", "btc", "bitcoin", "eth", "ethereum", "send", "pay", "crypto", "usdt",
        "usdc",
    ],
    against: &[
        "hash",
        "sha",
        "commit",
        "tx",
        "txid",
        "transaction",
        "block",
        "digest",
    ],
};

const BITCOIN: Recognizer = Recognizer {
    class: "CRYPTO_ADDRESS",
    name: "bitcoin",
    context: CONTEXT,
};

const ETHEREUM_ADDRESS: Recognizer = Recognizer {
    class: "CRYPTO_ADDRESS",
    name: "ethereum",
    context: CONTEXT,
};

pub(super) static BASE58: LazyRegex =
    LazyLock::new(|| compile(r"(?-u:\b)[13][1-9A-HJ-NP-Za-km-z]{25,34}(?-u:\b)"));
pub(super) static BECH32: LazyRegex = LazyLock::new(|| {
    compile(
        r"(?-u:\b)(?:(?:bc|tb)1[02-9ac-hj-np-z]{8,87}|(?:BC|TB)1[02-9AC-HJ-NP-Z]{8,87})(?-u:\b)",
    )
});
pub(super) static ETHEREUM: LazyRegex =
    LazyLock::new(|| compile(r"(?-u:\b)0x[0-9a-fA-F]{40}(?-u:\b)"));

/// Base58check with a P2PKH (0x00) or P2SH (0x05) version byte and a 20-byte hash.
fn valid_base58(candidate: &str) -> bool {
    let mut decoded = [0u8; 25];
    let Ok(25) = bs58::decode(candidate).onto(&mut decoded[..]) else {
        return false;
    };
    let (payload, checksum) = decoded.split_at(21);
    let first = digest(&SHA256, payload);
    let second = digest(&SHA256, first.as_ref());
    matches!(decoded[0], 0x00 | 0x05) && second.as_ref().get(..4) == Some(checksum)
}

/// Bech32 (witness v0) or bech32m (v1+) with a mainnet or testnet prefix.
fn valid_bech32(candidate: &str) -> bool {
    SegwitHrpstring::new(candidate).is_ok_and(|s| s.has_valid_hrp())
}

/// EIP-55: a hex letter is uppercase exactly when the matching nibble of the Keccak-256 of
/// the lowercase address is ≥ 8. `None` when the address is all one case (no checksum).
fn eip55(candidate: &str) -> Option<bool> {
    let hex = candidate.get(2..)?;
    let letters = || hex.bytes().filter(u8::is_ascii_alphabetic);
    if letters().all(|b| b.is_ascii_lowercase()) || letters().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut lower = [0u8; 40];
    for (dst, src) in lower.iter_mut().zip(hex.bytes()) {
        *dst = src.to_ascii_lowercase();
    }
    let hash = Keccak256::digest(lower);
    Some(hex.bytes().enumerate().all(|(i, b)| {
        let byte = hash.get(i / 2).copied().unwrap_or(0);
        let nibble = if i % 2 == 0 { byte >> 4 } else { byte & 0x0f };
        !b.is_ascii_alphabetic() || b.is_ascii_uppercase() == (nibble >= 8)
    }))
}

pub fn find(scan: &Scan<'_>, out: &mut Vec<Finding>) {
    BITCOIN.scan(scan, &BASE58, out, |m| {
        valid_base58(m.as_str()).then_some(CHECKSUMMED)
    });
    BITCOIN.scan(scan, &BECH32, out, |m| {
        valid_bech32(m.as_str()).then_some(CHECKSUMMED)
    });
    ETHEREUM_ADDRESS.scan(scan, &ETHEREUM, out, |m| match eip55(m.as_str()) {
        Some(true) => Some(CHECKSUMMED),
        Some(false) => None,
        None => Some(UNCHECKED_ETH),
    });
}

#[cfg(test)]
mod tests {
    use super::super::tests::{found, spans};

    #[test]
    fn bitcoin_base58check() {
        for addr in [
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
            "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
        ] {
            assert_eq!(spans(&format!("send to {addr}."), "bitcoin"), [addr]);
        }
        // One character changed: the checksum fails.
        assert!(found("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3", "bitcoin").is_empty());
    }

    #[test]
    fn bitcoin_bech32_and_bech32m() {
        for addr in [
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
            "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        ] {
            assert_eq!(spans(&format!("wallet {addr}"), "bitcoin"), [addr]);
        }
        assert!(found("bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdp", "bitcoin").is_empty());
    }

    #[test]
    fn ethereum_eip55() {
        // The examples of EIP-55.
        for addr in [
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
            "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
            "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
        ] {
            assert_eq!(spans(&format!("to {addr}"), "ethereum"), [addr]);
        }
        assert!(found("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD", "ethereum").is_empty());
        // No checksum to check: only with a context word.
        let lower = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
        assert!(found(lower, "ethereum").is_empty());
        assert_eq!(
            spans(&format!("my ETH wallet {lower}"), "ethereum"),
            [lower]
        );
    }
}
