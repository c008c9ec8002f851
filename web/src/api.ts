// The one way the UI talks to Clew: JSON over the native API, with the chosen project, the
// session's CSRF token, and errors turned into messages a person can act on.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const PROJECT_KEY = 'clew.project';
let csrfToken: string | undefined;

/** The project read endpoints answer for (`namespace/project`), or none for the caller's default. */
export function currentProject(): string | undefined {
  return localStorage.getItem(PROJECT_KEY) ?? undefined;
}

export function setCurrentProject(project: string | undefined) {
  if (project) localStorage.setItem(PROJECT_KEY, project);
  else localStorage.removeItem(PROJECT_KEY);
}

export function setCsrfToken(token: string | undefined) {
  csrfToken = token;
}

type Query = Record<string, string | string[] | number | boolean | undefined | null>;

/** `path?query`, repeating array values (`attr=a&attr=b`) and leaving out empty ones. */
export function withQuery(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== '') params.append(key, String(v));
    }
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

export interface RequestOptions {
  method?: string;
  query?: Query;
  body?: unknown;
  signal?: AbortSignal;
}

export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const method = options.method ?? 'GET';
  const headers: Record<string, string> = { Accept: 'application/json' };
  const project = currentProject();
  if (project) headers['X-Clew-Project'] = project;
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  let body: string | undefined;
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  }
  let response: Response;
  try {
    response = await fetch(withQuery(path, options.query), {
      method,
      headers,
      body,
      signal: options.signal,
      credentials: 'same-origin',
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', `Clew did not answer (${(e as Error).message}). Is the server running?`);
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  if (!response.ok) {
    let code = 'http_' + response.status;
    let message = text.trim() || response.statusText;
    try {
      const parsed = JSON.parse(text);
      if (parsed?.error?.message) {
        code = parsed.error.code ?? code;
        message = parsed.error.message;
      }
    } catch {
      // Not JSON: the text is the message.
    }
    const retry = response.headers.get('Retry-After');
    if (retry) message += ` (retry after ${retry} s)`;
    throw new ApiError(response.status, code, message);
  }
  return (text ? JSON.parse(text) : undefined) as T;
}

// The shapes the pages read (docs/openapi.yaml has them all).

export interface ServiceCount {
  name: string;
  spans: number;
  errors: number;
}

export interface MatchedSpan {
  spanId: string;
  service: string;
  name: string;
  kind: number;
  statusCode: number;
  startUnixNano: string;
  durationNanos: string;
}

export interface TraceSummary {
  traceId: string;
  rootService: string;
  rootName: string;
  rootMissing: boolean;
  startUnixNano: string;
  durationNanos: string;
  spanCount: number;
  errorCount: number;
  services: ServiceCount[];
  matched?: MatchedSpan[];
  matchedCount?: number;
}

export interface SearchResult {
  traces: TraceSummary[];
  nextCursor?: string;
  candidates?: number;
  inspected?: number;
  truncated?: string;
  query?: string;
  start?: string;
  end?: string;
}

export interface Red {
  requests: number;
  rate: number;
  errors: number;
  errorRate: number;
  p50Nanos?: string;
  p95Nanos?: string;
  p99Nanos?: string;
  avgNanos?: string;
}

export interface MapNode extends Red {
  id: string;
  kind: 'service' | 'database' | 'external';
}

export interface MapEdge extends Red {
  source: string;
  target: string;
  kind: 'call' | 'messaging' | 'database' | 'external';
}

export interface ServiceMap {
  startUnixNano: string;
  endUnixNano: string;
  nodes: MapNode[];
  edges: MapEdge[];
}

export interface RedSeries {
  labels: Record<string, string | null>;
  total: Red;
  points: (Red & { startUnixNano: string })[];
}

export interface RedResult {
  startUnixNano: string;
  endUnixNano: string;
  stepNanos: string;
  groupBy: string[];
  series: RedSeries[];
}

export interface CriticalPath {
  traceId: string;
  rootSpanId: string;
  rootMissing: boolean;
  startUnixNano: string;
  durationNanos: string;
  segments: { spanId: string; service: string; name: string; startUnixNano: string; endUnixNano: string; selfTimeNanos: string }[];
  spans: { spanId: string; service: string; name: string; selfTimeNanos: string; segments: number }[];
}

export interface ComparedSpan {
  spanId: string;
  startOffsetNanos: string;
  durationNanos: string;
  error: boolean;
}

export interface PathComparison {
  path: string;
  parentPath: string | null;
  depth: number;
  service: string;
  name: string;
  status: 'matched' | 'added' | 'missing';
  countA: number;
  countB: number;
  errorsA: number;
  errorsB: number;
  durationNanosA: string;
  durationNanosB: string;
  diffNanos: string;
  ratio: number | null;
  change: 'slower' | 'faster' | 'similar' | null;
  spans: { a: ComparedSpan | null; b: ComparedSpan | null }[];
}

export interface TraceComparison {
  traceIdA: string;
  traceIdB: string;
  totals: {
    durationNanosA: string;
    durationNanosB: string;
    diffNanos: string;
    ratio: number | null;
    change: 'slower' | 'faster' | 'similar';
    spansA: number;
    spansB: number;
    errorsA: number;
    errorsB: number;
    matchedSpans: number;
    addedSpans: number;
    missingSpans: number;
  };
  paths: PathComparison[];
}

export interface Status {
  version: string;
  auth_required: boolean;
  otlp_grpc: string;
  otlp_http: string;
  http: string;
}

export interface Me {
  caller: string;
  user: { id: number; username: string; admin: boolean } | null;
  admin: boolean;
  project_id: number | null;
  csrf_token: string | null;
  auth_required: boolean;
}
