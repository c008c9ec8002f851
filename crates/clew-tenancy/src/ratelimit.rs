//! The per-namespace ingest rate limit: a sliding window estimated from two fixed windows, as
//! Cloudflare describes it. The rate over the last window is taken to be the current window's
//! count plus the previous window's count weighted by how much of it the sliding window still
//! covers. A request is admitted when that estimate plus its own size stays within the
//! allowance (`bytes_per_second × window`); a refused request counts for nothing. One node
//! keeps the windows in memory ([`LocalRateLimiter`]); a cluster keeps them in Redis
//! ([`RedisRateLimiter`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, Script};

use crate::Clock;

/// Windows shorter than this are taken to be this long.
const SHORTEST_WINDOW: Duration = Duration::from_millis(1);

/// Why a request was refused, and when to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimited {
    #[error(
        "namespace {namespace} is over its ingest rate limit of {bytes_per_second} bytes/s; retry in {}s",
        retry_after.as_secs().max(1)
    )]
    OverLimit { namespace: i64, bytes_per_second: u64, retry_after: Duration },
    #[error(
        "this request ({bytes} bytes) is larger than namespace {namespace} may send in one window \
         ({allowance} bytes at {bytes_per_second} bytes/s); send smaller batches"
    )]
    TooLarge { namespace: i64, bytes: u64, allowance: u64, bytes_per_second: u64 },
}

/// Admits or refuses a namespace's requests by size. One node keeps the windows in memory;
/// a cluster shares them (Redis).
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts `bytes` against `namespace`'s limit if they fit, else says why not.
    async fn admit(&self, namespace: i64, bytes: u64, bytes_per_second: u64) -> Result<(), RateLimited>;
}

#[derive(Debug, Clone, Copy, Default)]
struct Windows {
    /// Index of the current fixed window (time / window length).
    index: u64,
    current: u64,
    previous: u64,
}

/// The sliding-window limiter of a single node.
pub struct LocalRateLimiter {
    window: Duration,
    clock: Arc<dyn Clock>,
    windows: Mutex<HashMap<i64, Windows>>,
}

impl LocalRateLimiter {
    pub fn new(window: Duration, clock: Arc<dyn Clock>) -> Self {
        Self { window: window.max(SHORTEST_WINDOW), clock, windows: Mutex::new(HashMap::new()) }
    }
}

/// Where `now` falls: the index of the current fixed window (time / window length) and how far
/// into it `now` is.
fn position(clock: &dyn Clock, window: Duration) -> (u64, Duration) {
    let now = clock.unix_nanos();
    let window_nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    (now / window_nanos, Duration::from_nanos(now % window_nanos))
}

/// The terms [`decide`] computes with: the window in seconds, how far into it `now` is in
/// seconds (at most the window), and the allowance in bytes.
fn terms(elapsed: Duration, window: Duration, bytes_per_second: u64) -> (f64, f64, u64) {
    let w = window.as_secs_f64();
    (w, elapsed.as_secs_f64().min(w), (bytes_per_second as f64 * w) as u64)
}

/// The decision for one request given the counts of the two windows. `elapsed` is how far
/// into the current window `now` is. Shared with other limiters that keep the same counts
/// elsewhere.
pub(crate) fn decide(
    namespace: i64,
    previous: u64,
    current: u64,
    elapsed: Duration,
    window: Duration,
    bytes: u64,
    bytes_per_second: u64,
) -> Result<(), RateLimited> {
    let (w, t, allowance) = terms(elapsed, window, bytes_per_second);
    if bytes > allowance {
        return Err(RateLimited::TooLarge { namespace, bytes, allowance, bytes_per_second });
    }
    let estimate = previous as f64 * (w - t) / w + current as f64;
    if estimate + bytes as f64 <= allowance as f64 {
        return Ok(());
    }
    // When will the estimate have fallen enough? Within this window only the previous
    // window's share decays; otherwise wait for the next window, where the current count
    // becomes the decaying one.
    let room = allowance as f64 - current as f64 - bytes as f64;
    let wait = if room >= 0.0 && previous > 0 {
        (w - room * w / previous as f64) - t
    } else {
        let room = allowance as f64 - bytes as f64;
        let into_next = if current > 0 { (w - room * w / current as f64).max(0.0) } else { 0.0 };
        (w - t) + into_next
    };
    let retry_after = Duration::from_secs_f64(wait.max(0.001)).max(Duration::from_millis(1));
    Err(RateLimited::OverLimit { namespace, bytes_per_second, retry_after })
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn admit(&self, namespace: i64, bytes: u64, bytes_per_second: u64) -> Result<(), RateLimited> {
        let (index, elapsed) = position(&*self.clock, self.window);
        let mut windows = self.windows.lock();
        let entry = windows.entry(namespace).or_default();
        if entry.index != index {
            entry.previous = if entry.index + 1 == index { entry.current } else { 0 };
            entry.current = 0;
            entry.index = index;
        }
        decide(namespace, entry.previous, entry.current, elapsed, self.window, bytes, bytes_per_second)?;
        entry.current += bytes;
        Ok(())
    }
}

/// The sliding-window limiter of a cluster: every node counts in the same Redis, so a
/// namespace's limit holds across all of them. Each fixed window of a namespace is one counter,
/// `clew:rate:{namespace}:index` (the braces are a Redis Cluster hash tag: both windows of a
/// namespace live in one slot), kept for two windows after its last increment. One Lua script
/// reads both windows, decides like [`LocalRateLimiter`] and adds the request only when it is
/// admitted, so no two nodes can both take the last of an allowance. Windows are placed by each
/// node's clock, which should be synchronised (NTP).
///
/// When Redis cannot be reached or fails, requests are admitted (fail open) and a warning is
/// logged at most every 10 seconds: a lost limiter must not stop ingest, and retention and
/// storage quotas still bound what a namespace keeps. The connection is re-established as
/// requests come; until then each waits at most for one connection attempt (1 s) and one
/// answer (0.5 s) before it is admitted.
pub struct RedisRateLimiter {
    connection: ConnectionManager,
    /// The URL without its password, for messages.
    url: String,
    window: Duration,
    clock: Arc<dyn Clock>,
    admit: Script,
    /// When the last warning about Redis was logged.
    warned: Mutex<Option<Instant>>,
}

/// Admits a request when it fits, computing exactly what [`decide`] does (Lua's numbers are the
/// same doubles). KEYS: the previous and the current window's counts. ARGV: the request's
/// bytes, the window and how far into it `now` is (seconds), the allowance (bytes) and how long
/// to keep the current window's count (milliseconds). Returns whether the request was admitted
/// and both counts before it.
const ADMIT: &str = r"
local previous = tonumber(redis.call('GET', KEYS[1]) or '0')
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
local w = tonumber(ARGV[2])
if previous * (w - tonumber(ARGV[3])) / w + current + tonumber(ARGV[1]) > tonumber(ARGV[4]) then
    return {0, previous, current}
end
redis.call('INCRBY', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {1, previous, current}
";

/// How long a connection attempt to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long Redis may take to answer.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Redis failing is logged at most this often.
const WARNING_INTERVAL: Duration = Duration::from_secs(10);

impl RedisRateLimiter {
    /// Connects to the Redis at `url` (`redis://[[user]:password@]host[:port][/db]`) and checks
    /// that it answers.
    pub async fn connect(url: &str, window: Duration, clock: Arc<dyn Clock>) -> Result<Self, String> {
        let shown = without_password(url);
        let client = Client::open(url).map_err(|e| {
            format!("the Redis URL {shown} is not valid ({e}); write it as redis://[[user]:password@]host[:port][/db]")
        })?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let connection = ConnectionManager::new_with_config(client, config).await.map_err(|e| {
            format!(
                "cannot connect to Redis at {shown} ({e}); check that Redis runs there and that this node can reach it"
            )
        })?;
        let limiter = Self {
            connection,
            url: shown,
            window: window.max(SHORTEST_WINDOW),
            clock,
            admit: Script::new(ADMIT),
            warned: Mutex::new(None),
        };
        limiter.ping().await?;
        Ok(limiter)
    }

    /// Checks that Redis answers, for health checks.
    pub async fn ping(&self) -> Result<(), String> {
        redis::cmd("PING")
            .query_async::<()>(&mut self.connection.clone())
            .await
            .map_err(|e| format!("Redis at {} does not answer PING ({e})", self.url))
    }

    fn warn(&self, error: &RedisError) {
        let now = Instant::now();
        let mut warned = self.warned.lock();
        if warned.is_none_or(|at| now.duration_since(at) >= WARNING_INTERVAL) {
            *warned = Some(now);
            tracing::warn!(
                url = %self.url,
                %error,
                "the rate limiter cannot use Redis; admitting requests without a limit until it can"
            );
        }
    }
}

/// `url` with its password, if any, masked.
fn without_password(url: &str) -> String {
    let masked = url.split_once("://").and_then(|(scheme, rest)| {
        let (userinfo, host) = rest.rsplit_once('@')?;
        let (user, _password) = userinfo.split_once(':')?;
        Some(format!("{scheme}://{user}:***@{host}"))
    });
    masked.unwrap_or_else(|| url.to_owned())
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn admit(&self, namespace: i64, bytes: u64, bytes_per_second: u64) -> Result<(), RateLimited> {
        let (index, elapsed) = position(&*self.clock, self.window);
        let (w, t, allowance) = terms(elapsed, self.window, bytes_per_second);
        let key = |index: u64| format!("clew:rate:{{{namespace}}}:{index}");
        let keep = u64::try_from(self.window.saturating_mul(2).as_millis()).unwrap_or(u64::MAX);
        let counted: Result<(bool, u64, u64), RedisError> = self
            .admit
            .key(key(index.wrapping_sub(1)))
            .key(key(index))
            .arg(bytes)
            .arg(w)
            .arg(t)
            .arg(allowance)
            .arg(keep)
            .invoke_async(&mut self.connection.clone())
            .await;
        match counted {
            Ok((true, ..)) => Ok(()),
            // The script refused; `decide`, computing the same, says why.
            Ok((false, previous, current)) => {
                decide(namespace, previous, current, elapsed, self.window, bytes, bytes_per_second)
            }
            Err(error) => {
                self.warn(&error);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::ManualClock;

    fn limiter(window_secs: u64) -> (Arc<ManualClock>, LocalRateLimiter) {
        // Start exactly at a window boundary.
        let clock = Arc::new(ManualClock::at(UNIX_EPOCH + Duration::from_secs(1_000_000 * window_secs)));
        let limiter = LocalRateLimiter::new(Duration::from_secs(window_secs), clock.clone());
        (clock, limiter)
    }

    fn retry_after(result: Result<(), RateLimited>) -> Duration {
        match result {
            Err(RateLimited::OverLimit { retry_after, .. }) => retry_after,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn admits_up_to_the_allowance_and_not_a_byte_more() {
        let (_clock, limiter) = limiter(10);
        // 100 B/s over 10 s: 1,000 bytes.
        limiter.admit(1, 600, 100).await.unwrap();
        limiter.admit(1, 400, 100).await.unwrap();
        assert!(limiter.admit(1, 1, 100).await.is_err());
        // Other namespaces have their own windows.
        limiter.admit(2, 1000, 100).await.unwrap();
    }

    #[tokio::test]
    async fn refused_requests_count_for_nothing() {
        let (_clock, limiter) = limiter(10);
        limiter.admit(1, 900, 100).await.unwrap();
        for _ in 0..5 {
            assert!(limiter.admit(1, 200, 100).await.is_err());
        }
        limiter.admit(1, 100, 100).await.unwrap();
    }

    #[tokio::test]
    async fn the_previous_window_fades_linearly() {
        let (clock, limiter) = limiter(10);
        limiter.admit(1, 1000, 100).await.unwrap();
        // 2.5 s into the next window, 75% of the previous 1,000 bytes still count.
        clock.advance(Duration::from_millis(12_500));
        let wait = retry_after(limiter.admit(1, 251, 100).await);
        limiter.admit(1, 250, 100).await.unwrap();
        // Now 750 + 250 = 1,000: full. The earlier refusal's wait: 1 byte of room needs
        // 1/1000 of the window, 10 ms.
        assert!(wait <= Duration::from_millis(11) && wait >= Duration::from_millis(9), "{wait:?}");
        assert!(limiter.admit(1, 1, 100).await.is_err());
        // Two windows later nothing of it counts.
        clock.advance(Duration::from_secs(20));
        limiter.admit(1, 1000, 100).await.unwrap();
    }

    #[tokio::test]
    async fn retry_after_is_when_the_request_would_fit() {
        let (clock, limiter) = limiter(10);
        limiter.admit(1, 1000, 100).await.unwrap();
        clock.advance(Duration::from_secs(5));
        // Nothing fits in this window; in the next, the 1,000 bytes decay and 500 fit once
        // half of them have: 5 s to the boundary and 5 s into the next window.
        let wait = retry_after(limiter.admit(1, 500, 100).await);
        assert_eq!(wait.as_secs_f64().round(), 10.0, "{wait:?}");
        clock.advance(wait - Duration::from_millis(50));
        assert!(limiter.admit(1, 500, 100).await.is_err());
        clock.advance(Duration::from_millis(100));
        limiter.admit(1, 500, 100).await.unwrap();
    }

    #[tokio::test]
    async fn a_request_larger_than_the_allowance_is_told_so() {
        let (_clock, limiter) = limiter(10);
        let err = limiter.admit(1, 1001, 100).await.unwrap_err();
        assert!(matches!(err, RateLimited::TooLarge { allowance: 1000, .. }), "{err:?}");
        assert!(err.to_string().contains("smaller batches"));
    }
}
