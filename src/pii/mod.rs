//! Personal data: the vocabulary of data classes and what finds it in text.

pub mod cache;
pub mod classes;
pub mod eval;
pub mod finding;
pub mod ner;
pub mod overlaps;
pub mod recognizers;
pub mod scan;

pub use finding::Finding;
pub use overlaps::resolve_overlaps;
pub use recognizers::recognize;
