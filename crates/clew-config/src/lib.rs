//! One configuration tree for `clew serve`, layered: built-in defaults, then the TOML file,
//! then `CLEW_*` environment variables, then command-line flags.
//!
//! The environment is passed in as a map, never read from the process here, and nothing is
//! global: the composition root hands each component the part it needs. The doc comments on
//! the fields are the reference for users (see `clew.example.toml`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("environment variable {name}={value:?}: {reason}")]
    Env { name: String, value: String, reason: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Everything `clew serve` can be told.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded engine keeps its WAL and segments (`CLEW_DATA_DIR`, `--data-dir`).
    pub data_dir: PathBuf,
    pub listen: ListenConfig,
    pub ingest: IngestConfig,
    pub storage: StorageConfig,
    /// The ClickHouse backend (`[clickhouse]`), used when `storage.backend = "clickhouse"`.
    pub clickhouse: ClickHouseConfig,
    pub rollups: RollupConfig,
    pub auth: AuthConfig,
    pub tenancy: TenancyConfig,
    /// What happens to spans before they are stored (`[pipeline]`).
    pub pipeline: clew_pipeline::PipelineSettings,
}

/// Whether requests must authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Single-user mode: requests without credentials act as the local owner of everything,
    /// in the default namespace and project. Listeners must stay on loopback.
    Off,
    /// Every request needs an access token or a signed-in session.
    Required,
}

impl std::str::FromStr for AuthMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "off" => Ok(Self::Off),
            "required" => Ok(Self::Required),
            other => Err(format!("unknown auth mode {other:?}: use off or required")),
        }
    }
}

/// Authentication (`[auth]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `off` (default) or `required` (`CLEW_AUTH`, `--auth`).
    pub mode: AuthMode,
    /// How long a browser sign-in lasts.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Mark session cookies `Secure` even when no TLS proxy sends `X-Forwarded-Proto: https`.
    pub secure_cookies: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { mode: AuthMode::Off, session_ttl: Duration::from_secs(30 * 86_400), secure_cookies: false }
    }
}

/// Where spans are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageBackend {
    /// The embedded engine, in the data directory.
    Local,
    /// ClickHouse (`[clickhouse]`): nodes keep no spans of their own.
    Clickhouse,
}

/// Where users, namespaces, projects, tokens and usage are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataBackend {
    Sqlite,
    Postgres,
}

/// Where the ingest rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitsBackend {
    /// In this process: each node limits on its own.
    Local,
    /// In Redis: every node shares each namespace's window.
    Redis,
}

fn parse_choice<T: serde::de::DeserializeOwned>(name: &str, value: &str, choices: &str) -> Result<T> {
    T::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(value))
        .map_err(|_| ConfigError::Env { name: name.into(), value: value.into(), reason: format!("use {choices}") })
}

/// A password: read from the environment only, never printed.
#[derive(Clone, Default, PartialEq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "<redacted>" })
    }
}

/// The ClickHouse backend (`[clickhouse]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseConfig {
    /// The HTTP interface queries and inserts go to (`CLEW_CLICKHOUSE_URL`).
    pub url: String,
    /// The database Clew creates its tables in (`CLEW_CLICKHOUSE_DATABASE`).
    pub database: String,
    /// The user Clew signs in as (`CLEW_CLICKHOUSE_USER`); its password comes from
    /// `CLEW_CLICKHOUSE_PASSWORD` only.
    pub user: String,
    #[serde(skip)]
    pub password: Secret,
    /// The cluster, as ClickHouse's `remote_servers` names it, whose shards hold the spans;
    /// empty: `url` holds everything (`CLEW_CLICKHOUSE_CLUSTER`).
    pub cluster: String,
    /// With a cluster: the HTTP interface of each shard, where Clew creates the local tables and
    /// measures and drops day partitions (`CLEW_CLICKHOUSE_SHARDS`, comma-separated).
    pub shards: Vec<String>,
    /// A batch of spans is inserted once it holds this many...
    pub batch_max_spans: usize,
    /// ...or once this long has passed since the last batch (one insert per wait at most).
    #[serde(with = "humantime_serde")]
    pub batch_max_wait: Duration,
    /// An insert ClickHouse cannot take is retried this long before writers get 503.
    #[serde(with = "humantime_serde")]
    pub insert_timeout: Duration,
    /// Longest a query may take.
    #[serde(with = "humantime_serde")]
    pub query_timeout: Duration,
    /// Spans that may wait for ClickHouse at once (encoded); beyond, writes get 503.
    pub max_pending_bytes: ByteSize,
    /// Create or migrate the schema at start; `false`: refuse to start on an old schema
    /// (then run `clew admin migrate`).
    pub migrate: bool,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".into(),
            database: "clew".into(),
            user: String::new(),
            password: Secret::default(),
            cluster: String::new(),
            shards: Vec::new(),
            batch_max_spans: 100_000,
            batch_max_wait: Duration::from_millis(100),
            insert_timeout: Duration::from_secs(60),
            query_timeout: Duration::from_secs(60),
            max_pending_bytes: ByteSize::mib(512),
            migrate: true,
        }
    }
}

/// Namespaces, projects and their limits (`[tenancy]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenancyConfig {
    /// `sqlite` (embedded, default) or `postgres`, shared by every node (`CLEW_METADATA`).
    pub metadata: MetadataBackend,
    /// Where the metadata store is: a `sqlite://` URL (empty: `metadata.sqlite` in the data
    /// directory), or with `postgres`, a `postgres://` URL (`CLEW_POSTGRES_URL`).
    pub metadata_url: String,
    /// `local` (default) or `redis`: where the ingest rate limit counts (`CLEW_LIMITS`).
    pub limits: LimitsBackend,
    /// With `limits = "redis"`: `redis://host:port` (`CLEW_REDIS_URL`).
    pub redis_url: String,
    /// Retention of new namespaces, in days.
    pub default_retention_days: u32,
    /// Ingest rate limit of new namespaces in bytes per second; absent: none.
    pub default_ingest_rate: Option<ByteSize>,
    /// Storage quota of new namespaces; absent: none.
    pub default_storage_quota: Option<ByteSize>,
    /// The sliding window the ingest rate is measured over: a namespace may send its rate
    /// times this window in any such window.
    #[serde(with = "humantime_serde")]
    pub rate_window: Duration,
    /// How often retention and quotas are enforced.
    #[serde(with = "humantime_serde")]
    pub maintenance_interval: Duration,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        Self {
            metadata: MetadataBackend::Sqlite,
            metadata_url: String::new(),
            limits: LimitsBackend::Local,
            redis_url: String::new(),
            default_retention_days: 30,
            default_ingest_rate: None,
            default_storage_quota: None,
            rate_window: Duration::from_secs(10),
            maintenance_interval: Duration::from_secs(600),
        }
    }
}

impl Config {
    /// The metadata store's URL: `tenancy.metadata_url`, or the SQLite file in the data
    /// directory.
    pub fn metadata_url(&self) -> String {
        if self.tenancy.metadata_url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.data_dir.join("metadata.sqlite").display())
        } else {
            self.tenancy.metadata_url.clone()
        }
    }
}

/// Secrets an automated deployment hands the first start, from the environment only (never
/// the config file, never logged): `CLEW_BOOTSTRAP_ADMIN_TOKEN`, `CLEW_BOOTSTRAP_ADMIN_PASSWORD`.
#[derive(Clone, Default, PartialEq)]
pub struct Bootstrap {
    pub admin_token: Option<String>,
    pub admin_password: Option<String>,
}

impl Bootstrap {
    pub fn from_env(env: &HashMap<String, String>) -> Self {
        let get = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();
        Self { admin_token: get("CLEW_BOOTSTRAP_ADMIN_TOKEN"), admin_password: get("CLEW_BOOTSTRAP_ADMIN_PASSWORD") }
    }
}

impl std::fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bootstrap")
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<redacted>"))
            .field("admin_password", &self.admin_password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Listener addresses. Addresses other than loopback are refused until authentication is
/// configured, so that spans are never open to the network by accident.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// The UI and every query API (`CLEW_LISTEN_HTTP`, `--listen-http`).
    pub http: SocketAddr,
    /// OTLP/gRPC (`CLEW_LISTEN_OTLP_GRPC`, `--listen-otlp-grpc`).
    pub otlp_grpc: SocketAddr,
    /// OTLP/HTTP (`CLEW_LISTEN_OTLP_HTTP`, `--listen-otlp-http`).
    pub otlp_http: SocketAddr,
}

/// Receivers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest export request accepted, compressed or not (HTTP 413 / gRPC OUT_OF_RANGE above).
    pub max_request_bytes: ByteSize,
    /// Spans the tail sampler may hold back (encoded size). Over it, the oldest traces are
    /// decided early; at twice it, writes are refused with "retry later" (503).
    pub sampler_buffer: ByteSize,
}

/// Where spans are stored, and the embedded engine's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `local` (the embedded engine, default) or `clickhouse` (`CLEW_STORAGE`).
    pub backend: StorageBackend,
    /// The in-memory head is written to segments once it holds this much.
    pub head_flush_bytes: ByteSize,
    /// While the head holds this much, writes are refused with "retry later" (503).
    pub head_max_bytes: ByteSize,
    /// A head that is not empty is written to segments at least this often.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// While this much waits to be written to the WAL, writes are refused (503).
    pub wal_max_pending_bytes: ByteSize,
    /// A day with this many small segments is compacted into one.
    pub compaction_min_segments: usize,
    /// Segments with fewer spans than this are small; compaction aims for this size.
    pub compaction_target_spans: u64,
}

/// The per-minute aggregates behind the service map and RED metrics, kept as spans are stored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RollupConfig {
    /// Span or resource attributes the span aggregates are kept by, so that RED metrics can be
    /// filtered and grouped by them. Each multiplies the size of the aggregates by its number
    /// of distinct values: choose attributes with few values.
    pub dimensions: Vec<String>,
    /// Those of `dimensions` that calls between services are kept by too, so that the service
    /// map can be filtered by them (typically the environment, not routes or status codes).
    pub call_dimensions: Vec<String>,
    /// How long a span waits for the other side of a call (its parent or child in another
    /// service) when they arrive separately; a client span nothing answered within it counts
    /// as a call to an uninstrumented peer.
    #[serde(with = "humantime_serde")]
    pub pair_window: Duration,
}

impl Default for RollupConfig {
    fn default() -> Self {
        let defaults = clew_rollup::BuilderOptions::default();
        Self {
            dimensions: defaults.dimensions,
            call_dimensions: defaults.call_dimensions,
            pair_window: defaults.window,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("clew-data"),
            listen: ListenConfig::default(),
            ingest: IngestConfig::default(),
            storage: StorageConfig::default(),
            clickhouse: ClickHouseConfig::default(),
            rollups: RollupConfig::default(),
            auth: AuthConfig::default(),
            tenancy: TenancyConfig::default(),
            pipeline: clew_pipeline::PipelineSettings::default(),
        }
    }
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            http: SocketAddr::from(([127, 0, 0, 1], 4320)),
            otlp_grpc: SocketAddr::from(([127, 0, 0, 1], 4317)),
            otlp_http: SocketAddr::from(([127, 0, 0, 1], 4318)),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self { max_request_bytes: ByteSize::mib(16), sampler_buffer: ByteSize::mib(256) }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: StorageBackend::Local,
            head_flush_bytes: ByteSize::mib(64),
            head_max_bytes: ByteSize::mib(256),
            flush_interval: Duration::from_secs(30),
            wal_max_pending_bytes: ByteSize::mib(256),
            compaction_min_segments: 4,
            compaction_target_spans: 2_000_000,
        }
    }
}

/// Settings given as command-line flags; they win over everything else.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen_http: Option<SocketAddr>,
    pub listen_otlp_grpc: Option<SocketAddr>,
    pub listen_otlp_http: Option<SocketAddr>,
    pub auth: Option<AuthMode>,
}

fn env_addr(env: &HashMap<String, String>, name: &str) -> Result<Option<SocketAddr>> {
    env.get(name)
        .map(|value| {
            value.parse().map_err(|e: std::net::AddrParseError| ConfigError::Env {
                name: name.into(),
                value: value.clone(),
                reason: format!("{e} (expected host:port, e.g. 127.0.0.1:4318)"),
            })
        })
        .transpose()
}

impl Config {
    /// Parses a TOML document on top of the defaults.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.into(), source: Box::new(e) })
    }

    /// Builds the configuration: defaults < `file` < `env` < `flags`, then validates it.
    pub fn load(file: Option<&Path>, env: &HashMap<String, String>, flags: &Overrides) -> Result<Self> {
        let mut config = match file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| ConfigError::Read { path: path.into(), source: e })?;
                Self::from_toml(&text, path)?
            }
            None => Self::default(),
        };
        let from_env = Overrides {
            data_dir: env.get("CLEW_DATA_DIR").map(PathBuf::from),
            listen_http: env_addr(env, "CLEW_LISTEN_HTTP")?,
            listen_otlp_grpc: env_addr(env, "CLEW_LISTEN_OTLP_GRPC")?,
            listen_otlp_http: env_addr(env, "CLEW_LISTEN_OTLP_HTTP")?,
            auth: env
                .get("CLEW_AUTH")
                .map(|value| {
                    value.parse().map_err(|reason| ConfigError::Env {
                        name: "CLEW_AUTH".into(),
                        value: value.clone(),
                        reason,
                    })
                })
                .transpose()?,
        };
        config.apply(&from_env);
        config.apply_backends(env)?;
        config.apply(flags);
        config.validate()?;
        Ok(config)
    }

    fn apply(&mut self, overrides: &Overrides) {
        if let Some(dir) = &overrides.data_dir {
            self.data_dir = dir.clone();
        }
        if let Some(addr) = overrides.listen_http {
            self.listen.http = addr;
        }
        if let Some(addr) = overrides.listen_otlp_grpc {
            self.listen.otlp_grpc = addr;
        }
        if let Some(addr) = overrides.listen_otlp_http {
            self.listen.otlp_http = addr;
        }
        if let Some(mode) = overrides.auth {
            self.auth.mode = mode;
        }
    }

    /// The backends and their addresses from `CLEW_STORAGE`, `CLEW_CLICKHOUSE_*`,
    /// `CLEW_METADATA`, `CLEW_POSTGRES_URL`, `CLEW_LIMITS` and `CLEW_REDIS_URL`.
    fn apply_backends(&mut self, env: &HashMap<String, String>) -> Result<()> {
        let get = |name: &str| env.get(name).filter(|v| !v.is_empty());
        if let Some(v) = get("CLEW_STORAGE") {
            self.storage.backend = parse_choice("CLEW_STORAGE", v, "local or clickhouse")?;
        }
        if let Some(v) = get("CLEW_METADATA") {
            self.tenancy.metadata = parse_choice("CLEW_METADATA", v, "sqlite or postgres")?;
        }
        if let Some(v) = get("CLEW_LIMITS") {
            self.tenancy.limits = parse_choice("CLEW_LIMITS", v, "local or redis")?;
        }
        let clickhouse = &mut self.clickhouse;
        for (name, field) in [
            ("CLEW_CLICKHOUSE_URL", &mut clickhouse.url),
            ("CLEW_CLICKHOUSE_DATABASE", &mut clickhouse.database),
            ("CLEW_CLICKHOUSE_USER", &mut clickhouse.user),
            ("CLEW_CLICKHOUSE_CLUSTER", &mut clickhouse.cluster),
            ("CLEW_POSTGRES_URL", &mut self.tenancy.metadata_url),
            ("CLEW_REDIS_URL", &mut self.tenancy.redis_url),
        ] {
            if let Some(v) = get(name) {
                v.clone_into(field);
            }
        }
        if let Some(v) = get("CLEW_CLICKHOUSE_SHARDS") {
            clickhouse.shards = v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
        }
        if let Some(v) = get("CLEW_CLICKHOUSE_PASSWORD") {
            clickhouse.password = Secret(v.clone());
        }
        Ok(())
    }

    /// Checks what no single field can: consistent sizes, and no unauthenticated listener
    /// beyond loopback.
    pub fn validate(&self) -> Result<()> {
        for (name, addr) in [
            ("listen.http", self.listen.http),
            ("listen.otlp_grpc", self.listen.otlp_grpc),
            ("listen.otlp_http", self.listen.otlp_http),
        ] {
            if !addr.ip().is_loopback() && self.auth.mode == AuthMode::Off {
                return Err(ConfigError::Invalid(format!(
                    "{name} = {addr} would accept connections from other machines, but no \
                     authentication is configured, so anyone who can reach it could write and \
                     read every trace; turn authentication on (auth.mode = \"required\", \
                     CLEW_AUTH=required or --auth required) or listen on a loopback address \
                     (127.0.0.1 or [::1])"
                )));
            }
        }
        let storage = &self.storage;
        if storage.head_flush_bytes > storage.head_max_bytes {
            return Err(ConfigError::Invalid(format!(
                "storage.head_flush_bytes ({}) must not exceed storage.head_max_bytes ({})",
                storage.head_flush_bytes, storage.head_max_bytes
            )));
        }
        if storage.wal_max_pending_bytes < self.ingest.max_request_bytes {
            return Err(ConfigError::Invalid(format!(
                "storage.wal_max_pending_bytes ({}) must be at least ingest.max_request_bytes ({}), or large requests could never be written",
                storage.wal_max_pending_bytes, self.ingest.max_request_bytes
            )));
        }
        self.pipeline.build().map_err(|e| ConfigError::Invalid(format!("pipeline: {e}")))?;
        if self.tenancy.default_retention_days == 0 {
            return Err(ConfigError::Invalid("tenancy.default_retention_days must be at least 1".into()));
        }
        if self.tenancy.rate_window.is_zero() || self.tenancy.maintenance_interval.is_zero() {
            return Err(ConfigError::Invalid(
                "tenancy.rate_window and tenancy.maintenance_interval must be more than zero".into(),
            ));
        }
        let url = &self.tenancy.metadata_url;
        match self.tenancy.metadata {
            MetadataBackend::Postgres if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) => {
                return Err(ConfigError::Invalid(format!(
                    "tenancy.metadata = \"postgres\" needs a postgres:// URL in tenancy.metadata_url or \
                     CLEW_POSTGRES_URL (got {url:?})"
                )));
            }
            MetadataBackend::Sqlite if !url.is_empty() && !url.starts_with("sqlite:") => {
                return Err(ConfigError::Invalid(format!(
                    "tenancy.metadata_url {url:?} is not a sqlite: URL; for PostgreSQL set tenancy.metadata = \
                     \"postgres\" (CLEW_METADATA=postgres)"
                )));
            }
            _ => {}
        }
        if self.tenancy.limits == LimitsBackend::Redis && !self.tenancy.redis_url.starts_with("redis://") {
            return Err(ConfigError::Invalid(format!(
                "tenancy.limits = \"redis\" needs a redis:// URL in tenancy.redis_url or CLEW_REDIS_URL (got {:?})",
                self.tenancy.redis_url
            )));
        }
        if self.storage.backend == StorageBackend::Clickhouse {
            let clickhouse = &self.clickhouse;
            if !clickhouse.url.starts_with("http://") && !clickhouse.url.starts_with("https://") {
                return Err(ConfigError::Invalid(format!(
                    "clickhouse.url {:?} (CLEW_CLICKHOUSE_URL): use ClickHouse's HTTP interface, e.g. \
                     http://127.0.0.1:8123",
                    clickhouse.url
                )));
            }
            if !clickhouse.cluster.is_empty() && clickhouse.shards.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "clickhouse.cluster = {:?} needs clickhouse.shards: the HTTP URL of each shard \
                     (CLEW_CLICKHOUSE_SHARDS, comma-separated)",
                    clickhouse.cluster
                )));
            }
            if clickhouse.batch_max_spans == 0 || clickhouse.insert_timeout.is_zero() {
                return Err(ConfigError::Invalid(
                    "clickhouse.batch_max_spans and clickhouse.insert_timeout must be more than zero".into(),
                ));
            }
        }
        if storage.flush_interval.is_zero() {
            return Err(ConfigError::Invalid("storage.flush_interval must be more than zero".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_example_file_parses_and_matches_the_defaults() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../clew.example.toml"));
        let text = std::fs::read_to_string(path).unwrap();
        assert_eq!(Config::from_toml(&text, path).unwrap(), Config::default());
    }

    #[test]
    fn flags_win_over_env_and_env_over_file() {
        let dir = std::env::temp_dir().join(format!("clew-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("clew.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from/file\"\n[listen]\nhttp = \"127.0.0.1:1\"\notlp_grpc = \"127.0.0.1:2\"\notlp_http = \"127.0.0.1:3\"\n",
        )
        .unwrap();
        let env = env(&[("CLEW_DATA_DIR", "/from/env"), ("CLEW_LISTEN_OTLP_GRPC", "127.0.0.1:20")]);
        let flags = Overrides { data_dir: Some("/from/flag".into()), ..Default::default() };
        let config = Config::load(Some(&file), &env, &flags).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.listen.otlp_grpc.port(), 20);
        assert_eq!(config.listen.http.port(), 1);
        assert_eq!(config.listen.otlp_http.port(), 3);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn human_units_parse() {
        let config = Config::from_toml(
            "[storage]\nhead_flush_bytes = \"64MiB\"\nflush_interval = \"1m 30s\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(config.storage.head_flush_bytes, ByteSize::mib(64));
        assert_eq!(config.storage.flush_interval, Duration::from_secs(90));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_that_name_them() {
        let err = Config::from_toml("[listen]\nhtp = \"127.0.0.1:1\"\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("unknown field `htp`"), "{err}");
        let err = Config::load(None, &env(&[("CLEW_LISTEN_HTTP", "localhost")]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("CLEW_LISTEN_HTTP"), "{err}");
    }

    #[test]
    fn non_loopback_listeners_are_refused_without_authentication() {
        let flags = Overrides { listen_otlp_http: Some("0.0.0.0:4318".parse().unwrap()), ..Default::default() };
        let err = Config::load(None, &HashMap::new(), &flags).unwrap_err().to_string();
        assert!(err.contains("listen.otlp_http = 0.0.0.0:4318") && err.contains("no authentication"), "{err}");
        let flags = Overrides { listen_http: Some("[::1]:4320".parse().unwrap()), ..Default::default() };
        Config::load(None, &HashMap::new(), &flags).unwrap();
        let flags = Overrides { listen_http: Some("0.0.0.0:4320".parse().unwrap()), ..Default::default() };
        let config = Config::load(None, &env(&[("CLEW_AUTH", "required")]), &flags).unwrap();
        assert_eq!(config.auth.mode, AuthMode::Required);
        let err = Config::load(None, &env(&[("CLEW_AUTH", "maybe")]), &flags).unwrap_err().to_string();
        assert!(err.contains("CLEW_AUTH") && err.contains("off or required"), "{err}");
    }

    #[test]
    fn cluster_backends_come_from_the_environment() {
        let config = Config::load(
            None,
            &env(&[
                ("CLEW_STORAGE", "clickhouse"),
                ("CLEW_CLICKHOUSE_URL", "http://ch:8123"),
                ("CLEW_CLICKHOUSE_DATABASE", "traces"),
                ("CLEW_CLICKHOUSE_CLUSTER", "main"),
                ("CLEW_CLICKHOUSE_SHARDS", "http://ch1:8123, http://ch2:8123"),
                ("CLEW_CLICKHOUSE_PASSWORD", "s3cret"),
                ("CLEW_METADATA", "postgres"),
                ("CLEW_POSTGRES_URL", "postgres://clew@pg/clew"),
                ("CLEW_LIMITS", "redis"),
                ("CLEW_REDIS_URL", "redis://redis:6379"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.storage.backend, StorageBackend::Clickhouse);
        assert_eq!((config.clickhouse.url.as_str(), config.clickhouse.database.as_str()), ("http://ch:8123", "traces"));
        assert_eq!(config.clickhouse.shards, ["http://ch1:8123", "http://ch2:8123"]);
        assert_eq!(config.tenancy.metadata, MetadataBackend::Postgres);
        assert_eq!(config.metadata_url(), "postgres://clew@pg/clew");
        assert_eq!(config.tenancy.limits, LimitsBackend::Redis);
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn cluster_backends_without_their_addresses_are_refused() {
        let err = Config::load(None, &env(&[("CLEW_METADATA", "postgres")]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("CLEW_POSTGRES_URL"), "{err}");
        let err = Config::load(None, &env(&[("CLEW_LIMITS", "redis")]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("CLEW_REDIS_URL"), "{err}");
        let err = Config::load(None, &env(&[("CLEW_STORAGE", "cassandra")]), &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("local or clickhouse"), "{err}");
        let err = Config::from_toml("[clickhouse]\npassword = \"x\"\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("unknown field `password`"), "{err}");
        let err = Config::load(
            None,
            &env(&[("CLEW_STORAGE", "clickhouse"), ("CLEW_CLICKHOUSE_CLUSTER", "main")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("CLEW_CLICKHOUSE_SHARDS"), "{err}");
    }

    #[test]
    fn bootstrap_secrets_come_from_the_environment_and_are_never_printed() {
        let secrets = Bootstrap::from_env(&env(&[("CLEW_BOOTSTRAP_ADMIN_TOKEN", "clew_s3cret")]));
        assert_eq!(secrets.admin_token.as_deref(), Some("clew_s3cret"));
        assert!(!format!("{secrets:?}").contains("s3cret"));
    }
}
