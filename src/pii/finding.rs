//! One piece of personal data found in a text, whoever found it (a recognizer or the NER model).

/// A finding: its data class, where it is, how sure its finder is, and who found it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finding {
    /// One of [`super::classes::DATA_CLASSES`].
    pub class: &'static str,
    /// Byte offset of the first byte (on a char boundary).
    pub start: usize,
    /// Byte offset one past the last byte (on a char boundary).
    pub end: usize,
    /// Confidence in 0.0..=1.0, after context words raised or lowered it.
    pub score: f32,
    /// Name of the recognizer (`email`, `credit_card`, …) or `ner` for the model.
    pub recognizer: &'static str,
}

impl Finding {
    /// The text the finding covers.
    pub fn text<'t>(&self, text: &'t str) -> &'t str {
        text.get(self.start..self.end).unwrap_or("")
    }
}
