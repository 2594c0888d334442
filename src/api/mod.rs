//! Wire types of the formats clients speak.

pub mod openai;
