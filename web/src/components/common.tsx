// Pieces every page uses: loading and error states, the getting-started panel, service chips,
// the time range picker, and a hook that loads from the API and cancels when inputs change.
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, type Status } from '../api';
import { RANGE_PRESETS, serviceColour, type TimeRange } from '../format';

export interface Loaded<T> {
  data?: T;
  error?: Error;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` whenever `deps` change (aborting the previous run); `undefined` skips. */
export function useLoad<T>(load: ((signal: AbortSignal) => Promise<T>) | undefined, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: !!load });
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    if (!load) {
      setState({ loading: false });
      return;
    }
    const controller = new AbortController();
    setState((s) => ({ data: s.data, loading: true }));
    load(controller.signal).then(
      (data) => !controller.signal.aborted && setState({ data, loading: false }),
      (error) => !controller.signal.aborted && setState({ error, loading: false }),
    );
    return () => controller.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, generation]);
  return { ...state, reload: () => setGeneration((g) => g + 1) };
}

/**
 * An API error with the server's message. `onRetry` adds a Retry button, except for a request
 * the server refused as wrong (4xx other than 429): asking again would not help.
 */
export function ErrorBanner({ error, onRetry }: { error?: Error; onRetry?: () => void }) {
  if (!error) return null;
  const status = error instanceof ApiError && error.status ? ` (${error.status})` : '';
  const refused = error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 429;
  return (
    <div class="banner error" role="alert">
      <strong>{error instanceof ApiError && error.status === 0 ? 'Cannot reach Clew' : `The request failed${status}`}:</strong>{' '}
      <span class="message">{error.message}</span>
      {onRetry && !refused && (
        <>
          {' '}
          <button type="button" class="ghost" onClick={onRetry}>
            Retry
          </button>
        </>
      )}
    </div>
  );
}

/** A page's title, "Updating…" while newer data loads, and the time range picker. */
export function PageHead({ title, updating, range, onRange }: { title: ComponentChildren; updating: boolean; range: TimeRange; onRange: (range: TimeRange) => void }) {
  return (
    <div class="row page-head">
      <h1>{title}</h1>
      {updating && <span class="muted">Updating…</span>}
      <span class="grow" />
      <TimeRangePicker range={range} onChange={onRange} />
    </div>
  );
}

export function Spinner({ label = 'Loading…' }: { label?: string }) {
  return (
    <div class="spinner" role="status" aria-live="polite">
      <span class="dot" /> {label}
    </div>
  );
}

export function ServiceChip({ name, count, errors }: { name: string; count?: number; errors?: number }) {
  return (
    <span class={`chip${errors ? ' has-errors' : ''}`} title={errors ? `${name}: ${errors} error span(s)` : name}>
      <span class="swatch" style={{ background: serviceColour(name) }} />
      {name}
      {count !== undefined && <span class="count">{count}</span>}
    </span>
  );
}

let status: Promise<Status> | undefined;
function serverStatus(): Promise<Status> {
  status ??= api<Status>('/api/v1/status').catch((e) => {
    status = undefined;
    throw e;
  });
  return status;
}

/** What to set in an application so its spans arrive here: shown wherever there is no data yet. */
export function GettingStarted({ title = 'No traces here yet' }: { title?: string }) {
  const { data, error } = useLoad(() => serverStatus(), []);
  if (!data && !error) return <Spinner />;
  const host = (addr: string | undefined, fallback: string) => {
    const [h, port] = (addr ?? fallback).split(/:(?=\d+$)/);
    const name = h === '0.0.0.0' || h === '[::]' ? window.location.hostname : h.replace(/^\[|\]$/g, '');
    return `${name.includes(':') ? `[${name}]` : name}:${port}`;
  };
  const http = host(data?.otlp_http, '127.0.0.1:4318');
  const grpc = host(data?.otlp_grpc, '127.0.0.1:4317');
  return (
    <section class="empty-state" data-testid="getting-started">
      <h2>{title}</h2>
      <p>
        Point any OpenTelemetry SDK at Clew: it accepts OTLP over HTTP (protobuf or JSON) and gRPC. Set these in the
        application's environment and restart it; its traces appear here within a second of being exported.
      </p>
      <pre class="code" data-testid="otel-env">
        {`export OTEL_EXPORTER_OTLP_ENDPOINT=http://${http}
export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
export OTEL_SERVICE_NAME=my-service
export OTEL_TRACES_EXPORTER=otlp`}
        {data?.auth_required ? `\nexport OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer <a project token from Settings>"` : ''}
      </pre>
      <p>
        For gRPC use <code>OTEL_EXPORTER_OTLP_ENDPOINT=http://{grpc}</code> with <code>OTEL_EXPORTER_OTLP_PROTOCOL=grpc</code>.
        Zipkin reporters can post to <code>{window.location.origin}/zipkin/api/v2/spans</code>.
      </p>
    </section>
  );
}

export function TimeRangePicker({ range, onChange }: { range: TimeRange; onChange: (range: TimeRange) => void }) {
  const custom = !!range.start;
  const toInput = (v?: string) => (v ? toLocalInput(new Date(v)) : '');
  return (
    <div class="range-picker">
      <label>
        <span class="label">Time range</span>
        <select
          aria-label="Time range"
          value={custom ? 'custom' : range.since}
          onChange={(e) => {
            const v = (e.target as HTMLSelectElement).value;
            if (v === 'custom') {
              const end = new Date();
              onChange({ start: new Date(end.getTime() - 3_600_000).toISOString(), end: end.toISOString() });
            } else onChange({ since: v });
          }}
        >
          {RANGE_PRESETS.map((p) => (
            <option value={p}>Last {p}</option>
          ))}
          <option value="custom">Custom…</option>
        </select>
      </label>
      {custom && (
        <>
          <label>
            <span class="label">From</span>
            <input
              type="datetime-local"
              step="1"
              value={toInput(range.start)}
              onChange={(e) => onChange({ ...range, start: new Date((e.target as HTMLInputElement).value).toISOString() })}
            />
          </label>
          <label>
            <span class="label">To</span>
            <input
              type="datetime-local"
              step="1"
              value={toInput(range.end)}
              onChange={(e) => onChange({ ...range, end: new Date((e.target as HTMLInputElement).value).toISOString() })}
            />
          </label>
        </>
      )}
    </div>
  );
}

function toLocalInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A table header cell that sorts its column. */
export function SortHeader<K extends string>({
  label,
  column,
  sort,
  onSort,
  numeric,
}: {
  label: string;
  column: K;
  sort: { column: K; descending: boolean };
  onSort: (column: K) => void;
  numeric?: boolean;
}) {
  const active = sort.column === column;
  return (
    <th class={numeric ? 'num' : ''} aria-sort={active ? (sort.descending ? 'descending' : 'ascending') : 'none'}>
      <button type="button" class="sort" onClick={() => onSort(column)}>
        {label}
        <span class="arrow">{active ? (sort.descending ? '▼' : '▲') : ''}</span>
      </button>
    </th>
  );
}
