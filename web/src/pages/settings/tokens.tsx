// Access tokens: a project's or your own, issued (their secret shown once) and revoked.
import { useState } from 'preact/hooks';
import { type Me, api } from '../../api';
import { ErrorBanner, useLoad } from '../../components/common';
import { Field, type IssuedToken, Outcome, ROLES, type Role, RoleSelect, SCOPES, SCOPE_HELP, type Scope, type Token, atLeast, date, inputValue, useAction } from './shared';

/** Lists, issues and revokes the tokens under `base`; `ownRole` is given for project tokens (which carry a role). */
export function TokenManager({ base, ownRole }: { base: string; ownRole?: Role }) {
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

export function TokenForm({ base, ownRole, onIssued }: { base: string; ownRole?: Role; onIssued: (token: IssuedToken) => void }) {
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
export function TokenSecret({ issued, onDone }: { issued: IssuedToken; onDone: () => void }) {
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

export function PersonalTokensTab({ me }: { me: Me }) {
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
