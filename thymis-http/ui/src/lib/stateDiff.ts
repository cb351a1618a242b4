// What differs between two states, by config and tag: for telling a user what someone else
// changed.

import type { State } from './types';

export type EntityChange = {
	kind: 'config' | 'tag';
	identifier: string;
	name: string;
	change: 'added' | 'removed' | 'changed';
};

export function stateChanges(before: State, after: State): EntityChange[] {
	const changes: EntityChange[] = [];
	const compare = (
		kind: 'config' | 'tag',
		old: { identifier: string; displayName: string }[],
		now: { identifier: string; displayName: string }[]
	) => {
		const oldById = new Map(old.map((entity) => [entity.identifier, entity]));
		const nowById = new Map(now.map((entity) => [entity.identifier, entity]));
		for (const [id, entity] of nowById) {
			const previous = oldById.get(id);
			if (!previous) changes.push({ kind, identifier: id, name: entity.displayName, change: 'added' });
			else if (JSON.stringify(previous) !== JSON.stringify(entity))
				changes.push({ kind, identifier: id, name: entity.displayName, change: 'changed' });
		}
		for (const [id, entity] of oldById) {
			if (!nowById.has(id))
				changes.push({ kind, identifier: id, name: entity.displayName, change: 'removed' });
		}
	};
	compare('config', before.configs, after.configs);
	compare('tag', before.tags, after.tags);
	return changes;
}
