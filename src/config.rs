//! Settings: built-in defaults (`config/default.toml`, compiled in), then an optional file, then
//! `AISLE__SECTION__KEY` environment variables, then `DATABASE_URL`. Read once at start-up and
//! validated there; nothing reads the environment after boot.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

/// Everything aisle can be configured with.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub catalog: CatalogSettings,
    pub search: SearchSettings,
    pub embed: EmbedSettings,
    pub ranking: crate::ranking::RankingSettings,
    pub graph: GraphSettings,
    pub auth: AuthSettings,
    pub llm: crate::llm::LlmSettings,
    pub intent: crate::intent::IntentSettings,
    pub chat: crate::chat::ChatSettings,
    pub support: crate::support::SupportSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub max_body_bytes: usize,
    pub request_timeout_secs: u64,
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// A Postgres URL; empty means "start the embedded cluster".
    pub url: SecretString,
    pub state_dir: PathBuf,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CatalogSettings {
    pub seed_demo: bool,
    pub demo_dir: PathBuf,
    pub import_batch_rows: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SearchSettings {
    pub default_limit: usize,
    pub graph_weight: f32,
    pub max_limit: usize,
    pub refresh_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EmbedSettings {
    /// Folder with the sentence-embedding model (config.json, tokenizer.json, model.safetensors).
    pub model_dir: PathBuf,
    /// Without the model, dense retrieval is off (with a warning) unless this is set.
    pub required: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GraphSettings {
    pub dir: PathBuf,
    pub seed: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub session_ttl_secs: u64,
    pub cookie_secure: bool,
}

/// A setting that failed to load or validate.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Loads the defaults, then `file` (when given), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(Env::prefixed("AISLE__").split("__"));
        if let Ok(url) = std::env::var("DATABASE_URL")
            && !url.trim().is_empty()
        {
            figment = figment.merge(("database.url", url));
        }
        let settings: Settings = figment.extract().map_err(Box::new)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.server.max_body_bytes < 1024 {
            return bad("server.max_body_bytes must be at least 1024");
        }
        if self.server.request_timeout_secs == 0 {
            return bad("server.request_timeout_secs must be positive");
        }
        if self.database.max_connections == 0 {
            return bad("database.max_connections must be positive");
        }
        if self.catalog.import_batch_rows == 0 || self.catalog.import_batch_rows > 10_000 {
            return bad("catalog.import_batch_rows must be between 1 and 10000");
        }
        if !(0.0..=10.0).contains(&self.search.graph_weight) {
            return bad("search.graph_weight must be between 0 and 10");
        }
        if self.search.default_limit == 0 || self.search.default_limit > self.search.max_limit {
            return bad("search.default_limit must be between 1 and search.max_limit");
        }
        if self.llm.max_concurrent == 0 {
            return bad("llm.max_concurrent must be positive");
        }
        if !(0.0..=1.0).contains(&self.intent.threshold) {
            return bad("intent.threshold must be between 0 and 1");
        }
        if !(0.05..=0.95).contains(&self.llm.kv_memory_fraction) {
            return bad("llm.kv_memory_fraction must be between 0.05 and 0.95");
        }
        if self.chat.max_message_chars == 0 || self.chat.cards == 0 {
            return bad("chat.max_message_chars and chat.cards must be positive");
        }
        if self.chat.per_session_per_minute == 0 || self.chat.per_ip_per_minute == 0 {
            return bad("chat.per_session_per_minute and chat.per_ip_per_minute must be positive");
        }
        let url = self.database.url.expose_secret();
        if !url.is_empty() && !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            return bad(
                "database.url (or DATABASE_URL) must start with postgres:// or postgresql://",
            );
        }
        Ok(())
    }

    /// The configured server URL, or `None` when the embedded cluster should be used.
    pub fn database_url(&self) -> Option<&str> {
        let url = self.database.url.expose_secret();
        (!url.is_empty()).then_some(url)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.server.request_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_defaults_load_and_validate() {
        let s: Settings = Figment::from(Toml::string(DEFAULTS)).extract().unwrap();
        s.validate().unwrap();
        assert_eq!(s.search.default_limit, 20);
        assert!(s.database_url().is_none());
    }

    #[test]
    fn a_non_postgres_url_is_rejected_with_the_key_named() {
        let mut s: Settings = Figment::from(Toml::string(DEFAULTS)).extract().unwrap();
        s.database.url = SecretString::from("mysql://x");
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL"), "{err}");
    }
}
