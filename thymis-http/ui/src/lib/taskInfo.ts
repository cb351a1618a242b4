// What the dashboard says about a task: its label, how far it got, how long it took, and how
// the live output stream adds up to a whole task.

import { t } from './i18n.svelte';
import { project } from './project.svelte';
import type { NixStatus, Task, TaskShort, TaskState } from './types';

export const TASK_STATES: TaskState[] = ['pending', 'running', 'completed', 'failed', 'cancelled'];

/** Whether the task may still change (and can be cancelled). */
export const isActive = (task: Pick<TaskShort, 'state'>) =>
	task.state === 'pending' || task.state === 'running';

/** Whether the task can be submitted again (the server refuses retrying an active task). */
export const canRetry = (task: Pick<TaskShort, 'state'>) => !isActive(task);

/** A config's display name, or its identifier when the project no longer has it. */
export function configName(identifier: string): string {
	return (
		project.state?.configs.find((config) => config.identifier === identifier)?.displayName ??
		identifier
	);
}

/** The config a task works on (image and VM tasks), if any. */
export function taskConfigId(task: Pick<TaskShort, 'task_submission_data'>): string | null {
	const id = task.task_submission_data?.configuration_id;
	return typeof id === 'string' && id ? id : null;
}

/** The task's name, e.g. "Build Project" or "Build Image for Lobby Kiosk". */
export function taskLabel(task: Pick<TaskShort, 'task_type' | 'task_submission_data'>): string {
	const config = taskConfigId(task);
	const key = `tasks.type.${task.task_type}`;
	const label = t(key, { config: config ? configName(config) : '?' });
	if (label !== key) return label;
	// A type this dashboard does not know: "some_new_task" → "Some new task".
	const words = task.task_type.replace(/_task$/, '').replace(/_/g, ' ');
	return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The Nix counters of a task or process: the detailed progress, else the plain status. */
export function nixCounters(item: { progress: NixStatus | null; nix_status: NixStatus | null }) {
	return item.progress ?? item.nix_status;
}

/**
 * How far a task got, 0…1, or null when that is unknown (nothing counted yet).
 *
 * Linear in the derivations Nix reports: `done / expected`. Nix only learns `expected` while
 * it evaluates and substitutes, so the fraction can step back when more work turns up; it
 * counts derivations, not time, so a long build of one derivation sits still. The bar shows
 * the counts next to it for that reason. (Upstream's `(done²+1)/(expected²+1)` hides the
 * step-backs but is far from the real share of work done, so we do not use it.)
 * A completed task is 1; a task that did not complete has no fraction.
 */
export function progressFraction(
	task: Pick<TaskShort, 'state' | 'progress' | 'nix_status'>
): number | null {
	if (task.state === 'completed') return 1;
	if (task.state !== 'running') return null;
	const counters = nixCounters(task);
	if (!counters || !(counters.expected > 0)) return null;
	return Math.min(1, Math.max(0, counters.done / counters.expected));
}

/** A fraction as a whole percentage, e.g. "42%". */
export const percent = (fraction: number) => `${Math.floor(fraction * 100)}%`;

/** Milliseconds between start and end (or `now` while running); null when not started. */
export function durationMs(
	task: Pick<TaskShort, 'start_time' | 'end_time'>,
	now: number = Date.now()
): number | null {
	if (!task.start_time) return null;
	const start = new Date(task.start_time).getTime();
	const end = task.end_time ? new Date(task.end_time).getTime() : now;
	if (Number.isNaN(start) || Number.isNaN(end)) return null;
	return Math.max(0, end - start);
}

/** A duration as "850 ms", "42 s", "3 min 05 s" or "2 h 07 min". */
export function formatDuration(ms: number | null): string {
	if (ms === null) return '—';
	if (ms < 1000) return `${Math.round(ms)} ms`;
	const seconds = Math.floor(ms / 1000);
	if (seconds < 60) return `${seconds} s`;
	const minutes = Math.floor(seconds / 60);
	if (minutes < 60) return `${minutes} min ${String(seconds % 60).padStart(2, '0')} s`;
	return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/**
 * The task after a `subscribed_task_output` message: the message's task is complete except
 * for each process's stdout, stderr and Nix errors, which hold only what was added since the
 * previous message and are appended to what `current` has.
 */
export function appendOutput(current: Task | null, incoming: Task): Task {
	if (!current || current.id !== incoming.id) return incoming;
	const before = new Map(current.processes.map((process) => [process.process_index, process]));
	return {
		...incoming,
		processes: incoming.processes.map((process) => {
			const previous = before.get(process.process_index);
			if (!previous) return process;
			return {
				...process,
				process_stdout: previous.process_stdout + process.process_stdout,
				process_stderr: previous.process_stderr + process.process_stderr,
				nix_errors: [...previous.nix_errors, ...process.nix_errors]
			};
		})
	};
}

/** The task with the fields of a newer short version (state, times, progress) taken over. */
export function withShort(task: Task, short: TaskShort): Task {
	return { ...task, ...short, children: task.children, processes: task.processes };
}

/** A process's command line as a shell would take it (arguments quoted where needed). */
export function commandLine(program: string, args: string[]): string {
	const quote = (word: string) =>
		/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
	return [program, ...args].map(quote).join(' ');
}

/** The name of a Nix log level. */
export function nixLevel(level: number): 'error' | 'warning' | 'notice' | 'info' | 'debug' {
	if (level <= 0) return 'error';
	if (level === 1) return 'warning';
	if (level === 2) return 'notice';
	if (level === 3) return 'info';
	return 'debug';
}

/** "file:line:column", as much of it as is known, or ''. */
export function errorLocation(error: {
	file: string | null;
	line: number | null;
	column: number | null;
}): string {
	if (!error.file) return '';
	let location = error.file;
	if (error.line !== null && error.line !== undefined) {
		location += `:${error.line}`;
		if (error.column !== null && error.column !== undefined) location += `:${error.column}`;
	}
	return location;
}
