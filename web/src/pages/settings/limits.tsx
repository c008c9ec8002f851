// A namespace's limits and usage.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../../api';
import { ErrorBanner, useLoad } from '../../components/common';
import { Field, type Limits, Outcome, type Usage, bytes, enc, inputValue, parseBytes, useAction } from './shared';

export function LimitsAndUsage({ namespace, editable }: { namespace: string; editable: boolean }) {
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
export function LimitsForm({ url, limits, editable }: { url: string; limits: Limits; editable: boolean }) {
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

export function UsageView({ usage }: { usage: Usage }) {
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
