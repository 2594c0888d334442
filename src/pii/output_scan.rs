//! Scanning a restored answer: personal data the model produced itself is masked, while
//! the values the session tokenised (the user's own, just restored) stay visible.

use super::action::PiiAction;
use super::finding::Finding;
use super::session::Session;
use super::transform::{Transformed, mask, rewrite};
use super::{recognize, resolve_overlaps};

/// Masks each finding in `text` whose value is not one `session` tokenised. `findings`
/// come from the recognizers run over `text` (the restored answer); filter them by
/// policy first if some classes are allowed in answers.
pub fn mask_model_data(text: &str, findings: &[Finding], session: &Session) -> Transformed {
    let entries = session.entries();
    rewrite(text, findings, |class, value| {
        (!entries.holds_value(class, value)).then(|| (mask(class), PiiAction::Mask))
    })
}

/// A whole answer (already restored) with the personal data the model produced itself
/// masked: what the recognizers find in it, less the values `session` tokenised.
pub fn mask_whole_answer(text: &str, session: &Session) -> String {
    mask_model_data(text, &resolve_overlaps(recognize(text)), session).text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::action::ActionPlan;
    use crate::pii::restore::restore;
    use crate::pii::session::tests::session;
    use crate::pii::transform::{apply, tests::finding};

    #[test]
    fn restored_values_stay_and_the_models_own_are_masked() {
        let s = session(10);
        let prompt = "Write to Ann at ann@x.io";
        let sent = apply(
            prompt,
            &[
                finding(prompt, "Ann", "PERSON"),
                finding(prompt, "ann@x.io", "EMAIL_ADDRESS"),
            ],
            &ActionPlan::default(),
            &s,
        );
        assert_eq!(sent.text, "Write to <PERSON_1> at <EMAIL_ADDRESS_1>");
        let answer = restore(
            "Dear <PERSON_1> (<EMAIL_ADDRESS_1>), cc Bob at bob@y.io, ANN@X.IO",
            &s,
        );
        let findings = [
            finding(&answer, "Ann", "PERSON"),
            finding(&answer, "ann@x.io", "EMAIL_ADDRESS"),
            finding(&answer, "Bob", "PERSON"),
            finding(&answer, "bob@y.io", "EMAIL_ADDRESS"),
            finding(&answer, "ANN@X.IO", "EMAIL_ADDRESS"),
        ];
        let out = mask_model_data(&answer, &findings, &s);
        assert_eq!(
            out.text,
            "Dear Ann (ann@x.io), cc [PERSON] at [EMAIL_ADDRESS], ANN@X.IO"
        );
        assert_eq!(out.counts.total(), 2);
    }
}
