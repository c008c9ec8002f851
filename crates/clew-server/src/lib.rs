//! The composition root: the only crate that picks a storage backend. It turns a [`Config`]
//! into running listeners (OTLP/gRPC, OTLP/HTTP, the HTTP API) over one storage engine, and
//! shuts them down in order: stop accepting, finish requests in flight, flush storage.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clew_config::Config;
use clew_ingest::Ingest;
use clew_storage::{Storage, StorageError};
use clew_store_local::{BuilderOptions, EngineOptions, LocalEngine};
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
    #[error("flush storage at shutdown: {0}")]
    Shutdown(#[source] StorageError),
}

/// How long shutdown waits for open connections to finish before closing them.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

const GRPC_STREAM_WINDOW: u32 = 4 << 20;
const GRPC_CONNECTION_WINDOW: u32 = 8 << 20;

/// The addresses the listeners actually bound (differs from the configuration with port 0).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub http: SocketAddr,
    pub otlp_grpc: SocketAddr,
    pub otlp_http: SocketAddr,
}

fn engine_options(config: &Config) -> EngineOptions {
    let storage = &config.storage;
    EngineOptions {
        head_flush_bytes: storage.head_flush_bytes.as_u64(),
        head_max_bytes: storage.head_max_bytes.as_u64(),
        flush_interval: storage.flush_interval,
        wal_max_pending_bytes: storage.wal_max_pending_bytes.as_u64(),
        compaction_min_segments: storage.compaction_min_segments,
        compaction_target_spans: storage.compaction_target_spans,
        rollups: BuilderOptions {
            dimensions: config.rollups.dimensions.clone(),
            call_dimensions: config.rollups.call_dimensions.clone(),
            window: config.rollups.pair_window,
            ..BuilderOptions::default()
        },
        ..EngineOptions::new(&config.data_dir)
    }
}

async fn bind(what: &'static str, addr: SocketAddr, setting: &'static str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { what, addr, setting, source })
}

/// Runs Clew until `shutdown` completes, then drains and flushes. `on_bound` is told the bound
/// addresses once every listener accepts connections.
pub async fn run(
    config: Config,
    on_bound: impl FnOnce(Bound),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let mut registry = Registry::default();
    let engine = LocalEngine::open(engine_options(&config), &mut registry)
        .await
        .map_err(|source| ServerError::Storage { dir: config.data_dir.display().to_string(), source })?;
    let storage: Arc<dyn Storage> = Arc::new(engine);
    let max_request_bytes = usize::try_from(config.ingest.max_request_bytes.as_u64()).unwrap_or(usize::MAX);
    let ingest = Ingest::new(storage.clone(), max_request_bytes, &mut registry);
    let draining = Arc::new(AtomicBool::new(false));
    // Zipkin reporters post to the HTTP API listener, as they do to a Zipkin server's port.
    let api = clew_api::router(storage.clone(), Arc::new(registry), draining.clone()).merge(ingest.zipkin_router());

    let http = bind("the HTTP API", config.listen.http, "listen.http / --listen-http").await?;
    let grpc = bind("OTLP/gRPC", config.listen.otlp_grpc, "listen.otlp_grpc / --listen-otlp-grpc").await?;
    let otlp_http = bind("OTLP/HTTP", config.listen.otlp_http, "listen.otlp_http / --listen-otlp-http").await?;
    let local = |l: &TcpListener| {
        l.local_addr().map_err(|e| ServerError::Serve { what: "a bound", reason: format!("read its address: {e}") })
    };
    let bound = Bound { http: local(&http)?, otlp_grpc: local(&grpc)?, otlp_http: local(&otlp_http)? };

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

    tracing::info!(http = %bound.http, otlp_grpc = %bound.otlp_grpc, otlp_http = %bound.otlp_http, data_dir = %config.data_dir.display(), "clew is ready");
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
    storage.close().await.map_err(ServerError::Shutdown)?;
    tracing::info!("storage flushed; bye");
    api_result.and(otlp_http_result).and(grpc_result)
}
