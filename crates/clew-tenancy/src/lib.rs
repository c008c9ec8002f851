//! Tenancy, as GitLab designed it for its tracing feature: top-level namespaces own projects;
//! users are members of namespaces and projects with a role; personal and project access
//! tokens carry scopes; every top-level namespace has an ingest rate limit, a retention period
//! and a storage quota.
//!
//! Owns the metadata store ([`Metadata`], SQL through `sqlx`: SQLite embedded, or PostgreSQL
//! shared by a cluster), who a request comes from and what it may do ([`Tenancy`], [`Caller`]),
//! the sliding-window rate limiter ([`RateLimiter`]: in memory on one node,
//! [`LocalRateLimiter`], or in Redis shared by a cluster, [`RedisRateLimiter`]), usage
//! accounting ([`Usage`]) and the retention and quota loop ([`maintenance`]). Receivers and
//! APIs ask this crate for the storage tenant of a project; they never read the metadata tables
//! themselves.

mod access;
pub mod headers;
pub mod maintenance;
mod metadata;
mod ratelimit;
mod secret;
mod usage;

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

pub use access::{AccessError, Caller, Credentials, ProjectRef, Target, Tenancy, TenancyOptions, Via, PROJECT_HEADER};
pub use metadata::{
    Limits, Member, MemberOf, Metadata, MetadataError, Namespace, NewToken, Project, RefusedCount, Token, TokenOwner,
    UsageDay, User,
};
pub use ratelimit::{LocalRateLimiter, RateLimited, RateLimiter, RedisRateLimiter};
pub use usage::{Refusal, Usage};

/// A member's role in a namespace or project, from least to most powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Guest,
    Reporter,
    Developer,
    Maintainer,
    Owner,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Guest, Role::Reporter, Role::Developer, Role::Maintainer, Role::Owner];

    fn level(self) -> i64 {
        match self {
            Role::Guest => 10,
            Role::Reporter => 20,
            Role::Developer => 30,
            Role::Maintainer => 40,
            Role::Owner => 50,
        }
    }

    fn from_level(level: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.level() == level)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::Reporter => "reporter",
            Role::Developer => "developer",
            Role::Maintainer => "maintainer",
            Role::Owner => "owner",
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: use guest, reporter, developer, maintainer or owner"))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Everything the token's user or project role allows, including administration.
    Api,
    /// Read-only API access: traces, search, services, settings.
    ReadApi,
    /// Read traces and everything derived from them.
    ReadObservability,
    /// Send spans.
    WriteObservability,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Api, Scope::ReadApi, Scope::ReadObservability, Scope::WriteObservability];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Api => "api",
            Scope::ReadApi => "read_api",
            Scope::ReadObservability => "read_observability",
            Scope::WriteObservability => "write_observability",
        }
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("unknown scope {s:?}: use api, read_api, read_observability or write_observability"))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where "now" comes from, so that retention, quotas, expiry and rate limits can be tested
/// without waiting.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;

    fn unix_seconds(&self) -> i64 {
        i64::try_from(self.now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()).unwrap_or(i64::MAX)
    }

    fn unix_nanos(&self) -> u64 {
        u64::try_from(self.now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock(parking_lot::Mutex<SystemTime>);

impl ManualClock {
    pub fn at(time: SystemTime) -> Self {
        Self(parking_lot::Mutex::new(time))
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock() += by;
    }

    pub fn set(&self, time: SystemTime) {
        *self.0.lock() = time;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.0.lock()
    }
}

/// The storage tenant of the project single-user mode writes to and reads from; existing data
/// directories keep working when tenancy is turned on.
pub const DEFAULT_TENANT: &str = "default";
