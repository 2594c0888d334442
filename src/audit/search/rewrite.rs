//! Queries over an index that holds no personal values in clear: the indexed text has
//! each value replaced by its class, and the value's keyed hashes are terms of the
//! `values` field. So a value the recognizers find in a query (a card number, an email)
//! is searched by its hash, and every other free-text word or phrase also matches the hash
//! of that word or phrase (a name the NER model took out of the text). Also the query that
//! finds the records which may hold a value to erase.

use super::query::SearchError;
use super::schema::Fields;
use crate::audit::values::{SubjectValue, ValueKeys, compact};
use crate::pii::transform::mask;
use crate::pii::{Finding, recognize, resolve_overlaps};
use tantivy::Term;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::query_grammar::{Delimiter, UserInputAst, UserInputLeaf, UserInputLiteral};
use tantivy::schema::IndexRecordOption;

/// The field holding the values' keyed hashes, as queries name it.
const VALUES_FIELD: &str = "values";
/// The free-text field, as queries may name it.
const TEXT_FIELD: &str = "text";
/// Tokens this long (bytes) or longer are not indexed as text (tantivy's default
/// tokenizer drops them).
const LONGEST_TEXT_TOKEN: usize = 40;

/// `query` parsed, with values searched by their keyed hashes.
pub fn rewrite(query: &str, keys: &ValueKeys) -> Result<UserInputAst, SearchError> {
    let prepared = hash_values_outside_phrases(query, keys);
    let ast = tantivy::query_grammar::parse_query(&prepared)
        .map_err(|_| SearchError::BadRequest("the query does not parse".into()))?;
    Ok(rewrite_ast(ast, keys))
}

/// The query with each value the recognizers find outside a quoted phrase (and not as
/// some field's value) replaced by a search for its hash: a card number or a phone
/// number is several words to the query parser, and an email is split at its dots.
fn hash_values_outside_phrases(query: &str, keys: &ValueKeys) -> String {
    let quoted = quoted_spans(query);
    let findings = resolve_overlaps(recognize(query));
    let mut out = String::with_capacity(query.len());
    let mut at = 0;
    for finding in findings {
        let inside_phrase = quoted
            .iter()
            .any(|(open, close)| finding.start < *close && finding.end > *open);
        let field_value = query[..finding.start].ends_with(':');
        if inside_phrase || field_value || finding.start < at {
            continue;
        }
        let term = keys.term(&compact(finding.text(query)));
        out.push_str(&query[at..finding.start]);
        out.push_str(&format!(" {VALUES_FIELD}:{term} "));
        at = finding.end;
    }
    out.push_str(&query[at..]);
    out
}

/// Byte spans of the double-quoted phrases in `query` (an unclosed one runs to the end).
fn quoted_spans(query: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut open = None;
    for (at, c) in query.char_indices() {
        if c == '"' {
            match open.take() {
                Some(start) => spans.push((start, at + 1)),
                None => open = Some(at),
            }
        }
    }
    if let Some(start) = open {
        spans.push((start, query.len()));
    }
    spans
}

fn rewrite_ast(ast: UserInputAst, keys: &ValueKeys) -> UserInputAst {
    match ast {
        UserInputAst::Clause(clauses) => UserInputAst::Clause(
            clauses
                .into_iter()
                .map(|(occur, ast)| (occur, rewrite_ast(ast, keys)))
                .collect(),
        ),
        UserInputAst::Boost(ast, boost) => {
            UserInputAst::Boost(Box::new(rewrite_ast(*ast, keys)), boost)
        }
        UserInputAst::Leaf(leaf) => match *leaf {
            UserInputLeaf::Literal(literal) if is_free_text(&literal) => {
                rewrite_literal(literal, keys)
            }
            other => UserInputAst::Leaf(Box::new(other)),
        },
    }
}

/// A word or phrase of the free text, not a prefix search.
fn is_free_text(literal: &UserInputLiteral) -> bool {
    literal
        .field_name
        .as_deref()
        .is_none_or(|field| field == TEXT_FIELD)
        && !literal.prefix
}

/// A word or phrase, or the hash of the value it is; in a phrase, values the
/// recognizers find match their class in the text and their hash among the terms.
fn rewrite_literal(literal: UserInputLiteral, keys: &ValueKeys) -> UserInputAst {
    let whole = compact(&literal.phrase);
    if whole.is_empty() {
        return leaf(literal);
    }
    let as_value = values_term(keys.term(&whole));
    let findings: Vec<Finding> = if literal.delimiter == Delimiter::None {
        Vec::new()
    } else {
        resolve_overlaps(recognize(&literal.phrase))
    };
    let as_text = if findings.is_empty() {
        leaf(literal)
    } else {
        let mut phrase = String::with_capacity(literal.phrase.len());
        let mut at = 0;
        let mut clauses = Vec::with_capacity(findings.len() + 1);
        for finding in &findings {
            phrase.push_str(&literal.phrase[at..finding.start]);
            phrase.push(' ');
            phrase.push_str(&mask(finding.class));
            phrase.push(' ');
            at = finding.end;
            clauses.push(values_term(
                keys.term(&compact(finding.text(&literal.phrase))),
            ));
        }
        phrase.push_str(&literal.phrase[at..]);
        clauses.push(leaf(UserInputLiteral { phrase, ..literal }));
        UserInputAst::and(clauses)
    };
    UserInputAst::or(vec![as_text, as_value])
}

fn leaf(literal: UserInputLiteral) -> UserInputAst {
    UserInputAst::Leaf(Box::new(UserInputLeaf::Literal(literal)))
}

fn values_term(term: String) -> UserInputAst {
    leaf(UserInputLiteral {
        field_name: Some(VALUES_FIELD.into()),
        phrase: term,
        delimiter: Delimiter::None,
        slop: 0,
        prefix: false,
    })
}

/// The records that may hold `value`: its hash among their terms, or each of its words
/// either as a word of the text or as a hash (part of it was found as personal data,
/// part not), or any record whose text was withheld. A superset: erasure confirms each by
/// opening its payloads.
pub fn value_query(f: &Fields, keys: &ValueKeys, value: &SubjectValue) -> Box<dyn Query> {
    let term = |field, text: &str| -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, text),
            IndexRecordOption::Basic,
        ))
    };
    let each_word: Vec<(Occur, Box<dyn Query>)> = value
        .words()
        .iter()
        .map(|word| {
            let mut either = vec![(Occur::Should, term(f.values, &keys.term(word)))];
            if word.len() < LONGEST_TEXT_TOKEN {
                either.push((Occur::Should, term(f.text, word)));
            } else {
                // Not indexed as text: any record may hold it.
                either.push((Occur::Should, Box::new(tantivy::query::AllQuery)));
            }
            (
                Occur::Must,
                Box::new(BooleanQuery::new(either)) as Box<dyn Query>,
            )
        })
        .collect();
    Box::new(BooleanQuery::new(vec![
        (Occur::Should, term(f.values, &keys.term(value.compact()))),
        (Occur::Should, Box::new(BooleanQuery::new(each_word))),
        (
            Occur::Should,
            Box::new(TermQuery::new(
                Term::from_field_u64(f.withheld, 1),
                IndexRecordOption::Basic,
            )),
        ),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(query: &str, keys: &ValueKeys) -> String {
        format!("{:?}", rewrite(query, keys).unwrap())
    }

    #[test]
    fn values_in_a_query_are_searched_by_their_hash() {
        let keys = ValueKeys::derive(&[3u8; 32]);
        let card = keys.term("4111111111111111");
        let shown_card = shown("refund 4111 1111 1111 1111", &keys);
        assert!(shown_card.contains(&card), "{shown_card}");
        assert!(!shown_card.contains("1111 "), "{shown_card}");
        let email = keys.term("janeroeexampleorg");
        assert!(shown("jane.roe@example.org", &keys).contains(&email));
        // Words also match their hash (a name taken out of the text); fields stay.
        let word = shown("thornbury model:chat-model", &keys);
        assert!(word.contains(&keys.term("thornbury")), "{word}");
        assert!(word.contains("\"model\":chat-model"), "{word}");
        let phrase = shown("\"Margaret Thornbury\"", &keys);
        assert!(phrase.contains(&keys.term("margaretthornbury")), "{phrase}");
        // A value inside a phrase: its class in the text, its hash among the terms.
        let inside = shown("\"card 4111 1111 1111 1111 declined\"", &keys);
        assert!(
            inside.contains("[CREDIT_CARD]") && inside.contains(&card),
            "{inside}"
        );
        // As a field's value, a value is left alone.
        assert!(!shown("user:jane.roe@example.org", &keys).contains(&email));
        assert!(matches!(
            rewrite("(((", &keys),
            Err(SearchError::BadRequest(_))
        ));
    }
}
