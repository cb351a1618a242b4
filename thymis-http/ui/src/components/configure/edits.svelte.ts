// Saving setting edits: one state PATCH at a time (each needs the revision the previous one
// returned), text typing debounced, and the values not yet in `project.state` kept in
// `pending` so the controls show what the user typed. Edits the server refused (422, e.g. a
// Nix syntax error) stay shown and are sent again with the next change, so nothing typed is
// lost while the problem is shown next to the field.

import { ApiError } from '../../lib/api';
import { project } from '../../lib/project.svelte';
import { applySettingEdit, editKey, type SettingEdit } from '../../lib/settings';
import type { State } from '../../lib/types';
import { showError } from '../../lib/toasts.svelte';

/** How long typing pauses before a save. */
export const TYPING_DELAY = 400;

type Queued = SettingEdit & { version: number };

class SettingEdits {
	/** Edits not yet saved (or refused), by `editKey`; raw so values stay plain data. */
	pending = $state.raw<Record<string, Queued>>({});
	/** Whether the last save was refused with validation problems. */
	refused = $state(false);
	#unsent = new Map<string, Queued>();
	#refused = new Map<string, Queued>();
	#timer: ReturnType<typeof setTimeout> | undefined;
	#running: Promise<unknown> | null = null;
	#version = 0;

	/** The unsaved edit of a setting, if any. */
	lookup(edit: Omit<SettingEdit, 'value' | 'clear'>): Queued | undefined {
		return this.pending[editKey(edit)];
	}

	/** Records an edit and saves it: right away, or after a pause in typing when `typing`. */
	set(edit: SettingEdit, typing = false) {
		const key = editKey(edit);
		const queued = { ...edit, version: ++this.#version };
		this.pending = { ...this.pending, [key]: queued };
		this.#refused.delete(key);
		this.#unsent.set(key, queued);
		clearTimeout(this.#timer);
		// Other edits triggered by this one (a restricted select following the device type)
		// happen in the same tick; waiting for the next task saves them together.
		this.#timer = setTimeout(() => void this.flush(), typing ? TYPING_DELAY : 0);
	}

	/** Saves whatever is waiting. Resolves to whether everything got saved. */
	async flush(): Promise<boolean> {
		clearTimeout(this.#timer);
		while (this.#running) await this.#running;
		if (!this.#unsent.size) return this.#refused.size === 0;
		return this.#save();
	}

	/**
	 * Saves a structural change (adding or removing a module) after the waiting edits.
	 * Refused structural changes are not retried; the error is shown as a toast.
	 */
	async change(apply: (draft: State) => void): Promise<boolean> {
		await this.flush();
		while (this.#running) await this.#running;
		return this.#save(apply);
	}

	/** Forgets refused edits (the user left the editor), showing the saved values again. */
	discardRefused() {
		this.#forget([...this.#refused.values()]);
		this.#refused.clear();
		this.refused = false;
	}

	async #save(structural?: (draft: State) => void): Promise<boolean> {
		const batch = [...this.#refused.values(), ...this.#unsent.values()];
		this.#unsent.clear();
		this.#refused.clear();
		const run = (async () => {
			try {
				const saved = await project.save((draft) => {
					for (const edit of batch) applySettingEdit(draft, edit);
					structural?.(draft);
				});
				// Saved, or a conflict that the app's conflict dialog takes over.
				this.#forget(batch);
				this.refused = false;
				return saved;
			} catch (error) {
				if (error instanceof ApiError && error.status === 422) {
					for (const edit of batch) {
						const key = editKey(edit);
						if (!this.#unsent.has(key)) this.#refused.set(key, edit);
					}
					this.refused = this.#refused.size > 0;
					if (structural) showError(error);
				} else {
					this.#forget(batch);
					showError(error);
				}
				return false;
			}
		})();
		this.#running = run;
		try {
			return await run;
		} finally {
			this.#running = null;
		}
	}

	/** Stops showing the edits of `batch` unless they were edited again meanwhile. */
	#forget(batch: Queued[]) {
		const pending = { ...this.pending };
		for (const edit of batch) {
			const key = editKey(edit);
			if (pending[key]?.version === edit.version) delete pending[key];
		}
		this.pending = pending;
	}
}

/** The editor's edits; one queue for the whole app so saves never overlap. */
export const edits = new SettingEdits();
