// Devices (upstream's "deployment infos") and hardware: the API's shapes, the tabs of the
// Devices page, and searching, filtering and sorting the lists.

import { keyFingerprint } from './devicesFingerprint';
import type { Config } from './types';

/** A network interface as the agent reports it. */
export type NetworkInterface = {
	interface: string;
	ipv4_addresses: string[];
	ipv6_addresses: string[];
	mac_address: string | null;
};

/** A hardware identity (`pi-serial-number`, `dmi-board-serial`, `dmi-product-uuid`, …). */
export type HardwareDevice = {
	id: string;
	hardware_ids: Record<string, string>;
	deployment_info_id: string | null;
	last_seen: string | null;
};

/** A device: one record per SSH host key (`GET /api/all_deployment_infos`). */
export type Device = {
	id: string;
	ssh_public_key: string;
	deployed_config_id: string | null;
	deployed_config_commit: string | null;
	pending_config_id: string | null;
	reachable_deployed_host: string | null;
	first_seen: string | null;
	last_seen: string | null;
	archived: boolean;
	hardware_devices: HardwareDevice[];
	network_interfaces: NetworkInterface[] | null;
	location: string | null;
	name: string | null;
	notes: string | null;
	/** Whether its agent is connected right now. */
	connected: boolean;
	ram_bytes: number | null;
};

/** What `PATCH /api/deployment_info/{id}` changes (absent fields stay, null clears). */
export type DeviceUpdate = Partial<
	Pick<Device, 'name' | 'location' | 'notes' | 'archived' | 'deployed_config_id'>
>;

/** One connection of a device's agent (`…/connection_history`); open while `disconnected_at` is null. */
export type Connection = { id: string; connected_at: string; disconnected_at: string | null };

/** An agent token (`GET /api/agent_tokens`); its value is only in the answer that created it. */
export type AgentToken = {
	id: string;
	name: string;
	original_config_id: string | null;
	original_config_commit: string | null;
	created_at: string;
	revoked_at: string | null;
	last_used_at: string | null;
};

export type CreatedAgentToken = AgentToken & { token: string };

/**
 * The tabs of the Devices page:
 * - `active`: devices (deployment infos) not archived, with or without a known config;
 * - `without-deployment`: hardware seen by its hardware ids but linked to no device (e.g. its
 *   device was deleted), see `unlinkedHardware`;
 * - `archived`: archived devices.
 */
export const DEVICE_TABS = ['active', 'without-deployment', 'archived'] as const;
export type DeviceTab = (typeof DEVICE_TABS)[number];

/** The tab listing the device. */
export function deviceTab(device: Pick<Device, 'archived'>): Exclude<DeviceTab, 'without-deployment'> {
	return device.archived ? 'archived' : 'active';
}

/** The hardware linked to no device, in the given order. */
export function unlinkedHardware(hardware: HardwareDevice[]): HardwareDevice[] {
	return hardware.filter((row) => row.deployment_info_id === null);
}

/** How many rows each tab holds: devices for Active and Archived, unlinked hardware for the other. */
export function tabCounts(devices: Device[], hardware: HardwareDevice[]): Record<DeviceTab, number> {
	const archived = devices.filter((device) => device.archived).length;
	return {
		active: devices.length - archived,
		'without-deployment': unlinkedHardware(hardware).length,
		archived
	};
}

/** The name shown for a device: its own, else its id. */
export function deviceName(device: Pick<Device, 'id' | 'name'>): string {
	return device.name?.trim() || device.id;
}

/** Every hardware id of the hardware rows as [kind, value], e.g. ["pi-serial-number", "10000000abcd"]. */
export function hardwareIds(hardware: Pick<HardwareDevice, 'hardware_ids'>[]): [string, string][] {
	return hardware.flatMap((row) => Object.entries(row.hardware_ids));
}

/** The device's IPv4 then IPv6 addresses over all interfaces. */
export function addresses(device: Pick<Device, 'network_interfaces'>): string[] {
	const interfaces = device.network_interfaces ?? [];
	return [
		...interfaces.flatMap((nic) => nic.ipv4_addresses ?? []),
		...interfaces.flatMap((nic) => nic.ipv6_addresses ?? [])
	];
}

/** Online/offline: which devices a status filter keeps. */
export type DeviceStatus = 'online' | 'offline';

export type DeviceFilter = {
	/** Words that must all occur (case-insensitive) in what the list shows and searches. */
	query: string;
	status: DeviceStatus | null;
	/** A config identifier. */
	config: string | null;
	/** A tag identifier: devices whose config carries it. */
	tag: string | null;
};

/** The text a search looks through: names, config, key fingerprint, addresses, hardware ids. */
export function searchText(device: Device, configName: string | null): string {
	const parts = [
		device.name,
		device.id,
		device.deployed_config_id,
		configName,
		device.deployed_config_commit,
		keyFingerprint(device.ssh_public_key),
		device.location,
		device.notes,
		device.reachable_deployed_host,
		...addresses(device),
		...(device.network_interfaces ?? []).flatMap((nic) => [nic.interface, nic.mac_address]),
		...hardwareIds(device.hardware_devices).map(([, value]) => value)
	];
	return parts.filter(Boolean).join(' ').toLowerCase();
}

/** The devices `filter` keeps, in their order. `configs` maps identifiers to the project's configs. */
export function filterDevices(
	devices: Device[],
	filter: DeviceFilter,
	configs: ReadonlyMap<string, Config>
): Device[] {
	const words = filter.query.toLowerCase().split(/\s+/).filter(Boolean);
	return devices.filter((device) => {
		if (filter.status === 'online' && !device.connected) return false;
		if (filter.status === 'offline' && device.connected) return false;
		if (filter.config !== null && device.deployed_config_id !== filter.config) return false;
		const config = device.deployed_config_id ? configs.get(device.deployed_config_id) : undefined;
		if (filter.tag !== null && !config?.tags.includes(filter.tag)) return false;
		if (words.length === 0) return true;
		const text = searchText(device, config?.displayName ?? null);
		return words.every((word) => text.includes(word));
	});
}

/** The hardware rows whose hardware id values contain every word of `query` (case-insensitive). */
export function filterHardware(hardware: HardwareDevice[], query: string): HardwareDevice[] {
	const words = query.toLowerCase().split(/\s+/).filter(Boolean);
	if (words.length === 0) return hardware;
	return hardware.filter((row) => {
		const text = Object.values(row.hardware_ids).join(' ').toLowerCase();
		return words.every((word) => text.includes(word));
	});
}

/** How many of `devices` are online and offline. */
export function statusCounts(devices: Device[]): Record<DeviceStatus, number> {
	const online = devices.filter((device) => device.connected).length;
	return { online, offline: devices.length - online };
}

export const DEVICE_SORTS = ['name', 'status', 'last-seen', 'first-seen', 'config'] as const;
export type DeviceSort = (typeof DEVICE_SORTS)[number];

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
const time = (value: string | null) => (value ? Date.parse(value) || 0 : 0);

/**
 * A sorted copy: by name; online first; most recently seen first; newest first; or by config
 * name. Ties fall back to the name, then the id, so the order is stable across reloads.
 */
export function sortDevices(
	devices: Device[],
	sort: DeviceSort,
	configName: (identifier: string) => string
): Device[] {
	const byName = (a: Device, b: Device) =>
		collator.compare(deviceName(a), deviceName(b)) || a.id.localeCompare(b.id);
	const primary: Record<DeviceSort, (a: Device, b: Device) => number> = {
		name: () => 0,
		status: (a, b) => Number(b.connected) - Number(a.connected),
		'last-seen': (a, b) => time(b.last_seen) - time(a.last_seen),
		'first-seen': (a, b) => time(b.first_seen) - time(a.first_seen),
		config: (a, b) =>
			collator.compare(
				a.deployed_config_id ? configName(a.deployed_config_id) : '\uffff',
				b.deployed_config_id ? configName(b.deployed_config_id) : '\uffff'
			)
	};
	return [...devices].sort((a, b) => primary[sort](a, b) || byName(a, b));
}

/** RAM in binary units, e.g. "3.8 GiB", "512 MiB". */
export function formatRam(bytes: number, locale: string): string {
	const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
	let value = bytes;
	let unit = 0;
	while (value >= 1024 && unit < units.length - 1) {
		value /= 1024;
		unit++;
	}
	const digits = unit >= 3 ? 1 : 0;
	return `${value.toLocaleString(locale, { maximumFractionDigits: digits })} ${units[unit]}`;
}

/** The first 8 characters of a commit, as the lists show it. */
export const shortCommit = (commit: string | null) => (commit ? commit.slice(0, 8) : '');
