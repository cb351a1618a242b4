import { describe, expect, it } from 'vitest';
import { stateChanges } from './stateDiff';
import type { State } from './types';

const config = (identifier: string, tags: string[] = []) => ({
	displayName: identifier.toUpperCase(),
	identifier,
	modules: [],
	tags
});

describe('stateChanges', () => {
	it('names added, removed and changed configs and tags', () => {
		const before: State = {
			version: '0.0.9',
			repositories: {},
			tags: [{ displayName: 'T', identifier: 't', priority: 90, modules: [] }],
			configs: [config('a'), config('b')]
		};
		const after: State = {
			...before,
			tags: [],
			configs: [config('a', ['x']), config('c')]
		};
		expect(stateChanges(before, after)).toEqual([
			{ kind: 'config', identifier: 'a', name: 'A', change: 'changed' },
			{ kind: 'config', identifier: 'c', name: 'C', change: 'added' },
			{ kind: 'config', identifier: 'b', name: 'B', change: 'removed' },
			{ kind: 'tag', identifier: 't', name: 'T', change: 'removed' }
		]);
	});
});
