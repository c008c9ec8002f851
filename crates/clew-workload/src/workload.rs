//! Synthetic traces. The "std" profile: 10 services with 9 resource attributes, 20 operations
//! each, 10-span traces, 10 span attributes of mixed cardinality, an exception event on 10% of
//! spans, about 1 in 6 spans failed, 1,000 spans per export request.

use std::str::FromStr;

use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::{any_value::Value, AnyValue, InstrumentationScope, KeyValue};
use clew_model::otlp::resource::v1::Resource;
use clew_model::otlp::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use clew_model::TraceId;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

const SERVICES: [&str; 10] =
    ["frontend", "checkout", "cart", "payment", "shipping", "email", "currency", "recommendation", "ads", "inventory"];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const DB_SYSTEMS: [&str; 3] = ["postgresql", "redis", "mongodb"];
const STACK: &str = "java.io.IOException: connection reset by peer\n\tat com.example.net.Client.read(Client.java:211)\n\tat com.example.orders.Repository.load(Repository.java:88)\n\tat com.example.orders.Handler.handle(Handler.java:42)";

/// The shape of generated traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// DESIGN.md's standard workload, ~500 bytes per span as OTLP protobuf.
    Std,
    /// 100 spans per request with few attributes: many small requests.
    Small,
    /// 1,000 spans per request with 50 attributes each: few large requests.
    Wide,
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "std" => Ok(Self::Std),
            "small" => Ok(Self::Small),
            "wide" => Ok(Self::Wide),
            other => Err(format!("unknown profile {other:?}: use std, small or wide")),
        }
    }
}

impl Profile {
    pub fn spans_per_request(self) -> usize {
        match self {
            Self::Std | Self::Wide => 1000,
            Self::Small => 100,
        }
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue { key: key.into(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
}

fn s(value: impl Into<String>) -> Value {
    Value::StringValue(value.into())
}

/// A deterministic generator of export requests (same seed, same requests, given the same
/// clock values).
pub struct Workload {
    profile: Profile,
    rng: SmallRng,
    resources: Vec<Resource>,
}

impl Workload {
    pub fn new(profile: Profile, seed: u64) -> Self {
        let resources = SERVICES
            .iter()
            .enumerate()
            .map(|(i, service)| Resource {
                attributes: vec![
                    kv("service.name", s(*service)),
                    kv("service.namespace", s("shop")),
                    kv("service.version", s(format!("1.{i}.0"))),
                    kv("service.instance.id", s(format!("{service}-{seed:x}-{i}"))),
                    kv("deployment.environment.name", s("production")),
                    kv("host.name", s(format!("node-{}", i % 3))),
                    kv("telemetry.sdk.name", s("opentelemetry")),
                    kv("telemetry.sdk.language", s(if i % 2 == 0 { "java" } else { "go" })),
                    kv("telemetry.sdk.version", s("1.40.0")),
                ],
                ..Default::default()
            })
            .collect();
        Self { profile, rng: SmallRng::seed_from_u64(seed), resources }
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// One export request of whole traces that end around `now_nanos`, and their trace IDs.
    pub fn request(&mut self, now_nanos: u64) -> (ExportTraceServiceRequest, Vec<TraceId>) {
        let spans_per_trace = 10;
        let traces = self.profile.spans_per_request() / spans_per_trace;
        let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
        let mut ids = Vec::with_capacity(traces);
        for _ in 0..traces {
            let trace_id = self.trace_id();
            ids.push(trace_id);
            self.trace(trace_id, spans_per_trace, now_nanos, &mut by_service);
        }
        let resource_spans = by_service
            .into_iter()
            .enumerate()
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(i, spans)| ResourceSpans {
                resource: Some(self.resources[i].clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "io.opentelemetry.http".into(),
                        version: "2.8.0".into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                }],
                schema_url: String::new(),
            })
            .collect();
        (ExportTraceServiceRequest { resource_spans }, ids)
    }

    fn trace_id(&mut self) -> TraceId {
        loop {
            let mut bytes = [0u8; 16];
            self.rng.fill_bytes(&mut bytes);
            if let Ok(id) = TraceId::from_bytes(bytes) {
                return id;
            }
        }
    }

    fn span_id(&mut self) -> Vec<u8> {
        let mut bytes = [0u8; 8];
        self.rng.fill_bytes(&mut bytes);
        bytes[0] |= 1;
        bytes.to_vec()
    }

    fn trace(&mut self, trace_id: TraceId, spans: usize, now: u64, by_service: &mut [Vec<Span>]) {
        let trace_start = now.saturating_sub(self.rng.random_range(5_000_000..2_000_000_000));
        let mut parents: Vec<(Vec<u8>, u64, u64)> = Vec::with_capacity(spans);
        for i in 0..spans {
            let service = self.rng.random_range(0..SERVICES.len());
            let span_id = self.span_id();
            let (parent_id, start, budget) = if i == 0 {
                (Vec::new(), trace_start, self.rng.random_range(2_000_000..400_000_000u64))
            } else {
                let (pid, pstart, pdur) = parents[self.rng.random_range(0..parents.len())].clone();
                let offset = self.rng.random_range(0..pdur / 2 + 1);
                (pid, pstart + offset, (pdur - offset).max(1000))
            };
            let duration = self.rng.random_range(budget / 4..=budget);
            let placed = Span {
                trace_id: trace_id.as_bytes().to_vec(),
                span_id: span_id.clone(),
                parent_span_id: parent_id,
                start_time_unix_nano: start,
                end_time_unix_nano: start + duration,
                ..Default::default()
            };
            let span = self.describe(placed, service, i == 0);
            parents.push((span_id, start, duration));
            by_service[service].push(span);
        }
    }

    /// Gives a span with its IDs and times the rest: name, kind, attributes, events, status.
    fn describe(&mut self, placed: Span, service: usize, root: bool) -> Span {
        let (start, duration) = (placed.start_time_unix_nano, placed.end_time_unix_nano - placed.start_time_unix_nano);
        let op = self.rng.random_range(0..20);
        let failed = self.rng.random_range(0..6) == 0;
        let route = format!("/api/{}/{}/{{id}}", SERVICES[service], op);
        let method = METHODS[op % METHODS.len()];
        let user = self.rng.random_range(0..50_000u32);
        let item = self.rng.random_range(0..1_000_000u32);
        let status_code: i64 = if failed { 500 + i64::from(op % 4 == 0) * 3 } else { 200 };
        let mut attributes = vec![
            kv("http.request.method", s(method)),
            kv("http.route", s(route.clone())),
            kv("http.response.status_code", Value::IntValue(status_code)),
            kv(
                "url.full",
                s(format!(
                    "https://{}.shop.example/api/{}/{op}/{item}?user={user}",
                    SERVICES[service], SERVICES[service]
                )),
            ),
            kv("server.address", s(format!("{}.shop.svc", SERVICES[service]))),
            kv("server.port", Value::IntValue(8080)),
            kv("db.system", s(DB_SYSTEMS[op % DB_SYSTEMS.len()])),
            kv("enduser.id", s(format!("user-{user}"))),
            kv("thread.id", Value::IntValue(self.rng.random_range(1..64))),
            kv("http.response.body.size", Value::IntValue(self.rng.random_range(100..100_000))),
        ];
        match self.profile {
            Profile::Small => attributes.truncate(3),
            Profile::Wide => {
                for k in 0..40 {
                    attributes.push(kv(
                        &format!("app.attribute.{k}"),
                        s(format!("value-{}", self.rng.random_range(0..1000))),
                    ));
                }
            }
            Profile::Std => {}
        }
        let events = if self.profile != Profile::Small && self.rng.random_range(0..10) == 0 {
            vec![span::Event {
                time_unix_nano: start + duration / 2,
                name: "exception".into(),
                attributes: vec![
                    kv("exception.type", s("java.io.IOException")),
                    kv("exception.message", s("connection reset by peer")),
                    kv("exception.stacktrace", s(STACK)),
                ],
                dropped_attributes_count: 0,
            }]
        } else {
            Vec::new()
        };
        Span {
            flags: 0x101,
            name: format!("{method} {route}"),
            kind: if root {
                span::SpanKind::Server
            } else {
                [span::SpanKind::Server, span::SpanKind::Client, span::SpanKind::Internal][op % 3]
            } as i32,
            attributes,
            events,
            status: Some(if failed { Status { message: "internal error".into(), code: 2 } } else { Status::default() }),
            ..placed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest as Req;

    fn spans(req: &Req) -> Vec<&Span> {
        req.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans).collect()
    }

    #[test]
    fn std_requests_have_the_documented_shape() {
        let (req, ids) = Workload::new(Profile::Std, 1).request(1_700_000_000_000_000_000);
        let spans = spans(&req);
        assert_eq!((spans.len(), ids.len()), (1000, 100));
        assert!(spans.iter().all(|s| s.attributes.len() == 10 && s.end_time_unix_nano >= s.start_time_unix_nano));
        for span in &spans {
            assert!(
                TraceId::from_slice(&span.trace_id).is_ok() && clew_model::SpanId::from_slice(&span.span_id).is_ok()
            );
            assert!(span.parent_span_id.is_empty() || span.parent_span_id.len() == 8);
            assert!(span.start_time_unix_nano > 0);
        }
        let traced: std::collections::HashSet<&[u8]> = spans.iter().map(|s| s.trace_id.as_slice()).collect();
        assert_eq!(traced.len(), ids.len(), "ten spans per trace, every trace ID returned");
        let errors = spans.iter().filter(|s| s.status.as_ref().is_some_and(|st| st.code == 2)).count();
        assert!((100..250).contains(&errors), "about 1 in 6 spans fail, got {errors}");
        let with_events = spans.iter().filter(|s| !s.events.is_empty()).count();
        assert!((50..160).contains(&with_events), "about 10% have an exception, got {with_events}");
        let bytes = prost::Message::encoded_len(&req) / 1000;
        assert!((350..700).contains(&bytes), "~500 bytes per span, got {bytes}");
    }

    #[test]
    fn same_seed_same_requests() {
        let a = Workload::new(Profile::Small, 7).request(1_000_000_000_000);
        let b = Workload::new(Profile::Small, 7).request(1_000_000_000_000);
        assert_eq!(a, b);
    }
}
