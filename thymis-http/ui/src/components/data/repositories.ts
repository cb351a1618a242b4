// External repositories: discovery status, connection tests and branch/tag suggestions
// (`/api/external-repositories/…`). The repositories themselves live in the state.

import { api, ApiError, enc } from '../../lib/api';

export type DiscoveryStatus =
	| 'loading'
	| 'no-url'
	| 'no-path'
	| 'no-readme'
	| 'no-magic-string'
	| 'loaded';

export type RepositoryStatus = {
	status: DiscoveryStatus;
	/** Module types the repository provides. */
	modules: string[];
	details: string | null;
};

export type TestResult = {
	status: 'pending' | 'success' | 'rate_limited' | 'error';
	detail?: string | null;
	commit_hash?: string | null;
};

export type TestKind = 'prefetch' | 'api-access';

export function loadStatuses(): Promise<Record<string, RepositoryStatus>> {
	return api.get<Record<string, RepositoryStatus>>('/api/external-repositories/status');
}

/** `?api_key_secret=…` when a token secret is chosen. */
function tokenQuery(secret: string | null): string {
	return secret ? `?api_key_secret=${enc(secret)}` : '';
}

/** One connection test; refusals (bad URL, a token not allowed for the host) count as errors. */
export async function testConnection(
	kind: TestKind,
	url: string,
	secret: string | null
): Promise<TestResult> {
	try {
		return await api.get<TestResult>(
			`/api/external-repositories/test-flake-ref/${kind}/${enc(url)}${tokenQuery(secret)}`
		);
	} catch (error) {
		return { status: 'error', detail: error instanceof Error ? error.message : String(error) };
	}
}

export type Suggestions = {
	branches: string[];
	tags: string[];
	/** Why the lists are missing or incomplete. */
	problem: string;
	/** The token was refused (it is accepted once saved), so the lists were asked for without it. */
	withoutToken: boolean;
};

/** Branch and tag names of the repository at `url` (a flake URL without ref). */
export async function loadSuggestions(url: string, secret: string | null): Promise<Suggestions> {
	const [branches, tags] = await Promise.allSettled([
		forgeList('branches', url, secret),
		forgeList('tags', url, secret)
	]);
	const failure = [branches, tags].find((result) => result.status === 'rejected');
	const reason: unknown = failure?.reason;
	// The server accepts a token only for a saved repository on the same host: try without.
	if (secret && reason instanceof ApiError && reason.status === 403) {
		return { ...(await loadSuggestions(url, null)), withoutToken: true };
	}
	return {
		branches: branches.status === 'fulfilled' ? branches.value : [],
		tags: tags.status === 'fulfilled' ? tags.value : [],
		problem: reason instanceof Error ? reason.message : reason ? String(reason) : '',
		withoutToken: false
	};
}

/** GitHub's and GitLab's lists are arrays of objects with a `name`. */
async function forgeList(list: 'branches' | 'tags', url: string, secret: string | null) {
	const answer = await api.get<unknown>(
		`/api/external-repositories/${list}/${enc(url)}${tokenQuery(secret)}`
	);
	if (!Array.isArray(answer)) return [];
	return answer
		.map((item) => (item && typeof item === 'object' ? (item as { name?: unknown }).name : null))
		.filter((name): name is string => typeof name === 'string');
}
