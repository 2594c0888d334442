//! Personal data: the vocabulary of data classes and what finds it in text.

pub mod cache;
pub mod classes;
pub mod eval;
pub mod finding;
pub mod ner;

pub use finding::Finding;
