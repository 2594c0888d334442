//! Wire types of the formats clients speak.

pub mod anthropic;
pub mod openai;
