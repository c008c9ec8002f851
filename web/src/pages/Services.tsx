// Services: every service's rate, errors and latency (RED) in a sortable table, and one service
// over time (charts) with its operations.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, withQuery, type Red, type RedResult, type RedSeries } from '../api';
import { ErrorBanner, GettingStarted, ServiceChip, SortHeader, Spinner, PageHead, useLoad } from '../components/common';
import { duration, nanosToMillis, percent, rangeFromParams, rangeLabel, rangeQuery, rate } from '../format';
import { navigate, type Location } from '../router';
import { createChart, hrefWith, hrefWithRange, isoFromNanos, useThemeVersion, type ChartSpec } from './charts';
import './services.css';

const RED_PATH = '/api/v1/metrics/red';
/** The spans that are requests a service answers; a service's figures count these when it has any. */
const ENTRY_KINDS = 'server,consumer';

export function ServicesPage({ service, location }: { service?: string; location: Location }) {
  return service ? <ServiceDetail key={service} service={service} location={location} /> : <ServiceList location={location} />;
}

// Sorting, shared by both tables.

type RedColumn = 'rate' | 'errorRate' | 'p50' | 'p95' | 'p99';
type Sort<K extends string> = { column: K; descending: boolean };

/** Sort state: a new column sorts text A→Z and numbers largest first; the same column flips. */
function useSort<K extends string>(initial: Sort<K>, textColumns: K[]) {
  const [sort, setSort] = useState(initial);
  const onSort = (column: K) =>
    setSort((s) => (s.column === column ? { column, descending: !s.descending } : { column, descending: !textColumns.includes(column) }));
  return [sort, onSort] as const;
}

function redValue(red: Red, column: RedColumn): number {
  if (column === 'rate' || column === 'errorRate') return red[column];
  // No requests, no percentiles: those sort below every measured duration.
  const nanos = red[`${column}Nanos`];
  return nanos === undefined ? -1 : Number(nanos);
}

function sortRows<T>(rows: T[], key: (row: T) => string | number, descending: boolean): T[] {
  return [...rows].sort((a, b) => {
    const x = key(a);
    const y = key(b);
    const order = typeof x === 'string' && typeof y === 'string' ? x.localeCompare(y) : Number(x) - Number(y);
    return descending ? -order : order;
  });
}

function RedHeaders<K extends string>({ sort, onSort }: { sort: Sort<K | RedColumn>; onSort: (column: K | RedColumn) => void }) {
  return (
    <>
      <SortHeader label="Rate" column="rate" sort={sort} onSort={onSort} numeric />
      <th>Rate over time</th>
      <SortHeader label="Error rate" column="errorRate" sort={sort} onSort={onSort} numeric />
      <SortHeader label="p50" column="p50" sort={sort} onSort={onSort} numeric />
      <SortHeader label="p95" column="p95" sort={sort} onSort={onSort} numeric />
      <SortHeader label="p99" column="p99" sort={sort} onSort={onSort} numeric />
    </>
  );
}

function RedCells({ series }: { series: RedSeries }) {
  const red = series.total;
  return (
    <>
      <td class="num">{rate(red.rate)}</td>
      <td>
        <Sparkline values={series.points.map((p) => p.rate)} label={`Requests per second over time, at most ${rate(Math.max(...series.points.map((p) => p.rate)))}`} />
      </td>
      <td class={`num${red.errorRate > 0 ? ' error-text' : ''}`}>{percent(red.errorRate)}</td>
      <td class="num">{duration(red.p50Nanos)}</td>
      <td class="num">{duration(red.p95Nanos)}</td>
      <td class="num">{duration(red.p99Nanos)}</td>
    </>
  );
}

/** A tiny line of the values, scaled to their maximum. */
function Sparkline({ values, label }: { values: number[]; label: string }) {
  const width = 100;
  const height = 22;
  if (values.length < 2) return null;
  const max = Math.max(...values);
  const points = values
    .map((v, i) => `${((i / (values.length - 1)) * width).toFixed(1)},${(height - 1 - (max > 0 ? v / max : 0) * (height - 2)).toFixed(1)}`)
    .join(' ');
  return (
    <svg class="sparkline" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img" aria-label={label}>
      <polyline points={points} />
    </svg>
  );
}

// The list of services.

interface ServiceRow {
  name: string;
  series: RedSeries;
  /** The service has no server or consumer spans in the range, so its figures count all its spans. */
  allKinds: boolean;
}

async function loadServiceRows(range: Record<string, string | undefined>, signal: AbortSignal): Promise<ServiceRow[]> {
  const [entry, all] = await Promise.all(
    [ENTRY_KINDS, undefined].map((kind) => api<RedResult>(RED_PATH, { query: { groupBy: 'service', kind, ...range }, signal })),
  );
  const rows = new Map<string, ServiceRow>();
  for (const series of all.series) {
    const name = series.labels.service;
    if (name) rows.set(name, { name, series, allKinds: true });
  }
  for (const series of entry.series) {
    const name = series.labels.service;
    if (name && series.total.requests > 0) rows.set(name, { name, series, allKinds: false });
  }
  return [...rows.values()];
}

function ServiceList({ location }: { location: Location }) {
  const range = rangeFromParams(location.params);
  const query = rangeQuery(range);
  const { data, error, loading, reload } = useLoad((signal) => loadServiceRows(query, signal), [query.since, query.start, query.end]);
  const [sort, onSort] = useSort<'service' | RedColumn>({ column: 'service', descending: false }, ['service']);
  const rows = useMemo(
    () => sortRows(data ?? [], (r) => (sort.column === 'service' ? r.name : redValue(r.series.total, sort.column)), sort.descending),
    [data, sort],
  );

  let body;
  if (!data) body = loading ? <Spinner label="Loading services…" /> : null;
  else if (!rows.length) body = <GettingStarted title="No services yet" />;
  else
    body = (
      <>
        <p class="muted services-note">
          Figures count the requests each service answers (server and consumer spans); a service without any counts all its
          spans. Over the {rangeLabel(range)}.
        </p>
        <table class="data services-table">
          <thead>
            <tr>
              <SortHeader label="Service" column="service" sort={sort} onSort={onSort} />
              <RedHeaders sort={sort} onSort={onSort} />
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr key={row.name} data-testid="service-row" data-service={row.name}>
                <td>
                  <a href={withQuery(`/services/${encodeURIComponent(row.name)}`, query)} class="service-link">
                    <ServiceChip name={row.name} />
                  </a>
                  {row.allKinds && (
                    <span class="muted all-kinds" title="No server or consumer spans in the range: these figures count all its spans">
                      {' '}
                      all spans
                    </span>
                  )}
                </td>
                <RedCells series={row.series} />
              </tr>
            ))}
          </tbody>
        </table>
      </>
    );

  return (
    <section class="page services-page">
      <PageHead title="Services" updating={loading && !!data} range={range} onRange={(r) => navigate(hrefWithRange(location, r))} />
      <ErrorBanner error={error} onRetry={reload} />
      {body}
    </section>
  );
}

// One service.

interface ServiceSeries {
  result: RedResult;
  series?: RedSeries;
  allKinds: boolean;
}

/**
 * The service's (or one operation's) series. A service counts its server and consumer spans, or
 * all its spans when it has none (a batch job, a client-only service); an operation counts the
 * spans of the kind its row showed, or all kinds when none is given.
 */
async function loadServiceSeries(
  service: string,
  operation: string | undefined,
  kind: string | undefined,
  range: Record<string, string | undefined>,
  signal: AbortSignal,
): Promise<ServiceSeries> {
  const load = (kinds?: string) =>
    api<RedResult>(RED_PATH, { query: { service, operation, kind: kinds, groupBy: 'service', ...range }, signal });
  if (operation) {
    const result = await load(kind);
    return { result, series: result.series[0], allKinds: false };
  }
  const entry = await load(ENTRY_KINDS);
  if (entry.series[0]?.total.requests) return { result: entry, series: entry.series[0], allKinds: false };
  const all = await load();
  return { result: all, series: all.series[0], allKinds: true };
}

function ServiceDetail({ service, location }: { service: string; location: Location }) {
  const range = rangeFromParams(location.params);
  const query = rangeQuery(range);
  const operation = location.params.get('operation') ?? undefined;
  const kind = location.params.get('kind') ?? undefined;
  const rangeDeps = [service, query.since, query.start, query.end];
  const charts = useLoad((signal) => loadServiceSeries(service, operation, kind, query, signal), [...rangeDeps, operation, kind]);
  const operations = useLoad(
    (signal) => api<RedResult>(RED_PATH, { query: { service, groupBy: 'operation,kind', ...query }, signal }),
    rangeDeps,
  );
  const [sort, onSort] = useSort<'operation' | 'kind' | RedColumn>({ column: 'rate', descending: true }, ['operation', 'kind']);
  const rows = useMemo(() => {
    const all = (operations.data?.series ?? []).map((series) => ({
      operation: series.labels.operation ?? '',
      kind: series.labels.kind ?? undefined,
      series,
    }));
    return sortRows(
      all,
      (r) => (sort.column === 'operation' ? r.operation : sort.column === 'kind' ? (r.kind ?? '') : redValue(r.series.total, sort.column)),
      sort.descending,
    );
  }, [operations.data, sort]);

  const subject = operation ? `${operation} in ${service}` : service;
  let chartBody;
  if (!charts.data) chartBody = charts.loading ? <Spinner label="Loading charts…" /> : null;
  else if (!charts.data.series)
    chartBody = (
      <p class="empty-state">
        No spans of <strong>{subject}</strong> in the {rangeLabel(range)}. <a href={hrefWithRange(location, { since: '24h' })}>Look at the last 24 hours</a>{' '}
        or <a href={withQuery('/services', query)}>pick another service</a>.
      </p>
    );
  else
    chartBody = (
      <>
        {charts.data.allKinds && (
          <p class="muted">{service} has no server or consumer spans in this range: the charts count all its spans.</p>
        )}
        <RedCharts result={charts.data.result} series={charts.data.series} service={service} operation={operation} kind={kind} />
      </>
    );

  return (
    <section class="page services-page">
      <PageHead
        title={
          <>
            <a href={withQuery('/services', query)}>Services</a> <span class="muted">/</span> <ServiceChip name={service} />
          </>
        }
        updating={(charts.loading || operations.loading) && !!(charts.data || operations.data)}
        range={range}
        onRange={(r) => navigate(hrefWithRange(location, r))}
      />
      <p class="service-links">
        <a href={withQuery('/search', { service, name: operation, kind, ...query })}>Search traces of this {operation ? 'operation' : 'service'}</a>
        <a href={withQuery('/map', query)}>Service map</a>
      </p>
      {operation && (
        <p class="operation-filter">
          Operation <code>{operation}</code> {kind && <span class="badge">{kind}</span>}{' '}
          <a href={hrefWith(location, { operation: undefined, kind: undefined })}>clear (whole service)</a>
        </p>
      )}
      <ErrorBanner error={charts.error} onRetry={charts.reload} />
      {chartBody}

      <h2>Operations</h2>
      <ErrorBanner error={operations.error} onRetry={operations.reload} />
      {!operations.data ? (
        operations.loading && <Spinner label="Loading operations…" />
      ) : rows.length === 0 ? (
        <p class="muted">No operations of {service} in the {rangeLabel(range)}.</p>
      ) : (
        <table class="data operations-table">
          <thead>
            <tr>
              <SortHeader label="Operation" column="operation" sort={sort} onSort={onSort} />
              <SortHeader label="Kind" column="kind" sort={sort} onSort={onSort} />
              <RedHeaders sort={sort} onSort={onSort} />
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => {
              const selected = row.operation === operation && (!kind || kind === row.kind);
              return (
                <tr
                  key={`${row.operation}\u0000${row.kind ?? ''}`}
                  data-testid="operation-row"
                  data-operation={row.operation}
                  class={selected ? 'selected' : ''}
                  aria-current={selected ? 'true' : undefined}
                >
                  <td class="operation-name">
                    <a href={hrefWith(location, { operation: row.operation, kind: row.kind })} title="Show this operation in the charts">
                      {row.operation || '(no name)'}
                    </a>
                  </td>
                  <td class="muted">{row.kind ?? '–'}</td>
                  <RedCells series={row.series} />
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** Requests and errors per second, error rate, and latency percentiles; a click searches that step. */
function RedCharts({
  result,
  series,
  service,
  operation,
  kind,
}: {
  result: RedResult;
  series: RedSeries;
  service: string;
  operation?: string;
  kind?: string;
}) {
  const specs = useMemo(() => {
    const points = series.points;
    const times = points.map((p) => nanosToMillis(p.startUnixNano) / 1000);
    const stepSeconds = Number(result.stepNanos) / 1e9;
    const onPick = (index: number) => {
      const start = BigInt(points[index].startUnixNano);
      navigate(
        withQuery('/search', {
          service,
          name: operation,
          kind,
          start: isoFromNanos(start),
          end: isoFromNanos(start + BigInt(result.stepNanos)),
        }),
      );
    };
    const common = { times, syncKey: `red:${service}`, onPick };
    // Steps without requests have no error rate or durations: gaps, not zeros.
    const nanos = (v: string | undefined) => (v === undefined ? null : Number(v));
    const rateSpec: ChartSpec = {
      ...common,
      series: [
        { label: 'requests/s', values: points.map((p) => p.rate), colour: 'accent' },
        { label: 'errors/s', values: points.map((p) => p.errors / stepSeconds), colour: 'error' },
      ],
      axis: (v) => `${Number(v.toPrecision(3))}/s`,
      value: (v) => rate(v),
    };
    const errorSpec: ChartSpec = {
      ...common,
      series: [{ label: 'error rate', values: points.map((p) => (p.requests > 0 ? p.errorRate : null)), colour: 'error' }],
      axis: (v) => percent(v),
      value: (v) => percent(v),
    };
    const durationSpec: ChartSpec = {
      ...common,
      series: [
        { label: 'p50', values: points.map((p) => nanos(p.p50Nanos)), colour: 'ok' },
        { label: 'p95', values: points.map((p) => nanos(p.p95Nanos)), colour: 'accent' },
        { label: 'p99', values: points.map((p) => nanos(p.p99Nanos)), colour: 'warn' },
      ],
      axis: (v) => duration(v),
      value: (v) => duration(v),
    };
    return { rateSpec, errorSpec, durationSpec };
  }, [result, series, service, operation, kind]);

  return (
    <div class="red-charts">
      <RedChart title="Requests per second" name="rate" spec={specs.rateSpec} />
      <RedChart title="Error rate" name="errors" spec={specs.errorSpec} />
      <RedChart title="Duration" name="duration" spec={specs.durationSpec} />
    </div>
  );
}

const CHART_HEIGHT = 200;

/** One uPlot chart, sized to its container and drawn again when that resizes or the theme changes. */
function RedChart({ title, name, spec }: { title: string; name: 'rate' | 'errors' | 'duration'; spec: ChartSpec }) {
  const container = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(0);
  const theme = useThemeVersion();

  useEffect(() => {
    const observer = new ResizeObserver(([entry]) => setWidth(Math.floor(entry.contentRect.width)));
    observer.observe(container.current!);
    return () => observer.disconnect();
  }, []);

  useEffect(() => {
    if (!width) return;
    const chart = createChart(container.current!, spec, width, CHART_HEIGHT);
    return () => chart.destroy();
  }, [spec, width, theme]);

  return (
    <div class="card red-chart" data-testid="red-chart" data-title={name}>
      <h3>{title}</h3>
      <div ref={container} class="red-chart-plot" />
    </div>
  );
}
