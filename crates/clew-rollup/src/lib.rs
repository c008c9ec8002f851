//! Rollups: the per-minute aggregates the service map and RED metrics are read from.
//!
//! Owns [`Rollup`] (aggregates by [`Key`] with [`Stats`]: weighted count, errors, duration sum
//! and a mergeable [`Latency`] sketch), [`RollupQuery`] (filter, regroup and bucket by step),
//! and [`Builder`], which computes rollups from batches of spans as they are stored, pairing
//! parent and child spans of different services into calls. Pure computation: no I/O, no
//! storage; a backend decides where rollups live.
//!
//! Families of aggregates:
//! - [`Family::Span`]: spans of one service, operation (span name) and span kind;
//! - [`Family::Call`], [`Family::Messaging`]: a child span in another service than its parent
//!   is one call from the parent's service (client) to the child's (server);
//!   producer→consumer pairs are messaging;
//! - [`Family::Database`], [`Family::External`]: a client or producer span that no span
//!   answered is a call to an uninstrumented peer, named by `peer.service`, `db.system` or
//!   `server.address`.

mod builder;
mod sketch;

use std::sync::Arc;

/// The maps rollups keep per span and per aggregate, with a fast hasher: their keys are random
/// span IDs and short names, hashed for every span ingested. (Seeded per process, so keys sent
/// by clients cannot be chosen to collide.)
pub type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use builder::{Builder, BuilderOptions, Observations, PEER_ATTRIBUTES};
pub use sketch::{Latency, RELATIVE_ACCURACY};

/// The attributes a store keeps aggregates by: all of them on spans, some on calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dimensions {
    pub spans: Vec<String>,
    pub calls: Vec<String>,
}

/// Nanoseconds in one minute, the resolution of every rollup.
pub const MINUTE_NANOS: u64 = 60_000_000_000;

/// The Unix minute a time in Unix nanoseconds falls in.
pub fn minute_of(unix_nano: u64) -> u32 {
    (unix_nano / MINUTE_NANOS) as u32
}

/// What an aggregate counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// Spans of `service` named `name` with span kind `kind`.
    Span,
    /// Calls from `service` to the instrumented service `name`.
    Call,
    /// Messages from producers in `service` to consumers in `name`.
    Messaging,
    /// Calls from `service` to the uninstrumented database `name`.
    Database,
    /// Calls from `service` to the uninstrumented peer `name`.
    External,
}

impl Family {
    pub const ALL: [Family; 5] = [Self::Span, Self::Call, Self::Messaging, Self::Database, Self::External];
    pub const EDGES: [Family; 4] = [Self::Call, Self::Messaging, Self::Database, Self::External];

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Span => "span",
            Self::Call => "call",
            Self::Messaging => "messaging",
            Self::Database => "database",
            Self::External => "external",
        }
    }

    pub fn is_edge(self) -> bool {
        self != Self::Span
    }
}

/// What one aggregate is about. `dims` holds, in the order of the rollup's dimension names,
/// the value each dimension attribute had (`None` when absent).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub minute: u32,
    pub family: Family,
    pub service: Arc<str>,
    pub name: Arc<str>,
    /// The span kind (OTLP code) for [`Family::Span`]; 0 for calls.
    pub kind: i32,
    pub dims: Vec<Option<Arc<str>>>,
}

/// Aggregated spans or calls: counts are weighted by each span's sampling weight.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub count: f64,
    pub errors: f64,
    /// Sum of durations in nanoseconds, weighted.
    pub duration_sum: f64,
    pub latency: Latency,
}

impl Stats {
    pub fn add(&mut self, nanos: u64, weight: f64, error: bool) {
        self.count += weight;
        if error {
            self.errors += weight;
        }
        self.duration_sum += nanos as f64 * weight;
        self.latency.add(nanos, weight);
    }

    pub fn merge(&mut self, other: &Stats) {
        self.count += other.count;
        self.errors += other.errors;
        self.duration_sum += other.duration_sum;
        self.latency.merge(&other.latency);
    }
}

/// Aggregates by key. `dimensions` names the attributes behind [`Key::dims`].
#[derive(Clone, Debug, Default)]
pub struct Rollup {
    pub dimensions: Vec<String>,
    pub entries: Map<Key, Stats>,
}

impl Rollup {
    pub fn new(dimensions: Vec<String>) -> Self {
        Self { dimensions, entries: Map::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn add(&mut self, key: Key, nanos: u64, weight: f64, error: bool) {
        self.entries.entry(key).or_default().add(nanos, weight, error);
    }

    /// Adds every aggregate of `other`, matching dimensions by name (a dimension `other` lacks
    /// is absent in its aggregates).
    pub fn merge(&mut self, other: Rollup) {
        if other.dimensions == self.dimensions {
            for (key, stats) in other.entries {
                self.merge_owned(key, stats);
            }
            return;
        }
        let positions: Vec<Option<usize>> =
            self.dimensions.iter().map(|d| other.dimensions.iter().position(|o| o == d)).collect();
        for (mut key, stats) in other.entries {
            key.dims = positions.iter().map(|p| p.and_then(|p| key.dims.get(p).cloned().flatten())).collect();
            self.merge_owned(key, stats);
        }
    }

    fn merge_owned(&mut self, key: Key, stats: Stats) {
        match self.entries.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut existing) => existing.get_mut().merge(&stats),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(stats);
            }
        }
    }

    pub fn merge_entry(&mut self, key: Key, stats: &Stats) {
        match self.entries.get_mut(&key) {
            Some(existing) => existing.merge(stats),
            None => {
                self.entries.insert(key, stats.clone());
            }
        }
    }

    /// Adds to `out` the aggregates of `self` that `query` selects, regrouped as it asks.
    pub fn select_into(&self, query: &RollupQuery, out: &mut Rollup) {
        debug_assert_eq!(out.dimensions, query.group_by);
        let filters: Option<Vec<(usize, &str)>> = query
            .filters
            .iter()
            .map(|(name, value)| self.dimensions.iter().position(|d| d == name).map(|i| (i, value.as_str())))
            .collect();
        // A filter on a dimension these aggregates do not have matches none of them.
        let Some(filters) = filters else { return };
        let group: Vec<Option<usize>> =
            query.group_by.iter().map(|g| self.dimensions.iter().position(|d| d == g)).collect();
        for (key, stats) in &self.entries {
            if !query.selects(key)
                || !filters.iter().all(|&(i, v)| key.dims.get(i).and_then(|d| d.as_deref()) == Some(v))
            {
                continue;
            }
            let step = query.step_minutes.max(1);
            let minute = query.start_minute + (key.minute - query.start_minute) / step * step;
            let dims = group.iter().map(|g| g.and_then(|g| key.dims.get(g).cloned().flatten())).collect();
            out.merge_entry(Key { minute, dims, ..key.clone() }, stats);
        }
    }

    /// The aggregates in key order.
    pub fn into_sorted(self) -> Vec<(Key, Stats)> {
        let mut entries: Vec<_> = self.entries.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries
    }
}

/// Which aggregates to read and how to regroup them: minutes in `start_minute..end_minute`,
/// bucketed by `step_minutes` from `start_minute`, of the given families (all when empty) and
/// service (the calling service for calls), whose dimensions equal `filters`, keeping only the
/// `group_by` dimensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollupQuery {
    pub start_minute: u32,
    pub end_minute: u32,
    pub step_minutes: u32,
    pub families: Vec<Family>,
    pub service: Option<String>,
    pub filters: Vec<(String, String)>,
    pub group_by: Vec<String>,
}

impl RollupQuery {
    /// Every aggregate of the minutes `start..end` (Unix nanoseconds, end exclusive), one bucket per minute.
    pub fn minutes(start: u64, end: u64) -> Self {
        Self {
            start_minute: minute_of(start),
            end_minute: minute_of(end.saturating_sub(1)) + 1,
            step_minutes: 1,
            families: Vec::new(),
            service: None,
            filters: Vec::new(),
            group_by: Vec::new(),
        }
    }

    /// Whether `key` is in the range, families and service asked for (dimensions aside).
    pub fn selects(&self, key: &Key) -> bool {
        (self.start_minute..self.end_minute).contains(&key.minute)
            && (self.families.is_empty() || self.families.contains(&key.family))
            && self.service.as_deref().is_none_or(|s| *key.service == *s)
    }

    /// An empty rollup with the dimensions this query's results have.
    pub fn output(&self) -> Rollup {
        Rollup::new(self.group_by.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(minute: u32, service: &str, name: &str, dims: &[Option<&str>]) -> Key {
        Key {
            minute,
            family: Family::Span,
            service: service.into(),
            name: name.into(),
            kind: 2,
            dims: dims.iter().map(|d| d.map(Arc::from)).collect(),
        }
    }

    #[test]
    fn select_filters_regroups_and_buckets() {
        let mut rollup = Rollup::new(vec!["env".into(), "route".into()]);
        rollup.add(key(100, "a", "op", &[Some("prod"), Some("/x")]), 10, 1.0, false);
        rollup.add(key(101, "a", "op", &[Some("prod"), Some("/y")]), 30, 2.0, true);
        rollup.add(key(104, "a", "op", &[Some("prod"), Some("/y")]), 50, 1.0, false);
        rollup.add(key(101, "a", "op", &[Some("dev"), Some("/y")]), 70, 1.0, false);
        rollup.add(key(101, "b", "op", &[Some("prod"), Some("/y")]), 70, 1.0, false);
        rollup.add(key(99, "a", "op", &[Some("prod"), Some("/y")]), 70, 1.0, false);
        let query = RollupQuery {
            start_minute: 100,
            end_minute: 106,
            step_minutes: 3,
            families: vec![Family::Span],
            service: Some("a".into()),
            filters: vec![("env".into(), "prod".into())],
            group_by: vec!["missing".into()],
        };
        let mut out = query.output();
        rollup.select_into(&query, &mut out);
        let got: Vec<(u32, f64, f64, f64)> =
            out.into_sorted().into_iter().map(|(k, s)| (k.minute, s.count, s.errors, s.duration_sum)).collect();
        assert_eq!(got, vec![(100, 3.0, 2.0, 70.0), (103, 1.0, 0.0, 50.0)]);

        let unknown = RollupQuery { filters: vec![("zone".into(), "eu".into())], ..query.clone() };
        let mut out = unknown.output();
        rollup.select_into(&unknown, &mut out);
        assert!(out.is_empty(), "a filter on a dimension the rollup lacks matches nothing");
    }

    #[test]
    fn merge_matches_dimensions_by_name() {
        let mut a = Rollup::new(vec!["env".into(), "route".into()]);
        let mut b = Rollup::new(vec!["route".into()]);
        b.add(key(1, "s", "op", &[Some("/x")]), 5, 1.0, false);
        a.merge(b);
        let (key, stats) = a.into_sorted().remove(0);
        assert_eq!(key.dims, vec![None, Some(Arc::from("/x"))]);
        assert_eq!(stats.count, 1.0);
    }
}
