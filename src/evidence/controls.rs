//! The control matrix: Airlock's controls mapped to a framework's clauses, read from the
//! embedded `assets/evidence/controls.json`.

use super::{EvidenceError, Framework};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const MATRIX: &str = include_str!("../../assets/evidence/controls.json");

#[derive(Debug, Deserialize)]
struct Matrix {
    note: String,
    controls: BTreeMap<String, Control>,
    frameworks: BTreeMap<String, FrameworkClauses>,
}

#[derive(Debug, Clone, Deserialize)]
struct Control {
    title: String,
    description: String,
    implementation: String,
    status: String,
    #[serde(default)]
    gaps: Option<String>,
    evidence: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct FrameworkClauses {
    name: String,
    clauses: Vec<Clause>,
}

#[derive(Debug, Deserialize)]
struct Clause {
    clause: String,
    title: String,
    controls: Vec<String>,
}

/// One row of the matrix in a package: a clause and one control supporting it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub clause: String,
    pub clause_title: String,
    pub control_id: String,
    pub control: String,
    pub description: String,
    pub implementation: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gaps: Option<String>,
    /// Files of the package that show the control at work.
    pub evidence: Vec<String>,
}

/// The matrix of one framework, as written to `controls.json`.
#[derive(Debug, Serialize)]
pub struct ControlMatrix {
    pub framework: Framework,
    pub framework_name: String,
    pub note: String,
    pub rows: Vec<Row>,
}

fn parse() -> Result<Matrix, EvidenceError> {
    serde_json::from_str(MATRIX)
        .map_err(|e| EvidenceError::Invalid(format!("the embedded control matrix: {e}")))
}

/// The rows for `framework`, in clause order.
pub fn matrix(framework: Framework) -> Result<ControlMatrix, EvidenceError> {
    let matrix = parse()?;
    let clauses = matrix.frameworks.get(framework.name()).ok_or_else(|| {
        EvidenceError::Invalid(format!(
            "the control matrix has no {} section",
            framework.name()
        ))
    })?;
    let mut rows = Vec::new();
    for clause in &clauses.clauses {
        for id in &clause.controls {
            let control = matrix.controls.get(id).ok_or_else(|| {
                EvidenceError::Invalid(format!(
                    "the control matrix names an unknown control {id} under {}",
                    clause.clause
                ))
            })?;
            rows.push(Row {
                clause: clause.clause.clone(),
                clause_title: clause.title.clone(),
                control_id: id.clone(),
                control: control.title.clone(),
                description: control.description.clone(),
                implementation: control.implementation.clone(),
                status: control.status.clone(),
                gaps: control.gaps.clone(),
                evidence: control.evidence.clone(),
            });
        }
    }
    Ok(ControlMatrix {
        framework,
        framework_name: clauses.name.clone(),
        note: matrix.note,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_framework_maps_known_controls_to_files_in_the_package() {
        for framework in [Framework::Soc2, Framework::Hipaa, Framework::Gdpr] {
            let m = matrix(framework).unwrap();
            assert!(m.rows.len() >= 5, "{framework:?}");
            for row in &m.rows {
                assert!(!row.evidence.is_empty(), "{}", row.control_id);
                for file in &row.evidence {
                    assert!(
                        super::super::path::LISTED.contains(&file.as_str()),
                        "{} names {file}, which no package holds",
                        row.control_id
                    );
                }
                assert!(
                    ["implemented", "partial", "planned"].contains(&row.status.as_str()),
                    "{}",
                    row.control_id
                );
                assert_eq!(
                    row.status != "implemented",
                    row.gaps.is_some(),
                    "{}",
                    row.control_id
                );
            }
        }
        let soc2 = matrix(Framework::Soc2).unwrap();
        for clause in ["CC6.1", "CC6.2", "CC6.3", "CC7.2", "CC8.1"] {
            assert!(soc2.rows.iter().any(|r| r.clause == clause), "{clause}");
        }
        let gdpr = matrix(Framework::Gdpr).unwrap();
        assert!(gdpr.rows.iter().any(|r| r.clause == "EU AI Act Art. 12"));
    }
}
