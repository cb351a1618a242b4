// Artifacts: files in the project repository that configs deploy (`GET /api/artifacts`).

import { api } from '../../lib/api';

export type Artifact = {
	name: string;
	media_type: string;
	size: number;
	created_at: string | null;
	modified_at: string | null;
};

/** Every artifact, sorted by name. */
export async function loadArtifacts(): Promise<Artifact[]> {
	const list = await api.get<Artifact[]>('/api/artifacts');
	return list.sort((a, b) => a.name.localeCompare(b.name));
}

/** What is wrong with an artifact file name (an i18n key), as the server checks it; or null. */
export function artifactNameProblem(name: string, taken: string[]): string | null {
	if (!name) return 'artifacts.problem.name-missing';
	// Plain file names only: no directories, no hidden files.
	if (name.startsWith('.') || /[/\\\p{Cc}]/u.test(name) || name.length > 255) {
		return 'artifacts.problem.name-invalid';
	}
	if (taken.includes(name)) return 'artifacts.problem.name-taken';
	return null;
}
