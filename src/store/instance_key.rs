//! The instance's key material file: secrets generated once by `airlock init`, kept apart
//! from the databases with 0600 permissions.

use super::StoreError;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::io::Write;
use std::path::Path;

/// Secrets of one Airlock instance.
pub struct InstanceKey {
    /// Keys virtual-key hashes (HMAC-SHA256), so a stolen database alone cannot test keys.
    pub key_hash_secret: [u8; 32],
    /// Seals secrets at rest (AES-256-GCM).
    pub seal_key: [u8; 32],
    /// Signs audit checkpoints (Ed25519, PKCS#8 v2).
    pub signing_key_pkcs8: Vec<u8>,
}

impl std::fmt::Debug for InstanceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InstanceKey(<redacted>)")
    }
}

const HEADER: &str = "# Airlock instance key material. Secret: keep 0600, back it up offline.\n\
# Losing it makes every virtual key and sealed secret unusable.\n";

impl InstanceKey {
    /// Generates fresh key material.
    pub fn generate() -> Result<Self, StoreError> {
        let rng = SystemRandom::new();
        let fail = |_| StoreError::Invalid("the system random generator failed".into());
        let mut key_hash_secret = [0u8; 32];
        let mut seal_key = [0u8; 32];
        rng.fill(&mut key_hash_secret).map_err(fail)?;
        rng.fill(&mut seal_key).map_err(fail)?;
        let signing_key_pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(fail)?
            .as_ref()
            .to_vec();
        Ok(Self {
            key_hash_secret,
            seal_key,
            signing_key_pkcs8,
        })
    }

    /// Writes the key file with 0600 permissions; refuses to overwrite an existing one.
    pub fn write_new(&self, path: &Path) -> Result<(), StoreError> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", path.display())))?;
        let text = format!(
            "{HEADER}key_hash_secret={}\nseal_key={}\nsigning_key_pkcs8={}\n",
            hex(&self.key_hash_secret),
            hex(&self.seal_key),
            hex(&self.signing_key_pkcs8)
        );
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| StoreError::Invalid(format!("{}: {e}", path.display())))
    }

    /// Reads the key file, refusing one that others can read.
    pub fn read(path: &Path) -> Result<Self, StoreError> {
        use std::os::unix::fs::PermissionsExt;
        let invalid = |msg: String| StoreError::Invalid(format!("{}: {msg}", path.display()));
        let meta = std::fs::metadata(path).map_err(|e| {
            invalid(format!(
                "{e} (run `airlock init` to create the instance key material)"
            ))
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(invalid(
                "key material is readable by group or others; run `chmod 600` on it".into(),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        let field = |name: &str| -> Result<Vec<u8>, StoreError> {
            let value = text
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .ok_or_else(|| invalid(format!("missing `{name}`")))?;
            unhex(value.trim()).ok_or_else(|| invalid(format!("`{name}` is not hex")))
        };
        let to32 = |v: Vec<u8>, name: &str| -> Result<[u8; 32], StoreError> {
            v.try_into()
                .map_err(|_| invalid(format!("`{name}` must be 32 bytes")))
        };
        let key = Self {
            key_hash_secret: to32(field("key_hash_secret")?, "key_hash_secret")?,
            seal_key: to32(field("seal_key")?, "seal_key")?,
            signing_key_pkcs8: field("signing_key_pkcs8")?,
        };
        Ed25519KeyPair::from_pkcs8(&key.signing_key_pkcs8)
            .map_err(|_| invalid("`signing_key_pkcs8` is not an Ed25519 key".into()))?;
        Ok(key)
    }

    /// The public half of the signing key, hex, for verifiers.
    pub fn public_key_hex(&self) -> String {
        Ed25519KeyPair::from_pkcs8(&self.signing_key_pkcs8)
            .map(|k| hex(k.public_key().as_ref()))
            .unwrap_or_default()
    }
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trips_with_0600_and_refuses_overwrite() {
        let dir = crate::store::scratch_dir("ik");
        let path = dir.join("instance.key");
        let key = InstanceKey::generate().unwrap();
        key.write_new(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let back = InstanceKey::read(&path).unwrap();
        assert_eq!(back.key_hash_secret, key.key_hash_secret);
        assert_eq!(back.public_key_hex().len(), 64);
        assert!(key.write_new(&path).is_err());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(InstanceKey::read(&path).is_err());
        assert!(!format!("{key:?}").contains(&hex(&key.seal_key)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex(&hex(&[0, 15, 255])).unwrap(), vec![0, 15, 255]);
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }
}
