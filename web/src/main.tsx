// The shell: navigation, project and theme, opening a trace by pasting its ID anywhere, and
// the page for the current address.
import { render } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { ApiError, api, currentProject, setCsrfToken, setCurrentProject, type Me } from './api';
import { ErrorBanner, Spinner, useLoad } from './components/common';
import { parseTraceId } from './format';
import { ComparePage } from './pages/Compare';
import { LoginPage, SettingsPage } from './pages/Settings';
import { SearchPage } from './pages/Search';
import { ServiceMapPage } from './pages/ServiceMap';
import { ServicesPage } from './pages/Services';
import { TracePage } from './pages/Trace';
import { interceptLinks, navigate, segments, useLocation } from './router';
import './style.css';

type Theme = 'system' | 'light' | 'dark';

const systemDark = window.matchMedia('(prefers-color-scheme: dark)');

/** `data-theme` on `<html>` is always `light` or `dark`: the choice, or the system's. */
function applyTheme(theme: Theme) {
  document.documentElement.dataset.theme = theme === 'system' ? (systemDark.matches ? 'dark' : 'light') : theme;
}

function isEditable(target: EventTarget | null): boolean {
  const el = target as HTMLElement | null;
  return !!el && (el.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName) || !!el.closest?.('.cm-editor'));
}

function App() {
  const location = useLocation();
  const me = useLoad(() => api<Me>('/api/v1/auth/me'), []);
  const [theme, setTheme] = useState<Theme>(() => (localStorage.getItem('clew.theme') as Theme) ?? 'system');
  const traceBox = useRef<HTMLInputElement>(null);

  // Before the browser paints, so a theme change never flashes the other one.
  useLayoutEffect(() => {
    applyTheme(theme);
    localStorage.setItem('clew.theme', theme);
    if (theme !== 'system') return;
    const follow = () => applyTheme(theme);
    systemDark.addEventListener('change', follow);
    return () => systemDark.removeEventListener('change', follow);
  }, [theme]);

  useEffect(() => setCsrfToken(me.data?.csrf_token ?? undefined), [me.data]);

  // A project named in the address (`?project=ns/p`) wins, so shared links open the same data.
  useEffect(() => {
    const project = location.params.get('project');
    if (project && project !== currentProject()) setCurrentProject(project);
  }, [location]);

  const [first, ...rest] = segments(location.path);
  const unauthenticated = me.error instanceof ApiError && me.error.status === 401;
  let page;
  if (me.loading && !me.data) page = <Spinner />;
  else if (unauthenticated) page = <LoginPage onSignedIn={me.reload} />;
  else if (me.error) page = <ErrorBanner error={me.error} />;
  else if (!first || first === 'search') page = <SearchPage location={location} />;
  else if (first === 'trace' && rest[0]) page = <TracePage key={rest[0]} traceId={rest[0]} location={location} />;
  else if (first === 'compare') page = <ComparePage a={rest[0]} b={rest[1]} />;
  else if (first === 'map') page = <ServiceMapPage location={location} />;
  else if (first === 'services') page = <ServicesPage service={rest[0]} location={location} />;
  else if (first === 'settings') page = <SettingsPage me={me.data!} onChanged={me.reload} />;
  else
    page = (
      <section class="page">
        <h1>Not found</h1>
        <p>
          Nothing lives at <code>{location.path}</code>. <a href="/">Search traces</a>.
        </p>
      </section>
    );

  const nav = (href: string, label: string, match: string) => (
    <a href={href} class={first === match || (!first && match === 'search') ? 'active' : ''} aria-current={first === match ? 'page' : undefined}>
      {label}
    </a>
  );

  return (
    <>
      <header class="topbar">
        <a href="/" class="brand" aria-label="Clew home">
          <span class="logo" aria-hidden="true" />
          Clew
        </a>
        <nav aria-label="Main">
          {nav('/search', 'Search', 'search')}
          {nav('/map', 'Service map', 'map')}
          {nav('/services', 'Services', 'services')}
          {nav('/compare', 'Compare', 'compare')}
          {nav('/settings', 'Settings', 'settings')}
        </nav>
        <form
          class="trace-jump"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            const input = traceBox.current!;
            const id = parseTraceId(input.value);
            if (id) {
              input.value = '';
              input.setCustomValidity('');
              navigate(`/trace/${id}`);
            } else {
              input.setCustomValidity('A trace ID is 32 hexadecimal characters (or 16 for a 64-bit ID).');
              input.reportValidity();
            }
          }}
        >
          <input ref={traceBox} name="trace" placeholder="Trace ID  (t)" aria-label="Open trace by ID" autocomplete="off" spellcheck={false} onInput={(e) => (e.target as HTMLInputElement).setCustomValidity('')} />
        </form>
        <div class="topbar-right">
          {currentProject() && (
            <a class="project-badge" href="/settings" title="Project the pages show">
              {currentProject()}
            </a>
          )}
          <button
            type="button"
            class="ghost"
            aria-label={`Theme: ${theme}. Switch theme`}
            title={`Theme: ${theme}`}
            onClick={() => setTheme((t) => (t === 'system' ? 'dark' : t === 'dark' ? 'light' : 'system'))}
          >
            {theme === 'dark' ? '☾' : theme === 'light' ? '☀' : '◐'}
          </button>
        </div>
      </header>
      <main id="main">{page}</main>
    </>
  );
}

/** Paste a trace ID anywhere outside a text field to open it; `/` and `t` focus the boxes. */
function listenForShortcuts() {
  document.addEventListener('paste', (event) => {
    if (isEditable(event.target)) return;
    const id = parseTraceId(event.clipboardData?.getData('text') ?? '');
    if (id) {
      event.preventDefault();
      navigate(`/trace/${id}`);
    }
  });
  document.addEventListener('keydown', (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || isEditable(event.target)) return;
    const target =
      event.key === '/'
        ? document.querySelector<HTMLElement>('[data-shortcut="search"] .cm-content, [data-shortcut="search"]')
        : event.key === 't'
          ? document.querySelector<HTMLElement>('.trace-jump input')
          : null;
    if (target) {
      event.preventDefault();
      target.focus();
    }
  });
}

interceptLinks();
listenForShortcuts();
render(<App />, document.getElementById('app')!);
