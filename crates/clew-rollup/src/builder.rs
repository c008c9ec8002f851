//! Computing rollups from batches of stored spans, pairing parents and children into calls.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clew_model::otlp::trace::v1::span::SpanKind;
use clew_model::wire::{self, AttributesRef, ValueRef};
use clew_model::{SpanBatch, SpanId, SpanRow, TraceId, SAMPLING_WEIGHT};

use crate::{minute_of, Family, Key, Map, Rollup};

const STATUS_ERROR: i32 = 2;
const CLIENT: i32 = SpanKind::Client as i32;
const PRODUCER: i32 = SpanKind::Producer as i32;
const CONSUMER: i32 = SpanKind::Consumer as i32;

/// Attributes that name an uninstrumented peer of a client span, in order of preference.
pub const PEER_ATTRIBUTES: [&str; 5] =
    ["peer.service", "db.system", "server.address", "net.peer.name", "messaging.system"];
const DB_SYSTEM: &str = "db.system";

/// How a [`Builder`] aggregates and how long it waits for the other side of a call.
#[derive(Clone, Debug)]
pub struct BuilderOptions {
    /// Span or resource attributes kept as dimensions of span aggregates (for filtering and
    /// grouping RED metrics). Each multiplies the number of aggregates by its number of values.
    pub dimensions: Vec<String>,
    /// Those of `dimensions` that calls keep too (for filtering the service map); the others
    /// are absent on calls, whose number would otherwise grow with every callee route.
    pub call_dimensions: Vec<String>,
    /// How long spans of one batch wait for their parent or child in later batches.
    pub window: Duration,
    /// At most this many spans of earlier batches wait; beyond it the oldest batches stop
    /// waiting early.
    pub max_waiting: usize,
}

impl Default for BuilderOptions {
    fn default() -> Self {
        Self {
            dimensions: [
                "deployment.environment.name",
                "deployment.environment",
                "http.route",
                "http.response.status_code",
            ]
            .map(String::from)
            .to_vec(),
            call_dimensions: ["deployment.environment.name", "deployment.environment"].map(String::from).to_vec(),
            window: Duration::from_secs(10),
            max_waiting: 500_000,
        }
    }
}

impl BuilderOptions {
    /// The attributes aggregates are kept by: every dimension on spans, those of
    /// `call_dimensions` on calls.
    pub fn kept_dimensions(&self) -> crate::Dimensions {
        let calls = self.dimensions.iter().filter(|d| self.call_dimensions.contains(d)).cloned().collect();
        crate::Dimensions { spans: self.dimensions.clone(), calls }
    }
}

type SpanKey = (TraceId, SpanId);

/// What a child needs of its parent to make a call.
#[derive(Clone)]
struct Parent {
    service: Arc<str>,
    kind: i32,
    error: bool,
    duration: u64,
}

/// One span as the rollups see it.
struct Observed {
    trace_id: TraceId,
    span_id: SpanId,
    parent: Option<SpanId>,
    service: Arc<str>,
    name: Arc<str>,
    kind: i32,
    error: bool,
    minute: u32,
    duration: u64,
    weight: f64,
    dims: Vec<Option<Arc<str>>>,
    /// `dims` with those calls do not keep absent.
    call_dims: Vec<Option<Arc<str>>>,
    peer: Option<(Family, Arc<str>)>,
}

impl Observed {
    fn as_parent(&self) -> Parent {
        Parent { service: self.service.clone(), kind: self.kind, error: self.error, duration: self.duration }
    }

    /// The call to an uninstrumented peer this span is if nothing answers it.
    fn peer_call(&self) -> Option<PeerCall> {
        if self.kind != CLIENT && self.kind != PRODUCER {
            return None;
        }
        let (family, name) = self.peer.clone()?;
        let key = Key {
            minute: self.minute,
            family,
            service: self.service.clone(),
            name,
            kind: 0,
            dims: self.call_dims.clone(),
        };
        Some((key, self.duration, self.weight, self.error))
    }
}

type PeerCall = (Key, u64, f64, bool);

/// Computes the rollups of one tenant's spans, batch by batch (for the embedded engine: each
/// stored request). A call whose two spans arrive in different batches is still paired when the
/// second arrives within [`BuilderOptions::window`] of the first; a client span that nothing
/// answered within the window becomes a call to its peer.
pub struct Builder {
    options: Arc<BuilderOptions>,
    /// Spans of the batches still waiting, as parents.
    spans: Map<SpanKey, Parent>,
    /// Client and producer spans with a peer name that nothing answered yet.
    unanswered: Map<SpanKey, PeerCall>,
    /// Spans whose parent has not been seen, by parent.
    orphans: Map<SpanKey, Vec<Observed>>,
    /// The waiting batches, oldest first: when each came, its spans, and the parents its
    /// orphans wait for.
    batches: VecDeque<(Instant, Vec<SpanKey>, Vec<SpanKey>)>,
    unpaired: u64,
}

impl Builder {
    pub fn new(options: Arc<BuilderOptions>) -> Self {
        Self {
            options,
            spans: Map::default(),
            unanswered: Map::default(),
            orphans: Map::default(),
            batches: VecDeque::new(),
            unpaired: 0,
        }
    }

    /// The rollup of `rows` alone, every wait ended at once (for spans stored without
    /// rollups).
    pub fn once<'a>(options: Arc<BuilderOptions>, rows: impl IntoIterator<Item = &'a SpanRow>) -> Rollup {
        let mut builder = Self::new(options);
        let mut rollup = builder.add(rows, Instant::now());
        rollup.merge(builder.finish());
        rollup
    }

    pub fn dimensions(&self) -> &[String] {
        &self.options.dimensions
    }

    /// Spans whose parent never arrived within the window since the last call (they still
    /// count as spans, not as calls).
    pub fn take_unpaired(&mut self) -> u64 {
        std::mem::take(&mut self.unpaired)
    }

    /// Adds one batch of spans seen at `now`; returns the aggregates it completes: its spans,
    /// the calls it pairs (with earlier batches too), and calls to peers whose wait ended.
    pub fn add<'a>(&mut self, rows: impl IntoIterator<Item = &'a SpanRow>, now: Instant) -> Rollup {
        let mut out = Rollup::new(self.options.dimensions.clone());
        self.add_observed(Observations::of(&self.options, rows), now, &mut out);
        out
    }

    /// [`Builder::add`] for spans already read with [`Observations::of`] (which needs no
    /// builder, so callers can do it outside their lock), adding to `out` (which has the
    /// builder's dimensions).
    pub fn add_observed(&mut self, observed: Observations, now: Instant, out: &mut Rollup) {
        let spans = observed.0;
        let keys: Vec<SpanKey> = spans.iter().map(|s| (s.trace_id, s.span_id)).collect();
        for (key, span) in keys.iter().zip(&spans) {
            self.spans.insert(*key, span.as_parent());
        }
        let mut answered = std::collections::HashSet::with_hasher(foldhash::fast::RandomState::default());
        let mut orphan = vec![false; spans.len()];
        for (i, span) in spans.iter().enumerate() {
            let key = Key {
                minute: span.minute,
                family: Family::Span,
                service: span.service.clone(),
                name: span.name.clone(),
                kind: span.kind,
                dims: span.dims.clone(),
            };
            out.add(key, span.duration, span.weight, span.error);
            let Some(parent_id) = span.parent else { continue };
            let parent_key = (span.trace_id, parent_id);
            match self.spans.get(&parent_key) {
                Some(parent) => {
                    call(out, parent, span);
                    self.unanswered.remove(&parent_key);
                    answered.insert(parent_key);
                }
                None => orphan[i] = true,
            }
        }
        // Children of earlier batches whose parent came now.
        for (key, span) in keys.iter().zip(&spans) {
            if let Some(children) = self.orphans.remove(key) {
                let parent = span.as_parent();
                children.iter().for_each(|child| call(out, &parent, child));
                answered.insert(*key);
            }
        }
        let mut waits_for = Vec::new();
        for ((key, span), orphan) in keys.iter().zip(spans).zip(orphan) {
            if !answered.contains(key) {
                if let Some(peer) = span.peer_call() {
                    self.unanswered.insert(*key, peer);
                }
            }
            if let (true, Some(parent)) = (orphan, span.parent) {
                let parent_key = (span.trace_id, parent);
                waits_for.push(parent_key);
                self.orphans.entry(parent_key).or_default().push(span);
            }
        }
        self.batches.push_back((now, keys, waits_for));
        self.expire(now, out);
    }

    /// Ends the waits that are over at `now` (the newest batch keeps waiting).
    pub fn expire(&mut self, now: Instant, out: &mut Rollup) {
        while self.batches.len() > 1 {
            let Some((at, _, _)) = self.batches.front() else { break };
            if now.saturating_duration_since(*at) < self.options.window && self.spans.len() <= self.options.max_waiting
            {
                break;
            }
            self.retire_oldest(out);
        }
    }

    /// Ends every wait: unanswered client spans become calls to their peers.
    pub fn finish(&mut self) -> Rollup {
        let mut out = Rollup::new(self.options.dimensions.clone());
        while !self.batches.is_empty() {
            self.retire_oldest(&mut out);
        }
        out
    }

    fn retire_oldest(&mut self, out: &mut Rollup) {
        let Some((_, keys, waits_for)) = self.batches.pop_front() else { return };
        for key in keys {
            self.spans.remove(&key);
            if let Some((call, duration, weight, error)) = self.unanswered.remove(&key) {
                out.add(call, duration, weight, error);
            }
        }
        for parent in waits_for {
            if let Some(children) = self.orphans.remove(&parent) {
                self.unpaired += children.len() as u64;
            }
        }
    }
}

/// Counts the call `parent` → `child` when they are in different services. Its latency is
/// the client span's duration when the caller recorded one, else the callee's.
fn call(out: &mut Rollup, parent: &Parent, child: &Observed) {
    if parent.service == child.service {
        return;
    }
    let family = if parent.kind == PRODUCER || child.kind == CONSUMER { Family::Messaging } else { Family::Call };
    let (duration, error) = if parent.kind == CLIENT {
        (parent.duration, parent.error || child.error)
    } else {
        (child.duration, child.error)
    };
    let key = Key {
        minute: child.minute,
        family,
        service: parent.service.clone(),
        name: child.service.clone(),
        kind: 0,
        dims: child.call_dims.clone(),
    };
    out.add(key, duration, child.weight, error);
}

/// What the rollups need of a batch of spans: dimensions and peers found in their attributes.
pub struct Observations(Vec<Observed>);

impl Observations {
    /// Of stored rows (attributes read from their encoding).
    pub fn of<'a>(options: &BuilderOptions, rows: impl IntoIterator<Item = &'a SpanRow>) -> Self {
        // Rows of one resource share its buffer: its dimensions are found once per batch.
        let mut resources: HashMap<(usize, usize), Vec<Option<Arc<str>>>> = HashMap::new();
        let mut texts = Texts::default();
        let observed = rows
            .into_iter()
            .map(|row| {
                let resource =
                    resources.entry((row.resource.as_ptr() as usize, row.resource.len())).or_insert_with(|| {
                        // A stored resource is a `ResourceSpans` with its `Resource` as field 1.
                        let resource = wire::field(&row.resource, 1).unwrap_or_default();
                        resource_dims(options, AttributesRef::of(resource, 1), &mut texts)
                    });
                let mut found = Found::new(options);
                for a in AttributesRef::stored(&row.attributes).iter() {
                    found.add(options, a.key.as_bytes(), || a.value.clone(), &mut texts);
                }
                let parts = Parts {
                    trace_id: row.trace_id,
                    span_id: row.span_id,
                    parent: &row.parent_span_id,
                    service: &row.service_name,
                    name: &row.name,
                    kind: row.kind,
                    status_code: row.status_code,
                    start: row.start_unix_nano,
                    end: row.end_unix_nano,
                    trace_state: &row.trace_state,
                };
                observe(options, parts, found, resource, &mut texts)
            })
            .collect();
        Self(observed)
    }

    /// Of the spans of a batch as received (attributes read from its index); spans with
    /// invalid IDs are left out, as they are left out of its rows.
    pub fn of_batch(options: &BuilderOptions, batch: &SpanBatch) -> Self {
        let mut texts = Texts::default();
        let mut observed = Vec::with_capacity(batch.span_count());
        for resource in batch.resources() {
            let dims = resource_dims(options, resource.attributes(), &mut texts);
            for span in resource.scopes().flat_map(|scope| scope.spans()) {
                let (Ok(trace_id), Ok(span_id)) =
                    (TraceId::from_slice(span.trace_id()), SpanId::from_slice(span.span_id()))
                else {
                    continue;
                };
                let mut found = Found::new(options);
                for a in span.attributes().iter() {
                    found.add(options, a.key_bytes(), || a.value(), &mut texts);
                }
                let parts = Parts {
                    trace_id,
                    span_id,
                    parent: span.parent_span_id(),
                    service: resource.service_name(),
                    name: span.name(),
                    kind: span.kind(),
                    status_code: span.status_code(),
                    start: span.start_unix_nano(),
                    end: span.end_unix_nano(),
                    trace_state: span.trace_state(),
                };
                observed.push(observe(options, parts, found, &dims, &mut texts));
            }
        }
        Self(observed)
    }
}

/// The fields of a span the rollups read besides its attributes.
struct Parts<'a> {
    trace_id: TraceId,
    span_id: SpanId,
    parent: &'a [u8],
    service: &'a Arc<str>,
    name: &'a str,
    kind: i32,
    status_code: i32,
    start: u64,
    end: u64,
    trace_state: &'a str,
}

/// The dimensions a resource's attributes give its spans.
fn resource_dims(options: &BuilderOptions, attributes: AttributesRef<'_>, texts: &mut Texts) -> Vec<Option<Arc<str>>> {
    let mut found = Found::new(options);
    for a in attributes.iter() {
        found.add(options, a.key.as_bytes(), || a.value.clone(), texts);
    }
    found.dims
}

fn observe(
    options: &BuilderOptions,
    span: Parts<'_>,
    found: Found,
    resource: &[Option<Arc<str>>],
    texts: &mut Texts,
) -> Observed {
    let dims: Vec<Option<Arc<str>>> =
        found.dims.into_iter().zip(resource).map(|(own, theirs)| own.or_else(|| theirs.clone())).collect();
    let call_dims = options
        .dimensions
        .iter()
        .zip(&dims)
        .map(|(name, value)| value.clone().filter(|_| options.call_dimensions.contains(name)))
        .collect();
    let peer = found.peer.map(|name| (if found.db { Family::Database } else { Family::External }, name));
    let weight = found.weight.filter(|w| w.is_finite() && *w > 0.0);
    Observed {
        trace_id: span.trace_id,
        span_id: span.span_id,
        parent: SpanId::from_slice(span.parent).ok(),
        service: span.service.clone(),
        name: texts.get(span.name),
        kind: span.kind,
        error: span.status_code == STATUS_ERROR,
        minute: minute_of(span.start),
        duration: span.end.saturating_sub(span.start),
        weight: weight.or_else(|| threshold_weight(span.trace_state)).unwrap_or(1.0),
        dims,
        call_dims,
        peer,
    }
}

/// The texts of one batch (names, dimension values, peers), each allocated once.
#[derive(Default)]
struct Texts(Map<String, Arc<str>>);

impl Texts {
    fn get(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        self.0.insert(text.to_owned(), shared.clone());
        shared
    }
}

/// What the rollups look for in one span's attributes, found in one pass over them (the first
/// attribute of a name counts).
struct Found {
    dims: Vec<Option<Arc<str>>>,
    /// The first of [`PEER_ATTRIBUTES`] present, by preference, and its rank.
    peer: Option<Arc<str>>,
    peer_rank: usize,
    db: bool,
    weight: Option<f64>,
    seen_weight: bool,
}

impl Found {
    fn new(options: &BuilderOptions) -> Self {
        let dims = vec![None; options.dimensions.len()];
        Found { dims, peer: None, peer_rank: PEER_ATTRIBUTES.len(), db: false, weight: None, seen_weight: false }
    }

    /// Looks at one attribute; its value is read only when its key is wanted.
    fn add<'v>(&mut self, options: &BuilderOptions, key: &[u8], value: impl Fn() -> ValueRef<'v>, texts: &mut Texts) {
        if let Some(i) = options.dimensions.iter().position(|d| d.as_bytes() == key) {
            if self.dims[i].is_none() {
                self.dims[i] = value().text().map(|t| texts.get(&t));
            }
        }
        if let Some(rank) = PEER_ATTRIBUTES.iter().position(|p| p.as_bytes() == key) {
            if rank < self.peer_rank {
                if let Some(name) = value().text() {
                    self.peer_rank = rank;
                    self.peer = Some(texts.get(&name));
                }
            }
        }
        if key == DB_SYSTEM.as_bytes() && value().text().is_some() {
            self.db = true;
        }
        if key == SAMPLING_WEIGHT.as_bytes() && !std::mem::replace(&mut self.seen_weight, true) {
            self.weight = match value() {
                ValueRef::Double(d) => Some(d),
                ValueRef::Int(i) => Some(i as f64),
                _ => None,
            };
        }
    }
}

/// The adjusted count `1 / (1 - th / 2^56)` of the `th` field of the `ot` trace-state entry.
fn threshold_weight(trace_state: &str) -> Option<f64> {
    let ot = trace_state.split(',').find_map(|member| member.trim().strip_prefix("ot="))?;
    let th = ot.split(';').find_map(|field| field.strip_prefix("th:"))?;
    if th.is_empty() || th.len() > 14 || !th.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let threshold = u64::from_str_radix(&format!("{th:0<14}"), 16).ok()?;
    let probability = 1.0 - threshold as f64 / (1u64 << 56) as f64;
    (probability > 0.0).then(|| 1.0 / probability)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clew_model::otlp::common::v1::{any_value, AnyValue, KeyValue};
    use clew_model::otlp::resource::v1::Resource;
    use clew_model::otlp::trace::v1::ResourceSpans;
    use clew_model::KeyValues;
    use prost::Message;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    /// A span of `service` in trace 1: `id` and `parent` are small numbers (0 = root).
    fn span(
        service: &str,
        id: u8,
        parent: u8,
        kind: SpanKind,
        start_ms: u64,
        ms: u64,
        attributes: Vec<KeyValue>,
    ) -> SpanRow {
        let resource = ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s(service)), kv("deployment.environment", s("prod"))],
                ..Default::default()
            }),
            ..Default::default()
        };
        let minute = 28_000_000 * crate::MINUTE_NANOS;
        SpanRow {
            trace_id: TraceId::from_bytes([1; 16]).unwrap(),
            span_id: SpanId::from_bytes([0, 0, 0, 0, 0, 0, 0, id]).unwrap(),
            parent_span_id: if parent == 0 { Default::default() } else { vec![0, 0, 0, 0, 0, 0, 0, parent].into() },
            trace_state: String::new(),
            flags: 0,
            name: format!("{service}-op"),
            kind: kind as i32,
            start_unix_nano: minute + start_ms * 1_000_000,
            end_unix_nano: minute + (start_ms + ms) * 1_000_000,
            status_code: 0,
            status_message: String::new(),
            service_name: service.into(),
            resource: resource.encode_to_vec().into(),
            scope: Default::default(),
            attributes: KeyValues { values: attributes }.encode_to_vec().into(),
            dropped_attributes_count: 0,
            events: Default::default(),
            dropped_events_count: 0,
            links: Default::default(),
            dropped_links_count: 0,
        }
    }

    fn calls(rollup: &Rollup) -> Vec<(Family, String, String, f64, f64, u64)> {
        let mut calls: Vec<_> = rollup
            .entries
            .iter()
            .filter(|(k, _)| k.family.is_edge())
            .map(|(k, s)| {
                (
                    k.family,
                    k.service.to_string(),
                    k.name.to_string(),
                    s.count,
                    s.errors,
                    s.latency.quantile(0.5).unwrap(),
                )
            })
            .collect();
        calls.sort_by(|a, b| a.partial_cmp(b).unwrap());
        calls
    }

    fn options() -> Arc<BuilderOptions> {
        let dimensions = vec!["deployment.environment".into()];
        Arc::new(BuilderOptions { call_dimensions: dimensions.clone(), dimensions, ..Default::default() })
    }

    fn near(nanos: u64, ms: u64) -> bool {
        (nanos as f64 - ms as f64 * 1e6).abs() <= ms as f64 * 1e6 * 0.01
    }

    #[test]
    fn pairs_calls_within_a_batch_and_names_uninstrumented_peers() {
        let mut failed = span("cart", 3, 2, SpanKind::Server, 10, 40, vec![]);
        failed.status_code = STATUS_ERROR;
        let rows = vec![
            span("frontend", 1, 0, SpanKind::Server, 0, 100, vec![]),
            span("frontend", 2, 1, SpanKind::Client, 5, 50, vec![]),
            failed,
            span(
                "cart",
                4,
                3,
                SpanKind::Client,
                20,
                10,
                vec![kv("db.system", s("redis")), kv("server.address", s("cache"))],
            ),
            span("cart", 5, 3, SpanKind::Client, 30, 5, vec![kv("server.address", s("api.example.com"))]),
            span("cart", 6, 3, SpanKind::Producer, 31, 1, vec![]),
            span("mailer", 7, 6, SpanKind::Consumer, 40, 20, vec![]),
        ];
        let rollup = Builder::once(options(), &rows);
        let got = calls(&rollup);
        let expected = [
            (Family::Call, "frontend", "cart", 1.0, 1.0, 50),
            (Family::Messaging, "cart", "mailer", 1.0, 0.0, 20),
            (Family::Database, "cart", "redis", 1.0, 0.0, 10),
            (Family::External, "cart", "api.example.com", 1.0, 0.0, 5),
        ];
        assert_eq!(got.len(), expected.len(), "{got:?}");
        for (got, want) in got.iter().zip(expected) {
            assert_eq!((got.0, got.1.as_str(), got.2.as_str(), got.3, got.4), (want.0, want.1, want.2, want.3, want.4));
            assert!(near(got.5, want.5), "{got:?}");
        }
        let spans: f64 = rollup.entries.iter().filter(|(k, _)| k.family == Family::Span).map(|(_, s)| s.count).sum();
        assert_eq!(spans, 7.0);
        assert!(rollup.entries.keys().all(|k| k.dims == vec![Some(Arc::from("prod"))]));
    }

    #[test]
    fn pairs_across_batches_in_either_order_within_the_window() {
        let now = Instant::now();
        let mut builder = Builder::new(options());
        // The server span arrives first, its client parent one batch later.
        let first = builder.add(&[span("cart", 3, 2, SpanKind::Server, 10, 40, vec![])], now);
        assert!(calls(&first).is_empty());
        let second = builder.add(
            &[span("frontend", 2, 1, SpanKind::Client, 5, 50, vec![kv("server.address", s("cart"))])],
            now + Duration::from_secs(1),
        );
        assert_eq!(calls(&second).len(), 1);
        assert_eq!(calls(&second)[0].1, "frontend");
        // A client answered in the next batch is not also a call to its peer.
        let third = builder.add(
            &[span("frontend", 8, 1, SpanKind::Client, 5, 50, vec![kv("server.address", s("cart"))])],
            now + Duration::from_secs(2),
        );
        assert!(calls(&third).is_empty());
        let fourth = builder.add(&[span("cart", 9, 8, SpanKind::Server, 10, 40, vec![])], now + Duration::from_secs(3));
        assert_eq!(calls(&fourth)[0].2, "cart");
        assert_eq!(calls(&fourth)[0].0, Family::Call);
        assert!(calls(&builder.finish()).is_empty());
        // Both client spans' own parent (span 1) never came.
        assert_eq!(builder.take_unpaired(), 2);
    }

    #[test]
    fn unanswered_clients_become_peer_calls_when_the_window_ends() {
        let now = Instant::now();
        let mut builder = Builder::new(options());
        builder.add(&[span("cart", 4, 3, SpanKind::Client, 20, 10, vec![kv("db.system", s("redis"))])], now);
        let later = builder.add(
            &[span("cart", 3, 0, SpanKind::Server, 10, 40, vec![]), span("x", 9, 77, SpanKind::Server, 0, 1, vec![])],
            now + Duration::from_secs(11),
        );
        assert_eq!(calls(&later).iter().map(|c| c.2.as_str()).collect::<Vec<_>>(), ["redis"]);
        // The orphan waits for its parent until the end.
        builder.finish();
        assert_eq!(builder.take_unpaired(), 1);
    }

    #[test]
    fn sampling_weights_scale_counts() {
        let mut weighted =
            span("a", 1, 0, SpanKind::Server, 0, 10, vec![kv(SAMPLING_WEIGHT, any_value::Value::DoubleValue(4.0))]);
        let rollup = Builder::once(options(), [&weighted]);
        assert_eq!(rollup.entries.values().next().unwrap().count, 4.0);
        weighted.attributes = Default::default();
        weighted.trace_state = "vendor=x,ot=th:8;rv:123".into();
        let rollup = Builder::once(options(), [&weighted]);
        assert_eq!(rollup.entries.values().next().unwrap().count, 2.0);
        assert_eq!(threshold_weight("ot=th:0"), Some(1.0));
        assert_eq!(threshold_weight("ot=th:c"), Some(4.0));
        assert_eq!(threshold_weight("ot=th:zz"), None);
        weighted.trace_state = String::new();
        weighted.attributes =
            KeyValues { values: vec![kv(SAMPLING_WEIGHT, any_value::Value::DoubleValue(-1.0))] }.encode_to_vec().into();
        let rollup = Builder::once(options(), [&weighted]);
        assert_eq!(rollup.entries.values().next().unwrap().count, 1.0, "a weight that is not positive counts as 1");
    }
}
