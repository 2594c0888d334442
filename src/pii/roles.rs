//! What happens to personal data by the role of the message it is in: the action plan
//! applied, found and recorded only (the application's own prompts), or not scanned.

use std::collections::BTreeMap;

/// The role of a message whose text is scanned. Every client format becomes a chat
/// request first: Anthropic's `system`, Gemini's `systemInstruction` and the Responses
/// API's `instructions` are `system` messages, its `developer` items `developer` ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MessageRole {
    /// The application's own instructions (`system`).
    System,
    /// The application's own instructions, OpenAI's newer name (`developer`).
    Developer,
    /// What the person (or a caller acting for one) wrote; also a completion's prompt
    /// and an embedding's input.
    User,
    /// The model's earlier answers, sent back as conversation history.
    Assistant,
    /// Results of tools the application ran (`tool`, and the legacy `function`).
    Tool,
}

impl MessageRole {
    /// Every role, in the order of [`MessageRole::as_str`]'s names in messages.
    pub const ALL: [Self; 5] = [
        Self::System,
        Self::Developer,
        Self::User,
        Self::Assistant,
        Self::Tool,
    ];

    /// The name in chat messages and in `pii.roles`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Developer => "developer",
            Self::User => "user",
            Self::Assistant => "assistant",
            Self::Tool => "tool",
        }
    }

    /// The role of a chat message by its `role` field: the legacy `function` role is a
    /// tool result, and a role Airlock does not know counts as the user's (its text gets
    /// the plan, never less protection).
    pub fn of(role: &str) -> Self {
        match role {
            "system" => Self::System,
            "developer" => Self::Developer,
            "assistant" => Self::Assistant,
            "tool" | "function" => Self::Tool,
            _ => Self::User,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What happens to the personal data in messages of one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleHandling {
    /// Found, counted and seen by policy, then rewritten by the action plan (the
    /// configured actions, overridden by the policy's `redact`/`tokenise` rules).
    Apply,
    /// Found, counted and seen by policy (a `deny` rule on a class still fires), but the
    /// text is forwarded as written, whatever the plan or the policy's rewriting rules.
    Detect,
    /// Not scanned: neither counted, nor seen by policy, nor rewritten.
    Skip,
}

impl RoleHandling {
    /// The name in `pii.roles`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Detect => "detect",
            Self::Skip => "skip",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Self::Apply, Self::Detect, Self::Skip]
            .into_iter()
            .find(|handling| handling.as_str() == name)
    }
}

/// `pii.roles`: the handling of each message role. Roles not named keep their default:
/// `system` and `developer` are detected only (an application's own prompt is the
/// operator's text, not a data subject's, and rewriting it breaks the application), the
/// others get the plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "BTreeMap<String, String>")]
pub struct RolePlan {
    by_role: [RoleHandling; 5],
}

impl Default for RolePlan {
    fn default() -> Self {
        let mut by_role = [RoleHandling::Apply; 5];
        by_role[MessageRole::System.index()] = RoleHandling::Detect;
        by_role[MessageRole::Developer.index()] = RoleHandling::Detect;
        Self { by_role }
    }
}

impl TryFrom<BTreeMap<String, String>> for RolePlan {
    type Error = String;

    fn try_from(spec: BTreeMap<String, String>) -> Result<Self, String> {
        let mut plan = Self::default();
        for (name, handling) in spec {
            let role = MessageRole::ALL
                .into_iter()
                .find(|role| role.as_str() == name)
                .ok_or_else(|| {
                    format!(
                        "unknown message role `{name}` in pii.roles; known roles: {}",
                        MessageRole::ALL.map(MessageRole::as_str).join(", ")
                    )
                })?;
            let handling = RoleHandling::parse(&handling).ok_or_else(|| {
                format!(
                    "unknown handling `{handling}` for role `{name}` in pii.roles; \
                     expected apply, detect or skip"
                )
            })?;
            plan.set(role, handling);
        }
        Ok(plan)
    }
}

impl RolePlan {
    /// Sets the handling of one role.
    pub fn set(&mut self, role: MessageRole, handling: RoleHandling) {
        self.by_role[role.index()] = handling;
    }

    /// The handling of messages of `role`.
    pub fn handling(&self, role: MessageRole) -> RoleHandling {
        self.by_role[role.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<RolePlan, String> {
        serde_saphyr::from_str::<RolePlan>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn the_applications_own_prompts_are_detected_only_by_default() {
        let plan = RolePlan::default();
        assert_eq!(plan.handling(MessageRole::System), RoleHandling::Detect);
        assert_eq!(plan.handling(MessageRole::Developer), RoleHandling::Detect);
        for role in [MessageRole::User, MessageRole::Assistant, MessageRole::Tool] {
            assert_eq!(plan.handling(role), RoleHandling::Apply, "{role:?}");
        }
    }

    #[test]
    fn named_roles_override_their_default_and_the_others_keep_it() {
        let plan = parse("{system: apply, tool: detect, assistant: skip}").unwrap();
        assert_eq!(plan.handling(MessageRole::System), RoleHandling::Apply);
        assert_eq!(plan.handling(MessageRole::Developer), RoleHandling::Detect);
        assert_eq!(plan.handling(MessageRole::User), RoleHandling::Apply);
        assert_eq!(plan.handling(MessageRole::Assistant), RoleHandling::Skip);
        assert_eq!(plan.handling(MessageRole::Tool), RoleHandling::Detect);
        assert_eq!(parse("{}").unwrap(), RolePlan::default());
    }

    #[test]
    fn chat_roles_map_to_message_roles_and_unknown_ones_count_as_the_users() {
        for role in MessageRole::ALL {
            assert_eq!(MessageRole::of(role.as_str()), role);
        }
        assert_eq!(MessageRole::of("function"), MessageRole::Tool);
        assert_eq!(MessageRole::of("System"), MessageRole::User);
        assert_eq!(MessageRole::of(""), MessageRole::User);
    }

    #[test]
    fn unknown_roles_and_handlings_are_refused_by_name() {
        let err = parse("{sytem: detect}").unwrap_err();
        assert!(
            err.contains(
                "unknown message role `sytem` in pii.roles; known roles: system, developer, \
                 user, assistant, tool"
            ),
            "{err}"
        );
        let err = parse("{system: allow}").unwrap_err();
        assert!(
            err.contains(
                "unknown handling `allow` for role `system` in pii.roles; expected apply, \
                 detect or skip"
            ),
            "{err}"
        );
        for hostile in [
            "[system]",
            "{system: [detect]}",
            "{system: {a: 1}}",
            "detect",
        ] {
            assert!(parse(hostile).is_err(), "{hostile}");
        }
    }
}
