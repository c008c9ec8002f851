// The trace view: a virtualised waterfall (10,000 spans scroll as smoothly as 10), a minimap
// that zooms, the critical path, find-in-trace, and the selected span's every detail.
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import { ApiError, api, type CriticalPath } from '../api';
import { ErrorBanner, ServiceChip, Spinner, useLoad } from '../components/common';
import { SPAN_KINDS, STATUS_CODES, duration, nanosToMillis, parseTraceId, serviceColour, timestamp } from '../format';
import { navigate, type Location } from '../router';
import { anyValueText, buildTrace, visibleRows, type KeyValue, type Span, type Trace, type TracesData } from '../trace';
import './trace.css';

const ROW = 26;
const OVERSCAN = 12;

export function TracePage({ traceId, location }: { traceId: string; location: Location }) {
  const id = parseTraceId(traceId);
  const loaded = useLoad(
    id
      ? async (signal) => {
          const [data, path] = await Promise.all([
            api<TracesData>(`/api/v1/traces/${id}`, { signal }),
            api<CriticalPath>(`/api/v1/traces/${id}/critical-path`, { signal }).catch(() => undefined),
          ]);
          return { trace: buildTrace(id, data), path };
        }
      : undefined,
    [id],
  );
  if (!id)
    return (
      <section class="page">
        <ErrorBanner error={new ApiError(400, 'bad_request', `"${traceId}" is not a trace ID: a trace ID is 32 hexadecimal characters (16 for 64-bit IDs), not all zero.`)} />
      </section>
    );
  if (loaded.error)
    return (
      <section class="page">
        <h1 class="mono">Trace {id}</h1>
        <ErrorBanner error={loaded.error} onRetry={loaded.reload} />
        {loaded.error instanceof ApiError && loaded.error.status === 404 && (
          <p class="muted">
            No span of this trace is stored in this project. Spans can take a moment to arrive after an application exports them; check the project (top right) and the
            trace ID.
          </p>
        )}
      </section>
    );
  if (!loaded.data) return <Spinner label="Loading trace…" />;
  return <Waterfall trace={loaded.data.trace} path={loaded.data.path} location={location} />;
}

interface Window {
  from: number;
  to: number;
}

function Waterfall({ trace, path, location }: { trace: Trace; path?: CriticalPath; location: Location }) {
  const [collapsed, setCollapsed] = useState<Set<string>>(() => new Set());
  const rows = useMemo(() => visibleRows(trace, collapsed), [trace, collapsed]);
  const [view, setView] = useState<Window>({ from: 0, to: Math.max(1, trace.duration) });
  const [showPath, setShowPath] = useState(true);
  const selectedId = location.params.get('span') ?? undefined;
  const selected = selectedId ? trace.byId.get(selectedId) : undefined;
  const select = (span: Span | undefined) => {
    const params = new URLSearchParams(location.params);
    if (span) params.set('span', span.id);
    else params.delete('span');
    const qs = params.toString();
    navigate(`/trace/${trace.id}${qs ? `?${qs}` : ''}`, true);
  };

  // Critical path: per span, its segments in trace-relative nanoseconds.
  const critical = useMemo(() => {
    const segments = new Map<string, [number, number][]>();
    if (!path) return segments;
    for (const s of path.segments) {
      const from = Number(BigInt(s.startUnixNano) - trace.startUnixNano);
      const to = Number(BigInt(s.endUnixNano) - trace.startUnixNano);
      segments.set(s.spanId, [...(segments.get(s.spanId) ?? []), [from, to]]);
    }
    return segments;
  }, [trace, path]);

  // Find in trace.
  const [find, setFind] = useState('');
  const [matchIndex, setMatchIndex] = useState(0);
  const matches = useMemo(() => {
    const needle = find.trim().toLowerCase();
    if (!needle) return [];
    const [key, value] = needle.includes('=') ? needle.split(/=(.*)/s) : [undefined, undefined];
    return trace.ordered.filter((s) =>
      key !== undefined ? s.attributes.concat(s.resource).some((a) => a.key.toLowerCase() === key.trim() && anyValueText(a.value).toLowerCase().includes((value ?? '').trim())) : s.haystack.includes(needle),
    );
  }, [trace, find]);
  const matchSet = useMemo(() => new Set(matches), [matches]);

  const scroller = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(600);
  useLayoutEffect(() => {
    const el = scroller.current!;
    const observer = new ResizeObserver(() => setViewport(el.clientHeight));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  const reveal = useCallback(
    (span: Span) => {
      // Expand every collapsed ancestor, then scroll the row into view.
      let open = false;
      const next = new Set(collapsed);
      for (let p = span.parent; p; p = p.parent) if (next.delete(p.id)) open = true;
      const shown = open ? visibleRows(trace, next) : rows;
      if (open) setCollapsed(next);
      const index = shown.indexOf(span);
      const el = scroller.current;
      if (el && index >= 0 && (index * ROW < el.scrollTop || (index + 1) * ROW > el.scrollTop + el.clientHeight)) {
        el.scrollTop = Math.max(0, index * ROW - el.clientHeight / 3);
      }
    },
    [collapsed, rows, trace],
  );

  const goToMatch = (delta: number) => {
    if (!matches.length) return;
    const index = (matchIndex + delta + matches.length) % matches.length;
    setMatchIndex(index);
    reveal(matches[index]);
    select(matches[index]);
  };
  useEffect(() => setMatchIndex(0), [find]);

  // A span named in the address is revealed once the trace is shown.
  useEffect(() => {
    if (selected) reveal(selected);
  }, []);

  // Time to first paint of the waterfall, for the benchmark and the tests.
  useEffect(() => {
    requestAnimationFrame(() => {
      performance.mark('clew:waterfall-painted');
      scroller.current?.setAttribute('data-painted', 'true');
    });
  }, []);

  const toggle = (span: Span) =>
    setCollapsed((c) => {
      const next = new Set(c);
      if (!next.delete(span.id)) next.add(span.id);
      return next;
    });

  const onKey = (event: KeyboardEvent) => {
    if ((event.target as HTMLElement).tagName === 'INPUT') return;
    const index = selected ? rows.indexOf(selected) : -1;
    const move = (to: number) => {
      const span = rows[Math.max(0, Math.min(rows.length - 1, to))];
      if (span) {
        select(span);
        reveal(span);
      }
      event.preventDefault();
    };
    switch (event.key) {
      case 'ArrowDown':
      case 'j':
        return move(index + 1);
      case 'ArrowUp':
      case 'k':
        return move(index - 1);
      case 'Home':
        return move(0);
      case 'End':
        return move(rows.length - 1);
      case 'PageDown':
        return move(index + Math.floor(viewport / ROW));
      case 'PageUp':
        return move(index - Math.floor(viewport / ROW));
      case 'ArrowLeft':
        if (selected && selected.children.length && !collapsed.has(selected.id)) toggle(selected);
        else if (selected?.parent) move(rows.indexOf(selected.parent));
        return event.preventDefault();
      case 'ArrowRight':
        if (selected && collapsed.has(selected.id)) toggle(selected);
        return event.preventDefault();
      case 'Escape':
        return select(undefined);
    }
  };

  const first = Math.max(0, Math.floor(scrollTop / ROW) - OVERSCAN);
  const last = Math.min(rows.length, Math.ceil((scrollTop + viewport) / ROW) + OVERSCAN);
  const root = trace.roots[0];
  const zoomed = view.from > 0 || view.to < trace.duration;
  const scale = (ns: number) => ((ns - view.from) / (view.to - view.from)) * 100;

  return (
    <section class="page full trace-page">
      <header class="trace-head">
        <div>
          <h1>
            <span class="swatch-lg" style={{ background: serviceColour(root?.service ?? '') }} />
            {root ? `${root.service}: ${root.name}` : 'Trace'}
          </h1>
          <div class="trace-meta">
            <span class="mono" data-testid="trace-id">
              {trace.id}
            </span>
            <span>{timestamp(nanosToMillis(trace.startUnixNano.toString()))}</span>
            <span>
              Duration <strong data-testid="trace-duration">{duration(trace.duration)}</strong>
            </span>
            <span>
              <strong data-testid="span-count">{trace.spans.length}</strong> spans
            </span>
            <span class={trace.errors ? 'error-text' : ''}>
              <strong>{trace.errors}</strong> errors
            </span>
            {path?.rootMissing && <span class="badge">root span not received</span>}
          </div>
          <div class="chips">
            {trace.services.map((s) => (
              <ServiceChip name={s.name} count={s.spans} errors={s.errors} />
            ))}
          </div>
        </div>
        <div class="trace-actions">
          <div class="find">
            <input
              type="search"
              value={find}
              placeholder="Find: name, attribute, key=value, span ID  (/)"
              aria-label="Find in trace"
              data-shortcut="search"
              data-testid="find-input"
              onInput={(e) => setFind((e.target as HTMLInputElement).value)}
              onKeyDown={(e) => {
                if (e.key === 'Enter') goToMatch(e.shiftKey ? -1 : selected === matches[matchIndex] ? 1 : 0);
                if (e.key === 'Escape') setFind('');
              }}
            />
            <span class="muted" data-testid="find-count" aria-live="polite">
              {find.trim() ? `${matches.length ? matchIndex + 1 : 0} of ${matches.length}` : ''}
            </span>
            <button type="button" onClick={() => goToMatch(-1)} disabled={!matches.length} aria-label="Previous match">
              ↑
            </button>
            <button type="button" onClick={() => goToMatch(1)} disabled={!matches.length} aria-label="Next match">
              ↓
            </button>
          </div>
          <label class="toggle">
            <input type="checkbox" checked={showPath} onChange={() => setShowPath(!showPath)} data-testid="critical-toggle" /> Critical path
          </label>
          <button type="button" onClick={() => setCollapsed(new Set())}>
            Expand all
          </button>
          <button type="button" onClick={() => setCollapsed(new Set(trace.ordered.filter((s) => s.children.length && s.depth >= 1).map((s) => s.id)))}>
            Collapse
          </button>
          {zoomed && (
            <button type="button" onClick={() => setView({ from: 0, to: Math.max(1, trace.duration) })} data-testid="reset-zoom">
              Reset zoom
            </button>
          )}
          <CompareWith traceId={trace.id} />
        </div>
      </header>

      {path && showPath && <CriticalSummary path={path} trace={trace} onSelect={(span) => (reveal(span), select(span))} />}


      <div class={`waterfall-wrap${selected ? ' with-detail' : ''}`}>
        <div class="waterfall">
          <div class="minimap-row">
            <div class="ruler-name muted">Overview: drag to zoom</div>
            <Minimap trace={trace} rows={rows} view={view} first={Math.floor(scrollTop / ROW)} visible={Math.ceil(viewport / ROW)} onZoom={setView} onScroll={(row) => scroller.current && (scroller.current.scrollTop = row * ROW - viewport / 2)} />
          </div>
          <div class="ruler" aria-hidden="true">
            <div class="ruler-name">Service &amp; operation</div>
            <div class="ruler-time">
              {[0, 0.25, 0.5, 0.75, 1].map((f) => (
                <span style={{ left: `${f * 100}%` }} class={f === 1 ? 'end' : ''}>
                  {duration(view.from + f * (view.to - view.from))}
                </span>
              ))}
            </div>
          </div>
          <div
            class="rows"
            ref={scroller}
            tabIndex={0}
            role="tree"
            aria-label={`Spans of trace ${trace.id}; arrow keys move, left and right collapse and expand`}
            data-testid="waterfall"
            data-rows={rows.length}
            onScroll={(e) => setScrollTop((e.target as HTMLDivElement).scrollTop)}
            onKeyDown={onKey}
          >
            <div style={{ height: `${rows.length * ROW}px`, position: 'relative' }}>
              {rows.slice(first, last).map((span, i) => {
                const segments = showPath ? critical.get(span.id) : undefined;
                const left = scale(span.start);
                const width = Math.max(0.15, scale(span.end) - left);
                return (
                  <div
                    key={span.id}
                    role="treeitem"
                    aria-selected={span === selected}
                    aria-expanded={span.children.length ? !collapsed.has(span.id) : undefined}
                    aria-level={span.depth + 1}
                    class={`span-row${span === selected ? ' selected' : ''}${matchSet.has(span) ? ' match' : ''}${span.error ? ' error' : ''}${segments ? ' critical' : ''}`}
                    style={{ top: `${(first + i) * ROW}px` }}
                    data-testid="span-row"
                    data-span-id={span.id}
                    onClick={() => select(span === selected ? undefined : span)}
                  >
                    <div class="span-name" style={{ paddingLeft: `${6 + Math.min(span.depth, 40) * 14}px` }}>
                      {span.children.length ? (
                        <button
                          type="button"
                          class="twisty"
                          tabIndex={-1}
                          aria-label={collapsed.has(span.id) ? `Expand ${span.descendants} spans` : 'Collapse'}
                          onClick={(e) => {
                            e.stopPropagation();
                            toggle(span);
                          }}
                        >
                          {collapsed.has(span.id) ? '▸' : '▾'}
                        </button>
                      ) : (
                        <span class="twisty" />
                      )}
                      <span class="service-bar" style={{ background: serviceColour(span.service) }} />
                      <span class="service">{span.service}</span>
                      <span class="op" title={span.name}>
                        {span.name}
                      </span>
                      {span.error && (
                        <span class="err-mark" title={span.status.message || 'status: error'}>
                          !
                        </span>
                      )}
                      {collapsed.has(span.id) && <span class="badge">+{span.descendants}</span>}
                    </div>
                    <div class="span-timeline">
                      <div class="bar" style={{ left: `${left}%`, width: `${width}%`, background: serviceColour(span.service) }}>
                        {segments?.map(([from, to]) => (
                          <span class="critical-seg" style={{ left: `${((from - span.start) / Math.max(1, span.duration)) * 100}%`, width: `${((to - from) / Math.max(1, span.duration)) * 100}%` }} />
                        ))}
                      </div>
                      <span class={`bar-label${left + width > 80 && left < 15 ? ' inside' : ''}`} style={left + width <= 80 ? { left: `${left + width + 0.5}%` } : left < 15 ? { left: `${Math.max(left, 0) + 0.5}%` } : { right: `${100 - left + 0.5}%` }}>
                        {duration(span.duration)}
                      </span>
                    </div>
                  </div>
                );
              })}
            </div>
          </div>
        </div>
        {selected && <SpanDetail span={selected} trace={trace} critical={critical.get(selected.id)} onClose={() => select(undefined)} onSelect={(s) => (reveal(s), select(s))} />}
      </div>
    </section>
  );
}

/** Every span as a line: x is time, y is its row; drag to zoom into a time window, click to scroll. */
function Minimap({ trace, rows, view, first, visible, onZoom, onScroll }: { trace: Trace; rows: Span[]; view: Window; first: number; visible: number; onZoom: (w: Window) => void; onScroll: (row: number) => void }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const [drag, setDrag] = useState<{ from: number; to: number } | undefined>();
  const height = 64;
  useEffect(() => {
    const el = canvas.current!;
    const draw = () => {
      const width = el.clientWidth;
      const ratio = window.devicePixelRatio || 1;
      el.width = width * ratio;
      el.height = height * ratio;
      const ctx = el.getContext('2d')!;
      ctx.scale(ratio, ratio);
      ctx.clearRect(0, 0, width, height);
      const perRow = height / Math.max(rows.length, 1);
      const lineHeight = Math.max(1, Math.min(4, perRow));
      for (let i = 0; i < rows.length; i++) {
        const s = rows[i];
        ctx.fillStyle = s.error ? getComputedStyle(el).getPropertyValue('--error') : serviceColour(s.service);
        ctx.fillRect((s.start / trace.duration) * width, i * perRow, Math.max(1, (s.duration / trace.duration) * width), lineHeight);
      }
    };
    draw();
    const observer = new ResizeObserver(draw);
    observer.observe(el);
    return () => observer.disconnect();
  }, [trace, rows]);
  const fraction = (e: MouseEvent) => {
    const r = (e.currentTarget as HTMLElement).getBoundingClientRect();
    return { x: Math.max(0, Math.min(1, (e.clientX - r.left) / r.width)), y: Math.max(0, Math.min(1, (e.clientY - r.top) / r.height)) };
  };
  const total = Math.max(1, trace.duration);
  return (
    <div
      class="minimap"
      data-testid="minimap"
      title="Drag to zoom into a time window; click to scroll there"
      onMouseDown={(e) => {
        const { x } = fraction(e);
        setDrag({ from: x, to: x });
      }}
      onMouseMove={(e) => drag && setDrag({ ...drag, to: fraction(e).x })}
      onMouseUp={(e) => {
        if (!drag) return;
        const { x, y } = fraction(e);
        const [a, b] = [Math.min(drag.from, x), Math.max(drag.from, x)];
        if (b - a > 0.01) onZoom({ from: a * total, to: b * total });
        else onScroll(Math.round(y * rows.length));
        setDrag(undefined);
      }}
      onMouseLeave={() => setDrag(undefined)}
    >
      <canvas ref={canvas} style={{ height: `${height}px` }} />
      <div class="viewport" style={{ top: `${(first / Math.max(rows.length, 1)) * 100}%`, height: `${Math.min(1, visible / Math.max(rows.length, 1)) * 100}%`, left: `${(view.from / total) * 100}%`, width: `${((view.to - view.from) / total) * 100}%` }} />
      {drag && <div class="selection" style={{ left: `${Math.min(drag.from, drag.to) * 100}%`, width: `${Math.abs(drag.to - drag.from) * 100}%` }} />}
    </div>
  );
}

function CriticalSummary({ path, trace, onSelect }: { path: CriticalPath; trace: Trace; onSelect: (span: Span) => void }) {
  const total = Number(path.durationNanos) || 1;
  return (
    <div class="critical-summary" data-testid="critical-path">
      <span class="label">Critical path</span>
      {path.spans.slice(0, 6).map((s) => {
        const span = trace.byId.get(s.spanId);
        return (
          <button type="button" class="chip" onClick={() => span && onSelect(span)} title={`${s.service}: ${s.name}: ${duration(s.selfTimeNanos)} of ${duration(total)} on the path`}>
            <span class="swatch" style={{ background: serviceColour(s.service) }} />
            {s.name} <span class="count">{Math.round((Number(s.selfTimeNanos) / total) * 100)}%</span>
          </button>
        );
      })}
      {path.spans.length > 6 && <span class="muted">+{path.spans.length - 6} more</span>}
    </div>
  );
}

function CompareWith({ traceId }: { traceId: string }) {
  const [other, setOther] = useState('');
  return (
    <form
      class="compare-with"
      onSubmit={(e) => {
        e.preventDefault();
        const b = parseTraceId(other);
        if (b) navigate(`/compare/${traceId}/${b}`);
      }}
    >
      <input value={other} placeholder="Compare with trace ID" aria-label="Compare with trace ID" onInput={(e) => setOther((e.target as HTMLInputElement).value)} size={22} />
      <button type="submit" disabled={!parseTraceId(other)}>
        Compare
      </button>
    </form>
  );
}

function Attributes({ items, testid }: { items: KeyValue[]; testid?: string }) {
  if (!items.length) return <p class="muted">None.</p>;
  return (
    <dl class="kv" data-testid={testid}>
      {items.map((a) => (
        <>
          <dt>{a.key}</dt>
          <dd>{anyValueText(a.value)}</dd>
        </>
      ))}
    </dl>
  );
}

function SpanDetail({ span, trace, critical, onClose, onSelect }: { span: Span; trace: Trace; critical?: [number, number][]; onClose: () => void; onSelect: (span: Span) => void }) {
  const self = span.duration - mergedChildTime(span);
  const onPath = critical?.reduce((n, [a, b]) => n + b - a, 0);
  return (
    <aside class="span-detail" data-testid="span-detail" aria-label={`Span ${span.name}`}>
      <header>
        <h2>
          <span class="swatch-lg" style={{ background: serviceColour(span.service) }} />
          {span.name}
        </h2>
        <button type="button" class="ghost" onClick={onClose} aria-label="Close span detail (Escape)">
          ✕
        </button>
      </header>
      <dl class="kv">
        <dt>service</dt>
        <dd>{span.service}</dd>
        <dt>span ID</dt>
        <dd data-testid="detail-span-id">{span.id}</dd>
        <dt>parent</dt>
        <dd>{span.parent ? <a href={`?span=${span.parent.id}`} onClick={(e) => (e.preventDefault(), onSelect(span.parent!))}>{span.parent.name} ({span.parent.id})</a> : span.parentId ? `${span.parentId} (not in this trace)` : 'none (root)'}</dd>
        <dt>kind</dt>
        <dd>{SPAN_KINDS[span.kind] ?? span.kind}</dd>
        <dt>status</dt>
        <dd class={span.error ? 'status-error' : ''} data-testid="detail-status">
          {STATUS_CODES[span.status.code] ?? span.status.code}
          {span.status.message ? `: ${span.status.message}` : ''}
        </dd>
        <dt>start</dt>
        <dd>
          +{duration(span.start)} ({timestamp(Number((trace.startUnixNano + BigInt(span.start)) / 1_000_000n))})
        </dd>
        <dt>duration</dt>
        <dd>{duration(span.duration)}</dd>
        <dt>self time</dt>
        <dd>{duration(self)}</dd>
        {onPath !== undefined && (
          <>
            <dt>critical path</dt>
            <dd>{duration(onPath)} on the path</dd>
          </>
        )}
        {span.traceState && (
          <>
            <dt>trace state</dt>
            <dd>{span.traceState}</dd>
          </>
        )}
      </dl>
      <h3>Attributes</h3>
      <Attributes items={span.attributes} testid="detail-attributes" />
      {span.dropped.attributes > 0 && <p class="muted">{span.dropped.attributes} attributes dropped by the sender.</p>}
      <h3>Events ({span.events.length})</h3>
      {span.events.length === 0 && <p class="muted">None.</p>}
      {span.events.map((event) => {
        const stack = event.attributes.find((a) => a.key === 'exception.stacktrace');
        const rest = event.attributes.filter((a) => a !== stack);
        return (
          <div class={`event${event.name === 'exception' ? ' exception' : ''}`} data-testid="detail-event">
            <div>
              <strong>{event.name}</strong> <span class="muted">+{duration(event.offset)}</span>
            </div>
            <Attributes items={rest} />
            {stack && <pre class="stack" data-testid="stacktrace">{anyValueText(stack.value)}</pre>}
          </div>
        );
      })}
      <h3>Links ({span.links.length})</h3>
      {span.links.length === 0 ? <p class="muted">None.</p> : <Links span={span} trace={trace} onSelect={onSelect} />}
      <h3>Resource</h3>
      <Attributes items={span.resource} testid="detail-resource" />
      <h3>Instrumentation scope</h3>
      <dl class="kv" data-testid="detail-scope">
        <dt>name</dt>
        <dd>{span.scope.name || '–'}</dd>
        <dt>version</dt>
        <dd>{span.scope.version || '–'}</dd>
      </dl>
      {span.scope.attributes.length > 0 && <Attributes items={span.scope.attributes} />}
    </aside>
  );
}

/** Links open the linked trace when it is stored; a link into this trace selects the span. */
function Links({ span, trace, onSelect }: { span: Span; trace: Trace; onSelect: (span: Span) => void }) {
  const others = [...new Set(span.links.map((l) => l.traceId).filter((t) => t !== trace.id))].slice(0, 10);
  // The critical path answers 404 when no span of a trace is stored, with a smaller body than
  // the trace itself.
  const exists = useLoad(
    async (signal) => {
      const found = await Promise.all(
        others.map((id) =>
          api(`/api/v1/traces/${id}/critical-path`, { signal }).then(
            () => true,
            () => false,
          ),
        ),
      );
      return new Map(others.map((id, i) => [id, found[i]]));
    },
    [span.id],
  );
  return (
    <ul class="links" data-testid="detail-links">
      {span.links.map((link) => {
        const local = link.traceId === trace.id ? trace.byId.get(link.spanId) : undefined;
        const stored = exists.data?.get(link.traceId);
        return (
          <li data-testid="detail-link" data-stored={local ? 'here' : String(!!stored)}>
            {local ? (
              <a href={`?span=${link.spanId}`} onClick={(e) => (e.preventDefault(), onSelect(local))}>
                {local.name} in this trace
              </a>
            ) : stored ? (
              <a href={`/trace/${link.traceId}?span=${link.spanId}`}>
                trace {link.traceId} · span {link.spanId}
              </a>
            ) : (
              <span class="mono">
                trace {link.traceId} · span {link.spanId} <span class="muted">{exists.loading ? '(checking…)' : '(not stored)'}</span>
              </span>
            )}
            {link.attributes.length > 0 && <Attributes items={link.attributes} />}
          </li>
        );
      })}
    </ul>
  );
}

/** Time covered by the span's children, overlaps counted once, clipped to the span. */
function mergedChildTime(span: Span): number {
  let covered = 0;
  let reach = span.start;
  for (const child of [...span.children].sort((a, b) => a.start - b.start)) {
    const from = Math.max(reach, child.start);
    const to = Math.min(span.end, child.end);
    if (to > from) covered += to - from;
    reach = Math.max(reach, Math.min(span.end, child.end));
  }
  return covered;
}
