// Validation problems shown at one value. A list shows only its own problems: those inside
// its elements appear at the element fields.

import { project } from '../../lib/project.svelte';
import type { Problem } from '../../lib/types';

export function problemsFor(path: string, ownOnly = false): Problem[] {
	return ownOnly
		? project.problems.filter((problem) => problem.path === path)
		: project.problemsAt(path);
}
