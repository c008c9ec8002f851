// Traces the UI tests send over OTLP/HTTP (JSON): a checkout request across four services
// with a database call, an error with an exception, and a link; a slower variant of it with
// one more call, to compare; and a trace of many spans.

const MS = 1_000_000n;

function attr(key, value) {
  if (typeof value === 'boolean') return { key, value: { boolValue: value } };
  if (Number.isInteger(value)) return { key, value: { intValue: String(value) } };
  if (typeof value === 'number') return { key, value: { doubleValue: value } };
  return { key, value: { stringValue: String(value) } };
}

const attrs = (object = {}) => Object.entries(object).map(([k, v]) => attr(k, v));

/** A 32-hex trace ID and 16-hex span IDs that read back easily: `prefix` repeated. */
export function traceId(n) {
  return n.toString(16).padStart(8, '0').repeat(4);
}

function spanId(trace, n) {
  return (trace.slice(0, 8) + n.toString(16).padStart(8, '0')).slice(0, 16);
}

/** Spans grouped by service into one OTLP/JSON request. */
function request(spans) {
  const byService = new Map();
  for (const { service, ...span } of spans) {
    if (!byService.has(service)) byService.set(service, []);
    byService.get(service).push(span);
  }
  return {
    resourceSpans: [...byService].map(([service, list]) => ({
      resource: { attributes: attrs({ 'service.name': service, 'service.version': '1.4.2', 'host.name': `${service}-7f9c` }) },
      scopeSpans: [{ scope: { name: 'clew.e2e.ui', version: '0.3.0' }, spans: list }],
    })),
  };
}

function span(trace, { id, parent, service, name, kind, start, ms, status, attributes, events, links }) {
  return {
    service,
    traceId: trace,
    spanId: spanId(trace, id),
    parentSpanId: parent === undefined ? '' : spanId(trace, parent),
    name,
    kind,
    startTimeUnixNano: String(start),
    endTimeUnixNano: String(start + BigInt(Math.round(ms * 1e6))),
    attributes: attrs(attributes),
    events: events ?? [],
    links: links ?? [],
    status: status ?? {},
  };
}

export const STACKTRACE = 'PaymentDeclined: card 4242 declined\n    at charge (payment/src/charge.js:41:11)\n    at handle (payment/src/server.js:88:5)';

/**
 * frontend GET /cart → cart GetCart → redis GET (client, db.system=redis)
 *                   → payment Charge (error, exception event) [+ fraud Check when `slower`]
 * `slower` makes the cart call 150 ms longer and adds one fraud check.
 */
export function checkoutTrace(trace, { start, slower = false, linkTo } = {}) {
  const t = (ms) => start + BigInt(Math.round(ms * 1e6));
  const cartMs = slower ? 210 : 60;
  const spans = [
    span(trace, { id: 1, service: 'frontend', name: 'GET /cart', kind: 2, start: t(0), ms: cartMs + 140, attributes: { 'http.request.method': 'GET', 'http.route': '/cart', 'http.response.status_code': 500 }, status: { code: 2, message: 'payment failed' } }),
    span(trace, { id: 2, parent: 1, service: 'frontend', name: 'cart.GetCart', kind: 3, start: t(5), ms: cartMs, attributes: { 'peer.service': 'cart' } }),
    span(trace, { id: 3, parent: 2, service: 'cart', name: 'GetCart', kind: 2, start: t(7), ms: cartMs - 4, attributes: { 'app.cart.items': 3, 'app.user.id': 'u-1001' } }),
    span(trace, { id: 4, parent: 3, service: 'cart', name: 'GET', kind: 3, start: t(10), ms: 2.5, attributes: { 'db.system': 'redis', 'db.statement': 'GET cart:u-1001' } }),
    span(trace, { id: 5, parent: 1, service: 'frontend', name: 'payment.Charge', kind: 3, start: t(cartMs + 10), ms: 120, status: { code: 2 } }),
    span(trace, {
      id: 6,
      parent: 5,
      service: 'payment',
      name: 'Charge',
      kind: 2,
      start: t(cartMs + 12),
      ms: 115,
      attributes: { 'app.payment.amount': 42.5, 'app.payment.card_last4': '4242' },
      status: { code: 2, message: 'card declined' },
      events: [
        { timeUnixNano: String(t(cartMs + 100)), name: 'exception', attributes: attrs({ 'exception.type': 'PaymentDeclined', 'exception.message': 'card 4242 declined', 'exception.stacktrace': STACKTRACE }) },
      ],
      links: linkTo ? [{ traceId: linkTo.traceId, spanId: linkTo.spanId, attributes: attrs({ 'link.reason': 'retry of' }) }] : [],
    }),
  ];
  if (slower) spans.push(span(trace, { id: 7, parent: 6, service: 'fraud', name: 'Check', kind: 2, start: t(cartMs + 20), ms: 30 }));
  return request(spans);
}

export function spanIdOf(trace, n) {
  return spanId(trace, n);
}

/** `count` spans: a root, a fan-out over eight services, each call with a chain of children. */
export function bigTrace(trace, count, { start }) {
  const services = ['gateway', 'orders', 'inventory', 'pricing', 'shipping', 'users', 'search', 'billing'];
  const spans = [span(trace, { id: 1, service: 'gateway', name: 'POST /bulk-order', kind: 2, start, ms: 4000 })];
  for (let id = 2; id <= count; id++) {
    // Every tenth span starts a new subtree under the root; the others nest under the previous.
    const parent = id % 10 === 2 ? 1 : id - 1;
    const offset = (id * 4000) / count;
    spans.push(
      span(trace, {
        id,
        parent,
        service: services[id % services.length],
        name: `step-${id % 37}`,
        kind: id % 10 === 2 ? 2 : 1,
        start: start + BigInt(Math.round(offset * 1e6)),
        ms: Math.max(0.05, (4000 / count) * (10 - (id % 10))),
        attributes: { 'app.step': id },
        status: id % 997 === 0 ? { code: 2, message: 'step failed' } : {},
      }),
    );
  }
  // Split into requests of 2,000 spans, as an SDK batches.
  const requests = [];
  for (let i = 0; i < spans.length; i += 2000) requests.push(request(spans.slice(i, i + 2000)));
  return requests;
}

export async function send(otlpHttp, body) {
  const response = await fetch(`http://${otlpHttp}/v1/traces`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  if (!response.ok) throw new Error(`export answered ${response.status}: ${await response.text()}`);
  const answer = await response.json();
  if (answer.partialSuccess?.rejectedSpans) throw new Error(`spans rejected: ${JSON.stringify(answer)}`);
}

export const now = () => BigInt(Date.now()) * MS;
