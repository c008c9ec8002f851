//! Cluster mode end to end: two ClickHouse servers as the two shards of a cluster, PostgreSQL
//! and Redis (all started by `scripts/services`), and two `clew serve` nodes over them. Spans
//! go in through node A and are read through node B; node A is killed with SIGKILL under
//! load and ClickHouse restarts once on the way, and no acknowledged span is lost; the rate
//! limit of a namespace holds across both nodes.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clew_model::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use clew_model::TraceId;
use clew_testkit::{now_nanos, Profile, TestServer, Workload};
use prost::Message;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_clew");

/// The servers `scripts/services start` runs, or `None` (outside CI) when it has not run.
struct Services {
    shards: Vec<String>,
    postgres: String,
    redis: String,
    state: String,
}

impl Services {
    fn from_env() -> Option<Self> {
        let shards = clew_testkit::service_url("CLEW_TEST_CLICKHOUSE_SHARDS")?;
        let postgres = clew_testkit::service_url("CLEW_TEST_POSTGRES_URL")?;
        let redis = clew_testkit::service_url("CLEW_TEST_REDIS_URL")?;
        let state = clew_testkit::service_url("CLEW_TEST_SERVICES")?;
        Some(Self { shards: shards.split(',').map(str::to_owned).collect(), postgres, redis, state })
    }

    /// A fresh PostgreSQL database; its URL.
    fn postgres_database(&self, name: &str) -> String {
        let output =
            Command::new("psql").args([&self.postgres, "-qc", &format!("CREATE DATABASE {name}")]).output().unwrap();
        assert!(output.status.success(), "create database: {}", String::from_utf8_lossy(&output.stderr));
        let (server, _) = self.postgres.rsplit_once('/').unwrap();
        format!("{server}/{name}")
    }
}

/// A node of the cluster: `entry` is the ClickHouse server it sends queries and inserts to.
fn node(
    services: &Services,
    entry: &str,
    database: &str,
    postgres: &str,
    redis: &str,
    dir: &std::path::Path,
) -> TestServer {
    let config = dir.join("clew.toml");
    // A long window makes the shared limit easy to check: requests during the test all fall
    // into one or two windows.
    std::fs::write(&config, "[tenancy]\nrate_window = \"60s\"\n[clickhouse]\nbatch_max_wait = \"20ms\"\n").unwrap();
    let shards = services.shards.join(",");
    TestServer::start_with(
        BIN,
        dir,
        &["--config", config.to_str().unwrap()],
        &[
            ("CLEW_STORAGE", "clickhouse"),
            ("CLEW_CLICKHOUSE_URL", entry),
            ("CLEW_CLICKHOUSE_DATABASE", database),
            ("CLEW_CLICKHOUSE_CLUSTER", "clew"),
            ("CLEW_CLICKHOUSE_SHARDS", &shards),
            ("CLEW_METADATA", "postgres"),
            ("CLEW_POSTGRES_URL", postgres),
            ("CLEW_LIMITS", "redis"),
            ("CLEW_REDIS_URL", redis),
        ],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_over_two_shards_lose_nothing_and_share_the_rate_limit() {
    let Some(services) = Services::from_env() else { return };
    let run = format!("cluster_{}_{}", std::process::id(), now_nanos() % 1_000_000);
    let postgres = services.postgres_database(&run);
    // A Redis database of its own: the rate windows of other runs are elsewhere.
    let redis = format!("{}/{}", services.redis.trim_end_matches('/'), 1 + now_nanos() % 15);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = node(&services, &services.shards[0], &run, &postgres, &redis, dir_a.path());
    let b = node(&services, &services.shards[1], &run, &postgres, &redis, dir_b.path());

    let started = std::time::Instant::now();
    let phase = |what: &str| eprintln!("{:>6.1} s  {what}", started.elapsed().as_secs_f64());
    let ready = reqwest::get(format!("{}/health/ready", b.http_url())).await.unwrap();
    assert_eq!(ready.status(), 200);
    let report = ready.text().await.unwrap();
    for dependency in ["clickhouse: ok", "postgres: ok", "redis "] {
        assert!(report.contains(dependency), "{report}");
    }

    // Four senders through node A until it is killed; ClickHouse restarts on the way.
    let (counted, mut progress) = tokio::sync::watch::channel(0usize);
    let counted = Arc::new(counted);
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for seed in 0..4u64 {
        let (endpoint, counted, stop) = (format!("http://{}", a.otlp_grpc), counted.clone(), stop.clone());
        senders.push(tokio::spawn(async move {
            let mut client = TraceServiceClient::connect(endpoint).await.unwrap();
            let mut workload = Workload::new(Profile::Small, seed);
            let (mut acknowledged, mut refused): (Vec<TraceId>, usize) = (Vec::new(), 0);
            while !stop.load(Ordering::Acquire) {
                let (request, ids) = workload.request(now_nanos());
                match client.export(request).await {
                    Ok(_) => {
                        counted.send_modify(|n| *n += ids.len());
                        acknowledged.extend(ids);
                    }
                    // Not acknowledged: refused while ClickHouse was away, or the node died.
                    Err(_) => refused += 1,
                }
            }
            (acknowledged, refused)
        }));
    }
    let wait = Duration::from_secs(120);
    tokio::time::timeout(wait, progress.wait_for(|&n| n >= 1_000)).await.expect("ingest through node A").unwrap();
    phase("acknowledged 1000 traces; restarting ClickHouse");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/services");
    let restart = tokio::process::Command::new(script).args(["restart", "clickhouse-1", &services.state]).status();
    assert!(restart.await.unwrap().success(), "restart ClickHouse");
    phase("ClickHouse restarted");
    let after_restart = *progress.borrow();
    tokio::time::timeout(wait, progress.wait_for(|&n| n >= after_restart + 1_000))
        .await
        .expect("ingest resumes after ClickHouse restarted")
        .unwrap();
    let log = a.log();
    assert!(log.contains("ClickHouse cannot take an insert now"), "node A never waited for ClickHouse: {log}");
    a.kill9();
    stop.store(true, Ordering::Release);
    phase("node A killed");
    let mut acknowledged = Vec::new();
    for sender in senders {
        let (acked, _refused) = sender.await.unwrap();
        acknowledged.extend(acked);
    }
    assert!(acknowledged.len() >= after_restart + 1_000, "{} traces acknowledged", acknowledged.len());

    phase(&format!("{} acknowledged traces to read", acknowledged.len()));
    // Every acknowledged trace reads whole through node B, which talks to the other shard.
    common::assert_stored(&b.http_url(), &acknowledged, 10, "through node B").await;
    let search = reqwest::get(format!("{}/api/v1/search?limit=5", b.http_url())).await.unwrap();
    assert_eq!(search.status(), 200, "{}", search.text().await.unwrap());

    phase("read every acknowledged trace");
    // The rate limit, set through node B, holds across both nodes (A restarted).
    a.restart().unwrap();
    let client = reqwest::Client::new();
    const RATE: u64 = 10_000;
    let limits =
        serde_json::json!({ "ingest_bytes_per_second": RATE, "retention_days": 30, "storage_quota_bytes": null });
    let set =
        client.put(format!("{}/api/v1/namespaces/default/limits", b.http_url())).json(&limits).send().await.unwrap();
    assert_eq!(set.status(), 200, "{}", set.text().await.unwrap());
    let allowance = RATE * 60;
    let mut workload = Workload::new(Profile::Small, 99);
    let (mut admitted, mut refused_by) = (0u64, [0usize; 2]);
    for i in 0..400 {
        let node = if i % 2 == 0 { &a } else { &b };
        let body = workload.request(now_nanos()).0.encode_to_vec();
        let size = body.len() as u64;
        let response = client
            .post(format!("http://{}/v1/traces", node.otlp_http))
            .header("content-type", "application/x-protobuf")
            .body(body)
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            200 => admitted += size,
            429 => refused_by[i % 2] += 1,
            other => panic!("unexpected {other}: {}", response.text().await.unwrap()),
        }
        if refused_by.iter().all(|&r| r >= 3) {
            break;
        }
    }
    phase(&format!("rate limit: {admitted} bytes admitted, refusals by node {refused_by:?}"));
    assert!(refused_by.iter().all(|&r| r >= 3), "both nodes refuse once the shared window is full: {refused_by:?}");
    // One node alone would have let through its own allowance, two nodes twice that.
    assert!(
        admitted <= allowance + allowance / 5,
        "{admitted} bytes admitted across both nodes; the shared allowance is {allowance}"
    );
    assert!(admitted >= allowance / 2, "{admitted} bytes admitted of an allowance of {allowance}");
}
