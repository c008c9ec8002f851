// A one-line TraceQL editor (CodeMirror) with highlighting and autocomplete of attribute
// names, intrinsics, operators and the values a field takes in the searched time range.
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap, completionStatus, type Completion, type CompletionContext, type CompletionResult } from '@codemirror/autocomplete';
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
import { HighlightStyle, StreamLanguage, syntaxHighlighting } from '@codemirror/language';
import { EditorState, Prec } from '@codemirror/state';
import { EditorView, keymap, placeholder } from '@codemirror/view';
import { tags } from '@lezer/highlight';
import { useEffect, useRef } from 'preact/hooks';
import { api } from '../api';
import { SPAN_KINDS, rangeQuery, type TimeRange } from '../format';

const INTRINSICS = ['name', 'status', 'statusMessage', 'kind', 'duration', 'rootServiceName', 'rootName', 'traceDuration'];
const OPERATORS = ['=', '!=', '=~', '!~', '>', '>=', '<', '<='];

const traceql = StreamLanguage.define<null>({
  name: 'traceql',
  token(stream) {
    if (stream.eatSpace()) return null;
    if (stream.match(/"(?:[^"\\]|\\.)*"?/)) return 'string';
    if (stream.match(/-?\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h)\b/)) return 'unit';
    if (stream.match(/-?\d+(?:\.\d+)?/)) return 'number';
    if (stream.match(/(?:&&|\|\||>>|<<|!>>|!<<|~|!~|=~|!=|>=|<=|[=<>!|])/)) return 'operator';
    if (stream.match(/[{}()]/)) return 'brace';
    if (stream.match(/(?:span|resource|event|link|instrumentation)?\.[\w.\-/]+/)) return 'attributeName';
    if (stream.match(/\b(?:true|false|nil|error|ok|unset|server|client|internal|producer|consumer|unspecified)\b/)) return 'atom';
    if (stream.match(/\b(?:select|count|avg|min|max|sum|by)\b/)) return 'keyword';
    if (stream.match(/\w+/)) return 'variableName';
    stream.next();
    return null;
  },
  tokenTable: { attributeName: tags.attributeName, unit: tags.unit, brace: tags.brace },
});

const highlight = HighlightStyle.define([
  { tag: tags.string, color: 'var(--ok)' },
  { tag: [tags.number, tags.unit], color: 'var(--warn)' },
  { tag: tags.attributeName, color: 'var(--accent)' },
  { tag: [tags.operator, tags.keyword], color: 'var(--error)' },
  { tag: tags.atom, color: 'var(--critical)', fontWeight: '600' },
]);

interface Names {
  span: string[];
  resource: string[];
  intrinsic: string[];
}

/** Names and values, cached per time range for a short while. */
class Vocabulary {
  private names?: Promise<Names>;
  private values = new Map<string, { at: number; values: Promise<Completion[]> }>();
  constructor(private range: TimeRange) {}

  attributeNames(): Promise<Names> {
    this.names ??= api<Names>('/api/v1/attributes', { query: rangeQuery(this.range) }).catch(() => ({ span: [], resource: [], intrinsic: [] }));
    return this.names;
  }

  fieldValues(field: string): Promise<Completion[]> {
    if (field === 'status') return Promise.resolve(['error', 'ok', 'unset'].map((v) => ({ label: v, type: 'enum' })));
    if (field === 'kind') return Promise.resolve(SPAN_KINDS.map((v) => ({ label: v, type: 'enum' })));
    const cached = this.values.get(field);
    if (cached && Date.now() - cached.at < 30_000) return cached.values;
    const values = api<{ values: { type: string; value: unknown }[] }>(`/api/v1/attributes/${encodeURIComponent(field)}/values`, {
      query: { ...rangeQuery(this.range), limit: 200 },
    }).then(
      (r) =>
        r.values.map((v, i) => ({
          label: v.type === 'string' ? JSON.stringify(String(v.value)) : String(v.value),
          type: 'constant',
          detail: v.type,
          boost: -i / 1000,
        })),
      () => [],
    );
    this.values.set(field, { at: Date.now(), values });
    return values;
  }
}

function completer(vocabulary: () => Vocabulary) {
  return async (context: CompletionContext): Promise<CompletionResult | null> => {
    const before = context.state.sliceDoc(0, context.pos);
    const open = before.lastIndexOf('{') > before.lastIndexOf('}');
    if (!open) {
      const word = context.matchBefore(/[\w|]*$/);
      if (!context.explicit && !word?.text && before.trim() !== '') return null;
      return {
        from: word?.from ?? context.pos,
        options: [
          { label: '{ }', apply: '{ }', type: 'keyword', detail: 'span filter' },
          { label: '&&', type: 'keyword', detail: 'both spansets' },
          { label: '>>', type: 'keyword', detail: 'descendant' },
          { label: '| select()', apply: '| select()', type: 'keyword', detail: 'show fields' },
        ],
      };
    }
    // A value after `field op `.
    const valueMatch = /([\w.:\-/]+)\s*(=~|!~|!=|>=|<=|=|>|<)\s*("?[^"\s&|}]*)$/.exec(before);
    if (valueMatch) {
      const options = await vocabulary().fieldValues(valueMatch[1]);
      return { from: context.pos - valueMatch[3].length, options, validFor: /^"?[^"]*"?$/ };
    }
    // An operator after a field and a space.
    const opMatch = /([\w.:\-/]+)\s+([=!<>~]*)$/.exec(before);
    if (opMatch && !/^(&&|\|\|)$/.test(opMatch[1])) {
      return { from: context.pos - opMatch[2].length, options: OPERATORS.map((o) => ({ label: o, type: 'operator' })) };
    }
    // A field name.
    const field = context.matchBefore(/[\w.:\-/]*$/);
    if (!field || (!context.explicit && field.from === field.to && !/[{(&|]\s*$/.test(before))) return null;
    const names = await vocabulary().attributeNames();
    const options: Completion[] = [
      ...INTRINSICS.map((n) => ({ label: n, type: 'keyword', detail: 'intrinsic' })),
      ...names.resource.map((n) => ({ label: `resource.${n}`, type: 'property', detail: 'resource' })),
      ...names.span.map((n) => ({ label: `span.${n}`, type: 'property', detail: 'span' })),
      ...names.span.map((n) => ({ label: `.${n}`, type: 'property', detail: 'span or resource', boost: -1 })),
    ];
    return { from: field.from, options, validFor: /^[\w.:\-/]*$/ };
  };
}

/** An editor whose text starts as `value` and is replaced when `value` changes. */
export function TraceQLEditor({
  value,
  range,
  onChange,
  onSubmit,
}: {
  value: string;
  range: TimeRange;
  onChange: (value: string) => void;
  onSubmit: () => void;
}) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView>();
  const callbacks = useRef({ onChange, onSubmit });
  callbacks.current = { onChange, onSubmit };
  const vocabulary = useRef(new Vocabulary(range));

  useEffect(() => {
    vocabulary.current = new Vocabulary(range);
  }, [JSON.stringify(range)]);

  useEffect(() => {
    const submit = (view: EditorView) => {
      if (completionStatus(view.state) === 'pending') return true;
      callbacks.current.onSubmit();
      return true;
    };
    view.current = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: value,
        extensions: [
          history(),
          closeBrackets(),
          traceql,
          syntaxHighlighting(highlight),
          // Enter takes a suggestion the moment it shows (no delay), and searches only when none does.
          autocompletion({ override: [completer(() => vocabulary.current)], activateOnTyping: true, icons: false, interactionDelay: 0 }),
          Prec.high(keymap.of([{ key: 'Mod-Enter', run: submit }])),
          keymap.of([...closeBracketsKeymap, ...completionKeymap, { key: 'Enter', run: submit }, ...historyKeymap, ...defaultKeymap]),
          placeholder('{ resource.service.name = "checkout" && status = error }   (Ctrl+Space for suggestions, Enter to search)'),
          EditorView.lineWrapping,
          EditorView.contentAttributes.of({ 'aria-label': 'TraceQL query', 'data-testid': 'traceql-input' }),
          EditorView.updateListener.of((update) => {
            if (update.docChanged) callbacks.current.onChange(update.state.doc.toString());
          }),
          // One line: a pasted newline becomes a space.
          EditorState.transactionFilter.of((tr) => (tr.newDoc.lines > 1 ? [tr, { changes: { from: 0, to: tr.newDoc.length, insert: tr.newDoc.toString().replace(/\n/g, ' ') }, sequential: true }] : tr)),
        ],
      }),
    });
    return () => view.current?.destroy();
  }, []);

  // `value` changes only from outside (a search from the address: a link, back or forward); the
  // editor owns the text in between, so a render lagging behind typing cannot overwrite it.
  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value) v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
  }, [value]);

  return <div ref={host} class="traceql-editor" data-shortcut="search" />;
}
