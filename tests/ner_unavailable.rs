//! NER when ONNX Runtime cannot load (its own process: the runtime loads once per process).

use airlock::pii::ner::{self, NerError, NerSettings, PoolSize, RuntimeSource};

#[test]
fn a_runtime_that_cannot_load_is_reported_not_fatal() {
    let not_a_library = std::env::temp_dir().join("airlock-not-onnxruntime.so");
    std::fs::write(&not_a_library, b"this is not a shared library").unwrap();
    let settings = NerSettings {
        runtime: RuntimeSource::File(not_a_library),
        model_dir: None,
        size: PoolSize {
            threads: 1,
            queue: 4,
            max_batch: 1,
        },
    };
    let Err(NerError::Unavailable(why)) = ner::start(&settings) else {
        panic!("the runtime should not load");
    };
    assert!(why.contains("cannot load ONNX Runtime"), "{why}");
    // Later attempts give the same answer rather than trying again mid-flight.
    assert!(matches!(
        ner::start(&settings),
        Err(NerError::Unavailable(_))
    ));
}
