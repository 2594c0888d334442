//! Aggregates over the window's records: PII statistics (data classes found, per class
//! and per tenant; counts only) and the admin actions recorded in the audit log.

use super::extract::{Extract, StoredRecord};
use crate::audit::record::{AuditRecord, kind};
use serde::Serialize;
use std::collections::BTreeMap;

/// `pii/statistics.json`.
#[derive(Debug, Default, Serialize)]
pub struct PiiStatistics {
    pub note: &'static str,
    pub records_in_window: u64,
    pub records_with_findings: u64,
    /// Data class → findings.
    pub by_class: BTreeMap<String, u64>,
    /// Tenant id (`-` for none) → data class → findings.
    pub by_tenant: BTreeMap<String, BTreeMap<String, u64>>,
    /// Records whose body did not parse (the verification report says more).
    pub unreadable_records: u64,
}

/// `access/admin_actions.json`.
#[derive(Debug, Serialize)]
pub struct AdminActions {
    pub note: &'static str,
    pub records: Vec<AuditRecord>,
}

fn in_window(extract: &Extract) -> impl Iterator<Item = Result<AuditRecord, &StoredRecord>> {
    let (from, to) = (extract.info.from_ms, extract.info.to_ms);
    extract.records.iter().filter_map(move |stored| {
        match serde_json::from_str::<AuditRecord>(&stored.body) {
            Ok(record) if record.ts_ms < from || record.ts_ms > to => None,
            Ok(record) => Some(Ok(record)),
            Err(_) => Some(Err(stored)),
        }
    })
}

pub fn pii_statistics(extract: &Extract) -> PiiStatistics {
    let mut stats = PiiStatistics {
        note: "Data classes found in requests and responses of the window, as counted by the \
               PII engine; values are never recorded. The PII engine is not built yet, so \
               every count is zero until it lands.",
        ..PiiStatistics::default()
    };
    for record in in_window(extract) {
        let Ok(record) = record else {
            stats.unreadable_records += 1;
            continue;
        };
        stats.records_in_window += 1;
        if record.data_classes.values().any(|n| *n > 0) {
            stats.records_with_findings += 1;
        }
        let tenant = record.tenant_id.clone().unwrap_or_else(|| "-".into());
        for (class, count) in &record.data_classes {
            *stats.by_class.entry(class.clone()).or_default() += count;
            *stats
                .by_tenant
                .entry(tenant.clone())
                .or_default()
                .entry(class.clone())
                .or_default() += count;
        }
    }
    stats
}

pub fn admin_actions(extract: &Extract) -> AdminActions {
    AdminActions {
        note: "Audit records of kind admin.action in the window (also in audit/records.jsonl, \
               where the chain and checkpoints cover them).",
        records: in_window(extract)
            .filter_map(Result::ok)
            .filter(|r| r.kind == kind::ADMIN_ACTION)
            .collect(),
    }
}
