//! The manifest: every file of a package with its SHA-256 and size, the window and the
//! instance public key; signed (Ed25519, the instance key) over its exact bytes.

use super::{EvidenceError, Files, sha256_hex};
use crate::store::instance_key::{hex, unhex};
use ring::signature::{ED25519, Ed25519KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

/// The `format` of every manifest this version writes.
pub const FORMAT: &str = "airlock evidence package v1";

/// One file of the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
}

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub airlock_version: String,
    pub created_at: String,
    pub framework: String,
    pub from: String,
    pub to: String,
    /// The instance's Ed25519 public key (hex): it signs this manifest and the checkpoints.
    pub public_key: String,
    pub files: Vec<FileEntry>,
}

impl Manifest {
    /// The manifest of `files` (every file but the manifest and its signature).
    pub fn new(
        framework: &str,
        from: &str,
        to: &str,
        created_at: String,
        public_key: String,
        files: &Files,
    ) -> Self {
        Self {
            format: FORMAT.into(),
            airlock_version: env!("CARGO_PKG_VERSION").into(),
            created_at,
            framework: framework.into(),
            from: from.into(),
            to: to.into(),
            public_key,
            files: files
                .iter()
                .map(|(path, bytes)| FileEntry {
                    path: path.clone(),
                    sha256: sha256_hex(bytes),
                    bytes: bytes.len() as u64,
                })
                .collect(),
        }
    }
}

/// The signature file's content: hex Ed25519 over the manifest's bytes, and a newline.
pub fn sign(manifest: &[u8], signing_key_pkcs8: &[u8]) -> Result<Vec<u8>, EvidenceError> {
    let key = Ed25519KeyPair::from_pkcs8(signing_key_pkcs8).map_err(|_| {
        EvidenceError::Invalid("the instance signing key is not an Ed25519 key".into())
    })?;
    Ok(format!("{}\n", hex(key.sign(manifest).as_ref())).into_bytes())
}

/// Whether `signature_file` (as [`sign`] writes it) is a valid signature of `manifest`
/// by `public_key_hex`.
pub fn signature_valid(manifest: &[u8], signature_file: &[u8], public_key_hex: &str) -> bool {
    let Some(public) = unhex(public_key_hex.trim()) else {
        return false;
    };
    let Some(signature) = std::str::from_utf8(signature_file)
        .ok()
        .and_then(|text| unhex(text.trim()))
    else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, public)
        .verify(manifest, &signature)
        .is_ok()
}
