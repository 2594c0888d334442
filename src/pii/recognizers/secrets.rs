//! Credentials as personal data of class `SECRET`: the policy guardrail's secret detectors
//! (cloud keys, tokens, JWTs, PEM private keys, password and key assignments), with the
//! detector's kind as the recognizer name.

use super::Scan;
use crate::pii::Finding;
use crate::policy::guardrails::find_secrets;

/// Every detector checks shape and randomness and rejects placeholders.
const BASE: f32 = 0.9;

pub fn find(scan: &Scan<'_>, out: &mut Vec<Finding>) {
    let text = scan.text;
    out.extend(find_secrets(text).into_iter().map(|s| Finding {
        class: "SECRET",
        start: s.start,
        end: s.end,
        score: BASE,
        recognizer: s.kind,
    }));
}

#[cfg(test)]
mod tests {
    use super::super::recognize;

    #[test]
    fn secrets_are_reported_with_their_kind() {
        let key = ["AKIA", "Y34FZKBOKMUTVV7A"].concat();
        let jwt = [
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
            ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ",
            ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        ]
        .concat();
        let text = format!("key {key} and token {jwt} and password = \"hunter2-Stapler\"");
        let found: Vec<(&str, &str)> = recognize(&text)
            .iter()
            .filter(|f| f.class == "SECRET")
            .map(|f| (f.recognizer, f.text(&text)))
            .collect();
        assert_eq!(
            found,
            [
                ("aws_access_key_id", key.as_str()),
                ("jwt", jwt.as_str()),
                ("generic_password_assignment", "hunter2-Stapler"),
            ]
        );
    }
}
