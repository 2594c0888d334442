//! Personal data: the vocabulary of data classes (recognizers and NER come with it).

pub mod classes;
