//! Built-in guardrail detectors a policy can reference: secrets, injection, topics, keywords.

pub mod injection;
pub mod keywords;
pub mod secrets;
pub mod topics;

pub use injection::{INJECTION_HEURISTICS, InjectionSignal, detect_injection};
pub use keywords::KeywordMatcher;
pub use secrets::{SECRET_KINDS, SecretFinding, find_secrets, first_secret};
pub use topics::{TOPICS, topic_matcher, topic_terms};

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

#[cfg(test)]
mod timing {
    //! `cargo test --release --lib policy::guardrails::timing -- --ignored --nocapture`

    use super::*;
    use std::time::Instant;

    /// About 4 KB of an ordinary prompt: prose, a little code, some non-ASCII.
    fn prompt(non_ascii: bool) -> String {
        let para = "Please review the following deployment plan for the payments service. \
            We roll out to the canary region first, watch error rates and p99 latency for \
            thirty minutes, then continue region by region. The database migration adds a \
            nullable column and backfills it in batches of 10,000 rows; the old code ignores \
            the column. Rollback is a redeploy of the previous image tag. Summarise the risks, \
            suggest missing checks, and note anything the on-call engineer should know. \
            fn main() { let config = load(\"app.yaml\")?; run(config).await }\n";
        let mut s = String::new();
        while s.len() < 4096 {
            s.push_str(para);
            if non_ascii {
                s.push_str("Café — “quoted” naïve résumé 東京.\n");
            }
        }
        s
    }

    fn time(label: &str, mut f: impl FnMut()) {
        for _ in 0..200 {
            f();
        }
        let n = 5_000;
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        println!(
            "{label:<40} {:>8.2} µs",
            start.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }

    #[test]
    #[ignore = "timing, run by hand in release"]
    fn four_kb_prompt() {
        for non_ascii in [false, true] {
            let text = prompt(non_ascii);
            let tag = if non_ascii { "non-ascii" } else { "ascii" };
            println!("{tag}: {} bytes", text.len());
            time("first_secret", || assert!(first_secret(&text).is_none()));
            time("find_secrets", || assert!(find_secrets(&text).is_empty()));
            time("detect_injection", || {
                assert!(detect_injection(&text).is_none())
            });
            let medical = topic_matcher("medical").unwrap();
            time("topic medical", || assert!(medical.find(&text).is_none()));
            let all: Vec<_> = TOPICS.iter().map(|t| topic_matcher(t).unwrap()).collect();
            time("all 8 topics", || {
                assert!(all.iter().all(|m| m.find(&text).is_none()))
            });
        }
    }
}
