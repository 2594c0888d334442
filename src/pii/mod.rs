//! Personal data: the vocabulary of data classes and what finds it in text.

pub mod classes;
pub mod finding;
pub mod overlaps;
pub mod recognizers;

pub use finding::Finding;
pub use overlaps::resolve_overlaps;
pub use recognizers::{MIN_SCORE, recognize};
