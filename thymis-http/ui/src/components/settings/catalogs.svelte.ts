// The secrets and artifacts the pickers offer, loaded once per visit of the editor and shared
// by every picker (a list setting may show dozens).

import { api } from '../../lib/api';
import type { Secret } from '../../lib/types';

export type ArtifactInfo = {
	name: string;
	media_type: string;
	size: number;
	created_at: string | null;
	modified_at: string | null;
};

class Catalog<T> {
	items = $state.raw<T | null>(null);
	error = $state<string | null>(null);
	#loading: Promise<void> | null = null;
	readonly path: string;

	constructor(path: string) {
		this.path = path;
	}

	/** Set when the list may have changed elsewhere: the next `ensure` loads it again. */
	#stale = false;

	/** Loads the list unless it is loaded (and not stale) or loading. */
	ensure(): Promise<void> {
		if (this.items !== null && !this.#stale) return Promise.resolve();
		this.#stale = false;
		return this.reload();
	}

	/** Marks the list as possibly outdated (e.g. when the editor opens). */
	invalidate() {
		this.#stale = true;
	}

	reload(): Promise<void> {
		this.#loading ??= api
			.get<T>(this.path)
			.then((items) => {
				this.items = items;
				this.error = null;
			})
			.catch((error: unknown) => {
				this.error = error instanceof Error ? error.message : String(error);
			})
			.finally(() => {
				this.#loading = null;
			});
		return this.#loading;
	}
}

/** `GET /api/secrets`: secrets by id, without values. */
export const secretsCatalog = new Catalog<Record<string, Secret>>('/api/secrets');
/** `GET /api/artifacts`: the uploaded files. */
export const artifactsCatalog = new Catalog<ArtifactInfo[]>('/api/artifacts');
