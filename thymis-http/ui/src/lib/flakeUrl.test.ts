import { describe, expect, it } from 'vitest';
import {
	composeFlakeUrl,
	emptyFields,
	fieldsProblem,
	fieldsWarning,
	isCommit,
	parseFlakeUrl,
	withoutVersion,
	type RepoFields
} from './flakeUrl';

const fields = (change: Partial<RepoFields>): RepoFields => ({ ...emptyFields(), ...change });
const sha = '0123456789abcdef0123456789abcdef01234567';

describe('composeFlakeUrl', () => {
	it('writes GitHub and GitLab references with the version as a path segment', () => {
		expect(composeFlakeUrl(fields({ path: 'owner/repo' }))).toBe('github:owner/repo');
		expect(composeFlakeUrl(fields({ path: 'owner/repo', version: 'v1.0' }))).toBe(
			'github:owner/repo/v1.0'
		);
		expect(composeFlakeUrl(fields({ kind: 'gitlab', path: 'group/sub/repo' }))).toBe(
			'gitlab:group%2Fsub/repo'
		);
		expect(composeFlakeUrl(fields({ path: 'o/r', version: sha }))).toBe(`github:o/r/${sha}`);
	});

	it('puts refs with slashes and self-hosted instances in the query', () => {
		expect(composeFlakeUrl(fields({ path: 'o/r', version: 'release/1' }))).toBe(
			'github:o/r?ref=release/1'
		);
		expect(composeFlakeUrl(fields({ kind: 'gitlab', path: 'o/r', host: 'git.example.com' }))).toBe(
			'gitlab:o/r?host=git.example.com'
		);
	});

	it('writes Git URLs with ref or rev', () => {
		const git = fields({ kind: 'git', host: 'git.example.com', path: 'acme/mods.git' });
		expect(composeFlakeUrl({ ...git, version: 'main' })).toBe(
			'git+https://git.example.com/acme/mods.git?ref=main'
		);
		expect(composeFlakeUrl({ ...git, protocol: 'ssh', host: 'git@h', version: sha })).toBe(
			`git+ssh://git@h/acme/mods.git?rev=${sha}`
		);
		expect(composeFlakeUrl({ ...git, protocol: 'git' })).toBe(
			'git://git.example.com/acme/mods.git'
		);
		expect(composeFlakeUrl(fields({ kind: 'git', protocol: 'file', path: '/srv/repo' }))).toBe(
			'git+file:///srv/repo'
		);
	});

	it('keeps other URLs as typed', () => {
		expect(composeFlakeUrl(fields({ kind: 'url', url: ' path:/srv/x ' }))).toBe('path:/srv/x');
	});
});

describe('parseFlakeUrl', () => {
	const roundTrips = [
		'github:Thymis-io/thymis',
		'github:o/r/main',
		`github:o/r/${sha}`,
		'github:o/r?ref=release/1',
		'github:o/r/main?dir=sub',
		'gitlab:group%2Fsub/repo/v2?host=gitlab.example.com',
		'git+https://git.example.com/acme/mods.git?ref=main',
		`git+ssh://git@github.com/acme/private.git?rev=${sha}`,
		'git://example.com/repo',
		'git+file:///srv/repo?ref=dev',
		'path:/srv/x',
		'nixpkgs/nixos-24.05'
	];
	it.each(roundTrips)('parses %s back to the same URL', (url) => {
		expect(composeFlakeUrl(parseFlakeUrl(url))).toBe(url);
	});

	it('splits references into fields', () => {
		expect(parseFlakeUrl('gitlab:group%2Fsub/repo?ref=main')).toMatchObject({
			kind: 'gitlab',
			path: 'group/sub/repo',
			version: 'main'
		});
		expect(parseFlakeUrl('git+ssh://git@h:22/a/b?ref=x&shallow=1')).toMatchObject({
			kind: 'git',
			protocol: 'ssh',
			host: 'git@h:22',
			path: 'a/b',
			version: 'x',
			params: [['shallow', '1']]
		});
		expect(parseFlakeUrl('git+file:/abs')).toMatchObject({ protocol: 'file', path: '/abs' });
	});

	it('keeps what it cannot split as a verbatim URL', () => {
		for (const url of ['github:o', 'github:o/r/x?ref=y', 'git+https://h/r?ref=a&rev=b', 'x?y']) {
			expect(parseFlakeUrl(url)).toMatchObject({ kind: 'url', url });
		}
	});
});

describe('checks', () => {
	it('find incomplete fields', () => {
		expect(fieldsProblem(fields({ path: 'owner' }))).toBe('repos.problem.owner-repo');
		expect(fieldsProblem(fields({ path: 'a/b/c' }))).toBe('repos.problem.owner-repo');
		expect(fieldsProblem(fields({ kind: 'gitlab', path: 'a/b/c' }))).toBeNull();
		expect(fieldsProblem(fields({ kind: 'git', protocol: 'file', path: 'rel' }))).toBe(
			'repos.problem.absolute-path'
		);
		expect(fieldsProblem(fields({ kind: 'git', path: 'a/b' }))).toBe('repos.problem.host-missing');
		expect(fieldsProblem(fields({ kind: 'url' }))).toBe('repos.problem.url-missing');
	});

	it('suggest a forge type for github.com and gitlab.com', () => {
		expect(fieldsWarning(fields({ kind: 'git', host: 'git@GitHub.com' }))).toBe(
			'repos.warning.use-github'
		);
		expect(fieldsWarning(fields({ kind: 'git', host: 'example.com' }))).toBeNull();
	});

	it('tell commits from refs', () => {
		expect(isCommit(sha)).toBe(true);
		expect(isCommit('main')).toBe(false);
	});

	it('ask for branch lists without the version', () => {
		expect(withoutVersion(fields({ path: 'o/r', version: 'main' }))).toBe('github:o/r');
	});
});
