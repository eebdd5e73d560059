//! Settings, layered; each source overrides the ones before it:
//! 1. built-in defaults;
//! 2. a TOML file (`--config FILE`, else `voxtur.toml` in the working directory if it exists);
//! 3. environment variables `VOXTUR__SECTION__KEY` (e.g. `VOXTUR__SERVER__PORT=9090`);
//! 4. `DATABASE_URL`, the conventional name, over `VOXTUR__DATABASE__URL`;
//! 5. command-line flags (`--database-url`, `serve --host/--port`).
//!
//! An unknown setting, in the file or the environment, is refused at start with its name and
//! the closest known one: a misspelt setting silently ignored is a setting not applied.

pub use crate::http::metrics::MetricsSettings;
pub use crate::outbound::WebhookSettings;
use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};
use std::path::Path;
pub use voxtur_core::jobs::worker::WorkerSettings;
pub use voxtur_graphql::GraphqlSettings;
pub use voxtur_store::db::DatabaseSettings;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub server: ServerSettings,
    pub graphql: GraphqlSettings,
    pub limits: LimitSettings,
    /// The job workers (`voxtur serve` runs them beside the API unless `--no-workers`;
    /// `voxtur worker` runs only them).
    pub jobs: WorkerSettings,
    /// Outbound webhooks.
    pub webhooks: WebhookSettings,
    /// `GET /metrics`.
    pub metrics: MetricsSettings,
    pub log: LogSettings,
}

/// Rate limits, per minute; 0 turns one off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    /// Form submissions per client address, shared by all servers on PostgreSQL.
    pub form_submissions_per_minute: u32,
    /// Failed authentications (API keys and write keys) per client address, shared by all
    /// servers on PostgreSQL; past it, every attempt from the address is refused for the rest
    /// of the minute.
    pub failed_auth_per_minute: u32,
    /// Tracking calls (`/v1/*`, a batch counting once) per write key; on PostgreSQL shared by
    /// all servers, which add their counts once a second.
    pub tracking_calls_per_minute: u32,
    /// GraphQL cost points an API key's bucket drains a second (on PostgreSQL shared by all
    /// servers); 0: no bucket. A request must fit at its requested cost and is charged its
    /// actual one (`extensions.cost`); past the capacity it is THROTTLED.
    pub query_cost_per_second: u64,
    /// The most points a key's bucket holds: the burst a key may spend at once.
    pub query_cost_capacity: u64,
    /// Milliseconds a GraphQL request may run before it is answered `TIMEOUT`.
    pub request_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Seconds in-flight requests get to finish after SIGTERM / SIGINT.
    pub shutdown_timeout_secs: u64,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Whether `voxtur serve` runs the job workers beside the API (`--no-workers`: false, for
    /// API servers scaled apart from `voxtur worker` processes).
    pub run_jobs: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
                statement_timeout: None,
            },
            server: ServerSettings {
                host: "127.0.0.1".into(),
                port: 8080,
                max_body_bytes: 1024 * 1024,
                shutdown_timeout_secs: 30,
                workers: 0,
                run_jobs: true,
            },
            graphql: GraphqlSettings {
                max_depth: 12,
                max_complexity: 20_000,
            },
            limits: LimitSettings {
                form_submissions_per_minute: 20,
                failed_auth_per_minute: 30,
                tracking_calls_per_minute: 60_000,
                query_cost_per_second: 200_000,
                query_cost_capacity: 400_000,
                request_timeout_ms: 30_000,
            },
            jobs: WorkerSettings::default(),
            webhooks: WebhookSettings::default(),
            metrics: MetricsSettings::default(),
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
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        figment = match file {
            Some(path) => figment.merge(Toml::file_exact(path)),
            None => figment.merge(Toml::file("voxtur.toml")),
        };
        figment = figment.merge(Env::prefixed("VOXTUR__").split("__"));
        if let Ok(url) = std::env::var("DATABASE_URL") {
            figment = figment.merge(Serialized::default("database.url", url));
        }
        figment.extract().map_err(ConfigError::from)
    }
}

/// Why the settings could not be read, for an operator: which setting, from which source.
#[derive(Debug)]
pub struct ConfigError(String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl From<figment::Error> for ConfigError {
    fn from(error: figment::Error) -> Self {
        let explained: Vec<String> = error.into_iter().map(|e| explain(&e)).collect();
        ConfigError(explained.join("; "))
    }
}

fn explain(error: &figment::Error) -> String {
    let figment::error::Kind::UnknownField(name, known) = &error.kind else {
        return error.to_string();
    };
    let section: Vec<&str> = error.path.iter().map(String::as_str).filter(|p| p != name).collect();
    let full = |field: &str| section.iter().copied().chain([field]).collect::<Vec<_>>().join(".");
    let source = error
        .metadata
        .as_ref()
        .map(|m| {
            format!(
                " (from {})",
                m.source.as_ref().map_or_else(|| m.name.to_string(), |s| s.to_string())
            )
        })
        .unwrap_or_default();
    let closest = known
        .iter()
        .min_by_key(|k| edit_distance(name, k))
        .filter(|k| edit_distance(name, k) <= name.len().max(2) / 2 + 1);
    match closest {
        Some(k) => format!("unknown setting `{}`{source}; did you mean `{}`?", full(name), full(k)),
        None => format!(
            "unknown setting `{}`{source}; known here: {}",
            full(name),
            known.join(", ")
        ),
    }
}

/// Levenshtein distance, for suggesting the setting meant (a handful of short names; written
/// here rather than adding a crate).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
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
    fn the_example_file_holds_the_defaults() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../voxtur.example.toml");
        let loaded = Settings::load(Some(Path::new(example))).unwrap();
        let defaults = Settings::default();
        assert_eq!(
            serde_json::to_value(&loaded).unwrap(),
            serde_json::to_value(&defaults).unwrap()
        );
    }

    #[test]
    fn a_misspelt_setting_is_refused_with_the_closest_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("voxtur.toml");
        std::fs::write(&path, "[server]\nprot = 1\n").unwrap();
        let error = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("unknown setting `server.prot`"), "{error}");
        assert!(error.contains("did you mean `server.port`?"), "{error}");
        std::fs::write(&path, "[databse]\nurl = \"x\"\n").unwrap();
        let error = Settings::load(Some(&path)).unwrap_err().to_string();
        assert!(error.contains("did you mean `database`?"), "{error}");
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
