import { describe, expect, it } from 'vitest';
import {
	addresses,
	deviceName,
	deviceTab,
	filterDevices,
	filterHardware,
	formatRam,
	hardwareIds,
	searchText,
	shortCommit,
	sortDevices,
	statusCounts,
	tabCounts,
	unlinkedHardware,
	type Device,
	type DeviceFilter,
	type HardwareDevice
} from './devices';
import type { Config } from './types';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIITJXvYUsVIxH3fAm2Zp3WxRc3Vkxe0mXcqGxA31M30q';

function device(id: string, fields: Partial<Device> = {}): Device {
	return {
		id,
		ssh_public_key: KEY,
		deployed_config_id: null,
		deployed_config_commit: null,
		pending_config_id: null,
		reachable_deployed_host: null,
		first_seen: '2024-01-01T00:00:00Z',
		last_seen: '2024-01-01T00:00:00Z',
		archived: false,
		hardware_devices: [],
		network_interfaces: null,
		location: null,
		name: null,
		notes: null,
		connected: false,
		ram_bytes: null,
		...fields
	};
}

const config = (identifier: string, displayName: string, tags: string[] = []): Config => ({
	identifier,
	displayName,
	tags,
	modules: []
});

const configs = new Map<string, Config>([
	['lobby', config('lobby', 'Lobby Kiosk', ['screens'])],
	['gate', config('gate', 'Gate Controller', ['doors'])]
]);
const configIds = new Set(configs.keys());

const noFilter: DeviceFilter = { query: '', status: null, config: null, tag: null };

function hardware(id: string, ids: Record<string, string>, deviceId: string | null = null): HardwareDevice {
	return { id, hardware_ids: ids, deployment_info_id: deviceId, last_seen: '2024-01-01T00:00:00Z' };
}

describe('tabs', () => {
	it('lists archived devices in Archived and every other device in Active, whatever its config', () => {
		expect(deviceTab(device('a', { archived: true, deployed_config_id: 'lobby' }))).toBe('archived');
		expect(deviceTab(device('a', { archived: true }))).toBe('archived');
		expect(deviceTab(device('a', { deployed_config_id: 'lobby' }))).toBe('active');
		expect(deviceTab(device('a', { deployed_config_id: 'deleted' }))).toBe('active');
		expect(deviceTab(device('a'))).toBe('active');
	});

	it('keeps only the hardware linked to no device, in its order', () => {
		const list = [
			hardware('h1', { 'pi-serial-number': '1' }),
			hardware('h2', { 'pi-serial-number': '2' }, 'a'),
			hardware('h3', { 'dmi-product-uuid': '3' })
		];
		expect(unlinkedHardware(list).map((row) => row.id)).toEqual(['h1', 'h3']);
		expect(unlinkedHardware([])).toEqual([]);
	});

	it('counts devices for Active and Archived and unlinked hardware for Without deployment', () => {
		const list = [
			device('a', { deployed_config_id: 'lobby' }),
			device('b', { deployed_config_id: 'gone' }),
			device('c'),
			device('d', { archived: true })
		];
		const rows = [hardware('h1', { 'pi-serial-number': '1' }, 'a'), hardware('h2', { 'pi-serial-number': '2' })];
		expect(tabCounts(list, rows)).toEqual({ active: 3, 'without-deployment': 1, archived: 1 });
		expect(tabCounts([], [])).toEqual({ active: 0, 'without-deployment': 0, archived: 0 });
	});
});

describe('filterHardware', () => {
	const pi = hardware('h1', { 'pi-serial-number': '10000000CAFE' });
	const pc = hardware('h2', { 'dmi-board-serial': 'BOARD-7', 'dmi-product-uuid': '4c4c4544-0031' });
	const search = (query: string) => filterHardware([pi, pc], query).map((row) => row.id);

	it('finds hardware by any of its id values, ignoring case', () => {
		expect(search('cafe')).toEqual(['h1']);
		expect(search('board-7')).toEqual(['h2']);
		expect(search('4C4C')).toEqual(['h2']);
	});

	it('needs every word to match, and keeps everything for an empty search', () => {
		expect(search('board 0031')).toEqual(['h2']);
		expect(search('board cafe')).toEqual([]);
		expect(search('  ')).toEqual(['h1', 'h2']);
	});

	it('does not search the kinds of ids or the row ids', () => {
		expect(search('serial')).toEqual([]);
		expect(search('h1')).toEqual([]);
	});
});

describe('searching and filtering', () => {
	const kiosk = device('11111111-aaaa', {
		name: 'Kiosk 7',
		deployed_config_id: 'lobby',
		connected: true,
		location: 'Main hall',
		network_interfaces: [
			{ interface: 'eth0', ipv4_addresses: ['10.0.0.7'], ipv6_addresses: ['fe80::7'], mac_address: 'aa:bb:cc:dd:ee:07' }
		],
		hardware_devices: [
			{ id: 'h', hardware_ids: { 'pi-serial-number': '10000000cafe' }, deployment_info_id: '11111111-aaaa', last_seen: null }
		]
	});
	const gate = device('22222222-bbbb', { name: 'Gate', deployed_config_id: 'gate', ssh_public_key: 'ssh-ed25519 AAAA' });
	const list = [kiosk, gate];
	const search = (query: string) => filterDevices(list, { ...noFilter, query }, configs).map((d) => d.id);

	it('finds devices by name, id, config id and name, location', () => {
		expect(search('kiosk')).toEqual([kiosk.id]);
		expect(search('2222')).toEqual([gate.id]);
		expect(search('gate')).toEqual([gate.id]);
		expect(search('LOBBY')).toEqual([kiosk.id]);
		expect(search('hall')).toEqual([kiosk.id]);
	});

	it('finds devices by key fingerprint, addresses, MAC, interface and hardware id', () => {
		expect(search('P0MRuxLZ')).toEqual([kiosk.id]);
		expect(search('10.0.0.7')).toEqual([kiosk.id]);
		expect(search('fe80::7')).toEqual([kiosk.id]);
		expect(search('ee:07')).toEqual([kiosk.id]);
		expect(search('cafe')).toEqual([kiosk.id]);
	});

	it('needs every word to match', () => {
		expect(search('kiosk 10.0.0.7')).toEqual([kiosk.id]);
		expect(search('kiosk gate')).toEqual([]);
		expect(search('   ')).toEqual([kiosk.id, gate.id]);
	});

	it('filters by online state, config and tag', () => {
		const ids = (filter: Partial<DeviceFilter>) =>
			filterDevices(list, { ...noFilter, ...filter }, configs).map((d) => d.id);
		expect(ids({ status: 'online' })).toEqual([kiosk.id]);
		expect(ids({ status: 'offline' })).toEqual([gate.id]);
		expect(ids({ config: 'gate' })).toEqual([gate.id]);
		expect(ids({ tag: 'screens' })).toEqual([kiosk.id]);
		expect(ids({ tag: 'screens', status: 'offline' })).toEqual([]);
		expect(ids({ tag: 'nothing' })).toEqual([]);
	});

	it('counts online and offline devices', () => {
		expect(statusCounts(list)).toEqual({ online: 1, offline: 1 });
		expect(statusCounts([])).toEqual({ online: 0, offline: 0 });
	});

	it('builds the search text from what the device reports', () => {
		const text = searchText(kiosk, 'Lobby Kiosk');
		expect(text).toContain('sha256:p0mruxlz');
		expect(text).toContain('10000000cafe');
		expect(text).toBe(text.toLowerCase());
	});
});

describe('sortDevices', () => {
	const list = [
		device('c', { name: 'Kiosk 10', last_seen: '2024-01-03T00:00:00Z', first_seen: '2024-01-01T00:00:00Z', deployed_config_id: 'lobby' }),
		device('a', { name: 'kiosk 9', last_seen: '2024-01-01T00:00:00Z', first_seen: '2024-01-03T00:00:00Z', connected: true, deployed_config_id: 'gate' }),
		device('b', { name: null, last_seen: null, first_seen: '2024-01-02T00:00:00Z' })
	];
	const names = (sorted: Device[]) => sorted.map(deviceName);
	const configName = (id: string) => configs.get(id)?.displayName ?? id;

	it('sorts names naturally and case-insensitively, ids for unnamed devices', () => {
		expect(names(sortDevices(list, 'name', configName))).toEqual(['b', 'kiosk 9', 'Kiosk 10']);
	});

	it('sorts online first, most recently seen first, newest first, by config name', () => {
		expect(names(sortDevices(list, 'status', configName))).toEqual(['kiosk 9', 'b', 'Kiosk 10']);
		expect(names(sortDevices(list, 'last-seen', configName))).toEqual(['Kiosk 10', 'kiosk 9', 'b']);
		expect(names(sortDevices(list, 'first-seen', configName))).toEqual(['kiosk 9', 'b', 'Kiosk 10']);
		// Gate Controller, Lobby Kiosk, then devices without a config.
		expect(names(sortDevices(list, 'config', configName))).toEqual(['kiosk 9', 'Kiosk 10', 'b']);
	});

	it('leaves the given list alone', () => {
		const before = list.map((d) => d.id);
		sortDevices(list, 'last-seen', configName);
		expect(list.map((d) => d.id)).toEqual(before);
	});
});

describe('device facts', () => {
	it('names a device by its name, else its id', () => {
		expect(deviceName({ id: 'x', name: 'Kiosk' })).toBe('Kiosk');
		expect(deviceName({ id: 'x', name: '  ' })).toBe('x');
		expect(deviceName({ id: 'x', name: null })).toBe('x');
	});

	it('lists IPv4 before IPv6 over all interfaces, and every hardware id', () => {
		const d = device('x', {
			network_interfaces: [
				{ interface: 'eth0', ipv4_addresses: ['10.0.0.1'], ipv6_addresses: ['fd00::1'], mac_address: null },
				{ interface: 'wlan0', ipv4_addresses: ['192.168.1.5'], ipv6_addresses: [], mac_address: null }
			],
			hardware_devices: [
				{ id: 'h', hardware_ids: { 'dmi-board-serial': 'B1', 'dmi-product-uuid': 'U1' }, deployment_info_id: 'x', last_seen: null }
			]
		});
		expect(addresses(d)).toEqual(['10.0.0.1', '192.168.1.5', 'fd00::1']);
		expect(addresses(device('y'))).toEqual([]);
		expect(hardwareIds(d.hardware_devices)).toEqual([
			['dmi-board-serial', 'B1'],
			['dmi-product-uuid', 'U1']
		]);
	});

	it('formats RAM in binary units and commits to 8 characters', () => {
		expect(formatRam(4 * 1024 ** 3, 'en')).toBe('4 GiB');
		expect(formatRam(4_000_000_000, 'en')).toBe('3.7 GiB');
		expect(formatRam(512 * 1024 ** 2, 'en')).toBe('512 MiB');
		expect(formatRam(8_123_456_789, 'de')).toBe('7,6 GiB');
		expect(shortCommit('0123456789abcdef')).toBe('01234567');
		expect(shortCommit(null)).toBe('');
	});
});
