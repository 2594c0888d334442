//! The gateway's personal-data stage: scans a prompt's texts, records the classes found
//! (for policy and the audit record), rewrites them by the action plan (configuration,
//! then policy), and restores placeholders in the answer.

use super::context::RequestContext;
use super::error::ApiError;
use crate::api::openai::ForwardedRequest;
use crate::config::{OnNerUnavailable, PiiConfig};
use crate::pii::scan::Scanner;
use crate::pii::{ActionPlan, Finding, PiiAction, Session, Vault, VaultWriter};
use crate::policy::eval::Classes;
use crate::providers::stream_restore::StreamRestore;
use crate::store::instance_key::InstanceKey;
use crate::tenancy::Principal;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// What the stage needs for every request: the finders, the vault and the defaults.
pub struct PiiEngine {
    pub scanner: Scanner,
    vault: Vault,
    plan: ActionPlan,
    mask_model_output: bool,
    on_ner_unavailable: OnNerUnavailable,
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
            mask_model_output: config.mask_model_output,
            on_ner_unavailable: config.on_ner_unavailable,
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
            crate::pii::scan::NerStatus::Degraded(why) => Some((
                why.as_str(),
                self.on_ner_unavailable == OnNerUnavailable::Refuse,
            )),
            _ => None,
        }
    }
}

/// The stage's part of one request.
#[derive(Default)]
pub struct PiiState {
    /// Findings per prompt text, in `texts_mut` order.
    findings: Vec<Arc<[Finding]>>,
    /// Classes found in the prompt and how often: for policy and the audit record.
    pub found: BTreeMap<String, u64>,
    /// The session values were tokenised into (answers get them back).
    session: Option<Arc<Session>>,
}

/// Scans every text of the prompt and counts the classes found. Refuses the request when
/// the model could not look and the configuration says so.
pub async fn inspect<T: ForwardedRequest>(
    ctx: &mut RequestContext,
    principal: &Principal,
    request: &mut T,
) -> Result<(), ApiError> {
    let Some(engine) = ctx.state().pii.clone() else {
        return Ok(());
    };
    let mut found = BTreeMap::<String, u64>::new();
    let mut findings = Vec::new();
    for text in request.texts_mut() {
        let scan = engine.scanner.scan(&principal.tenant_id, text).await;
        if let Some(missing) = &scan.ner_missing {
            ctx.state().metrics.pii.ner_missing.inc();
            if engine.on_ner_unavailable == OnNerUnavailable::Refuse {
                tracing::warn!(request_id = %ctx.record.id, "refused: {missing}");
                return Err(ApiError::pii_unavailable());
            }
        }
        if scan.cached {
            ctx.state().metrics.pii.cache_hits.inc();
        }
        for finding in scan.findings.iter() {
            *found.entry(finding.class.to_string()).or_default() += 1;
        }
        findings.push(scan.findings);
    }
    ctx.pii.findings = findings;
    ctx.pii.found = found;
    Ok(())
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
    // Most prompts: nothing found and no session to restore from.
    if ctx.pii.found.is_empty() && ctx.session_id().is_none() {
        return Ok(());
    }
    let tenant = &principal.tenant_id;
    // A named session's earlier values come back in answers even when this prompt
    // holds none of its own.
    let named = match ctx.session_id() {
        Some(id) => Some(
            engine
                .vault
                .session(tenant, id)
                .await
                .map_err(vault_error)?,
        ),
        None => None,
    };
    let plan = plan_for(&engine.plan, &ctx.policy.pii_decision, &ctx.pii.found);
    let acts = ctx
        .pii
        .found
        .keys()
        .any(|class| plan.action_for(class) != PiiAction::Allow);
    let session = match (acts, named) {
        (true, named) => named.unwrap_or_else(|| engine.vault.ephemeral(tenant)),
        (false, Some(named)) => named,
        (false, None) => return Ok(()),
    };
    if acts {
        let findings = std::mem::take(&mut ctx.pii.findings);
        for (text, findings) in request.texts_mut().into_iter().zip(&findings) {
            if !findings.is_empty() {
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
            let findings = crate::pii::resolve_overlaps(crate::pii::recognize(&restored));
            crate::pii::mask_model_data(&restored, &findings, &session).text
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
