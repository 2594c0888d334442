//! The fuzzing driver: runs a property over generated inputs for a time box (seconds from
//! `AIRLOCK_FUZZ_SECS`, 3 by default; CI runs the default, `AIRLOCK_FUZZ_SECS=600` runs a
//! long session on demand), shrinking any failure to a minimal input and printing the
//! seed that reproduces it (`AIRLOCK_FUZZ_SEED`). Also the generators every target shares:
//! hostile JSON values and structure-aware mutations of valid documents.

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseResult, TestError, TestRunner};
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

/// How long each target runs.
pub fn budget() -> Duration {
    let secs = std::env::var("AIRLOCK_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// Runs `property` on values of `strategy` in batches until the time box is spent (at
/// least one batch), failing the test with the shrunk input and its seed on the first
/// failure or panic.
pub fn fuzz<S: Strategy>(name: &str, strategy: S, property: impl Fn(S::Value) -> TestCaseResult)
where
    S::Value: std::fmt::Debug,
{
    let fixed_seed = std::env::var("AIRLOCK_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok());
    let started = Instant::now();
    let budget = budget();
    let mut cases = 0u64;
    for batch in 0u64.. {
        let seed = fixed_seed.unwrap_or_else(|| fresh_seed(batch));
        let config = Config {
            cases: 32,
            rng_seed: RngSeed::Fixed(seed),
            failure_persistence: None,
            max_shrink_iters: 2_000,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        match runner.run(&strategy, &property) {
            Ok(()) => cases += 32,
            Err(TestError::Fail(reason, input)) => panic!(
                "fuzz target {name} failed after {cases} cases: {reason}\n\
                 minimal input: {input:#?}\nreproduce with AIRLOCK_FUZZ_SEED={seed}"
            ),
            Err(TestError::Abort(reason)) => panic!("fuzz target {name} aborted: {reason}"),
        }
        if fixed_seed.is_some() || started.elapsed() >= budget {
            break;
        }
    }
    eprintln!(
        "fuzz target {name}: {cases} cases in {:?}",
        started.elapsed()
    );
}

fn fresh_seed(batch: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ batch.rotate_left(32) ^ u64::from(std::process::id())
}

/// Keys the wire formats give meaning to, so generated objects hit real fields often.
const KEYS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "tools",
    "tool_choice",
    "function",
    "name",
    "arguments",
    "parameters",
    "stream",
    "stream_options",
    "include_usage",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "input",
    "instructions",
    "contents",
    "parts",
    "functionCall",
    "functionResponse",
    "functionDeclarations",
    "parametersJsonSchema",
    "system",
    "systemInstruction",
    "image_url",
    "url",
    "source",
    "data",
    "media_type",
    "mimeType",
    "inlineData",
    "fileData",
    "tool_use",
    "tool_result",
    "tool_use_id",
    "tool_call_id",
    "tool_calls",
    "id",
    "response_format",
    "json_schema",
    "schema",
    "text",
    "format",
    "call_id",
    "output",
    "generationConfig",
    "responseSchema",
    "responseMimeType",
    "user",
    "metadata",
    "user_id",
    "stop",
    "stop_sequences",
    "n",
    "temperature",
    "top_p",
    "thinking",
    "prompt",
    "choices",
    "delta",
    "finish_reason",
    "usage",
    "index",
    "candidates",
    "usageMetadata",
    "error",
    "message",
    "properties",
    "required",
    "items",
    "anyOf",
    "enum",
    "nullable",
    "$ref",
    "reasoning",
    "effort",
    "store",
];

/// Strings that have broken parsers and translators elsewhere.
const STRINGS: &[&str] = &[
    "",
    " ",
    "user",
    "assistant",
    "system",
    "tool",
    "developer",
    "model",
    "function",
    "text",
    "image_url",
    "image",
    "tool_use",
    "tool_result",
    "function_call",
    "function_call_output",
    "input_text",
    "output_text",
    "input_image",
    "json_schema",
    "json_object",
    "auto",
    "none",
    "required",
    "any",
    "object",
    "string",
    "array",
    "chat-model",
    "\u{0}",
    "\u{202e}rtl",
    "e\u{301}\u{301}\u{301}",
    "😀",
    "\r\n\r\n",
    "data: [DONE]\n\n",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "\\",
    "%s%n",
    "../../etc/passwd",
    "data:image/png;base64,",
    "data:image/png;base64,!!!!",
    "http://169.254.169.254/",
    "9007199254740993",
    "-0",
    "1e999",
    "NaN",
    "<PERSON_1>",
    "[EMAIL_ADDRESS]",
    "\u{feff}",
    "\u{fffd}",
    "\u{10ffff}",
    "a\u{0}b",
];

/// A scalar JSON value, hostile ones included.
pub fn arb_scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(i64::MAX),
            Just(i64::MIN),
            any::<i64>()
        ]
        .prop_map(Value::from),
        Just(json!(u64::MAX)),
        prop_oneof![
            Just(1.5f64),
            Just(-0.0),
            Just(f64::MAX),
            Just(1e-300),
            any::<f64>()
        ]
        .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        proptest::sample::select(STRINGS).prop_map(|s| Value::String(s.into())),
        ".{0,40}".prop_map(Value::String),
    ]
    .boxed()
}

/// Any JSON value up to a few levels deep, with objects keyed mostly by wire fields.
pub fn arb_json() -> BoxedStrategy<Value> {
    arb_scalar()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::vec((arb_key(), inner), 0..6)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
            ]
        })
        .boxed()
}

fn arb_key() -> BoxedStrategy<String> {
    prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_string),
        1 => "[a-zA-Z_$]{0,12}",
    ]
    .boxed()
}

/// One edit to a document: which node (by pre-order index, modulo the node count) and
/// what to do there.
#[derive(Debug, Clone)]
pub enum Edit {
    /// The node becomes this value.
    Replace(usize, Value),
    /// The node leaves its object or array.
    Remove(usize),
    /// A key is added to the node (when it is an object) or an element (an array).
    Insert(usize, String, Value),
    /// An array node's elements are repeated, or a string node's text is.
    Repeat(usize, u8),
}

fn arb_edit() -> BoxedStrategy<Edit> {
    prop_oneof![
        3 => (any::<usize>(), arb_json()).prop_map(|(i, v)| Edit::Replace(i, v)),
        2 => any::<usize>().prop_map(Edit::Remove),
        2 => (any::<usize>(), arb_key(), arb_json()).prop_map(|(i, k, v)| Edit::Insert(i, k, v)),
        1 => (any::<usize>(), 2u8..40).prop_map(|(i, n)| Edit::Repeat(i, n)),
    ]
    .boxed()
}

/// A valid document from `seeds`, damaged by one to four edits.
pub fn mutated(seeds: Vec<Value>) -> BoxedStrategy<Value> {
    mutated_with(seeds.into_iter().map(|seed| ((), seed)).collect())
        .prop_map(|((), doc)| doc)
        .boxed()
}

/// One of `items` with its document damaged by one to four edits, the tag kept (what the
/// document is for: an endpoint, say).
pub fn mutated_with<T: Clone + std::fmt::Debug + 'static>(
    items: Vec<(T, Value)>,
) -> BoxedStrategy<(T, Value)> {
    (
        proptest::sample::select(items),
        proptest::collection::vec(arb_edit(), 1..5),
    )
        .prop_map(|((tag, mut doc), edits)| {
            for edit in edits {
                apply(&mut doc, edit);
            }
            (tag, doc)
        })
        .boxed()
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

fn apply(doc: &mut Value, edit: Edit) {
    let nodes = count_nodes(doc);
    let at = |i: usize| i % nodes;
    match edit {
        Edit::Replace(i, value) => with_node(doc, at(i), &mut |node| *node = value.clone()),
        Edit::Remove(i) => remove_node(doc, at(i)),
        Edit::Insert(i, key, value) => with_node(doc, at(i), &mut |node| match node {
            Value::Object(map) => {
                map.insert(key.clone(), value.clone());
            }
            Value::Array(items) => items.push(value.clone()),
            _ => {}
        }),
        Edit::Repeat(i, times) => with_node(doc, at(i), &mut |node| match node {
            Value::Array(items) if !items.is_empty() => {
                let copy = items.clone();
                for _ in 1..times {
                    items.extend(copy.iter().cloned());
                }
            }
            Value::String(s) => *s = s.repeat(usize::from(times)),
            _ => {}
        }),
    }
}

/// Calls `f` on the node at pre-order position `target`.
fn with_node(v: &mut Value, target: usize, f: &mut dyn FnMut(&mut Value)) {
    fn walk(v: &mut Value, left: &mut usize, f: &mut dyn FnMut(&mut Value)) -> bool {
        if *left == 0 {
            f(v);
            return true;
        }
        *left -= 1;
        match v {
            Value::Array(items) => items.iter_mut().any(|c| walk(c, left, f)),
            Value::Object(map) => map.values_mut().any(|c| walk(c, left, f)),
            _ => false,
        }
    }
    let mut left = target;
    walk(v, &mut left, f);
}

/// Removes the node at pre-order position `target` from its parent (the root stays).
fn remove_node(v: &mut Value, target: usize) {
    fn walk(v: &mut Value, left: &mut usize) -> bool {
        match v {
            Value::Array(items) => {
                for i in 0..items.len() {
                    if *left == 0 {
                        items.remove(i);
                        return true;
                    }
                    *left -= 1;
                    if walk(&mut items[i], left) {
                        return true;
                    }
                }
                false
            }
            Value::Object(map) => {
                let keys: Vec<String> = map.keys().cloned().collect();
                for key in keys {
                    if *left == 0 {
                        map.shift_remove(&key);
                        return true;
                    }
                    *left -= 1;
                    if map.get_mut(&key).is_some_and(|child| walk(child, left)) {
                        return true;
                    }
                }
                false
            }
            _ => false,
        }
    }
    if target > 0 {
        let mut left = target - 1;
        walk(v, &mut left);
    }
}

/// Generated bytes that print as text (invalid UTF-8 escaped), so a shrunk failure reads.
#[derive(Clone, PartialEq, Eq)]
pub struct Raw(pub Vec<u8>);

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}
