//! Personal data: the vocabulary of data classes, what finds it in text, and the actions
//! on it (mask, hash, tokenise into a vault, restore in answers).

pub mod action;
pub mod classes;
pub mod finding;

pub use action::{ActionPlan, PiiAction};
pub use finding::Finding;
