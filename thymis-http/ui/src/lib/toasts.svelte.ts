// Toast messages: errors from the API (with the server's `detail`) and confirmations.

import { ApiError } from './api';

/** A link shown in a toast (e.g. to the task something started). */
export type ToastLink = { href: string; label: string };

export type Toast = { id: number; kind: 'error' | 'success' | 'info'; text: string; link?: ToastLink };

class Toasts {
	list = $state<Toast[]>([]);
	#next = 1;

	show(
		kind: Toast['kind'],
		text: string,
		timeout = kind === 'error' ? 0 : 4000,
		link?: ToastLink
	) {
		const id = this.#next++;
		this.list.push({ id, kind, text, link });
		if (timeout) setTimeout(() => this.dismiss(id), timeout);
	}

	dismiss(id: number) {
		this.list = this.list.filter((toast) => toast.id !== id);
	}
}

export const toasts = new Toasts();

/** Shows an error toast for anything thrown by an API call (a 401 redirects instead). */
export function showError(error: unknown) {
	if (error instanceof ApiError && error.status === 401) return;
	toasts.show('error', error instanceof Error ? error.message : String(error));
}
