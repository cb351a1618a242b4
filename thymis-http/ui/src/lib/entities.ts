// Creating configs and tags the way upstream does, and checking their names.

import { identifierFrom } from './project.svelte';
import type { Config, ModuleInfo, SettingType, State, Tag } from './types';

export const DEVICE_MODULE = 'thymis_controller.modules.thymis.ThymisDevice';
export const DEFAULT_TAG_PRIORITY = 90;

/** Why `name` cannot be used for a new config or tag (or a rename of `self`), or null. */
export function nameProblem(
	state: State,
	kind: 'config' | 'tag',
	name: string,
	self?: string
): { key: string; params?: Record<string, string> } | null {
	const trimmed = name.trim();
	if (!trimmed) return { key: 'configs.name-required' };
	const entities: (Config | Tag)[] = kind === 'config' ? state.configs : state.tags;
	const others = entities.filter((entity) => entity.identifier !== self);
	if (others.some((entity) => entity.displayName === trimmed)) return { key: 'configs.name-taken' };
	if (self === undefined) {
		const id = identifierFrom(trimmed, kind);
		if (others.some((entity) => entity.identifier === id))
			return { key: 'configs.id-taken', params: { id } };
	}
	return null;
}

function selectValues(type: SettingType | undefined): string[] {
	return typeof type === 'object' && type.type === 'select-one'
		? type['select-one'].map(([, value]) => value)
		: [];
}

/** The device types the Device module offers, as [label, value]. */
export function deviceTypes(device: ModuleInfo | undefined): [string, string][] {
	const type = device?.settings.device_type?.type;
	return typeof type === 'object' && type.type === 'select-one' ? type['select-one'] : [];
}

/** A new config whose only module is the Device module, filled in as upstream does. */
export function newConfig(
	name: string,
	deviceType: string,
	tags: string[],
	device: ModuleInfo | undefined
): Config {
	const identifier = identifierFrom(name.trim(), 'config');
	const formatType = device?.settings.image_format?.type;
	let formats = selectValues(formatType);
	if (typeof formatType === 'object' && formatType.type === 'select-one') {
		const allowed = formatType.extra_data?.restrict_values_on_other_key?.device_type?.[deviceType];
		if (allowed?.length) formats = formats.filter((format) => allowed.includes(format));
	}
	const versions = selectValues(device?.settings.nix_state_version?.type);
	const defaultVersion = device?.settings.nix_state_version?.default;
	const stateVersion =
		typeof defaultVersion === 'string' && versions.includes(defaultVersion)
			? defaultVersion
			: versions[versions.length - 1];
	const settings: Record<string, unknown> = {
		device_type: deviceType,
		image_format: formats[0] ?? 'sd-card-image',
		device_name: identifier
	};
	if (stateVersion) settings.nix_state_version = stateVersion;
	return {
		displayName: name.trim(),
		identifier,
		modules: [{ type: DEVICE_MODULE, settings }],
		tags
	};
}

export function newTag(name: string, priority: number): Tag {
	return {
		displayName: name.trim(),
		identifier: identifierFrom(name.trim(), 'tag'),
		priority,
		modules: []
	};
}

/** The device type a config's Device module sets, if any. */
export function deviceTypeOf(config: Config): string | undefined {
	const value = config.modules.find((module) => module.type === DEVICE_MODULE)?.settings.device_type;
	return typeof value === 'string' ? value : undefined;
}
