//! Personal data: the vocabulary of data classes, what finds it in text (recognizers and
//! the NER model), and the actions on it (mask, hash, tokenise into a vault, restore in
//! answers).

pub mod action;
pub mod bench;
pub mod cache;
pub mod classes;
pub mod eval;
pub mod finding;
pub mod keys;
pub mod ner;
pub mod output_scan;
pub mod overlaps;
pub mod placeholder;
pub mod recognizers;
pub mod restore;
pub mod roles;
pub mod scan;
pub mod session;
pub mod stream_mask;
pub mod transform;
pub mod vault;
mod vault_store;

pub use action::{ActionPlan, PiiAction};
pub use finding::Finding;
pub use output_scan::mask_model_data;
pub use overlaps::resolve_overlaps;
pub use recognizers::recognize;
pub use restore::{Restorer, restore};
pub use roles::{MessageRole, RoleHandling, RolePlan};
pub use session::{Session, SessionOwner};
pub use transform::{ActionCounts, Transformed, apply};
pub use vault::{Vault, VaultConfig, VaultError};
pub use vault_store::VaultWriter;
