//! Tools a provider runs on its own side (OpenAI's web search, Anthropic's server tools,
//! Gemini's Google Search), which no on-prem model can: dropped or refused as configured
//! (`tools.hosted`), and the dropped ones named to the caller and in the audit record.

use super::{Invalid, invalid};
pub use crate::config::HostedTools;

/// The response header naming the provider-run tools a request declared and Airlock
/// left out (comma-separated tool types).
pub const DROPPED_TOOLS_HEADER: &str = "x-airlock-dropped-tools";

/// The provider-run tools left out of one request, by type, each once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DroppedTools(Vec<&'static str>);

impl DroppedTools {
    /// Handles the provider-run tool of type `kind` declared at `at` (`tools[3]`), run by
    /// `provider` (`OpenAI`): noted when dropping, a precise error when refusing. `kind`
    /// comes from a fixed list of known types, so it is always a valid header value.
    pub fn hosted(
        &mut self,
        policy: HostedTools,
        at: &str,
        kind: &'static str,
        provider: &str,
    ) -> Result<(), Invalid> {
        match policy {
            HostedTools::Drop => {
                if !self.0.contains(&kind) {
                    self.0.push(kind);
                }
                Ok(())
            }
            HostedTools::Refuse => Err(invalid(format!(
                "{at}: `{kind}` is a built-in tool of {provider}'s platform, which the models behind Airlock cannot run; remove it from the request (this gateway refuses such tools: `tools.hosted: refuse`)"
            ))),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The dropped tool types, in the order first seen.
    pub fn kinds(&self) -> &[&'static str] {
        &self.0
    }

    /// The header's value: the types, comma-separated.
    pub fn header_value(&self) -> String {
        self.0.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_tools_are_named_once_and_refused_when_configured() {
        let mut dropped = DroppedTools::default();
        for kind in ["web_search", "file_search", "web_search"] {
            dropped
                .hosted(HostedTools::Drop, "tools[0]", kind, "OpenAI")
                .unwrap();
        }
        assert_eq!(dropped.header_value(), "web_search, file_search");
        let refused = dropped
            .hosted(HostedTools::Refuse, "tools[4]", "web_search", "OpenAI")
            .unwrap_err()
            .0;
        assert!(
            refused.starts_with("tools[4]: `web_search` is a built-in tool of OpenAI's platform"),
            "{refused}"
        );
        assert!(refused.contains("tools.hosted: refuse"), "{refused}");
    }
}
