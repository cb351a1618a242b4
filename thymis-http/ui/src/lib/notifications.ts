// `WS /api/notification`: the server names API paths whose data changed; the dashboard reloads
// what it shows from them. Reconnects with backoff, and reloads everything after a gap.

import { project } from './project.svelte';

type Listener = (paths: string[]) => void;
const listeners = new Set<Listener>();

/** Calls `listener` with the invalidated paths of every notification; returns an unsubscribe. */
export function onInvalidate(listener: Listener): () => void {
	listeners.add(listener);
	return () => listeners.delete(listener);
}

/** Whether a change of `changed` makes data loaded from `path` stale. */
export function affects(changed: string[], path: string): boolean {
	return changed.some((prefix) => path === prefix || path.startsWith(prefix));
}

function reloadProject(paths: string[]) {
	const tasks: Promise<unknown>[] = [];
	if (affects(paths, '/api/state')) tasks.push(project.loadState());
	if (affects(paths, '/api/repo_status')) tasks.push(project.loadRepoStatus());
	if (affects(paths, '/api/available_modules')) tasks.push(project.loadModules());
	Promise.all(tasks).catch(() => {});
}

export function connectNotifications() {
	let delay = 500;
	let connectedBefore = false;
	const connect = () => {
		const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
		const socket = new WebSocket(`${scheme}://${location.host}/api/notification`);
		socket.onopen = () => {
			delay = 500;
			// Changes made while disconnected were missed.
			if (connectedBefore) dispatch(['/api']);
			connectedBefore = true;
		};
		socket.onmessage = (event) => {
			try {
				const inner = JSON.parse(event.data).inner;
				if (inner?.kind === 'should_invalidate') dispatch(inner.should_invalidate_paths ?? []);
			} catch {
				// not ours
			}
		};
		socket.onclose = () => {
			setTimeout(connect, delay);
			delay = Math.min(delay * 2, 15000);
		};
	};
	connect();
}

function dispatch(paths: string[]) {
	reloadProject(paths);
	for (const listener of listeners) listener(paths);
}
