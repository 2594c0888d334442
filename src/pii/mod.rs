//! Personal data: the vocabulary of data classes and what finds it in text.

pub mod classes;
pub mod finding;

pub use finding::Finding;
