//! The audit trail's keys: the chain's MAC key (derived from the instance secret), the
//! checkpoint signing key (the instance's Ed25519 key), and per-subject data keys that
//! encrypt payloads (AES-256-GCM), sealed with the instance's seal key. Destroying a
//! subject's data key erases its payloads while the chain, which covers the ciphertext,
//! stays intact.

use crate::store::StoreError;
use crate::store::instance_key::InstanceKey;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The chain's MAC key: HMAC-SHA256 keyed by the instance secret, over a fixed label.
pub fn chain_key(instance: &InstanceKey) -> hmac::Key {
    let derived = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &instance.key_hash_secret),
        b"airlock audit chain v1",
    );
    hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref())
}

/// A record's MAC: over the previous record's MAC and this record's canonical encoding.
pub fn record_mac(key: &hmac::Key, previous: &[u8], canonical: &[u8]) -> [u8; 32] {
    let mut context = hmac::Context::with_key(key);
    context.update(previous);
    context.update(canonical);
    let mut out = [0u8; 32];
    out.copy_from_slice(context.sign().as_ref());
    out
}

fn random<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| StoreError::Invalid("the system random generator failed".into()))?;
    Ok(out)
}

fn cipher(key: &[u8; 32]) -> Result<LessSafeKey, StoreError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| StoreError::Invalid("bad AES key".into()))
}

/// Encrypts `plain` under `key` with `aad` bound in; nonce and ciphertext together.
pub fn seal(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, StoreError> {
    let nonce_bytes = random::<NONCE_LEN>()?;
    let mut data = plain.to_vec();
    cipher(key)?
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(aad),
            &mut data,
        )
        .map_err(|_| StoreError::Invalid("encryption failed".into()))?;
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&data);
    Ok(out)
}

/// Decrypts what [`seal`] made; `None` if it was altered or the key is wrong.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let (nonce, data) = sealed.split_at_checked(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut data = data.to_vec();
    let plain = cipher(key)
        .ok()?
        .open_in_place(nonce, Aad::from(aad), &mut data)
        .ok()?;
    Some(plain.to_vec())
}

/// A new random data key.
pub fn new_data_key() -> Result<[u8; 32], StoreError> {
    random::<32>()
}

/// A payload sealed with a data key (bound to the key's id).
pub fn seal_payload(
    data_key: &[u8; 32],
    key_id: &str,
    plain: &[u8],
) -> Result<Vec<u8>, StoreError> {
    seal(data_key, key_id.as_bytes(), plain)
}

/// A stored payload opened again; `None` once its data key is destroyed or if altered.
pub fn open_payload(data_key: &[u8; 32], key_id: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    open(data_key, key_id.as_bytes(), sealed)
}

/// The hex SHA-256 a record names its sealed payload by.
pub fn payload_digest(sealed: &[u8]) -> String {
    crate::store::instance_key::hex(ring::digest::digest(&ring::digest::SHA256, sealed).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_open_only_with_their_key_and_id() {
        let key = new_data_key().unwrap();
        let stored = seal_payload(&key, "dk_1", b"hello").unwrap();
        assert_eq!(open_payload(&key, "dk_1", &stored).unwrap(), b"hello");
        assert!(open_payload(&key, "dk_2", &stored).is_none());
        assert!(open_payload(&new_data_key().unwrap(), "dk_1", &stored).is_none());
    }
}
