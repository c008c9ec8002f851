// The Account tab: who you are, how you signed in, your password.
import { type Me, api, currentProject, setCsrfToken } from '../../api';
import { Outcome, PasswordForm, useAction } from './shared';

export function AccountTab({ me, onChanged }: { me: Me; onChanged: () => void }) {
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
