//! The search index's schema: full text over redacted payloads, the keyed hashes of the
//! personal values taken out of them, and the record's fields as exact-match terms and
//! fast columns for filters, ranges and sorting.

use super::personal::Redacted;
use crate::audit::record::AuditRecord;
use tantivy::TantivyDocument;
use tantivy::schema::{FAST, Field, INDEXED, STORED, STRING, Schema, TEXT};

/// Handles of the index's fields.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub seq: Field,
    pub ts_ms: Field,
    pub kind: Field,
    pub tenant: Field,
    pub user: Field,
    pub key: Field,
    pub session: Field,
    pub endpoint: Field,
    pub model: Field,
    pub upstream: Field,
    pub decision: Field,
    pub action: Field,
    pub actor: Field,
    pub data_class: Field,
    pub payload_key: Field,
    pub status: Field,
    pub cost: Field,
    pub latency: Field,
    pub tokens: Field,
    /// 1 when the document holds payload text or value hashes, or text was withheld
    /// (retention finds what to strip by it).
    pub has_text: Field,
    pub text: Field,
    /// Keyed hashes of the personal values found in the payloads (never the values).
    pub values: Field,
    /// 1 when payload text was left out because the NER model could not look at it.
    pub withheld: Field,
}

/// The schema and its field handles.
pub fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let seq = b.add_u64_field("seq", INDEXED | FAST | STORED);
    let ts_ms = b.add_i64_field("ts_ms", INDEXED | FAST);
    let mut term = |name: &str| b.add_text_field(name, STRING);
    let kind = term("kind");
    let tenant = term("tenant");
    let user = term("user");
    let key = term("key");
    let session = term("session");
    let endpoint = term("endpoint");
    let model = term("model");
    let upstream = term("upstream");
    let decision = term("decision");
    let action = term("action");
    let actor = term("actor");
    let data_class = term("data_class");
    let payload_key = term("payload_key");
    let status = b.add_u64_field("status", INDEXED | FAST);
    let cost = b.add_f64_field("cost", INDEXED | FAST);
    let latency = b.add_f64_field("latency", INDEXED | FAST);
    let tokens = b.add_u64_field("tokens", INDEXED | FAST);
    let has_text = b.add_u64_field("has_text", INDEXED);
    let text = b.add_text_field("text", TEXT);
    let values = b.add_text_field("values", STRING);
    let withheld = b.add_u64_field("withheld", INDEXED);
    let fields = Fields {
        seq,
        ts_ms,
        kind,
        tenant,
        user,
        key,
        session,
        endpoint,
        model,
        upstream,
        decision,
        action,
        actor,
        data_class,
        payload_key,
        status,
        cost,
        latency,
        tokens,
        has_text,
        text,
        values,
        withheld,
    };
    (b.build(), fields)
}

/// The index document of a record, with the searchable text of its payloads (personal
/// values taken out) and their values' keyed hashes.
pub fn document(f: &Fields, record: &AuditRecord, payloads: &Redacted) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    doc.add_u64(f.seq, record.seq);
    doc.add_i64(f.ts_ms, record.ts_ms);
    doc.add_text(f.kind, &record.kind);
    let terms = [
        (f.tenant, &record.tenant_id),
        (f.user, &record.user_id),
        (f.key, &record.key_id),
        (f.session, &record.session_id),
        (f.endpoint, &record.endpoint),
        (f.model, &record.model),
        (f.upstream, &record.upstream),
        (f.decision, &record.decision),
        (f.action, &record.action),
        (f.actor, &record.actor),
        (f.payload_key, &record.payload_key),
    ];
    for (field, value) in terms {
        if let Some(value) = value {
            doc.add_text(field, value);
        }
    }
    for class in record.data_classes.keys() {
        doc.add_text(f.data_class, class);
    }
    if let Some(status) = record.status {
        doc.add_u64(f.status, u64::from(status));
    }
    doc.add_f64(f.cost, record.cost_usd.unwrap_or(0.0));
    doc.add_f64(f.latency, record.latency_ms.unwrap_or(0.0));
    doc.add_u64(
        f.tokens,
        record
            .prompt_tokens
            .unwrap_or(0)
            .saturating_add(record.completion_tokens.unwrap_or(0)),
    );
    let has_text = !payloads.text.is_empty() || !payloads.terms.is_empty() || payloads.withheld;
    doc.add_u64(f.has_text, u64::from(has_text));
    if !payloads.text.is_empty() {
        doc.add_text(f.text, &payloads.text);
    }
    for term in &payloads.terms {
        doc.add_text(f.values, term);
    }
    doc.add_u64(f.withheld, u64::from(payloads.withheld));
    doc
}
