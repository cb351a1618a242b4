// Test data for the task tests (not part of the app).

import type { TaskShort } from './types';

/** A running "Build Project" task, with `overrides`. */
export function short(overrides: Partial<TaskShort> = {}): TaskShort {
	return {
		id: 'a',
		task_type: 'build_project_task',
		state: 'running',
		submitted_time: '2025-01-01T10:00:00Z',
		start_time: '2025-01-01T10:00:01Z',
		end_time: null,
		exception: null,
		task_submission_data: { type: 'build_project_task' },
		nix_status: null,
		progress: null,
		parent_task_id: null,
		submitted_by: null,
		...overrides
	};
}
