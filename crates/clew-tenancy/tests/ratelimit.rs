//! The Redis rate limiter: nodes over one Redis share each namespace's limit and count exactly
//! as one node does (with `CLEW_TEST_REDIS_URL`; `scripts/services` starts Redis).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clew_tenancy::{LocalRateLimiter, ManualClock, RateLimited, RateLimiter, RedisRateLimiter};
use clew_testkit::service_url;

const WINDOW: Duration = Duration::from_secs(10);

/// A clock exactly at a window boundary.
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at(UNIX_EPOCH + WINDOW * 1_000_000))
}

/// Namespace IDs no other test, running or earlier, uses: the keys of a window outlive the test
/// by up to two windows. Process ID, milliseconds and a counter.
fn namespace() -> i64 {
    static NEXT: AtomicI64 = AtomicI64::new(0);
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    i64::from(std::process::id()) << 41 | (millis & ((1 << 33) - 1)) << 8 | NEXT.fetch_add(1, Ordering::Relaxed) & 0xff
}

/// Two nodes over the Redis at `url`.
async fn nodes(url: &str, clock: &Arc<ManualClock>) -> [RedisRateLimiter; 2] {
    [
        RedisRateLimiter::connect(url, WINDOW, clock.clone()).await.unwrap(),
        RedisRateLimiter::connect(url, WINDOW, clock.clone()).await.unwrap(),
    ]
}

#[tokio::test]
async fn nodes_share_one_limit() {
    let Some(url) = service_url("CLEW_TEST_REDIS_URL") else { return };
    let clock = clock();
    let [a, b] = nodes(&url, &clock).await;
    let (ns, other) = (namespace(), namespace());
    // 100 B/s over 10 s: 1,000 bytes, whichever node takes them.
    a.admit(ns, 600, 100).await.unwrap();
    b.admit(ns, 400, 100).await.unwrap();
    let refused = b.admit(ns, 1, 100).await;
    assert!(matches!(refused, Err(RateLimited::OverLimit { namespace, .. }) if namespace == ns), "{refused:?}");
    assert!(a.admit(ns, 1, 100).await.is_err());
    // Other namespaces have their own windows.
    b.admit(other, 1000, 100).await.unwrap();
    // Two windows later nothing of it counts.
    clock.advance(WINDOW * 2);
    b.admit(ns, 1000, 100).await.unwrap();
}

#[tokio::test]
async fn refused_requests_count_for_nothing() {
    let Some(url) = service_url("CLEW_TEST_REDIS_URL") else { return };
    let clock = clock();
    let [a, b] = nodes(&url, &clock).await;
    let ns = namespace();
    a.admit(ns, 900, 100).await.unwrap();
    for _ in 0..5 {
        assert!(b.admit(ns, 200, 100).await.is_err());
    }
    a.admit(ns, 100, 100).await.unwrap();
    assert!(b.admit(ns, 1, 100).await.is_err());
}

#[tokio::test]
async fn decides_exactly_like_one_node() {
    let Some(url) = service_url("CLEW_TEST_REDIS_URL") else { return };
    let clock = clock();
    let nodes = nodes(&url, &clock).await;
    let local = LocalRateLimiter::new(WINDOW, clock.clone());
    let ns = namespace();
    // (milliseconds to move the clock by, bytes): filling, fading, sliding, too large.
    let steps = [
        (0, 600),
        (0, 400),
        (0, 1),
        (12_500, 251),
        (0, 250),
        (0, 1),
        (1_234, 90),
        (20_000, 1000),
        (5_000, 500),
        (4_950, 500),
        (100, 500),
        (3_333, 77),
        (0, 1001),
    ];
    for (n, (millis, bytes)) in steps.into_iter().enumerate() {
        clock.advance(Duration::from_millis(millis));
        let expected = local.admit(ns, bytes, 100).await;
        assert_eq!(nodes[n % 2].admit(ns, bytes, 100).await, expected, "step {n}: {bytes} bytes");
    }
}

#[tokio::test]
async fn without_redis_requests_are_admitted() {
    let Some(url) = service_url("CLEW_TEST_REDIS_URL") else { return };
    let server = url.strip_prefix("redis://").unwrap().trim_end_matches('/').to_owned();
    let (proxy_url, proxy) = proxy(server).await;
    let limiter = RedisRateLimiter::connect(&proxy_url, WINDOW, clock()).await.unwrap();
    let ns = namespace();
    limiter.admit(ns, 1000, 100).await.unwrap();
    assert!(limiter.admit(ns, 1, 100).await.is_err());

    proxy.abort();
    assert!(proxy.await.unwrap_err().is_cancelled());
    for _ in 0..3 {
        let admitted = tokio::time::timeout(Duration::from_secs(3), limiter.admit(ns, 1, 100)).await;
        assert_eq!(admitted, Ok(Ok(())), "fails open, without waiting long");
    }
    let err = limiter.ping().await.unwrap_err();
    assert!(err.contains(&proxy_url), "{err}");
}

/// A TCP proxy to `server` whose task, aborted, cuts every connection like a network failure.
async fn proxy(server: String) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            let server = server.clone();
            connections.spawn(async move {
                let mut server = tokio::net::TcpStream::connect(server).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (url, task)
}

#[tokio::test]
async fn connect_errors_say_where_and_what() {
    let err = RedisRateLimiter::connect("redis://127.0.0.1:1", WINDOW, clock()).await.err().unwrap();
    assert!(err.contains("cannot connect to Redis at redis://127.0.0.1:1"), "{err}");
    let err = RedisRateLimiter::connect("redis://:hunter2@127.0.0.1:1/0", WINDOW, clock()).await.err().unwrap();
    assert!(err.contains("redis://:***@127.0.0.1:1/0") && !err.contains("hunter2"), "{err}");
    let err = RedisRateLimiter::connect("http://127.0.0.1:1", WINDOW, clock()).await.err().unwrap();
    assert!(err.contains("the Redis URL http://127.0.0.1:1 is not valid"), "{err}");
}
