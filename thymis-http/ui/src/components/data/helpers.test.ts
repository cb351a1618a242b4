import { describe, expect, it } from 'vitest';
import type { State } from '../../lib/types';
import { artifactNameProblem } from './artifacts';
import { artifactUsers, secretUsers } from './usage';
import { envListText, isEnvName } from './envList';
import { newRepoName, repoNameProblem } from './repoName';

describe('artifactUsers', () => {
	it('finds artifact references at any depth of module settings', () => {
		const state: State = {
			version: '0.0.9',
			repositories: {},
			tags: [
				{
					displayName: 'Kiosk',
					identifier: 'kiosk',
					priority: 50,
					modules: [
						{ type: 'files', settings: { artifacts: [{ artifact: 'logo.png', path: '/etc/logo.png' }] } }
					]
				}
			],
			configs: [
				{
					displayName: 'Pi',
					identifier: 'pi',
					tags: [],
					modules: [
						{ type: 'a', settings: { nested: { deeper: [{ artifact: 'logo.png' }, { artifact: 'x.bin' }] } } },
						{ type: 'b', settings: { artifact: 'logo.png', other: 'x.bin' } }
					]
				}
			]
		};
		const users = artifactUsers(state);
		expect(users.get('logo.png')).toEqual([
			{ kind: 'tag', identifier: 'kiosk', displayName: 'Kiosk' },
			{ kind: 'config', identifier: 'pi', displayName: 'Pi' }
		]);
		expect(users.get('x.bin')).toHaveLength(1);
		expect(artifactUsers(null).size).toBe(0);
	});
});

describe('secretUsers', () => {
	it('finds secret ids in settings and repository tokens', () => {
		const id = 'C3D4E5F6-0000-4000-8000-000000000001';
		const state: State = {
			version: '0.0.9',
			repositories: {
				mods: { url: 'github:o/r', follows: null, inputs_follows: {}, api_key_secret: id }
			},
			tags: [],
			configs: [
				{
					displayName: 'Pi',
					identifier: 'pi',
					tags: [],
					modules: [{ type: 'files', settings: { secrets: [{ secret: id, path: '/run/x' }] } }]
				}
			]
		};
		expect(secretUsers(state).get(id.toLowerCase())).toEqual([
			{ kind: 'config', identifier: 'pi', displayName: 'Pi' },
			{ kind: 'repo', identifier: 'mods', displayName: 'mods' }
		]);
	});
});

describe('env lists', () => {
	it('are written as KEY=VALUE lines, skipping empty rows', () => {
		expect(
			envListText([
				{ key: 'A', value: '1' },
				{ key: '', value: '' },
				{ key: 'B', value: 'x=y' }
			])
		).toBe('A=1\nB=x=y');
	});

	it('check variable names', () => {
		expect(isEnvName('API_KEY')).toBe(true);
		expect(isEnvName('1X')).toBe(false);
		expect(isEnvName('A B')).toBe(false);
	});
});

describe('repository names', () => {
	it('must be usable as flake inputs', () => {
		expect(repoNameProblem('my-modules', [])).toBeNull();
		expect(repoNameProblem('', [])).toBe('repos.problem.name-missing');
		expect(repoNameProblem('1st', [])).toBe('repos.problem.name-invalid');
		expect(repoNameProblem('let', [])).toBe('repos.problem.name-invalid');
		expect(repoNameProblem('nixpkgs', [])).toBe('repos.problem.name-reserved');
		expect(repoNameProblem('mods', ['mods'])).toBe('repos.problem.name-taken');
	});

	it('are proposed as the first free new-repo-N', () => {
		expect(newRepoName(['new-repo-1'])).toBe('new-repo-2');
	});
});

describe('artifact names', () => {
	it('are plain, unused file names', () => {
		expect(artifactNameProblem('logo.png', ['a.txt'])).toBeNull();
		expect(artifactNameProblem('', [])).toBe('artifacts.problem.name-missing');
		expect(artifactNameProblem('.hidden', [])).toBe('artifacts.problem.name-invalid');
		expect(artifactNameProblem('dir/x', [])).toBe('artifacts.problem.name-invalid');
		expect(artifactNameProblem('a.txt', ['a.txt'])).toBe('artifacts.problem.name-taken');
	});
});
