// Compare two traces path by path: trace A is the baseline, trace B is measured against it.
// Without both IDs the page is a form; with them it shows the totals and the path tree that
// GET /api/v1/traces/{a}/compare/{b} answers, with the differences highlighted.
import { useMemo, useState } from 'preact/hooks';
import { api, type PathComparison, type TraceComparison } from '../api';
import { ErrorBanner, Spinner, useLoad } from '../components/common';
import { duration, parseTraceId, percent, serviceColour } from '../format';
import { navigate, useLocation } from '../router';
import './compare.css';

export function ComparePage({ a, b }: { a?: string; b?: string }) {
  const location = useLocation();
  if (!a || !b) return <CompareForm initialA={a ?? location.params.get('a') ?? ''} initialB={location.params.get('b') ?? ''} />;
  return <Comparison a={a} b={b} filter={parseFilter(location.params.get('show'))} />;
}

/** A trace ID typed, pasted, or inside a pasted trace link (`…/trace/{id}`). */
function traceIdFrom(text: string): string | undefined {
  return parseTraceId(text) ?? parseTraceId(text.trim().split(/[/?#]/).filter(Boolean).pop() ?? '');
}

const ID_HINT = 'A trace ID is 32 hexadecimal characters (or 16 for a 64-bit ID).';

function CompareForm({ initialA, initialB }: { initialA: string; initialB: string }) {
  const [textA, setTextA] = useState(initialA);
  const [textB, setTextB] = useState(initialB);
  const [tried, setTried] = useState(false);
  const idA = traceIdFrom(textA);
  const idB = traceIdFrom(textB);

  const field = (id: string, label: string, hint: string, text: string, set: (v: string) => void, valid: boolean) => (
    <label class="compare-field">
      <span class="label">{label}</span>
      <input
        id={id}
        name={id}
        class="mono"
        value={text}
        placeholder="4bf92f3577b34da6a3ce929d0e0e4736"
        autocomplete="off"
        spellcheck={false}
        aria-invalid={tried && !valid}
        aria-describedby={`${id}-hint`}
        onInput={(e) => set((e.target as HTMLInputElement).value)}
      />
      <span id={`${id}-hint`} class={`hint${tried && !valid ? ' error-text' : ''}`}>
        {tried && !valid ? ID_HINT : hint}
      </span>
    </label>
  );

  return (
    <section class="page compare-page">
      <h1>Compare traces</h1>
      <p class="muted">
        Spans are matched by their path from the root (<code>service:name</code> of every ancestor), so two runs of the
        same request line up even when their span IDs differ. Trace A is the baseline; durations and differences are B
        against A.
      </p>
      <form
        class="card compare-form"
        onSubmit={(e) => {
          e.preventDefault();
          setTried(true);
          if (idA && idB) navigate(`/compare/${idA}/${idB}`);
        }}
      >
        {field('trace-a', 'Trace A (baseline)', 'The trace to compare against.', textA, setTextA, !!idA)}
        {field('trace-b', 'Trace B', 'The trace to measure.', textB, setTextB, !!idB)}
        <div>
          <button type="submit" class="primary">
            Compare
          </button>
        </div>
      </form>
    </section>
  );
}

// Which rows the table shows: everything, every difference, or one kind of difference.
const FILTERS = ['all', 'differences', 'added', 'missing', 'slower', 'faster'] as const;
type Filter = (typeof FILTERS)[number];
type Kind = 'added' | 'missing' | 'slower' | 'faster' | 'same';

const FILTER_LABELS: Record<Filter, string> = {
  all: 'All',
  differences: 'Only differences',
  added: 'Added',
  missing: 'Missing',
  slower: 'Slower',
  faster: 'Faster',
};

function parseFilter(value: string | null): Filter {
  return FILTERS.find((f) => f === value) ?? 'all';
}

function kindOf(path: PathComparison): Kind {
  if (path.status !== 'matched') return path.status;
  return path.change === 'slower' || path.change === 'faster' ? path.change : 'same';
}

function shows(filter: Filter, kind: Kind): boolean {
  return filter === 'all' || (filter === 'differences' ? kind !== 'same' : filter === kind);
}

/** `+12.3 ms`, `-4.00 ms`, `±0`: B minus A. */
function signedDuration(nanos: string): string {
  const n = Number(nanos);
  if (n === 0) return '±0';
  return n > 0 ? `+${duration(n)}` : duration(n);
}

/** `×1.93 (+93%)`: B over A. */
function ratioText(ratio: number | null): string {
  if (ratio === null) return '–';
  const change = ratio - 1;
  const pct = change === 0 ? '±0%' : `${change > 0 ? '+' : '-'}${percent(Math.abs(change))}`;
  return `×${ratio < 10 ? ratio.toFixed(2) : ratio.toFixed(1)} (${pct})`;
}

function Comparison({ a, b, filter }: { a: string; b: string; filter: Filter }) {
  // Canonical IDs when the address has a pasted form; otherwise as given, so the server's
  // 400 names which of the two is malformed.
  const idA = parseTraceId(a) ?? a;
  const idB = parseTraceId(b) ?? b;
  const { data, error, loading, reload } = useLoad(
    (signal) => api<TraceComparison>(`/api/v1/traces/${encodeURIComponent(idA)}/compare/${encodeURIComponent(idB)}`, { signal }),
    [idA, idB],
  );

  return (
    <section class="page compare-page">
      <div class="compare-title">
        <h1>Compare traces</h1>
        <a href={`/compare?a=${encodeURIComponent(idA)}&b=${encodeURIComponent(idB)}`}>Choose other traces</a>
      </div>
      <ErrorBanner error={error} onRetry={reload} />
      {loading && !data && <Spinner label="Comparing…" />}
      {data && (
        <>
          <Summary data={data} />
          <PathTable data={data} filter={filter} />
        </>
      )}
    </section>
  );
}

function Summary({ data }: { data: TraceComparison }) {
  const t = data.totals;
  const trace = (label: string, id: string, durationNanos: string, spans: number, errors: number) => (
    <div class="compare-trace">
      <span class="label">{label}</span>
      <a class="mono trace-id" href={`/trace/${id}`}>
        {id}
      </a>
      <div class="figures">
        <strong>{duration(durationNanos)}</strong>
        <span class="muted">{spans} spans</span>
        <span class={errors ? 'error-text' : 'muted'}>
          {errors} error{errors === 1 ? '' : 's'}
        </span>
      </div>
    </div>
  );
  return (
    <div class="card compare-summary" data-testid="compare-summary">
      {trace('Trace A (baseline)', data.traceIdA, t.durationNanosA, t.spansA, t.errorsA)}
      {trace('Trace B', data.traceIdB, t.durationNanosB, t.spansB, t.errorsB)}
      <div class="compare-diff">
        <span class="label">Difference (B − A)</span>
        <div class={`big diff-${t.change}`}>{signedDuration(t.diffNanos)}</div>
        <div class="figures">
          <span title="Duration of B divided by duration of A">{ratioText(t.ratio)}</span>
          <ChangeBadge change={t.change} />
        </div>
      </div>
      <div class="compare-counts">
        <span class="label">Spans</span>
        <div class="figures">
          <span>{t.matchedSpans} matched</span>
          <span class="added-text">{t.addedSpans} added</span>
          <span class="missing-text">{t.missingSpans} missing</span>
        </div>
        <a href={`/compare/${data.traceIdB}/${data.traceIdA}`} title="Make B the baseline">
          ⇄ Swap A and B
        </a>
      </div>
    </div>
  );
}

function ChangeBadge({ change }: { change: 'slower' | 'faster' | 'similar' | null }) {
  if (change === 'slower' || change === 'faster') return <span class={`badge ${change}`}>{change}</span>;
  if (change === 'similar') return <span class="badge">similar</span>;
  return null;
}

function PathTable({ data, filter }: { data: TraceComparison; filter: Filter }) {
  const paths = data.paths;
  const [collapsed, setCollapsed] = useState<Set<string>>(() => new Set());

  // Everything derived from the answer alone: each path's ancestors, which paths have
  // children, the count per filter and the longest duration (the bars' shared scale).
  const tree = useMemo(() => {
    const parents = new Map(paths.map((p) => [p.path, p.parentPath]));
    const ancestors = new Map<string, string[]>();
    const withChildren = new Set<string>();
    const counts = Object.fromEntries(FILTERS.map((f) => [f, 0])) as Record<Filter, number>;
    let longest = 0;
    for (const p of paths) {
      const chain: string[] = [];
      // A parent link never loops (the server cuts cycles), but guard against it anyway.
      for (let up: string | null | undefined = p.parentPath; up && !chain.includes(up); up = parents.get(up)) chain.push(up);
      ancestors.set(p.path, chain);
      if (p.parentPath !== null) withChildren.add(p.parentPath);
      const kind = kindOf(p);
      for (const f of FILTERS) if (shows(f, kind)) counts[f]++;
      longest = Math.max(longest, Number(p.durationNanosA), Number(p.durationNanosB));
    }
    return { ancestors, withChildren, counts, longest };
  }, [paths]);

  // Rows the filter selects, plus their ancestors as dimmed context so the tree still reads;
  // then the ones under a collapsed row are hidden.
  const rows = useMemo(() => {
    const selected = new Set<string>();
    const context = new Set<string>();
    for (const p of paths) {
      if (!shows(filter, kindOf(p))) continue;
      selected.add(p.path);
      for (const ancestor of tree.ancestors.get(p.path)!) context.add(ancestor);
    }
    return paths
      .filter((p) => selected.has(p.path) || context.has(p.path))
      .filter((p) => !tree.ancestors.get(p.path)!.some((ancestor) => collapsed.has(ancestor)))
      .map((p) => ({ path: p, context: !selected.has(p.path) }));
  }, [paths, tree, filter, collapsed]);

  const toggle = (path: string) =>
    setCollapsed((c) => {
      const next = new Set(c);
      if (!next.delete(path)) next.add(path);
      return next;
    });

  const setFilter = (f: Filter) => {
    const params = new URLSearchParams(window.location.search);
    if (f === 'all') params.delete('show');
    else params.set('show', f);
    const qs = params.toString();
    navigate(`${window.location.pathname}${qs ? `?${qs}` : ''}`, true);
  };

  return (
    <div class="compare-paths">
      <div class="compare-toolbar">
        <div class="segmented" role="group" aria-label="Show paths">
          {FILTERS.map((f) => (
            <button type="button" aria-pressed={filter === f} class={filter === f ? 'active' : ''} onClick={() => setFilter(f)}>
              {FILTER_LABELS[f]} <span class="count">{tree.counts[f]}</span>
            </button>
          ))}
        </div>
        <div class="row">
          <button type="button" class="ghost" onClick={() => setCollapsed(new Set())} disabled={collapsed.size === 0}>
            Expand all
          </button>
          <button type="button" class="ghost" onClick={() => setCollapsed(new Set(tree.withChildren))}>
            Collapse all
          </button>
        </div>
      </div>
      {rows.length === 0 ? (
        <p class="muted empty">{paths.length === 0 ? 'Neither trace has spans to compare.' : 'No path matches this filter.'}</p>
      ) : (
        <table class="data compare-table">
          <thead>
            <tr>
              <th>Path</th>
              <th>Change</th>
              <th class="num">Count A → B</th>
              <th class="num">Duration A</th>
              <th class="num">Duration B</th>
              <th class="num">Diff</th>
              <th class="bars-col">
                A <span class="bar-key a" /> vs B <span class="bar-key b" />
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map(({ path, context }) => (
              <PathRow
                key={path.path}
                path={path}
                context={context}
                longest={tree.longest}
                hasChildren={tree.withChildren.has(path.path)}
                collapsed={collapsed.has(path.path)}
                onToggle={() => toggle(path.path)}
              />
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function PathRow({
  path: p,
  context,
  longest,
  hasChildren,
  collapsed,
  onToggle,
}: {
  path: PathComparison;
  context: boolean;
  longest: number;
  hasChildren: boolean;
  collapsed: boolean;
  onToggle: () => void;
}) {
  const durA = Number(p.durationNanosA);
  const durB = Number(p.durationNanosB);
  const width = (d: number) => `${longest > 0 ? Math.max((d / longest) * 100, d > 0 ? 0.5 : 0) : 0}%`;
  const diffClass = p.change === 'slower' || p.change === 'faster' ? `diff-${p.change}` : 'muted';
  return (
    <tr
      data-testid="compare-row"
      data-status={p.status}
      data-change={p.change ?? ''}
      class={`status-${p.status}${context ? ' context' : ''}`}
    >
      <td class="path-cell" title={p.path}>
        <div class="path-name" style={{ paddingLeft: `${p.depth * 16}px` }}>
          {hasChildren ? (
            <button type="button" class="twisty" aria-expanded={!collapsed} aria-label={`${collapsed ? 'Expand' : 'Collapse'} ${p.service}:${p.name}`} onClick={onToggle}>
              {collapsed ? '▸' : '▾'}
            </button>
          ) : (
            <span class="twisty" />
          )}
          <span class="swatch" style={{ background: serviceColour(p.service) }} />
          <span class="op">
            <span class="service">{p.service}:</span>
            {p.name}
          </span>
          {(p.errorsA > 0 || p.errorsB > 0) && (
            <span class="error-text errors" title="Error spans in A → B">
              ⚠ {p.errorsA} → {p.errorsB}
            </span>
          )}
        </div>
      </td>
      <td>
        {p.status !== 'matched' ? (
          <span class={`badge ${p.status}`}>{p.status}</span>
        ) : p.change === 'similar' ? (
          <span class="muted">similar</span>
        ) : (
          <ChangeBadge change={p.change} />
        )}
      </td>
      <td class="num">
        {p.countA} → {p.countB}
      </td>
      <td class="num">{p.status === 'added' ? '–' : duration(durA)}</td>
      <td class="num">{p.status === 'missing' ? '–' : duration(durB)}</td>
      <td class={`num ${diffClass}`}>{signedDuration(p.diffNanos)}</td>
      <td class="bars-col">
        <div class="bars" title={`A ${duration(durA)} · B ${duration(durB)}`} aria-hidden="true">
          <span class="bar a" style={{ width: width(durA) }} />
          <span class={`bar b ${p.change ?? p.status}`} style={{ width: width(durB) }} />
        </div>
      </td>
    </tr>
  );
}
