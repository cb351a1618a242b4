// The live task list: one `WS /api/task_status` for the whole app keeps the newest tasks up to
// date, streams the output of one subscribed task, and tells whoever waits for a task when it
// finished. Reconnects with backoff and catches up on what it missed.

import { api, enc } from './api';
import { appendOutput, isActive, withShort } from './taskInfo';
import type { Task, TaskShort } from './types';

/** How many of the newest tasks the task bar keeps. */
export const RECENT = 20;

export type TaskEvent =
	| { kind: 'new' | 'update'; task: TaskShort }
	/** The socket reconnected: updates may have been missed, reload. */
	| { kind: 'resync' };

type ShortMessage = { type: 'new_short_task' | 'short_task_update'; task_id: string; task: TaskShort };
type FullMessage = { type: 'subscribed_task' | 'subscribed_task_output'; task_id: string; task: Task };
export type TaskMessage = ShortMessage | FullMessage;

const isShort = (message: TaskMessage): message is ShortMessage =>
	message.type === 'new_short_task' || message.type === 'short_task_update';

/**
 * `list` with `task` put in: replaced where it is, otherwise inserted by submission time
 * (newest first); at most `limit` long.
 */
export function upsertTask(list: TaskShort[], task: TaskShort, limit = Infinity): TaskShort[] {
	const index = list.findIndex((item) => item.id === task.id);
	if (index >= 0) {
		const next = [...list];
		next[index] = task;
		return next;
	}
	const time = Date.parse(task.submitted_time);
	let at = list.findIndex((item) => Date.parse(item.submitted_time) < time);
	if (at < 0) at = list.length;
	const next = [...list.slice(0, at), task, ...list.slice(at)];
	return next.length > limit ? next.slice(0, limit) : next;
}

const KNOWN_LIMIT = 500;

export class TaskStore {
	/** The newest tasks, newest first. */
	recent = $state.raw<TaskShort[]>([]);
	/** The subscribed task with all its output so far (null until the server sent it). */
	detail = $state.raw<Task | null>(null);
	connected = $state(false);
	/** The time, ticking every second (for durations of running tasks). */
	now = $state(Date.now());

	#socket: WebSocket | null = null;
	#subscription: string | null = null;
	#listeners = new Set<(event: TaskEvent) => void>();
	#watchers = new Map<string, ((task: TaskShort) => void)[]>();
	/** The latest short version of tasks seen on the socket, with its sequence number. */
	#known = new Map<string, { seq: number; task: TaskShort }>();
	#seq = 0;
	#started = false;

	/** Connects (once) and loads the newest tasks. */
	start() {
		if (this.#started) return;
		this.#started = true;
		this.#connect();
		this.loadRecent().catch(() => {});
		setInterval(() => (this.now = Date.now()), 1000);
	}

	/** A marker to pass to `fresher` after loading a list over HTTP. */
	get seq() {
		return this.#seq;
	}

	/**
	 * `list` (loaded over HTTP, started when `seq` was `since`) with the tasks that changed on
	 * the socket meanwhile replaced by their newer version.
	 */
	fresher(list: TaskShort[], since: number): TaskShort[] {
		return list.map((task) => {
			const known = this.#known.get(task.id);
			return known && known.seq > since ? known.task : task;
		});
	}

	async loadRecent() {
		const since = this.#seq;
		const list = await api.get<TaskShort[]>(`/api/tasks?limit=${RECENT}&offset=0`);
		let merged = this.fresher(list, since);
		for (const { seq, task } of this.#known.values()) {
			if (seq > since) merged = upsertTask(merged, task, RECENT);
		}
		this.recent = merged;
	}

	/** Calls `listener` for every task that appears or changes; returns an unsubscribe. */
	on(listener: (event: TaskEvent) => void): () => void {
		this.#listeners.add(listener);
		return () => this.#listeners.delete(listener);
	}

	/** Streams the output of task `id` into `detail` (replacing any other subscription). */
	subscribe(id: string) {
		if (this.#subscription === id && this.detail?.id === id) return;
		this.#subscription = id;
		if (this.detail?.id !== id) this.detail = null;
		this.#send({ type: 'subscribe_task', task_id: id });
	}

	/** Stops following task `id` (the server keeps sending until the next subscription). */
	unsubscribe(id: string) {
		if (this.#subscription !== id) return;
		this.#subscription = null;
		this.detail = null;
	}

	/** Calls `callback` once task `id` is completed, failed or cancelled. */
	whenDone(id: string, callback: (task: TaskShort) => void) {
		const known = this.#known.get(id)?.task ?? this.recent.find((task) => task.id === id);
		if (known && !isActive(known)) {
			queueMicrotask(() => callback(known));
			return;
		}
		this.#watchers.set(id, [...(this.#watchers.get(id) ?? []), callback]);
	}

	/** The latest version of task `id` this tab saw, if any. */
	latest(id: string): TaskShort | undefined {
		return this.#known.get(id)?.task ?? this.recent.find((task) => task.id === id);
	}

	async cancel(id: string) {
		await api.post(`/api/tasks/${enc(id)}/cancel`);
	}

	/** Submits the task again; resolves to the new task's id. */
	async retry(id: string): Promise<string> {
		const result = await api.post<{ task_id: string }>(`/api/tasks/${enc(id)}/retry`);
		return result.task_id;
	}

	/** Handles one message from the server. */
	receive(message: TaskMessage) {
		if (isShort(message)) {
			this.#observe(message.task);
			this.recent = upsertTask(this.recent, message.task, RECENT);
			if (this.detail?.id === message.task.id) this.detail = withShort(this.detail, message.task);
			this.#emit({ kind: message.type === 'new_short_task' ? 'new' : 'update', task: message.task });
			return;
		}
		if (message.task.id !== this.#subscription) return;
		this.detail =
			message.type === 'subscribed_task' ? message.task : appendOutput(this.detail, message.task);
	}

	#observe(task: TaskShort) {
		this.#known.delete(task.id);
		this.#known.set(task.id, { seq: ++this.#seq, task });
		if (this.#known.size > KNOWN_LIMIT) {
			this.#known.delete(this.#known.keys().next().value as string);
		}
		if (isActive(task)) return;
		const waiting = this.#watchers.get(task.id);
		if (!waiting) return;
		this.#watchers.delete(task.id);
		for (const callback of waiting) callback(task);
	}

	#emit(event: TaskEvent) {
		for (const listener of this.#listeners) listener(event);
	}

	#send(message: unknown) {
		if (this.#socket?.readyState === WebSocket.OPEN) this.#socket.send(JSON.stringify(message));
	}

	/** After a reconnect: the tasks someone waits for may have finished meanwhile. */
	async #catchUp() {
		for (const id of this.#watchers.keys()) {
			try {
				this.#observe(await api.get<Task>(`/api/tasks/${enc(id)}`));
			} catch {
				// Gone or unreachable: keep waiting.
			}
		}
	}

	#connect() {
		let delay = 500;
		let connectedBefore = false;
		const connect = () => {
			const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
			const socket = new WebSocket(`${scheme}://${location.host}/api/task_status`);
			this.#socket = socket;
			socket.onopen = () => {
				delay = 500;
				this.connected = true;
				if (this.#subscription) this.#send({ type: 'subscribe_task', task_id: this.#subscription });
				// Loaded again once the socket is up, so no update falls between the two.
				this.loadRecent().catch(() => {});
				if (connectedBefore) {
					this.#emit({ kind: 'resync' });
					void this.#catchUp();
				}
				connectedBefore = true;
			};
			socket.onmessage = (event) => {
				try {
					const message = JSON.parse(event.data) as TaskMessage;
					if (message && typeof message === 'object' && message.task) this.receive(message);
				} catch {
					// not ours
				}
			};
			socket.onclose = () => {
				this.connected = false;
				if (this.#socket === socket) this.#socket = null;
				setTimeout(connect, delay);
				delay = Math.min(delay * 2, 15000);
			};
		};
		connect();
	}
}

export const tasks = new TaskStore();
