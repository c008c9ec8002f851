// The one way the UI talks to Clew: JSON over the native API, with the chosen project, the
// session's CSRF token, and errors turned into messages a person can act on.

import type { components } from './api-schema';

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

// The shapes the pages read, generated from docs/openapi.yaml (`npm run types`).

export type Schemas = components['schemas'];
export type SearchResult = Schemas['SearchResult'];
export type TraceSummary = SearchResult['traces'][number];
export type ServiceCount = TraceSummary['services'][number];
export type MatchedSpan = TraceSummary['matched'][number];
export type Red = Schemas['Red'];
export type ServiceMap = Schemas['ServiceMap'];
export type MapNode = ServiceMap['nodes'][number];
export type MapEdge = ServiceMap['edges'][number];
export type RedResult = Schemas['RedResult'];
export type RedSeries = RedResult['series'][number];
export type CriticalPath = Schemas['CriticalPath'];
export type ComparedSpan = Schemas['ComparedSpan'];
export type PathComparison = Schemas['PathComparison'];
export type TraceComparison = Schemas['TraceComparison'];
export type Status = Schemas['Status'];
export type Me = Schemas['Me'];
