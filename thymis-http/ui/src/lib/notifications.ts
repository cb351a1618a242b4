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

/**
 * Opens the socket (reconnecting with backoff for the page's life). Resolves once it first
 * opened: data loaded after that misses no change, which data loaded before could. Resolves
 * too when it closed or did not open within 5 s (the dashboard works without it, only not
 * live); everything is reloaded when it opens later.
 */
export function connectNotifications(): Promise<void> {
	// One socket per page, however often the dashboard starts loading.
	firstOpen ??= openSocket();
	return firstOpen;
}

let firstOpen: Promise<void> | null = null;
const FIRST_OPEN_WAIT_MS = 5000;

function openSocket(): Promise<void> {
	let delay = 500;
	let connectedBefore = false;
	// Whether the dashboard stopped waiting for the first open (then it may have missed changes).
	let gaveUp = false;
	let settle: () => void = () => {};
	const first = new Promise<void>((resolve) => (settle = resolve));
	const giveUp = () => {
		if (!connectedBefore) gaveUp = true;
		settle();
	};
	// Nor does a socket that hangs (a proxy holding the upgrade) keep the dashboard from loading.
	setTimeout(giveUp, FIRST_OPEN_WAIT_MS);
	const connect = () => {
		const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
		const socket = new WebSocket(`${scheme}://${location.host}/api/notification`);
		socket.onopen = () => {
			delay = 500;
			// Changes made while disconnected were missed.
			if (connectedBefore || gaveUp) dispatch(['/api']);
			connectedBefore = true;
			settle();
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
			giveUp();
			setTimeout(connect, delay);
			delay = Math.min(delay * 2, 15000);
		};
	};
	connect();
	return first;
}

function dispatch(paths: string[]) {
	reloadProject(paths);
	for (const listener of listeners) listener(paths);
}
