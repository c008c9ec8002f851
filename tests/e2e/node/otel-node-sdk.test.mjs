// End-to-end: the OpenTelemetry JS SDK exports a trace to a real Clew server
// over OTLP/HTTP with the JSON encoding.
//
// A real `clew serve` process is started in a temporary directory, the SDK
// records a SERVER root span and a CLIENT child (typed attributes, events, a
// link with a TraceState, an exception, an error status) and exports them with
// @opentelemetry/exporter-trace-otlp-http, which sends OTLP JSON. The trace is
// read back from `GET /api/v1/traces/<trace id>` and compared, field by field,
// with the spans the SDK recorded (captured by an InMemorySpanExporter).
//
// Environment:
//   CLEW_BIN  the clew binary to test (default: <repo root>/target/debug/clew)
//
// Run (from tests/e2e/node):
//   npm ci
//   CLEW_BIN=../../../target/debug/clew npm test

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';

import { SpanKind, SpanStatusCode, TraceFlags, context, trace } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  InMemorySpanExporter,
  SamplingDecision,
  SimpleSpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';

import { SHUTDOWN_TIMEOUT_MS, startClew } from '../clew.mjs';

const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;
const STATUS_CODE_UNSET = 0;
const STATUS_CODE_ERROR = 2;

const RESOURCE_ATTRIBUTES = {
  'service.name': 'clew-e2e-node',
  'service.version': '4.5.6',
  'e2e.resource.pid.like': 4242,
  'e2e.resource.enabled': true,
};
const SCOPE_NAME = 'clew.e2e.node';
const SCOPE_VERSION = '2.0.1';
const SPAN_TRACE_STATE = 'clew=e2e-node,vendor=abc123';
const LINK_TRACE_STATE = 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE';

const CHILD_ATTRIBUTES = {
  'e2e.string': 'héllo wörld ✓',
  'e2e.string.empty': '',
  'e2e.bool.true': true,
  'e2e.bool.false': false,
  'e2e.int': 42,
  'e2e.int.negative': -7,
  'e2e.int.max_safe': Number.MAX_SAFE_INTEGER,
  'e2e.int.from_float_literal': 2.0, // a JS number that is an integer: intValue
  'e2e.double': 3.5,
  'e2e.double.fraction': 0.1,
  'e2e.double.negative': -1.25e-300,
  'e2e.array.string': ['a', 'b', ''],
  'e2e.array.int': [1, -2, 3],
  'e2e.array.number.mixed': [1, 2.5],
  'e2e.array.bool': [true, false],
  'e2e.array.empty': [],
};

// The OTLP JSON the server must return for CHILD_ATTRIBUTES, written out by
// hand: integers come back as intValue *strings*, non-integers as doubleValue.
const CHILD_ATTRIBUTES_OTLP = {
  'e2e.string': { stringValue: 'héllo wörld ✓' },
  'e2e.string.empty': { stringValue: '' },
  'e2e.bool.true': { boolValue: true },
  'e2e.bool.false': { boolValue: false },
  'e2e.int': { intValue: '42' },
  'e2e.int.negative': { intValue: '-7' },
  'e2e.int.max_safe': { intValue: '9007199254740991' },
  'e2e.int.from_float_literal': { intValue: '2' },
  'e2e.double': { doubleValue: 3.5 },
  'e2e.double.fraction': { doubleValue: 0.1 },
  'e2e.double.negative': { doubleValue: -1.25e-300 },
  'e2e.array.string': {
    arrayValue: { values: [{ stringValue: 'a' }, { stringValue: 'b' }, { stringValue: '' }] },
  },
  'e2e.array.int': {
    arrayValue: { values: [{ intValue: '1' }, { intValue: '-2' }, { intValue: '3' }] },
  },
  'e2e.array.number.mixed': {
    arrayValue: { values: [{ intValue: '1' }, { doubleValue: 2.5 }] },
  },
  'e2e.array.bool': { arrayValue: { values: [{ boolValue: true }, { boolValue: false }] } },
  'e2e.array.empty': { arrayValue: { values: [] } },
};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** HrTime [seconds, nanoseconds] -> decimal string of Unix nanoseconds. */
function hrTimeToNanosString([seconds, nanos]) {
  return (BigInt(seconds) * 1_000_000_000n + BigInt(nanos)).toString();
}

/** The OTLP JSON AnyValue for an SDK attribute value. */
function otlpAnyValue(value) {
  switch (typeof value) {
    case 'string':
      return { stringValue: value };
    case 'boolean':
      return { boolValue: value };
    case 'number':
      return Number.isInteger(value) ? { intValue: String(value) } : { doubleValue: value };
    default:
      if (Array.isArray(value)) return { arrayValue: { values: value.map(otlpAnyValue) } };
      throw new Error(`unexpected attribute value ${JSON.stringify(value)}`);
  }
}

function otlpAttributes(attributes = {}) {
  return Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, otlpAnyValue(v)]));
}

/** A returned attribute list as {key: AnyValue}; fails on duplicate keys. */
function byKey(attributes = [], where) {
  const out = {};
  for (const { key, value } of attributes) {
    assert.ok(!(key in out), `${where}: attribute ${key} appears twice`);
    out[key] = value;
  }
  return out;
}

/** Normalises an AnyValue whose array/kvlist omits an empty `values`. */
function normaliseAnyValue(value) {
  if (value?.arrayValue) {
    return { arrayValue: { values: (value.arrayValue.values ?? []).map(normaliseAnyValue) } };
  }
  return value;
}

function assertAttributes(actual, expected, where) {
  const got = Object.fromEntries(
    Object.entries(byKey(actual, where)).map(([k, v]) => [k, normaliseAnyValue(v)]),
  );
  assert.deepStrictEqual(got, expected, where);
}

/** Wraps an exporter and remembers the result code of each export. */
class RecordingExporter {
  constructor(inner) {
    this.inner = inner;
    this.results = [];
  }
  export(spans, resultCallback) {
    this.inner.export(spans, (result) => {
      this.results.push(result);
      resultCallback(result);
    });
  }
  shutdown() {
    return this.inner.shutdown();
  }
  forceFlush() {
    return this.inner.forceFlush();
  }
}

/** Samples everything; root spans get SPAN_TRACE_STATE, children inherit it. */
const traceStateSampler = {
  shouldSample(ctx) {
    const parent = trace.getSpanContext(ctx);
    return {
      decision: SamplingDecision.RECORD_AND_SAMPLED,
      traceState: parent?.traceState ?? new TraceState(SPAN_TRACE_STATE),
    };
  },
  toString: () => 'TraceStateSampler',
};

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

let server; // from startClew()

function serverLog() {
  return server ? server.log() : '';
}

// An export Clew acknowledged is queryable at once: one read, no waiting.
async function readBack(traceId, spanCount) {
  const response = await fetch(`http://${server.http}/api/v1/traces/${traceId}`);
  const body = response.ok ? await response.json() : await response.text();
  if (!response.ok || allSpans(body).length < spanCount) {
    assert.fail(
      `trace ${traceId} is not readable with ${spanCount} spans right after its export was ` +
        `acknowledged; answer: HTTP ${response.status} ${JSON.stringify(body)}\nclew stderr:\n${serverLog()}`,
    );
  }
  return body;
}

/** Every returned span with the resourceSpans/scopeSpans entries holding it. */
function allSpans(doc) {
  return (doc.resourceSpans ?? []).flatMap((resourceSpans) =>
    (resourceSpans.scopeSpans ?? []).flatMap((scopeSpans) =>
      (scopeSpans.spans ?? []).map((span) => ({ span, resourceSpans, scopeSpans })),
    ),
  );
}

// ---------------------------------------------------------------------------
// Recording and exporting the trace
// ---------------------------------------------------------------------------

class PaymentDeclined extends Error {
  constructor(message) {
    super(message);
    this.name = 'PaymentDeclined';
  }
}

const linkContext = {
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  spanId: '00f067aa0ba902b7',
  traceFlags: TraceFlags.SAMPLED,
  isRemote: true,
  traceState: new TraceState(LINK_TRACE_STATE),
};

let recorded; // { root, child, exportResults }
let returned; // { root, child: {span, resourceSpans, scopeSpans}, count }

before(async () => {
  server = await startClew({ name: 'clew-e2e-node' });

  const memory = new InMemorySpanExporter();
  const exporter = new RecordingExporter(
    new OTLPTraceExporter({ url: `http://${server.otlpHttp}/v1/traces`, timeoutMillis: 10_000 }),
  );
  const provider = new TracerProvider({
    resource: resourceFromAttributes(RESOURCE_ATTRIBUTES),
    sampler: traceStateSampler,
    spanProcessors: [
      new SimpleSpanProcessor({ exporter: memory }),
      new BatchSpanProcessor({ exporter }),
    ],
  });
  const tracer = provider.getTracer(SCOPE_NAME, SCOPE_VERSION);

  const root = tracer.startSpan('GET /checkout', {
    kind: SpanKind.SERVER,
    attributes: { 'http.request.method': 'GET', 'http.response.status_code': 502 },
  });
  const child = tracer.startSpan(
    'POST payments',
    {
      kind: SpanKind.CLIENT,
      attributes: CHILD_ATTRIBUTES,
      links: [{ context: linkContext, attributes: { 'e2e.link.reason': 'retry-of' } }],
    },
    trace.setSpan(context.active(), root),
  );
  child.addEvent('payment.request.sent', { retry: false, 'bytes.sent': 512, ratio: 0.75, tags: ['x', 'y'] });
  child.recordException(new PaymentDeclined('card declined'));
  child.setStatus({ code: SpanStatusCode.ERROR, message: 'payment failed: card declined' });
  child.end();
  root.end();

  await provider.forceFlush();
  // Read before shutdown: shutting the InMemorySpanExporter down empties it.
  const spans = Object.fromEntries(memory.getFinishedSpans().map((s) => [s.name, s]));
  await provider.shutdown();

  recorded = { root: spans['GET /checkout'], child: spans['POST payments'], exportResults: exporter.results };

  const traceId = recorded.root.spanContext().traceId;
  const doc = await readBack(traceId, 2);
  const byId = Object.fromEntries(allSpans(doc).map((item) => [item.span.spanId, item]));
  returned = {
    root: byId[recorded.root.spanContext().spanId],
    child: byId[recorded.child.spanContext().spanId],
    count: allSpans(doc).length,
  };
});

after(async () => {
  if (server) await server.stop();
});

// ---------------------------------------------------------------------------
// Tests (run in order; the last one stops the server)
// ---------------------------------------------------------------------------

test('the OTLP/HTTP JSON exporter reports success', () => {
  assert.ok(recorded.exportResults.length > 0, 'nothing was exported');
  for (const result of recorded.exportResults) {
    assert.equal(result.code, 0, `export failed: ${result.error}\nclew stderr:\n${serverLog()}`);
  }
});

test('the trace holds exactly the two exported spans', () => {
  assert.equal(returned.count, 2);
  assert.ok(returned.root, 'root span missing from the returned trace');
  assert.ok(returned.child, 'child span missing from the returned trace');
});

test('resource and scope round-trip', () => {
  for (const [label, item] of Object.entries({ root: returned.root, child: returned.child })) {
    const resource = item.resourceSpans.resource ?? {};
    assert.deepStrictEqual(byKey(resource.attributes, label)['service.name'], { stringValue: 'clew-e2e-node' });
    assertAttributes(resource.attributes, otlpAttributes(recorded[label].resource.attributes), `${label}.resource`);
    assert.equal(item.scopeSpans.scope?.name, SCOPE_NAME, label);
    assert.equal(item.scopeSpans.scope?.version, SCOPE_VERSION, label);
  }
});

test('ids, parentage, names and kinds round-trip', () => {
  const root = recorded.root.spanContext();
  const child = recorded.child.spanContext();
  assert.match(root.traceId, /^[0-9a-f]{32}$/);

  assert.equal(returned.root.span.traceId, root.traceId);
  assert.equal(returned.child.span.traceId, root.traceId);
  assert.equal(returned.root.span.spanId, root.spanId);
  assert.equal(returned.child.span.spanId, child.spanId);
  assert.equal(returned.root.span.parentSpanId ?? '', '');
  assert.equal(returned.child.span.parentSpanId, root.spanId);
  assert.equal(recorded.child.parentSpanContext.spanId, root.spanId);

  assert.equal(returned.root.span.name, 'GET /checkout');
  assert.equal(returned.child.span.name, 'POST payments');
  assert.equal(returned.root.span.kind, SPAN_KIND_SERVER);
  assert.equal(returned.child.span.kind, SPAN_KIND_CLIENT);

  for (const label of ['root', 'child']) {
    assert.equal(returned[label].span.traceState, SPAN_TRACE_STATE, label);
    // W3C sampled bit plus OTLP's HAS_IS_REMOTE bit, as the exporter sends them.
    assert.equal(returned[label].span.flags, TraceFlags.SAMPLED | 0x100, label);
  }
});

test('timestamps are the exact nanoseconds the SDK recorded, as strings', () => {
  for (const label of ['root', 'child']) {
    const span = returned[label].span;
    assert.equal(typeof span.startTimeUnixNano, 'string', label);
    assert.equal(typeof span.endTimeUnixNano, 'string', label);
    assert.equal(span.startTimeUnixNano, hrTimeToNanosString(recorded[label].startTime), label);
    assert.equal(span.endTimeUnixNano, hrTimeToNanosString(recorded[label].endTime), label);
  }
});

test('attributes keep their OTLP types', () => {
  assert.deepStrictEqual(otlpAttributes(recorded.child.attributes), CHILD_ATTRIBUTES_OTLP, 'SDK recorded something else');
  assertAttributes(returned.child.span.attributes, CHILD_ATTRIBUTES_OTLP, 'child.attributes');
  assertAttributes(returned.root.span.attributes, {
    'http.request.method': { stringValue: 'GET' },
    'http.response.status_code': { intValue: '502' },
  }, 'root.attributes');
  assert.equal(returned.child.span.droppedAttributesCount ?? 0, 0);
});

test('events round-trip with name, time and attributes', () => {
  const events = returned.child.span.events ?? [];
  assert.deepStrictEqual(events.map((e) => e.name), ['payment.request.sent', 'exception']);
  recorded.child.events.forEach((want, i) => {
    assert.equal(events[i].timeUnixNano, hrTimeToNanosString(want.time), `event ${i} time`);
    assertAttributes(events[i].attributes, otlpAttributes(want.attributes), `event ${i} attributes`);
    assert.equal(events[i].droppedAttributesCount ?? 0, want.droppedAttributesCount ?? 0);
  });
  assertAttributes(events[0].attributes, {
    retry: { boolValue: false },
    'bytes.sent': { intValue: '512' },
    ratio: { doubleValue: 0.75 },
    tags: { arrayValue: { values: [{ stringValue: 'x' }, { stringValue: 'y' }] } },
  }, 'payment.request.sent attributes');
  const exception = byKey(events[1].attributes, 'exception');
  assert.deepStrictEqual(exception['exception.type'], { stringValue: 'PaymentDeclined' });
  assert.deepStrictEqual(exception['exception.message'], { stringValue: 'card declined' });
  assert.match(exception['exception.stacktrace'].stringValue, /PaymentDeclined: card declined/);
  assert.equal(returned.child.span.droppedEventsCount ?? 0, 0);
  assert.deepStrictEqual(returned.root.span.events ?? [], []);
});

test('the link round-trips with its TraceState', () => {
  const links = returned.child.span.links ?? [];
  assert.equal(links.length, 1);
  assert.equal(links[0].traceId, linkContext.traceId);
  assert.equal(links[0].spanId, linkContext.spanId);
  assert.equal(links[0].traceState, LINK_TRACE_STATE);
  assertAttributes(links[0].attributes, { 'e2e.link.reason': { stringValue: 'retry-of' } }, 'link attributes');
  // sampled | HAS_IS_REMOTE | IS_REMOTE, as the exporter sends it
  assert.equal(links[0].flags, TraceFlags.SAMPLED | 0x100 | 0x200);
  assert.equal(returned.child.span.droppedLinksCount ?? 0, 0);
});

test('status round-trips', () => {
  assert.equal(recorded.child.status.code, SpanStatusCode.ERROR);
  assert.equal(returned.child.span.status?.code, STATUS_CODE_ERROR);
  assert.equal(returned.child.span.status?.message, 'payment failed: card declined');
  assert.equal(returned.root.span.status?.code ?? 0, STATUS_CODE_UNSET);
  assert.equal(returned.root.span.status?.message ?? '', '');
});

test('clew exits 0 on SIGTERM', async () => {
  const result = await server.stop({ keep: true });
  assert.ok(result, `clew did not exit within ${SHUTDOWN_TIMEOUT_MS} ms of SIGTERM\n${serverLog()}`);
  assert.deepStrictEqual(result, { code: 0, signal: null }, `clew stderr:\n${serverLog()}`);
});
