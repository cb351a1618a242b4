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
