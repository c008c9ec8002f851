// The Users tab (administrators): every user, created and removed.
import { useState } from 'preact/hooks';
import { type Me, api } from '../../api';
import { ErrorBanner, Spinner, useLoad } from '../../components/common';
import { Field, Outcome, PasswordForm, type User, date, inputValue, useAction } from './shared';

export function UsersTab({ me }: { me: Me }) {
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

export function CreateUser({ onCreated }: { onCreated: () => void }) {
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
