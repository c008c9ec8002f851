// The Projects tab: namespaces and their projects, tracing on or off, and each project's
// tokens, members and pipeline.
import { useState } from 'preact/hooks';
import { type Me, api, currentProject, setCurrentProject } from '../../api';
import { ErrorBanner, Spinner, useLoad } from '../../components/common';
import { LimitsAndUsage } from './limits';
import { Members } from './members';
import { Pipeline } from './pipeline';
import { Field, type Namespace, Outcome, type Project, type Role, TabPanel, Tabs, atLeast, enc, inputValue, useAction } from './shared';
import { TokenManager } from './tokens';

export function ProjectsTab({ me, onChanged }: { me: Me; onChanged: () => void }) {
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

export function CreateNamespace({ onCreated }: { onCreated: () => void }) {
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

export function NamespaceCard({
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

export function CreateProject({ namespace, onCreated }: { namespace: string; onCreated: () => void }) {
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

export type ProjectTab = 'tokens' | 'members' | 'pipeline';

export function ProjectDetail({ project, projectKey, role, me, onChanged }: { project: Project; projectKey: string; role: Role; me: Me; onChanged: () => void }) {
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

export function TracingToggle({ project, canChange, onChanged }: { project: Project; canChange: boolean; onChanged: () => void }) {
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
