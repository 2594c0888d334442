//! Choosing among overlapping findings: the spans that redaction will actually replace.

use super::Finding;
use std::collections::BTreeMap;

/// Keeps non-overlapping findings, preferring the higher score, then the longer span, then
/// the earlier start; returns them sorted by start. Empty spans are dropped. Recognizer and
/// NER findings are merged through this same function.
pub fn resolve_overlaps(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.retain(|f| f.start < f.end);
    findings.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(a.start.cmp(&b.start))
    });
    // Kept findings by start. They are disjoint, so a candidate can only overlap the last
    // one starting before its end.
    let mut kept: BTreeMap<usize, Finding> = BTreeMap::new();
    for finding in findings {
        let overlaps = kept
            .range(..finding.end)
            .next_back()
            .is_some_and(|(_, k)| k.end > finding.start);
        if !overlaps {
            kept.insert(finding.start, finding);
        }
    }
    kept.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(start: usize, end: usize, score: f32) -> Finding {
        Finding {
            class: "EMAIL_ADDRESS",
            start,
            end,
            score,
            recognizer: "test",
        }
    }

    #[test]
    fn higher_score_wins_then_longer_span() {
        let out = resolve_overlaps(vec![f(0, 10, 0.5), f(5, 8, 0.9), f(8, 20, 0.5)]);
        assert_eq!(out, vec![f(5, 8, 0.9), f(8, 20, 0.5)]);
        let out = resolve_overlaps(vec![f(0, 4, 0.7), f(2, 12, 0.7)]);
        assert_eq!(out, vec![f(2, 12, 0.7)]);
    }

    #[test]
    fn disjoint_findings_are_all_kept_in_order() {
        let out = resolve_overlaps(vec![
            f(10, 12, 0.1),
            f(0, 5, 0.9),
            f(5, 10, 0.4),
            f(3, 3, 1.0),
        ]);
        assert_eq!(out, vec![f(0, 5, 0.9), f(5, 10, 0.4), f(10, 12, 0.1)]);
    }

    proptest::proptest! {
        #[test]
        fn result_is_disjoint_sorted_and_from_the_input(
            spans in proptest::collection::vec((0usize..50, 1usize..10, 0u8..=10), 0..40)
        ) {
            let input: Vec<Finding> =
                spans.iter().map(|(s, l, sc)| f(*s, s + l, f32::from(*sc) / 10.0)).collect();
            let out = resolve_overlaps(input.clone());
            for pair in out.windows(2) {
                proptest::prop_assert!(pair[0].end <= pair[1].start);
            }
            for kept in &out {
                proptest::prop_assert!(input.contains(kept));
            }
            // Every dropped finding overlaps a kept one at least as good.
            for dropped in input.iter().filter(|i| !out.contains(i)) {
                proptest::prop_assert!(out.iter().any(|k| k.start < dropped.end
                    && dropped.start < k.end && k.score >= dropped.score));
            }
        }
    }
}
