import { describe, expect, it } from 'vitest';
import {
	allowedOptions,
	allowedSecrets,
	applySettingEdit,
	canAddModule,
	canRemoveModule,
	controlKind,
	CUSTOM_NIX_MODULE,
	DEVICE_MODULE,
	editKey,
	effectiveValue,
	effectiveValues,
	emptyValue,
	fitsType,
	groupByCategory,
	initialValue,
	isEditableOn,
	listFields,
	matchesSearch,
	newListElement,
	parseInteger,
	problemPosition,
	readSelection,
	replacementValue,
	selectOptions,
	settingPath,
	sortedSettings,
	summarizeValue,
	tagDefinitions,
	tagsOf,
	timerValue,
	winningDefinition
} from './settings';
import type { Config, ModuleInfo, Secret, Setting, SettingType, State, Tag } from './types';

// Setting types as GET /api/available_modules serves them (built-in modules).
const deviceType: SettingType = {
	type: 'select-one',
	'select-one': [
		['Generic x86-64', 'generic-x86_64'],
		['Raspberry Pi 3', 'raspberry-pi-3'],
		['Raspberry Pi 4', 'raspberry-pi-4'],
		['Raspberry Pi 5', 'raspberry-pi-5']
	],
	extra_data: { only_editable_on_target_type: ['config'] }
};
const imageFormat: SettingType = {
	type: 'select-one',
	'select-one': [
		['SD-Card Image', 'sd-card-image'],
		['Virtual Disk Image (qcow)', 'qcow'],
		['USB Stick Installer', 'usb-stick-installer'],
		['NixOS VM', 'nixos-vm']
	],
	extra_data: {
		restrict_values_on_other_key: {
			device_type: {
				'generic-x86_64': ['nixos-vm', 'usb-stick-installer'],
				'raspberry-pi-3': ['sd-card-image'],
				'raspberry-pi-4': ['sd-card-image'],
				'raspberry-pi-5': ['sd-card-image']
			}
		},
		only_editable_on_target_type: ['config']
	}
};
const rotation: SettingType = {
	type: 'select-one',
	'select-one': [
		['normal', 'normal'],
		['left', 'left']
	],
	extra_data: null
};
const setting = (type: SettingType, extra: Partial<Setting> = {}): Setting => ({
	displayName: 'X',
	type,
	description: null,
	default: null,
	example: null,
	order: 0,
	...extra
});
const passwordSecret: SettingType = {
	type: 'secret',
	'allowed-types': ['single_line'],
	'default-processing-type': 'mkpasswd-yescrypt',
	'default-save-to-image': true
};
const containers: SettingType = {
	type: 'list',
	'list-of': {
		container_name: setting('string', { displayName: 'Container Name', order: 10 }),
		environment: setting(
			{
				type: 'list',
				'list-of': {
					key: setting('string', { displayName: 'Key/Name' }),
					value: setting('string', { displayName: 'Value' })
				},
				'element-name': 'Environment Variable'
			},
			{ order: 35 }
		),
		image: setting('string', { displayName: 'Image', order: 15 }),
		ports: setting(
			{
				type: 'list',
				'list-of': { container: setting('string'), host: setting('string') },
				'element-name': 'Port'
			},
			{ default: [], order: 25 }
		)
	},
	'element-name': 'Container'
};
const timerType: SettingType = {
	type: 'systemd-timer',
	timer_type: 'realtime',
	on_boot_sec: null,
	on_unit_active_sec: null,
	accuracy_sec: null,
	on_calendar: null,
	persistent: null,
	randomized_delay_sec: null
};

describe('controlKind', () => {
	it('gives every setting type its control', () => {
		expect(controlKind('string')).toBe('text');
		expect(controlKind('path')).toBe('text');
		expect(controlKind('package')).toBe('text');
		expect(controlKind('int')).toBe('number');
		expect(controlKind('bool')).toBe('bool');
		expect(controlKind('textarea')).toBe('textarea');
		expect(controlKind(deviceType)).toBe('select');
		expect(controlKind(containers)).toBe('list');
		expect(controlKind(passwordSecret)).toBe('secret');
		expect(controlKind({ type: 'artifact' })).toBe('artifact');
		expect(controlKind({ type: 'textarea-code', language: 'nix' })).toBe('code');
		expect(controlKind(timerType)).toBe('timer');
	});

	it('knows the older select-one form without `type` and marks others unknown', () => {
		expect(controlKind({ 'select-one': [['a', 'a']] } as unknown as SettingType)).toBe('select');
		expect(controlKind('colour' as SettingType)).toBe('unknown');
		expect(controlKind(undefined)).toBe('unknown');
	});
});

describe('sortedSettings', () => {
	it('sorts by order and keeps the server order for ties', () => {
		const sorted = sortedSettings({
			b: setting('string', { order: 20 }),
			a: setting('string', { order: 10 }),
			z: setting('string', { order: 0 }),
			y: setting('string', { order: 0 }),
			none: { displayName: 'n', type: 'string' }
		});
		expect(sorted.map(([key]) => key)).toEqual(['z', 'y', 'none', 'a', 'b']);
	});
});

describe('emptyValue and initialValue', () => {
	it('start each type with a value of the right JSON type', () => {
		expect(emptyValue('string')).toBe('');
		expect(emptyValue('path')).toBe('');
		expect(emptyValue('package')).toBe('');
		expect(emptyValue('textarea')).toBe('');
		expect(emptyValue('int')).toBe(0);
		expect(emptyValue('bool')).toBe(false);
		expect(emptyValue(containers)).toEqual([]);
		expect(emptyValue(passwordSecret)).toBe('');
		expect(emptyValue({ type: 'artifact' })).toBe('');
		expect(emptyValue({ type: 'textarea-code', language: 'nix' })).toBe('');
		expect(emptyValue(rotation)).toBe('normal');
	});

	it('use the default when it fits the type', () => {
		expect(initialValue(setting('string', { default: 'https://example.com' }))).toBe('https://example.com');
		expect(initialValue(setting('int', { default: 100 }))).toBe(100);
		expect(initialValue(setting('bool', { default: false }))).toBe(false);
		expect(initialValue(setting(rotation, { default: 'left' }))).toBe('left');
		// A null list default (static_networks) starts an empty list.
		expect(initialValue(setting(containers, { default: null }))).toEqual([]);
		// Device type defaults to "", which is no option: the first option instead.
		expect(initialValue(setting(deviceType, { default: '' }))).toBe('generic-x86_64');
	});

	it('copies list defaults instead of sharing them', () => {
		const defaults = [{ key: 'a' }];
		const value = initialValue(setting(containers, { default: defaults })) as unknown[];
		expect(value).toEqual(defaults);
		expect(value).not.toBe(defaults);
	});

	it('copy defaults held in Svelte state (proxies, which structuredClone refuses)', () => {
		const proxied = new Proxy([{ key: 'a' }], {});
		expect(initialValue(setting(containers, { default: proxied }))).toEqual([{ key: 'a' }]);
	});

	it('start a restricted select with the first allowed option', () => {
		const format = setting(imageFormat, { default: '' });
		expect(initialValue(format, { device_type: 'generic-x86_64' })).toBe('nixos-vm');
		expect(initialValue(format, { device_type: 'raspberry-pi-4' })).toBe('sd-card-image');
	});

	it('start a timer from the defaults in its type', () => {
		expect(initialValue(setting(timerType))).toEqual({
			timer_type: 'realtime',
			on_calendar: [],
			persistent: null,
			on_boot_sec: null,
			on_unit_active_sec: null,
			accuracy_sec: null,
			randomized_delay_sec: null
		});
		const monotonic = { ...timerType, timer_type: 'monotonic', on_boot_sec: '5min' } as SettingType;
		expect(initialValue(setting(monotonic))).toMatchObject({
			timer_type: 'monotonic',
			on_boot_sec: '5min'
		});
	});
});

describe('fitsType', () => {
	it('checks the stored JSON shape', () => {
		expect(fitsType('int', 3)).toBe(true);
		expect(fitsType('int', '3')).toBe(false);
		expect(fitsType('bool', true)).toBe(true);
		expect(fitsType('string', 1)).toBe(false);
		expect(fitsType(deviceType, 'raspberry-pi-4')).toBe(true);
		expect(fitsType(deviceType, 'amiga')).toBe(false);
		expect(fitsType(containers, [])).toBe(true);
		expect(fitsType(timerType, {})).toBe(true);
	});
});

describe('select-one', () => {
	it('lists options as label/value pairs', () => {
		expect(selectOptions(rotation)).toEqual([
			['normal', 'normal'],
			['left', 'left']
		]);
		expect(selectOptions('string')).toEqual([]);
	});

	it('restricts options by the other setting, in the restriction order', () => {
		expect(allowedOptions(imageFormat, { device_type: 'generic-x86_64' })).toEqual([
			['NixOS VM', 'nixos-vm'],
			['USB Stick Installer', 'usb-stick-installer']
		]);
		expect(allowedOptions(imageFormat, { device_type: 'raspberry-pi-5' })).toEqual([
			['SD-Card Image', 'sd-card-image']
		]);
	});

	it('offers every option when the other value has no restriction', () => {
		expect(allowedOptions(imageFormat, { device_type: '' })).toHaveLength(4);
		expect(allowedOptions(imageFormat, {})).toHaveLength(4);
		expect(allowedOptions(rotation, { device_type: 'raspberry-pi-4' })).toHaveLength(2);
	});

	it('replaces a value that is no longer allowed with the first allowed one', () => {
		const pi = { device_type: 'raspberry-pi-4' };
		expect(replacementValue(imageFormat, 'nixos-vm', pi)).toBe('sd-card-image');
		expect(replacementValue(imageFormat, 'sd-card-image', pi)).toBeNull();
		expect(replacementValue(imageFormat, 'sd-card-image', { device_type: 'generic-x86_64' })).toBe(
			'nixos-vm'
		);
		// Unrestricted selects never switch on their own.
		expect(replacementValue(rotation, 'upside-down', pi)).toBeNull();
	});

	it('keeps config-only settings read-only on tags', () => {
		expect(isEditableOn(deviceType, 'config')).toBe(true);
		expect(isEditableOn(deviceType, 'tag')).toBe(false);
		expect(isEditableOn(imageFormat, 'tag')).toBe(false);
		expect(isEditableOn(rotation, 'tag')).toBe(true);
		expect(isEditableOn('string', 'tag')).toBe(true);
		expect(isEditableOn(timerType, 'tag')).toBe(true);
	});

	it('summarises a value by its label', () => {
		expect(summarizeValue(deviceType, 'raspberry-pi-4')).toBe('Raspberry Pi 4');
	});
});

describe('list', () => {
	it('creates elements with every field at its initial value, nested lists empty', () => {
		expect(newListElement(containers)).toEqual({
			container_name: '',
			image: '',
			ports: [],
			environment: []
		});
		const environment = listFields(containers).find(([key]) => key === 'environment')![1];
		expect(newListElement(environment.type)).toEqual({ key: '', value: '' });
	});

	it('sorts the fields of an element', () => {
		expect(listFields(containers).map(([key]) => key)).toEqual([
			'container_name',
			'image',
			'ports',
			'environment'
		]);
	});

	it('summarises lists by length', () => {
		expect(summarizeValue(containers, [{}, {}])).toBe('[2]');
	});
});

describe('secret', () => {
	const secret = (id: string, name: string, type: Secret['type']): Secret => ({
		id,
		display_name: name,
		type,
		filename: null,
		include_in_image: false,
		processing_type: 'none',
		created_at: '',
		updated_at: ''
	});
	const secrets = {
		a: secret('a', 'Wifi', 'single_line'),
		b: secret('b', 'Env', 'env_list'),
		c: secret('c', 'Admin password', 'single_line'),
		d: secret('d', 'Cert', 'file')
	};

	it('offers only the allowed secret types, by name', () => {
		const allowed = (passwordSecret as { 'allowed-types': Secret['type'][] })['allowed-types'];
		expect(allowedSecrets(secrets, allowed).map((s) => s.id)).toEqual(['c', 'a']);
		expect(allowedSecrets(secrets, ['file', 'env_list']).map((s) => s.id)).toEqual(['d', 'b']);
	});

	it('offers every secret when no type is given', () => {
		expect(allowedSecrets(Object.values(secrets), [])).toHaveLength(4);
	});
});

describe('artifact and textarea-code', () => {
	it('store strings', () => {
		expect(initialValue(setting({ type: 'artifact' }, { default: '' }))).toBe('');
		expect(initialValue(setting({ type: 'textarea-code', language: 'nix' }, { default: '' }))).toBe(
			''
		);
		expect(fitsType({ type: 'artifact' }, 'logo.png')).toBe(true);
	});
});

describe('systemd-timer', () => {
	it('fills fields missing from a stored timer', () => {
		expect(timerValue(timerType, { timer_type: 'monotonic', on_boot_sec: '1h' })).toEqual({
			timer_type: 'monotonic',
			on_calendar: [],
			persistent: null,
			on_boot_sec: '1h',
			on_unit_active_sec: null,
			accuracy_sec: null,
			randomized_delay_sec: null
		});
	});

	it('ignores unknown keys and treats null as the defaults', () => {
		expect(timerValue(timerType, null).timer_type).toBe('realtime');
		expect(timerValue(timerType, { type: 'systemd-timer', persistent: true })).not.toHaveProperty(
			'type'
		);
		expect(timerValue(timerType, { on_calendar: ['daily'] }).on_calendar).toEqual(['daily']);
	});

	it('summarises a timer by its expressions', () => {
		expect(summarizeValue(timerType, { timer_type: 'realtime', on_calendar: ['daily', 'hourly'] })).toBe(
			'daily, hourly'
		);
		expect(summarizeValue(timerType, { timer_type: 'continuous' })).toBe('continuous');
	});
});

describe('numbers', () => {
	it('parses whole numbers only', () => {
		expect(parseInteger('42')).toBe(42);
		expect(parseInteger(' -7 ')).toBe(-7);
		expect(parseInteger('4.5')).toBeNull();
		expect(parseInteger('')).toBeNull();
		expect(parseInteger('1e3')).toBeNull();
	});
});

describe('paths and problem positions', () => {
	it('names settings as the server does', () => {
		expect(settingPath('config', 0, 1, 'volume')).toBe('$.configs[0].modules[1].settings.volume');
		expect(settingPath('tag', 2, 0, 'kiosk_url')).toBe('$.tags[2].modules[0].settings.kiosk_url');
	});

	it('reads line and column from Nix syntax errors', () => {
		expect(problemPosition('Nix syntax error at line 4, column 1: unexpected `}`, expected `;`')).toEqual({
			line: 4,
			column: 1
		});
		expect(problemPosition('error at line 12')).toEqual({ line: 12, column: 1 });
		expect(problemPosition('`x` is not one of the allowed values')).toBeNull();
	});
});

describe('tag inheritance', () => {
	const kiosk = 'thymis_controller.modules.kiosk.Kiosk';
	const lobby: Tag = {
		displayName: 'Lobby',
		identifier: 'lobby',
		priority: 90,
		modules: [{ type: kiosk, settings: { kiosk_url: 'https://lobby', volume: 40, enable_vnc: null } }]
	};
	const site: Tag = {
		displayName: 'Site',
		identifier: 'site',
		priority: 70,
		modules: [{ type: kiosk, settings: { kiosk_url: 'https://site' } }]
	};
	const config: Config = {
		displayName: 'Pi',
		identifier: 'pi',
		tags: ['lobby', 'gone', 'site'],
		modules: [{ type: kiosk, settings: { volume: 70 } }]
	};
	const tagsById = new Map([
		['lobby', lobby],
		['site', site]
	]);
	const kioskSettings: Record<string, Setting> = {
		kiosk_url: setting('string', { default: 'https://example.com' }),
		volume: setting('int', { default: 100 }),
		enable_vnc: setting('bool', { default: false })
	};

	it('resolves the config’s tags, skipping missing ones', () => {
		expect(tagsOf(config, tagsById).map((tag) => tag.identifier)).toEqual(['lobby', 'site']);
	});

	it('collects what each tag defines, ignoring null values', () => {
		const definitions = tagDefinitions(tagsOf(config, tagsById), kiosk);
		expect(definitions.get('kiosk_url')?.map((d) => d.identifier)).toEqual(['lobby', 'site']);
		expect(definitions.get('volume')?.map((d) => d.value)).toEqual([40]);
		expect(definitions.has('enable_vnc')).toBe(false);
	});

	it('lets the lowest priority win, the first one on a tie', () => {
		const definitions = tagDefinitions(tagsOf(config, tagsById), kiosk);
		expect(winningDefinition(definitions.get('kiosk_url')!)?.identifier).toBe('site');
		const twin = { ...site, identifier: 'twin', priority: 70 };
		const tied = tagDefinitions([site, twin], kiosk).get('kiosk_url')!;
		expect(winningDefinition(tied)?.identifier).toBe('site');
		expect(winningDefinition([])).toBeNull();
	});

	it('takes the own value, else the winning tag’s, else the default', () => {
		const inherited = tagDefinitions(tagsOf(config, tagsById), kiosk);
		const own = config.modules[0].settings;
		expect(effectiveValue(kioskSettings.volume, own, 'volume', inherited.get('volume'))).toEqual({
			value: 70,
			source: 'own'
		});
		const url = effectiveValue(kioskSettings.kiosk_url, own, 'kiosk_url', inherited.get('kiosk_url'));
		expect(url.value).toBe('https://site');
		expect(url.source).toBe('tag');
		expect(url.from?.displayName).toBe('Site');
		expect(effectiveValue(kioskSettings.enable_vnc, own, 'enable_vnc')).toEqual({
			value: false,
			source: 'default'
		});
		expect(effectiveValues(kioskSettings, own, inherited)).toEqual({
			kiosk_url: 'https://site',
			volume: 70,
			enable_vnc: false
		});
	});

	it('treats a stored null as unset', () => {
		expect(effectiveValue(kioskSettings.volume, { volume: null }, 'volume').source).toBe('default');
	});
});

describe('edits', () => {
	const state = (): State => ({
		version: '0.0.9',
		repositories: {},
		tags: [{ displayName: 'T', identifier: 't', priority: 90, modules: [{ type: 'm', settings: {} }] }],
		configs: [
			{
				displayName: 'C',
				identifier: 'c',
				tags: [],
				modules: [{ type: DEVICE_MODULE, settings: { device_name: 'c', volume: 1 } }]
			}
		]
	});

	it('sets and clears values by target identifier', () => {
		const draft = state();
		applySettingEdit(draft, { kind: 'config', identifier: 'c', moduleIndex: 0, key: 'device_name', value: 'x' });
		applySettingEdit(draft, { kind: 'config', identifier: 'c', moduleIndex: 0, key: 'volume', clear: true });
		applySettingEdit(draft, { kind: 'tag', identifier: 't', moduleIndex: 0, key: 'a', value: [1] });
		expect(draft.configs[0].modules[0].settings).toEqual({ device_name: 'x' });
		expect(draft.tags[0].modules[0].settings).toEqual({ a: [1] });
	});

	it('ignores edits of targets or modules that are gone', () => {
		const draft = state();
		applySettingEdit(draft, { kind: 'config', identifier: 'nope', moduleIndex: 0, key: 'a', value: 1 });
		applySettingEdit(draft, { kind: 'config', identifier: 'c', moduleIndex: 5, key: 'a', value: 1 });
		expect(draft).toEqual(state());
	});

	it('keys edits by setting', () => {
		const base = { kind: 'config' as const, identifier: 'c', moduleIndex: 0, key: 'a' };
		expect(editKey(base)).toBe(editKey({ ...base }));
		expect(editKey(base)).not.toBe(editKey({ ...base, moduleIndex: 1 }));
		expect(editKey(base)).not.toBe(editKey({ ...base, kind: 'tag' }));
	});
});

describe('modules', () => {
	const info = (type: string, displayName: string, category: string | null, description = ''): ModuleInfo => ({
		type,
		displayName,
		description,
		category,
		icon: null,
		iconDark: null,
		settings: {}
	});
	const catalogue = [
		info(DEVICE_MODULE, 'Device', null),
		info('n', 'Networking', 'Connectivity', 'Connect to WiFi'),
		info('l', 'Localization & Time', 'System'),
		info('s', 'Security & Access', 'System'),
		info(CUSTOM_NIX_MODULE, 'Custom Nix', 'Advanced', 'Any NixOS configuration, written in Nix')
	];

	it('groups by category in server order, without category last', () => {
		expect(groupByCategory(catalogue).map((group) => group.category)).toEqual([
			'Connectivity',
			'System',
			'Advanced',
			null
		]);
		expect(groupByCategory(catalogue)[1].modules.map((m) => m.type)).toEqual(['l', 's']);
	});

	it('searches names and descriptions; "custom" finds Custom Nix', () => {
		expect(catalogue.filter((m) => matchesSearch(m, 'custom')).map((m) => m.type)).toEqual([
			CUSTOM_NIX_MODULE
		]);
		expect(catalogue.filter((m) => matchesSearch(m, 'wifi')).map((m) => m.type)).toEqual(['n']);
		expect(catalogue.filter((m) => matchesSearch(m, '  ')).length).toBe(catalogue.length);
	});

	it('allows several instances except of the Device module', () => {
		const existing = [{ type: DEVICE_MODULE, settings: {} }, { type: 'n', settings: {} }];
		expect(canAddModule('n', existing)).toBe(true);
		expect(canAddModule(DEVICE_MODULE, existing)).toBe(false);
		expect(canAddModule(DEVICE_MODULE, [])).toBe(true);
	});

	it('keeps the Device module in configs', () => {
		expect(canRemoveModule(DEVICE_MODULE, 'config')).toBe(false);
		expect(canRemoveModule(DEVICE_MODULE, 'tag')).toBe(true);
		expect(canRemoveModule('n', 'config')).toBe(true);
	});
});

describe('readSelection', () => {
	const counts = (tag: string) => ({ lobby: 2 })[tag as 'lobby'];

	it('reads own modules and tag modules from the query', () => {
		expect(readSelection(new URLSearchParams('module=2'), 'config', 3, counts)).toEqual({
			context: null,
			index: 2
		});
		expect(readSelection(new URLSearchParams('context=lobby&module=1'), 'config', 3, counts)).toEqual({
			context: 'lobby',
			index: 1
		});
	});

	it('falls back to the first own module', () => {
		expect(readSelection(new URLSearchParams('module=9'), 'config', 3, counts)).toEqual({
			context: null,
			index: 0
		});
		expect(readSelection(new URLSearchParams('context=other&module=0'), 'config', 3, counts)).toEqual({
			context: null,
			index: 0
		});
		expect(readSelection(new URLSearchParams(''), 'config', 0, counts)).toBeNull();
	});

	it('ignores a context on tag pages', () => {
		expect(readSelection(new URLSearchParams('context=lobby&module=1'), 'tag', 3, counts)).toEqual({
			context: null,
			index: 1
		});
	});
});
