//! A list of things checked offline, each passed or failed, with warnings about what
//! could not be checked: what `airlock evidence verify` and `airlock audit
//! verify-record` report. Also how both pick the public key to trust.

/// One thing checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub ok: bool,
    pub what: String,
}

/// What checking found.
#[derive(Debug, Default, serde::Serialize)]
pub struct CheckReport {
    pub checks: Vec<Check>,
    /// Not failures, but limits of what could be checked.
    pub warnings: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }

    pub(crate) fn pass(&mut self, what: impl Into<String>) {
        self.push(true, what);
    }

    pub(crate) fn fail(&mut self, what: impl Into<String>) {
        self.push(false, what);
    }

    fn push(&mut self, ok: bool, what: impl Into<String>) {
        self.checks.push(Check {
            ok,
            what: what.into(),
        });
    }
}

/// The public key (hex) to check signatures with: the one given with `--public-key`
/// (obtained apart from the `file`, so authoritative), compared with the one the file
/// carries; without one given, the file's own key, with a warning that this proves the
/// file self-consistent, not who made it.
pub(crate) fn trusted_key_hex(
    embedded: &str,
    given: Option<&str>,
    file: &str,
    report: &mut CheckReport,
) -> String {
    match given {
        Some(given) => {
            let given = given.trim().to_ascii_lowercase();
            if given == embedded.trim().to_ascii_lowercase() {
                report.pass(format!(
                    "the {file}'s public key is the one given with --public-key"
                ));
            } else {
                report.fail(format!(
                    "the {file}'s public key ({embedded}) is not the one given with --public-key ({given})"
                ));
            }
            given
        }
        None => {
            report.warnings.push(format!(
                "no --public-key given: the {file} was checked only against the key it \
                 carries, which proves it is self-consistent, not who made it. Compare \
                 that key with one obtained independently (`airlock audit public-key` on \
                 the instance)."
            ));
            embedded.trim().to_ascii_lowercase()
        }
    }
}
