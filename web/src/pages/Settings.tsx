// Sign-in, and the settings API as pages: the caller's account, namespaces and their projects
// (tracing, tokens, members, pipeline, limits and usage), personal tokens, and users.
// Every change shows what the server answered: a confirmation, or its error message.
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, currentProject, setCsrfToken, setCurrentProject, type Me } from '../api';
import { ErrorBanner, Spinner, useLoad } from '../components/common';
import { timestamp } from '../format';
import { navigate, useLocation } from '../router';
import './settings.css';
import type { components } from '../api-schema';

// The shapes of the settings API, generated from docs/openapi.yaml (`npm run types`).

type Schemas = components['schemas'];
type Role = Schemas['Role'];
type Scope = Schemas['Scope'];
type User = Schemas['User'];
type Limits = Schemas['Limits'];
type Namespace = Schemas['Namespace'];
type Project = Schemas['Project'];
type Member = Schemas['Member'];
type Token = Schemas['Token'];
type IssuedToken = Schemas['IssuedToken'];
type Usage = Schemas['NamespaceUsage'];
type PipelineAnswer = Schemas['PipelineAnswer'];

const ROLES: readonly Role[] = ['guest', 'reporter', 'developer', 'maintainer', 'owner'];
const SCOPES: readonly Scope[] = ['api', 'read_api', 'read_observability', 'write_observability'];

const SCOPE_HELP: Record<Scope, string> = {
  api: 'everything the owner may do, settings included',
  read_api: 'read traces and settings',
  read_observability: 'read traces',
  write_observability: 'send spans',
};

// Small helpers.

function atLeast(role: Role, min: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(min);
}

/** Unix seconds as `2026-11-21 14:03`. */
function date(seconds: number | null): string {
  return seconds === null ? '–' : timestamp(seconds * 1000).slice(0, 16);
}

/** Bytes in decimal units, as the CLI takes them: `1.5 MB`. */
function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = n;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

/** `1500000`, `1.5MB`, `50 GiB` → bytes; '' → null (no limit); anything else → undefined. */
function parseBytes(text: string): number | null | undefined {
  const t = text.trim();
  if (!t) return null;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]i?)?b?$/i.exec(t);
  if (!m) return undefined;
  const unit = (m[2] ?? '').toLowerCase();
  const base = unit.endsWith('i') ? 1024 : 1000;
  const power = unit ? 'kmgtp'.indexOf(unit[0]) + 1 : 0;
  return Math.round(Number(m[1]) * base ** power);
}

const enc = encodeURIComponent;
const inputValue = (e: Event) => (e.target as HTMLInputElement).value;

/** A change in progress and how the last one ended: the API's error, or a confirmation. */
interface Action {
  busy: boolean;
  error?: Error;
  done?: string;
  /** Runs `work`; on success shows `success` and returns true, on failure shows the error. */
  run: (work: () => Promise<unknown>, success: string) => Promise<boolean>;
}

function useAction(): Action {
  const [state, setState] = useState<{ busy: boolean; error?: Error; done?: string }>({ busy: false });
  const run = async (work: () => Promise<unknown>, success: string) => {
    setState({ busy: true });
    try {
      await work();
      setState({ busy: false, done: success });
      return true;
    } catch (error) {
      setState({ busy: false, error: error as Error });
      return false;
    }
  };
  return { ...state, run };
}

function Outcome({ action }: { action: Action }) {
  return (
    <>
      <ErrorBanner error={action.error} />
      {action.done && (
        <p class="ok-text outcome" role="status">
          {action.done}
        </p>
      )}
    </>
  );
}

function Field({ label, hint, children }: { label: string; hint?: ComponentChildren; children: ComponentChildren }) {
  return (
    <label class="field">
      <span class="label">{label}</span>
      {children}
      {hint && <span class="hint">{hint}</span>}
    </label>
  );
}

function RoleSelect({ value, onChange, roles = ROLES, label }: { value: Role; onChange: (role: Role) => void; roles?: readonly Role[]; label?: string }) {
  return (
    <select value={value} aria-label={label} onChange={(e) => onChange((e.target as HTMLSelectElement).value as Role)}>
      {roles.map((r) => (
        <option value={r}>{r}</option>
      ))}
    </select>
  );
}

/** A tab strip (arrow keys, Home and End move between tabs); the caller renders the panel. */
function Tabs<T extends string>({
  label,
  idPrefix,
  tabs,
  selected,
  onSelect,
}: {
  label: string;
  idPrefix: string;
  tabs: { id: T; label: string }[];
  selected: T;
  onSelect: (id: T) => void;
}) {
  const onKeyDown = (e: KeyboardEvent) => {
    const i = tabs.findIndex((t) => t.id === selected);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    const tab = tabs[(next + tabs.length) % tabs.length];
    onSelect(tab.id);
    document.getElementById(`${idPrefix}-tab-${tab.id}`)?.focus();
  };
  return (
    <div class="tabs" role="tablist" aria-label={label} onKeyDown={onKeyDown}>
      {tabs.map((t) => (
        <button
          type="button"
          role="tab"
          id={`${idPrefix}-tab-${t.id}`}
          aria-selected={t.id === selected}
          aria-controls={`${idPrefix}-panel`}
          tabIndex={t.id === selected ? 0 : -1}
          onClick={() => onSelect(t.id)}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

function TabPanel({ idPrefix, selected, children }: { idPrefix: string; selected: string; children: ComponentChildren }) {
  return (
    <div role="tabpanel" id={`${idPrefix}-panel`} aria-labelledby={`${idPrefix}-tab-${selected}`}>
      {children}
    </div>
  );
}

// Sign-in.

export function LoginPage({ onSignedIn }: { onSignedIn: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const action = useAction();
  const submit = (e: Event) => {
    e.preventDefault();
    action.run(async () => {
      const answer = await api<{ csrf_token: string; user: User }>('/api/v1/auth/login', { method: 'POST', body: { username, password } });
      setCsrfToken(answer.csrf_token);
      onSignedIn();
    }, 'Signed in.');
  };
  return (
    <section class="page login-page">
      <form class="card login-card" data-testid="login-form" onSubmit={submit}>
        <h1>Sign in to Clew</h1>
        <Field label="Username">
          <input name="username" autocomplete="username" required autofocus value={username} onInput={(e) => setUsername(inputValue(e))} />
        </Field>
        <Field label="Password">
          <input name="password" type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword(inputValue(e))} />
        </Field>
        {action.error instanceof ApiError && action.error.status === 401 ? (
          // Wrong credentials: the server's own words are the whole story.
          <div class="banner error" role="alert">
            {action.error.message}
          </div>
        ) : (
          <ErrorBanner error={action.error} />
        )}
        <button type="submit" class="primary" disabled={action.busy}>
          {action.busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p class="muted small">
          Accounts are created by an administrator (Settings → Users, or <code>clew admin user create</code>). Programs
          and OpenTelemetry exporters authenticate with access tokens instead.
        </p>
      </form>
    </section>
  );
}

// Settings.

type TabId = 'account' | 'projects' | 'tokens' | 'users';

export function SettingsPage({ me, onChanged }: { me: Me; onChanged: () => void }) {
  const location = useLocation();
  const tabs: { id: TabId; label: string }[] = [
    { id: 'account', label: 'Account' },
    { id: 'projects', label: 'Projects' },
    { id: 'tokens', label: 'Personal tokens' },
    ...(me.admin ? [{ id: 'users' as const, label: 'Users' }] : []),
  ];
  const tab = tabs.find((t) => t.id === location.params.get('tab'))?.id ?? 'account';
  return (
    <section class="page settings" data-testid="settings">
      <h1>Settings</h1>
      <Tabs label="Settings" idPrefix="settings" tabs={tabs} selected={tab} onSelect={(id) => navigate(id === 'account' ? '/settings' : `/settings?tab=${id}`, true)} />
      <TabPanel idPrefix="settings" selected={tab}>
        {tab === 'account' && <AccountTab me={me} onChanged={onChanged} />}
        {tab === 'projects' && <ProjectsTab me={me} onChanged={onChanged} />}
        {tab === 'tokens' && <PersonalTokensTab me={me} />}
        {tab === 'users' && <UsersTab me={me} />}
      </TabPanel>
    </section>
  );
}

function AccountTab({ me, onChanged }: { me: Me; onChanged: () => void }) {
  const signOut = useAction();
  // Only a browser session has a CSRF token; a caller with an access token has nothing to sign out of.
  const session = !!me.csrf_token;
  return (
    <div class="settings-stack">
      <div class="card">
        <h2>Who you are</h2>
        <dl class="kv">
          <dt>caller</dt>
          <dd>{me.caller}</dd>
          <dt>user</dt>
          <dd>{me.user ? `${me.user.username} (ID ${me.user.id})` : 'none'}</dd>
          <dt>administrator</dt>
          <dd>{me.admin ? 'yes' : 'no'}</dd>
          <dt>authentication</dt>
          <dd>{me.auth_required ? 'required' : 'off'}</dd>
          <dt>signed in with</dt>
          <dd>{session ? 'a browser session' : me.user ? 'an access token' : 'nothing (not needed)'}</dd>
          <dt>project shown</dt>
          <dd>{currentProject() ?? (me.auth_required ? 'none chosen (Projects tab)' : 'default/default')}</dd>
        </dl>
        {!me.auth_required && (
          <p>
            Authentication is off: every request acts as the local owner in the <code>default</code> namespace and its{' '}
            <code>default</code> project, and Clew listens on loopback addresses only. Start the server with{' '}
            <code>clew serve --auth required</code> to require sign-in and access tokens; the first start then creates the
            administrator <code>admin</code>.
          </p>
        )}
        {session && (
          <div class="actions">
            <button
              type="button"
              disabled={signOut.busy}
              onClick={() =>
                signOut.run(async () => {
                  await api<void>('/api/v1/auth/logout', { method: 'POST' });
                  setCsrfToken(undefined);
                  onChanged();
                }, 'Signed out.')
              }
            >
              Sign out
            </button>
          </div>
        )}
        <Outcome action={signOut} />
      </div>
      {me.user && (
        <div class="card">
          <h2>Change your password</h2>
          <PasswordForm user={me.user.id} label="New password" />
        </div>
      )}
    </div>
  );
}

function PasswordForm({ user, label }: { user: number | string; label: string }) {
  const [password, setPassword] = useState('');
  const action = useAction();
  return (
    <form
      class="row"
      onSubmit={async (e) => {
        e.preventDefault();
        if (await action.run(() => api<void>(`/api/v1/admin/users/${enc(String(user))}/password`, { method: 'PUT', body: { password } }), 'Password changed.'))
          setPassword('');
      }}
    >
      <Field label={label} hint="At least 8 characters.">
        <input type="password" autocomplete="new-password" required minLength={8} value={password} onInput={(e) => setPassword(inputValue(e))} />
      </Field>
      <button type="submit" disabled={action.busy}>
        Set password
      </button>
      <Outcome action={action} />
    </form>
  );
}

// Projects: namespaces, their projects, and each project's settings.

function ProjectsTab({ me, onChanged }: { me: Me; onChanged: () => void }) {
  const namespaces = useLoad((signal) => api<{ namespaces: { namespace: Namespace; role: Role }[] }>('/api/v1/namespaces', { signal }), []);
  const [current, setCurrent] = useState(currentProject());
  const choose = (project: string | undefined) => {
    setCurrentProject(project);
    setCurrent(project);
    onChanged();
  };
  return (
    <div class="settings-stack">
      <p class="current-project">
        The other pages show the project{' '}
        {current ? <strong class="mono">{current}</strong> : me.auth_required ? <em>none chosen yet</em> : <strong class="mono">default/default</strong>}
        {current && (
          <>
            {' '}
            <button type="button" class="ghost" onClick={() => choose(undefined)}>
              Forget the choice
            </button>
          </>
        )}
      </p>
      <ErrorBanner error={namespaces.error} />
      {namespaces.loading && !namespaces.data && <Spinner />}
      {namespaces.data?.namespaces.length === 0 && <p class="muted">You have no role in any namespace yet. An administrator can add you.</p>}
      {namespaces.data?.namespaces.map(({ namespace, role }) => (
        <NamespaceCard key={namespace.id} namespace={namespace} role={role} me={me} current={current ?? (me.auth_required ? undefined : 'default/default')} onChoose={choose} />
      ))}
      {me.admin && <CreateNamespace onCreated={namespaces.reload} />}
    </div>
  );
}

function CreateNamespace({ onCreated }: { onCreated: () => void }) {
  const [path, setPath] = useState('');
  const [name, setName] = useState('');
  const action = useAction();
  return (
    <form
      class="card"
      onSubmit={async (e) => {
        e.preventDefault();
        const created = await action.run(
          () => api<Namespace>('/api/v1/namespaces', { method: 'POST', body: name.trim() ? { path, name } : { path } }),
          `Created namespace ${path}.`,
        );
        if (created) {
          setPath('');
          setName('');
          onCreated();
        }
      }}
    >
      <h2>New namespace</h2>
      <div class="row">
        <Field
          label="Path"
          hint={
            <>
              Letters, digits and <code>_ - .</code>, as in project names and URLs.
            </>
          }
        >
          <input required value={path} autocomplete="off" onInput={(e) => setPath(inputValue(e))} />
        </Field>
        <Field label="Display name (optional)">
          <input value={name} autocomplete="off" onInput={(e) => setName(inputValue(e))} />
        </Field>
        <button type="submit" class="primary" disabled={action.busy}>
          Create namespace
        </button>
      </div>
      <Outcome action={action} />
    </form>
  );
}

function NamespaceCard({
  namespace: ns,
  role,
  me,
  current,
  onChoose,
}: {
  namespace: Namespace;
  role: Role;
  me: Me;
  current: string | undefined;
  onChoose: (project: string) => void;
}) {
  const projects = useLoad(
    (signal) => api<{ projects: { project: Project; role: Role }[] }>(`/api/v1/namespaces/${enc(ns.path)}/projects`, { signal }),
    [ns.path],
  );
  const [open, setOpen] = useState<number>();
  const owner = me.admin || atLeast(role, 'owner');
  return (
    <section class="card namespace" aria-labelledby={`ns-${ns.id}`}>
      <header class="namespace-head">
        <h2 id={`ns-${ns.id}`}>
          {ns.name} <span class="mono muted">{ns.path}</span>
        </h2>
        <span class="badge" title="Your role in this namespace">
          {role}
        </span>
      </header>
      <ErrorBanner error={projects.error} />
      {projects.data && projects.data.projects.length === 0 && <p class="muted">No projects you can see.</p>}
      {projects.data && projects.data.projects.length > 0 && (
        <table class="data projects">
          <thead>
            <tr>
              <th>Project</th>
              <th>Tracing</th>
              <th>Your role</th>
              <th>
                <span class="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {projects.data.projects.map(({ project, role: projectRole }) => {
              const key = `${ns.path}/${project.path}`;
              const expanded = open === project.id;
              const isCurrent = key === current;
              return [
                <tr key={project.id} data-testid="project-row" data-project={key} data-current={isCurrent} class={isCurrent ? 'current' : ''}>
                  <td class="mono">{key}</td>
                  <td>{project.tracing_enabled ? <span class="badge enabled">enabled</span> : <span class="badge">disabled</span>}</td>
                  <td>{projectRole}</td>
                  <td class="actions">
                    {isCurrent ? (
                      <span class="badge current" aria-label="The project the pages show">
                        current
                      </span>
                    ) : (
                      <button type="button" onClick={() => onChoose(key)}>
                        Use this project
                      </button>
                    )}
                    <button type="button" aria-expanded={expanded} aria-controls={`project-${project.id}`} onClick={() => setOpen(expanded ? undefined : project.id)}>
                      {expanded ? 'Close' : 'Manage'}
                    </button>
                  </td>
                </tr>,
                expanded && (
                  <tr key={`${project.id}-detail`} class="project-detail">
                    <td colSpan={4} id={`project-${project.id}`}>
                      <ProjectDetail project={project} projectKey={key} role={projectRole} me={me} onChanged={projects.reload} />
                    </td>
                  </tr>
                ),
              ];
            })}
          </tbody>
        </table>
      )}
      {(me.admin || atLeast(role, 'maintainer')) && <CreateProject namespace={ns.path} onCreated={projects.reload} />}
      <details class="section">
        <summary>Members of {ns.path}</summary>
        <p class="muted small">Members of a namespace have their role in each of its projects.</p>
        <Members base={`/api/v1/namespaces/${enc(ns.path)}/members`} ownRole={owner ? 'owner' : role} canManage={owner} admin={me.admin} />
      </details>
      <details class="section">
        <summary>Limits and usage</summary>
        {owner ? <LimitsAndUsage namespace={ns.path} editable={me.admin} /> : <p class="muted">Limits and usage are shown to the namespace's owners.</p>}
      </details>
    </section>
  );
}

function CreateProject({ namespace, onCreated }: { namespace: string; onCreated: () => void }) {
  const [path, setPath] = useState('');
  const action = useAction();
  return (
    <form
      class="row create-project"
      onSubmit={async (e) => {
        e.preventDefault();
        const created = await action.run(
          () => api<Project>(`/api/v1/namespaces/${enc(namespace)}/projects`, { method: 'POST', body: { path } }),
          `Created project ${namespace}/${path}; enable tracing on it before sending spans.`,
        );
        if (created) {
          setPath('');
          onCreated();
        }
      }}
    >
      <Field label={`New project in ${namespace}`}>
        <input required value={path} placeholder="path" autocomplete="off" onInput={(e) => setPath(inputValue(e))} />
      </Field>
      <button type="submit" disabled={action.busy}>
        Create project
      </button>
      <Outcome action={action} />
    </form>
  );
}

type ProjectTab = 'tokens' | 'members' | 'pipeline';

function ProjectDetail({ project, projectKey, role, me, onChanged }: { project: Project; projectKey: string; role: Role; me: Me; onChanged: () => void }) {
  const [tab, setTab] = useState<ProjectTab>('tokens');
  const maintainer = me.admin || atLeast(role, 'maintainer');
  const idPrefix = `project-${project.id}`;
  return (
    <div class="project-settings">
      <TracingToggle project={project} canChange={maintainer} onChanged={onChanged} />
      <Tabs
        label={`Settings of ${projectKey}`}
        idPrefix={idPrefix}
        tabs={[
          { id: 'tokens', label: 'Access tokens' },
          { id: 'members', label: 'Members' },
          { id: 'pipeline', label: 'Pipeline' },
        ]}
        selected={tab}
        onSelect={setTab}
      />
      <TabPanel idPrefix={idPrefix} selected={tab}>
        {tab === 'tokens' &&
          (maintainer ? (
            <TokenManager base={`/api/v1/projects/${project.id}/tokens`} ownRole={me.admin ? 'owner' : role} />
          ) : (
            <p class="muted">Managing the project's tokens needs the maintainer role.</p>
          ))}
        {tab === 'members' && <Members base={`/api/v1/projects/${project.id}/members`} ownRole={me.admin ? 'owner' : role} canManage={maintainer} admin={me.admin} />}
        {tab === 'pipeline' && <Pipeline projectId={project.id} canEdit={maintainer} />}
      </TabPanel>
    </div>
  );
}

function TracingToggle({ project, canChange, onChanged }: { project: Project; canChange: boolean; onChanged: () => void }) {
  const [enabled, setEnabled] = useState(project.tracing_enabled);
  const action = useAction();
  const toggle = (on: boolean) =>
    action.run(async () => {
      const answer = await api<{ tracing_enabled: boolean }>(`/api/v1/projects/${project.id}/tracing`, { method: on ? 'PUT' : 'DELETE' });
      setEnabled(answer.tracing_enabled);
      onChanged();
    }, on ? 'Tracing enabled: the project accepts spans.' : 'Tracing disabled: spans sent to the project are refused.');
  return (
    <div class="tracing-toggle">
      <label class="switch">
        <input type="checkbox" checked={enabled} disabled={!canChange || action.busy} onChange={(e) => toggle((e.target as HTMLInputElement).checked)} />
        Tracing enabled
      </label>
      <span class="muted small">
        {enabled ? 'Spans sent to this project are stored.' : 'Spans sent to this project are refused (403) until tracing is enabled.'}
        {!canChange && ' Changing this needs the maintainer role.'}
      </span>
      <Outcome action={action} />
    </div>
  );
}

function Members({ base, ownRole, canManage, admin }: { base: string; ownRole: Role; canManage: boolean; admin: boolean }) {
  const list = useLoad((signal) => api<{ members: Member[] }>(base, { signal }), [base]);
  const [user, setUser] = useState('');
  const [role, setRole] = useState<Role>('developer');
  const action = useAction();
  // Nobody grants a role above their own (administrators excepted).
  const grantable = ROLES.filter((r) => admin || atLeast(ownRole, r));

  const set = (who: string, newRole: Role) =>
    action.run(() => api(base, { method: 'POST', body: { user: who, role: newRole } }), `${who} is now ${newRole}.`).then((ok) => {
      if (ok) list.reload();
      return ok;
    });

  return (
    <div class="members">
      <ErrorBanner error={list.error} />
      {list.data && list.data.members.length === 0 && <p class="muted">No members.</p>}
      {list.data && list.data.members.length > 0 && (
        <table class="data">
          <thead>
            <tr>
              <th>User</th>
              <th>Role</th>
              {canManage && (
                <th>
                  <span class="visually-hidden">Actions</span>
                </th>
              )}
            </tr>
          </thead>
          <tbody>
            {list.data.members.map((m) => (
              <tr key={m.user_id}>
                <td>{m.username}</td>
                <td>{canManage ? <RoleSelect label={`Role of ${m.username}`} value={m.role} roles={grantable.includes(m.role) ? grantable : ROLES} onChange={(r) => set(m.username, r)} /> : m.role}</td>
                {canManage && (
                  <td class="actions">
                    <button
                      type="button"
                      class="danger"
                      disabled={action.busy}
                      onClick={() =>
                        action.run(() => api<void>(`${base}/${enc(m.username)}`, { method: 'DELETE' }), `Removed ${m.username}.`).then((ok) => ok && list.reload())
                      }
                    >
                      Remove
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {canManage && (
        <form
          class="row"
          onSubmit={async (e) => {
            e.preventDefault();
            if (await set(user.trim(), role)) setUser('');
          }}
        >
          <Field label="User (name or ID)">
            <input required value={user} autocomplete="off" onInput={(e) => setUser(inputValue(e))} />
          </Field>
          <Field label="Role">
            <RoleSelect value={role} roles={grantable} onChange={setRole} />
          </Field>
          <button type="submit" disabled={action.busy}>
            Add member
          </button>
        </form>
      )}
      <Outcome action={action} />
    </div>
  );
}

/** The project's own pipeline additions as JSON: edited, saved (the server checks every rule), or cleared. */
function Pipeline({ projectId, canEdit }: { projectId: number; canEdit: boolean }) {
  const url = `/api/v1/projects/${projectId}/pipeline`;
  const loaded = useLoad((signal) => api<PipelineAnswer>(url, { signal }), [url]);
  // The last answer of a save, newer than what was loaded.
  const [saved, setSaved] = useState<PipelineAnswer>();
  // What is typed; undefined until the first edit, showing the stored settings.
  const [text, setText] = useState<string>();
  const [jsonError, setJsonError] = useState<string>();
  const action = useAction();
  const answer = saved ?? loaded.data;

  if (loaded.error) return <ErrorBanner error={loaded.error} />;
  if (!answer) return <Spinner />;
  const shown = text ?? JSON.stringify(answer.settings ?? { drop: [], redact: [] }, null, 2);

  const save = (e: Event) => {
    e.preventDefault();
    let body: unknown;
    try {
      body = JSON.parse(shown);
      setJsonError(undefined);
    } catch (err) {
      setJsonError(`This is not valid JSON: ${(err as Error).message}`);
      return;
    }
    action.run(async () => {
      setSaved(await api<PipelineAnswer>(url, { method: 'PUT', body }));
      setText(undefined);
    }, 'Saved: the rules apply to spans received from now on.');
  };

  const reset = () => {
    if (!window.confirm("Remove this project's pipeline settings and use the server's?")) return;
    action.run(async () => {
      await api<void>(url, { method: 'DELETE' });
      setSaved(undefined);
      setText(undefined);
      loaded.reload();
    }, "Cleared: the project uses the server's pipeline.");
  };

  return (
    <form class="pipeline" onSubmit={save}>
      <p class="muted small">
        {answer.settings === null ? "This project uses the server's pipeline unchanged. " : ''}
        Drop and redaction rules run after the server's; <code>limits</code> and <code>sampling</code>, when given, replace
        the server's for this project. Fields: <code>drop</code>, <code>redact</code>, <code>limits</code>,{' '}
        <code>sampling</code> (see docs/openapi.yaml, ProjectPipeline).
      </p>
      <label class="field">
        <span class="label">Project pipeline settings (JSON)</span>
        <textarea
          data-testid="pipeline-editor"
          rows={Math.min(24, Math.max(8, shown.split('\n').length + 1))}
          spellcheck={false}
          readOnly={!canEdit}
          value={shown}
          aria-invalid={!!jsonError}
          onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
        />
      </label>
      {jsonError && (
        <p class="error-text" role="alert">
          {jsonError}
        </p>
      )}
      {canEdit ? (
        <div class="row">
          <button type="submit" class="primary" disabled={action.busy}>
            Save
          </button>
          <button type="button" disabled={action.busy || answer.settings === null} onClick={reset}>
            Reset to the server's pipeline
          </button>
          {text !== undefined && (
            <button
              type="button"
              class="ghost"
              onClick={() => {
                setText(undefined);
                setJsonError(undefined);
              }}
            >
              Discard edits
            </button>
          )}
        </div>
      ) : (
        <p class="muted small">Changing the pipeline needs the maintainer role.</p>
      )}
      <Outcome action={action} />
      <details class="section">
        <summary>Effective pipeline (the server's with this project's additions)</summary>
        <pre class="code">{JSON.stringify(answer.effective, null, 2)}</pre>
      </details>
    </form>
  );
}

function LimitsAndUsage({ namespace, editable }: { namespace: string; editable: boolean }) {
  const base = `/api/v1/namespaces/${enc(namespace)}`;
  const limits = useLoad((signal) => api<Limits>(`${base}/limits`, { signal }), [base]);
  const usage = useLoad((signal) => api<Usage>(`${base}/usage`, { signal, query: { days: 30 } }), [base]);
  return (
    <div class="limits-usage">
      <h3>Limits</h3>
      <ErrorBanner error={limits.error} />
      {limits.data && <LimitsForm url={`${base}/limits`} limits={limits.data} editable={editable} />}
      <h3>Usage</h3>
      <ErrorBanner error={usage.error} />
      {usage.data && <UsageView usage={usage.data} />}
    </div>
  );
}

/** The limits, as a form for administrators; the fields start from (and after a save, show) what is stored. */
function LimitsForm({ url, limits, editable }: { url: string; limits: Limits; editable: boolean }) {
  const [rate, setRate] = useState(limits.ingest_bytes_per_second?.toString() ?? '');
  const [retention, setRetention] = useState(String(limits.retention_days));
  const [quota, setQuota] = useState(limits.storage_quota_bytes?.toString() ?? '');
  const show = (stored: Limits) => {
    setRate(stored.ingest_bytes_per_second?.toString() ?? '');
    setRetention(String(stored.retention_days));
    setQuota(stored.storage_quota_bytes?.toString() ?? '');
  };
  useEffect(() => show(limits), [limits]);
  const action = useAction();

  if (!editable)
    return (
      <>
        <dl class="kv">
          <dt>ingest rate</dt>
          <dd>{limits.ingest_bytes_per_second === null ? 'unlimited' : `${bytes(limits.ingest_bytes_per_second)}/s`}</dd>
          <dt>retention</dt>
          <dd>{limits.retention_days} days</dd>
          <dt>storage quota</dt>
          <dd>{limits.storage_quota_bytes === null ? 'none' : bytes(limits.storage_quota_bytes)}</dd>
        </dl>
        <p class="muted small">Only administrators change limits.</p>
      </>
    );

  const rateBytes = parseBytes(rate);
  const quotaBytes = parseBytes(quota);
  const explain = (v: number | null | undefined, none: string, suffix = '') =>
    v === undefined ? <span class="error-text">a number of bytes, e.g. 1500000, 1.5MB or 2GiB</span> : v === null ? none : `= ${bytes(v)}${suffix}`;

  return (
    <form
      class="row"
      onSubmit={(e) => {
        e.preventDefault();
        if (rateBytes === undefined || quotaBytes === undefined) return;
        action.run(
          async () =>
            show(
              await api<Limits>(url, {
                method: 'PUT',
                body: { ingest_bytes_per_second: rateBytes, retention_days: Number(retention), storage_quota_bytes: quotaBytes },
              }),
            ),
          'Limits saved.',
        );
      }}
    >
      <Field label="Ingest rate (bytes per second)" hint={explain(rateBytes, 'empty: unlimited', '/s')}>
        <input value={rate} inputMode="decimal" aria-invalid={rateBytes === undefined} onInput={(e) => setRate(inputValue(e))} />
      </Field>
      <Field label="Retention (days)">
        <input type="number" min={1} required value={retention} onInput={(e) => setRetention(inputValue(e))} />
      </Field>
      <Field label="Storage quota (bytes)" hint={explain(quotaBytes, 'empty: no quota')}>
        <input value={quota} inputMode="decimal" aria-invalid={quotaBytes === undefined} onInput={(e) => setQuota(inputValue(e))} />
      </Field>
      <button type="submit" disabled={action.busy || rateBytes === undefined || quotaBytes === undefined}>
        Save limits
      </button>
      <Outcome action={action} />
    </form>
  );
}

function UsageView({ usage }: { usage: Usage }) {
  const days = [...usage.days].sort((x, y) => y.date.localeCompare(x.date));
  return (
    <>
      <p>
        Stored now: <strong>{bytes(usage.stored.bytes)}</strong> in <strong>{usage.stored.spans.toLocaleString()}</strong> spans.
      </p>
      {usage.stored.projects.length > 0 && (
        <table class="data compact">
          <thead>
            <tr>
              <th>Project</th>
              <th class="num">Stored</th>
              <th class="num">Spans</th>
              <th class="num">Days</th>
            </tr>
          </thead>
          <tbody>
            {usage.stored.projects.map((p) => (
              <tr key={p.project_id}>
                <td class="mono">{p.path}</td>
                <td class="num">{bytes(p.bytes)}</td>
                <td class="num">{p.spans.toLocaleString()}</td>
                <td class="num">{p.days}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h4>Per day (last 30 days)</h4>
      {days.length === 0 ? (
        <p class="muted">Nothing received in the last 30 days.</p>
      ) : (
        <table class="data compact">
          <thead>
            <tr>
              <th>Date</th>
              <th class="num">Ingested</th>
              <th class="num">Spans</th>
              <th>Refused</th>
            </tr>
          </thead>
          <tbody>
            {days.map((d) => {
              const refused = Object.entries(d.refused);
              return (
                <tr key={d.date}>
                  <td class="mono">{d.date}</td>
                  <td class="num">{bytes(d.ingested_bytes)}</td>
                  <td class="num">{d.ingested_spans.toLocaleString()}</td>
                  <td>
                    {refused.length === 0 ? (
                      <span class="muted">none</span>
                    ) : (
                      refused.map(([reason, r]) => (
                        <span class="refused">
                          {reason}: {r.requests.toLocaleString()} request{r.requests === 1 ? '' : 's'} ({bytes(r.bytes)})
                        </span>
                      ))
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </>
  );
}

// Access tokens: one component for project tokens and personal tokens.

/** Lists, issues and revokes the tokens under `base`; `ownRole` is given for project tokens (which carry a role). */
function TokenManager({ base, ownRole }: { base: string; ownRole?: Role }) {
  const list = useLoad((signal) => api<{ tokens: Token[] }>(base, { signal }), [base]);
  const [issued, setIssued] = useState<IssuedToken>();
  const revoke = useAction();
  const now = Date.now() / 1000;
  const tokens = list.data?.tokens ?? [];

  return (
    <div class="tokens">
      <ErrorBanner error={list.error} />
      {issued && <TokenSecret issued={issued} onDone={() => setIssued(undefined)} />}
      {list.data && tokens.length === 0 && <p class="muted">No tokens yet.</p>}
      {tokens.length > 0 && (
        <table class="data compact">
          <thead>
            <tr>
              <th>Name</th>
              <th>Scopes</th>
              {ownRole && <th>Role</th>}
              <th>Created</th>
              <th>Expires</th>
              <th>Last used</th>
              <th>State</th>
            </tr>
          </thead>
          <tbody>
            {tokens.map((t) => {
              const expired = t.expires_at !== null && t.expires_at <= now;
              return (
                <tr key={t.id} class={t.revoked_at !== null || expired ? 'inactive' : ''}>
                  <td>{t.name}</td>
                  <td class="mono">{t.scopes.join(', ')}</td>
                  {ownRole && <td>{t.role ?? '–'}</td>}
                  <td>{date(t.created_at)}</td>
                  <td>{t.expires_at === null ? 'never' : date(t.expires_at)}</td>
                  <td>{t.last_used_at === null ? 'never' : date(t.last_used_at)}</td>
                  <td class="actions">
                    {t.revoked_at !== null ? (
                      <span class="muted">revoked {date(t.revoked_at)}</span>
                    ) : (
                      <>
                        {expired && <span class="muted">expired</span>}
                        <button
                          type="button"
                          class="danger"
                          disabled={revoke.busy}
                          onClick={() => {
                            if (!window.confirm(`Revoke the token “${t.name}”? Whatever uses it stops working.`)) return;
                            revoke.run(() => api<void>(`${base}/${t.id}`, { method: 'DELETE' }), `Revoked “${t.name}”.`).then((ok) => ok && list.reload());
                          }}
                        >
                          Revoke
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      <Outcome action={revoke} />
      <TokenForm
        base={base}
        ownRole={ownRole}
        onIssued={(token) => {
          setIssued(token);
          list.reload();
        }}
      />
    </div>
  );
}

function TokenForm({ base, ownRole, onIssued }: { base: string; ownRole?: Role; onIssued: (token: IssuedToken) => void }) {
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<Scope[]>([]);
  const [expires, setExpires] = useState('');
  const [role, setRole] = useState<Role>('developer');
  const action = useAction();
  const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);

  const submit = async (e: Event) => {
    e.preventDefault();
    const body = {
      name,
      scopes,
      // The end of the chosen day, local time.
      expires_at: expires ? Math.floor(new Date(`${expires}T23:59:59`).getTime() / 1000) : undefined,
      role: ownRole ? role : undefined,
    };
    let token: IssuedToken | undefined;
    const ok = await action.run(async () => {
      token = await api<IssuedToken>(base, { method: 'POST', body });
    }, `Created the token “${name}”.`);
    if (ok && token) {
      setName('');
      setScopes([]);
      setExpires('');
      onIssued(token);
    }
  };

  return (
    <form class="token-form" onSubmit={submit}>
      <h3>New token</h3>
      <div class="row">
        <Field label="Name">
          <input required value={name} autocomplete="off" placeholder="e.g. otel-collector" onInput={(e) => setName(inputValue(e))} />
        </Field>
        <Field label="Expires (optional)" hint="Valid through the end of this day.">
          <input type="date" min={tomorrow} value={expires} onInput={(e) => setExpires(inputValue(e))} />
        </Field>
        {ownRole && (
          <Field label="Role">
            <RoleSelect value={role} roles={ROLES.filter((r) => atLeast(ownRole, r))} onChange={setRole} />
          </Field>
        )}
      </div>
      <fieldset class="scopes">
        <legend>Scopes</legend>
        {SCOPES.map((s) => (
          <label class="check">
            <input
              type="checkbox"
              checked={scopes.includes(s)}
              onChange={(e) => {
                const on = (e.target as HTMLInputElement).checked;
                setScopes((current) => (on ? [...current, s] : current.filter((x) => x !== s)));
              }}
            />
            <code>{s}</code> <span class="muted">{SCOPE_HELP[s]}</span>
          </label>
        ))}
      </fieldset>
      <button type="submit" class="primary" disabled={action.busy}>
        Create token
      </button>
      <ErrorBanner error={action.error} />
    </form>
  );
}

/** The secret of a token just issued: the one time it can be seen. */
function TokenSecret({ issued, onDone }: { issued: IssuedToken; onDone: () => void }) {
  const [copied, setCopied] = useState<boolean>();
  return (
    <div class="token-secret card" role="status">
      <p>
        <strong>Token “{issued.token.name}” created.</strong> Copy its secret now: it is shown only now and Clew cannot
        show it again.
      </p>
      <div class="secret-line">
        <code class="secret" data-testid="token-secret" tabIndex={0}>
          {issued.secret}
        </code>
        <button
          type="button"
          onClick={() =>
            navigator.clipboard.writeText(issued.secret).then(
              () => setCopied(true),
              () => setCopied(false),
            )
          }
        >
          {copied ? 'Copied' : 'Copy'}
        </button>
        <button type="button" class="ghost" onClick={onDone}>
          Done
        </button>
      </div>
      {copied === false && <p class="error-text small">The browser did not allow copying: select the secret and copy it.</p>}
    </div>
  );
}

function PersonalTokensTab({ me }: { me: Me }) {
  if (!me.user)
    return (
      <div class="card">
        <p>
          Personal tokens belong to users.{' '}
          {me.auth_required
            ? 'You are not acting as a user.'
            : 'Authentication is off, so there are no users: programs need no token, and project tokens (Projects tab) are ready for when authentication is turned on.'}
        </p>
      </div>
    );
  return (
    <div class="card">
      <h2>Personal access tokens</h2>
      <p class="muted small">
        A personal token acts with your roles in every namespace and project, limited by its scopes. Scripts and{' '}
        <code>clew admin</code> send it as <code>PRIVATE-TOKEN: &lt;token&gt;</code> or <code>Authorization: Bearer &lt;token&gt;</code>, and
        name the project in <code>X-Clew-Project</code>.
      </p>
      <TokenManager base="/api/v1/user/tokens" />
    </div>
  );
}

// Users (administrators).

function UsersTab({ me }: { me: Me }) {
  const users = useLoad((signal) => api<{ users: User[] }>('/api/v1/admin/users', { signal }), []);
  const [passwordFor, setPasswordFor] = useState<number>();
  const remove = useAction();
  return (
    <div class="settings-stack">
      <div class="card">
        <h2>Users</h2>
        <ErrorBanner error={users.error} />
        {users.loading && !users.data && <Spinner />}
        {users.data && users.data.users.length === 0 && <p class="muted">No users yet.</p>}
        {users.data && users.data.users.length > 0 && (
          <table class="data compact">
            <thead>
              <tr>
                <th>Username</th>
                <th>Administrator</th>
                <th>Created</th>
                <th>
                  <span class="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {users.data.users.map((u) => [
                <tr key={u.id} data-testid="user-row" data-user={u.username}>
                  <td>{u.username}</td>
                  <td>{u.admin ? 'yes' : 'no'}</td>
                  <td>{date(u.created_at)}</td>
                  <td class="actions">
                    <button type="button" aria-expanded={passwordFor === u.id} onClick={() => setPasswordFor(passwordFor === u.id ? undefined : u.id)}>
                      Set password
                    </button>
                    <button
                      type="button"
                      class="danger"
                      disabled={remove.busy || u.id === me.user?.id}
                      title={u.id === me.user?.id ? 'You cannot delete yourself' : undefined}
                      onClick={() => {
                        if (!window.confirm(`Delete ${u.username} with their memberships, tokens and sessions?`)) return;
                        remove.run(() => api<void>(`/api/v1/admin/users/${u.id}`, { method: 'DELETE' }), `Deleted ${u.username}.`).then((ok) => ok && users.reload());
                      }}
                    >
                      Delete
                    </button>
                  </td>
                </tr>,
                passwordFor === u.id && (
                  <tr key={`${u.id}-password`}>
                    <td colSpan={4}>
                      <PasswordForm user={u.id} label={`New password for ${u.username}`} />
                    </td>
                  </tr>
                ),
              ])}
            </tbody>
          </table>
        )}
        <Outcome action={remove} />
      </div>
      <CreateUser onCreated={users.reload} />
    </div>
  );
}

function CreateUser({ onCreated }: { onCreated: () => void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [admin, setAdmin] = useState(false);
  const action = useAction();
  return (
    <form
      class="card"
      onSubmit={async (e) => {
        e.preventDefault();
        const ok = await action.run(
          () => api<User>('/api/v1/admin/users', { method: 'POST', body: { username, password, admin } }),
          `Created ${admin ? 'administrator' : 'user'} ${username}.`,
        );
        if (ok) {
          setUsername('');
          setPassword('');
          setAdmin(false);
          onCreated();
        }
      }}
    >
      <h2>New user</h2>
      <div class="row">
        <Field label="Username">
          <input required autocomplete="off" value={username} onInput={(e) => setUsername(inputValue(e))} />
        </Field>
        <Field label="Password" hint="At least 8 characters.">
          <input type="password" required minLength={8} autocomplete="new-password" value={password} onInput={(e) => setPassword(inputValue(e))} />
        </Field>
        <label class="check">
          <input type="checkbox" checked={admin} onChange={(e) => setAdmin((e.target as HTMLInputElement).checked)} />
          Administrator
        </label>
        <button type="submit" class="primary" disabled={action.busy}>
          Create user
        </button>
      </div>
      <Outcome action={action} />
    </form>
  );
}
