//! The servers `scripts/services` starts (PostgreSQL, Redis) and the metadata stores each test
//! runs against.

#![allow(dead_code, unreachable_pub)] // each test file uses part of this module

use std::sync::atomic::{AtomicU32, Ordering};

use clew_tenancy::Metadata;
use sqlx::{Connection, Executor};

/// Runs `test` against a fresh SQLite store, then, when `CLEW_TEST_POSTGRES_URL` names a
/// PostgreSQL server, against a fresh database on it (dropped when the test passes).
pub async fn each_store(test: impl AsyncFn(Metadata)) {
    let dir = tempfile::tempdir().unwrap();
    test(Metadata::sqlite(&dir.path().join("metadata.sqlite")).await.unwrap()).await;

    let Some(url) = clew_testkit::service_url("CLEW_TEST_POSTGRES_URL") else { return };
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let database = format!("clew_test_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    sqlx::any::install_default_drivers();
    let mut server = sqlx::AnyConnection::connect(&url).await.unwrap();
    // A database left by an earlier run whose process had the same ID.
    server.execute(&*format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).await.unwrap();
    server.execute(&*format!("CREATE DATABASE {database}")).await.unwrap();
    let (server_root, _) = url.rsplit_once('/').unwrap();
    eprintln!("again on PostgreSQL, database {database}");
    test(Metadata::connect(&format!("{server_root}/{database}")).await.unwrap()).await;
    server.execute(&*format!("DROP DATABASE {database} WITH (FORCE)")).await.unwrap();
}
