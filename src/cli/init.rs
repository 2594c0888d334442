//! `airlock init`: a new instance directory with a commented, working configuration and
//! freshly generated key material.

use crate::config::LoadedConfig;
use crate::store::instance_key::InstanceKey;
use crate::tenancy::STATE_MIGRATIONS;
use anyhow::Context as _;
use std::path::{Path, PathBuf};

/// The commented configuration template.
pub const CONFIG_TEMPLATE: &str = include_str!("../../assets/airlock.yaml.template");

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Directory for airlock.yaml, the databases and the key material.
    #[arg(long)]
    pub dir: PathBuf,
    /// Base URL of the OpenAI-compatible model server (vLLM).
    #[arg(long, default_value = "http://127.0.0.1:8000/v1")]
    pub upstream_url: String,
    /// Logical model name clients will use.
    #[arg(long, default_value = "default")]
    pub model: String,
    /// Model name the upstream serves.
    #[arg(long, default_value = "meta-llama/Llama-3.1-8B-Instruct")]
    pub upstream_model: String,
}

/// Fills the template.
pub fn render_config(upstream_url: &str, model: &str, upstream_model: &str) -> String {
    CONFIG_TEMPLATE
        .replace("{{UPSTREAM_URL}}", upstream_url)
        .replace("{{MODEL}}", &yaml_key(model))
        .replace("{{UPSTREAM_MODEL}}", &yaml_key(upstream_model))
}

/// Quotes a YAML scalar when it needs it.
fn yaml_key(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

pub fn run(args: &InitArgs) -> anyhow::Result<()> {
    let config_path = args.dir.join("airlock.yaml");
    anyhow::ensure!(
        !config_path.exists(),
        "{} already exists; refusing to overwrite an instance",
        config_path.display()
    );
    let text = render_config(&args.upstream_url, &args.model, &args.upstream_model);
    create_instance(&config_path, &text)?;
    println!("Created {}", config_path.display());
    println!(
        "Key material in {} (0600). Back it up offline.",
        args.dir.join("instance.key").display()
    );
    println!(
        "Next: airlock keys create --config {} --tenant NAME",
        config_path.display()
    );
    println!("      airlock serve --config {}", config_path.display());
    Ok(())
}

/// Writes a configuration file, validates it, and prepares key material and databases.
/// Existing key material and databases are kept.
pub fn create_instance(config_path: &Path, text: &str) -> anyhow::Result<LoadedConfig> {
    let dir = config_path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    restrict_dir(dir);
    let loaded = LoadedConfig::from_text(config_path, text)?;
    std::fs::write(config_path, text)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    std::fs::create_dir_all(&loaded.data_dir)
        .with_context(|| format!("cannot create {}", loaded.data_dir.display()))?;
    let key_path = loaded.key_file_path();
    if !key_path.exists() {
        InstanceKey::generate()?.write_new(&key_path)?;
    }
    crate::store::open(&loaded.state_db_path(), STATE_MIGRATIONS)?;
    Ok(loaded)
}

fn restrict_dir(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_renders_to_a_valid_config() {
        let text = render_config("http://127.0.0.1:8000/v1", "llama 3", "meta/llama");
        let loaded = LoadedConfig::from_text(Path::new("/x/airlock.yaml"), &text).unwrap();
        assert_eq!(
            loaded.config.models["llama 3"].value.model.as_deref(),
            Some("meta/llama")
        );
    }
}
