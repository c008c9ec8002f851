// uPlot time series drawn in the page's theme, and the address helpers the service map and
// services pages share (time ranges in links, nanosecond times as RFC 3339).
import { useEffect, useState } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { nanosToMillis, rangeQuery, type TimeRange } from '../format';
import type { Location } from '../router';

/** The theme colours charts use, read from the CSS variables of style.css. */
export interface ChartColours {
  text: string;
  muted: string;
  border: string;
  accent: string;
  error: string;
  warn: string;
  ok: string;
}

function chartColours(): ChartColours {
  const style = getComputedStyle(document.documentElement);
  const v = (name: string) => style.getPropertyValue(name).trim();
  return {
    text: v('--text'),
    muted: v('--muted'),
    border: v('--border'),
    accent: v('--accent'),
    error: v('--error'),
    warn: v('--warn'),
    ok: v('--ok'),
  };
}

/**
 * A number that changes whenever the theme does (`data-theme` on `<html>`, which also follows
 * the system's preference). Canvas charts cannot follow CSS variables by themselves, so they
 * are drawn again when this changes.
 */
export function useThemeVersion(): number {
  const [version, setVersion] = useState(0);
  useEffect(() => {
    const bump = () => setVersion((v) => v + 1);
    const observer = new MutationObserver(bump);
    observer.observe(document.documentElement, { attributes: true, attributeFilter: ['data-theme'] });
    return () => observer.disconnect();
  }, []);
  return version;
}

export interface ChartSeries {
  label: string;
  /** One value per time; null where there is nothing to show (a gap). */
  values: (number | null)[];
  colour: keyof ChartColours;
  dash?: number[];
}

export interface ChartSpec {
  /** Unix seconds, ascending. */
  times: number[];
  series: ChartSeries[];
  /** Tick labels of the y axis. */
  axis: (value: number) => string;
  /** Values in the legend (under the cursor). */
  value: (value: number) => string;
  /** Charts with the same key move their cursors together. */
  syncKey?: string;
  /** Called with the index of the time clicked (a click, not a drag to zoom). */
  onPick?: (index: number) => void;
}

/** Draws `spec` into `container` at the given size; the caller destroys the chart. */
export function createChart(container: HTMLElement, spec: ChartSpec, width: number, height: number): uPlot {
  const colours = chartColours();
  const font = '11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
  const axis: uPlot.Axis = {
    stroke: colours.muted,
    font,
    grid: { stroke: colours.border, width: 1 },
    ticks: { stroke: colours.border, width: 1 },
  };
  const options: uPlot.Options = {
    width,
    height,
    cursor: {
      sync: spec.syncKey ? { key: spec.syncKey } : undefined,
      points: { size: 6 },
    },
    scales: {
      x: { time: true },
      // Rates, ratios and durations start at zero; an all-zero series still gets a visible axis.
      y: { range: (_u, _min, max) => [0, max > 0 ? uPlot.rangeNum(0, max, 0.1, true)[1] : 1] },
    },
    axes: [
      axis,
      { ...axis, size: 64, values: (_u, splits) => splits.map((v) => spec.axis(v)) },
    ],
    series: [
      {},
      ...spec.series.map<uPlot.Series>((s) => ({
        label: s.label,
        stroke: colours[s.colour],
        width: 1.5,
        dash: s.dash,
        // A value between two gaps draws no line: mark it with a point.
        points: { show: true, size: 5, filter: (_u, _i, _show) => isolated(s.values) },
        value: (_u, v) => (v === null || v === undefined ? '–' : spec.value(v)),
      })),
    ],
    hooks: spec.onPick ? { ready: [(u) => listenForPicks(u, spec.onPick!)] } : undefined,
  };
  return new uPlot(options, [spec.times, ...spec.series.map((s) => s.values)], container);
}

/** Clicks on the plot (pressed and released in place; a drag zooms) report the time under the cursor. */
function listenForPicks(u: uPlot, pick: (index: number) => void) {
  let down: { x: number; y: number } | undefined;
  u.over.style.cursor = 'pointer';
  u.over.addEventListener('mousedown', (e) => (down = { x: e.clientX, y: e.clientY }));
  u.over.addEventListener('mouseup', (e) => {
    const still = down && Math.abs(e.clientX - down.x) < 4 && Math.abs(e.clientY - down.y) < 4;
    down = undefined;
    const index = u.cursor.idx;
    if (still && index !== null && index !== undefined) pick(index);
  });
}

/** Unix nanoseconds (the API's decimal strings) as RFC 3339, which the API and the pages read. */
export function isoFromNanos(nanos: string | bigint): string {
  return new Date(nanosToMillis(String(nanos))).toISOString();
}

/** The current address with `changes` applied (undefined or '' removes a parameter). */
export function hrefWith(location: Location, changes: Record<string, string | undefined>): string {
  const params = new URLSearchParams(location.params);
  for (const [key, value] of Object.entries(changes)) {
    if (value) params.set(key, value);
    else params.delete(key);
  }
  const query = params.toString();
  return query ? `${location.path}?${query}` : location.path;
}

/** The current address showing another time range, its other parameters kept. */
export function hrefWithRange(location: Location, range: TimeRange): string {
  return hrefWith(location, { since: undefined, start: undefined, end: undefined, ...rangeQuery(range) });
}

/** Indices of values with no value on either side. */
function isolated(values: (number | null)[]): number[] {
  const found: number[] = [];
  values.forEach((v, i) => {
    if (v !== null && v !== undefined && (values[i - 1] ?? null) === null && (values[i + 1] ?? null) === null) found.push(i);
  });
  return found;
}
