// The repository editor's model of a flake URL: GitHub, GitLab or Git references split into
// fields, composed into the URL Nix reads and parsed back. Anything else (path:, tarballs,
// registry ids, …) stays a verbatim URL so editing never loses it.

export type RepoKind = 'github' | 'gitlab' | 'git' | 'url';
export type GitProtocol = 'https' | 'ssh' | 'http' | 'git' | 'file';

export const GIT_PROTOCOLS: GitProtocol[] = ['https', 'ssh', 'http', 'git', 'file'];

export type RepoFields = {
	kind: RepoKind;
	/** Git only. */
	protocol: GitProtocol;
	/**
	 * Git: `host[:port]`, maybe with `user@`. GitHub/GitLab: a self-hosted instance (`?host=`),
	 * empty for the public one.
	 */
	host: string;
	/**
	 * `owner/repo` (GitLab: `group/subgroup/repo`). Git: the path after the host, or an
	 * absolute directory for `file`.
	 */
	path: string;
	/** Branch, tag or 40-hex commit; empty for the default branch. */
	version: string;
	/** Other query parameters of the parsed URL (`dir`, …), kept as they were. */
	params: [string, string][];
	/** The whole URL, for kind `url`. */
	url: string;
};

export function emptyFields(kind: RepoKind = 'github'): RepoFields {
	return { kind, protocol: 'https', host: '', path: '', version: '', params: [], url: '' };
}

/** Whether a branch/tag/commit field names a commit (then it becomes `rev`, else `ref`). */
export function isCommit(version: string): boolean {
	return /^[0-9a-f]{40}$/i.test(version);
}

/** The flake URL the fields describe (possibly incomplete while the user types). */
export function composeFlakeUrl(fields: RepoFields): string {
	const version = fields.version.trim();
	const query: [string, string][] = [];
	switch (fields.kind) {
		case 'url':
			return fields.url.trim();
		case 'github':
		case 'gitlab': {
			const segments = splitPath(fields.path);
			const repo = segments.pop() ?? '';
			const owner = segments.join('/');
			// GitLab writes subgroups percent-encoded in the owner.
			const shownOwner = fields.kind === 'gitlab' ? owner.replaceAll('/', '%2F') : owner;
			let url = `${fields.kind}:${shownOwner}/${repo}`;
			// A ref with a slash would read as more path; it goes in the query instead.
			if (version && !version.includes('/')) url += `/${version}`;
			else if (version) query.push(['ref', version]);
			if (fields.host.trim()) query.push(['host', fields.host.trim()]);
			return url + queryString([...query, ...fields.params]);
		}
		case 'git': {
			if (version) query.push([isCommit(version) ? 'rev' : 'ref', version]);
			let url: string;
			if (fields.protocol === 'file') {
				url = `git+file://${fields.path.trim()}`;
			} else {
				const path = splitPath(fields.path).join('/');
				const scheme = fields.protocol === 'git' ? 'git' : `git+${fields.protocol}`;
				url = `${scheme}://${fields.host.trim()}/${path}`;
			}
			return url + queryString([...query, ...fields.params]);
		}
	}
}

/** The fields of a flake URL; URLs the editor has no fields for come back as kind `url`. */
export function parseFlakeUrl(url: string): RepoFields {
	const verbatim = { ...emptyFields('url'), url };
	const [body, rawQuery] = splitOnce(url.trim(), '?');
	const params = parseQuery(rawQuery);
	if (!params) return verbatim;
	const [scheme, rest] = splitOnce(body, ':');
	if (rest === undefined) return verbatim;

	if (scheme === 'github' || scheme === 'gitlab') {
		const segments = rest.split('/');
		if (segments.length < 2 || segments.length > 3 || segments.some((s) => !s)) return verbatim;
		const owner = scheme === 'gitlab' ? safeDecode(segments[0]) : segments[0];
		if (owner === null) return verbatim;
		const ref = take(params, 'ref');
		const rev = take(params, 'rev');
		const inPath = segments[2];
		if ([inPath, ref, rev].filter(Boolean).length > 1) return verbatim;
		return {
			...emptyFields(scheme),
			host: take(params, 'host') ?? '',
			path: `${owner}/${segments[1]}`,
			version: inPath ?? ref ?? rev ?? '',
			params
		};
	}

	const protocol = gitProtocol(scheme);
	if (!protocol) return verbatim;
	const version = gitVersion(params);
	if (version === null) return verbatim;
	if (protocol === 'file') {
		const path = rest.startsWith('//') ? rest.slice(2) : rest;
		if (!path.startsWith('/')) return verbatim;
		return { ...emptyFields('git'), protocol, path, version, params };
	}
	if (!rest.startsWith('//')) return verbatim;
	const [host, path] = splitOnce(rest.slice(2), '/');
	if (!host || !path) return verbatim;
	return { ...emptyFields('git'), protocol, host, path, version, params };
}

/** What is wrong with the fields (an i18n key), or null. */
export function fieldsProblem(fields: RepoFields): string | null {
	switch (fields.kind) {
		case 'url':
			return fields.url.trim() ? null : 'repos.problem.url-missing';
		case 'github':
			return splitPath(fields.path).length === 2 ? null : 'repos.problem.owner-repo';
		case 'gitlab':
			// Subgroups: `group/subgroup/repo`.
			return splitPath(fields.path).length >= 2 ? null : 'repos.problem.owner-repo';
		case 'git':
			if (fields.protocol === 'file') {
				return fields.path.trim().startsWith('/') ? null : 'repos.problem.absolute-path';
			}
			if (!fields.host.trim()) return 'repos.problem.host-missing';
			return splitPath(fields.path).length ? null : 'repos.problem.path-missing';
	}
}

/** A hint for a Git URL that a GitHub/GitLab reference would serve better (an i18n key), or null. */
export function fieldsWarning(fields: RepoFields): string | null {
	if (fields.kind !== 'git' || fields.protocol === 'file') return null;
	const host = fields.host.trim().replace(/^.*@/, '').toLowerCase();
	if (host === 'github.com') return 'repos.warning.use-github';
	if (host === 'gitlab.com') return 'repos.warning.use-gitlab';
	return null;
}

/** The URL without branch/tag/commit: what branch and tag lists are asked for. */
export function withoutVersion(fields: RepoFields): string {
	return composeFlakeUrl({ ...fields, version: '' });
}

function splitPath(path: string): string[] {
	return path
		.trim()
		.split('/')
		.filter((segment) => segment);
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
	const at = text.indexOf(separator);
	return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}

function queryString(params: [string, string][]): string {
	return params.length ? `?${params.map(([key, value]) => `${key}=${value}`).join('&')}` : '';
}

/** `a=1&b=2` as pairs (values verbatim, as Nix keeps them); null when malformed. */
function parseQuery(query: string | undefined): [string, string][] | null {
	if (!query) return [];
	const pairs: [string, string][] = [];
	for (const part of query.split('&')) {
		const [key, value] = splitOnce(part, '=');
		if (!key || value === undefined) return null;
		pairs.push([key, value]);
	}
	return pairs;
}

/** Removes the parameter `key` from `params` and returns its value. */
function take(params: [string, string][], key: string): string | undefined {
	const at = params.findIndex(([name]) => name === key);
	if (at < 0) return undefined;
	return params.splice(at, 1)[0][1];
}

function gitVersion(params: [string, string][]): string | null {
	const ref = take(params, 'ref');
	const rev = take(params, 'rev');
	// The editor holds one version; a URL pinning both stays verbatim.
	if (ref && rev) return null;
	return ref ?? rev ?? '';
}

function gitProtocol(scheme: string): GitProtocol | null {
	if (scheme === 'git') return 'git';
	const transport = scheme.startsWith('git+') ? scheme.slice(4) : null;
	return GIT_PROTOCOLS.find((protocol) => protocol === transport) ?? null;
}

function safeDecode(text: string): string | null {
	try {
		return decodeURIComponent(text);
	} catch {
		return null;
	}
}
