import { describe, expect, it } from 'vitest';
import { parseDiff, splitRows } from './diff';

const diff = `diff --git a/state.json b/state.json
--- a/state.json
+++ b/state.json
@@ -1,3 +1,3 @@
 {
-  "a": 1
+  "a": 2
+  "b": 3
 }
`;

describe('diff', () => {
	it('classifies lines', () => {
		const kinds = parseDiff(diff).map((line) => line.kind);
		expect(kinds).toEqual(['meta', 'meta', 'meta', 'hunk', 'context', 'remove', 'add', 'add', 'context']);
	});

	it('pairs removals with additions side by side', () => {
		const rows = splitRows(parseDiff(diff));
		expect(rows.map((row) => [row.left?.text ?? null, row.right?.text ?? null])).toEqual([
			['@@ -1,3 +1,3 @@', '@@ -1,3 +1,3 @@'],
			['{', '{'],
			['  "a": 1', '  "a": 2'],
			[null, '  "b": 3'],
			['}', '}']
		]);
	});
});
