//! Retention and quotas against the real embedded engine, with a clock the test moves, on
//! each metadata store.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use clew_storage::conformance::every_field_request;
use clew_storage::{SpanWriter, Storage, TraceReader};
use clew_store_local::{EngineOptions, LocalEngine};
use clew_tenancy::maintenance::{enforce, Reason};
use clew_tenancy::{Limits, LocalRateLimiter, ManualClock, Metadata, Tenancy, TenancyOptions};
use common::each_store;
use prometheus_client::registry::Registry;

const DAY: u64 = 86_400;
/// Day 20,000 since the epoch (2024-10-04), at noon.
const TODAY: u64 = 20_000;

fn at_day(day: u64) -> u64 {
    (day * DAY + 12 * 3600) * 1_000_000_000
}

fn trace_id(n: u8) -> [u8; 16] {
    [n; 16]
}

struct World {
    _dir: tempfile::TempDir,
    engine: Arc<LocalEngine>,
    tenancy: Tenancy,
    clock: Arc<ManualClock>,
}

async fn world(metadata: Metadata) -> World {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(
        LocalEngine::open(EngineOptions::new(dir.path().join("data")), &mut Registry::default()).await.unwrap(),
    );
    let clock = Arc::new(ManualClock::at(UNIX_EPOCH + Duration::from_secs(TODAY * DAY + 12 * 3600)));
    let limiter = Arc::new(LocalRateLimiter::new(Duration::from_secs(10), clock.clone()));
    let tenancy = Tenancy::new(metadata, TenancyOptions::default(), clock.clone(), limiter).await.unwrap();
    World { _dir: dir, engine, tenancy, clock }
}

impl World {
    /// A namespace with two projects, `a` and `b`.
    async fn namespace(&self, path: &str, limits: Limits) -> (i64, [clew_tenancy::Project; 2]) {
        let ns = self.tenancy.create_namespace(path, None).await.unwrap();
        self.tenancy.metadata().set_limits(ns.id, limits).await.unwrap();
        let ns = self.tenancy.metadata().namespace(path).await.unwrap().unwrap();
        let a = self.tenancy.create_project(&ns, "a").await.unwrap();
        let b = self.tenancy.create_project(&ns, "b").await.unwrap();
        (ns.id, [a, b])
    }

    async fn write(&self, project: &clew_tenancy::Project, trace: u8, day: u64) {
        let tenant = project.tenant.parse().unwrap();
        self.engine.write(&tenant, every_field_request(trace_id(trace), at_day(day)).into()).await.unwrap();
    }

    async fn present(&self, project: &clew_tenancy::Project, trace: u8) -> bool {
        let tenant = project.tenant.parse().unwrap();
        !self.engine.trace(&tenant, clew_model::TraceId::from_bytes(trace_id(trace)).unwrap()).await.unwrap().is_empty()
    }

    async fn days(&self, project: &clew_tenancy::Project) -> Vec<u32> {
        let tenant = project.tenant.parse().unwrap();
        self.engine.days(&tenant).await.unwrap().into_iter().map(|d| d.day).collect()
    }
}

#[tokio::test]
async fn retention_deletes_whole_days_older_than_the_period() {
    each_store(async |metadata| {
        let w = world(metadata).await;
        let (_, [a, b]) = w.namespace("team", Limits { retention_days: 7, ..Limits::default() }).await;
        let (_, [other, _]) = w.namespace("other", Limits { retention_days: 30, ..Limits::default() }).await;
        // 8 days old, exactly 7 days old (its start is older than 7 days, its end is not), today.
        w.write(&a, 1, TODAY - 8).await;
        w.write(&b, 2, TODAY - 8).await;
        w.write(&a, 3, TODAY - 7).await;
        w.write(&a, 4, TODAY).await;
        w.write(&other, 5, TODAY - 8).await;
        w.engine.flush().await.unwrap();

        let dropped = enforce(w.tenancy.metadata(), &*w.engine, &*w.clock).await.unwrap();
        let mut dropped_days: Vec<_> = dropped.iter().map(|d| (d.project_id, d.day, d.reason)).collect();
        dropped_days.sort();
        let day = (TODAY - 8) as u32;
        assert_eq!(dropped_days, vec![(a.id, day, Reason::Retention), (b.id, day, Reason::Retention)]);
        assert!(dropped.iter().all(|d| d.spans > 0 && d.bytes > 0), "{dropped:?}");
        assert!(!w.present(&a, 1).await && !w.present(&b, 2).await);
        assert!(w.present(&a, 3).await && w.present(&a, 4).await, "younger days stay");
        assert!(w.present(&other, 5).await, "another namespace's retention is its own");

        // A day later, the 7-day-old day has aged out too; running again deletes nothing else.
        w.clock.advance(Duration::from_secs(DAY));
        let dropped = enforce(w.tenancy.metadata(), &*w.engine, &*w.clock).await.unwrap();
        assert_eq!(dropped.iter().map(|d| (d.project_id, d.day)).collect::<Vec<_>>(), vec![(a.id, (TODAY - 7) as u32)]);
        assert!(enforce(w.tenancy.metadata(), &*w.engine, &*w.clock).await.unwrap().is_empty());
        assert!(w.present(&a, 4).await);
    })
    .await;
}

#[tokio::test]
async fn over_quota_the_oldest_whole_day_goes_until_under() {
    each_store(async |metadata| {
        let w = world(metadata).await;
        let (_, [a, b]) = w.namespace("team", Limits::default()).await;
        for (trace, day) in [(1, TODAY - 3), (2, TODAY - 2), (3, TODAY - 1), (4, TODAY)] {
            w.write(&a, trace, day).await;
            w.write(&b, trace + 10, day).await;
        }
        w.engine.flush().await.unwrap();
        let per_day: u64 = w.engine.days(&a.tenant.parse().unwrap()).await.unwrap()[0].bytes;
        let mut total = 0;
        for p in [&a, &b] {
            total += w.engine.days(&p.tenant.parse().unwrap()).await.unwrap().iter().map(|d| d.bytes).sum::<u64>();
        }
        // Room for a bit more than two of the four days (of both projects).
        let quota = total / 2 + per_day;
        let ns = w.tenancy.metadata().namespace("team").await.unwrap().unwrap();
        w.tenancy
            .metadata()
            .set_limits(ns.id, Limits { storage_quota_bytes: Some(quota), ..Limits::default() })
            .await
            .unwrap();

        let dropped = enforce(w.tenancy.metadata(), &*w.engine, &*w.clock).await.unwrap();
        assert!(dropped.iter().all(|d| d.reason == Reason::Quota));
        let mut days: Vec<u32> = dropped.iter().map(|d| d.day).collect();
        days.dedup();
        assert_eq!(days, vec![(TODAY - 3) as u32, (TODAY - 2) as u32], "oldest first, in every project at once");
        assert_eq!(w.days(&a).await, vec![(TODAY - 1) as u32, TODAY as u32]);
        assert_eq!(w.days(&b).await, vec![(TODAY - 1) as u32, TODAY as u32]);
        assert!(!w.present(&b, 11).await && w.present(&b, 13).await);

        // Today is never deleted for the quota, even when it alone is over.
        w.tenancy
            .metadata()
            .set_limits(ns.id, Limits { storage_quota_bytes: Some(1), ..Limits::default() })
            .await
            .unwrap();
        enforce(w.tenancy.metadata(), &*w.engine, &*w.clock).await.unwrap();
        assert_eq!(w.days(&a).await, vec![TODAY as u32]);
        assert!(w.present(&a, 4).await && w.present(&b, 14).await);
    })
    .await;
}
