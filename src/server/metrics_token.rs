//! The bearer token `GET /metrics` requires when `server.metrics_token_file` is set:
//! read once at start, kept only as its SHA-256, and compared by digest so the
//! comparison's timing says nothing about the token.

use http::{HeaderMap, header};
use std::path::Path;

/// Why the metrics token could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetricsTokenError {
    #[error("server.metrics_token_file {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("server.metrics_token_file {path}: the first line holds no token")]
    Empty { path: String },
}

/// The token's digest.
pub struct MetricsToken {
    digest: [u8; 32],
}

impl MetricsToken {
    /// Reads the token from the first line of `path`.
    pub fn read(path: &Path) -> Result<Self, MetricsTokenError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| MetricsTokenError::Unreadable {
                path: path.display().to_string(),
                source,
            })?;
        let token = text.lines().next().unwrap_or("").trim();
        if token.is_empty() {
            return Err(MetricsTokenError::Empty {
                path: path.display().to_string(),
            });
        }
        Ok(Self {
            digest: digest(token),
        })
    }

    /// Whether the request carries `Authorization: Bearer <the token>`.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .is_some_and(|(_, token)| digest(token.trim()) == self.digest)
    }
}

fn digest(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn only_the_token_as_a_bearer_is_admitted() {
        let dir =
            std::env::temp_dir().join(format!("airlock-metrics-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "s3cret-scraper\nignored\n").unwrap();
        let token = MetricsToken::read(&file).unwrap();
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
            token.admits(&headers)
        };
        assert!(with("Bearer s3cret-scraper"));
        assert!(with("bearer  s3cret-scraper "));
        assert!(!with("Bearer s3cret"));
        assert!(!with("Basic s3cret-scraper"));
        assert!(!token.admits(&HeaderMap::new()));
        std::fs::write(&file, "\n").unwrap();
        assert!(matches!(
            MetricsToken::read(&file),
            Err(MetricsTokenError::Empty { .. })
        ));
        assert!(matches!(
            MetricsToken::read(&dir.join("missing")),
            Err(MetricsTokenError::Unreadable { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
