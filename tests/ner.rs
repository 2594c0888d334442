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

#[tokio::test]
async fn embedded_model_finds_a_person_and_a_place() {
    let (pool, describe) = ner::start(&settings(RuntimeSource::Embedded)).unwrap();
    assert!(describe.contains("in memory"), "{describe}");
    let text = "Hello, my name is Sarah Thompson and I live in Manchester.";
    let findings = pool.find("t", text, None).await.unwrap();
    let found: Vec<(&str, &str)> = findings.iter().map(|f| (f.class, f.text(text))).collect();
    assert!(found.contains(&("PERSON", "Sarah Thompson")), "{found:?}");
    assert!(
        found.iter().any(|(class, _)| *class == "LOCATION"),
        "{found:?}"
    );
    // Long texts run in overlapping pieces and windows and still find what is at the end.
    let long = format!(
        "{} Please call Sarah Thompson.",
        "The weather is nice today. ".repeat(200)
    );
    let findings = pool.find("t", &long, None).await.unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f.class == "PERSON" && f.text(&long) == "Sarah Thompson"),
        "{findings:?}"
    );
    assert!(pool.find("t", "", None).await.unwrap().is_empty());

    // A long text is read piece by piece; each mention is found once, wherever the
    // pieces are cut.
    let sentence = "Yesterday Sarah Thompson met the board in Manchester to discuss the plan. ";
    let long = sentence.repeat(120);
    let findings = pool.find("t", &long, None).await.unwrap();
    let people: Vec<usize> = findings
        .iter()
        .filter(|f| f.class == "PERSON")
        .map(|f| f.start)
        .collect();
    let mentions: Vec<usize> = long
        .match_indices("Sarah Thompson")
        .map(|(at, _)| at)
        .collect();
    assert_eq!(people, mentions);
    for pair in findings.windows(2) {
        assert!(pair[0].end <= pair[1].start, "{pair:?}");
    }
}
