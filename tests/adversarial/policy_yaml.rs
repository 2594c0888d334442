//! Fuzzing the policy language: the shipped policy packs damaged line by line as text
//! (YAML's own hazards: anchors, aliases, tags, tabs, flow collections) and as structure,
//! then linted and compiled; what compiles is evaluated on the packs' own test cases, and
//! the test-case files are fuzzed too. Every problem must point inside the file.

use crate::fuzz::{fuzz, mutated};
use airlock::policy::{cases, compile, lint};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;
use serde_json::Value;

const PACKS: &[(&str, &str)] = &[
    (
        include_str!("../../policies/baseline/policy.yaml"),
        include_str!("../../policies/baseline/tests.yaml"),
    ),
    (
        include_str!("../../policies/gdpr/policy.yaml"),
        include_str!("../../policies/gdpr/tests.yaml"),
    ),
    (
        include_str!("../../policies/hipaa/policy.yaml"),
        include_str!("../../policies/hipaa/tests.yaml"),
    ),
    (
        include_str!("../../policies/pci/policy.yaml"),
        include_str!("../../policies/pci/tests.yaml"),
    ),
];

/// Text that YAML treats specially.
const HAZARDS: &[&str] = &[
    "&a",
    "*a",
    "<<: *a",
    "!!binary aGk=",
    "!!python/object:os.system",
    "\t",
    "{",
    "}",
    "[",
    "]",
    "- ",
    ": ",
    "? ",
    "|",
    ">-",
    "'",
    "\"",
    "#",
    "%YAML 1.2",
    "---",
    "...",
    "~",
    "null",
    ".inf",
    "0x7fffffffffffffff",
    "1e400",
    "\u{0}",
    "\u{feff}",
    "\u{202e}",
    "é",
    "on",
    "no",
    "*undefined",
    "&a [*a, *a, *a, *a]",
];

/// One text edit on a line: delete it, repeat it, indent or unindent it, or put a hazard
/// somewhere in it.
#[derive(Debug, Clone)]
enum LineEdit {
    Delete(usize),
    Repeat(usize, u8),
    Indent(usize, u8),
    Unindent(usize),
    Hazard(usize, usize, &'static str),
}

fn arb_line_edit() -> impl Strategy<Value = LineEdit> {
    prop_oneof![
        any::<usize>().prop_map(LineEdit::Delete),
        (any::<usize>(), 2u8..5).prop_map(|(l, n)| LineEdit::Repeat(l, n)),
        (any::<usize>(), 1u8..5).prop_map(|(l, n)| LineEdit::Indent(l, n)),
        any::<usize>().prop_map(LineEdit::Unindent),
        (
            any::<usize>(),
            any::<usize>(),
            proptest::sample::select(HAZARDS)
        )
            .prop_map(|(l, c, h)| LineEdit::Hazard(l, c, h)),
    ]
}

fn edited(text: &str, edits: &[LineEdit]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for edit in edits {
        if lines.is_empty() {
            break;
        }
        let at = |l: usize| l % lines.len();
        match edit {
            LineEdit::Delete(l) => {
                lines.remove(at(*l));
            }
            LineEdit::Repeat(l, n) => {
                let i = at(*l);
                let line = lines[i].clone();
                for _ in 1..*n {
                    lines.insert(i, line.clone());
                }
            }
            LineEdit::Indent(l, n) => {
                let i = at(*l);
                lines[i] = format!("{}{}", " ".repeat(usize::from(*n)), lines[i]);
            }
            LineEdit::Unindent(l) => {
                let i = at(*l);
                lines[i] = lines[i].trim_start().to_string();
            }
            LineEdit::Hazard(l, c, hazard) => {
                let i = at(*l);
                let line = &lines[i];
                let boundaries: Vec<usize> = line
                    .char_indices()
                    .map(|(b, _)| b)
                    .chain([line.len()])
                    .collect();
                let cut = boundaries[c % boundaries.len()];
                lines[i] = format!("{}{hazard}{}", &line[..cut], &line[cut..]);
            }
        }
    }
    lines.join("\n")
}

/// Lints and compiles `text`; problems must name a line of the file (or none); a
/// policy that compiles is run on every pack's test cases.
fn checked(text: &str) -> TestCaseResult {
    let lines = text.lines().count() as u64 + 1;
    for problem in lint::lint(text.as_bytes()) {
        prop_assert!(
            problem.line <= lines,
            "a problem points past the end of the file: line {} of {lines}: {}",
            problem.line,
            problem.message
        );
        let _ = problem.render("policy.yaml");
    }
    if let Ok((policy, _)) = compile::load(text.as_bytes()) {
        let _ = lint::reachability(&policy);
        for (_, tests) in PACKS {
            if let Ok(file) = cases::parse(tests.as_bytes()) {
                let _ = cases::run(&policy, &file);
            }
        }
    }
    Ok(())
}

#[test]
fn policy_text_damaged_line_by_line() {
    let input = (
        proptest::sample::select(PACKS),
        proptest::collection::vec(arb_line_edit(), 1..6),
    );
    fuzz("policy_text", input, |((policy, _), edits)| {
        checked(&edited(policy, &edits))
    });
}

/// The packs' policies as JSON trees (JSON is YAML), for structural damage.
fn policy_trees() -> Vec<Value> {
    PACKS
        .iter()
        .map(|(policy, _)| {
            compile::from_yaml::<Value>(policy)
                .unwrap_or_else(|p| panic!("a shipped policy does not parse: {}", p.message))
        })
        .collect()
}

#[test]
fn policy_structure_damaged() {
    fuzz("policy_structure", mutated(policy_trees()), |tree| {
        checked(&tree.to_string())
    });
}

#[test]
fn policy_test_cases_damaged() {
    let trees: Vec<Value> = PACKS
        .iter()
        .map(|(_, tests)| {
            compile::from_yaml::<Value>(tests)
                .unwrap_or_else(|p| panic!("a shipped test file does not parse: {}", p.message))
        })
        .collect();
    let policies: Vec<_> = PACKS
        .iter()
        .filter_map(|(policy, _)| compile::load(policy.as_bytes()).ok())
        .map(|(policy, _)| policy)
        .collect();
    assert_eq!(policies.len(), PACKS.len(), "every shipped pack compiles");
    fuzz("policy_cases", mutated(trees), |tree| {
        if let Ok(file) = cases::parse(tree.to_string().as_bytes()) {
            for policy in &policies {
                let _ = cases::run(policy, &file);
            }
        }
        Ok(())
    });
}

#[test]
fn yaml_bombs_are_refused_quickly() {
    // An alias bomb: nine levels of nine aliases would expand to 387 million nodes.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for level in 1..10 {
        let prev = level - 1;
        bomb.push_str(&format!(
            "a{level}: &a{level} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
        ));
    }
    bomb.push_str("policy: bomb\nrules: *a9\n");
    let deep = format!(
        "policy: deep\nrules: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    for text in [bomb, deep] {
        let problems = lint::lint(text.as_bytes());
        assert!(
            lint::has_errors(&problems),
            "hostile YAML must be refused with an error"
        );
        assert!(compile::load(text.as_bytes()).is_err());
    }
}
