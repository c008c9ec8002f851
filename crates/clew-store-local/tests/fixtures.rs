//! Data written by earlier format versions stays readable. `tests/fixtures/v{N}/` holds a data
//! directory written by format version N: trace 0x01.. flushed to a segment, trace 0x02.. only
//! in the WAL (as a crash leaves it). Regenerate the current version's fixture with
//! `CLEW_REGENERATE_FIXTURES=1 cargo test -p clew-store-local --test fixtures`.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::path::{Path, PathBuf};

use clew_model::{assemble, TenantId, TraceId};
use clew_storage::conformance::every_field_request;
use clew_storage::{Family, RollupQuery, SpanWriter, Storage, TraceReader};
use clew_store_local::{EngineOptions, LocalEngine};
use prometheus_client::registry::Registry;

const START: u64 = 1_700_000_000_000_000_000;
const VERSIONS: [u32; 3] = [1, 2, 3];

fn fixture_dir(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("v{version}"))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

fn files_with_extension(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_with_extension(&path, extension));
        } else if path.extension().is_some_and(|e| e == extension) {
            found.push(path);
        }
    }
    found
}

async fn regenerate(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let engine = LocalEngine::open(EngineOptions::new(dir), &mut Registry::default()).await.unwrap();
    let tenant = TenantId::default_tenant();
    engine.write(&tenant, every_field_request([1; 16], START).into()).await.unwrap();
    engine.flush().await.unwrap();
    engine.write(&tenant, every_field_request([2; 16], START).into()).await.unwrap();
}

#[tokio::test]
async fn every_format_version_stays_readable() {
    if std::env::var_os("CLEW_REGENERATE_FIXTURES").is_some() {
        regenerate(&fixture_dir(*VERSIONS.last().unwrap())).await;
    }
    for version in VERSIONS {
        let scratch = tempfile::tempdir().unwrap();
        copy_tree(&fixture_dir(version), scratch.path());
        let engine = LocalEngine::open(EngineOptions::new(scratch.path()), &mut Registry::default()).await.unwrap();
        let tenant = TenantId::default_tenant();
        for trace in [[1u8; 16], [2; 16]] {
            let rows = engine.trace(&tenant, TraceId::from_bytes(trace).unwrap()).await.unwrap();
            assert_eq!(
                assemble(rows).unwrap(),
                every_field_request(trace, START).resource_spans,
                "format v{version}, trace {trace:?}"
            );
        }
        assert_eq!(engine.stats().segments, 1, "format v{version}");
        // Segments written before rollups existed get theirs computed from their rows.
        let mut query = RollupQuery::minutes(START, START + 60_000_000_000);
        query.families = vec![Family::Span];
        let spans: f64 = engine.rollups(&tenant, &query).await.unwrap().entries.values().map(|s| s.count).sum();
        assert_eq!(spans, 6.0, "format v{version}: rollups");
        // The old trace index (and rollup) was read as it is, not rebuilt and rewritten.
        let fixture_files = [
            files_with_extension(&fixture_dir(version), "tidx"),
            files_with_extension(&fixture_dir(version), "rollup"),
        ];
        for index in fixture_files.concat() {
            let relative = index.strip_prefix(fixture_dir(version)).unwrap();
            assert_eq!(
                std::fs::read(&index).unwrap(),
                std::fs::read(scratch.path().join(relative)).unwrap(),
                "{relative:?}"
            );
        }
    }
}
