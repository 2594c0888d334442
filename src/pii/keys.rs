//! Keys of the personal-data actions, derived from the instance seal key under their own
//! labels: the vault's encryption key and the per-tenant keys of `hash`.

use crate::store::instance_key::InstanceKey;
use ring::hmac;

/// The derived keys; never printed.
pub struct PiiKeys {
    vault: [u8; 32],
    hash_root: hmac::Key,
}

impl std::fmt::Debug for PiiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PiiKeys(<redacted>)")
    }
}

fn derive(root: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, root), label);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

impl PiiKeys {
    /// Derives the keys from the instance's seal key (which is never used raw here).
    pub fn derive(instance: &InstanceKey) -> Self {
        let hash_root = derive(&instance.seal_key, b"airlock pii hash v1");
        Self {
            vault: derive(&instance.seal_key, b"airlock pii vault v1"),
            hash_root: hmac::Key::new(hmac::HMAC_SHA256, &hash_root),
        }
    }

    /// The AES-256-GCM key of vault rows.
    pub(crate) fn vault_key(&self) -> [u8; 32] {
        self.vault
    }

    /// The HMAC-SHA256 key `hash` uses for one tenant: equal values hash equally within
    /// the tenant and differently across tenants.
    pub(crate) fn tenant_hash_key(&self, tenant: &str) -> hmac::Key {
        let tag = hmac::sign(&self.hash_root, tenant.as_bytes());
        hmac::Key::new(hmac::HMAC_SHA256, tag.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_purpose_tenant_and_instance() {
        let instance = InstanceKey::generate().unwrap();
        let keys = PiiKeys::derive(&instance);
        assert_ne!(keys.vault_key(), instance.seal_key);
        let tag = |k: &PiiKeys, tenant: &str| {
            hmac::sign(&k.tenant_hash_key(tenant), b"v")
                .as_ref()
                .to_vec()
        };
        assert_eq!(tag(&keys, "a"), tag(&keys, "a"));
        assert_ne!(tag(&keys, "a"), tag(&keys, "b"));
        let other = PiiKeys::derive(&InstanceKey::generate().unwrap());
        assert_ne!(tag(&keys, "a"), tag(&other, "a"));
        assert_eq!(format!("{keys:?}"), "PiiKeys(<redacted>)");
    }
}
