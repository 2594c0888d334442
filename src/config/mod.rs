//! The `airlock.yaml` configuration file: schema, defaults, and validation with errors
//! that name the file, the line and the field.

mod metering;
mod pii;
mod schema;
mod security;
mod validate;

pub use metering::*;
pub use pii::*;
pub use schema::*;
pub use security::*;

use std::path::{Path, PathBuf};

/// A configuration problem, already rendered as `FILE:LINE:COL: field: what is wrong`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A loaded, validated configuration plus where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// The file the configuration was read from.
    pub path: PathBuf,
    /// Directory holding the databases and key material (absolute).
    pub data_dir: PathBuf,
}

impl LoadedConfig {
    /// Reads, parses and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "{}: cannot read configuration: {e}",
                path.display()
            ))
        })?;
        Self::from_text(path, &text)
    }

    /// Parses and validates configuration text that claims to come from `path`.
    pub fn from_text(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let config: Config = serde_saphyr::from_str(text).map_err(|e| {
            let (line, col, message) = yaml_error(&e);
            let field = usize::try_from(line)
                .ok()
                .and_then(|l| field_path_at(text, l))
                .map(|f| format!("{f}: "))
                .unwrap_or_default();
            ConfigError(format!("{}:{line}:{col}: {field}{message}", path.display()))
        })?;
        validate::validate(&config).map_err(|e| {
            ConfigError(format!(
                "{}:{}:{}: {}: {}",
                path.display(),
                e.line,
                e.column,
                e.field,
                e.message
            ))
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = std::path::absolute(&base).unwrap_or(base);
        let data_dir = match &config.data_dir {
            Some(dir) if dir.value.is_absolute() => dir.value.clone(),
            Some(dir) => base.join(&dir.value),
            None => base.clone(),
        };
        Ok(Self {
            config,
            path: path.to_path_buf(),
            data_dir,
        })
    }

    /// Resolves a path from the configuration relative to the configuration file.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            return path.to_path_buf();
        }
        let base = self.path.parent().unwrap_or(Path::new("."));
        base.join(path)
    }

    /// The SQLite database holding configuration state (tenants, keys, admin events).
    pub fn state_db_path(&self) -> PathBuf {
        self.data_dir.join("airlock.db")
    }

    /// The SQLite database holding the request log.
    pub fn request_log_db_path(&self) -> PathBuf {
        self.data_dir.join("requests.db")
    }

    /// The audit log (`audit.db`).
    pub fn audit_db_path(&self) -> PathBuf {
        self.data_dir.join("audit.db")
    }

    /// The audit search index (a view of `audit.db`, rebuildable).
    pub fn audit_index_dir(&self) -> PathBuf {
        self.data_dir.join("audit-index")
    }

    /// The audit witness file (`audit.witness_file`), resolved.
    pub fn audit_witness_path(&self) -> Option<PathBuf> {
        let path = self.config.audit.witness_file.as_deref()?;
        let path = self.resolve(path);
        Some(std::path::absolute(&path).unwrap_or(path))
    }

    /// The instance key material file.
    pub fn key_file_path(&self) -> PathBuf {
        self.data_dir.join("instance.key")
    }
}

/// Where a YAML error is (line, column; 0 when unknown) and what it says, without the
/// `error: line L column C: ` prefix serde-saphyr puts first (callers say that
/// themselves).
pub fn yaml_error(e: &serde_saphyr::Error) -> (u64, u64, String) {
    let (line, column) = e
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let rendered = e.to_string();
    let first = rendered.lines().next().unwrap_or("invalid YAML").trim();
    let message = first
        .strip_prefix("error: line ")
        .and_then(|rest| rest.split_once(": "))
        .map_or(first, |(_, m)| m);
    (line, column, message.to_string())
}

/// The dotted path of the mapping key on `line` (1-based), read from indentation, e.g.
/// `server.worker_threads`. Block-style YAML only; `None` when that line holds no key.
fn field_path_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let index = line.checked_sub(1)?;
    let (mut indent, key) = key_on(lines.get(index)?)?;
    let mut path = vec![key];
    for earlier in lines[..index].iter().rev() {
        if indent == 0 {
            break;
        }
        if let Some((i, k)) = key_on(earlier).filter(|(i, _)| *i < indent) {
            path.push(k);
            indent = i;
        }
    }
    path.reverse();
    Some(path.join("."))
}

/// The indentation and key of a `key: value` or `key:` line.
fn key_on(line: &str) -> Option<(usize, &str)> {
    let trimmed = line.trim_start();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    let indent = line.len() - trimmed.len();
    let item = trimmed.strip_prefix("- ").unwrap_or(trimmed);
    let (key, _) = item.split_once(':')?;
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    (!key.is_empty()).then_some((indent, key))
}

#[cfg(test)]
mod tests;
