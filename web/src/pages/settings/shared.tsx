// What the settings pages share: the settings API's shapes (generated from docs/openapi.yaml),
// formatting, the change-in-progress state and the small components every tab uses.
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { api, type Schemas } from '../../api';
import { ErrorBanner } from '../../components/common';
import { timestamp } from '../../format';

export type Role = Schemas['Role'];
export type Scope = Schemas['Scope'];
export type User = Schemas['User'];
export type Limits = Schemas['Limits'];
export type Namespace = Schemas['Namespace'];
export type Project = Schemas['Project'];
export type Member = Schemas['Member'];
export type Token = Schemas['Token'];
export type IssuedToken = Schemas['IssuedToken'];
export type Usage = Schemas['NamespaceUsage'];
export type PipelineAnswer = Schemas['PipelineAnswer'];

export const ROLES: readonly Role[] = ['guest', 'reporter', 'developer', 'maintainer', 'owner'];
export const SCOPES: readonly Scope[] = ['api', 'read_api', 'read_observability', 'write_observability'];

export const SCOPE_HELP: Record<Scope, string> = {
  api: 'everything the owner may do, settings included',
  read_api: 'read traces and settings',
  read_observability: 'read traces',
  write_observability: 'send spans',
};

// Small helpers.

export function atLeast(role: Role, min: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(min);
}

/** Unix seconds as `2026-11-21 14:03`. */
export function date(seconds: number | null): string {
  return seconds === null ? '–' : timestamp(seconds * 1000).slice(0, 16);
}

/** Bytes in decimal units, as the CLI takes them: `1.5 MB`. */
export function bytes(n: number | null | undefined): string {
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
export function parseBytes(text: string): number | null | undefined {
  const t = text.trim();
  if (!t) return null;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]i?)?b?$/i.exec(t);
  if (!m) return undefined;
  const unit = (m[2] ?? '').toLowerCase();
  const base = unit.endsWith('i') ? 1024 : 1000;
  const power = unit ? 'kmgtp'.indexOf(unit[0]) + 1 : 0;
  return Math.round(Number(m[1]) * base ** power);
}

export const enc = encodeURIComponent;
export const inputValue = (e: Event) => (e.target as HTMLInputElement).value;

/** A change in progress and how the last one ended: the API's error, or a confirmation. */
export interface Action {
  busy: boolean;
  error?: Error;
  done?: string;
  /** Runs `work`; on success shows `success` and returns true, on failure shows the error. */
  run: (work: () => Promise<unknown>, success: string) => Promise<boolean>;
}

export function useAction(): Action {
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

export function Outcome({ action }: { action: Action }) {
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

export function Field({ label, hint, children }: { label: string; hint?: ComponentChildren; children: ComponentChildren }) {
  return (
    <label class="field">
      <span class="label">{label}</span>
      {children}
      {hint && <span class="hint">{hint}</span>}
    </label>
  );
}

export function RoleSelect({ value, onChange, roles = ROLES, label }: { value: Role; onChange: (role: Role) => void; roles?: readonly Role[]; label?: string }) {
  return (
    <select value={value} aria-label={label} onChange={(e) => onChange((e.target as HTMLSelectElement).value as Role)}>
      {roles.map((r) => (
        <option value={r}>{r}</option>
      ))}
    </select>
  );
}

/** A tab strip (arrow keys, Home and End move between tabs); the caller renders the panel. */
export function Tabs<T extends string>({
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

export function TabPanel({ idPrefix, selected, children }: { idPrefix: string; selected: string; children: ComponentChildren }) {
  return (
    <div role="tabpanel" id={`${idPrefix}-panel`} aria-labelledby={`${idPrefix}-tab-${selected}`}>
      {children}
    </div>
  );
}

export function PasswordForm({ user, label }: { user: number | string; label: string }) {
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
