//! The golden query files (`tests/golden/*.golden` at the repository root) against the local
//! engine, with part of the dataset in segments and part in the head.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clew_query::golden;
use clew_storage::DynStorage;
use clew_store_local::{EngineOptions, LocalEngine};
use prometheus_client::registry::Registry;

fn golden_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden").join(name)
}

async fn loaded_store(dir: &std::path::Path) -> DynStorage {
    let mut options = EngineOptions::new(dir);
    options.flush_interval = Duration::from_secs(3600);
    let store: DynStorage = Arc::new(LocalEngine::open(options, &mut Registry::default()).await.unwrap());
    golden::load(&store).await;
    store
}

#[tokio::test]
async fn search_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    golden::run(&loaded_store(dir.path()).await, &golden_file("search.golden")).await;
}

#[tokio::test]
async fn traceql_golden_file() {
    let dir = tempfile::tempdir().unwrap();
    golden::run(&loaded_store(dir.path()).await, &golden_file("traceql.golden")).await;
}
