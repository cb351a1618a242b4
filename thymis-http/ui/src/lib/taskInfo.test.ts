import { afterEach, describe, expect, it } from 'vitest';
import { i18n } from './i18n.svelte';
import { project } from './project.svelte';
import {
	appendOutput,
	commandLine,
	durationMs,
	errorLocation,
	formatDuration,
	nixLevel,
	progressFraction,
	taskLabel,
	withShort
} from './taskInfo';
import { short } from './taskFixtures';
import type { NixStatus, Task, TaskProcess } from './types';

const status = (done: number, expected: number): NixStatus => ({
	done,
	expected,
	running: 0,
	failed: 0
});

describe('task labels', () => {
	afterEach(() => {
		i18n.locale = 'en';
		project.state = null;
	});

	it('name the known task types', () => {
		expect(taskLabel(short())).toBe('Build Project');
		expect(taskLabel(short({ task_type: 'project_flake_update_task' }))).toBe('Update Nix Flake');
		expect(taskLabel(short({ task_type: 'project_flake_lock_task' }))).toBe('Lock Nix Flake');
	});

	it('name the config of an image build by its display name', () => {
		project.state = {
			version: '0.0.9',
			repositories: {},
			tags: [],
			configs: [{ identifier: 'lobby', displayName: 'Lobby Kiosk', modules: [], tags: [] }]
		};
		const image = short({
			task_type: 'build_device_image_task',
			task_submission_data: {
				type: 'build_device_image_task',
				configuration_id: 'lobby',
				commit: 'abc',
				image_format: 'sd-card-image'
			}
		});
		expect(taskLabel(image)).toBe('Build Image for Lobby Kiosk');
		i18n.locale = 'de';
		expect(taskLabel(image)).toBe('Image für Lobby Kiosk bauen');
		// A config that is gone: its identifier.
		project.state = { ...project.state, configs: [] };
		i18n.locale = 'en';
		expect(taskLabel(image)).toBe('Build Image for lobby');
	});

	it('make something readable of an unknown type', () => {
		expect(taskLabel(short({ task_type: 'frobnicate_widgets_task' }))).toBe('Frobnicate widgets');
	});
});

describe('progress fraction', () => {
	it('is done/expected while running', () => {
		expect(progressFraction(short({ nix_status: status(3, 12) }))).toBe(0.25);
		expect(progressFraction(short({ nix_status: status(12, 12) }))).toBe(1);
	});

	it('prefers the detailed progress over the plain status', () => {
		const progress = {
			...status(1, 2),
			phase: 'building',
			activities: {},
			download: { done_bytes: 0, expected_bytes: 0 },
			running_builds: [],
			errors: 0,
			malformed_lines: 0
		};
		expect(progressFraction(short({ nix_status: status(1, 10), progress }))).toBe(0.5);
	});

	it('is unknown before Nix counted anything, and never above 1', () => {
		expect(progressFraction(short())).toBeNull();
		expect(progressFraction(short({ nix_status: status(0, 0) }))).toBeNull();
		expect(progressFraction(short({ nix_status: status(5, 4) }))).toBe(1);
	});

	it('is 1 once completed and none for other finished or pending tasks', () => {
		expect(progressFraction(short({ state: 'completed' }))).toBe(1);
		expect(progressFraction(short({ state: 'failed', nix_status: status(1, 2) }))).toBeNull();
		expect(progressFraction(short({ state: 'pending' }))).toBeNull();
	});
});

describe('durations', () => {
	it('run from start to end, or to now', () => {
		const task = short({ start_time: '2025-01-01T10:00:00Z', end_time: '2025-01-01T10:03:05Z' });
		expect(durationMs(task)).toBe(185000);
		expect(durationMs(short({ start_time: '2025-01-01T10:00:00Z' }), Date.parse('2025-01-01T10:00:42Z'))).toBe(42000);
		expect(durationMs(short({ start_time: null }))).toBeNull();
	});

	it('read well', () => {
		expect(formatDuration(null)).toBe('—');
		expect(formatDuration(850)).toBe('850 ms');
		expect(formatDuration(42000)).toBe('42 s');
		expect(formatDuration(185000)).toBe('3 min 05 s');
		expect(formatDuration(7620000)).toBe('2 h 07 min');
	});
});

function process(index: number, overrides: Partial<TaskProcess> = {}): TaskProcess {
	return {
		process_index: index,
		process_program: 'nix',
		process_args: ['build'],
		started_at: null,
		ended_at: null,
		exit_code: null,
		process_stdout: '',
		process_stderr: '',
		nix_status: null,
		progress: null,
		nix_errors: [],
		...overrides
	};
}

const full = (processes: TaskProcess[], overrides: Partial<Task> = {}): Task => ({
	...short(),
	children: [],
	processes,
	output_truncated_bytes: 0,
	...overrides
});

const nixError = (msg: string) => ({
	level: 0,
	msg,
	raw_msg: msg,
	file: null,
	line: null,
	column: null,
	trace: []
});

describe('output stream', () => {
	it('appends stdout, stderr and Nix errors per process, taking the other fields', () => {
		const first = full([process(0, { process_stderr: 'a', process_stdout: 'x', nix_errors: [nixError('e1')] })]);
		const next = full(
			[
				process(0, { process_stderr: 'b', nix_errors: [nixError('e2')], exit_code: 1 }),
				process(1, { process_stderr: 'new' })
			],
			{ state: 'failed' }
		);
		const merged = appendOutput(first, next);
		expect(merged.state).toBe('failed');
		expect(merged.processes[0].process_stderr).toBe('ab');
		expect(merged.processes[0].process_stdout).toBe('x');
		expect(merged.processes[0].nix_errors.map((e) => e.msg)).toEqual(['e1', 'e2']);
		expect(merged.processes[0].exit_code).toBe(1);
		expect(merged.processes[1].process_stderr).toBe('new');
	});

	it('starts over for another task', () => {
		const other = full([process(0, { process_stderr: 'mine' })], { id: 'b' });
		const incoming = full([process(0, { process_stderr: 'theirs' })]);
		expect(appendOutput(other, incoming)).toBe(incoming);
		expect(appendOutput(null, incoming)).toBe(incoming);
	});

	it('takes a short update without losing the output', () => {
		const task = full([process(0, { process_stderr: 'log' })]);
		const updated = withShort(task, short({ state: 'completed', end_time: '2025-01-01T11:00:00Z' }));
		expect(updated.state).toBe('completed');
		expect(updated.processes[0].process_stderr).toBe('log');
	});
});

describe('process details', () => {
	it('quote the command line like a shell', () => {
		expect(commandLine('nix', ['build', '.#a', '--option', 'x y', "it's"])).toBe(
			`nix build '.#a' --option 'x y' 'it'\\''s'`
		);
	});

	it('show where an error is', () => {
		expect(errorLocation({ file: '/p/hosts/a.nix', line: 3, column: 7 })).toBe('/p/hosts/a.nix:3:7');
		expect(errorLocation({ file: '/p/a.nix', line: 3, column: null })).toBe('/p/a.nix:3');
		expect(errorLocation({ file: null, line: 3, column: 7 })).toBe('');
	});

	it('name the Nix levels', () => {
		expect([0, 1, 2, 3, 5].map(nixLevel)).toEqual(['error', 'warning', 'notice', 'info', 'debug']);
	});
});
