//! Provider credentials (BYOK): the providers' own API keys as tenant-scoped objects,
//! sealed at rest, with a lifecycle (create, rotate with a grace period, revoke) and an
//! in-memory snapshot the data path chooses from per attempt.

mod cache;
mod store;

pub use cache::{Credential, CredentialCache, CredentialPolicy, CredentialSource, Pool, Snapshot};
pub use store::{
    CredentialInfo, CredentialState, CredentialStore, DEFAULT_GRACE_SECS, NewCredential,
    fingerprint,
};

#[cfg(test)]
mod tests;
