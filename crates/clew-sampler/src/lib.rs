//! Tail-based sampling: spans are held back per trace until the trace is complete, then the
//! trace is kept or dropped whole.
//!
//! Owns the buffer of undecided traces, the decisions (remembered for [`REMEMBER`] so late
//! spans follow them), the per-second cap of probabilistic keeps, and the sampler's own WAL.
//! The policy itself ([`TailSampling`]) comes from `clew-pipeline`, per project.
//!
//! Durability: [`Sampler::write`] returns once the spans it holds back are in the sampler's
//! WAL (`fdatasync`ed), so an acknowledged span survives a crash. Kept spans are written to
//! the [`SpanWriter`] (durable there), and only then is the decision appended to the sampler's
//! WAL; a WAL file is deleted once no undecided trace has spans in it. Replay after a crash
//! brings back every trace without a recorded decision; a crash between storing a kept trace
//! and recording its decision stores that trace again (at least once, never lost).
//!
//! Memory: held-back spans are kept encoded, as they arrived (each trace's share of a request
//! as one `ResourceSpans`), with a summary of what the policy reads (an error, the extent);
//! only kept traces, and traces of policies with keep rules, are decoded again. They are
//! counted by encoded size. Over `max_buffered_bytes` the oldest
//! traces are decided early, by the same policy; at twice that (the store cannot keep up with
//! what is kept) writes are refused with "retry later" instead of growing.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use clew_model::otlp::collector::trace::v1::ExportTraceServiceRequest;
use clew_model::otlp::common::v1::{any_value, AnyValue, KeyValue};
use clew_model::otlp::trace::v1::status::StatusCode;
use clew_model::otlp::trace::v1::ResourceSpans;
use clew_model::{Coded, SpanBatch, TenantId, TraceId, SAMPLING_REASON, SAMPLING_WEIGHT};
use clew_pipeline::{Decision, Reason, TailSampling, TraceSummary};
use clew_storage::{SpanWriter, StorageError};
use clew_wal::Wal;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use prost::Message;
use tokio::sync::{Notify, RwLock};
use tokio::task::JoinHandle;

const STATUS_ERROR: i32 = StatusCode::Error as i32;

/// How long a decision is remembered, so late spans of the trace follow it.
pub const REMEMBER: Duration = Duration::from_secs(120);
/// How often due traces are looked for.
const TICK: Duration = Duration::from_millis(200);
/// How often the WAL moves to a new file, so that decided files can be deleted.
const ROTATE_EVERY: Duration = Duration::from_secs(10);
/// Early decisions bring the buffer down to this share of its limit.
const EARLY_TARGET: f64 = 0.75;
/// The decision wait of traces replayed from the WAL when no policy is known for them.
const REPLAYED_WAIT: Duration = Duration::from_secs(10);

/// Settings of the sampler.
#[derive(Debug, Clone)]
pub struct SamplerOptions {
    /// The sampler's WAL directory.
    pub dir: PathBuf,
    /// Held-back spans (encoded size) over which the oldest traces are decided early.
    pub max_buffered_bytes: u64,
    /// What a refused client is told to wait.
    pub retry_after: Duration,
    /// The server's policy, for traces replayed from the WAL whose project has not sent spans
    /// since the start (their own policy is not known yet). Without one they are kept.
    pub fallback: Option<Arc<TailSampling>>,
}

/// One record of the sampler's WAL: spans held back, or decisions taken.
#[derive(Clone, PartialEq, Message)]
struct Record {
    #[prost(string, tag = "1")]
    tenant: String,
    /// An encoded `ExportTraceServiceRequest` (empty in decision records).
    #[prost(bytes = "bytes", tag = "2")]
    request: Bytes,
    #[prost(message, repeated, tag = "3")]
    decisions: Vec<DecisionRecord>,
}

#[derive(Clone, PartialEq, Message)]
struct DecisionRecord {
    #[prost(bytes = "vec", tag = "1")]
    trace_id: Vec<u8>,
    /// The kept spans' weight; 0 for a dropped trace.
    #[prost(double, tag = "2")]
    weight: f64,
    #[prost(string, tag = "3")]
    reason: String,
}

type Key = (TenantId, TraceId);

#[derive(Debug, Clone)]
enum Verdict {
    Keep { weight: f64, reason: Arc<str> },
    Drop,
}

impl Verdict {
    fn record(&self, trace_id: TraceId) -> DecisionRecord {
        let (weight, reason) = match self {
            Verdict::Keep { weight, reason } => (*weight, reason.to_string()),
            Verdict::Drop => (0.0, String::new()),
        };
        DecisionRecord { trace_id: trace_id.as_bytes().to_vec(), weight, reason }
    }

    fn of(record: &DecisionRecord) -> Self {
        if record.weight > 0.0 {
            Verdict::Keep { weight: record.weight, reason: record.reason.as_str().into() }
        } else {
            Verdict::Drop
        }
    }
}

/// One request's spans of one trace: an encoded `ResourceSpans`, and their summary.
struct Fragment {
    bytes: Bytes,
    spans: u64,
    summary: TraceSummary,
}

/// A trace whose spans are held back.
struct Pending {
    policy: Option<Arc<TailSampling>>,
    fragments: Vec<Bytes>,
    summary: TraceSummary,
    bytes: u64,
    spans: u64,
    first: Instant,
    last: Instant,
    /// The oldest WAL file holding its spans.
    min_seq: u64,
}

impl Pending {
    fn new(policy: Option<Arc<TailSampling>>, seq: u64, now: Instant) -> Self {
        let summary = TraceSummary::default();
        Self { policy, fragments: Vec::new(), summary, bytes: 0, spans: 0, first: now, last: now, min_seq: seq }
    }

    fn add(&mut self, fragment: Fragment, now: Instant) {
        self.spans += fragment.spans;
        self.bytes += fragment.bytes.len() as u64;
        self.summary.merge(&fragment.summary);
        self.last = now;
        self.fragments.push(fragment.bytes);
    }

    /// The policy's decision; the spans are decoded only for keep rules, when they are asked.
    fn decide(&self, trace_id: TraceId, policy: &TailSampling) -> Decision {
        policy.decide_summary(trace_id.as_bytes(), &self.summary, || {
            decode(&self.fragments)
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
                .find_map(|span| policy.keep_rule(span).map(str::to_owned))
        })
    }
}

/// A decided trace whose kept spans are not stored yet, or whose decision is not recorded.
struct Decided {
    key: Key,
    verdict: Verdict,
    fragments: Vec<Bytes>,
    bytes: u64,
    spans: u64,
    min_seq: u64,
}

/// A token bucket: at most `rate` probabilistic keeps per second per project.
struct Bucket {
    tokens: f64,
    at: Instant,
}

struct State {
    pending: HashMap<Key, Pending>,
    outbox: Vec<Decided>,
    decided: HashMap<Key, Verdict>,
    decided_order: VecDeque<(Instant, Key)>,
    /// The policy each project sent with its latest spans, for traces replayed from the WAL.
    policies: HashMap<TenantId, Arc<TailSampling>>,
    caps: HashMap<TenantId, Bucket>,
    buffered_bytes: u64,
    /// Whether the open WAL file got records since it was opened.
    wal_dirty: bool,
    wal_seq: u64,
    checkpoint: u64,
    retry_at: Option<Instant>,
}

struct Shared {
    writer: Arc<dyn SpanWriter>,
    options: SamplerOptions,
    wal: Wal,
    /// Writes hold it shared from before their WAL append until their spans are in `state`;
    /// the checkpoint takes it alone, so it never misses spans on their way in.
    appending: RwLock<()>,
    state: Mutex<State>,
    wake: Notify,
    closing: AtomicBool,
    metrics: Metrics,
}

/// The tail sampler. Cheap to clone.
#[derive(Clone)]
pub struct Sampler {
    shared: Arc<Shared>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Sampler {
    /// Replays the sampler's WAL (traces without a recorded decision are held back again) and
    /// starts deciding. Kept spans go to `writer`.
    pub fn open(
        options: SamplerOptions,
        writer: Arc<dyn SpanWriter>,
        registry: &mut Registry,
    ) -> Result<Self, StorageError> {
        let io = |context: &'static str| move |e| StorageError::internal(context, e);
        std::fs::create_dir_all(&options.dir).map_err(io("create the sampler's WAL directory"))?;
        let checkpoint = clew_wal::read_checkpoint(&options.dir).map_err(io("read the sampler's WAL checkpoint"))?;
        let now = Instant::now();
        let mut pending: HashMap<Key, Pending> = HashMap::new();
        let mut decided: HashMap<Key, Verdict> = HashMap::new();
        let mut unreadable = 0u64;
        let report = clew_wal::replay(&options.dir, |seq, payload| {
            let Ok(record) = Record::decode(payload) else { return false };
            let Ok(tenant) = record.tenant.parse::<TenantId>() else {
                unreadable += 1;
                return true;
            };
            for decision in &record.decisions {
                if let Ok(trace_id) = TraceId::from_slice(&decision.trace_id) {
                    let key = (tenant.clone(), trace_id);
                    // Spans before a decision were stored or dropped; later ones were handled
                    // as late spans before they were acknowledged.
                    pending.remove(&key);
                    decided.insert(key, Verdict::of(decision));
                }
            }
            let Ok(batch) = SpanBatch::decode(record.request) else {
                unreadable += 1;
                return true;
            };
            for (trace_id, fragment) in split(&batch) {
                let key = (tenant.clone(), trace_id);
                if !decided.contains_key(&key) {
                    pending.entry(key).or_insert_with(|| Pending::new(None, seq, now)).add(fragment, now);
                }
            }
            true
        })
        .map_err(io("replay the sampler's WAL"))?;
        if unreadable > 0 {
            tracing::error!(
                records = unreadable,
                "sampler wal records naming an invalid tenant or undecodable; skipped"
            );
        }
        let held: u64 = pending.values().map(|p| p.spans).sum();
        if report.records > 0 {
            tracing::info!(records = report.records, traces = pending.len(), spans = held, "sampler wal replayed");
        }
        let wal_seq = report.last_seq + 1;
        let wal = Wal::start(options.dir.clone(), wal_seq, Quiet).map_err(io("start the sampler's WAL"))?;
        let metrics = Metrics::register(registry);
        let decided_order = decided.keys().map(|key| (now, key.clone())).collect();
        let buffered_bytes = pending.values().map(|p| p.bytes).sum();
        let state = State {
            pending,
            outbox: Vec::new(),
            decided,
            decided_order,
            policies: HashMap::new(),
            caps: HashMap::new(),
            buffered_bytes,
            wal_dirty: false,
            wal_seq,
            checkpoint,
            retry_at: None,
        };
        let shared = Arc::new(Shared {
            writer,
            options,
            wal,
            appending: RwLock::new(()),
            state: Mutex::new(state),
            wake: Notify::new(),
            closing: AtomicBool::new(false),
            metrics,
        });
        // The gauges show what replay brought back before the first tick.
        shared.observe();
        let task = tokio::spawn(run(shared.clone()));
        Ok(Self { shared, task: Arc::new(Mutex::new(Some(task))) })
    }

    /// Takes `tenant`'s validated spans under `policy`. Spans of undecided traces are held back
    /// (durably, in the sampler's WAL) until their trace is decided; spans of decided traces
    /// follow the decision at once. When this returns `Ok`, nothing of `request` can be lost.
    pub async fn write(
        &self,
        tenant: &TenantId,
        policy: &Arc<TailSampling>,
        batch: SpanBatch,
    ) -> Result<(), StorageError> {
        let shared = &self.shared;
        if shared.closing.load(Ordering::Acquire) {
            return Err(StorageError::Closed);
        }
        let traces = split(&batch);
        drop(batch);
        let (undecided, decided) = {
            let mut state = shared.state.lock();
            if !state.policies.get(tenant).is_some_and(|p| Arc::ptr_eq(p, policy)) {
                state.policies.insert(tenant.clone(), policy.clone());
            }
            let (undecided, decided): (Vec<_>, Vec<_>) =
                traces.into_iter().partition(|(trace_id, _)| !state.decided.contains_key(&(tenant.clone(), *trace_id)));
            if !undecided.is_empty() && state.buffered_bytes >= shared.options.max_buffered_bytes.saturating_mul(2) {
                drop(state);
                shared.wake.notify_one();
                return Err(StorageError::Overloaded {
                    reason: "the tail sampler's buffer is full while decided traces are stored".into(),
                    retry_after: shared.options.retry_after,
                });
            }
            (undecided, decided)
        };
        let mut late = decided;
        if !undecided.is_empty() {
            let _appending = shared.appending.read().await;
            // The request of the record: each fragment as a `resource_spans` field.
            let mut request = Vec::with_capacity(undecided.iter().map(|(_, f)| f.bytes.len() + 8).sum());
            for (_, fragment) in &undecided {
                prost::encoding::bytes::encode(1, &fragment.bytes, &mut request);
            }
            let record = Record { tenant: tenant.as_str().into(), request: request.into(), decisions: Vec::new() };
            let framed = clew_wal::frame(&record.encode_to_vec());
            let seq = shared.wal.append(framed).await.map_err(|e| StorageError::Unavailable {
                context: "append to the sampler's WAL".into(),
                retry_after: shared.options.retry_after,
                source: Box::new(e),
            })?;
            let now = Instant::now();
            let mut state = shared.state.lock();
            state.wal_dirty = true;
            for (trace_id, fragment) in undecided {
                let key = (tenant.clone(), trace_id);
                if state.decided.contains_key(&key) {
                    // Decided while this request was on its way to the WAL.
                    late.push((trace_id, fragment));
                    continue;
                }
                let bytes = fragment.bytes.len() as u64;
                let pending = state.pending.entry(key).or_insert_with(|| Pending::new(Some(policy.clone()), seq, now));
                pending.policy = Some(policy.clone());
                pending.add(fragment, now);
                state.buffered_bytes += bytes;
            }
            if state.buffered_bytes > shared.options.max_buffered_bytes {
                shared.wake.notify_one();
            }
        }
        if !late.is_empty() {
            shared.follow_decisions(tenant, late).await?;
        }
        Ok(())
    }

    /// Decides every held-back trace now, stores what is kept and stops. What cannot be stored
    /// stays in the sampler's WAL for the next start.
    pub async fn close(&self) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        let task = self.task.lock().take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "the tail sampler stopped abnormally");
            }
        }
    }
}

impl Shared {
    /// Late spans of decided traces: kept ones are stored with their trace's weight now.
    async fn follow_decisions(&self, tenant: &TenantId, late: Vec<(TraceId, Fragment)>) -> Result<(), StorageError> {
        let mut kept = ExportTraceServiceRequest::default();
        let (mut kept_spans, mut dropped_spans) = (0, 0);
        {
            let state = self.state.lock();
            for (trace_id, fragment) in late {
                match state.decided.get(&(tenant.clone(), trace_id)) {
                    Some(Verdict::Keep { weight, reason }) => {
                        let mut decoded = decode(std::slice::from_ref(&fragment.bytes));
                        stamp(&mut decoded, *weight, reason);
                        kept_spans += fragment.spans;
                        kept.resource_spans.extend(decoded);
                    }
                    _ => dropped_spans += fragment.spans,
                }
            }
        }
        self.metrics.late_spans.get_or_create(&DecisionLabel { decision: "dropped" }).inc_by(dropped_spans);
        if kept_spans > 0 {
            self.writer.write(tenant, kept.into()).await?;
            self.metrics.late_spans.get_or_create(&DecisionLabel { decision: "kept" }).inc_by(kept_spans);
        }
        Ok(())
    }

    /// Moves due traces (complete, past their time limit, the oldest when memory is short, or
    /// all when closing) from the buffer to the outbox.
    fn decide_due(&self, now: Instant, closing: bool) {
        let mut state = self.state.lock();
        let state = &mut *state;
        let is_due = |key: &Key, p: &Pending| {
            let policy = p.policy.as_ref().or_else(|| state.policies.get(&key.0)).or(self.options.fallback.as_ref());
            let (wait, max) = policy.map_or((REPLAYED_WAIT, REPLAYED_WAIT), |p| (p.decision_wait, p.max_wait));
            closing || now >= p.last + wait || now >= p.first + max
        };
        let (due, rest): (Vec<_>, Vec<_>) = state.pending.iter().partition(|(key, p)| is_due(key, p));
        let mut early = Vec::new();
        let target = (self.options.max_buffered_bytes as f64 * EARLY_TARGET) as u64;
        let mut left = state.buffered_bytes - due.iter().map(|(_, p)| p.bytes).sum::<u64>();
        if state.buffered_bytes > self.options.max_buffered_bytes && left > target {
            let mut rest = rest;
            rest.sort_by_key(|(_, p)| p.first);
            for (key, p) in rest {
                if left <= target {
                    break;
                }
                left -= p.bytes;
                early.push(key.clone());
            }
        }
        let due: Vec<Key> = due.into_iter().map(|(key, _)| key.clone()).collect();
        for (key, early) in due.into_iter().map(|k| (k, false)).chain(early.into_iter().map(|k| (k, true))) {
            let Some(p) = state.pending.remove(&key) else { continue };
            let policy = p
                .policy
                .clone()
                .or_else(|| state.policies.get(&key.0).cloned())
                .or_else(|| self.options.fallback.clone());
            let verdict = match policy {
                None => {
                    self.metrics.traces.get_or_create(&TraceLabels { decision: "kept", reason: "sampling_off" }).inc();
                    Verdict::Keep { weight: 1.0, reason: "sampling_off".into() }
                }
                Some(policy) => match p.decide(key.1, &policy) {
                    Decision::Keep { reason: Reason::Probabilistic, .. }
                        if !take_token(&mut state.caps, &key.0, policy.max_traces_per_second, now) =>
                    {
                        self.metrics.traces.get_or_create(&TraceLabels { decision: "dropped", reason: "capped" }).inc();
                        Verdict::Drop
                    }
                    Decision::Keep { reason, weight } => {
                        self.metrics
                            .traces
                            .get_or_create(&TraceLabels { decision: "kept", reason: reason.label() })
                            .inc();
                        Verdict::Keep { weight, reason: reason.attribute().into() }
                    }
                    Decision::Drop => {
                        self.metrics
                            .traces
                            .get_or_create(&TraceLabels { decision: "dropped", reason: "unsampled" })
                            .inc();
                        Verdict::Drop
                    }
                },
            };
            if early {
                self.metrics.early_decisions.inc();
            }
            state.decided.insert(key.clone(), verdict.clone());
            state.decided_order.push_back((now, key.clone()));
            state.outbox.push(Decided {
                key,
                verdict,
                fragments: p.fragments,
                bytes: p.bytes,
                spans: p.spans,
                min_seq: p.min_seq,
            });
        }
        while state.decided_order.front().is_some_and(|(at, _)| now.duration_since(*at) > REMEMBER) {
            if let Some((_, key)) = state.decided_order.pop_front() {
                state.decided.remove(&key);
            }
        }
    }

    /// Stores the kept spans of the outbox, then records the decisions; what fails to store
    /// goes back to the outbox for the next try (after the store's retry delay, unless
    /// `closing`).
    async fn forward(&self, closing: bool) {
        let outbox = {
            let mut state = self.state.lock();
            if !closing && state.retry_at.is_some_and(|at| Instant::now() < at) {
                return;
            }
            std::mem::take(&mut state.outbox)
        };
        let mut by_tenant: HashMap<TenantId, Vec<Decided>> = HashMap::new();
        for decided in outbox {
            by_tenant.entry(decided.key.0.clone()).or_default().push(decided);
        }
        for (tenant, decided) in by_tenant {
            let mut kept = ExportTraceServiceRequest::default();
            let mut spans = [0u64; 2];
            for d in &decided {
                match &d.verdict {
                    Verdict::Keep { weight, reason } => {
                        let mut fragments = decode(&d.fragments);
                        stamp(&mut fragments, *weight, reason);
                        kept.resource_spans.extend(fragments);
                        spans[0] += d.spans;
                    }
                    Verdict::Drop => spans[1] += d.spans,
                }
            }
            if !kept.resource_spans.is_empty() {
                if let Err(e) = self.writer.write(&tenant, kept.into()).await {
                    tracing::warn!(error = %e, tenant = %tenant, "storing sampled traces failed; retrying");
                    self.metrics.forward_failures.inc();
                    let mut state = self.state.lock();
                    state.retry_at = Some(Instant::now() + e.retry_after().unwrap_or(Duration::from_secs(1)));
                    state.outbox.extend(decided);
                    continue;
                }
            }
            let record = Record {
                tenant: tenant.as_str().into(),
                request: Bytes::new(),
                decisions: decided.iter().map(|d| d.verdict.record(d.key.1)).collect(),
            };
            if let Err(e) = self.wal.append(clew_wal::frame(&record.encode_to_vec())).await {
                // The spans are stored; a restart before the next decision record would store
                // them once more.
                tracing::error!(error = %e, "recording sampling decisions failed");
            }
            self.metrics.spans.get_or_create(&DecisionLabel { decision: "kept" }).inc_by(spans[0]);
            self.metrics.spans.get_or_create(&DecisionLabel { decision: "dropped" }).inc_by(spans[1]);
            let mut state = self.state.lock();
            state.wal_dirty = true;
            state.buffered_bytes -= decided.iter().map(|d| d.bytes).sum::<u64>();
        }
    }

    /// Moves the WAL to a new file when the open one has records, and deletes the files no
    /// undecided trace needs.
    async fn checkpoint(&self) {
        let _exclusive = self.appending.write().await;
        let dirty = self.state.lock().wal_dirty;
        if dirty {
            match self.wal.rotate().await {
                Ok(seq) => {
                    let mut state = self.state.lock();
                    state.wal_seq = seq;
                    state.wal_dirty = false;
                }
                Err(e) => tracing::error!(error = %e, "rotating the sampler's WAL failed"),
            }
        }
        let upto = {
            let state = self.state.lock();
            let pinned = state.pending.values().map(|p| p.min_seq).chain(state.outbox.iter().map(|d| d.min_seq)).min();
            let upto = pinned.unwrap_or(state.wal_seq).min(state.wal_seq) - 1;
            (upto > state.checkpoint).then_some(upto)
        };
        if let Some(upto) = upto {
            let dir = self.options.dir.clone();
            match tokio::task::spawn_blocking(move || clew_wal::checkpoint(&dir, upto)).await {
                Ok(Ok(())) => self.state.lock().checkpoint = upto,
                Ok(Err(e)) => tracing::error!(error = %e, "checkpointing the sampler's WAL failed"),
                Err(e) => tracing::error!(error = %e, "checkpointing the sampler's WAL failed"),
            }
        }
    }

    fn observe(&self) {
        let state = self.state.lock();
        self.metrics.buffered_bytes.set(state.buffered_bytes as i64);
        self.metrics.buffered_traces.set((state.pending.len() + state.outbox.len()) as i64);
    }
}

/// The sampler's loop: decide what is due, store what is kept, checkpoint, until closed.
async fn run(shared: Arc<Shared>) {
    let mut last_checkpoint = Instant::now();
    loop {
        let closing = shared.closing.load(Ordering::Acquire);
        if !closing {
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                () = shared.wake.notified() => {}
            }
        }
        let closing = shared.closing.load(Ordering::Acquire);
        shared.decide_due(Instant::now(), closing);
        shared.forward(closing).await;
        if closing || last_checkpoint.elapsed() >= ROTATE_EVERY {
            shared.checkpoint().await;
            last_checkpoint = Instant::now();
        }
        shared.observe();
        if closing {
            let left = shared.state.lock().outbox.len();
            if left > 0 {
                tracing::warn!(
                    traces = left,
                    "decided traces could not be stored at shutdown; the sampler's WAL keeps them"
                );
            }
            return;
        }
    }
}

fn take_token(caps: &mut HashMap<TenantId, Bucket>, tenant: &TenantId, rate: u32, now: Instant) -> bool {
    if rate == 0 {
        return true;
    }
    let rate = f64::from(rate);
    let bucket = caps.entry(tenant.clone()).or_insert(Bucket { tokens: rate, at: now });
    bucket.tokens = (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(rate);
    bucket.at = now;
    if bucket.tokens >= 1.0 {
        bucket.tokens -= 1.0;
        true
    } else {
        false
    }
}

/// Records the decision on kept spans: their weight and why their trace was kept.
fn stamp(fragments: &mut [ResourceSpans], weight: f64, reason: &str) {
    for span in fragments.iter_mut().flat_map(|r| &mut r.scope_spans).flat_map(|s| &mut s.spans) {
        span.attributes.retain(|kv| kv.key != SAMPLING_WEIGHT && kv.key != SAMPLING_REASON);
        for (key, value) in [
            (SAMPLING_WEIGHT, any_value::Value::DoubleValue(weight)),
            (SAMPLING_REASON, any_value::Value::StringValue(reason.to_owned())),
        ] {
            span.attributes.push(KeyValue {
                key: key.into(),
                value: Some(AnyValue { value: Some(value) }),
                ..KeyValue::default()
            });
        }
    }
}

/// Held-back fragments decoded. They were cut from checked requests, so none should fail;
/// one that does is reported, not passed over in silence.
fn decode(fragments: &[Bytes]) -> Vec<ResourceSpans> {
    let decoded = fragments.iter().map(|bytes| ResourceSpans::decode(bytes.as_ref()));
    decoded
        .filter_map(|fragment| {
            fragment.inspect_err(|e| tracing::error!(error = %e, "held-back spans did not decode; they are lost")).ok()
        })
        .collect()
}

/// Splits a batch into one fragment per trace and resource, each holding only that trace's
/// spans under their own resource and scope, copied as they are. Spans with an invalid trace
/// ID (which validation removes before this) are left out.
fn split(batch: &SpanBatch) -> Vec<(TraceId, Fragment)> {
    batch
        .by_trace()
        .into_iter()
        .map(|(trace_id, encoded, spans)| {
            let mut summary = TraceSummary::default();
            for span in &spans {
                summary.add(span.status_code() == STATUS_ERROR, span.start_unix_nano(), span.end_unix_nano());
            }
            (trace_id, Fragment { bytes: encoded.into(), spans: spans.len() as u64, summary })
        })
        .collect()
}

struct Quiet;

impl clew_wal::WalObserver for Quiet {
    fn synced(&self, _: u64, _: u64) {}
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TraceLabels {
    decision: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabel {
    decision: &'static str,
}

#[derive(Clone, Default)]
struct Metrics {
    traces: Family<TraceLabels, Counter>,
    spans: Family<DecisionLabel, Counter>,
    late_spans: Family<DecisionLabel, Counter>,
    early_decisions: Counter,
    forward_failures: Counter,
    buffered_bytes: Gauge,
    buffered_traces: Gauge,
}

impl Metrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        let r = registry.sub_registry_with_prefix("clew_sampler");
        r.register(
            "traces",
            "Traces decided: kept (error, slow, rule, probabilistic) or dropped (unsampled, capped)",
            m.traces.clone(),
        );
        r.register("spans", "Held-back spans by decision (kept, dropped)", m.spans.clone());
        r.register("late_spans", "Spans that arrived after their trace was decided, by decision", m.late_spans.clone());
        r.register(
            "early_decisions",
            "Traces decided before they were complete because memory was short",
            m.early_decisions.clone(),
        );
        r.register(
            "forward_failures",
            "Attempts to store kept traces that failed and will be retried",
            m.forward_failures.clone(),
        );
        r.register("buffered_bytes", "Encoded size of the spans held back", m.buffered_bytes.clone());
        r.register("buffered_traces", "Traces held back, undecided or not yet stored", m.buffered_traces.clone());
        m
    }
}

#[cfg(test)]
mod tests {
    use clew_model::otlp::common::v1::InstrumentationScope;
    use clew_model::otlp::resource::v1::Resource;
    use clew_model::otlp::trace::v1::{ScopeSpans, Span};

    use super::*;

    fn span(trace: u8, id: u8) -> Span {
        Span { trace_id: vec![trace; 16], span_id: vec![id; 8], ..Span::default() }
    }

    fn scope(name: &str, spans: Vec<Span>) -> ScopeSpans {
        ScopeSpans {
            scope: Some(InstrumentationScope { name: name.into(), ..Default::default() }),
            spans,
            ..Default::default()
        }
    }

    fn resource(service: &str, scopes: Vec<ScopeSpans>) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue { value: Some(any_value::Value::StringValue(service.into())) }),
                    ..KeyValue::default()
                }],
                ..Resource::default()
            }),
            scope_spans: scopes,
            ..ResourceSpans::default()
        }
    }

    #[test]
    fn split_gives_each_trace_its_spans_under_their_own_resource_and_scope() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![
                resource("a", vec![scope("x", vec![span(1, 1), span(2, 2), span(1, 3)]), scope("y", vec![span(1, 4)])]),
                resource("b", vec![scope("z", vec![span(2, 5)])]),
            ],
        };
        let parts = split(&SpanBatch::from(request.clone()));
        let trace = |n: u8| TraceId::from_slice(&[n; 16]).unwrap();
        let got: Vec<(TraceId, ResourceSpans)> =
            parts.iter().map(|(id, f)| (*id, ResourceSpans::decode(f.bytes.as_ref()).unwrap())).collect();
        assert_eq!(got.len(), 3, "trace 1 and 2 under a, trace 2 under b");
        assert_eq!(got[0].0, trace(1));
        assert_eq!(
            got[0].1,
            resource("a", vec![scope("x", vec![span(1, 1), span(1, 3)]), scope("y", vec![span(1, 4)])])
        );
        assert_eq!(got[1].1, resource("a", vec![scope("x", vec![span(2, 2)])]));
        assert_eq!((got[2].0, &got[2].1), (trace(2), &resource("b", vec![scope("z", vec![span(2, 5)])])));
        let total: u64 = parts.iter().map(|(_, f)| f.spans).sum();
        assert_eq!(total, 5, "no span lost or repeated");
        assert_eq!(parts[0].1.summary, TraceSummary { error: false, start: 0, end: 0 });
    }

    #[test]
    fn stamping_replaces_what_a_client_sent() {
        let mut fragments = vec![resource("a", vec![scope("x", vec![span(1, 1)])])];
        fragments[0].scope_spans[0].spans[0].attributes.push(KeyValue {
            key: SAMPLING_WEIGHT.into(),
            value: Some(AnyValue { value: Some(any_value::Value::DoubleValue(1000.0)) }),
            ..KeyValue::default()
        });
        stamp(&mut fragments, 4.0, "probabilistic");
        let attributes = &fragments[0].scope_spans[0].spans[0].attributes;
        assert_eq!(attributes.len(), 2);
        assert_eq!(attributes[0].value.as_ref().unwrap().value, Some(any_value::Value::DoubleValue(4.0)));
    }

    #[test]
    fn the_cap_refills_at_its_rate() {
        let mut caps = HashMap::new();
        let tenant = TenantId::default_tenant();
        let t0 = Instant::now();
        assert_eq!((0..5).filter(|_| take_token(&mut caps, &tenant, 3, t0)).count(), 3);
        assert!(take_token(&mut caps, &tenant, 3, t0 + Duration::from_millis(400)), "1.2 tokens came back");
        assert!(!take_token(&mut caps, &tenant, 3, t0 + Duration::from_millis(400)));
        assert!((0..10).all(|_| take_token(&mut caps, &tenant, 0, t0)), "0 means no cap");
    }
}
