//! The NER model end to end: the embedded ONNX Runtime loaded from memory runs the
//! embedded model and finds a name; a runtime that cannot load leaves a clear error.

use airlock::pii::ner::{self, NerSettings, PoolSize, RuntimeSource};

fn settings(runtime: RuntimeSource) -> NerSettings {
    NerSettings {
        runtime,
        model_dir: None,
        size: PoolSize {
            threads: 1,
            queue: 16,
            max_batch: 4,
        },
    }
}

#[test]
fn embedded_model_finds_a_person_and_a_place() {
    let (pool, describe) = ner::start(&settings(RuntimeSource::Embedded)).unwrap();
    assert!(describe.contains("in memory"), "{describe}");
    let text = "Hello, my name is Sarah Thompson and I live in Manchester.";
    let findings = pool.find_blocking(text.to_string()).unwrap();
    let found: Vec<(&str, &str)> = findings.iter().map(|f| (f.class, f.text(text))).collect();
    assert!(found.contains(&("PERSON", "Sarah Thompson")), "{found:?}");
    assert!(
        found.iter().any(|(class, _)| *class == "LOCATION"),
        "{found:?}"
    );
    // Long texts run in overlapping windows and still find what is at the end.
    let long = format!(
        "{} Please call Sarah Thompson.",
        "The weather is nice today. ".repeat(200)
    );
    let findings = pool.find_blocking(long.clone()).unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f.class == "PERSON" && f.text(&long) == "Sarah Thompson"),
        "{findings:?}"
    );
    assert!(pool.find_blocking(String::new()).unwrap().is_empty());
}
