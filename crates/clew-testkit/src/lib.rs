//! What Clew's tests share: the span workloads of `clew-workload` and [`TestServer`], the real
//! `clew` binary on free loopback ports; [`service_url`], the servers `scripts/services`
//! starts for tests. Never linked into the `clew` binary.

pub use clew_workload::{ClewProcess as TestServer, Profile, Workload};

/// The URL of a server `scripts/services` started for tests, from environment variable `var`
/// (`CLEW_TEST_CLICKHOUSE_URL`...), or `None` when it is not set: then a test returns early,
/// except in CI (`CI=true`), where a missing server fails the test.
pub fn service_url(var: &str) -> Option<String> {
    if let Ok(url) = std::env::var(var) {
        return Some(url);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{var} is not set: start the servers with scripts/services start DIR and export what it prints \
         (scripts/test does)"
    );
    eprintln!("skipped: {var} is not set (scripts/services start DIR starts the servers)");
    None
}

/// The wall clock in Unix nanoseconds, for spans that must fall in a query's default range.
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}
