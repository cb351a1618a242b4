// The code editor behind `textarea-code` settings: CodeMirror 6 with line numbers, history and
// the standard key bindings, themed with the dashboard's colours. Loaded with `import()` so it
// is its own bundle chunk, fetched only when a code setting is shown.

import { Annotation, Compartment, EditorState } from '@codemirror/state';
import {
	drawSelection,
	EditorView,
	highlightActiveLine,
	highlightActiveLineGutter,
	highlightSpecialChars,
	keymap,
	lineNumbers
} from '@codemirror/view';
import {
	defaultKeymap,
	history,
	historyKeymap,
	indentWithTab,
	temporarilySetTabFocusMode
} from '@codemirror/commands';
import { lintGutter, setDiagnostics, type Diagnostic } from '@codemirror/lint';

export type CodeProblem = { line: number; column: number; message: string };

export type CodeEditorOptions = {
	parent: HTMLElement;
	doc: string;
	readonly: boolean;
	/** Attributes of the editable element (id, aria-label, aria-describedby…). */
	attributes: Record<string, string>;
	onchange: (doc: string) => void;
};

export type CodeEditor = {
	setDoc(doc: string): void;
	setReadonly(readonly: boolean): void;
	/** Replaces the attributes of the editable element (e.g. to set aria-invalid). */
	setAttributes(attributes: Record<string, string>): void;
	setProblems(problems: CodeProblem[]): void;
	destroy(): void;
};

/** Marks changes that come from outside (a new value), not from typing. */
const external = Annotation.define<boolean>();

const theme = EditorView.theme({
	'&': {
		backgroundColor: 'var(--surface)',
		color: 'var(--text)',
		border: '1px solid var(--border)',
		borderRadius: 'var(--radius)',
		fontSize: '0.92em'
	},
	'&.cm-focused': { outline: '2px solid var(--focus)', outlineOffset: '2px' },
	'.cm-scroller': { fontFamily: 'var(--mono)', minHeight: '8rem', maxHeight: '32rem' },
	'.cm-content': { caretColor: 'var(--text)' },
	'.cm-cursor, .cm-dropCursor': { borderLeftColor: 'var(--text)' },
	'.cm-gutters': {
		backgroundColor: 'var(--surface-2)',
		color: 'var(--muted)',
		borderRight: '1px solid var(--border)',
		borderRadius: 'var(--radius) 0 0 var(--radius)'
	},
	'.cm-activeLine': { backgroundColor: 'color-mix(in srgb, var(--surface-2) 60%, transparent)' },
	'.cm-activeLineGutter': { backgroundColor: 'var(--surface-2)', color: 'var(--text)' },
	'&.cm-focused .cm-selectionBackground, .cm-selectionBackground, ::selection': {
		backgroundColor: 'color-mix(in srgb, var(--focus) 30%, transparent)'
	},
	'.cm-tooltip': {
		backgroundColor: 'var(--surface)',
		color: 'var(--text)',
		border: '1px solid var(--border)'
	},
	'&.readonly': { backgroundColor: 'var(--surface-2)', color: 'var(--muted)' }
});

/** Where a problem at a 1-based line and column lies in `state`, clamped to the text. */
export function problemRange(state: EditorState, line: number, column: number) {
	const target = state.doc.line(Math.min(Math.max(line, 1), state.doc.lines));
	const from = Math.min(target.from + Math.max(column, 1) - 1, target.to);
	return { from, to: from < target.to ? target.to : from };
}

export function createCodeEditor(options: CodeEditorOptions): CodeEditor {
	const editable = new Compartment();
	const attributes = new Compartment();
	const readonlyFacets = (readonly: boolean) => [
		EditorState.readOnly.of(readonly),
		EditorView.editable.of(!readonly),
		EditorView.editorAttributes.of({ class: readonly ? 'readonly' : '' })
	];
	const view = new EditorView({
		parent: options.parent,
		state: EditorState.create({
			doc: options.doc,
			extensions: [
				lineNumbers(),
				highlightActiveLineGutter(),
				highlightSpecialChars(),
				history(),
				drawSelection(),
				highlightActiveLine(),
				lintGutter(),
				keymap.of([
					...defaultKeymap,
					...historyKeymap,
					indentWithTab,
					// Escape, then Tab, leaves the editor (Tab alone indents).
					{ key: 'Escape', run: temporarilySetTabFocusMode }
				]),
				EditorView.lineWrapping,
				attributes.of(EditorView.contentAttributes.of(options.attributes)),
				theme,
				editable.of(readonlyFacets(options.readonly)),
				EditorView.updateListener.of((update) => {
					if (update.docChanged && !update.transactions.some((tr) => tr.annotation(external))) {
						options.onchange(update.state.doc.toString());
					}
				})
			]
		})
	});

	return {
		setDoc(doc) {
			if (doc === view.state.doc.toString()) return;
			view.dispatch({
				changes: { from: 0, to: view.state.doc.length, insert: doc },
				annotations: external.of(true)
			});
		},
		setReadonly(readonly) {
			view.dispatch({ effects: editable.reconfigure(readonlyFacets(readonly)) });
		},
		setAttributes(next) {
			view.dispatch({ effects: attributes.reconfigure(EditorView.contentAttributes.of(next)) });
		},
		setProblems(problems) {
			const diagnostics: Diagnostic[] = problems.map((problem) => ({
				...problemRange(view.state, problem.line, problem.column),
				severity: 'error',
				message: problem.message
			}));
			view.dispatch(setDiagnostics(view.state, diagnostics));
		},
		destroy() {
			view.destroy();
		}
	};
}
