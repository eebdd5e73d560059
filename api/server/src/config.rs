//! Settings, layered: built-in defaults, then an optional TOML file, then environment variables
//! (`VOXTUR__SECTION__KEY`, plus the conventional `DATABASE_URL`), then command-line flags.

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};
use std::path::Path;
pub use voxtur_graphql::GraphqlSettings;
pub use voxtur_store::db::DatabaseSettings;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub server: ServerSettings,
    pub graphql: GraphqlSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Seconds in-flight requests get to finish after SIGTERM / SIGINT.
    pub shutdown_timeout_secs: u64,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogSettings {
    /// `pretty` for people, `json` for log collectors.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `voxtur=debug,sqlx=warn`.
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database: DatabaseSettings {
                url: "sqlite://voxtur.db?mode=rwc".into(),
                schema: None,
                max_connections: 20,
            },
            server: ServerSettings {
                host: "127.0.0.1".into(),
                port: 8080,
                max_body_bytes: 1024 * 1024,
                shutdown_timeout_secs: 30,
                workers: 0,
            },
            graphql: GraphqlSettings {
                max_depth: 12,
                max_complexity: 20_000,
            },
            log: LogSettings {
                format: LogFormat::Pretty,
                filter: "info,sqlx=warn,sea_orm=warn".into(),
            },
        }
    }
}

impl Settings {
    /// Loads the layered settings. `file` is optional; when absent, `voxtur.toml` in the working
    /// directory is read if it exists.
    pub fn load(file: Option<&Path>) -> Result<Settings, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        figment = match file {
            Some(path) => figment.merge(Toml::file_exact(path)),
            None => figment.merge(Toml::file("voxtur.toml")),
        };
        figment = figment.merge(Env::prefixed("VOXTUR__").split("__"));
        if let Ok(url) = std::env::var("DATABASE_URL") {
            figment = figment.merge(Serialized::default("database.url", url));
        }
        figment.extract().map_err(Box::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_toml_file_overrides_defaults_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("voxtur.toml");
        std::fs::write(&path, "[server]\nport = 9191\n[log]\nformat = \"json\"\n").unwrap();
        let settings = Settings::load(Some(&path)).unwrap();
        assert_eq!(settings.server.port, 9191);
        assert_eq!(settings.log.format, LogFormat::Json);
        assert_eq!(
            settings.server.max_body_bytes,
            Settings::default().server.max_body_bytes
        );
    }

    #[test]
    fn a_bad_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("voxtur.toml");
        std::fs::write(&path, "[server]\nport = \"eighty\"\n").unwrap();
        let error = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("port"), "{error}");
        assert!(Settings::load(Some(&dir.path().join("missing.toml"))).is_err());
    }
}
