//! The composition root: the only crate that picks backends. It turns a [`Config`] into
//! running listeners (OTLP/gRPC, OTLP/HTTP, the HTTP API) over one span store (the embedded
//! engine or ClickHouse), one metadata store (SQLite or PostgreSQL) and one rate limiter (in
//! process or Redis), and shuts them down in order: stop accepting, finish requests in flight,
//! flush storage.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clew_api::Dependency;
use clew_config::{AuthMode, Bootstrap, Config, ConfigError, LimitsBackend, StorageBackend};
use clew_ingest::Ingest;
use clew_sampler::{Sampler, SamplerOptions};
use clew_storage::{Storage, StorageError};
use clew_store_clickhouse::{ClickHouseOptions, ClickHouseStore};
use clew_store_local::{BuilderOptions, EngineOptions, LocalEngine};
use clew_tenancy::{Clock, Limits, Metadata, RedisRateLimiter, SystemClock, Tenancy, TenancyOptions};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("open storage in {dir}: {source}")]
    Storage {
        dir: String,
        #[source]
        source: StorageError,
    },
    #[error("listen for {what} on {addr}: {source} (is another process using it? change {setting})")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        setting: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} listener failed: {reason}")]
    Serve { what: &'static str, reason: String },
    #[error("open ClickHouse storage at {url}: {source}")]
    ClickHouse {
        url: String,
        #[source]
        source: StorageError,
    },
    #[error("connect to Redis for the shared rate limit: {0}")]
    Redis(String),
    #[error("flush storage at shutdown: {0}")]
    Shutdown(#[source] StorageError),
    #[error("open the metadata store: {0}")]
    Metadata(#[source] clew_tenancy::MetadataError),
    #[error("set up tenancy: {0}")]
    Tenancy(#[source] clew_tenancy::AccessError),
    #[error(transparent)]
    Config(#[from] clew_config::ConfigError),
}

/// How often usage counted in memory is added to the metadata store.
const USAGE_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The metadata store (SQLite or PostgreSQL), with its schema brought up to date.
async fn metadata(config: &Config) -> Result<Metadata, ServerError> {
    if config.tenancy.metadata_url.is_empty() {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| ServerError::Storage {
            dir: config.data_dir.display().to_string(),
            source: StorageError::internal("create the data directory", e),
        })?;
    }
    Metadata::connect(&config.metadata_url()).await.map_err(ServerError::Metadata)
}

async fn tenancy(
    config: &Config,
    bootstrap: &Bootstrap,
    dependencies: &mut Vec<Arc<dyn Dependency>>,
) -> Result<Tenancy, ServerError> {
    let settings = &config.tenancy;
    let options = TenancyOptions {
        auth_required: config.auth.mode == AuthMode::Required,
        session_ttl: config.auth.session_ttl,
        default_limits: Limits {
            ingest_bytes_per_second: settings.default_ingest_rate.map(|rate| rate.as_u64()),
            retention_days: settings.default_retention_days,
            storage_quota_bytes: settings.default_storage_quota.map(|quota| quota.as_u64()),
        },
        rate_window: settings.rate_window,
    };
    let metadata = metadata(config).await?;
    if config.tenancy.metadata == clew_config::MetadataBackend::Postgres {
        dependencies.push(Arc::new(PostgresHealth(metadata.clone())));
    }
    let tenancy = match settings.limits {
        LimitsBackend::Local => Tenancy::local(metadata, options).await,
        LimitsBackend::Redis => {
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let limiter = Arc::new(
                RedisRateLimiter::connect(&settings.redis_url, settings.rate_window, clock.clone())
                    .await
                    .map_err(ServerError::Redis)?,
            );
            dependencies.push(Arc::new(RedisHealth(limiter.clone(), settings.redis_url.clone())));
            Tenancy::new(metadata, options, clock, limiter).await
        }
    }
    .map_err(ServerError::Tenancy)?;
    if config.auth.mode == AuthMode::Required {
        let created = tenancy
            .bootstrap_admin(bootstrap.admin_token.as_deref(), bootstrap.admin_password.as_deref())
            .await
            .map_err(ServerError::Tenancy)?;
        if let Some(message) = created {
            // Printed, not logged: a generated password must not end up in log storage.
            println!("{message}");
        }
    }
    Ok(tenancy)
}

struct PostgresHealth(Metadata);

#[async_trait::async_trait]
impl Dependency for PostgresHealth {
    fn name(&self) -> String {
        "postgres".into()
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.to_string())
    }
}

struct RedisHealth(Arc<RedisRateLimiter>, String);

#[async_trait::async_trait]
impl Dependency for RedisHealth {
    fn name(&self) -> String {
        format!("redis {}", self.1)
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await
    }
}

struct ClickHouseHealth(Arc<ClickHouseStore>);

#[async_trait::async_trait]
impl Dependency for ClickHouseHealth {
    fn name(&self) -> String {
        "clickhouse".into()
    }

    async fn check(&self) -> Result<(), String> {
        let failed: Vec<String> = self
            .0
            .health()
            .await
            .into_iter()
            .filter_map(|(server, outcome)| outcome.err().map(|e| format!("{server}: {e}")))
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}

/// The ClickHouse backend's options from the configuration.
pub fn clickhouse_options(config: &Config) -> ClickHouseOptions {
    let clickhouse = &config.clickhouse;
    ClickHouseOptions {
        user: clickhouse.user.clone(),
        password: clickhouse.password.0.clone(),
        cluster: Some(clickhouse.cluster.clone()).filter(|c| !c.is_empty()),
        shards: clickhouse.shards.clone(),
        batch_max_spans: clickhouse.batch_max_spans,
        batch_max_wait: clickhouse.batch_max_wait,
        insert_timeout: clickhouse.insert_timeout,
        query_timeout: clickhouse.query_timeout,
        max_pending_bytes: usize::try_from(clickhouse.max_pending_bytes.as_u64()).unwrap_or(usize::MAX),
        migrate: clickhouse.migrate,
        rollups: rollup_options(config),
        ..ClickHouseOptions::new(&clickhouse.url, &clickhouse.database)
    }
}

/// Opens the span store `config` names (`storage.backend`), with its metrics in `registry`:
/// the one place that picks a backend, for `clew serve` and for `clew bench`.
pub async fn open_span_store(config: &Config, registry: &mut Registry) -> Result<Arc<dyn Storage>, ServerError> {
    storage(config, registry, &mut Vec::new()).await
}

/// Opens the configured span store; a remote one is added to `dependencies`.
async fn storage(
    config: &Config,
    registry: &mut Registry,
    dependencies: &mut Vec<Arc<dyn Dependency>>,
) -> Result<Arc<dyn Storage>, ServerError> {
    Ok(match config.storage.backend {
        StorageBackend::Local => Arc::new(
            LocalEngine::open(engine_options(config), registry)
                .await
                .map_err(|source| ServerError::Storage { dir: config.data_dir.display().to_string(), source })?,
        ),
        StorageBackend::Clickhouse => {
            let store = Arc::new(
                ClickHouseStore::open(clickhouse_options(config))
                    .await
                    .map_err(|source| ServerError::ClickHouse { url: config.clickhouse.url.clone(), source })?,
            );
            dependencies.push(Arc::new(ClickHouseHealth(store.clone())));
            store
        }
    })
}

/// Brings every schema the configuration names up to date (`clew admin migrate`): the
/// metadata store's, and ClickHouse's on every shard. Says what it did, line by line.
pub async fn migrate(config: &Config) -> Result<Vec<String>, ServerError> {
    metadata(config).await?;
    let mut report = vec![format!("metadata ({:?}): up to date", config.tenancy.metadata).to_lowercase()];
    if config.storage.backend == StorageBackend::Clickhouse {
        let applied = clew_store_clickhouse::migrate(&clickhouse_options(config))
            .await
            .map_err(|source| ServerError::ClickHouse { url: config.clickhouse.url.clone(), source })?;
        for (server, versions) in applied {
            report.push(match versions.as_slice() {
                [] => format!("clickhouse {server}: up to date"),
                versions => format!("clickhouse {server}: applied schema versions {versions:?}"),
            });
        }
    }
    Ok(report)
}

/// Adds counted usage to the metadata store now and then, and enforces retention and quotas
/// every `tenancy.maintenance_interval`.
fn spawn_maintenance(config: &Config, tenancy: Tenancy, storage: Arc<dyn Storage>) -> tokio::task::JoinHandle<()> {
    let interval = config.tenancy.maintenance_interval;
    tokio::spawn(async move {
        let mut usage_tick = tokio::time::interval(USAGE_FLUSH_INTERVAL);
        let mut maintenance_tick = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = usage_tick.tick() => {
                    if let Err(e) = tenancy.usage().flush().await {
                        tracing::warn!(error = %e, "recording usage failed; will retry");
                    }
                }
                _ = maintenance_tick.tick() => {
                    if let Err(e) = clew_tenancy::maintenance::enforce(tenancy.metadata(), &*storage, &SystemClock).await {
                        tracing::warn!(error = %e, "enforcing retention and quotas failed; will retry");
                    }
                    if let Err(e) = tenancy.metadata().delete_expired_sessions(tenancy.now()).await {
                        tracing::warn!(error = %e, "deleting expired sessions failed");
                    }
                }
            }
        }
    })
}

/// How long shutdown waits for open connections to finish before closing them.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a client refused by a full sampler buffer is told to wait.
const SAMPLER_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

const GRPC_STREAM_WINDOW: u32 = 4 << 20;
const GRPC_CONNECTION_WINDOW: u32 = 8 << 20;

/// The addresses `clew serve` bound.
pub use clew_api::Listeners as Bound;

fn engine_options(config: &Config) -> EngineOptions {
    let storage = &config.storage;
    EngineOptions {
        head_flush_bytes: storage.head_flush_bytes.as_u64(),
        head_max_bytes: storage.head_max_bytes.as_u64(),
        flush_interval: storage.flush_interval,
        wal_max_pending_bytes: storage.wal_max_pending_bytes.as_u64(),
        compaction_min_segments: storage.compaction_min_segments,
        compaction_target_spans: storage.compaction_target_spans,
        rollups: rollup_options(config),
        ..EngineOptions::new(&config.data_dir)
    }
}

fn rollup_options(config: &Config) -> BuilderOptions {
    BuilderOptions {
        dimensions: config.rollups.dimensions.clone(),
        call_dimensions: config.rollups.call_dimensions.clone(),
        window: config.rollups.pair_window,
        ..BuilderOptions::default()
    }
}

async fn bind(what: &'static str, addr: SocketAddr, setting: &'static str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { what, addr, setting, source })
}

/// Runs Clew until `shutdown` completes, then drains and flushes. `on_bound` is told the bound
/// addresses once every listener accepts connections.
pub async fn run(
    config: Config,
    bootstrap: Bootstrap,
    on_bound: impl FnOnce(Bound),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let mut registry = Registry::default();
    let mut dependencies = Vec::new();
    let storage = storage(&config, &mut registry, &mut dependencies).await?;
    let tenancy = tenancy(&config, &bootstrap, &mut dependencies).await?;
    let max_request_bytes = usize::try_from(config.ingest.max_request_bytes.as_u64()).unwrap_or(usize::MAX);
    let pipeline_error =
        |e: clew_pipeline::RuleError| ServerError::Config(ConfigError::Invalid(format!("pipeline: {e}")));
    let sampler = Sampler::open(
        SamplerOptions {
            dir: config.data_dir.join("sampler"),
            max_buffered_bytes: config.ingest.sampler_buffer.as_u64(),
            retry_after: SAMPLER_RETRY_AFTER,
            fallback: config.pipeline.build().map_err(pipeline_error)?.sampling().cloned(),
        },
        storage.clone(),
        &mut registry,
    )
    .map_err(|source| ServerError::Storage { dir: config.data_dir.display().to_string(), source })?;
    let ingest = Ingest::new(
        storage.clone(),
        tenancy.clone(),
        config.pipeline.clone(),
        Some(sampler.clone()),
        max_request_bytes,
        &mut registry,
    )
    .map_err(pipeline_error)?;
    let draining = Arc::new(AtomicBool::new(false));
    let maintenance = spawn_maintenance(&config, tenancy.clone(), storage.clone());
    let http = bind("the HTTP API", config.listen.http, "listen.http / --listen-http").await?;
    let grpc = bind("OTLP/gRPC", config.listen.otlp_grpc, "listen.otlp_grpc / --listen-otlp-grpc").await?;
    let otlp_http = bind("OTLP/HTTP", config.listen.otlp_http, "listen.otlp_http / --listen-otlp-http").await?;
    let local = |l: &TcpListener| {
        l.local_addr().map_err(|e| ServerError::Serve { what: "a bound", reason: format!("read its address: {e}") })
    };
    let bound = Bound { http: local(&http)?, otlp_grpc: local(&grpc)?, otlp_http: local(&otlp_http)? };

    // Zipkin reporters post to the HTTP API listener, as they do to a Zipkin server's port;
    // GitLab's per-project ingest path is served there too.
    let api = clew_api::router(clew_api::Api {
        storage: storage.clone(),
        tenancy: tenancy.clone(),
        registry: Arc::new(registry),
        draining: draining.clone(),
        secure_cookies: config.auth.secure_cookies,
        pipeline: config.pipeline.clone(),
        listeners: bound,
        dependencies,
    })
    .merge(ingest.zipkin_router())
    .merge(ingest.project_router());

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let api_server = axum::serve(http, api).with_graceful_shutdown(stopped());
    let otlp_http_server = axum::serve(otlp_http, ingest.http_router()).with_graceful_shutdown(stopped());
    // OTLP exports are large (hundreds of KiB): HTTP/2's default 64 KiB windows would make
    // every export wait for several window updates.
    let grpc_server = tonic::transport::Server::builder()
        .initial_stream_window_size(Some(GRPC_STREAM_WINDOW))
        .initial_connection_window_size(Some(GRPC_CONNECTION_WINDOW))
        .layer(tower::util::MapResponseLayer::new(clew_ingest::normalize_status::<tonic::body::Body>))
        .add_service(ingest.grpc_service())
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(grpc), stopped());

    tracing::info!(http = %bound.http, otlp_grpc = %bound.otlp_grpc, otlp_http = %bound.otlp_http, storage = ?config.storage.backend, "clew is ready");
    on_bound(bound);
    let drained = stopped();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing requests in flight");
        draining.store(true, Ordering::Release);
        let _ = stop_tx.send(true);
    });
    let servers = async {
        tokio::join!(
            async { api_server.await.map_err(|e| ServerError::Serve { what: "HTTP API", reason: e.to_string() }) },
            async {
                otlp_http_server.await.map_err(|e| ServerError::Serve { what: "OTLP/HTTP", reason: e.to_string() })
            },
            async { grpc_server.await.map_err(|e| ServerError::Serve { what: "OTLP/gRPC", reason: e.to_string() }) },
        )
    };
    // Clients that keep connections open must not hold the shutdown forever: after the grace
    // period the listeners are dropped. A write already under way still completes, and the
    // flush below includes it; its client may not hear back and retry, which reads show once.
    let (api_result, otlp_http_result, grpc_result) = tokio::select! {
        results = servers => results,
        () = async { drained.await; tokio::time::sleep(DRAIN_TIMEOUT).await } => {
            tracing::warn!(timeout = ?DRAIN_TIMEOUT, "connections still open after the grace period; closing them");
            (Ok(()), Ok(()), Ok(()))
        }
    };
    tracing::info!("listeners closed; flushing storage");
    maintenance.abort();
    if let Err(e) = tenancy.usage().flush().await {
        tracing::warn!(error = %e, "recording usage at shutdown failed");
    }
    // Held-back traces are decided and stored before the store closes.
    sampler.close().await;
    storage.close().await.map_err(ServerError::Shutdown)?;
    tracing::info!("storage flushed; bye");
    api_result.and(otlp_http_result).and(grpc_result)
}
