import { describe, expect, it, vi } from 'vitest';
import { TaskStore, upsertTask } from './tasks.svelte';
import { short } from './taskFixtures';
import type { Task, TaskProcess } from './types';

const proc = (stderr: string, errors: string[] = []): TaskProcess => ({
	process_index: 0,
	process_program: 'nix',
	process_args: [],
	started_at: null,
	ended_at: null,
	exit_code: null,
	process_stdout: '',
	process_stderr: stderr,
	nix_status: null,
	progress: null,
	nix_errors: errors.map((msg) => ({ level: 0, msg, raw_msg: msg, file: 'f.nix', line: 1, column: 2, trace: [] }))
});

const full = (id: string, stderr: string, errors: string[] = []): Task => ({
	...short({ id }),
	children: [],
	processes: [proc(stderr, errors)],
	output_truncated_bytes: 0
});

describe('the task store', () => {
	it('appends the output of the subscribed task and ignores other tasks', () => {
		const store = new TaskStore();
		store.subscribe('a');
		store.receive({ type: 'subscribed_task', task_id: 'a', task: full('a', 'one\n', ['e1']) });
		store.receive({ type: 'subscribed_task_output', task_id: 'a', task: full('a', 'two\n', ['e2']) });
		// Output of a task subscribed before (the server switches a moment later): ignored.
		store.receive({ type: 'subscribed_task_output', task_id: 'b', task: full('b', 'other\n') });
		store.receive({ type: 'subscribed_task_output', task_id: 'a', task: full('a', 'three') });
		expect(store.detail?.processes[0].process_stderr).toBe('one\ntwo\nthree');
		expect(store.detail?.processes[0].nix_errors.map((e) => e.msg)).toEqual(['e1', 'e2']);
		// A full message (after a reconnect) replaces what was there.
		store.receive({ type: 'subscribed_task', task_id: 'a', task: full('a', 'everything') });
		expect(store.detail?.processes[0].process_stderr).toBe('everything');
	});

	it('switches subscriptions and forgets the old output', () => {
		const store = new TaskStore();
		store.subscribe('a');
		store.receive({ type: 'subscribed_task', task_id: 'a', task: full('a', 'a-log') });
		store.subscribe('b');
		expect(store.detail).toBeNull();
		store.receive({ type: 'subscribed_task_output', task_id: 'b', task: full('b', 'b-log') });
		expect(store.detail?.processes[0].process_stderr).toBe('b-log');
		store.unsubscribe('b');
		expect(store.detail).toBeNull();
	});

	it('keeps the newest tasks, newest first, and applies updates', () => {
		const store = new TaskStore();
		store.receive({ type: 'new_short_task', task_id: 'a', task: short({ id: 'a', submitted_time: '2025-01-01T10:00:00Z' }) });
		store.receive({ type: 'new_short_task', task_id: 'b', task: short({ id: 'b', submitted_time: '2025-01-01T11:00:00Z' }) });
		store.receive({ type: 'short_task_update', task_id: 'a', task: short({ id: 'a', state: 'completed', submitted_time: '2025-01-01T10:00:00Z' }) });
		expect(store.recent.map((task) => [task.id, task.state])).toEqual([
			['b', 'running'],
			['a', 'completed']
		]);
		for (let i = 0; i < 25; i++) {
			const time = new Date(Date.UTC(2025, 0, 2, 0, i)).toISOString();
			store.receive({ type: 'new_short_task', task_id: `n${i}`, task: short({ id: `n${i}`, submitted_time: time }) });
		}
		expect(store.recent).toHaveLength(20);
		expect(store.recent[0].id).toBe('n24');
	});

	it('updates the subscribed task from short updates', () => {
		const store = new TaskStore();
		store.subscribe('a');
		store.receive({ type: 'subscribed_task', task_id: 'a', task: full('a', 'log') });
		store.receive({ type: 'short_task_update', task_id: 'a', task: short({ id: 'a', state: 'failed', exception: 'boom' }) });
		expect(store.detail?.state).toBe('failed');
		expect(store.detail?.exception).toBe('boom');
		expect(store.detail?.processes[0].process_stderr).toBe('log');
	});

	it('tells who waits when a task finished, also when it already had', async () => {
		const store = new TaskStore();
		const done = vi.fn();
		store.whenDone('a', done);
		store.receive({ type: 'short_task_update', task_id: 'a', task: short({ id: 'a', state: 'running' }) });
		expect(done).not.toHaveBeenCalled();
		store.receive({ type: 'short_task_update', task_id: 'a', task: short({ id: 'a', state: 'completed' }) });
		expect(done).toHaveBeenCalledTimes(1);
		store.receive({ type: 'short_task_update', task_id: 'a', task: short({ id: 'a', state: 'completed' }) });
		expect(done).toHaveBeenCalledTimes(1);
		const late = vi.fn();
		store.whenDone('a', late);
		await Promise.resolve();
		expect(late).toHaveBeenCalledWith(expect.objectContaining({ state: 'completed' }));
	});

	it('prefers what the socket said over an older HTTP list', () => {
		const store = new TaskStore();
		const since = store.seq;
		store.receive({ type: 'short_task_update', task_id: 'a', task: short({ id: 'a', state: 'completed' }) });
		const fresh = store.fresher([short({ id: 'a', state: 'running' }), short({ id: 'c' })], since);
		expect(fresh.map((task) => task.state)).toEqual(['completed', 'running']);
		expect(store.fresher([short({ id: 'a', state: 'running' })], store.seq)[0].state).toBe('running');
	});

	it('inserts by submission time', () => {
		const list = [short({ id: 'c', submitted_time: '2025-01-03T00:00:00Z' }), short({ id: 'a', submitted_time: '2025-01-01T00:00:00Z' })];
		expect(upsertTask(list, short({ id: 'b', submitted_time: '2025-01-02T00:00:00Z' })).map((t) => t.id)).toEqual(['c', 'b', 'a']);
		expect(upsertTask(list, short({ id: 'z', submitted_time: '2024-01-01T00:00:00Z' }), 2).map((t) => t.id)).toEqual(['c', 'a']);
	});
});
