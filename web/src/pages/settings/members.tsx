// Members of a namespace or a project, and their roles.
import { useState } from 'preact/hooks';
import { api } from '../../api';
import { ErrorBanner, useLoad } from '../../components/common';
import { Field, type Member, Outcome, ROLES, type Role, RoleSelect, atLeast, enc, inputValue, useAction } from './shared';

export function Members({ base, ownRole, canManage, admin }: { base: string; ownRole: Role; canManage: boolean; admin: boolean }) {
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
