// The module editor's logic, kept free of Svelte so it can be unit-tested: which control a
// setting type gets, initial values, restricted select options, tag inheritance, JSON paths
// of settings and the positions in Nix syntax error messages.

import type {
	Config,
	ModuleInfo,
	ModuleSettings,
	Secret,
	SecretType,
	SelectOption,
	Setting,
	SettingType,
	State,
	Tag,
	TargetKind,
	TimerValue
} from './types';

export const DEVICE_MODULE = 'thymis_controller.modules.thymis.ThymisDevice';
export const CUSTOM_NIX_MODULE = 'thymis_controller.modules.whatever.WhateverModule';
/** The `mkOverride` priority configs are written with; tags use their own `priority`. */
export const CONFIG_PRIORITY = 80;

export type ControlKind =
	| 'text'
	| 'number'
	| 'bool'
	| 'textarea'
	| 'select'
	| 'list'
	| 'secret'
	| 'artifact'
	| 'code'
	| 'timer'
	| 'unknown';

type SelectOneType = Extract<SettingType, { type: 'select-one' }>;
export type ListType = Extract<SettingType, { type: 'list' }>;
export type SecretSettingType = Extract<SettingType, { type: 'secret' }>;
export type TimerType = Extract<SettingType, { type: 'systemd-timer' }>;

/** The name of a setting type: the bare string, or the `type` of an object type. */
export function typeName(type: SettingType | undefined | null): string {
	if (typeof type === 'string') return type;
	if (type && typeof type === 'object' && typeof type.type === 'string') return type.type;
	// Upstream's older wire form of select-one has no `type`, only the options.
	if (type && typeof type === 'object' && 'select-one' in type) return 'select-one';
	return '';
}

/** Which control edits values of `type`. */
export function controlKind(type: SettingType | undefined | null): ControlKind {
	switch (typeName(type)) {
		case 'string':
		case 'path':
		case 'package':
			return 'text';
		case 'int':
		case 'number':
			return 'number';
		case 'bool':
			return 'bool';
		case 'textarea':
			return 'textarea';
		case 'select-one':
			return 'select';
		case 'list':
			return 'list';
		case 'secret':
			return 'secret';
		case 'artifact':
			return 'artifact';
		case 'textarea-code':
			return 'code';
		case 'systemd-timer':
			return 'timer';
		default:
			return 'unknown';
	}
}

/** Settings as `[key, setting]` pairs by `order`; equal orders keep the server's order. */
export function sortedSettings(settings: Record<string, Setting>): [string, Setting][] {
	return Object.entries(settings)
		.map((entry, index) => ({ entry, index }))
		.sort((a, b) => (a.entry[1].order ?? 0) - (b.entry[1].order ?? 0) || a.index - b.index)
		.map(({ entry }) => entry);
}

/** The options of a select-one type as `[label, value]` pairs. */
export function selectOptions(type: SettingType): SelectOption[] {
	if (controlKind(type) !== 'select') return [];
	const options = (type as SelectOneType)['select-one'] ?? [];
	return options.map((option) =>
		Array.isArray(option) ? [String(option[0]), String(option[1])] : [String(option), String(option)]
	);
}

/** The timer a systemd-timer type starts with (its own fields are the defaults). */
export function defaultTimer(type: SettingType): TimerValue {
	const defaults = (typeof type === 'object' ? type : {}) as Partial<TimerValue>;
	return {
		timer_type: defaults.timer_type ?? 'realtime',
		on_calendar: defaults.on_calendar ? [...defaults.on_calendar] : [],
		persistent: defaults.persistent ?? null,
		on_boot_sec: defaults.on_boot_sec ?? null,
		on_unit_active_sec: defaults.on_unit_active_sec ?? null,
		accuracy_sec: defaults.accuracy_sec ?? null,
		randomized_delay_sec: defaults.randomized_delay_sec ?? null
	};
}

/** A timer value with every field present, whatever was stored (null means the defaults). */
export function timerValue(type: SettingType, value: unknown): TimerValue {
	const timer = defaultTimer(type);
	if (!value || typeof value !== 'object' || Array.isArray(value)) return timer;
	const stored = value as Partial<TimerValue>;
	return {
		...timer,
		...Object.fromEntries(Object.entries(stored).filter(([key]) => key in timer)),
		on_calendar: Array.isArray(stored.on_calendar)
			? stored.on_calendar.map(String)
			: stored.on_calendar === null
				? null
				: timer.on_calendar
	} as TimerValue;
}

/** The value of the right type that stands for "nothing entered yet". */
export function emptyValue(type: SettingType): unknown {
	switch (controlKind(type)) {
		case 'number':
			return 0;
		case 'bool':
			return false;
		case 'list':
			return [];
		case 'select':
			return selectOptions(type)[0]?.[1] ?? '';
		case 'timer':
			return defaultTimer(type);
		default:
			return '';
	}
}

/** Whether `value` has the JSON shape values of `type` are stored in. */
export function fitsType(type: SettingType, value: unknown): boolean {
	switch (controlKind(type)) {
		case 'number':
			return typeof value === 'number' && Number.isFinite(value);
		case 'bool':
			return typeof value === 'boolean';
		case 'list':
			return Array.isArray(value);
		case 'timer':
			return !!value && typeof value === 'object' && !Array.isArray(value);
		case 'select':
			return typeof value === 'string' && selectOptions(type).some(([, v]) => v === value);
		case 'unknown':
			return value !== null && value !== undefined;
		default:
			return typeof value === 'string';
	}
}

/**
 * What "Set value" starts an override with: the default when it fits the type, else empty. A
 * restricted select starts with an option the other settings (`effectiveValues`) allow.
 */
export function initialValue(
	setting: Setting,
	effectiveValues: Record<string, unknown> = {}
): unknown {
	if (controlKind(setting.type) === 'timer') return timerValue(setting.type, setting.default);
	if (controlKind(setting.type) === 'select') {
		const allowed = allowedOptions(setting.type, effectiveValues);
		if (allowed.some(([, value]) => value === setting.default)) return setting.default;
		return allowed[0]?.[1] ?? emptyValue(setting.type);
	}
	if (fitsType(setting.type, setting.default)) return cloneJson(setting.default);
	return emptyValue(setting.type);
}

/** A deep copy of JSON data (works on Svelte state proxies, unlike `structuredClone`). */
export function cloneJson<T>(value: T): T {
	return value === undefined ? value : JSON.parse(JSON.stringify(value));
}

/** A new element of a list setting: every field at its initial value. */
export function newListElement(type: SettingType): Record<string, unknown> {
	const fields = (type as ListType)['list-of'] ?? {};
	return Object.fromEntries(
		sortedSettings(fields).map(([key, setting]) => [key, initialValue(setting)])
	);
}

/** The sub-settings of a list type, sorted. */
export function listFields(type: SettingType): [string, Setting][] {
	return sortedSettings((type as ListType)['list-of'] ?? {});
}

/**
 * The options of a select-one type still allowed by the other settings' effective values, in
 * the order the restriction lists them (its first entry is the preferred one).
 */
export function allowedOptions(
	type: SettingType,
	effectiveValues: Record<string, unknown>
): SelectOption[] {
	const restrictions = (type as SelectOneType).extra_data?.restrict_values_on_other_key;
	let allowed = selectOptions(type);
	for (const [otherKey, byValue] of Object.entries(restrictions ?? {})) {
		const other = effectiveValues[otherKey];
		if (typeof other !== 'string' || !Object.hasOwn(byValue, other)) continue;
		const permitted = byValue[other];
		allowed = permitted.flatMap((value) => allowed.filter(([, option]) => option === value));
	}
	return allowed;
}

/** Whether a select-one's options depend on another setting. */
export function isRestricted(type: SettingType): boolean {
	return !!(type as SelectOneType).extra_data?.restrict_values_on_other_key;
}

/**
 * The value a restricted select must switch to because its current value is no longer
 * allowed (the first allowed one), or null when nothing has to change.
 */
export function replacementValue(
	type: SettingType,
	value: unknown,
	effectiveValues: Record<string, unknown>
): string | null {
	if (!isRestricted(type)) return null;
	const allowed = allowedOptions(type, effectiveValues);
	if (!allowed.length || allowed.some(([, v]) => v === value)) return null;
	return allowed[0][1];
}

/** Whether a setting of `type` may be edited on a config or tag. */
export function isEditableOn(type: SettingType, kind: TargetKind): boolean {
	const only = (type as SelectOneType)?.extra_data?.only_editable_on_target_type;
	return !Array.isArray(only) || only.includes(kind);
}

/** The JSON path of a setting, as the server names it in validation problems. */
export function settingPath(
	kind: TargetKind,
	targetIndex: number,
	moduleIndex: number,
	key: string
): string {
	return `${modulePath(kind, targetIndex, moduleIndex)}.settings.${key}`;
}

/** The JSON path of a module instance. */
export function modulePath(kind: TargetKind, targetIndex: number, moduleIndex: number): string {
	return `$.${kind === 'config' ? 'configs' : 'tags'}[${targetIndex}].modules[${moduleIndex}]`;
}

/** The 1-based line and column in a message such as "Nix syntax error at line 3, column 5: …". */
export function problemPosition(message: string): { line: number; column: number } | null {
	const match = /\bline (\d+)(?:,? column (\d+))?/i.exec(message);
	if (!match) return null;
	return { line: Number(match[1]), column: match[2] ? Number(match[2]) : 1 };
}

/** Whether a stored value counts as set (`null` means "not set" to the server). */
export function isSet(settings: Record<string, unknown>, key: string): boolean {
	return Object.hasOwn(settings, key) && settings[key] !== null && settings[key] !== undefined;
}

/** One place that defines a setting: the config itself or one of its tags. */
export type Definition = {
	source: TargetKind;
	identifier: string;
	displayName: string;
	priority: number;
	value: unknown;
};

/** The config's tags that exist, in the config's order. */
export function tagsOf(config: Config, tagsById: Map<string, Tag>): Tag[] {
	return config.tags.map((id) => tagsById.get(id)).filter((tag): tag is Tag => !!tag);
}

/** What each of `tags` defines for the settings of module `moduleType`, by setting key. */
export function tagDefinitions(tags: Tag[], moduleType: string): Map<string, Definition[]> {
	const byKey = new Map<string, Definition[]>();
	for (const tag of tags) {
		for (const module of tag.modules) {
			if (module.type !== moduleType) continue;
			for (const key of Object.keys(module.settings)) {
				if (!isSet(module.settings, key)) continue;
				const definition: Definition = {
					source: 'tag',
					identifier: tag.identifier,
					displayName: tag.displayName,
					priority: tag.priority ?? 90,
					value: module.settings[key]
				};
				byKey.set(key, [...(byKey.get(key) ?? []), definition]);
			}
		}
	}
	return byKey;
}

/**
 * The definition Nix uses: the one with the lowest `mkOverride` priority (the config's 80
 * beats the tags' usual 90); the first one wins a tie.
 */
export function winningDefinition(definitions: Definition[]): Definition | null {
	let best: Definition | null = null;
	for (const definition of definitions) {
		if (!best || definition.priority < best.priority) best = definition;
	}
	return best;
}

/** Where an unset or set setting gets its value from. */
export type Effective = { value: unknown; source: 'own' | 'tag' | 'default'; from?: Definition };

/** The value that applies to a setting: the own one, else the winning tag's, else the default. */
export function effectiveValue(
	setting: Setting,
	own: Record<string, unknown>,
	key: string,
	inherited: Definition[] = []
): Effective {
	if (isSet(own, key)) return { value: own[key], source: 'own' };
	const from = winningDefinition(inherited);
	if (from) return { value: from.value, source: 'tag', from };
	const value =
		controlKind(setting.type) === 'timer'
			? timerValue(setting.type, setting.default)
			: setting.default ?? emptyValue(setting.type);
	return { value, source: 'default' };
}

/** The effective value of every setting of a module instance, by key. */
export function effectiveValues(
	settings: Record<string, Setting>,
	own: Record<string, unknown>,
	inherited: Map<string, Definition[]> = new Map()
): Record<string, unknown> {
	return Object.fromEntries(
		Object.entries(settings).map(([key, setting]) => [
			key,
			effectiveValue(setting, own, key, inherited.get(key)).value
		])
	);
}

/** One change to a setting of a config or tag, saved with the next state PATCH. */
export type SettingEdit = {
	kind: TargetKind;
	identifier: string;
	moduleIndex: number;
	key: string;
	/** Remove the key so the tag's value or the default applies. */
	clear?: boolean;
	value?: unknown;
};

/** Identifies the setting an edit changes (later edits of it replace earlier ones). */
export function editKey(edit: Omit<SettingEdit, 'value' | 'clear'>): string {
	return `${edit.kind}\u0000${edit.identifier}\u0000${edit.moduleIndex}\u0000${edit.key}`;
}

/** The modules of a config or tag in a state. */
export function targetModules(
	state: State,
	kind: TargetKind,
	identifier: string
): ModuleSettings[] | undefined {
	const list: (Config | Tag)[] = kind === 'config' ? state.configs : state.tags;
	return list.find((target) => target.identifier === identifier)?.modules;
}

/** Applies `edit` to `draft` (does nothing when the target or module is gone). */
export function applySettingEdit(draft: State, edit: SettingEdit): void {
	const module = targetModules(draft, edit.kind, edit.identifier)?.[edit.moduleIndex];
	if (!module) return;
	if (edit.clear) delete module.settings[edit.key];
	else module.settings[edit.key] = edit.value;
}

/** Whether `module` matches a search in the Add Module dialog (name and description). */
export function matchesSearch(module: ModuleInfo, query: string): boolean {
	const words = query.toLowerCase().split(/\s+/).filter(Boolean);
	const text = `${module.displayName} ${module.description ?? ''}`.toLowerCase();
	return words.every((word) => text.includes(word));
}

/** Modules grouped by category in server order; modules without one come last (null). */
export function groupByCategory(modules: ModuleInfo[]): { category: string | null; modules: ModuleInfo[] }[] {
	const groups = new Map<string | null, ModuleInfo[]>();
	for (const module of modules) {
		const category = module.category || null;
		groups.set(category, [...(groups.get(category) ?? []), module]);
	}
	const named = [...groups].filter(([category]) => category !== null);
	const other = groups.get(null);
	return [
		...named.map(([category, list]) => ({ category, modules: list })),
		...(other ? [{ category: null, modules: other }] : [])
	];
}

/** Whether another instance of `module` may be added (the Device module only once). */
export function canAddModule(type: string, existing: ModuleSettings[]): boolean {
	return type !== DEVICE_MODULE || !existing.some((module) => module.type === DEVICE_MODULE);
}

/** Whether a module may be removed (a config keeps its Device module). */
export function canRemoveModule(type: string, kind: TargetKind): boolean {
	return !(kind === 'config' && type === DEVICE_MODULE);
}

/** The secrets a secret setting may reference, by name. */
export function allowedSecrets(
	secrets: Record<string, Secret> | Secret[],
	allowedTypes: SecretType[] | undefined
): Secret[] {
	const list = Array.isArray(secrets) ? secrets : Object.values(secrets);
	return list
		.filter((secret) => !allowedTypes?.length || allowedTypes.includes(secret.type))
		.sort((a, b) => a.display_name.localeCompare(b.display_name));
}

/** The selection in the editor: a module of the target itself or of one of its tags. */
export type Selection = { context: string | null; index: number };

/** Reads the selection from the URL query, falling back to the first own module. */
export function readSelection(
	query: URLSearchParams,
	kind: TargetKind,
	ownCount: number,
	tagModuleCount: (tag: string) => number | undefined
): Selection | null {
	const index = Number.parseInt(query.get('module') ?? '', 10);
	const context = kind === 'config' ? query.get('context') : null;
	if (context) {
		const count = tagModuleCount(context);
		if (count !== undefined && index >= 0 && index < count) return { context, index };
	} else if (index >= 0 && index < ownCount) {
		return { context: null, index };
	}
	return ownCount > 0 ? { context: null, index: 0 } : null;
}

/** A short text for a value shown as an inherited definition. */
export function summarizeValue(type: SettingType, value: unknown): string {
	switch (controlKind(type)) {
		case 'select': {
			const option = selectOptions(type).find(([, v]) => v === value);
			return option ? option[0] : String(value ?? '');
		}
		case 'list':
			return Array.isArray(value) ? `[${value.length}]` : '[]';
		case 'timer': {
			const timer = timerValue(type, value);
			if (timer.timer_type === 'realtime') return (timer.on_calendar ?? []).join(', ') || 'realtime';
			if (timer.timer_type === 'monotonic') {
				return [timer.on_boot_sec, timer.on_unit_active_sec].filter(Boolean).join(', ') || 'monotonic';
			}
			return timer.timer_type;
		}
		case 'bool':
			return value ? '✓' : '✗';
		default: {
			const text = typeof value === 'string' ? value : JSON.stringify(value);
			return text.length > 60 ? `${text.slice(0, 57)}…` : text;
		}
	}
}

/** A number typed into an int field, or null when it is not a whole number. */
export function parseInteger(text: string): number | null {
	if (!/^\s*-?\d+\s*$/.test(text)) return null;
	const value = Number(text);
	return Number.isSafeInteger(value) ? value : null;
}
