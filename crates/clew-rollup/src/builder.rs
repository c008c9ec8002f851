//! Computing rollups from batches of stored spans, pairing parents and children into calls.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clew_model::otlp::common::v1::{any_value, KeyValue};
use clew_model::otlp::trace::v1::span::SpanKind;
use clew_model::otlp::trace::v1::ResourceSpans;
use clew_model::{KeyValues, SpanId, SpanRow, TraceId, SAMPLING_WEIGHT};
use prost::Message;

use crate::{minute_of, Family, Key, Rollup};

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
    spans: HashMap<SpanKey, Parent>,
    /// Client and producer spans with a peer name that nothing answered yet.
    unanswered: HashMap<SpanKey, PeerCall>,
    /// Spans whose parent has not been seen, by parent.
    orphans: HashMap<SpanKey, Vec<Observed>>,
    /// The waiting batches, oldest first: when each came, its spans, and the parents its
    /// orphans wait for.
    batches: VecDeque<(Instant, Vec<SpanKey>, Vec<SpanKey>)>,
    unpaired: u64,
}

impl Builder {
    pub fn new(options: Arc<BuilderOptions>) -> Self {
        Self {
            options,
            spans: HashMap::new(),
            unanswered: HashMap::new(),
            orphans: HashMap::new(),
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
        let mut answered = std::collections::HashSet::new();
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

/// What the rollups need of a batch of spans: attributes decoded, dimensions and peers found.
pub struct Observations(Vec<Observed>);

impl Observations {
    pub fn of<'a>(options: &BuilderOptions, rows: impl IntoIterator<Item = &'a SpanRow>) -> Self {
        Self(observe(options, rows))
    }
}

fn observe<'a>(options: &BuilderOptions, rows: impl IntoIterator<Item = &'a SpanRow>) -> Vec<Observed> {
    // Rows of one resource share its buffer: its attributes are decoded once per batch.
    let mut resources: HashMap<(usize, usize), Vec<KeyValue>> = HashMap::new();
    let mut names: HashMap<&'a str, Arc<str>> = HashMap::new();
    rows.into_iter()
        .map(|row| {
            let resource = resources.entry((row.resource.as_ptr() as usize, row.resource.len())).or_insert_with(|| {
                ResourceSpans::decode(row.resource.as_ref())
                    .ok()
                    .and_then(|r| r.resource)
                    .map(|r| r.attributes)
                    .unwrap_or_default()
            });
            let attributes = KeyValues::decode(row.attributes.as_ref()).map(|kv| kv.values).unwrap_or_default();
            let find = |name: &str| text(&attributes, name).or_else(|| text(resource, name));
            let dims: Vec<Option<Arc<str>>> = options.dimensions.iter().map(|d| find(d).map(Arc::from)).collect();
            let call_dims = options
                .dimensions
                .iter()
                .zip(&dims)
                .map(|(name, value)| value.clone().filter(|_| options.call_dimensions.contains(name)))
                .collect();
            let peer = PEER_ATTRIBUTES.iter().find_map(|a| text(&attributes, a)).map(|name| {
                let family = if text(&attributes, DB_SYSTEM).is_some() { Family::Database } else { Family::External };
                (family, Arc::from(name))
            });
            let name = names.entry(row.name.as_str()).or_insert_with(|| Arc::from(row.name.as_str())).clone();
            Observed {
                trace_id: row.trace_id,
                span_id: row.span_id,
                parent: SpanId::from_slice(&row.parent_span_id).ok(),
                service: row.service_name.clone(),
                name,
                kind: row.kind,
                error: row.status_code == STATUS_ERROR,
                minute: minute_of(row.start_unix_nano),
                duration: row.duration_nanos(),
                weight: sampling_weight(&attributes, &row.trace_state),
                dims,
                call_dims,
                peer,
            }
        })
        .collect()
}

/// An attribute's value as text, for strings, integers, doubles and booleans.
fn text(attributes: &[KeyValue], name: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == name)?.value.as_ref()?.value.as_ref()?;
    match value {
        any_value::Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// How many spans a stored span stands for: the [`SAMPLING_WEIGHT`] attribute when positive,
/// else the adjusted count of an OpenTelemetry sampling threshold in the trace state
/// (`ot=th:…`), else 1.
fn sampling_weight(attributes: &[KeyValue], trace_state: &str) -> f64 {
    let recorded =
        attributes.iter().find(|kv| kv.key == SAMPLING_WEIGHT).and_then(|kv| match kv.value.as_ref()?.value {
            Some(any_value::Value::DoubleValue(d)) => Some(d),
            Some(any_value::Value::IntValue(i)) => Some(i as f64),
            _ => None,
        });
    recorded.filter(|w| w.is_finite() && *w > 0.0).or_else(|| threshold_weight(trace_state)).unwrap_or(1.0)
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
    use clew_model::otlp::common::v1::AnyValue;
    use clew_model::otlp::resource::v1::Resource;

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
        assert_eq!(sampling_weight(&[kv(SAMPLING_WEIGHT, any_value::Value::DoubleValue(-1.0))], ""), 1.0);
    }
}
