//! The policy packs in `policies/`: each lints clean and passes its own tests.

use airlock::policy::{cases, lint};
use std::path::Path;

#[test]
fn every_pack_lints_clean_and_passes_its_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut packs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    packs.sort();
    let names: Vec<String> = packs
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["baseline", "gdpr", "hipaa", "pci"]);
    for pack in &packs {
        let source = std::fs::read(pack.join("policy.yaml")).unwrap();
        let problems = lint::lint(&source);
        assert!(problems.is_empty(), "{}: {problems:#?}", pack.display());
        let (policy, _) = airlock::policy::load(&source).unwrap();
        let file = cases::parse(&std::fs::read(pack.join("tests.yaml")).unwrap()).unwrap();
        assert!(file.cases.len() >= 4, "{}: too few cases", pack.display());
        for outcome in cases::run(&policy, &file) {
            assert!(
                outcome.passed,
                "{}: {}: {:?}",
                pack.display(),
                outcome.name,
                outcome.failures
            );
        }
    }
}
