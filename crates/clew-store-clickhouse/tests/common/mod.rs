//! Opening stores over the ClickHouse server the test script starts (`scripts/services`),
//! each test in a database of its own.

#![allow(dead_code, unreachable_pub)] // each test file uses part of this module

use std::sync::atomic::{AtomicU32, Ordering};

use clew_store_clickhouse::ClickHouseOptions;

/// Options for a fresh database on the test server, or `None` (outside CI) when no server was
/// started; in CI (`CI=true`) a missing server fails the test.
pub fn options(name: &str) -> Option<ClickHouseOptions> {
    let url = clew_testkit::service_url("CLEW_TEST_CLICKHOUSE_URL")?;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let database = format!("clew_test_{name}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    Some(ClickHouseOptions::new(url, database))
}

/// The cluster's options (two shards) for a fresh database, like [`options`].
pub fn cluster_options(name: &str) -> Option<ClickHouseOptions> {
    let mut options = options(name)?;
    let shards = std::env::var("CLEW_TEST_CLICKHOUSE_SHARDS").expect("CLEW_TEST_CLICKHOUSE_SHARDS with the URL");
    options.shards = shards.split(',').map(str::to_owned).collect();
    options.cluster = Some(std::env::var("CLEW_TEST_CLICKHOUSE_CLUSTER").unwrap_or_else(|_| "clew".into()));
    Some(options)
}
