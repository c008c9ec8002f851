// Sign-in, and the settings API as pages: the caller's account, namespaces and their projects
// (tracing, tokens, members, pipeline, limits and usage), personal tokens, and users.
// Every change shows what the server answered: a confirmation, or its error message.
import { useState } from 'preact/hooks';
import { ApiError, type Me, api, setCsrfToken } from '../api';
import { ErrorBanner } from '../components/common';
import { navigate, useLocation } from '../router';
import { AccountTab } from './settings/account';
import { ProjectsTab } from './settings/projects';
import { Field, TabPanel, Tabs, type User, inputValue, useAction } from './settings/shared';
import { PersonalTokensTab } from './settings/tokens';
import { UsersTab } from './settings/users';
import './settings.css';

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
