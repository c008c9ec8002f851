// The service map: services, the databases and external services they call, and the calls
// between them, laid out left to right by dagre and drawn in SVG with pan and zoom. A node or an
// edge opens a panel with its RED figures and example traces.
import { Graph, layout as dagreLayout } from '@dagrejs/dagre';
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, withQuery, type MapEdge, type MapNode, type Red, type SearchResult, type ServiceMap, type TraceSummary } from '../api';
import { ErrorBanner, GettingStarted, ServiceChip, Spinner, PageHead, useLoad } from '../components/common';
import { duration, nanosToMillis, percent, rangeFromParams, rangeLabel, rangeQuery, rate, serviceColour, timestamp, type TimeRange } from '../format';
import { navigate, type Location } from '../router';
import { hrefWithRange, isoFromNanos } from './charts';
import './servicemap.css';

type Selection = { type: 'node'; id: string } | { type: 'edge'; key: string };

/** Edges are told apart by their ends and kind (two services may both call and message each other). */
function edgeKey(edge: MapEdge): string {
  return `${edge.kind}:${edge.source}\u2192${edge.target}`;
}

function selectionKey(selection: Selection): string {
  return selection.type === 'node' ? `node:${selection.id}` : `edge:${selection.key}`;
}

export function ServiceMapPage({ location }: { location: Location }) {
  const range = rangeFromParams(location.params);
  const query = rangeQuery(range);
  const { data, error, loading, reload } = useLoad(
    (signal) => api<ServiceMap>('/api/v1/service-map', { query, signal }),
    [query.since, query.start, query.end],
  );
  const [selection, setSelection] = useState<Selection>();
  const [errorsOnly, setErrorsOnly] = useState(false);
  const layout = useMemo(() => (data && data.nodes.length ? computeLayout(data) : undefined), [data]);
  // After a change of range, a selection the map no longer has closes the panel.
  const shown =
    selection &&
    data &&
    (selection.type === 'node' ? data.nodes.some((n) => n.id === selection.id) : data.edges.some((e) => edgeKey(e) === selection.key))
      ? selection
      : undefined;

  // Escape closes the panel.
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => event.key === 'Escape' && setSelection(undefined);
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, []);

  let body;
  if (!data) body = loading ? <Spinner label="Loading the service map…" /> : null;
  else if (!layout)
    body = (
      <>
        <GettingStarted title="No services on the map yet" />
        <p class="muted">
          The map is built from the spans stored for the selected range ({rangeLabel(range)}): services appear once their
          traces arrive, and calls between them once a span in one service has a parent in another.
        </p>
      </>
    );
  else
    body = (
      <div class={`map-body${shown ? ' with-detail' : ''}`}>
        <MapCanvas layout={layout} selection={shown} onSelect={setSelection} />
        {shown && (
          <MapDetail
            map={data}
            range={range}
            selection={shown}
            errorsOnly={errorsOnly}
            onErrorsOnly={setErrorsOnly}
            onSelect={setSelection}
          />
        )}
      </div>
    );

  return (
    <section class="page full map-page">
      <PageHead title="Service map" updating={loading && !!data} range={range} onRange={(r) => navigate(hrefWithRange(location, r))} />
      <ErrorBanner error={error} onRetry={reload} />
      {body}
    </section>
  );
}

// Layout: dagre places the nodes and routes the edges (with room for their labels).

interface PlacedNode {
  node: MapNode;
  /** Top left corner. */
  x: number;
  y: number;
  width: number;
  height: number;
}

interface PlacedEdge {
  edge: MapEdge;
  key: string;
  path: string;
  label: string;
  labelX: number;
  labelY: number;
  strokeWidth: number;
}

interface MapLayout {
  nodes: PlacedNode[];
  edges: PlacedEdge[];
  width: number;
  height: number;
  /** Too many edges to label them all: labels show on hover, focus and selection only. */
  dense: boolean;
}

const SERVICE_SIZE = { width: 190, height: 64 };
const PEER_SIZE = { width: 170, height: 56 };
const LABEL_CHAR_WIDTH = 6.2; // px per character of an 11px edge label, roughly
const NAME_CHARS = 22; // characters of a name that fit in a node
const DENSE_EDGES = 30;

function edgeLabel(red: Red): string {
  return `${rate(red.rate)} · ${percent(red.errorRate)} · p95 ${duration(red.p95Nanos)}`;
}

function computeLayout(map: ServiceMap): MapLayout {
  const graph = new Graph({ multigraph: true });
  graph.setGraph({ rankdir: 'LR', nodesep: 28, ranksep: 80, edgesep: 14, marginx: 24, marginy: 24 });
  graph.setDefaultEdgeLabel(() => ({}));
  for (const node of map.nodes) graph.setNode(node.id, { ...(node.kind === 'service' ? SERVICE_SIZE : PEER_SIZE) });
  const ids = new Set(map.nodes.map((n) => n.id));
  const edges = map.edges.filter((e) => ids.has(e.source) && ids.has(e.target));
  const dense = edges.length > DENSE_EDGES;
  for (const edge of edges) {
    // Labels get room of their own in the layout, unless there are too many to show at once.
    const size = dense ? {} : { width: edgeLabel(edge).length * LABEL_CHAR_WIDTH, height: 14, labelpos: 'c' as const };
    graph.setEdge(edge.source, edge.target, size, edge.kind);
  }
  dagreLayout(graph);

  const maxRate = Math.max(0, ...edges.map((e) => e.rate));
  return {
    nodes: map.nodes.map((node) => {
      const placed = graph.node(node.id);
      const { width, height } = placed;
      return { node, x: (placed.x ?? 0) - width / 2, y: (placed.y ?? 0) - height / 2, width, height };
    }),
    edges: edges.map((edge) => {
      const placed = graph.edge(edge.source, edge.target, edge.kind);
      const points = placed.points ?? [];
      const middle = points[Math.floor(points.length / 2)] ?? { x: 0, y: 0 };
      return {
        edge,
        key: edgeKey(edge),
        path: curve(points),
        label: edgeLabel(edge),
        labelX: placed.x ?? middle.x,
        labelY: placed.y ?? middle.y,
        // Thickness grows with the square root of the rate, so quiet calls stay visible.
        strokeWidth: 1.25 + (maxRate > 0 ? 4 * Math.sqrt(edge.rate / maxRate) : 0),
      };
    }),
    width: graph.graph().width ?? 0,
    height: graph.graph().height ?? 0,
    dense,
  };
}

/** A smooth path through dagre's route points (Catmull-Rom as cubic Béziers). */
function curve(points: { x: number; y: number }[]): string {
  if (points.length < 2) return '';
  const r = (v: number) => Math.round(v * 10) / 10;
  let d = `M${r(points[0].x)},${r(points[0].y)}`;
  for (let i = 0; i < points.length - 1; i++) {
    const p0 = points[i - 1] ?? points[i];
    const p1 = points[i];
    const p2 = points[i + 1];
    const p3 = points[i + 2] ?? p2;
    d += ` C${r(p1.x + (p2.x - p0.x) / 6)},${r(p1.y + (p2.y - p0.y) / 6)} ${r(p2.x - (p3.x - p1.x) / 6)},${r(p2.y - (p3.y - p1.y) / 6)} ${r(p2.x)},${r(p2.y)}`;
  }
  return d;
}

function truncate(text: string, chars: number): string {
  return text.length > chars ? `${text.slice(0, chars - 1)}…` : text;
}

// Drawing, with pan (drag) and zoom (wheel, buttons).

interface View {
  x: number;
  y: number;
  k: number;
}

const MIN_ZOOM = 0.1;
const MAX_ZOOM = 4;

function MapCanvas({ layout, selection, onSelect }: { layout: MapLayout; selection?: Selection; onSelect: (s?: Selection) => void }) {
  const wrapper = useRef<HTMLDivElement>(null);
  const svg = useRef<SVGSVGElement>(null);
  const [size, setSize] = useState<{ width: number; height: number }>();
  const [view, setView] = useState<View>({ x: 0, y: 0, k: 1 });
  // Whether the person has panned or zoomed since the last fit: if not, resizing fits again.
  const moved = useRef(false);
  const drag = useRef<{ pointer: number; startX: number; startY: number; view: View; active: boolean }>();
  // A drag ends with a click on the map, which must not close the panel.
  const suppressClick = useRef(false);

  // Measured before the first paint (so the map appears fitted), then on every resize.
  useLayoutEffect(() => {
    const measure = () => {
      const { width, height } = wrapper.current!.getBoundingClientRect();
      setSize((s) => (s && s.width === width && s.height === height ? s : { width, height }));
    };
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(wrapper.current!);
    return () => observer.disconnect();
  }, []);

  const fit = () => {
    if (!size || !layout.width || !layout.height) return;
    const k = Math.max(MIN_ZOOM, Math.min(1.25, (size.width - 32) / layout.width, (size.height - 32) / layout.height));
    setView({ k, x: (size.width - layout.width * k) / 2, y: (size.height - layout.height * k) / 2 });
    moved.current = false;
  };

  // New data fits again; so does a resize, unless the person has moved the map.
  useEffect(() => {
    moved.current = false;
  }, [layout]);
  useEffect(() => {
    if (!moved.current) fit();
  }, [layout, size]);

  const zoomAt = (px: number, py: number, factor: number) => {
    moved.current = true;
    setView((v) => {
      const k = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, v.k * factor));
      const f = k / v.k;
      return { k, x: px - (px - v.x) * f, y: py - (py - v.y) * f };
    });
  };
  const zoomCentre = (factor: number) => size && zoomAt(size.width / 2, size.height / 2, factor);

  // The wheel zooms around the pointer; the listener is not passive so the page does not scroll.
  useEffect(() => {
    const el = svg.current!;
    const onWheel = (event: WheelEvent) => {
      event.preventDefault();
      const rect = el.getBoundingClientRect();
      const delta = event.deltaY * (event.deltaMode === 1 ? 16 : 1);
      zoomAt(event.clientX - rect.left, event.clientY - rect.top, Math.exp(-delta * 0.0015));
    };
    el.addEventListener('wheel', onWheel, { passive: false });
    return () => el.removeEventListener('wheel', onWheel);
  }, []);

  const onPointerDown = (event: PointerEvent) => {
    suppressClick.current = false;
    if (event.button !== 0) return;
    drag.current = { pointer: event.pointerId, startX: event.clientX, startY: event.clientY, view, active: false };
  };
  const onPointerMove = (event: PointerEvent) => {
    const d = drag.current;
    if (!d || d.pointer !== event.pointerId) return;
    const dx = event.clientX - d.startX;
    const dy = event.clientY - d.startY;
    // A few pixels of wobble is still a click on a node or edge.
    if (!d.active && Math.hypot(dx, dy) < 4) return;
    if (!d.active) {
      d.active = true;
      svg.current!.setPointerCapture(event.pointerId);
      svg.current!.classList.add('panning');
    }
    moved.current = true;
    setView({ ...d.view, x: d.view.x + dx, y: d.view.y + dy });
  };
  const onPointerUp = () => {
    if (drag.current?.active) {
      suppressClick.current = true;
      svg.current!.classList.remove('panning');
    }
    drag.current = undefined;
  };

  // What the selection touches stays bright; the rest fades.
  const related = useMemo(() => {
    const set = new Set<string>();
    if (selection?.type === 'node') {
      set.add(`node:${selection.id}`);
      for (const { edge, key } of layout.edges)
        if (edge.source === selection.id || edge.target === selection.id) {
          set.add(`edge:${key}`);
          set.add(`node:${edge.source}`);
          set.add(`node:${edge.target}`);
        }
    } else if (selection?.type === 'edge') {
      set.add(`edge:${selection.key}`);
      const placed = layout.edges.find((e) => e.key === selection.key);
      if (placed) {
        set.add(`node:${placed.edge.source}`);
        set.add(`node:${placed.edge.target}`);
      }
    }
    return set;
  }, [layout, selection]);
  const selected = selection ? selectionKey(selection) : undefined;

  const activate = (event: KeyboardEvent, s: Selection) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      onSelect(s);
    }
  };

  return (
    <div class="map-canvas" ref={wrapper}>
      <svg
        ref={svg}
        data-testid="service-map"
        role="group"
        aria-label="Service map: drag to pan, scroll to zoom"
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={onPointerUp}
        onPointerCancel={onPointerUp}
        onClick={(event) => {
          if (suppressClick.current) suppressClick.current = false;
          else if (event.target === svg.current) onSelect(undefined);
        }}
      >
        <defs>
          {['normal', 'error', 'selected', 'faded'].map((state) => (
            <marker
              id={`map-arrow-${state}`}
              class={`map-arrow ${state}`}
              viewBox="0 0 10 10"
              refX="9"
              refY="5"
              markerWidth="9"
              markerHeight="9"
              markerUnits="userSpaceOnUse"
              orient="auto"
            >
              <path d="M0,0 L10,5 L0,10 z" />
            </marker>
          ))}
        </defs>
        <g transform={`translate(${view.x},${view.y}) scale(${view.k})`} class={`${selection ? 'has-selection' : ''}${layout.dense ? ' dense' : ''}`}>
          {layout.edges.map(({ edge, key, path, label, labelX, labelY, strokeWidth }) => {
            const labelWidth = label.length * LABEL_CHAR_WIDTH + 8;
            const isSelected = selected === `edge:${key}`;
            const state = isSelected ? 'selected' : edge.errorRate > 0 ? 'error' : 'normal';
            return (
              <g
                key={key}
                class={`map-edge ${edge.kind} ${state}${related.has(`edge:${key}`) ? ' related' : ''}`}
                data-testid="map-edge"
                data-source={edge.source}
                data-target={edge.target}
                data-kind={edge.kind}
                tabindex={0}
                role="button"
                aria-pressed={isSelected}
                aria-label={`${edge.kind} ${edge.source} to ${edge.target}: ${rate(edge.rate)}, ${percent(edge.errorRate)} errors, p95 ${duration(edge.p95Nanos)}`}
                onClick={() => onSelect({ type: 'edge', key })}
                onKeyDown={(e) => activate(e, { type: 'edge', key })}
              >
                <path class="hit" d={path} />
                <path class="line" d={path} style={{ strokeWidth }} marker-end={`url(#map-arrow-${state})`} />
                <g class="edge-label">
                  <rect x={labelX - labelWidth / 2} y={labelY - 8} width={labelWidth} height={16} rx={3} />
                  <text x={labelX} y={labelY}>
                    {label}
                  </text>
                </g>
              </g>
            );
          })}
          {layout.nodes.map((placed) => (
            <MapNodeShape
              key={placed.node.id}
              placed={placed}
              selected={selected === `node:${placed.node.id}`}
              related={related.has(`node:${placed.node.id}`)}
              onSelect={() => onSelect({ type: 'node', id: placed.node.id })}
              onKeyDown={(e) => activate(e, { type: 'node', id: placed.node.id })}
            />
          ))}
        </g>
      </svg>
      <div class="map-controls">
        <button type="button" onClick={() => zoomCentre(1.25)} aria-label="Zoom in" title="Zoom in">
          +
        </button>
        <button type="button" onClick={() => zoomCentre(0.8)} aria-label="Zoom out" title="Zoom out">
          −
        </button>
        <button type="button" onClick={fit} title="Fit the whole map in view">
          Fit
        </button>
      </div>
      <div class="map-legend muted" aria-hidden="true">
        <span>
          <svg width="26" height="8">
            <line x1="0" y1="4" x2="26" y2="4" class="legend-call" />
          </svg>
          call
        </span>
        <span>
          <svg width="26" height="8">
            <line x1="0" y1="4" x2="26" y2="4" class="legend-call messaging" />
          </svg>
          messaging
        </span>
        <span>
          <svg width="26" height="8">
            <line x1="0" y1="4" x2="26" y2="4" class="legend-call error" />
          </svg>
          with errors
        </span>
        <span>thicker = busier · dashed box = database or external</span>
        {layout.dense && <span>hover or select an edge for its figures</span>}
      </div>
    </div>
  );
}

function MapNodeShape({
  placed,
  selected,
  related,
  onSelect,
  onKeyDown,
}: {
  placed: PlacedNode;
  selected: boolean;
  related: boolean;
  onSelect: () => void;
  onKeyDown: (event: KeyboardEvent) => void;
}) {
  const { node, x, y, width, height } = placed;
  const service = node.kind === 'service';
  const errors = node.errorRate > 0;
  return (
    <g
      class={`map-node ${node.kind}${selected ? ' selected' : ''}${related ? ' related' : ''}`}
      transform={`translate(${x},${y})`}
      data-testid="map-node"
      data-node-id={node.id}
      data-kind={node.kind}
      tabindex={0}
      role="button"
      aria-pressed={selected}
      aria-label={`${service ? 'Service' : node.kind} ${node.id}: ${rate(node.rate)}, ${percent(node.errorRate)} errors, p95 ${duration(node.p95Nanos)}`}
      onClick={onSelect}
      onKeyDown={onKeyDown}
    >
      <title>{node.id}</title>
      <rect class="box" width={width} height={height} rx={service ? 6 : height / 2} />
      {service ? (
        <>
          <rect x="10" y="11" width="10" height="10" rx="2" style={{ fill: serviceColour(node.id) }} />
          <text class="name" x="26" y="20">
            {truncate(node.id, NAME_CHARS)}
          </text>
          <text class="figures" x="10" y="38">
            {rate(node.rate)} · <tspan class={errors ? 'err' : ''}>{percent(node.errorRate)} errors</tspan>
          </text>
          <text class="figures" x="10" y="54">
            p95 {duration(node.p95Nanos)}
          </text>
        </>
      ) : (
        <>
          <text class="kind" x={width / 2} y="16">
            {node.kind}
          </text>
          <text class="name" x={width / 2} y="32">
            {truncate(node.id, NAME_CHARS - 2)}
          </text>
          <text class="figures" x={width / 2} y="47">
            {rate(node.rate)} · <tspan class={errors ? 'err' : ''}>{percent(node.errorRate)}</tspan> · p95 {duration(node.p95Nanos)}
          </text>
        </>
      )}
    </g>
  );
}

// The side panel: figures, neighbours, example traces and links.

const EXAMPLES = 10;
/** A database or external peer has no spans of its own: its examples come from its busiest callers. */
const PEER_CALLERS = 8;

interface ExemplarQuery {
  family: 'span' | MapEdge['kind'];
  service: string;
  name?: string;
}

async function loadExemplars(
  queries: ExemplarQuery[],
  bounds: { start: string; end: string },
  errorsOnly: boolean,
  signal: AbortSignal,
): Promise<{ traces: TraceSummary[]; query?: string }> {
  const results = await Promise.all(
    queries.map((q) =>
      api<SearchResult>('/api/v1/exemplars', {
        query: { ...q, ...bounds, error: errorsOnly || undefined, limit: EXAMPLES },
        signal,
      }),
    ),
  );
  // Several callers may share traces: each trace once, slowest first like each answer.
  const traces = new Map<string, TraceSummary>();
  for (const result of results) for (const t of result.traces) if (!traces.has(t.traceId)) traces.set(t.traceId, t);
  return {
    traces: [...traces.values()].sort((a, b) => Number(b.durationNanos) - Number(a.durationNanos)).slice(0, EXAMPLES),
    query: results.length === 1 ? results[0].query : undefined,
  };
}

function MapDetail({
  map,
  range,
  selection,
  errorsOnly,
  onErrorsOnly,
  onSelect,
}: {
  map: ServiceMap;
  range: TimeRange;
  selection: Selection;
  errorsOnly: boolean;
  onErrorsOnly: (on: boolean) => void;
  onSelect: (s?: Selection) => void;
}) {
  const node = selection.type === 'node' ? map.nodes.find((n) => n.id === selection.id) : undefined;
  const edge = selection.type === 'edge' ? map.edges.find((e) => edgeKey(e) === selection.key) : undefined;
  const incoming = node ? map.edges.filter((e) => e.target === node.id).sort((a, b) => b.rate - a.rate) : [];
  const outgoing = node ? map.edges.filter((e) => e.source === node.id).sort((a, b) => b.rate - a.rate) : [];

  let queries: ExemplarQuery[] = [];
  if (node?.kind === 'service') queries = [{ family: 'span', service: node.id }];
  else if (node) queries = incoming.slice(0, PEER_CALLERS).map((e) => ({ family: e.kind, service: e.source, name: node.id }));
  else if (edge) queries = [{ family: edge.kind, service: edge.source, name: edge.target }];

  // The exemplars cover exactly the map's range: whole seconds around it.
  const bounds = {
    start: String(BigInt(map.startUnixNano) / 1_000_000_000n),
    end: String(BigInt(map.endUnixNano) / 1_000_000_000n + 1n),
  };
  const examples = useLoad(
    queries.length ? (signal) => loadExemplars(queries, bounds, errorsOnly, signal) : undefined,
    [selectionKey(selection), errorsOnly, map.startUnixNano, map.endUnixNano],
  );

  if (!node && !edge) return null;
  const red: Red = (node ?? edge)!;
  const pageRange = rangeQuery(range);
  const searchRange = { start: isoFromNanos(map.startUnixNano), end: isoFromNanos(map.endUnixNano) };
  const overview = (service: string) => withQuery(`/services/${encodeURIComponent(service)}`, pageRange);

  let search: string | undefined;
  if (node?.kind === 'service') search = withQuery('/search', { service: node.id, status: errorsOnly ? 'error' : undefined, ...searchRange });
  // For a call the exemplars' TraceQL query says what is searched (the called spans, their errors).
  else if (edge) search = withQuery('/search', { service: edge.source, q: examples.data?.query, ...searchRange });

  return (
    <aside class="map-detail card" data-testid="map-detail" aria-label="Details">
      <header class="map-detail-head">
        {node ? (
          <h2>
            {node.kind === 'service' ? <ServiceChip name={node.id} /> : <span class="badge">{node.kind}</span>}{' '}
            {node.kind !== 'service' && node.id}
          </h2>
        ) : (
          <h2>
            <ServiceChip name={edge!.source} /> → {edge!.kind === 'call' || edge!.kind === 'messaging' ? <ServiceChip name={edge!.target} /> : edge!.target}{' '}
            <span class="badge">{edge!.kind}</span>
          </h2>
        )}
        <button type="button" class="ghost" aria-label="Close details" title="Close (Esc)" onClick={() => onSelect(undefined)}>
          ×
        </button>
      </header>

      <RedFigures red={red} />

      <p class="map-detail-links">
        {node?.kind === 'service' && <a href={overview(node.id)}>Service overview</a>}
        {edge && <a href={overview(edge.source)}>{edge.source} overview</a>}
        {edge && (edge.kind === 'call' || edge.kind === 'messaging') && <a href={overview(edge.target)}>{edge.target} overview</a>}
        {search && <a href={search}>Search these traces</a>}
      </p>

      {node && outgoing.length > 0 && <Neighbours title="Calls" edges={outgoing} end="target" onSelect={onSelect} />}
      {node && incoming.length > 0 && <Neighbours title="Called by" edges={incoming} end="source" onSelect={onSelect} />}

      <div class="row map-examples-head">
        <h3 class="grow">
          Example traces{node && node.kind !== 'service' && incoming.length > 0 ? ' (from its callers)' : ''}
        </h3>
        <label class="toggle">
          <input type="checkbox" checked={errorsOnly} onChange={(e) => onErrorsOnly((e.target as HTMLInputElement).checked)} /> Errors only
        </label>
      </div>
      <ErrorBanner error={examples.error} />
      {examples.loading && !examples.data ? (
        <Spinner label="Finding example traces…" />
      ) : examples.data?.traces.length ? (
        <ul class="exemplars">
          {examples.data.traces.map((t) => (
            <li key={t.traceId}>
              <a href={`/trace/${t.traceId}`} data-testid="exemplar">
                <span class="exemplar-root">
                  <ServiceChip name={t.rootService} /> <span class="exemplar-name">{t.rootMissing ? `${t.rootName} (root missing)` : t.rootName}</span>
                </span>
                <span class="exemplar-meta">
                  <strong>{duration(t.durationNanos)}</strong> · {t.spanCount} span{t.spanCount === 1 ? '' : 's'}
                  {t.errorCount > 0 && (
                    <>
                      {' '}
                      · <span class="badge error">{t.errorCount} error{t.errorCount === 1 ? '' : 's'}</span>
                    </>
                  )}{' '}
                  · <span class="muted">{timestamp(nanosToMillis(t.startUnixNano))}</span>
                </span>
              </a>
            </li>
          ))}
        </ul>
      ) : (
        !examples.error && (
          <p class="muted">
            {queries.length === 0
              ? 'Nothing calls this peer in the range, so there are no traces to show.'
              : `No ${errorsOnly ? 'failed ' : ''}traces found for this ${node ? 'node' : 'call'} in the range.`}
          </p>
        )
      )}
    </aside>
  );
}

function count(n: number): string {
  return Number.isInteger(n) ? n.toLocaleString() : n.toFixed(1);
}

function RedFigures({ red }: { red: Red }) {
  return (
    <dl class="red-figures">
      <dt>Requests</dt>
      <dd>{count(red.requests)}</dd>
      <dt>Rate</dt>
      <dd>{rate(red.rate)}</dd>
      <dt>Errors</dt>
      <dd>{count(red.errors)}</dd>
      <dt>Error rate</dt>
      <dd class={red.errorRate > 0 ? 'error-text' : ''}>{percent(red.errorRate)}</dd>
      <dt>p50</dt>
      <dd>{duration(red.p50Nanos)}</dd>
      <dt>p95</dt>
      <dd>{duration(red.p95Nanos)}</dd>
      <dt>p99</dt>
      <dd>{duration(red.p99Nanos)}</dd>
      <dt>Average</dt>
      <dd>{duration(red.avgNanos)}</dd>
    </dl>
  );
}

/** The calls in or out of a node; each opens that call. */
function Neighbours({ title, edges, end, onSelect }: { title: string; edges: MapEdge[]; end: 'source' | 'target'; onSelect: (s: Selection) => void }) {
  // A peer's callers all call it the same way; elsewhere a kind other than a plain call is worth a badge.
  const kindShown = (e: MapEdge) => e.kind === 'messaging' || (end === 'target' && e.kind !== 'call');
  return (
    <>
      <h3>{title}</h3>
      <ul class="neighbours">
        {edges.map((e) => (
          <li key={edgeKey(e)}>
            <button type="button" class="link-button" onClick={() => onSelect({ type: 'edge', key: edgeKey(e) })}>
              {e[end]}
            </button>
            {kindShown(e) && <span class="badge">{e.kind}</span>}
            <span class="muted num">
              {rate(e.rate)} · <span class={e.errorRate > 0 ? 'error-text' : ''}>{percent(e.errorRate)}</span>
            </span>
          </li>
        ))}
      </ul>
    </>
  );
}
