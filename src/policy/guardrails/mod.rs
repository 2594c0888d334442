//! Built-in guardrail detectors a policy can reference: secrets, prompt injection, topics.

pub mod injection;
pub mod keywords;
pub mod secrets;
pub mod topics;

pub use injection::{INJECTION_HEURISTICS, InjectionSignal, detect_injection};
pub use secrets::{SECRET_KINDS, SecretFinding, find_secrets, first_secret};
pub use topics::{TOPICS, topic_terms};

/// Every built-in detector name a policy may reference, by family, for lint messages.
pub fn known(family: &str) -> &'static [&'static str] {
    match family {
        "secrets" => SECRET_KINDS,
        "injection" => INJECTION_HEURISTICS,
        "topics" => TOPICS,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_lists_each_family() {
        assert!(known("secrets").contains(&"aws_access_key_id"));
        assert!(known("injection").contains(&"override_instructions"));
        assert!(known("topics").contains(&"medical"));
        assert!(known("nope").is_empty());
        for family in ["secrets", "injection", "topics"] {
            let names = known(family);
            for (i, name) in names.iter().enumerate() {
                assert!(!names[..i].contains(name), "{family}: {name} twice");
            }
        }
    }
}
