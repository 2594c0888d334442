//! What to do with each class of personal data: allow, mask, tokenise or hash, per class
//! with a default.

use super::classes::DATA_CLASSES;
use std::collections::BTreeMap;

/// One action on a piece of personal data.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PiiAction {
    /// Leave it as it is.
    Allow,
    /// Replace it with its class name: `[EMAIL_ADDRESS]`.
    Mask,
    /// Replace it with a reversible placeholder (`<PERSON_1>`) restored in the answer.
    #[serde(alias = "tokenize")]
    Tokenise,
    /// Replace it with a keyed hash: `[EMAIL_ADDRESS:3f2a9c0d1e]`.
    Hash,
}

impl PiiAction {
    /// The name used in configuration, policies and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Mask => "mask",
            Self::Tokenise => "tokenise",
            Self::Hash => "hash",
        }
    }
}

/// The action for each data class, and the action for classes not named.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "PlanSpec")]
pub struct ActionPlan {
    default: PiiAction,
    by_class: BTreeMap<&'static str, PiiAction>,
}

/// The written form of a plan, before its class names are checked.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanSpec {
    default: PiiAction,
    #[serde(default)]
    by_class: BTreeMap<String, PiiAction>,
}

impl TryFrom<PlanSpec> for ActionPlan {
    type Error = String;

    fn try_from(spec: PlanSpec) -> Result<Self, String> {
        let mut plan = Self::new(spec.default);
        for (name, action) in spec.by_class {
            let class = DATA_CLASSES
                .iter()
                .find(|known| **known == name)
                .ok_or_else(|| {
                    format!(
                        "unknown data class `{name}` in by_class; known classes: {}",
                        DATA_CLASSES.join(", ")
                    )
                })?;
            plan.set(class, action);
        }
        Ok(plan)
    }
}

impl Default for ActionPlan {
    /// Tokenise everything, so answers stay useful, except secrets, which a model never
    /// needs and which are masked.
    fn default() -> Self {
        let mut plan = Self::new(PiiAction::Tokenise);
        plan.set("SECRET", PiiAction::Mask);
        plan
    }
}

impl ActionPlan {
    /// A plan applying `default` to every class.
    pub fn new(default: PiiAction) -> Self {
        Self {
            default,
            by_class: BTreeMap::new(),
        }
    }

    /// Sets the action for one class (a name from [`DATA_CLASSES`]).
    pub fn set(&mut self, class: &'static str, action: PiiAction) {
        self.by_class.insert(class, action);
    }

    /// The action for `class`.
    pub fn action_for(&self, class: &str) -> PiiAction {
        self.by_class.get(class).copied().unwrap_or(self.default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ActionPlan, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn names_and_the_american_alias_parse() {
        let plan = parse(
            r#"{"default":"mask","by_class":{"PERSON":"tokenize","EMAIL_ADDRESS":"tokenise",
                "IBAN":"hash","URL":"allow"}}"#,
        )
        .unwrap();
        assert_eq!(plan.action_for("PERSON"), PiiAction::Tokenise);
        assert_eq!(plan.action_for("EMAIL_ADDRESS"), PiiAction::Tokenise);
        assert_eq!(plan.action_for("IBAN"), PiiAction::Hash);
        assert_eq!(plan.action_for("URL"), PiiAction::Allow);
        assert_eq!(plan.action_for("US_SSN"), PiiAction::Mask);
        let back = serde_json::to_string(&plan).unwrap();
        assert!(back.contains(r#""PERSON":"tokenise""#), "{back}");
        assert_eq!(parse(&back).unwrap(), plan);
    }

    #[test]
    fn unknown_classes_actions_and_fields_are_refused() {
        let err = parse(r#"{"default":"mask","by_class":{"NAME":"mask"}}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown data class `NAME`"),
            "{err}"
        );
        assert!(parse(r#"{"default":"redact"}"#).is_err());
        assert!(parse(r#"{"default":"mask","classes":{}}"#).is_err());
    }

    #[test]
    fn the_default_plan_tokenises_but_masks_secrets() {
        let plan = ActionPlan::default();
        assert_eq!(plan.action_for("PERSON"), PiiAction::Tokenise);
        assert_eq!(plan.action_for("SECRET"), PiiAction::Mask);
        assert_eq!(PiiAction::Tokenise.as_str(), "tokenise");
    }
}
