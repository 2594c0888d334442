//! `airlock pii eval`: entity-level precision, recall and F1 per class and micro-averaged,
//! under exact-span and overlap matching, over a JSONL file of annotated texts.

use super::Finding;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One line of an evaluation file: a text and its entities, in character offsets. Other
/// members (provenance such as a template name) are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct Example {
    pub text: String,
    #[serde(default)]
    pub entities: Vec<Entity>,
}

/// An annotated entity: `[start, end)` in characters, and its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entity {
    pub start: usize,
    pub end: usize,
    pub label: &'static str,
}

/// An entity as written in the file, before its label is checked against the vocabulary.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WrittenEntity {
    start: usize,
    end: usize,
    label: String,
}

impl<'de> Deserialize<'de> for Entity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::try_from(WrittenEntity::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<WrittenEntity> for Entity {
    type Error = String;

    fn try_from(written: WrittenEntity) -> Result<Self, String> {
        let label = super::classes::DATA_CLASSES
            .iter()
            .copied()
            .find(|class| *class == written.label)
            .ok_or_else(|| format!("unknown data class {:?}", written.label))?;
        if written.start >= written.end {
            return Err(format!("empty entity {}..{}", written.start, written.end));
        }
        Ok(Self {
            start: written.start,
            end: written.end,
            label,
        })
    }
}

/// Counts for one class under one matching rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Score {
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_negatives: u64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Score {
    fn finish(mut self) -> Self {
        let ratio = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
        self.precision = ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        );
        self.recall = ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        );
        self.f1 = if self.precision + self.recall == 0.0 {
            0.0
        } else {
            2.0 * self.precision * self.recall / (self.precision + self.recall)
        };
        self
    }

    fn add(&mut self, other: &Score) {
        self.true_positives += other.true_positives;
        self.false_positives += other.false_positives;
        self.false_negatives += other.false_negatives;
    }
}

/// Per-class and overall scores under one matching rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Scores {
    pub per_class: BTreeMap<&'static str, Score>,
    pub micro: Score,
}

/// The whole report: both matching rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub texts: usize,
    pub entities: usize,
    /// Same class and exactly the same span.
    pub exact: Scores,
    /// Same class and spans that share at least one character (each gold entity and each
    /// prediction is matched at most once).
    pub overlap: Scores,
}

/// Accumulates predictions against gold entities, text by text.
#[derive(Default)]
pub struct Evaluation {
    texts: usize,
    entities: usize,
    exact: BTreeMap<&'static str, Score>,
    overlap: BTreeMap<&'static str, Score>,
}

impl Evaluation {
    /// Scores the findings (byte offsets) of one example.
    pub fn add(&mut self, example: &Example, findings: &[Finding]) {
        let predicted: Vec<Entity> = findings
            .iter()
            .map(|f| Entity {
                start: char_offset(&example.text, f.start),
                end: char_offset(&example.text, f.end),
                label: f.class,
            })
            .collect();
        self.texts += 1;
        self.entities += example.entities.len();
        tally(
            &example.entities,
            &predicted,
            |a, b| a == b,
            &mut self.exact,
        );
        tally(
            &example.entities,
            &predicted,
            |a, b| a.label == b.label && a.start < b.end && b.start < a.end,
            &mut self.overlap,
        );
    }

    pub fn report(self) -> Report {
        Report {
            texts: self.texts,
            entities: self.entities,
            exact: finish(self.exact),
            overlap: finish(self.overlap),
        }
    }
}

/// Greedy one-to-one matching of predictions to gold entities under `matches`.
fn tally(
    gold: &[Entity],
    predicted: &[Entity],
    matches: impl Fn(&Entity, &Entity) -> bool,
    scores: &mut BTreeMap<&'static str, Score>,
) {
    let mut used = vec![false; predicted.len()];
    for entity in gold {
        let hit = (0..predicted.len()).find(|&i| !used[i] && matches(entity, &predicted[i]));
        let score = scores.entry(entity.label).or_default();
        match hit {
            Some(i) => {
                used[i] = true;
                score.true_positives += 1;
            }
            None => score.false_negatives += 1,
        }
    }
    for (prediction, used) in predicted.iter().zip(used) {
        if !used {
            scores.entry(prediction.label).or_default().false_positives += 1;
        }
    }
}

fn finish(per_class: BTreeMap<&'static str, Score>) -> Scores {
    let mut micro = Score::default();
    for score in per_class.values() {
        micro.add(score);
    }
    Scores {
        per_class: per_class
            .into_iter()
            .map(|(k, s)| (k, s.finish()))
            .collect(),
        micro: micro.finish(),
    }
}

/// The character offset of byte offset `byte` in `text`.
fn char_offset(text: &str, byte: usize) -> usize {
    text.get(..byte)
        .map_or_else(|| text.chars().count(), |s| s.chars().count())
}

/// The byte offset of character offset `chars` in `text` (its end if beyond).
pub fn byte_offset(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map_or(text.len(), |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(text: &str, entities: &[(usize, usize, &'static str)]) -> Example {
        Example {
            text: text.into(),
            entities: entities
                .iter()
                .map(|&(start, end, label)| Entity { start, end, label })
                .collect(),
        }
    }

    fn finding(start: usize, end: usize, class: &'static str) -> Finding {
        Finding {
            class,
            start,
            end,
            score: 1.0,
            recognizer: "test",
        }
    }

    #[test]
    fn exact_and_overlap_matching_count_differently() {
        let mut evaluation = Evaluation::default();
        // "Dr. Ann Lee" gold PERSON is "Ann Lee" (4..11); the prediction includes "Dr.".
        let e = example(
            "Dr. Ann Lee wrote to ann@x.org",
            &[(4, 11, "PERSON"), (21, 30, "EMAIL_ADDRESS")],
        );
        evaluation.add(
            &e,
            &[
                finding(0, 11, "PERSON"),
                finding(21, 30, "EMAIL_ADDRESS"),
                finding(12, 17, "PERSON"),
            ],
        );
        let report = evaluation.report();
        let person = report.exact.per_class["PERSON"];
        assert_eq!(
            (
                person.true_positives,
                person.false_positives,
                person.false_negatives
            ),
            (0, 2, 1)
        );
        let person = report.overlap.per_class["PERSON"];
        assert_eq!(
            (
                person.true_positives,
                person.false_positives,
                person.false_negatives
            ),
            (1, 1, 0)
        );
        assert_eq!(report.exact.micro.true_positives, 1);
        assert!((report.overlap.micro.precision - 2.0 / 3.0).abs() < 1e-9);
        assert!((report.overlap.micro.recall - 1.0).abs() < 1e-9);
    }

    #[test]
    fn offsets_are_characters_not_bytes() {
        let mut evaluation = Evaluation::default();
        let text = "Grüße an Jürgen Groß";
        let e = example(text, &[(9, 20, "PERSON")]);
        let start = byte_offset(text, 9);
        evaluation.add(&e, &[finding(start, text.len(), "PERSON")]);
        assert_eq!(evaluation.report().exact.micro.f1, 1.0);
    }

    #[test]
    fn one_prediction_matches_one_entity_only() {
        let mut evaluation = Evaluation::default();
        let e = example("Ann Lee", &[(0, 3, "PERSON"), (4, 7, "PERSON")]);
        evaluation.add(&e, &[finding(0, 7, "PERSON")]);
        let overlap = evaluation.report().overlap.per_class["PERSON"];
        assert_eq!((overlap.true_positives, overlap.false_negatives), (1, 1));
    }

    #[test]
    fn unknown_labels_are_rejected() {
        let line = r#"{"text": "x", "entities": [{"start": 0, "end": 1, "label": "NAME"}]}"#;
        assert!(serde_json::from_str::<Example>(line).is_err());
    }
}
