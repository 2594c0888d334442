//! The route table: which upstream, and which upstream model, serves a logical model name.

use crate::config::LoadedConfig;
use crate::providers::openai_compat::Upstream;
use std::collections::HashMap;
use std::sync::Arc;

/// Where one logical model goes.
#[derive(Debug, Clone)]
pub struct Route {
    pub model: Arc<str>,
    pub upstream: Arc<Upstream>,
    pub upstream_model: Arc<str>,
}

/// All routes, by logical model name.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: HashMap<String, Route>,
    /// Logical names, sorted, for `/v1/models`.
    names: Vec<String>,
}

impl RouteTable {
    /// Builds clients for every upstream (one connection pool per worker thread) and
    /// the routes that use them.
    pub fn from_config(loaded: &LoadedConfig, workers: usize) -> Result<Self, String> {
        let mut upstreams = HashMap::new();
        for (name, cfg) in &loaded.config.upstreams {
            upstreams.insert(
                name.clone(),
                Arc::new(Upstream::new(name, &cfg.value, loaded, workers)?),
            );
        }
        let mut routes = HashMap::new();
        for (model, route) in &loaded.config.models {
            let upstream = upstreams.get(&route.value.upstream).ok_or_else(|| {
                format!(
                    "model `{model}`: unknown upstream `{}`",
                    route.value.upstream
                )
            })?;
            routes.insert(
                model.clone(),
                Route {
                    model: model.as_str().into(),
                    upstream: upstream.clone(),
                    upstream_model: route.value.model.as_deref().unwrap_or(model).into(),
                },
            );
        }
        let mut names: Vec<String> = routes.keys().cloned().collect();
        names.sort();
        Ok(Self { routes, names })
    }

    pub fn get(&self, model: &str) -> Option<&Route> {
        self.routes.get(model)
    }

    /// Logical model names, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }
}
