//! Deterministic words, token counts and request ids.

use crate::random::{random_u64, splitmix64};
use std::time::{SystemTime, UNIX_EPOCH};

/// The vocabulary of the simulated model; one word is one token.
const WORDS: [&str; 64] = [
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "gateway", "model", "token",
    "stream", "request", "answer", "policy", "budget", "tenant", "secure", "local", "server",
    "vector", "prompt", "result", "simple", "steady", "signal", "little", "bright", "river",
    "mountain", "garden", "window", "paper", "orange", "silver", "planet", "forest", "engine",
    "harbor", "lantern", "meadow", "pencil", "rocket", "sunset", "thunder", "valley", "whisper",
    "yellow", "anchor", "bridge", "castle", "desert", "ember", "falcon", "glacier", "island",
    "jungle", "kettle", "ladder", "marble", "needle", "ocean", "puzzle", "quartz",
];

/// Offset basis of 64-bit FNV-1a.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Folds `bytes` into a running 64-bit FNV-1a hash.
pub fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The words the model "generates" for choice `choice` of a prompt hashed to `seed`.
pub fn words(seed: u64, choice: u32) -> impl Iterator<Item = &'static str> {
    let mut state = seed ^ (u64::from(choice).wrapping_mul(0xa076_1d64_78bd_642f));
    std::iter::repeat_with(move || {
        // WORDS has 64 entries: the low six bits pick one.
        WORDS[(splitmix64(&mut state) & 63) as usize]
    })
}

/// Whitespace-separated words in `text`: the simulator's tokenizer.
pub fn count_words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// `prefix` followed by a random UUIDv4 in hex without dashes, like vLLM's `random_uuid()`.
pub fn new_id(prefix: &str) -> String {
    let high = (random_u64() & !0xf000) | 0x4000; // version 4
    let low = (random_u64() & !(0xc << 60)) | (0x8 << 60); // RFC 4122 variant
    let mut id = String::with_capacity(prefix.len() + 32);
    id.push_str(prefix);
    push_hex(&mut id, high);
    push_hex(&mut id, low);
    id
}

fn push_hex(out: &mut String, value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(char::from(DIGITS[((value >> (shift * 4)) & 0xf) as usize]));
    }
}

/// Seconds since the Unix epoch, the `created` field of every response.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_whitespace_separated_words() {
        assert_eq!(count_words(""), 0);
        assert_eq!(count_words("   "), 0);
        assert_eq!(count_words("hello"), 1);
        assert_eq!(count_words("  hello   wide\tworld\n"), 3);
        assert_eq!(count_words("héllo wörld"), 2);
    }

    #[test]
    fn words_are_deterministic_per_seed_and_choice() {
        let a: Vec<_> = words(42, 0).take(8).collect();
        let b: Vec<_> = words(42, 0).take(8).collect();
        let c: Vec<_> = words(42, 1).take(8).collect();
        let d: Vec<_> = words(43, 0).take(8).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn ids_look_like_vllm_uuid_hex() {
        let id = new_id("chatcmpl-");
        let hex = id.strip_prefix("chatcmpl-").unwrap_or_default();
        assert_eq!(hex.len(), 32);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(&hex[12..13], "4");
        assert!(matches!(&hex[16..17], "8" | "9" | "a" | "b"));
        assert_ne!(new_id("x-"), new_id("x-"));
    }
}
