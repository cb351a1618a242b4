// Where the state refers to artifacts and secrets: module settings name an artifact as
// `{artifact: "<name>", …}` (e.g. the Files module's `artifacts` list) and a secret by its
// UUID, at any depth; repositories name their token secret.

import type { State } from '../../lib/types';

export type User = { kind: 'config' | 'tag' | 'repo'; identifier: string; displayName: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** For every artifact name referenced in the state, the configs and tags referring to it. */
export function artifactUsers(state: State | null): Map<string, User[]> {
	return settingUsers(state, (key, value) =>
		key === 'artifact' && typeof value === 'string' ? value : null
	);
}

/** For every secret id referenced in the state, the configs, tags and repositories using it. */
export function secretUsers(state: State | null): Map<string, User[]> {
	const users = settingUsers(state, (_key, value) =>
		typeof value === 'string' && UUID.test(value) ? value.toLowerCase() : null
	);
	for (const [name, repo] of Object.entries(state?.repositories ?? {})) {
		if (repo.api_key_secret) {
			const user: User = { kind: 'repo', identifier: name, displayName: name };
			add(users, repo.api_key_secret.toLowerCase(), user);
		}
	}
	return users;
}

/** Collects, per target, every reference `pick` finds in its module settings. */
function settingUsers(
	state: State | null,
	pick: (key: string, value: unknown) => string | null
): Map<string, User[]> {
	const users = new Map<string, User[]>();
	if (!state) return users;
	const targets = [
		...state.tags.map((tag) => ({ kind: 'tag' as const, target: tag })),
		...state.configs.map((config) => ({ kind: 'config' as const, target: config }))
	];
	for (const { kind, target } of targets) {
		const found = new Set<string>();
		for (const module of target.modules) collect(module.settings, '', pick, found);
		for (const reference of found) {
			add(users, reference, { kind, identifier: target.identifier, displayName: target.displayName });
		}
	}
	return users;
}

function collect(
	value: unknown,
	key: string,
	pick: (key: string, value: unknown) => string | null,
	found: Set<string>
) {
	const picked = pick(key, value);
	if (picked !== null) {
		found.add(picked);
	} else if (Array.isArray(value)) {
		for (const item of value) collect(item, key, pick, found);
	} else if (value && typeof value === 'object') {
		for (const [innerKey, inner] of Object.entries(value)) collect(inner, innerKey, pick, found);
	}
}

function add(users: Map<string, User[]>, reference: string, user: User) {
	const list = users.get(reference) ?? [];
	list.push(user);
	users.set(reference, list);
}
