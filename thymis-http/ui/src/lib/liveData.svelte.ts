// Data a page loads from the API and reloads whenever the server says it changed
// (`/api/notification`). Call during component set-up.

import { affects, onInvalidate } from './notifications';

export type LiveData<T> = {
	/** The data, or null until it first arrived. */
	readonly value: T | null;
	/** Why the last load failed, or ''. */
	readonly error: string;
	/** Loads again now. */
	load: () => Promise<void>;
};

export function liveData<T>(path: string, loader: () => Promise<T>): LiveData<T> {
	let value = $state.raw<T | null>(null);
	let error = $state('');
	async function load() {
		try {
			value = await loader();
			error = '';
		} catch (failure) {
			error = failure instanceof Error ? failure.message : String(failure);
		}
	}
	$effect(() => {
		load();
		return onInvalidate((paths) => {
			if (affects(paths, path)) load();
		});
	});
	return {
		get value() {
			return value;
		},
		get error() {
			return error;
		},
		load
	};
}
