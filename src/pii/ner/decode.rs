//! Reading the model's per-token label probabilities as entities: a word takes its first
//! piece's probabilities, the most probable label sequence that is valid BIO is chosen
//! over the words (Viterbi: `I-X` only after `B-X` or `I-X`), each entity's score is its
//! words' mean probability, and punctuation at an entity's edges is left out.

use super::NerError;
use crate::pii::Finding;
use crate::pii::classes::DATA_CLASSES;

/// Findings the model is less sure of than this are dropped.
pub const MIN_SCORE: f32 = 0.5;

/// What one logit index means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Label {
    Outside,
    Begin(&'static str),
    Inside(&'static str),
}

impl Label {
    pub fn parse(name: &str) -> Result<Self, NerError> {
        if name == "O" {
            return Ok(Self::Outside);
        }
        let (tag, class) = name
            .split_once('-')
            .ok_or_else(|| NerError::Model(format!("label {name:?} is not BIO")))?;
        let class = DATA_CLASSES
            .iter()
            .copied()
            .find(|known| *known == class)
            .ok_or_else(|| NerError::Model(format!("label {name:?} names no data class")))?;
        match tag {
            "B" => Ok(Self::Begin(class)),
            "I" => Ok(Self::Inside(class)),
            _ => Err(NerError::Model(format!("label {name:?} is not BIO"))),
        }
    }
}

/// One word: its first piece's token index and its byte span.
pub(super) struct Word {
    pub token: usize,
    pub start: usize,
    pub end: usize,
}

/// The words of an encoding (pieces of one word share a word id).
pub(super) fn words(encoding: &tokenizers::Encoding) -> Vec<Word> {
    let mut words: Vec<Word> = Vec::new();
    let mut previous = None;
    for (token, (&(start, end), &word)) in encoding
        .get_offsets()
        .iter()
        .zip(encoding.get_word_ids())
        .enumerate()
    {
        match words.last_mut() {
            Some(last) if word.is_some() && word == previous => last.end = last.end.max(end),
            _ => words.push(Word { token, start, end }),
        }
        previous = word;
    }
    words
}

/// Whether `next` may follow `previous` (`None`: the text's start).
fn allowed(previous: Option<Label>, next: Label) -> bool {
    match next {
        Label::Inside(class) => matches!(
            previous,
            Some(Label::Begin(open) | Label::Inside(open)) if open == class
        ),
        _ => true,
    }
}

/// The most probable valid label sequence, one label index per row of `log_probs`
/// (`rows × labels.len()`).
fn best_valid_path(labels: &[Label], log_probs: &[&[f32]]) -> Vec<usize> {
    let n = labels.len();
    let Some(first) = log_probs.first() else {
        return Vec::new();
    };
    let mut score: Vec<f32> = (0..n)
        .map(|l| {
            if allowed(None, labels[l]) {
                first[l]
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    let mut back = vec![0usize; log_probs.len() * n];
    for (row, emission) in log_probs.iter().enumerate().skip(1) {
        let mut next = vec![f32::NEG_INFINITY; n];
        for (to, next_score) in next.iter_mut().enumerate() {
            let from = (0..n)
                .filter(|&from| allowed(Some(labels[from]), labels[to]))
                .max_by(|&a, &b| score[a].total_cmp(&score[b]));
            if let Some(from) = from {
                *next_score = score[from] + emission[to];
                back[row * n + to] = from;
            }
        }
        score = next;
    }
    let mut label = (0..n)
        .max_by(|&a, &b| score[a].total_cmp(&score[b]))
        .unwrap_or(0);
    let mut path = vec![0; log_probs.len()];
    for row in (0..log_probs.len()).rev() {
        path[row] = label;
        label = back[row * n + label];
    }
    path
}

/// Findings in `text` from its tokens' label log-probabilities (`tokens × labels`).
pub fn findings(
    labels: &[Label],
    text: &str,
    encoding: &tokenizers::Encoding,
    log_probs: &[f32],
) -> Vec<Finding> {
    let n = labels.len();
    let words = words(encoding);
    let rows: Vec<&[f32]> = words
        .iter()
        .map(|w| log_probs.get(w.token * n..(w.token + 1) * n).unwrap_or(&[]))
        .collect();
    if rows.iter().any(|row| row.len() != n) {
        return Vec::new();
    }
    let path = best_valid_path(labels, &rows);
    let mut findings = Vec::new();
    let mut open: Option<(Finding, f32, usize)> = None;
    for ((word, &label), row) in words.iter().zip(&path).zip(&rows) {
        let probability = row[label].exp();
        match labels[label] {
            Label::Inside(_) => {
                if let Some((finding, total, count)) = open.as_mut() {
                    finding.end = word.end;
                    *total += probability;
                    *count += 1;
                }
            }
            Label::Begin(class) => {
                close(&mut open, &mut findings);
                let finding = Finding {
                    class,
                    start: word.start,
                    end: word.end,
                    score: 0.0,
                    recognizer: "ner",
                };
                open = Some((finding, probability, 1));
            }
            Label::Outside => close(&mut open, &mut findings),
        }
    }
    close(&mut open, &mut findings);
    for finding in &mut findings {
        (finding.start, finding.end) = trim_to_content(text, finding.start, finding.end);
    }
    findings.retain(|f| {
        f.score >= MIN_SCORE
            && f.start < f.end
            && text.is_char_boundary(f.start)
            && text.is_char_boundary(f.end)
    });
    findings
}

/// The span without punctuation at its edges (`'Eva Almeida'` → `Eva Almeida`, `Verdugo,`
/// → `Verdugo`), keeping the dot after an abbreviation of one or two letters (`S.A.`, `Jr.`).
fn trim_to_content(text: &str, start: usize, end: usize) -> (usize, usize) {
    let Some(span) = text.get(start..end) else {
        return (start, end);
    };
    let punctuation = |c: char| !c.is_alphanumeric();
    let leading = span.len() - span.trim_start_matches(punctuation).len();
    let inner = &span[leading..];
    let mut length = inner.trim_end_matches(punctuation).len();
    let last_word = inner[..length]
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric())
        .count();
    if inner[length..].starts_with('.') && (1..=2).contains(&last_word) {
        length += 1;
    }
    (start + leading, start + leading + length)
}

fn close(open: &mut Option<(Finding, f32, usize)>, findings: &mut Vec<Finding>) {
    if let Some((mut finding, total, count)) = open.take() {
        finding.score = total / count as f32;
        findings.push(finding);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_at_the_edges_is_left_out() {
        for (span, kept) in [
            ("'Eva Almeida'", "Eva Almeida"),
            ("Verdugo,", "Verdugo"),
            ("(Jähn)", "Jähn"),
            ("Dupont S.A.", "Dupont S.A."),
            ("Smith Jr.),", "Smith Jr."),
            ("Acme Inc.", "Acme Inc"),
            ("Müller & Co", "Müller & Co"),
            ("',", ""),
        ] {
            let (start, end) = trim_to_content(span, 0, span.len());
            assert_eq!(&span[start..end], kept, "{span}");
        }
    }

    #[test]
    fn labels_parse_bio_over_the_class_vocabulary() {
        assert_eq!(Label::parse("O").unwrap(), Label::Outside);
        assert_eq!(Label::parse("B-PERSON").unwrap(), Label::Begin("PERSON"));
        assert_eq!(
            Label::parse("I-LOCATION").unwrap(),
            Label::Inside("LOCATION")
        );
        assert!(Label::parse("B-PER").is_err());
        assert!(Label::parse("X-PERSON").is_err());
        assert!(Label::parse("PERSON").is_err());
    }

    fn labels() -> Vec<Label> {
        ["O", "B-PERSON", "I-PERSON", "B-LOCATION", "I-LOCATION"]
            .iter()
            .map(|name| Label::parse(name).unwrap())
            .collect()
    }

    fn rows(probabilities: &[[f32; 5]]) -> Vec<Vec<f32>> {
        probabilities
            .iter()
            .map(|row| row.iter().map(|p| p.ln()).collect())
            .collect()
    }

    #[test]
    fn an_inside_label_never_follows_another_class_or_outside() {
        // Greedy would read B-PERSON I-LOCATION I-LOCATION: two entities of two classes.
        let rows = rows(&[
            [0.05, 0.6, 0.05, 0.25, 0.05],
            [0.05, 0.05, 0.4, 0.05, 0.45],
            [0.05, 0.05, 0.4, 0.05, 0.45],
        ]);
        let rows: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        assert_eq!(best_valid_path(&labels(), &rows), [1, 2, 2]);
        // At the start, an inside label is read as nothing or a beginning.
        let rows = self::rows(&[[0.3, 0.05, 0.6, 0.0001, 0.0499]]);
        let rows: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        assert_eq!(best_valid_path(&labels(), &rows), [0]);
    }
}
