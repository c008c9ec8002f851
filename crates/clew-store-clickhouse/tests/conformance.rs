//! The storage conformance suite against ClickHouse: one server, and a cluster of two shards
//! behind `Distributed` tables.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use clew_storage::conformance::{self, Harness};
use clew_storage::DynStorage;
use clew_store_clickhouse::{ClickHouseOptions, ClickHouseStore};

struct ClickHouse(ClickHouseOptions);

#[async_trait]
impl Harness for ClickHouse {
    async fn open(&mut self) -> DynStorage {
        Arc::new(ClickHouseStore::open(self.0.clone()).await.expect("open the ClickHouse store"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_one_server() {
    let Some(mut options) = common::options("conformance") else { return };
    options.batch_max_wait = std::time::Duration::from_millis(5);
    conformance::run(&mut ClickHouse(options)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_cluster_of_two_shards() {
    let Some(mut options) = common::cluster_options("conformance") else { return };
    options.batch_max_wait = std::time::Duration::from_millis(5);
    conformance::run(&mut ClickHouse(options)).await;
}
