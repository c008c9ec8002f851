//! [`SpanBatch`]: an export request decoded once, in place.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

use crate::otlp::collector::trace::v1::ExportTraceServiceRequest;
use crate::wire::{check_field, AttributesRef, Field, Fields, Kind, Msg, ValueRef, ValuesRef, Wire, WireError};
use crate::{TraceId, SERVICE_NAME};

/// Where something lies in the batch's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span32 {
    start: u32,
    end: u32,
}

impl Span32 {
    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// The fields of one repeated message field, one after the other with nothing between them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Run {
    at: Span32,
    count: u32,
}

#[derive(Debug, Clone)]
struct ResourceEntry {
    /// The `Resource` message, when present.
    resource: Option<Span32>,
    schema_url: Span32,
    service_name: Arc<str>,
    scopes: Range<u32>,
}

#[derive(Debug, Clone)]
struct ScopeEntry {
    scope: Option<Span32>,
    schema_url: Span32,
    spans: Range<u32>,
}

#[derive(Debug, Clone, Default)]
struct SpanEntry {
    /// The encoded `Span` message.
    whole: Span32,
    trace_id: Span32,
    span_id: Span32,
    trace_state: Span32,
    parent_span_id: Span32,
    flags: u32,
    name: Span32,
    kind: i32,
    start: u64,
    end: u64,
    attributes: Run,
    /// Where the span's attributes start in [`SpanBatch::attributes`].
    first_attribute: u32,
    dropped_attributes: u32,
    events: Run,
    dropped_events: u32,
    links: Run,
    dropped_links: u32,
    status_message: Span32,
    status_code: i32,
}

/// An OTLP `ExportTraceServiceRequest` as received: its protobuf bytes, checked as strictly as
/// prost's decoder checks them, and where in them each resource, scope and span lies. Every
/// stage of ingest reads spans from here; none decodes them into owned values, and the bytes
/// are what the write-ahead log keeps when nothing changed them.
#[derive(Debug, Clone)]
pub struct SpanBatch {
    bytes: Bytes,
    resources: Vec<ResourceEntry>,
    scopes: Vec<ScopeEntry>,
    spans: Vec<SpanEntry>,
    /// Every span attribute, span by span, as found when the batch was checked.
    attributes: Vec<AttributeEntry>,
}

/// One span attribute: where its key and value are.
#[derive(Debug, Clone, Copy)]
struct AttributeEntry {
    key: Span32,
    value: ValueEntry,
}

#[derive(Debug, Clone, Copy)]
enum ValueEntry {
    Empty,
    Str(Span32),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Span32),
    /// An encoded `ArrayValue`.
    Array(Span32),
    /// An encoded `KeyValueList`.
    Map(Span32),
}

/// For requests made in process (tests, benchmarks, spans the server changed itself), which
/// stay within prost's nesting limit. A request from a client goes through
/// [`SpanBatch::decode`] or [`SpanBatch::from_request`], which refuse what prost would.
impl From<ExportTraceServiceRequest> for SpanBatch {
    fn from(request: ExportTraceServiceRequest) -> Self {
        Self::from_request(&request).expect("a request made in process is within prost's limits")
    }
}

/// The request's layout is not the one encoders write (a repeated field interleaved with
/// others, a long-form key, a message field repeated): it is encoded again by prost, whose
/// output always has that layout.
struct Irregular;

enum IndexError {
    Invalid(WireError),
    Irregular,
}

impl From<WireError> for IndexError {
    fn from(e: WireError) -> Self {
        Self::Invalid(e)
    }
}

impl From<Irregular> for IndexError {
    fn from(_: Irregular) -> Self {
        Self::Irregular
    }
}

impl SpanBatch {
    /// Checks and indexes an encoded `ExportTraceServiceRequest`. Fails exactly when prost's
    /// decoder would, with its kind of message.
    pub fn decode(bytes: Bytes) -> Result<Self, WireError> {
        if u32::try_from(bytes.len()).is_err() {
            return Err(WireError("request larger than 4 GiB".into()));
        }
        match Indexer::new(&bytes).run() {
            Ok((resources, scopes, spans, attributes)) => Ok(Self { bytes, resources, scopes, spans, attributes }),
            Err(IndexError::Invalid(e)) => Err(e),
            Err(IndexError::Irregular) => {
                // prost writes every repeated field in one run, keys in their short form.
                let request = ExportTraceServiceRequest::decode(bytes.as_ref())?;
                Self::from_request(&request)
            }
        }
    }

    /// Encodes `request` and indexes it. Fails on what prost's decoder would refuse to read
    /// back (values nested deeper than its limit, as OTLP/JSON can express).
    pub fn from_request(request: &ExportTraceServiceRequest) -> Result<Self, WireError> {
        Self::decode(Bytes::from(request.encode_to_vec()))
    }

    /// The request decoded into owned values, for the stages that change it. The bytes were
    /// checked when the batch was made, so this fails only if that check and prost disagree.
    pub fn to_request(&self) -> Result<ExportTraceServiceRequest, WireError> {
        Ok(ExportTraceServiceRequest::decode(self.bytes.as_ref())?)
    }

    /// The encoded request.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn span_count(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn resources(&self) -> impl ExactSizeIterator<Item = ResourceView<'_>> {
        (0..self.resources.len()).map(move |i| ResourceView { batch: self, entry: &self.resources[i] })
    }

    /// Every span, in request order (the index each stage reports spans by).
    pub fn spans(&self) -> impl Iterator<Item = SpanView<'_>> {
        self.resources().flat_map(|resource| resource.scopes().flat_map(|scope| scope.spans()))
    }

    /// Each trace's spans, in the order of their first span: per resource, an encoded
    /// `ResourceSpans` with the resource, and the scopes of the trace's spans holding only
    /// those, copied as they are; spans with an invalid trace ID are left out.
    pub fn by_trace(&self) -> Vec<(TraceId, Vec<u8>, Vec<SpanView<'_>>)> {
        let mut out = Vec::new();
        for resource in self.resources() {
            // Per trace of this resource: its spans, by scope in order.
            let mut traces: Vec<(TraceId, Vec<ScopeGroup<'_>>)> = Vec::new();
            let mut index: std::collections::HashMap<TraceId, usize> = std::collections::HashMap::new();
            for scope in resource.scopes() {
                for span in scope.spans() {
                    let Ok(trace_id) = TraceId::from_slice(span.trace_id()) else { continue };
                    let at = *index.entry(trace_id).or_insert_with(|| {
                        traces.push((trace_id, Vec::new()));
                        traces.len() - 1
                    });
                    let scopes = &mut traces[at].1;
                    match scopes.last_mut() {
                        Some((last, spans)) if std::ptr::eq(last.entry, scope.entry) => spans.push(span),
                        _ => scopes.push((scope, vec![span])),
                    }
                }
            }
            for (trace_id, scopes) in traces {
                let mut encoded = Vec::new();
                if let Some(message) = resource.resource() {
                    put(&mut encoded, 1, message);
                }
                let mut spans = Vec::new();
                for (scope, scope_spans) in scopes {
                    let mut inner = Vec::new();
                    if let Some(message) = scope.scope() {
                        put(&mut inner, 1, message);
                    }
                    for span in &scope_spans {
                        put(&mut inner, 2, span.batch.slice(span.entry.whole));
                    }
                    put_text(&mut inner, 3, self.text(scope.entry.schema_url));
                    put(&mut encoded, 2, &inner);
                    spans.extend(scope_spans);
                }
                put_text(&mut encoded, 3, resource.schema_url());
                out.push((trace_id, encoded, spans));
            }
        }
        out
    }

    fn slice(&self, at: Span32) -> &[u8] {
        &self.bytes[at.range()]
    }

    fn text(&self, at: Span32) -> &str {
        // Checked as UTF-8 when indexed.
        std::str::from_utf8(self.slice(at)).unwrap_or("")
    }
}

/// Spans of one scope.
type ScopeGroup<'a> = (ScopeView<'a>, Vec<SpanView<'a>>);

/// One resource of a batch.
#[derive(Clone, Copy)]
pub struct ResourceView<'a> {
    batch: &'a SpanBatch,
    entry: &'a ResourceEntry,
}

impl<'a> ResourceView<'a> {
    /// The encoded `Resource` message, when the request has one.
    pub fn resource(&self) -> Option<&'a [u8]> {
        self.entry.resource.map(|at| self.batch.slice(at))
    }

    pub fn attributes(&self) -> AttributesRef<'a> {
        AttributesRef::of(self.resource().unwrap_or_default(), 1)
    }

    pub fn schema_url(&self) -> &'a str {
        self.batch.text(self.entry.schema_url)
    }

    /// The `service.name` resource attribute (empty when there is none).
    pub fn service_name(&self) -> &'a Arc<str> {
        &self.entry.service_name
    }

    /// This resource as stored: a `ResourceSpans` holding only `resource` and `schema_url`.
    pub(crate) fn encode_stored(&self) -> Vec<u8> {
        encode_parts(self.resource(), self.schema_url())
    }

    pub fn scopes(&self) -> impl ExactSizeIterator<Item = ScopeView<'a>> + 'a {
        let (batch, resource) = (self.batch, *self);
        let range = self.entry.scopes.clone();
        (range.start as usize..range.end as usize).map(move |i| ScopeView { batch, resource, entry: &batch.scopes[i] })
    }
}

/// A message holding `message` (field 1) and `schema_url` (field 3), as `ResourceSpans` and
/// `ScopeSpans` are stored.
fn encode_parts(message: Option<&[u8]>, schema_url: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.map_or(0, <[u8]>::len) + schema_url.len() + 12);
    if let Some(message) = message {
        put(&mut out, 1, message);
    }
    put_text(&mut out, 3, schema_url);
    out
}

/// Appends a length-delimited field.
fn put(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    use prost::encoding::{encode_key, encode_varint, WireType};
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Appends a string field unless it is empty, as proto3 leaves empty strings out.
fn put_text(out: &mut Vec<u8>, tag: u32, text: &str) {
    if !text.is_empty() {
        put(out, tag, text.as_bytes());
    }
}

/// One instrumentation scope of a batch.
#[derive(Clone, Copy)]
pub struct ScopeView<'a> {
    batch: &'a SpanBatch,
    resource: ResourceView<'a>,
    entry: &'a ScopeEntry,
}

impl<'a> ScopeView<'a> {
    pub fn scope(&self) -> Option<&'a [u8]> {
        self.entry.scope.map(|at| self.batch.slice(at))
    }

    /// This scope as stored: a `ScopeSpans` holding only `scope` and `schema_url`.
    pub(crate) fn encode_stored(&self) -> Vec<u8> {
        encode_parts(self.scope(), self.batch.text(self.entry.schema_url))
    }

    pub fn spans(&self) -> impl ExactSizeIterator<Item = SpanView<'a>> + 'a {
        let (batch, resource) = (self.batch, self.resource);
        let range = self.entry.spans.clone();
        (range.start as usize..range.end as usize).map(move |i| SpanView { batch, resource, entry: &batch.spans[i] })
    }
}

/// One span of a batch, read in place.
#[derive(Clone, Copy)]
pub struct SpanView<'a> {
    batch: &'a SpanBatch,
    resource: ResourceView<'a>,
    entry: &'a SpanEntry,
}

impl<'a> SpanView<'a> {
    pub fn resource(&self) -> ResourceView<'a> {
        self.resource
    }

    pub fn trace_id(&self) -> &'a [u8] {
        self.batch.slice(self.entry.trace_id)
    }

    pub fn span_id(&self) -> &'a [u8] {
        self.batch.slice(self.entry.span_id)
    }

    pub fn parent_span_id(&self) -> &'a [u8] {
        self.batch.slice(self.entry.parent_span_id)
    }

    pub fn trace_state(&self) -> &'a str {
        self.batch.text(self.entry.trace_state)
    }

    pub fn flags(&self) -> u32 {
        self.entry.flags
    }

    pub fn name(&self) -> &'a str {
        self.batch.text(self.entry.name)
    }

    pub fn kind(&self) -> i32 {
        self.entry.kind
    }

    pub fn start_unix_nano(&self) -> u64 {
        self.entry.start
    }

    pub fn end_unix_nano(&self) -> u64 {
        self.entry.end
    }

    pub fn status_code(&self) -> i32 {
        self.entry.status_code
    }

    pub fn status_message(&self) -> &'a str {
        self.batch.text(self.entry.status_message)
    }

    /// The span's attributes, read from the batch's index of them.
    pub fn attributes(&self) -> SpanAttributes<'a> {
        let first = self.entry.first_attribute as usize;
        let entries = &self.batch.attributes[first..first + self.entry.attributes.count as usize];
        SpanAttributes { batch: self.batch, entries }
    }

    pub fn attribute_count(&self) -> usize {
        self.entry.attributes.count as usize
    }

    pub fn dropped_attributes_count(&self) -> u32 {
        self.entry.dropped_attributes
    }

    pub fn events(&self) -> impl Iterator<Item = EventView<'a>> + 'a {
        self.messages(self.entry.events).map(EventView)
    }

    pub fn event_count(&self) -> usize {
        self.entry.events.count as usize
    }

    pub fn dropped_events_count(&self) -> u32 {
        self.entry.dropped_events
    }

    pub fn links(&self) -> impl Iterator<Item = LinkView<'a>> + 'a {
        self.messages(self.entry.links).map(LinkView)
    }

    pub fn link_count(&self) -> usize {
        self.entry.links.count as usize
    }

    pub fn dropped_links_count(&self) -> u32 {
        self.entry.dropped_links
    }

    /// The messages of a run of a repeated field.
    fn messages(&self, run: Run) -> impl Iterator<Item = &'a [u8]> + 'a {
        Fields::new(self.batch.slice(run.at)).map_while(Result::ok).filter_map(|f| match f.value {
            Wire::Bytes(b) => Some(b),
            _ => None,
        })
    }

    /// Bytes [`SpanView::append_stored`] and its parent ID take.
    pub(crate) fn stored_len(&self) -> usize {
        let e = self.entry;
        let runs: usize = [e.attributes, e.events, e.links].iter().map(|run| run.at.range().len()).sum();
        runs + e.parent_span_id.range().len()
    }

    /// The span's attributes, events and links as stored ([`crate::KeyValues`],
    /// [`crate::Events`], [`crate::Links`]: the same messages under field 1), appended to `out`;
    /// the range each takes.
    pub(crate) fn append_stored(&self, out: &mut Vec<u8>) -> [Range<usize>; 3] {
        let e = self.entry;
        [e.attributes, e.events, e.links].map(|run| {
            let start = out.len();
            out.extend_from_slice(self.batch.slice(run.at));
            retag(&mut out[start..]);
            start..out.len()
        })
    }
}

/// The attributes of one span of a batch.
#[derive(Clone, Copy)]
pub struct SpanAttributes<'a> {
    batch: &'a SpanBatch,
    entries: &'a [AttributeEntry],
}

impl<'a> SpanAttributes<'a> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = SpanAttribute<'a>> + 'a {
        let batch = self.batch;
        self.entries.iter().map(move |entry| SpanAttribute { batch, entry })
    }
}

/// One span attribute of a batch; its key and value are read only when asked for.
#[derive(Clone, Copy)]
pub struct SpanAttribute<'a> {
    batch: &'a SpanBatch,
    entry: &'a AttributeEntry,
}

impl<'a> SpanAttribute<'a> {
    /// The key's bytes, for comparisons that need no text.
    pub fn key_bytes(&self) -> &'a [u8] {
        self.batch.slice(self.entry.key)
    }

    pub fn key(&self) -> &'a str {
        self.batch.text(self.entry.key)
    }

    pub fn value(&self) -> ValueRef<'a> {
        let batch = self.batch;
        match self.entry.value {
            ValueEntry::Empty => ValueRef::Empty,
            ValueEntry::Str(at) => ValueRef::Str(batch.text(at)),
            ValueEntry::Bool(b) => ValueRef::Bool(b),
            ValueEntry::Int(i) => ValueRef::Int(i),
            ValueEntry::Double(d) => ValueRef::Double(d),
            ValueEntry::Bytes(at) => ValueRef::Bytes(batch.slice(at)),
            ValueEntry::Array(at) => ValueRef::Array(ValuesRef::of(batch.slice(at))),
            ValueEntry::Map(at) => ValueRef::Map(AttributesRef::of(batch.slice(at), 1)),
        }
    }

    /// The length in bytes of a string or bytes value, without reading it.
    pub fn value_len(&self) -> Option<usize> {
        match self.entry.value {
            ValueEntry::Str(at) | ValueEntry::Bytes(at) => Some(at.range().len()),
            _ => None,
        }
    }

    /// Whether the value is an array or a map.
    pub fn is_nested(&self) -> bool {
        matches!(self.entry.value, ValueEntry::Array(_) | ValueEntry::Map(_))
    }
}

/// Gives every field of a run field number 1, keeping its wire type. Every key of a run is
/// one byte (see [`Irregular`]), so lengths do not change.
fn retag(run: &mut [u8]) {
    let mut at = 0;
    while at < run.len() {
        run[at] = (1 << 3) | (run[at] & 0x07);
        let mut rest = &run[at + 1..];
        let before = rest.len();
        let len = decode_len(&mut rest);
        at += 1 + (before - rest.len()) + len;
    }
}

fn decode_len(buf: &mut &[u8]) -> usize {
    prost::encoding::decode_varint(buf).map_or(usize::MAX / 2, |len| len as usize)
}

/// A span event, read in place.
#[derive(Clone, Copy)]
pub struct EventView<'a>(&'a [u8]);

impl<'a> EventView<'a> {
    pub fn name(&self) -> &'a str {
        last_text(self.0, 2)
    }

    pub fn attributes(&self) -> AttributesRef<'a> {
        AttributesRef::of(self.0, 3)
    }
}

/// A span link, read in place.
#[derive(Clone, Copy)]
pub struct LinkView<'a>(&'a [u8]);

impl<'a> LinkView<'a> {
    pub fn attributes(&self) -> AttributesRef<'a> {
        AttributesRef::of(self.0, 4)
    }
}

/// The last string field numbered `tag` of a message (empty when none).
fn last_text(message: &[u8], tag: u32) -> &str {
    crate::wire::field(message, tag).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("")
}

/// One pass over a request's bytes that checks every field and records where things are.
struct Indexer<'a> {
    base: &'a [u8],
    resources: Vec<ResourceEntry>,
    scopes: Vec<ScopeEntry>,
    spans: Vec<SpanEntry>,
    attributes: Vec<AttributeEntry>,
}

type Index = (Vec<ResourceEntry>, Vec<ScopeEntry>, Vec<SpanEntry>, Vec<AttributeEntry>);

/// Nesting of spans' attributes below the request: request, resource spans, scope spans, span.
const SPAN_DEPTH: u32 = 3;

impl<'a> Indexer<'a> {
    fn new(base: &'a [u8]) -> Self {
        // Sized for spans of a few hundred bytes with a dozen attributes, so that the lists
        // rarely grow (and copy) while a large request is read.
        let spans = Vec::with_capacity(base.len() / 256);
        let attributes = Vec::with_capacity(base.len() / 24);
        Self { base, resources: Vec::new(), scopes: Vec::new(), spans, attributes }
    }

    fn at(&self, part: &[u8]) -> Span32 {
        let start = (part.as_ptr() as usize - self.base.as_ptr() as usize) as u32;
        Span32 { start, end: start + part.len() as u32 }
    }

    fn run(mut self) -> Result<Index, IndexError> {
        for field in Fields::new(self.base) {
            let field = field?;
            if field.tag == 1 {
                let bytes = message(&field)?;
                self.resource_spans(bytes)?;
            }
        }
        Ok((self.resources, self.scopes, self.spans, self.attributes))
    }

    fn resource_spans(&mut self, bytes: &'a [u8]) -> Result<(), IndexError> {
        let mut resource = None;
        let mut schema_url = Span32::default();
        let first_scope = self.scopes.len() as u32;
        for field in Fields::new(bytes) {
            let field = field?;
            match field.tag {
                1 => {
                    let b = check_field(Kind::Msg(Msg::Resource), &field, 1)?.unwrap_or_default();
                    if resource.replace(self.at(b)).is_some() {
                        return Err(Irregular.into());
                    }
                }
                2 => {
                    let b = message(&field)?;
                    self.scope_spans(b)?;
                }
                3 => schema_url = self.at(check_field(Kind::Str, &field, 1)?.unwrap_or_default()),
                _ => {}
            }
        }
        let service_name = resource
            .and_then(|at| match AttributesRef::of(&self.base[at.range()], 1).get(SERVICE_NAME) {
                Some(ValueRef::Str(name)) => Some(Arc::from(name)),
                _ => None,
            })
            .unwrap_or_else(|| Arc::from(""));
        let scopes = first_scope..self.scopes.len() as u32;
        self.resources.push(ResourceEntry { resource, schema_url, service_name, scopes });
        Ok(())
    }

    fn scope_spans(&mut self, bytes: &'a [u8]) -> Result<(), IndexError> {
        let mut scope = None;
        let mut schema_url = Span32::default();
        let first_span = self.spans.len() as u32;
        for field in Fields::new(bytes) {
            let field = field?;
            match field.tag {
                1 => {
                    let b = check_field(Kind::Msg(Msg::Scope), &field, 2)?.unwrap_or_default();
                    if scope.replace(self.at(b)).is_some() {
                        return Err(Irregular.into());
                    }
                }
                2 => {
                    let b = message(&field)?;
                    let span = SpanEntry { whole: self.at(b), ..self.span(b)? };
                    self.spans.push(span);
                }
                3 => schema_url = self.at(check_field(Kind::Str, &field, 2)?.unwrap_or_default()),
                _ => {}
            }
        }
        self.scopes.push(ScopeEntry { scope, schema_url, spans: first_span..self.spans.len() as u32 });
        Ok(())
    }

    fn span(&mut self, bytes: &'a [u8]) -> Result<SpanEntry, IndexError> {
        let mut span = SpanEntry { first_attribute: self.attributes.len() as u32, ..SpanEntry::default() };
        let mut status_seen = false;
        // The repeated field being read (its tag) and whether each repeated field is done.
        let mut current = 0;
        let mut done = [false; 3];
        for field in Fields::new(bytes) {
            let field = field?;
            let tag = field.tag;
            if current != 0 && tag != current {
                done[run_slot(current)] = true;
            }
            current = if matches!(tag, 9 | 11 | 13) { tag } else { 0 };
            let at = |kind| check_field(kind, &field, SPAN_DEPTH).map(|b| self.at(b.unwrap_or_default()));
            match tag {
                1 => span.trace_id = at(Kind::Bytes)?,
                2 => span.span_id = at(Kind::Bytes)?,
                3 => span.trace_state = at(Kind::Str)?,
                4 => span.parent_span_id = at(Kind::Bytes)?,
                5 => span.name = at(Kind::Str)?,
                16 => span.flags = fixed32(&field)?,
                6 => span.kind = varint(&field)? as i32,
                7 => span.start = fixed64(&field)?,
                8 => span.end = fixed64(&field)?,
                9 => {
                    let attribute = self.attribute(message(&field)?)?;
                    self.attributes.push(attribute);
                    self.extend(&mut span.attributes, &field, None, done[0])?;
                }
                10 => span.dropped_attributes = varint(&field)? as u32,
                11 => self.extend(&mut span.events, &field, Some(Msg::Event), done[1])?,
                12 => span.dropped_events = varint(&field)? as u32,
                13 => self.extend(&mut span.links, &field, Some(Msg::Link), done[2])?,
                14 => span.dropped_links = varint(&field)? as u32,
                15 => {
                    let status = check_field(Kind::Msg(Msg::Status), &field, SPAN_DEPTH)?.unwrap_or_default();
                    if std::mem::replace(&mut status_seen, true) {
                        return Err(Irregular.into());
                    }
                    for f in Fields::new(status).map_while(Result::ok) {
                        match (f.tag, f.value) {
                            (2, Wire::Bytes(m)) => span.status_message = self.at(m),
                            (3, Wire::Varint(c)) => span.status_code = c as i32,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(span)
    }

    /// Checks a span attribute (an encoded `KeyValue`) and records where its key and value are.
    fn attribute(&self, key_value: &'a [u8]) -> Result<AttributeEntry, IndexError> {
        let depth = SPAN_DEPTH + 1;
        let mut entry = AttributeEntry { key: Span32::default(), value: ValueEntry::Empty };
        // prost merges a repeated value message into the first: such input is encoded again.
        let mut values = 0;
        for field in Fields::new(key_value) {
            let field = field?;
            match field.tag {
                1 => entry.key = self.at(check_field(Kind::Str, &field, depth)?.unwrap_or_default()),
                2 => {
                    let any_value = message(&field)?;
                    entry.value = ValueEntry::Empty;
                    values += 1;
                    for field in Fields::new(any_value) {
                        let field = field?;
                        let Some(kind) = Msg::AnyValue.field(field.tag) else { continue };
                        if field.tag != 8 {
                            values += 1;
                        }
                        let bytes = check_field(kind, &field, depth + 1)?.map(|b| self.at(b));
                        entry.value = match (field.tag, field.value, bytes) {
                            (1, _, Some(at)) => ValueEntry::Str(at),
                            (2, Wire::Varint(v), _) => ValueEntry::Bool(v != 0),
                            (3, Wire::Varint(v), _) => ValueEntry::Int(v as i64),
                            (4, Wire::Fixed64(v), _) => ValueEntry::Double(f64::from_bits(v)),
                            (5, _, Some(at)) => ValueEntry::Array(at),
                            (6, _, Some(at)) => ValueEntry::Map(at),
                            (7, _, Some(at)) => ValueEntry::Bytes(at),
                            _ => entry.value,
                        };
                    }
                }
                3 => {
                    check_field(Kind::Varint, &field, depth)?;
                }
                _ => {}
            }
        }
        if values > 2 {
            return Err(Irregular.into());
        }
        Ok(entry)
    }

    /// Adds a field to a span's run of a repeated field, checking it as a `msg` when given.
    fn extend(&self, run: &mut Run, field: &Field<'a>, msg: Option<Msg>, done: bool) -> Result<(), IndexError> {
        if let Some(msg) = msg {
            check_field(Kind::Msg(msg), field, SPAN_DEPTH)?;
        }
        if done || !field.short_key {
            return Err(Irregular.into());
        }
        let at = self.at(field.whole);
        if run.count == 0 {
            run.at = at;
        } else {
            run.at.end = at.end;
        }
        run.count += 1;
        Ok(())
    }
}

fn run_slot(tag: u32) -> usize {
    match tag {
        9 => 0,
        11 => 1,
        _ => 2,
    }
}

fn message<'a>(field: &Field<'a>) -> Result<&'a [u8], WireError> {
    match field.value {
        Wire::Bytes(b) => Ok(b),
        _ => Err(WireError(format!("field {}: invalid wire type (expected length-delimited)", field.tag))),
    }
}

fn varint(field: &Field<'_>) -> Result<u64, WireError> {
    match field.value {
        Wire::Varint(v) => Ok(v),
        _ => Err(WireError(format!("field {}: invalid wire type (expected varint)", field.tag))),
    }
}

fn fixed64(field: &Field<'_>) -> Result<u64, WireError> {
    match field.value {
        Wire::Fixed64(v) => Ok(v),
        _ => Err(WireError(format!("field {}: invalid wire type (expected 64-bit)", field.tag))),
    }
}

fn fixed32(field: &Field<'_>) -> Result<u32, WireError> {
    match field.value {
        Wire::Fixed32(v) => Ok(v),
        _ => Err(WireError(format!("field {}: invalid wire type (expected 32-bit)", field.tag))),
    }
}
