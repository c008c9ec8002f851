// Search: a form and a TraceQL editor whose state lives in the address, a scatter plot of
// duration over time, and a sortable list of trace summaries.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, type SearchResult, type TraceSummary } from '../api';
import { ErrorBanner, GettingStarted, ServiceChip, SortHeader, Spinner, TimeRangePicker, useLoad } from '../components/common';
import { TraceQLEditor } from '../components/TraceQLEditor';
import { ago, duration, nanosToMillis, rangeFromParams, rangeQuery, timestamp, type TimeRange } from '../format';
import { navigate, type Location } from '../router';
import './search.css';

/** The search form's fields, as the address carries them. */
interface Form {
  q: string;
  service: string;
  name: string;
  tags: string;
  minDuration: string;
  maxDuration: string;
  status: string;
  order: string;
  limit: string;
  range: TimeRange;
}

function formFromParams(params: URLSearchParams): Form {
  return {
    q: params.get('q') ?? '',
    service: params.get('service') ?? '',
    name: params.get('name') ?? '',
    tags: params.getAll('attr').join(' '),
    minDuration: params.get('minDuration') ?? '',
    maxDuration: params.get('maxDuration') ?? '',
    status: params.get('status') ?? '',
    order: params.get('order') ?? 'newest',
    limit: params.get('limit') ?? '50',
    range: rangeFromParams(params),
  };
}

/** `http.route="/a b" error` → [`http.route="/a b"`, `error`]: whitespace splits, quotes hold. */
function splitTags(tags: string): string[] {
  return tags.match(/(?:[^\s"]+|"(?:[^"\\]|\\.)*")+/g) ?? [];
}

function searchQuery(form: Form) {
  return {
    q: form.q.trim(),
    service: form.service,
    name: form.name,
    attr: splitTags(form.tags),
    minDuration: form.minDuration.trim(),
    maxDuration: form.maxDuration.trim(),
    status: form.status,
    order: form.order === 'newest' ? '' : form.order,
    limit: form.limit === '50' ? '' : form.limit,
    ...rangeQuery(form.range),
  };
}

function toAddress(form: Form): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(searchQuery(form))) {
    for (const v of Array.isArray(value) ? value : [value]) if (v) params.append(key, v);
  }
  const qs = params.toString();
  return qs ? `/search?${qs}` : '/search';
}

type Column = 'start' | 'duration' | 'spans' | 'errors' | 'service';

export function SearchPage({ location }: { location: Location }) {
  const address = location.params.toString();
  const applied = useMemo(() => formFromParams(location.params), [address]);
  const [form, setForm] = useState(applied);
  useEffect(() => setForm(applied), [applied]);
  const set = (patch: Partial<Form>) => setForm((f) => ({ ...f, ...patch }));
  const submit = (next: Form = form) => navigate(toAddress(next));

  const services = useLoad(() => api<{ services: string[] }>('/api/v1/services', { query: rangeQuery(form.range) }), [JSON.stringify(form.range)]);
  const operations = useLoad(
    form.service ? () => api<{ operations: { name: string; kind: string }[] }>(`/api/v1/services/${encodeURIComponent(form.service)}/operations`, { query: rangeQuery(form.range) }) : undefined,
    [form.service, JSON.stringify(form.range)],
  );

  // Results: the first page comes from the address; "more" appends pages.
  const [pages, setPages] = useState<SearchResult[]>([]);
  const first = useLoad(() => api<SearchResult>('/api/v1/search', { query: searchQuery(applied) }), [address]);
  useEffect(() => setPages(first.data ? [first.data] : []), [first.data]);
  // Time to the first results painted, for the benchmark.
  useEffect(() => {
    if (first.data) requestAnimationFrame(() => performance.mark('clew:results-painted'));
  }, [first.data]);
  const [more, setMore] = useState<{ loading: boolean; error?: Error }>({ loading: false });
  const traces = pages.flatMap((p) => p.traces);
  const next = pages[pages.length - 1]?.nextCursor;
  const loadMore = () => {
    setMore({ loading: true });
    api<SearchResult>('/api/v1/search', { query: { ...searchQuery(applied), cursor: next } }).then(
      (page) => {
        setPages((p) => [...p, page]);
        setMore({ loading: false });
      },
      (error) => setMore({ loading: false, error }),
    );
  };

  const [sort, setSort] = useState<{ column: Column; descending: boolean }>({ column: 'start', descending: true });
  const onSort = (column: Column) => setSort((s) => ({ column, descending: s.column === column ? !s.descending : column !== 'service' }));
  const sorted = useMemo(() => sortTraces(traces, sort.column, sort.descending), [traces, sort]);
  const [selected, setSelected] = useState<string[]>([]);
  const toggle = (id: string) => setSelected((s) => (s.includes(id) ? s.filter((x) => x !== id) : [...s.slice(-1), id]));

  const noData = services.data && services.data.services.length === 0;
  return (
    <section class="page search-page">
      <form
        class="card search-form"
        aria-label="Search traces"
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <div class="row">
          <TimeRangePicker range={form.range} onChange={(range) => set({ range })} />
          <label>
            <span class="label">Service</span>
            <select name="service" value={form.service} onChange={(e) => set({ service: (e.target as HTMLSelectElement).value, name: '' })}>
              <option value="">All services</option>
              {(services.data?.services ?? []).concat(form.service && !services.data?.services.includes(form.service) ? [form.service] : []).map((s) => (
                <option value={s}>{s}</option>
              ))}
            </select>
          </label>
          <label>
            <span class="label">Operation</span>
            <select name="operation" value={form.name} disabled={!form.service} onChange={(e) => set({ name: (e.target as HTMLSelectElement).value })}>
              <option value="">All operations</option>
              {(operations.data?.operations ?? []).concat(form.name && !operations.data?.operations.some((o) => o.name === form.name) ? [{ name: form.name, kind: '' }] : []).map((o) => (
                <option value={o.name}>{o.name}{o.kind ? ` (${o.kind})` : ''}</option>
              ))}
            </select>
          </label>
          <label class="grow">
            <span class="label">Tags</span>
            <input name="tags" value={form.tags} placeholder='http.route=/cart http.response.status_code>=500 error' onInput={(e) => set({ tags: (e.target as HTMLInputElement).value })} />
          </label>
        </div>
        <div class="row">
          <label>
            <span class="label">Min duration</span>
            <input name="minDuration" size={8} value={form.minDuration} placeholder="e.g. 250ms" onInput={(e) => set({ minDuration: (e.target as HTMLInputElement).value })} />
          </label>
          <label>
            <span class="label">Max duration</span>
            <input name="maxDuration" size={8} value={form.maxDuration} placeholder="e.g. 2s" onInput={(e) => set({ maxDuration: (e.target as HTMLInputElement).value })} />
          </label>
          <label>
            <span class="label">Status</span>
            <select name="status" value={form.status} onChange={(e) => set({ status: (e.target as HTMLSelectElement).value })}>
              <option value="">Any</option>
              <option value="error">Error</option>
              <option value="ok">OK</option>
              <option value="unset">Unset</option>
            </select>
          </label>
          <label>
            <span class="label">Order</span>
            <select name="order" value={form.order} onChange={(e) => set({ order: (e.target as HTMLSelectElement).value })}>
              <option value="newest">Newest first</option>
              <option value="longest">Longest first</option>
            </select>
          </label>
          <label>
            <span class="label">Limit</span>
            <select name="limit" value={form.limit} onChange={(e) => set({ limit: (e.target as HTMLSelectElement).value })}>
              {['20', '50', '100', '200', '500'].map((l) => (
                <option value={l}>{l}</option>
              ))}
            </select>
          </label>
          <label class="grow traceql">
            <span class="label">TraceQL (must match as well)</span>
            <TraceQLEditor value={applied.q} range={form.range} onChange={(q) => set({ q })} onSubmit={() => submit()} />
          </label>
          <button type="submit" class="primary" data-testid="search-submit">
            Search
          </button>
        </div>
      </form>

      <ErrorBanner error={first.error} />
      {first.loading && !pages.length && <Spinner label="Searching…" />}
      {noData && !traces.length && !first.loading && <GettingStarted />}
      {first.data && !noData && (
        <>
          <div class="result-head">
            <span data-testid="result-count">
              {traces.length} trace{traces.length === 1 ? '' : 's'}
              {next ? '+' : ''}
            </span>
            {first.data.query && (
              <span class="muted">
                {' '}
                for <code>{first.data.query}</code>
              </span>
            )}
            {pages[pages.length - 1]?.truncated && <span class="muted"> · {pages[pages.length - 1].truncated}</span>}
            <span class="grow" />
            <a
              class={`button${selected.length === 2 ? ' primary' : ''}`}
              aria-disabled={selected.length !== 2}
              href={selected.length === 2 ? `/compare/${selected[0]}/${selected[1]}` : undefined}
              data-testid="compare-selected"
              title="Tick two traces to compare them"
            >
              Compare {selected.length}/2
            </a>
          </div>
          {traces.length > 0 && <Scatter traces={traces} result={first.data} />}
          {traces.length === 0 ? (
            <div class="empty-state" data-testid="no-results">
              <h2>No traces match</h2>
              <p>Widen the time range, remove a filter, or check the TraceQL. Spans are searched by the time they started.</p>
            </div>
          ) : (
            <table class="data results" data-testid="results">
              <thead>
                <tr>
                  <th aria-label="Select for comparison" />
                  <SortHeader label="Trace" column="service" sort={sort} onSort={onSort} />
                  <SortHeader label="Start" column="start" sort={sort} onSort={onSort} />
                  <SortHeader label="Duration" column="duration" sort={sort} onSort={onSort} numeric />
                  <SortHeader label="Spans" column="spans" sort={sort} onSort={onSort} numeric />
                  <SortHeader label="Errors" column="errors" sort={sort} onSort={onSort} numeric />
                </tr>
              </thead>
              <tbody>
                {sorted.map((t) => (
                  <ResultRow trace={t} longest={maxDuration(traces)} selected={selected.includes(t.traceId)} onToggle={() => toggle(t.traceId)} />
                ))}
              </tbody>
            </table>
          )}
          <ErrorBanner error={more.error} />
          {next && (
            <button type="button" onClick={loadMore} disabled={more.loading} class="load-more">
              {more.loading ? 'Loading…' : 'Load more'}
            </button>
          )}
        </>
      )}
    </section>
  );
}

function maxDuration(traces: TraceSummary[]): number {
  return traces.reduce((m, t) => Math.max(m, Number(t.durationNanos)), 1);
}

function sortTraces(traces: TraceSummary[], column: Column, descending: boolean): TraceSummary[] {
  const key = (t: TraceSummary): number | string => {
    switch (column) {
      case 'start':
        return Number(BigInt(t.startUnixNano) / 1000n);
      case 'duration':
        return Number(t.durationNanos);
      case 'spans':
        return t.spanCount;
      case 'errors':
        return t.errorCount;
      case 'service':
        return `${t.rootService} ${t.rootName}`;
    }
  };
  const sign = descending ? -1 : 1;
  return [...traces].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    return (ka < kb ? -1 : ka > kb ? 1 : a.traceId < b.traceId ? -1 : 1) * sign;
  });
}

function ResultRow({ trace, longest, selected, onToggle }: { trace: TraceSummary; longest: number; selected: boolean; onToggle: () => void }) {
  const start = nanosToMillis(trace.startUnixNano);
  const width = Math.max(1, (Number(trace.durationNanos) / longest) * 100);
  return (
    <tr data-testid="result-row" data-trace-id={trace.traceId} class={selected ? 'selected' : ''}>
      <td>
        <input type="checkbox" checked={selected} onChange={onToggle} aria-label={`Select trace ${trace.traceId} for comparison`} />
      </td>
      <td>
        <a href={`/trace/${trace.traceId}`} class="trace-title">
          <strong>{trace.rootService}</strong>: {trace.rootName}
          {trace.rootMissing && <span class="muted"> (root not received)</span>}
        </a>
        <div class="chips">
          {trace.services.map((s) => (
            <ServiceChip name={s.name} count={s.spans} errors={s.errors} />
          ))}
        </div>
        <div class="muted mono small">{trace.traceId}</div>
      </td>
      <td title={timestamp(start)}>
        {timestamp(start).slice(11)}
        <div class="muted small">{ago(start)}</div>
      </td>
      <td class="num">
        {duration(trace.durationNanos)}
        <div class="duration-bar">
          <span style={{ width: `${width}%` }} />
        </div>
      </td>
      <td class="num">{trace.spanCount}</td>
      <td class={`num${trace.errorCount ? ' error-text' : ''}`}>{trace.errorCount || '–'}</td>
    </tr>
  );
}

/** Duration over time, one point per trace (red with errors); a click opens the trace. */
function Scatter({ traces, result }: { traces: TraceSummary[]; result: SearchResult }) {
  const box = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(800);
  useEffect(() => {
    const observer = new ResizeObserver(([entry]) => setWidth(entry.contentRect.width));
    observer.observe(box.current!);
    return () => observer.disconnect();
  }, []);
  const height = 180;
  const pad = { left: 64, right: 12, top: 10, bottom: 24 };
  const starts = traces.map((t) => nanosToMillis(t.startUnixNano));
  let from = result.start ? nanosToMillis(result.start) : Math.min(...starts);
  let to = result.end ? nanosToMillis(result.end) : Math.max(...starts);
  if (!(from < to)) {
    from = Math.min(...starts) - 1000;
    to = Math.max(...starts) + 1000;
  }
  const maxNs = maxDuration(traces) * 1.1;
  const x = (ms: number) => pad.left + ((ms - from) / (to - from)) * (width - pad.left - pad.right);
  const y = (ns: number) => height - pad.bottom - (ns / maxNs) * (height - pad.top - pad.bottom);
  const yTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => f * maxNs);
  const xTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => from + f * (to - from));
  return (
    <div class="card scatter" ref={box}>
      <svg width={width} height={height} role="img" aria-label="Trace duration over time" data-testid="scatter">
        {yTicks.map((v) => (
          <g>
            <line x1={pad.left} x2={width - pad.right} y1={y(v)} y2={y(v)} class="grid" />
            <text x={pad.left - 6} y={y(v) + 4} text-anchor="end" class="axis">
              {duration(v)}
            </text>
          </g>
        ))}
        {xTicks.map((v, i) => (
          <text x={x(v)} y={height - 6} text-anchor={i === 0 ? 'start' : i === 4 ? 'end' : 'middle'} class="axis">
            {timestamp(v).slice(11, 19)}
          </text>
        ))}
        {traces.map((t, i) => (
          <a href={`/trace/${t.traceId}`} data-testid="scatter-point" data-trace-id={t.traceId} aria-label={`${t.rootService} ${t.rootName}, ${duration(t.durationNanos)}`}>
            <circle cx={x(starts[i])} cy={y(Number(t.durationNanos))} r={Math.min(9, 3 + Math.log2(1 + t.spanCount) / 2)} class={t.errorCount ? 'point error' : 'point'}>
              <title>
                {`${t.rootService}: ${t.rootName}\n${duration(t.durationNanos)} · ${t.spanCount} spans${t.errorCount ? ` · ${t.errorCount} errors` : ''}\n${timestamp(starts[i])}`}
              </title>
            </circle>
          </a>
        ))}
      </svg>
    </div>
  );
}
