// The API's JSON shapes (upstream Thymis 0.9 names).

export type ModuleSettings = { type: string; settings: Record<string, unknown> };

export type Config = {
	displayName: string;
	identifier: string;
	modules: ModuleSettings[];
	tags: string[];
	[extra: string]: unknown;
};

export type Tag = {
	displayName: string;
	identifier: string;
	priority: number;
	modules: ModuleSettings[];
	[extra: string]: unknown;
};

export type Repo = {
	url: string | null;
	follows: string | null;
	inputs_follows: Record<string, string>;
	api_key_secret: string | null;
	[extra: string]: unknown;
};

export type State = {
	version: string;
	repositories: Record<string, Repo>;
	tags: Tag[];
	configs: Config[];
	[extra: string]: unknown;
};

export type SelectOption = [label: string, value: string];

/** A setting's type as `/api/available_modules` describes it. */
export type SettingType =
	| 'string'
	| 'int'
	| 'bool'
	| 'textarea'
	| 'path'
	| 'package'
	| {
			type: 'select-one';
			'select-one': SelectOption[];
			extra_data?: {
				restrict_values_on_other_key?: Record<string, Record<string, string[]>>;
				only_editable_on_target_type?: string[];
			} | null;
	  }
	| { type: 'list'; 'list-of': Record<string, Setting>; 'element-name'?: string }
	| {
			type: 'secret';
			'allowed-types': SecretType[];
			'default-processing-type': string;
			'default-save-to-image': boolean;
	  }
	| { type: 'artifact' }
	| { type: 'textarea-code'; language: string }
	| ({ type: 'systemd-timer' } & Partial<TimerValue>);

export type Setting = {
	displayName: string;
	type: SettingType;
	description?: string | null;
	default?: unknown;
	example?: string | null;
	order?: number;
};

export type ModuleInfo = {
	type: string;
	displayName: string;
	description: string | null;
	category: string | null;
	icon: string | null;
	iconDark: string | null;
	settings: Record<string, Setting>;
};

export type TimerValue = {
	timer_type: 'realtime' | 'monotonic' | 'continuous';
	on_calendar: string[] | null;
	persistent: boolean | null;
	on_boot_sec: string | null;
	on_unit_active_sec: string | null;
	accuracy_sec: string | null;
	randomized_delay_sec: string | null;
};

export type SecretType = 'single_line' | 'multi_line' | 'env_list' | 'file';

export type Secret = {
	id: string;
	display_name: string;
	type: SecretType;
	filename: string | null;
	include_in_image: boolean;
	processing_type: string;
	created_at: string;
	updated_at: string;
	error?: string | null;
	[extra: string]: unknown;
};

export type RepoChange = { path: string; dir: string; file: string; diff: string };
export type RepoStatus = { changes: RepoChange[] };

export type Commit = { SHA: string; SHA1: string; message: string; date: string; author: string };

export type Problem = { path: string; message: string; severity: 'error' | 'warning' };

export type User = {
	username: string;
	given_name: string | null;
	family_name: string | null;
	email: string | null;
};

/** A config or a tag: what the module editor edits. */
export type TargetKind = 'config' | 'tag';

// Tasks (`/api/tasks`, `WS /api/task_status`).

export type TaskState = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';

/** Nix's build counters: derivations done, expected (known so far), running, failed. */
export type NixStatus = { done: number; expected: number; running: number; failed: number };

export type NixProgress = NixStatus & {
	phase: string | null;
	/** Counters per kind of activity (builds, copies, downloads, …). */
	activities: Record<string, NixStatus>;
	download: { done_bytes: number; expected_bytes: number };
	running_builds: string[];
	errors: number;
	malformed_lines: number;
};

/** A message Nix logged (level 0 error, 1 warning, 2 notice, 3 info, …). */
export type NixError = {
	level: number;
	msg: string;
	raw_msg: string;
	file: string | null;
	line: number | null;
	column: number | null;
	trace: string[];
};

/** What the task was asked to do; `type` names the task type. */
export type TaskSubmission = { type?: string; [field: string]: unknown };

export type TaskShort = {
	id: string;
	task_type: string;
	state: TaskState;
	submitted_time: string;
	start_time: string | null;
	end_time: string | null;
	exception: string | null;
	task_submission_data: TaskSubmission | null;
	nix_status: NixStatus | null;
	progress: NixProgress | null;
	parent_task_id: string | null;
	submitted_by: string | null;
};

export type TaskProcess = {
	process_index: number;
	process_program: string;
	process_args: string[];
	started_at: string | null;
	ended_at: string | null;
	exit_code: number | null;
	process_stdout: string;
	process_stderr: string;
	nix_status: NixStatus | null;
	progress: NixProgress | null;
	nix_errors: NixError[];
};

export type Task = TaskShort & {
	children: string[];
	processes: TaskProcess[];
	output_truncated_bytes: number;
};
