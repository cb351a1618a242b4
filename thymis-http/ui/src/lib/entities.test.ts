import { describe, expect, it } from 'vitest';
import { DEVICE_MODULE, nameProblem, newConfig, newTag } from './entities';
import { identifierFrom } from './project.svelte';
import type { ModuleInfo, State } from './types';

const device: ModuleInfo = {
	type: DEVICE_MODULE,
	displayName: 'Device',
	description: null,
	category: null,
	icon: null,
	iconDark: null,
	settings: {
		device_type: {
			displayName: 'Device Type',
			type: {
				type: 'select-one',
				'select-one': [
					['Generic x86-64', 'generic-x86_64'],
					['Raspberry Pi 4', 'raspberry-pi-4']
				]
			}
		},
		image_format: {
			displayName: 'Image Format',
			type: {
				type: 'select-one',
				'select-one': [
					['SD', 'sd-card-image'],
					['VM', 'nixos-vm']
				],
				extra_data: {
					restrict_values_on_other_key: {
						device_type: { 'generic-x86_64': ['nixos-vm'], 'raspberry-pi-4': ['sd-card-image'] }
					}
				}
			}
		},
		nix_state_version: {
			displayName: 'Version',
			type: {
				type: 'select-one',
				'select-one': [
					['25.11', '25.11'],
					['26.05', '26.05']
				]
			},
			default: '26.05'
		}
	}
};

const state: State = {
	version: '0.0.9',
	repositories: {},
	tags: [newTag('Office', 90)],
	configs: [newConfig('Kiosk 1', 'raspberry-pi-4', [], device)]
};

describe('entities', () => {
	it('derive identifiers as upstream does', () => {
		expect(identifierFrom('Kiosk 1')).toBe('kiosk-1');
		expect(identifierFrom('  Hall / Entrance!! ')).toBe('hall-entrance');
		expect(identifierFrom('1st floor')).toBe('config-1st-floor');
		expect(identifierFrom('#1', 'tag')).toBe('tag-1');
	});

	it('create a config with the device module and an allowed image format', () => {
		const config = newConfig('VM test', 'generic-x86_64', ['office'], device);
		expect(config).toEqual({
			displayName: 'VM test',
			identifier: 'vm-test',
			tags: ['office'],
			modules: [
				{
					type: DEVICE_MODULE,
					settings: {
						device_type: 'generic-x86_64',
						image_format: 'nixos-vm',
						device_name: 'vm-test',
						nix_state_version: '26.05'
					}
				}
			]
		});
	});

	it('refuse empty and duplicate names', () => {
		expect(nameProblem(state, 'config', '  ')?.key).toBe('configs.name-required');
		expect(nameProblem(state, 'config', 'Kiosk 1')?.key).toBe('configs.name-taken');
		expect(nameProblem(state, 'config', 'kiosk 1')).toEqual({
			key: 'configs.id-taken',
			params: { id: 'kiosk-1' }
		});
		expect(nameProblem(state, 'config', 'Kiosk 1', 'kiosk-1')).toBeNull();
		expect(nameProblem(state, 'tag', 'Kiosk 1')).toBeNull();
	});
});
