//! The storage conformance suite against ClickHouse: one server, and a cluster of two shards
//! behind `Distributed` tables.

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use clew_storage::conformance::Harness;
use clew_storage::DynStorage;
use clew_store_clickhouse::{ClickHouseOptions, ClickHouseStore};

struct ClickHouse(ClickHouseOptions);

#[async_trait]
impl Harness for ClickHouse {
    async fn open(&mut self) -> DynStorage {
        Arc::new(ClickHouseStore::open(self.0.clone()).await.expect("open the ClickHouse store"))
    }
}

/// A fresh database on one server, or on the cluster of two shards.
fn harness(cluster: bool) -> Option<ClickHouse> {
    let mut options = if cluster { common::cluster_options("conformance")? } else { common::options("conformance")? };
    options.batch_max_wait = std::time::Duration::from_millis(5);
    Some(ClickHouse(options))
}

mod one_server {
    use super::*;

    clew_storage::conformance_tests!(harness(false), #[tokio::test(flavor = "multi_thread", worker_threads = 2)]);
}

mod cluster_of_two_shards {
    use super::*;

    clew_storage::conformance_tests!(harness(true), #[tokio::test(flavor = "multi_thread", worker_threads = 2)]);
}
