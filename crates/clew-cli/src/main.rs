//! The `clew` binary: the edge where flags, environment and exit codes live.

mod admin;
mod api;
mod bench;
mod loadgen;
mod search;
mod stages;
mod waterfall;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use clew_config::{AuthMode, Bootstrap, Config, Overrides};

/// Ingest allocates many small strings per span; mimalloc spends far less time on them than
/// the system allocator (measured in BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "clew", version, about = "Clew: a distributed tracing backend")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Clew: OTLP receivers, storage and the HTTP API in one process.
    Serve(ServeArgs),
    /// Print one trace as a waterfall.
    Trace(waterfall::TraceArgs),
    /// Search traces with TraceQL and print their summaries.
    Search(search::SearchArgs),
    /// Send synthetic OTLP traffic to any OTLP endpoint and report what it accepted.
    Loadgen(loadgen::LoadgenArgs),
    /// Benchmarks: `clew bench ingest`.
    Bench(bench::BenchArgs),
    /// Users, namespaces, projects, members, tokens, limits and usage of a running Clew.
    Admin(admin::AdminArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// TOML configuration file (see clew.example.toml).
    #[arg(long, env = "CLEW_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [env: CLEW_DATA_DIR] [default: clew-data]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HTTP API and UI address [env: CLEW_LISTEN_HTTP] [default: 127.0.0.1:4320]
    #[arg(long)]
    listen_http: Option<SocketAddr>,
    /// OTLP/gRPC address [env: CLEW_LISTEN_OTLP_GRPC] [default: 127.0.0.1:4317]
    #[arg(long)]
    listen_otlp_grpc: Option<SocketAddr>,
    /// OTLP/HTTP address [env: CLEW_LISTEN_OTLP_HTTP] [default: 127.0.0.1:4318]
    #[arg(long)]
    listen_otlp_http: Option<SocketAddr>,
    /// `off` (single-user, loopback only) or `required` [env: CLEW_AUTH] [default: off]
    #[arg(long, value_parser = parse_auth)]
    auth: Option<AuthMode>,
}

fn parse_auth(text: &str) -> Result<AuthMode, String> {
    text.parse()
}

fn init_logging() {
    let filter = std::env::var("CLEW_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT; stop Clew with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let flags = Overrides {
        data_dir: args.data_dir,
        listen_http: args.listen_http,
        listen_otlp_grpc: args.listen_otlp_grpc,
        listen_otlp_http: args.listen_otlp_http,
        auth: args.auth,
    };
    let config = Config::load(args.config.as_deref(), &env, &flags)?;
    clew_server::run(
        config,
        Bootstrap::from_env(&env),
        |bound| {
            // One line on stdout that scripts (and the test harness) can wait for.
            println!("clew listening http={} otlp_grpc={} otlp_http={}", bound.http, bound.otlp_grpc, bound.otlp_http);
        },
        shutdown_signal(),
    )
    .await
    .context("clew serve")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Trace(args) => waterfall::run(args).await,
            Command::Search(args) => search::run(args).await,
            Command::Loadgen(args) => loadgen::run(args).await.map(|report| println!("{report}")),
            Command::Bench(args) => bench::run(args).await,
            Command::Admin(args) => admin::run(args).await,
        }
    });
    // Storage is flushed by now; background work still running (a compaction) is abandoned,
    // which is crash-safe, rather than waited for.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors often say their cause already: each cause is printed once.
            let mut message = e.to_string();
            for cause in e.chain().skip(1) {
                let text = cause.to_string();
                if !message.contains(&text) {
                    message = format!("{message}: {text}");
                }
            }
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
