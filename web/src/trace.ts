// A trace as the waterfall shows it: OTLP JSON turned into a tree of spans with times relative
// to the trace's start (plain numbers: nanoseconds since the epoch do not fit a double).

export type AnyValue = {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number | string;
  boolValue?: boolean;
  bytesValue?: string;
  arrayValue?: { values?: AnyValue[] };
  kvlistValue?: { values?: KeyValue[] };
};
export type KeyValue = { key: string; value?: AnyValue };

interface OtlpSpan {
  spanId: string;
  parentSpanId?: string;
  traceState?: string;
  name: string;
  kind?: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: KeyValue[];
  droppedAttributesCount?: number;
  events?: { timeUnixNano: string; name: string; attributes?: KeyValue[] }[];
  droppedEventsCount?: number;
  links?: { traceId: string; spanId: string; traceState?: string; attributes?: KeyValue[] }[];
  droppedLinksCount?: number;
  status?: { code?: number; message?: string };
}

export interface TracesData {
  resourceSpans: {
    resource?: { attributes?: KeyValue[] };
    schemaUrl?: string;
    scopeSpans?: { scope?: { name?: string; version?: string; attributes?: KeyValue[] }; spans?: OtlpSpan[] }[];
  }[];
}

export interface SpanEvent {
  offset: number;
  name: string;
  attributes: KeyValue[];
}

export interface Span {
  id: string;
  parentId: string;
  name: string;
  kind: number;
  service: string;
  /** Nanoseconds from the trace's first start. */
  start: number;
  end: number;
  duration: number;
  error: boolean;
  status: { code: number; message: string };
  traceState: string;
  attributes: KeyValue[];
  resource: KeyValue[];
  scope: { name: string; version: string; attributes: KeyValue[] };
  events: SpanEvent[];
  links: { traceId: string; spanId: string; traceState: string; attributes: KeyValue[] }[];
  dropped: { attributes: number; events: number; links: number };
  parent?: Span;
  children: Span[];
  depth: number;
  /** All spans below this one. */
  descendants: number;
  /** Lower-case text find-in-trace searches: name, service, ID, attribute keys and values. */
  haystack: string;
}

export interface Trace {
  id: string;
  /** Unix nanoseconds of the first start. */
  startUnixNano: bigint;
  duration: number;
  spans: Span[];
  /** Spans in depth-first order, children by start time. */
  ordered: Span[];
  byId: Map<string, Span>;
  roots: Span[];
  services: { name: string; spans: number; errors: number }[];
  errors: number;
}

export function anyValueText(value: AnyValue | undefined): string {
  if (!value) return '';
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return String(value.intValue);
  if (value.doubleValue !== undefined) return String(value.doubleValue);
  if (value.boolValue !== undefined) return String(value.boolValue);
  if (value.bytesValue !== undefined) return `base64:${value.bytesValue}`;
  if (value.arrayValue) return `[${(value.arrayValue.values ?? []).map((v) => JSON.stringify(anyValueText(v))).join(', ')}]`;
  if (value.kvlistValue) return `{${(value.kvlistValue.values ?? []).map((kv) => `${kv.key}: ${anyValueText(kv.value)}`).join(', ')}}`;
  return '';
}

export function attribute(attributes: KeyValue[], key: string): string | undefined {
  const found = attributes.find((a) => a.key === key);
  return found ? anyValueText(found.value) : undefined;
}

export function buildTrace(id: string, data: TracesData): Trace {
  const raw: { span: OtlpSpan; resource: KeyValue[]; scope: Span['scope'] }[] = [];
  for (const rs of data.resourceSpans ?? []) {
    const resource = rs.resource?.attributes ?? [];
    for (const ss of rs.scopeSpans ?? []) {
      const scope = { name: ss.scope?.name ?? '', version: ss.scope?.version ?? '', attributes: ss.scope?.attributes ?? [] };
      for (const span of ss.spans ?? []) raw.push({ span, resource, scope });
    }
  }
  let first = raw.length ? BigInt(raw[0].span.startTimeUnixNano) : 0n;
  for (const { span } of raw) {
    const s = BigInt(span.startTimeUnixNano);
    if (s < first) first = s;
  }
  const spans: Span[] = raw.map(({ span, resource, scope }) => {
    const start = Number(BigInt(span.startTimeUnixNano) - first);
    const end = Math.max(start, Number(BigInt(span.endTimeUnixNano) - first));
    const service = attribute(resource, 'service.name') ?? 'unknown';
    const attributes = span.attributes ?? [];
    const status = { code: span.status?.code ?? 0, message: span.status?.message ?? '' };
    const spanStart = BigInt(span.startTimeUnixNano);
    return {
      id: span.spanId,
      parentId: span.parentSpanId ?? '',
      name: span.name,
      kind: span.kind ?? 0,
      service,
      start,
      end,
      duration: end - start,
      error: status.code === 2,
      status,
      traceState: span.traceState ?? '',
      attributes,
      resource,
      scope,
      events: (span.events ?? []).map((e) => ({ offset: Number(BigInt(e.timeUnixNano) - spanStart), name: e.name, attributes: e.attributes ?? [] })),
      links: (span.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId, traceState: l.traceState ?? '', attributes: l.attributes ?? [] })),
      dropped: { attributes: span.droppedAttributesCount ?? 0, events: span.droppedEventsCount ?? 0, links: span.droppedLinksCount ?? 0 },
      children: [],
      depth: 0,
      descendants: 0,
      haystack: [span.name, service, span.spanId, ...attributes.flatMap((a) => [a.key, anyValueText(a.value)])].join('\u0000').toLowerCase(),
    };
  });

  const byId = new Map(spans.map((s) => [s.id, s]));
  const roots: Span[] = [];
  for (const span of spans) {
    const parent = span.parentId ? byId.get(span.parentId) : undefined;
    if (parent && parent !== span) {
      span.parent = parent;
      parent.children.push(span);
    } else roots.push(span);
  }
  const byStart = (a: Span, b: Span) => a.start - b.start || (a.id < b.id ? -1 : 1);
  // Parent links that loop never reach a root: the earliest span of each loop is made one.
  const ordered: Span[] = [];
  const seen = new Set<Span>();
  const walk = (top: Span) => {
    const stack: Span[] = [top];
    while (stack.length) {
      const span = stack.pop()!;
      if (seen.has(span)) continue;
      seen.add(span);
      span.depth = span.parent && seen.has(span.parent) && span !== top ? span.parent.depth + 1 : 0;
      ordered.push(span);
      span.children.sort(byStart);
      for (let i = span.children.length - 1; i >= 0; i--) stack.push(span.children[i]);
    }
  };
  roots.sort(byStart).forEach(walk);
  for (const span of [...spans].sort(byStart)) {
    if (!seen.has(span)) {
      span.parent?.children.splice(span.parent.children.indexOf(span), 1);
      span.parent = undefined;
      roots.push(span);
      walk(span);
    }
  }
  for (let i = ordered.length - 1; i >= 0; i--) {
    const span = ordered[i];
    span.descendants = span.children.reduce((n, c) => n + 1 + c.descendants, 0);
  }

  const services = new Map<string, { name: string; spans: number; errors: number }>();
  let errors = 0;
  let duration = 0;
  for (const span of spans) {
    const s = services.get(span.service) ?? { name: span.service, spans: 0, errors: 0 };
    s.spans++;
    if (span.error) {
      s.errors++;
      errors++;
    }
    services.set(span.service, s);
    duration = Math.max(duration, span.end);
  }
  return { id, startUnixNano: first, duration, spans, ordered, byId, roots, services: [...services.values()], errors };
}

/** The rows shown: every span whose ancestors are all expanded, in order. */
export function visibleRows(trace: Trace, collapsed: Set<string>): Span[] {
  const rows: Span[] = [];
  const ordered = trace.ordered;
  for (let i = 0; i < ordered.length; i++) {
    const span = ordered[i];
    rows.push(span);
    if (collapsed.has(span.id)) i += span.descendants;
  }
  return rows;
}
