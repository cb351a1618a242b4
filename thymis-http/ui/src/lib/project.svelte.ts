// The project as the dashboard sees it: the state (with its revision), the module catalogue,
// uncommitted changes and the user. Every edit saves the whole state with the revision it
// started from; the server refuses a stale one (409) and the user decides what to do.

import { api, ApiError } from './api';
import type { ModuleInfo, Problem, RepoStatus, State, User } from './types';

export type Conflict = {
	/** The state someone else saved. */
	theirs: State;
	theirsRevision: string;
	/** The state the user started from. */
	base: State;
	/** Redoes the user's change on top of theirs. */
	reapply: () => Promise<boolean>;
};

class Project {
	// Raw: the state is only ever replaced as a whole (edits go through `save`), so it needs
	// no deep proxy, and copying it for a draft stays cheap at thousands of configs.
	state = $state.raw<State | null>(null);
	revision = $state<string | null>(null);
	modules = $state.raw<ModuleInfo[]>([]);
	repoStatus = $state.raw<RepoStatus>({ changes: [] });
	user = $state<User | null>(null);
	/** Problems the server found in the last refused save. */
	problems = $state<Problem[]>([]);
	conflict = $state<Conflict | null>(null);
	saving = $state(false);

	async loadState() {
		const response = await api.get<Response>('/api/state', { raw: true });
		const revision = response.headers.get('etag')?.replace(/^W\//, '').replace(/"/g, '') ?? null;
		this.state = await response.json();
		this.revision = revision;
	}

	async loadModules() {
		this.modules = await api.get<ModuleInfo[]>('/api/available_modules');
	}

	async loadRepoStatus() {
		this.repoStatus = await api.get<RepoStatus>('/api/repo_status');
	}

	async loadUser() {
		this.user = await api.get<User>('/auth/logged_in');
	}

	/** The state, the module catalogue and the uncommitted changes. */
	async loadProject() {
		await Promise.all([this.loadState(), this.loadModules(), this.loadRepoStatus()]);
	}

	module(type: string): ModuleInfo | undefined {
		return this.modules.find((module) => module.type === type);
	}

	/**
	 * Applies `change` to a copy of the state and saves it. Returns whether it was saved;
	 * validation problems land in `problems`, a conflict in `conflict`.
	 */
	async save(change: (draft: State) => void): Promise<boolean> {
		if (!this.state) return false;
		const base = this.state;
		const draft: State = JSON.parse(JSON.stringify(base));
		change(draft);
		this.saving = true;
		try {
			const response = await api.patch<Response>('/api/state', draft, {
				raw: true,
				headers: this.revision ? { 'if-match': `"${this.revision}"` } : {}
			});
			this.state = await response.json();
			this.revision = response.headers.get('etag')?.replace(/^W\//, '').replace(/"/g, '') ?? null;
			this.problems = [];
			return true;
		} catch (error) {
			if (error instanceof ApiError && error.status === 409 && error.body.state) {
				const current = error.body.state as { revision: string; state: State };
				this.conflict = {
					theirs: current.state,
					theirsRevision: current.revision,
					base,
					reapply: async () => {
						this.state = current.state;
						this.revision = current.revision;
						this.conflict = null;
						return this.save(change);
					}
				};
				return false;
			}
			if (error instanceof ApiError && error.status === 422 && Array.isArray(error.detail)) {
				this.problems = error.detail as Problem[];
			}
			throw error;
		} finally {
			this.saving = false;
		}
	}

	/** Takes the state someone else saved and drops the user's change. */
	async acceptTheirs() {
		if (!this.conflict) return;
		this.state = this.conflict.theirs;
		this.revision = this.conflict.theirsRevision;
		this.conflict = null;
		await this.loadRepoStatus();
	}

	/** Validation problems whose JSON path starts with `prefix`. */
	problemsAt(prefix: string): Problem[] {
		return this.problems.filter(
			(problem) =>
				problem.path === prefix ||
				problem.path.startsWith(`${prefix}.`) ||
				problem.path.startsWith(`${prefix}[`)
		);
	}
}

export const project = new Project();

/** An identifier derived from a display name (upstream's rule). */
export function identifierFrom(name: string, prefix = 'config'): string {
	let id = name
		.toLowerCase()
		.replace(/[^a-z0-9]+/g, '-')
		.replace(/-+/g, '-')
		.replace(/^-|-$/g, '');
	if (!/^[a-z]/.test(id)) id = `${prefix}-${id}`.replace(/-$/, '');
	return id;
}
