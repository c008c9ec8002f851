// A project's own pipeline settings, edited as JSON, beside the pipeline its spans go through.
import { useState } from 'preact/hooks';
import { api } from '../../api';
import { ErrorBanner, Spinner, useLoad } from '../../components/common';
import { Outcome, type PipelineAnswer, useAction } from './shared';

/** The project's own pipeline additions as JSON: edited, saved (the server checks every rule), or cleared. */
export function Pipeline({ projectId, canEdit }: { projectId: number; canEdit: boolean }) {
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
