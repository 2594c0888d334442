//! Golden files for wire-format translation: `tests/golden/<translation>/<case>.in.json`
//! goes through one translation and must equal `<case>.out.json`, so a change in a
//! translation shows as a diff on disk. `AIRLOCK_BLESS=1 cargo test --test golden`
//! rewrites the expected files from today's output (review the diff before committing).

use std::path::{Path, PathBuf};

use airlock::api::openai::ChatCompletionRequest;
use airlock::api::{anthropic, gemini, responses};
use serde_json::{Value, json};

/// The model name a translation is asked for when it needs one.
const MODEL: &str = "golden-model";

/// One translation: its directory under `tests/golden/` and what it does to an input.
struct Translation {
    dir: &'static str,
    run: fn(Value) -> Result<Value, String>,
}

const TRANSLATIONS: &[Translation] = &[
    // Client formats into the chat request every route works on.
    Translation {
        dir: "anthropic_to_chat",
        run: anthropic_to_chat,
    },
    Translation {
        dir: "responses_to_chat",
        run: responses_to_chat,
    },
    Translation {
        dir: "gemini_to_chat",
        run: gemini_to_chat,
    },
    // The chat request into the upstream formats.
    Translation {
        dir: "chat_to_anthropic",
        run: chat_to_anthropic,
    },
    Translation {
        dir: "chat_to_gemini",
        run: chat_to_gemini,
    },
    // A Gemini client's request as a Gemini upstream receives it (through the chat
    // request, with what only Gemini takes kept as sent).
    Translation {
        dir: "gemini_to_gemini",
        run: gemini_to_gemini,
    },
    // Answers back: `{"request": <client request>, "completion": <chat completion>}`.
    Translation {
        dir: "chat_to_responses_answer",
        run: chat_to_responses_answer,
    },
    Translation {
        dir: "chat_to_anthropic_answer",
        run: chat_to_anthropic_answer,
    },
    // Streams back: `{"request": <client request>, "chunks": [<chat chunk>, …]}`.
    Translation {
        dir: "chat_stream_to_responses_events",
        run: chat_stream_to_responses_events,
    },
    Translation {
        dir: "chat_stream_to_anthropic_events",
        run: chat_stream_to_anthropic_events,
    },
    Translation {
        dir: "chat_stream_to_gemini_events",
        run: chat_stream_to_gemini_events,
    },
];

fn parsed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| format!("not accepted: {e}"))
}

fn chat_json(chat: ChatCompletionRequest) -> Result<Value, String> {
    serde_json::to_value(chat).map_err(|e| e.to_string())
}

fn anthropic_to_chat(input: Value) -> Result<Value, String> {
    let request: anthropic::MessagesRequest = parsed(input)?;
    chat_json(request.to_chat().map_err(|e| e.0)?)
}

fn responses_to_chat(input: Value) -> Result<Value, String> {
    let request: responses::ResponsesRequest = parsed(input)?;
    chat_json(request.to_chat().map_err(|e| e.0)?)
}

fn gemini_to_chat(input: Value) -> Result<Value, String> {
    let body = serde_json::to_vec(&input).map_err(|e| e.to_string())?;
    chat_json(gemini::ingress::to_chat(&body, MODEL, false).map_err(|e| e.0)?)
}

fn chat_to_anthropic(input: Value) -> Result<Value, String> {
    let chat: ChatCompletionRequest = parsed(input)?;
    anthropic::upstream::messages_request(&chat, MODEL).map_err(|e| e.0)
}

fn chat_to_gemini(input: Value) -> Result<Value, String> {
    let chat: ChatCompletionRequest = parsed(input)?;
    gemini::generate_content_request(&chat).map_err(|e| e.0)
}

fn gemini_to_gemini(input: Value) -> Result<Value, String> {
    let body = serde_json::to_vec(&input).map_err(|e| e.to_string())?;
    let chat = gemini::ingress::to_chat(&body, MODEL, false).map_err(|e| e.0)?;
    gemini::generate_content_request(&chat).map_err(|e| e.0)
}

fn chat_to_responses_answer(input: Value) -> Result<Value, String> {
    let request: responses::ResponsesRequest = parsed(input["request"].clone())?;
    Ok(responses::from_chat(&input["completion"], &request))
}

/// The events (their data) a client stream writer makes of `chunks`, then a clean end.
fn stream_events(mut events: impl airlock::api::ClientEvents, chunks: &Value) -> Value {
    let mut out = bytes::BytesMut::new();
    for chunk in chunks.as_array().into_iter().flatten() {
        let text = chunk.to_string();
        let typed: airlock::api::chunk::Chunk<'_> = serde_json::from_str(&text).unwrap_or_default();
        events.on_chunk(&typed, &mut out);
    }
    events.finish(&mut out);
    String::from_utf8_lossy(&out)
        .replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|event| event.split_once("data: "))
        .map(|(_, data)| serde_json::from_str(data).unwrap_or(Value::Null))
        .collect()
}

fn chat_stream_to_responses_events(input: Value) -> Result<Value, String> {
    let request: responses::ResponsesRequest = parsed(input["request"].clone())?;
    let events = responses::stream::ResponsesStream::new(&request);
    Ok(stream_events(events, &input["chunks"]))
}

fn chat_stream_to_anthropic_events(input: Value) -> Result<Value, String> {
    let model = input["request"]["model"].as_str().unwrap_or(MODEL);
    let events = anthropic::stream::AnthropicStream::new(model);
    Ok(stream_events(events, &input["chunks"]))
}

fn chat_stream_to_gemini_events(input: Value) -> Result<Value, String> {
    let events = gemini::ingress::GeminiEvents::new(MODEL, None);
    Ok(stream_events(events, &input["chunks"]))
}

fn chat_to_anthropic_answer(input: Value) -> Result<Value, String> {
    let model = input["request"]["model"]
        .as_str()
        .unwrap_or(MODEL)
        .to_string();
    Ok(anthropic::from_chat(&input["completion"], &model))
}

fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    inputs.retain(|p| p.to_string_lossy().ends_with(".in.json"));
    inputs.sort();
    inputs
}

/// An answer with ids and timestamps that change per run replaced by placeholders.
fn stable(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        for key in ["id", "created", "created_at"] {
            if object.contains_key(key) {
                object.insert(key.into(), json!(format!("<{key}>")));
            }
        }
    }
    value
}

#[test]
fn translations_match_their_golden_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var_os("AIRLOCK_BLESS").is_some();
    let mut checked = 0;
    let mut differ = Vec::new();
    for translation in TRANSLATIONS {
        for input_path in cases(&root.join(translation.dir)) {
            let input: Value =
                serde_json::from_str(&std::fs::read_to_string(&input_path).unwrap()).unwrap();
            let actual = match (translation.run)(input) {
                Ok(output) => stable(output),
                Err(message) => json!({ "error": message }),
            };
            let expected_path = PathBuf::from(
                input_path
                    .to_string_lossy()
                    .replace(".in.json", ".out.json"),
            );
            let rendered = serde_json::to_string_pretty(&actual).unwrap() + "\n";
            if bless {
                std::fs::write(&expected_path, &rendered).unwrap();
            } else if std::fs::read_to_string(&expected_path).ok().as_deref() != Some(&rendered) {
                differ.push(format!("{}:\n{rendered}", expected_path.display()));
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no golden cases under {}", root.display());
    assert!(
        differ.is_empty(),
        "{} golden file(s) differ (AIRLOCK_BLESS=1 rewrites them):\n{}",
        differ.len(),
        differ.join("\n")
    );
}
