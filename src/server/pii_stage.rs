//! The gateway's personal-data stage: scans a prompt's texts, records the classes found
//! (for policy and the audit record), refuses a prompt the model could not read in time
//! when it needed protecting (or marks it, as configured), rewrites it by the action plan
//! (configuration, then policy), and restores placeholders in the answer.

use super::context::RequestContext;
use super::error::ApiError;
use crate::api::openai::ForwardedRequest;
use crate::config::{OnNerUnavailable, PiiConfig};
use crate::pii::ner::NerError;
use crate::pii::scan::{ScanLimits, Scanner, Unread};
use crate::pii::{
    ActionPlan, Finding, MessageRole, PiiAction, RoleHandling, RolePlan, Session, SessionOwner,
    Vault, VaultWriter,
};
use crate::policy::eval::Classes;
use crate::providers::stream_restore::StreamRestore;
use crate::store::instance_key::InstanceKey;
use crate::telemetry::metrics::FindingLabels;
use crate::tenancy::Principal;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The response header saying what the model did not read of a prompt it let through.
pub const UNSCANNED_HEADER: &str = "x-airlock-pii-unscanned";

/// What the stage needs for every request: the finders, the vault and the defaults.
pub struct PiiEngine {
    pub scanner: Scanner,
    vault: Vault,
    plan: ActionPlan,
    /// Which messages' findings are rewritten, only detected, or not looked for.
    roles: RolePlan,
    mask_model_output: bool,
    on_ner_unavailable: OnNerUnavailable,
    /// How long one request may wait for the model.
    budget: Duration,
    /// Bytes of prompt text the model reads per request at most.
    max_request_bytes: usize,
}

impl PiiEngine {
    /// Starts the model (degraded to recognizers when it cannot load: said loudly) and
    /// opens the vault; `None` when `pii.enabled` is off.
    pub fn start(
        config: &PiiConfig,
        ner: Option<crate::pii::ner::NerSettings>,
        state_db: &Path,
        instance_key: &InstanceKey,
    ) -> anyhow::Result<Option<(Arc<Self>, VaultWriter)>> {
        if !config.enabled {
            return Ok(None);
        }
        let scanner = Scanner::start(ner.as_ref(), config.cache_entries);
        match &scanner.ner_status {
            crate::pii::scan::NerStatus::Ready(describe) => {
                tracing::info!(model = %describe, "NER model loaded")
            }
            crate::pii::scan::NerStatus::Degraded(why) => tracing::error!(
                "NER IS NOT RUNNING: {why}; personal data is found by the recognizers only \
                 and /readyz reports degraded"
            ),
            crate::pii::scan::NerStatus::Off => {
                tracing::info!("NER is off: personal data is found by the recognizers only")
            }
        }
        let (vault, writer) = Vault::open(state_db, instance_key, config.vault.vault_config())?;
        let engine = Self {
            scanner,
            vault,
            plan: config.actions.clone(),
            roles: config.roles.clone(),
            mask_model_output: config.mask_model_output,
            on_ner_unavailable: config.on_ner_unavailable,
            budget: Duration::from_millis(config.ner.request_budget_ms),
            max_request_bytes: config.ner.max_request_bytes,
        };
        Ok(Some((Arc::new(engine), writer)))
    }
}

impl PiiEngine {
    /// The tokenisation vault (for erasure).
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// Why the NER model is not running although configured, and whether requests are
    /// refused for it (else they continue with the recognizers alone).
    pub fn degraded(&self) -> Option<(&str, bool)> {
        match &self.scanner.ner_status {
            crate::pii::scan::NerStatus::Degraded(why) => {
                Some((why.as_str(), self.refuses_unread(&Default::default(), true)))
            }
            _ => None,
        }
    }

    /// Whether a prompt the model did not wholly read is refused, under the configured
    /// plan and what the policy `decided` (`redact` classes, `tokenise` classes): always
    /// with `refuse`, never with `continue`, and with `protect` when some of the unread
    /// text is in a message the plan rewrites (`rewritten`: text only detected by its
    /// role is forwarded as written anyway) and any class only the model finds gets an
    /// action other than `allow` (a policy acting on every class found counts: the
    /// model could not say what it would have found).
    fn refuses_unread(&self, decided: &(Classes, Classes), rewritten: bool) -> bool {
        match self.on_ner_unavailable {
            OnNerUnavailable::Refuse => true,
            OnNerUnavailable::Continue => false,
            OnNerUnavailable::Protect if !rewritten => false,
            OnNerUnavailable::Protect => {
                let named = |classes: &Classes, class: &str| match classes {
                    Classes::None => false,
                    Classes::All => true,
                    Classes::Some(list) => list.iter().any(|c| c == class),
                };
                self.scanner.model_classes().iter().any(|class| {
                    self.plan.action_for(class) != PiiAction::Allow
                        || named(&decided.0, class)
                        || named(&decided.1, class)
                })
            }
        }
    }
}

/// The answer to a prompt refused because the model did not read all of it: 413 when
/// it holds more than the model reads per request (sending it again will not help), else
/// 503 `pii_unavailable`.
fn unread_refusal(unread: &Unread) -> ApiError {
    let refusal = match &unread.why {
        NerError::TooMuchText { limit } => ApiError::pii_text_too_large(*limit),
        _ => ApiError::pii_unavailable(),
    };
    refusal.with_detail(format!("{}: {}", unread.describe(), unread.why))
}

/// The stage's part of one request.
#[derive(Default)]
pub struct PiiState {
    /// Findings per prompt text, in `texts_mut` order (none for texts not scanned).
    findings: Vec<Arc<[Finding]>>,
    /// Classes found in the prompt and how often, in messages of every role scanned: for
    /// policy and the audit record.
    pub found: BTreeMap<String, u64>,
    /// Classes found in messages whose role gets the plan (the others are forwarded as
    /// written).
    rewritable: BTreeSet<&'static str>,
    /// Whether some text the model did not read is in a message whose role gets the plan.
    unread_rewritable: bool,
    /// The session values were tokenised into (answers get them back).
    session: Option<Arc<Session>>,
    /// What the model did not read of the prompt, when it let it through all the same.
    unread: Option<Unread>,
}

impl PiiState {
    /// What the model did not read of a prompt let through: `x-airlock-pii-unscanned`'s
    /// value, also kept in the audit record and the request log.
    pub fn unscanned(&self) -> Option<String> {
        self.unread.as_ref().map(Unread::describe)
    }

    /// Says in the response what the model did not read, if anything.
    pub fn say_unscanned(&self, headers: &mut http::HeaderMap) {
        if let Some(value) = self
            .unscanned()
            .and_then(|v| http::HeaderValue::from_str(&v).ok())
        {
            headers.insert(UNSCANNED_HEADER, value);
        }
    }
}

/// Scans every text of the prompt (the model within the request's time budget and byte
/// limit) and counts the classes found. Refuses the request when the model did not read
/// all of it and the configured plan needs it to have (see [`PiiEngine::refuses_unread`]);
/// the policy's plan is checked again in [`transform`].
pub async fn inspect<T: ForwardedRequest>(
    ctx: &mut RequestContext,
    principal: &Principal,
    request: &mut T,
) -> Result<(), ApiError> {
    let Some(engine) = ctx.state().pii.clone() else {
        return Ok(());
    };
    let limits = ScanLimits {
        // A budget too long to add to the clock is no limit at all.
        deadline: tokio::time::Instant::now().checked_add(engine.budget),
        max_bytes: engine.max_request_bytes,
        all_or_nothing: engine.refuses_unread(&Default::default(), true),
    };
    let texts = request.texts_mut();
    let roles: Vec<MessageRole> = texts.iter().map(|(role, _)| *role).collect();
    let handling: Vec<RoleHandling> = roles
        .iter()
        .map(|role| engine.roles.handling(*role))
        .collect();
    let order = scan_order(&handling);
    let scanned: Vec<&str> = order.iter().map(|&i| texts[i].1.as_str()).collect();
    let scans = engine
        .scanner
        .scan_all(&principal.tenant_id, &scanned, &limits)
        .await;
    let unread = Unread::of(&scans, &engine.scanner);
    let mut by_text: Vec<Option<crate::pii::scan::Scan>> = handling.iter().map(|_| None).collect();
    for (i, scan) in order.into_iter().zip(scans) {
        by_text[i] = Some(scan);
    }
    let mut state = PiiState::default();
    for ((role, handling), scan) in roles.into_iter().zip(handling).zip(by_text) {
        let Some(scan) = scan else {
            state.findings.push(Arc::from([]));
            continue;
        };
        let metrics = &ctx.state().metrics.pii;
        if scan.cached {
            metrics.cache_hits.inc();
        }
        if !scan.findings.is_empty() {
            let labels = FindingLabels {
                role: role.as_str(),
                handling: handling.as_str(),
            };
            let count = u64::try_from(scan.findings.len()).unwrap_or(u64::MAX);
            metrics.findings.get_or_create(&labels).inc_by(count);
        }
        let applies = handling == RoleHandling::Apply;
        state.unread_rewritable |= applies && scan.ner_missing.is_some();
        for finding in scan.findings.iter() {
            *state.found.entry(finding.class.to_string()).or_default() += 1;
            if applies {
                state.rewritable.insert(finding.class);
            }
        }
        state.findings.push(scan.findings);
    }
    if let Some(unread) = &unread {
        ctx.state().metrics.pii.ner_missing.inc();
        if engine.refuses_unread(&Default::default(), state.unread_rewritable) {
            return Err(unread_refusal(unread));
        }
    }
    state.unread = unread;
    ctx.pii = state;
    Ok(())
}

/// The indices of the texts to scan, in the order the model reads them: the texts the
/// plan rewrites first (within the byte limit and the time budget, what must be
/// protected is read before what is only recorded), then those only detected; texts
/// whose role is skipped are not scanned.
fn scan_order(handling: &[RoleHandling]) -> Vec<usize> {
    let of = |wanted: RoleHandling| {
        handling
            .iter()
            .enumerate()
            .filter(move |(_, h)| **h == wanted)
            .map(|(i, _)| i)
    };
    of(RoleHandling::Apply)
        .chain(of(RoleHandling::Detect))
        .collect()
}

/// Rewrites the prompt's personal data by the plan: the configured actions, overridden
/// by what the policy decided (`redact` masks, `tokenise` tokenises, for their classes).
pub async fn transform<T: ForwardedRequest>(
    ctx: &mut RequestContext,
    principal: &Principal,
    request: &mut T,
) -> Result<(), ApiError> {
    let Some(engine) = ctx.state().pii.clone() else {
        return Ok(());
    };
    // The policy may act on classes the configuration allows: text the model did not
    // read may hold them unseen.
    if let Some(unread) = &ctx.pii.unread
        && engine.refuses_unread(&ctx.policy.pii_decision, ctx.pii.unread_rewritable)
    {
        return Err(unread_refusal(unread));
    }
    // Most prompts: nothing found and no session to restore from.
    if ctx.pii.found.is_empty() && ctx.session_id().is_none() {
        return Ok(());
    }
    let tenant = &principal.tenant_id;
    // A named session's earlier values come back in answers even when this prompt
    // holds none of its own; only to the key and person that named it.
    let named = match ctx.session_id() {
        Some(id) => {
            let owner = SessionOwner {
                key_id: principal.key_id.to_string(),
                user_id: ctx.user_id().unwrap_or_default().to_owned(),
            };
            let session = engine.vault.session(tenant, &owner, id).await;
            Some(session.map_err(vault_error)?)
        }
        None => None,
    };
    let plan = plan_for(&engine.plan, &ctx.policy.pii_decision, &ctx.pii.found);
    let acts = ctx
        .pii
        .rewritable
        .iter()
        .any(|class| plan.action_for(class) != PiiAction::Allow);
    let session = match (acts, named) {
        (true, named) => named.unwrap_or_else(|| engine.vault.ephemeral(tenant)),
        (false, Some(named)) => named,
        (false, None) => return Ok(()),
    };
    if acts {
        let findings = std::mem::take(&mut ctx.pii.findings);
        for ((role, text), findings) in request.texts_mut().into_iter().zip(&findings) {
            if !findings.is_empty() && engine.roles.handling(role) == RoleHandling::Apply {
                *text = crate::pii::apply(text, findings, &plan, &session).text;
            }
        }
        engine.vault.commit(&session).await.map_err(vault_error)?;
    }
    if !session.is_empty() {
        ctx.pii.session = Some(session);
    }
    Ok(())
}

/// The plan for this request: the configured one, with the policy's classes on top
/// (`All` meaning every class found).
fn plan_for(
    configured: &ActionPlan,
    decided: &(Classes, Classes),
    found: &BTreeMap<String, u64>,
) -> ActionPlan {
    let mut plan = configured.clone();
    for (classes, action) in [
        (&decided.0, PiiAction::Mask),
        (&decided.1, PiiAction::Tokenise),
    ] {
        let named: Vec<&String> = match classes {
            Classes::None => continue,
            Classes::All => found.keys().collect(),
            Classes::Some(list) => list.iter().collect(),
        };
        for name in named {
            if let Some(class) = crate::pii::classes::DATA_CLASSES
                .iter()
                .find(|c| **c == name.as_str())
            {
                plan.set(class, action);
            }
        }
    }
    plan
}

fn vault_error(e: crate::pii::VaultError) -> ApiError {
    match e {
        crate::pii::VaultError::BadSessionId => ApiError::invalid_request(
            "the x-session-id header must be 1 to 128 printable ASCII characters",
        ),
        other => {
            tracing::error!("the tokenisation vault failed: {other}");
            ApiError::pii_unavailable()
        }
    }
}

/// The session answers of this request are restored from, and whether the model's own
/// personal data is masked in them; `None` when answers pass as they are.
fn answer_rewriting(ctx: &RequestContext) -> Option<(Arc<Session>, bool)> {
    let engine = ctx.state().pii.as_ref()?;
    let mask = engine.mask_model_output;
    match &ctx.pii.session {
        Some(session) => Some((Arc::clone(session), mask)),
        None if mask => Some((engine.vault.ephemeral(""), mask)),
        None => None,
    }
}

/// Whether answers of this request need rewriting (placeholders to restore, or the
/// model's own personal data to mask): [`answer_rewriting`]'s rule, without making the
/// session it would hand out.
pub fn rewrites_answers(ctx: &RequestContext) -> bool {
    ctx.state()
        .pii
        .as_ref()
        .is_some_and(|engine| ctx.pii.session.is_some() || engine.mask_model_output)
}

/// A whole answer (OpenAI shape) with placeholders restored and, if configured, the
/// model's own personal data masked. Bodies that are not JSON pass as they are.
pub fn rewrite_answer(ctx: &RequestContext, body: bytes::Bytes) -> bytes::Bytes {
    let Some((session, mask)) = answer_rewriting(ctx) else {
        return body;
    };
    let Ok(mut answer) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return body;
    };
    for text in crate::policy::facts::response_texts_mut(&mut answer) {
        let restored = crate::pii::restore(text, &session);
        *text = if mask {
            crate::pii::output_scan::mask_whole_answer(&restored, &session)
        } else {
            restored
        };
    }
    serde_json::to_vec(&answer).map_or(body, bytes::Bytes::from)
}

/// The rewriter of this request's streamed answer (see [`answer_rewriting`]).
pub fn stream_rewriter(ctx: &RequestContext) -> Option<StreamRestore> {
    answer_rewriting(ctx).map(|(session, mask)| StreamRestore::new(session, mask))
}

#[cfg(test)]
mod tests {
    use super::*;
    use RoleHandling::{Apply, Detect, Skip};

    #[test]
    fn the_model_reads_rewritten_texts_first_and_skipped_ones_never() {
        // system, developer, user, assistant, tool, user.
        assert_eq!(
            scan_order(&[Detect, Detect, Apply, Skip, Apply, Apply]),
            [2, 4, 5, 0, 1]
        );
        assert_eq!(scan_order(&[Skip, Skip]), Vec::<usize>::new());
        assert_eq!(scan_order(&[]), Vec::<usize>::new());
    }

    #[test]
    fn policy_classes_override_the_configured_plan() {
        let found = BTreeMap::from([("PERSON".to_string(), 1), ("IBAN".to_string(), 2)]);
        let decided = (
            Classes::Some(vec!["IBAN".into(), "NOT_A_CLASS".into()]),
            Classes::All,
        );
        let plan = plan_for(&ActionPlan::new(PiiAction::Allow), &decided, &found);
        // Tokenise (every class found) is applied after redact, so it wins for both.
        assert_eq!(plan.action_for("PERSON"), PiiAction::Tokenise);
        assert_eq!(plan.action_for("IBAN"), PiiAction::Tokenise);
        assert_eq!(plan.action_for("EMAIL_ADDRESS"), PiiAction::Allow);
        let plan = plan_for(
            &ActionPlan::new(PiiAction::Allow),
            &(Classes::Some(vec!["IBAN".into()]), Classes::None),
            &found,
        );
        assert_eq!(plan.action_for("IBAN"), PiiAction::Mask);
        assert_eq!(plan.action_for("PERSON"), PiiAction::Allow);
    }
}
