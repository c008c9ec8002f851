//! The golden query files (`tests/golden/*.golden` at the repository root) against ClickHouse.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use clew_query::golden;
use clew_storage::DynStorage;
use clew_store_clickhouse::ClickHouseStore;

fn golden_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden").join(name)
}

async fn loaded_store(name: &str) -> Option<DynStorage> {
    let mut options = common::options(name)?;
    // The dataset is written one trace at a time: no waiting for company.
    options.batch_max_wait = std::time::Duration::ZERO;
    let store: DynStorage = Arc::new(ClickHouseStore::open(options).await.expect("open the ClickHouse store"));
    golden::load(&store).await;
    Some(store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_golden_file() {
    let Some(store) = loaded_store("golden_search").await else { return };
    golden::run(&store, &golden_file("search.golden")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceql_golden_file() {
    let Some(store) = loaded_store("golden_traceql").await else { return };
    golden::run(&store, &golden_file("traceql.golden")).await;
}
