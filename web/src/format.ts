// Numbers, durations, times and colours as every page shows them.

/** Nanoseconds (number or the API's decimal string) as `850 µs`, `12.3 ms`, `1.25 s`, `2m 5s`. */
export function duration(nanos: number | string | undefined | null): string {
  if (nanos === undefined || nanos === null || nanos === '') return '–';
  const ns = typeof nanos === 'string' ? Number(nanos) : nanos;
  const abs = Math.abs(ns);
  const sign = ns < 0 ? '-' : '';
  if (abs < 1_000) return `${sign}${abs.toFixed(0)} ns`;
  if (abs < 1_000_000) return `${sign}${trim(abs / 1_000)} µs`;
  if (abs < 1_000_000_000) return `${sign}${trim(abs / 1_000_000)} ms`;
  if (abs < 60_000_000_000) return `${sign}${trim(abs / 1_000_000_000)} s`;
  const s = Math.round(abs / 1_000_000_000);
  if (s < 3600) return `${sign}${Math.floor(s / 60)}m ${s % 60}s`;
  return `${sign}${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function trim(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** Unix nanoseconds as a string (beyond 2^53) to milliseconds. */
export function nanosToMillis(nanos: string): number {
  return Number(BigInt(nanos) / 1_000_000n);
}

/** `2026-11-21 14:03:07.123` in local time. */
export function timestamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** `3 min ago`, `2 h ago`. */
export function ago(ms: number, now = Date.now()): string {
  const s = Math.round((now - ms) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function rate(perSecond: number | undefined): string {
  if (perSecond === undefined) return '–';
  if (perSecond === 0) return '0/s';
  if (perSecond < 0.1) return `${(perSecond * 60).toFixed(perSecond * 60 < 10 ? 1 : 0)}/min`;
  return `${perSecond < 10 ? perSecond.toFixed(2) : perSecond.toFixed(0)}/s`;
}

export function percent(ratio: number | undefined): string {
  if (ratio === undefined) return '–';
  if (ratio === 0) return '0%';
  const p = ratio * 100;
  return `${p < 1 ? p.toFixed(2) : p < 10 ? p.toFixed(1) : p.toFixed(0)}%`;
}

// Services keep their colour everywhere: one of twenty distinct colours, chosen by a hash of
// the name (FNV-1a).
const PALETTE = [
  '#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#ff9da7', '#9c755f', '#e15759', '#17becf',
  '#8cd17d', '#b6992d', '#499894', '#d37295', '#86bcb6', '#a0cbe8', '#ffbe7d', '#f1ce63', '#d4a6c8', '#79706e',
];
const colours = new Map<string, string>();
export function serviceColour(service: string): string {
  let colour = colours.get(service);
  if (!colour) {
    let h = 2166136261;
    for (let i = 0; i < service.length; i++) h = Math.imul(h ^ service.charCodeAt(i), 16777619);
    colour = PALETTE[(h >>> 0) % PALETTE.length];
    colours.set(service, colour);
  }
  return colour;
}

/** A trace ID as typed or pasted (hex, maybe with spaces or dashes), or undefined. */
export function parseTraceId(text: string): string | undefined {
  const hex = text.trim().replace(/[\s-]/g, '').toLowerCase();
  if (/^[0-9a-f]{32}$/.test(hex) && !/^0+$/.test(hex)) return hex;
  if (/^[0-9a-f]{16}$/.test(hex) && !/^0+$/.test(hex)) return hex.padStart(32, '0');
  return undefined;
}

export const SPAN_KINDS = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'] as const;
export const STATUS_CODES = ['unset', 'ok', 'error'] as const;

// Time ranges, as the URL carries them: `since=1h`, or `start` and `end` (RFC 3339).

export interface TimeRange {
  since?: string;
  start?: string;
  end?: string;
}

export const RANGE_PRESETS = ['5m', '15m', '1h', '3h', '6h', '12h', '24h', '2d', '7d'];
const DEFAULT_SINCE = '1h';

export function rangeFromParams(params: URLSearchParams): TimeRange {
  const start = params.get('start') ?? undefined;
  const end = params.get('end') ?? undefined;
  if (start) return { start, end };
  return { since: params.get('since') ?? DEFAULT_SINCE, end };
}

export function rangeQuery(range: TimeRange): Record<string, string | undefined> {
  return range.start ? { start: range.start, end: range.end } : { since: range.since ?? DEFAULT_SINCE, end: range.end };
}

export function rangeLabel(range: TimeRange): string {
  if (range.start) return `${range.start.replace('T', ' ')} → ${range.end ? range.end.replace('T', ' ') : 'now'}`;
  return `last ${range.since ?? DEFAULT_SINCE}`;
}
