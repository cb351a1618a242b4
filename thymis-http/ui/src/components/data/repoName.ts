// Rules for a repository's input name: it becomes a Nix variable in flake.nix.

/** Names the flake already binds: the outputs function's own arguments and the built-in inputs. */
const RESERVED = ['self', 'inputs', 'builtins', 'nixpkgs', 'thymis'];
const NIX_KEYWORDS = ['assert', 'else', 'if', 'in', 'inherit', 'let', 'or', 'rec', 'then', 'with'];

/** What is wrong with `name` (an i18n key), or null; `taken` are the other repositories' names. */
export function repoNameProblem(name: string, taken: string[]): string | null {
	if (!name) return 'repos.problem.name-missing';
	if (!/^[A-Za-z_][A-Za-z0-9_'-]*$/.test(name) || NIX_KEYWORDS.includes(name)) {
		return 'repos.problem.name-invalid';
	}
	if (RESERVED.includes(name)) return 'repos.problem.name-reserved';
	if (taken.includes(name)) return 'repos.problem.name-taken';
	return null;
}

/** The first free `new-repo-N`. */
export function newRepoName(taken: string[]): string {
	let n = 1;
	while (taken.includes(`new-repo-${n}`)) n++;
	return `new-repo-${n}`;
}
