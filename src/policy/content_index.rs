//! Every keyword and regular expression of a policy (its rules' terms and lists, the
//! built-in topics they use, their patterns) in one Aho-Corasick automaton and one regex
//! set: a text is scanned once per evaluation whatever the number of rules, and each rule
//! asks whether its group was found.

use super::guardrails::keywords::with_ascii_lowercase;
use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::{RegexSet, RegexSetBuilder};
use std::collections::HashMap;

/// A set of terms or patterns a rule (or a built-in topic) matches on, by index.
pub type GroupId = usize;

/// Largest compiled size of one pattern, and of all of a policy's patterns together.
const PATTERN_SIZE_LIMIT: usize = 2 << 20;
const ALL_PATTERNS_SIZE_LIMIT: usize = 64 << 20;

/// Collects groups of terms and of patterns, then builds the index.
#[derive(Default)]
pub struct ContentIndexBuilder {
    /// Distinct lower-cased terms.
    terms: Vec<String>,
    positions: HashMap<String, usize>,
    /// Per term: the groups it belongs to, and whether they need whole words.
    owners: Vec<Vec<(GroupId, bool)>>,
    groups: usize,
    /// Groups already made for the same terms and mode (a list several rules share).
    seen: HashMap<(Vec<String>, bool), GroupId>,
    patterns: Vec<String>,
    /// Per pattern: its group.
    pattern_groups: Vec<GroupId>,
}

/// Checks one regular expression (Rust syntax, size-limited).
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    RegexSetBuilder::new([pattern])
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl ContentIndexBuilder {
    /// Adds a group of regular expressions (each checked with [`check_pattern`] first).
    pub fn patterns(&mut self, patterns: &[String]) -> GroupId {
        let group = self.groups;
        self.groups += 1;
        for pattern in patterns {
            self.patterns.push(pattern.clone());
            self.pattern_groups.push(group);
        }
        group
    }

    /// Adds a group of terms (matched case-insensitively; `whole_words`: not inside a
    /// longer word); the same terms in the same mode share a group.
    pub fn group<'a>(
        &mut self,
        terms: impl IntoIterator<Item = &'a str>,
        whole_words: bool,
    ) -> Result<GroupId, String> {
        let mut lowered = Vec::new();
        for (index, term) in terms.into_iter().enumerate() {
            if term.trim().is_empty() {
                return Err(format!(
                    "keyword {index} is empty (or only whitespace): it would match everywhere"
                ));
            }
            lowered.push(term.to_ascii_lowercase());
        }
        lowered.sort();
        lowered.dedup();
        if let Some(group) = self.seen.get(&(lowered.clone(), whole_words)) {
            return Ok(*group);
        }
        let group = self.groups;
        self.groups += 1;
        for term in &lowered {
            let at = match self.positions.get(term) {
                Some(at) => *at,
                None => {
                    self.terms.push(term.clone());
                    self.owners.push(Vec::new());
                    self.positions.insert(term.clone(), self.terms.len() - 1);
                    self.terms.len() - 1
                }
            };
            self.owners[at].push((group, whole_words));
        }
        self.seen.insert((lowered, whole_words), group);
        Ok(group)
    }

    pub fn build(self) -> Result<ContentIndex, String> {
        let automaton = if self.terms.is_empty() {
            None
        } else {
            let kind = if self.terms.len() <= 2_000 {
                Some(AhoCorasickKind::DFA)
            } else {
                None
            };
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .kind(kind)
                    .build(&self.terms)
                    .map_err(|e| format!("cannot index {} keywords: {e}", self.terms.len()))?,
            )
        };
        let patterns = if self.patterns.is_empty() {
            None
        } else {
            Some(
                RegexSetBuilder::new(&self.patterns)
                    .size_limit(ALL_PATTERNS_SIZE_LIMIT)
                    .build()
                    .map_err(|e| format!("the policy's regular expressions together: {e}"))?,
            )
        };
        Ok(ContentIndex {
            automaton,
            owners: self.owners,
            patterns,
            pattern_groups: self.pattern_groups,
            groups: self.groups,
        })
    }
}

/// The compiled index.
#[derive(Debug, Default)]
pub struct ContentIndex {
    automaton: Option<AhoCorasick>,
    owners: Vec<Vec<(GroupId, bool)>>,
    patterns: Option<RegexSet>,
    pattern_groups: Vec<GroupId>,
    groups: usize,
}

impl ContentIndex {
    /// Which pattern groups have a match in `text` (one pass over every pattern).
    pub fn scan_patterns(&self, text: &str) -> Vec<bool> {
        let mut found = vec![false; self.groups];
        if let Some(set) = &self.patterns {
            for index in set.matches(text).iter() {
                found[self.pattern_groups[index]] = true;
            }
        }
        found
    }

    /// Which term groups have a term in `text` (one pass; overlapping terms all count).
    pub fn scan_terms(&self, text: &str) -> Vec<bool> {
        let mut found = vec![false; self.groups];
        let Some(automaton) = &self.automaton else {
            return found;
        };
        let mut left = self.groups;
        with_ascii_lowercase(text, |lower| {
            for m in automaton.find_overlapping_iter(lower) {
                for &(group, whole_words) in &self.owners[m.pattern().as_usize()] {
                    if found[group] || whole_words && !whole_word(text, m.start(), m.end()) {
                        continue;
                    }
                    found[group] = true;
                    left -= 1;
                }
                if left == 0 {
                    break;
                }
            }
        });
        found
    }
}

/// Whether `text[start..end]` is not part of a longer word.
fn whole_word(text: &str, start: usize, end: usize) -> bool {
    let before = text.get(..start).and_then(|b| b.chars().next_back());
    let after = text.get(end..).and_then(|a| a.chars().next());
    before.is_none_or(|c| !c.is_alphanumeric()) && after.is_none_or(|c| !c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_scan_answers_every_group_with_overlaps_and_word_rules() {
        let mut b = ContentIndexBuilder::default();
        let codename = b.group(["Project Aurora"], true).unwrap();
        let aurora = b.group(["aurora"], true).unwrap();
        let cat_anywhere = b.group(["cat"], false).unwrap();
        let cat_word = b.group(["cat"], true).unwrap();
        let shared = b.group(["aurora"], true).unwrap();
        assert_eq!(shared, aurora);
        let index = b.build().unwrap();
        let found = index.scan_terms("the PROJECT AURORA plan, concatenated");
        assert!(found[codename] && found[aurora] && found[cat_anywhere]);
        assert!(!found[cat_word]);
        let found = index.scan_terms("a cat. Auroras");
        assert!(found[cat_word] && !found[aurora] && !found[codename]);
    }

    #[test]
    fn empty_terms_are_refused_and_empty_indexes_find_nothing() {
        let mut b = ContentIndexBuilder::default();
        assert!(
            b.group(["ok", " "], true)
                .unwrap_err()
                .contains("keyword 1")
        );
        let index = ContentIndexBuilder::default().build().unwrap();
        assert!(index.scan_terms("anything").is_empty());
    }

    #[test]
    fn a_rejected_candidate_does_not_hide_a_later_word() {
        let mut b = ContentIndexBuilder::default();
        let cat = b.group(["cat"], true).unwrap();
        let index = b.build().unwrap();
        assert!(index.scan_terms("concat then cat")[cat]);
        // Non-ASCII neighbours count as letters.
        assert!(!index.scan_terms("écat")[cat]);
    }

    #[test]
    fn patterns_of_every_rule_in_one_pass() {
        let mut b = ContentIndexBuilder::default();
        let tickets = b.patterns(&[r"\bTICKET-\d{4}\b".to_string()]);
        let emails = b.patterns(&[r"@example\.com".to_string(), "never".to_string()]);
        let index = b.build().unwrap();
        let found = index.scan_patterns("see TICKET-1234 from bob@example.com");
        assert!(found[tickets] && found[emails]);
        assert!(!index.scan_patterns("TICKET-12345")[tickets]);
        assert!(check_pattern("(unclosed").is_err());
        assert!(check_pattern(&"a{1000}".repeat(1000)).is_err());
    }

    /// Whether any term occurs in `text` as a whole word, the slow obvious way.
    fn naive_whole_word(terms: &[String], text: &str) -> bool {
        let lower = text.to_ascii_lowercase();
        terms.iter().any(|t| {
            let t = t.to_ascii_lowercase();
            lower
                .match_indices(t.as_str())
                .any(|(start, _)| whole_word(text, start, start + t.len()))
        })
    }

    proptest::proptest! {
        /// One scan agrees with a naive search, overlaps and Unicode neighbours included.
        #[test]
        fn agrees_with_a_naive_search(
            text in "[a-c \\-é\u{200B}]{0,40}",
            terms in proptest::collection::vec("[a-c][a-c \\-]{0,3}", 1..5),
        ) {
            let mut b = ContentIndexBuilder::default();
            let whole = b.group(terms.iter().map(String::as_str), true).unwrap();
            let anywhere = b.group(terms.iter().map(String::as_str), false).unwrap();
            let index = b.build().unwrap();
            let found = index.scan_terms(&text);
            proptest::prop_assert_eq!(found[whole], naive_whole_word(&terms, &text));
            let lower = text.to_ascii_lowercase();
            let naive_any = terms.iter().any(|t| lower.contains(&t.to_ascii_lowercase()));
            proptest::prop_assert_eq!(found[anywhere], naive_any);
        }
    }

    #[test]
    fn a_hundred_thousand_terms() {
        let terms: Vec<String> = (0..100_000).map(|i| format!("term{i}x")).collect();
        let mut b = ContentIndexBuilder::default();
        let g = b.group(terms.iter().map(String::as_str), true).unwrap();
        let index = b.build().unwrap();
        assert!(index.scan_terms("we saw TERM99999X today")[g]);
        assert!(!index.scan_terms("we saw term99999xy today")[g]);
    }
}
