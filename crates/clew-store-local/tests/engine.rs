//! The local engine against the conformance suite, plus what only it has: WAL replay,
//! recovery from interrupted flushes, compaction, back-pressure.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::{assemble, Coded, TenantId, TraceId};
use clew_storage::conformance::{self, every_field_request};
use clew_storage::{DynStorage, Storage, StorageError};
use clew_store_local::{EngineOptions, LocalEngine};
use prometheus_client::registry::Registry;
use proptest::prelude::*;

fn options(dir: &std::path::Path) -> EngineOptions {
    let mut options = EngineOptions::new(dir);
    // Only explicit flushes in tests, so each test controls where spans are.
    options.flush_interval = Duration::from_secs(3600);
    options
}

async fn open(options: EngineOptions) -> Arc<LocalEngine> {
    Arc::new(LocalEngine::open(options, &mut Registry::default()).await.expect("open engine"))
}

struct Local(tempfile::TempDir);

#[async_trait]
impl conformance::Harness for Local {
    async fn open(&mut self) -> DynStorage {
        open(options(self.0.path())).await
    }
}

mod conformance_suite {
    use super::*;

    clew_storage::conformance_tests!(Some(Local(tempfile::tempdir().unwrap())), #[tokio::test]);
}

fn tenant() -> TenantId {
    TenantId::default_tenant()
}

const START: u64 = 1_700_000_000_000_000_000;

async fn span_count(store: &LocalEngine, trace: [u8; 16]) -> usize {
    use clew_storage::TraceReader;
    store.trace(&tenant(), TraceId::from_bytes(trace).unwrap()).await.unwrap().len()
}

#[tokio::test]
async fn acknowledged_spans_survive_a_crash_without_flush() {
    use clew_storage::SpanWriter;
    let dir = tempfile::tempdir().unwrap();
    let store = open(options(dir.path())).await;
    store.write(&tenant(), every_field_request([1; 16], START).into()).await.unwrap();
    store.flush().await.unwrap();
    store.write(&tenant(), every_field_request([2; 16], START).into()).await.unwrap();
    // Dropping without close is what a crash leaves: segments plus a WAL not yet flushed.
    drop(store);
    let store = open(options(dir.path())).await;
    assert_eq!(span_count(&store, [1; 16]).await, 3);
    assert_eq!(span_count(&store, [2; 16]).await, 3);
    assert_eq!(store.stats().head_spans, 3, "only the unflushed request is replayed");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for path in walk(from) {
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

/// Writes two days (so a flush makes two segments), flushes, then puts the directory back the
/// way a crash after the segments and before the checkpoint would leave it.
async fn crash_between_segments_and_checkpoint(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    use clew_storage::SpanWriter;
    let store = open(options(dir)).await;
    store.write(&tenant(), every_field_request([1; 16], START).into()).await.unwrap();
    store.write(&tenant(), every_field_request([2; 16], START + 86_400_000_000_000).into()).await.unwrap();
    let saved = dir.join("saved-wal");
    copy_dir(&dir.join("wal"), &saved);
    store.flush().await.unwrap();
    drop(store);
    std::fs::remove_file(dir.join("wal").join("checkpoint")).unwrap();
    copy_dir(&saved, &dir.join("wal"));
    std::fs::remove_dir_all(saved).unwrap();
    walk(&dir.join("segments")).into_iter().filter(|p| p.extension().is_some_and(|e| e == "parquet")).collect()
}

#[tokio::test]
async fn a_complete_flush_without_checkpoint_is_not_replayed_twice() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(crash_between_segments_and_checkpoint(dir.path()).await.len(), 2);
    let store = open(options(dir.path())).await;
    assert_eq!(store.stats().head_spans, 0, "the WAL was already in segments");
    assert_eq!(span_count(&store, [1; 16]).await, 3);
    assert_eq!(span_count(&store, [2; 16]).await, 3);
}

#[tokio::test]
async fn an_incomplete_flush_is_undone_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let segments = crash_between_segments_and_checkpoint(dir.path()).await;
    std::fs::remove_file(&segments[1]).unwrap();
    let store = open(options(dir.path())).await;
    assert_eq!(store.stats().segments, 0, "the incomplete flush's segment is removed");
    assert_eq!(store.stats().head_spans, 6, "its spans come back from the WAL");
    assert_eq!(span_count(&store, [1; 16]).await, 3);
    assert_eq!(span_count(&store, [2; 16]).await, 3);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn compaction_merges_small_segments_and_keeps_every_span() {
    use clew_storage::SpanWriter;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.compaction_min_segments = 3;
    let store = open(opts.clone()).await;
    for i in 1..=5u8 {
        store.write(&tenant(), every_field_request([i; 16], START + u64::from(i)).into()).await.unwrap();
        // The same request twice, as a retrying client would send it.
        store.write(&tenant(), every_field_request([i; 16], START + u64::from(i)).into()).await.unwrap();
        store.flush().await.unwrap();
    }
    let spans_in_rollups = |store: Arc<LocalEngine>| async move {
        use clew_storage::{RollupQuery, TraceReader};
        let query =
            RollupQuery { families: vec![clew_storage::Family::Span], ..RollupQuery::minutes(START, START + 1) };
        store.rollups(&tenant(), &query).await.unwrap().entries.values().map(|s| s.count).sum::<f64>()
    };
    // Rollups count what was acknowledged, a retried request twice.
    assert_eq!(spans_in_rollups(store.clone()).await, 30.0);
    // The background compactor starts after each flush; finish whatever it left.
    store.compact().await.unwrap();
    let stats = store.stats();
    assert_eq!((stats.segments, stats.segment_spans), (1, 15), "duplicates are merged away");
    assert_eq!(spans_in_rollups(store.clone()).await, 30.0, "rollups add up in compaction");
    for i in 1..=5u8 {
        assert_eq!(span_count(&store, [i; 16]).await, 3);
    }
    drop(store);
    let store = open(opts).await;
    assert_eq!(store.stats().segments, 1);
    assert_eq!(span_count(&store, [4; 16]).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_during_background_flushes_stores_every_span_once() {
    use clew_storage::SpanWriter;
    for round in 0..5u8 {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(dir.path());
        // Every write makes the background flusher run.
        opts.head_flush_bytes = 1;
        let store = open(opts.clone()).await;
        for i in 0..40u8 {
            store.write(&tenant(), every_field_request([i + 1; 16], START + u64::from(round)).into()).await.unwrap();
        }
        store.close().await.unwrap();
        drop(store);
        let store = open(opts).await;
        let stats = store.stats();
        assert_eq!(stats.segment_spans as usize + stats.head_spans, 120, "round {round}: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_during_compaction_always_find_the_trace() {
    use clew_storage::SpanWriter;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.compaction_min_segments = 2;
    let store = open(opts).await;
    for round in 0..4u8 {
        for i in 0..4u8 {
            let trace = [round * 4 + i + 1; 16];
            store.write(&tenant(), every_field_request(trace, START).into()).await.unwrap();
            store.flush().await.unwrap();
        }
        let reader = {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    for t in 1..=(round * 4 + 4) {
                        assert_eq!(span_count(&store, [t; 16]).await, 3, "trace {t} while compacting");
                    }
                }
            })
        };
        store.compact().await.unwrap();
        reader.await.unwrap();
    }
}

#[tokio::test]
async fn a_full_head_pushes_back_with_retry_after() {
    use clew_storage::SpanWriter;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.head_max_bytes = 1;
    opts.head_flush_bytes = u64::MAX;
    let store = open(opts).await;
    store.write(&tenant(), every_field_request([1; 16], START).into()).await.unwrap();
    let refused = store.write(&tenant(), every_field_request([2; 16], START).into()).await.unwrap_err();
    assert!(matches!(refused, StorageError::Overloaded { .. }), "{refused}");
    assert_eq!(refused.retry_after(), Some(Duration::from_secs(1)));
    assert!(refused.to_string().contains("head is full"), "{refused}");
    assert_eq!(span_count(&store, [2; 16]).await, 0, "refused spans are not stored");
}

#[tokio::test]
async fn torn_wal_tail_is_cut_at_startup() {
    use clew_storage::SpanWriter;
    let dir = tempfile::tempdir().unwrap();
    let store = open(options(dir.path())).await;
    store.write(&tenant(), every_field_request([1; 16], START).into()).await.unwrap();
    drop(store);
    let wal_file =
        walk(&dir.path().join("wal")).into_iter().find(|p| p.extension().is_some_and(|e| e == "wal")).unwrap();
    let mut bytes = std::fs::read(&wal_file).unwrap();
    bytes.extend_from_slice(&[200, 1, 0, 0, 9, 9]);
    std::fs::write(&wal_file, bytes).unwrap();
    let store = open(options(dir.path())).await;
    assert_eq!(span_count(&store, [1; 16]).await, 3);
}

fn arbitrary_request() -> impl Strategy<Value = ExportTraceServiceRequest> {
    (any::<[u8; 16]>(), 0u64..(1 << 62), 1usize..4).prop_map(|(mut trace, start, parts)| {
        trace[0] |= 1;
        let mut request = every_field_request(trace, start);
        request.resource_spans[0].scope_spans.truncate(parts.min(2));
        request
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    /// Any request round-trips through WAL replay, head, segment and compaction unchanged.
    #[test]
    fn requests_round_trip_through_every_stage(requests in prop::collection::vec(arbitrary_request(), 2..6)) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            use clew_storage::{SpanWriter, TraceReader};
            let dir = tempfile::tempdir().unwrap();
            let mut opts = options(dir.path());
            opts.compaction_min_segments = 2;
            let store = open(opts.clone()).await;
            for request in &requests {
                store.write(&tenant(), request.clone().into()).await.unwrap();
            }
            drop(store);
            let store = open(opts.clone()).await; // WAL replay
            let check = |store: Arc<LocalEngine>, stage: &'static str| {
                let requests = requests.clone();
                async move {
                    for request in &requests {
                        let trace = TraceId::from_slice(&request.resource_spans[0].scope_spans[0].spans[0].trace_id).unwrap();
                        let got = assemble(store.trace(&tenant(), trace).await.unwrap()).unwrap();
                        prop_assert_eq!(&got, &request.resource_spans, "stage {}", stage);
                    }
                    Ok(())
                }
            };
            check(store.clone(), "wal+head").await?;
            store.flush().await.unwrap();
            check(store.clone(), "segment").await?;
            for request in &requests {
                store.write(&tenant(), request.clone().into()).await.unwrap();
                store.flush().await.unwrap();
            }
            store.compact().await.unwrap();
            check(store.clone(), "compaction").await?;
            Ok::<(), TestCaseError>(())
        })?;
    }
}

#[tokio::test]
async fn spans_whose_parent_never_comes_are_counted() {
    use clew_storage::SpanWriter;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    opts.rollups.window = Duration::ZERO;
    let mut registry = Registry::default();
    let store = LocalEngine::open(opts, &mut registry).await.unwrap();
    // Spans 2 and 3 of this request have their parent (span 1) in it; span 1 has parent 9,
    // which never comes. The next request ends the first one's wait.
    let mut orphaned = every_field_request([0x0f; 16], START);
    orphaned.resource_spans[0].scope_spans[0].spans[0].parent_span_id = vec![9; 8];
    store.write(&tenant(), orphaned.into()).await.unwrap();
    store.write(&tenant(), every_field_request([0x1f; 16], START).into()).await.unwrap();
    store.flush().await.unwrap();
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("clew_storage_rollup_unpaired_spans_total 1\n"), "{text}");
    store.close().await.unwrap();
}

const DAY: u64 = 86_400_000_000_000;

fn files_by_extension(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<std::path::PathBuf>> {
    let mut by_extension = std::collections::BTreeMap::<String, Vec<std::path::PathBuf>>::new();
    for path in walk(dir) {
        let extension = path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
        by_extension.entry(extension).or_default().push(path);
    }
    by_extension
}

async fn span_rollup_count(store: &LocalEngine, start: u64) -> f64 {
    use clew_storage::{Family, RollupQuery, TraceReader};
    let query = RollupQuery { families: vec![Family::Span], ..RollupQuery::minutes(start, start + 1) };
    store.rollups(&tenant(), &query).await.unwrap().entries.values().map(|s| s.count).sum()
}

#[tokio::test]
async fn a_half_deleted_day_does_not_stop_startup() {
    use clew_storage::SpanWriter;
    let dir = tempfile::tempdir().unwrap();
    let store = open(options(dir.path())).await;
    for i in 1..=3u8 {
        store.write(&tenant(), every_field_request([i; 16], START).into()).await.unwrap();
        store.flush().await.unwrap();
    }
    store.close().await.unwrap();
    drop(store);
    let files = files_by_extension(&dir.path().join("segments"));
    assert_eq!(files["parquet"].len(), 3, "{files:?}");
    // The first segment lost its data file and kept its index and rollup; the second the
    // reverse: what deleting a day file by file leaves when it stops half-way.
    std::fs::remove_file(&files["parquet"][0]).unwrap();
    std::fs::remove_file(&files["tidx"][1]).unwrap();
    std::fs::remove_file(&files["rollup"][1]).unwrap();

    let store = open(options(dir.path())).await;
    assert_eq!(span_count(&store, [1; 16]).await, 0);
    assert_eq!(span_count(&store, [2; 16]).await, 3, "index rebuilt");
    assert_eq!(span_count(&store, [3; 16]).await, 3);
    assert_eq!(span_rollup_count(&store, START).await, 6.0, "rollup rebuilt");
    let days = store.days(&tenant()).await.unwrap();
    assert_eq!(days.iter().map(|d| (d.day, d.spans)).collect::<Vec<_>>(), [(clew_model::day_of(START), 6)]);
    let files = files_by_extension(&dir.path().join("segments"));
    let counts: Vec<(&str, usize)> = files.iter().map(|(e, f)| (e.as_str(), f.len())).collect();
    assert_eq!(counts, [("parquet", 2), ("rollup", 2), ("tidx", 2)], "leftovers removed, missing files rebuilt");
    assert_eq!(days[0].bytes, files.values().flatten().map(|p| std::fs::metadata(p).unwrap().len()).sum::<u64>());

    let freed = store.drop_day(&tenant(), days[0].day).await.unwrap();
    assert_eq!(freed, days[0]);
    assert!(store.days(&tenant()).await.unwrap().is_empty());
    assert!(!dir.path().join("segments").join(tenant().as_str()).exists(), "a tenant without days has no directory");
}

#[tokio::test]
async fn a_drop_interrupted_by_a_crash_is_finished_at_startup() {
    use clew_storage::SpanWriter;
    let dir = tempfile::tempdir().unwrap();
    let store = open(options(dir.path())).await;
    store.write(&tenant(), every_field_request([1; 16], START).into()).await.unwrap();
    store.flush().await.unwrap();
    store.write(&tenant(), every_field_request([1; 16], START + 1_000).into()).await.unwrap();
    store.flush().await.unwrap();
    store.write(&tenant(), every_field_request([2; 16], START + DAY).into()).await.unwrap();
    store.flush().await.unwrap();
    drop(store);
    // A crash after the day's directory was renamed and one of its files deleted.
    let day_dir = dir.path().join("segments").join(tenant().as_str()).join("2023-11-14");
    let renamed = day_dir.with_file_name("2023-11-14.dropped");
    std::fs::rename(&day_dir, &renamed).unwrap();
    let first = walk(&renamed).into_iter().find(|p| p.extension().is_some_and(|e| e == "parquet")).unwrap();
    std::fs::remove_file(first).unwrap();

    let store = open(options(dir.path())).await;
    assert!(!renamed.exists(), "startup finishes the drop");
    assert_eq!(span_count(&store, [1; 16]).await, 0);
    assert_eq!(span_count(&store, [2; 16]).await, 3);
    let days: Vec<u32> = store.days(&tenant()).await.unwrap().iter().map(|d| d.day).collect();
    assert_eq!(days, [clew_model::day_of(START + DAY)]);
    assert_eq!(span_rollup_count(&store, START).await, 0.0);
}

#[tokio::test]
async fn a_dropped_day_stays_dropped_after_a_crash() {
    use clew_storage::SpanWriter;
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::default();
    let store = LocalEngine::open(options(dir.path()), &mut registry).await.unwrap();
    let day = clew_model::day_of(START);
    store.write(&tenant(), every_field_request([1; 16], START).into()).await.unwrap();
    let freed = store.drop_day(&tenant(), day).await.unwrap();
    assert_eq!((freed.day, freed.spans), (day, 3), "acknowledged spans not yet flushed are dropped");
    assert!(freed.bytes > 0);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("clew_storage_days_dropped_total 1\n"), "{text}");
    // Written after the drop: new data, kept.
    store.write(&tenant(), every_field_request([2; 16], START).into()).await.unwrap();
    assert!(store.days(&tenant()).await.unwrap().is_empty(), "spans only in the head are not counted");
    assert_eq!(store.tenants().await.unwrap(), [tenant()], "a tenant with spans in the head has data");
    drop(store);

    // The WAL replay brings back what came after the drop, and only that.
    let store = open(options(dir.path())).await;
    assert_eq!(span_count(&store, [1; 16]).await, 0);
    assert_eq!(span_count(&store, [2; 16]).await, 3);
    assert_eq!(span_rollup_count(&store, START).await, 3.0);
    store.flush().await.unwrap();
    let days: Vec<(u32, u64)> = store.days(&tenant()).await.unwrap().iter().map(|d| (d.day, d.spans)).collect();
    assert_eq!(days, [(day, 3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_during_a_drop_never_fail() {
    use clew_storage::{FindRequest, SpanWriter, TimeRange, TraceReader};
    let dir = tempfile::tempdir().unwrap();
    let store = open(options(dir.path())).await;
    let day = clew_model::day_of(START);
    for round in 0..4u8 {
        for i in 1..=6u8 {
            store.write(&tenant(), every_field_request([i; 16], START).into()).await.unwrap();
            store.write(&tenant(), every_field_request([i + 100; 16], START + DAY).into()).await.unwrap();
            store.flush().await.unwrap();
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let range = TimeRange { start: START - DAY, end: START + 2 * DAY };
                let mut reads = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                    for i in 1..=6u8 {
                        let dropped = span_count(&store, [i; 16]).await;
                        assert!(dropped == 0 || dropped == 3, "round {round}: trace {i} has {dropped} spans");
                        assert_eq!(span_count(&store, [i + 100; 16]).await, 3, "round {round}: kept trace {i}");
                    }
                    let hits = store.find(&tenant(), &FindRequest { range, conditions: vec![] }).await.unwrap();
                    assert!(hits.len() >= 6, "round {round}: {} hits", hits.len());
                    store.catalog(&tenant(), range).await.unwrap();
                    span_rollup_count(&store, START + DAY).await;
                    reads += 1;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let freed = store.drop_day(&tenant(), day).await.unwrap();
        assert_eq!(freed.spans, 18, "round {round}");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.await.unwrap();
        for i in 1..=6u8 {
            assert_eq!(span_count(&store, [i; 16]).await, 0, "round {round}: dropped trace {i}");
        }
    }
}

#[tokio::test]
async fn aggregates_a_dropped_day_left_in_other_days_files_are_not_served() {
    use clew_model::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
    use clew_storage::{RollupQuery, SpanWriter, TraceReader};
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path());
    // A batch stops waiting for the other side of its calls as soon as the next one arrives.
    opts.rollups.window = Duration::ZERO;
    let store = open(opts).await;
    let mut calling = every_field_request([1; 16], START);
    let db = &mut calling.resource_spans[0].scope_spans[1].spans[0];
    db.kind = 3; // client
    db.attributes.push(KeyValue {
        key: "db.system".into(),
        value: Some(AnyValue { value: Some(Value::StringValue("redis".into())) }),
        ..Default::default()
    });
    store.write(&tenant(), calling.into()).await.unwrap();
    store.flush().await.unwrap();
    // This request ends the wait of the first: its call to redis, of the first day, is stored
    // with the second day's spans.
    store.write(&tenant(), every_field_request([2; 16], START + DAY).into()).await.unwrap();
    store.flush().await.unwrap();
    let first_day = RollupQuery::minutes(START - START % DAY, START - START % DAY + DAY);
    let families = |rollup: clew_storage::Rollup| {
        let mut families: Vec<_> = rollup.entries.keys().map(|k| k.family).collect();
        families.sort();
        families.dedup();
        families
    };
    assert_eq!(
        families(store.rollups(&tenant(), &first_day).await.unwrap()),
        [clew_storage::Family::Span, clew_storage::Family::Database]
    );
    store.drop_day(&tenant(), clew_model::day_of(START)).await.unwrap();
    assert!(store.rollups(&tenant(), &first_day).await.unwrap().is_empty());
    assert_eq!(span_rollup_count(&store, START + DAY).await, 3.0, "the second day keeps its own");
}
