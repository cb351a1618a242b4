import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Setting, SettingType } from '../../lib/types';
import { artifactsCatalog, secretsCatalog } from './catalogs.svelte';
import SettingControl from './SettingControl.svelte';

// The controls as the module editor renders them, one per setting type.

const setting = (type: SettingType, extra: Partial<Setting> = {}): Setting => ({
	displayName: 'Field',
	type,
	description: null,
	default: null,
	example: null,
	order: 0,
	...extra
});

function show(
	type: SettingType,
	value: unknown,
	{ setting: fields = {}, ...extra }: { setting?: Partial<Setting>; [prop: string]: unknown } = {}
) {
	const onchange = vi.fn();
	render(SettingControl, {
		id: 'field',
		label: 'Field',
		setting: setting(type, fields),
		value,
		path: '$.configs[0].modules[0].settings.field',
		onchange,
		...extra
	});
	return onchange;
}

/** Answers API requests by path. */
function serve(answers: Record<string, unknown>) {
	vi.stubGlobal(
		'fetch',
		vi.fn(async (url: string) => {
			const path = new URL(url, 'http://localhost').pathname;
			return path in answers
				? new Response(JSON.stringify(answers[path]), { status: 200 })
				: new Response(JSON.stringify({ detail: 'not found' }), { status: 404 });
		})
	);
}

beforeEach(() => {
	secretsCatalog.items = null;
	artifactsCatalog.items = null;
});

afterEach(() => {
	cleanup();
	vi.unstubAllGlobals();
});

describe('SettingControl', () => {
	it('string, path and package: a text input with the example as placeholder', async () => {
		for (const type of ['string', 'path', 'package'] as const) {
			const onchange = show(type, 'abc', { setting: { example: 'e.g. this' } });
			const input = screen.getByRole('textbox', { name: 'Field' }) as HTMLInputElement;
			expect(input.value).toBe('abc');
			expect(input.placeholder).toBe('e.g. this');
			await fireEvent.input(input, { target: { value: 'abcd' } });
			expect(onchange).toHaveBeenCalledWith('abcd', true);
			cleanup();
		}
	});

	it('int: stores whole numbers, keeps other text unsaved', async () => {
		const onchange = show('int', 5);
		const input = screen.getByRole('spinbutton', { name: 'Field' }) as HTMLInputElement;
		expect(input.value).toBe('5');
		await fireEvent.input(input, { target: { value: '12' } });
		expect(onchange).toHaveBeenLastCalledWith(12, true);
		await fireEvent.input(input, { target: { value: '' } });
		expect(onchange).toHaveBeenCalledTimes(1);
		expect(input.getAttribute('aria-invalid')).toBe('true');
	});

	it('bool: a switch saved at once', async () => {
		const onchange = show('bool', false);
		const toggle = screen.getByRole('switch', { name: 'Field' });
		await fireEvent.click(toggle);
		expect(onchange).toHaveBeenCalledWith(true);
	});

	it('textarea: multi-line text', async () => {
		const onchange = show('textarea', 'a\nb');
		const area = screen.getByRole('textbox', { name: 'Field' }) as HTMLTextAreaElement;
		expect(area.tagName).toBe('TEXTAREA');
		await fireEvent.input(area, { target: { value: 'a\nb\nc' } });
		expect(onchange).toHaveBeenCalledWith('a\nb\nc', true);
	});

	it('select-one: the options, read-only when not editable here', async () => {
		const type: SettingType = {
			type: 'select-one',
			'select-one': [
				['Normal', 'normal'],
				['Left', 'left']
			],
			extra_data: null
		};
		const onchange = show(type, 'left');
		const select = screen.getByRole('combobox', { name: 'Field' }) as HTMLSelectElement;
		expect([...select.options].map((o) => o.textContent)).toEqual(['Normal', 'Left']);
		expect(select.value).toBe('left');
		await fireEvent.change(select, { target: { value: 'normal' } });
		expect(onchange).toHaveBeenCalledWith('normal');
		cleanup();
		show(type, 'left', { readonly: true });
		expect((screen.getByRole('combobox') as HTMLSelectElement).disabled).toBe(true);
	});

	it('select-one restricted by another setting: follows it', async () => {
		const type: SettingType = {
			type: 'select-one',
			'select-one': [
				['SD', 'sd-card-image'],
				['USB', 'usb-stick-installer'],
				['VM', 'nixos-vm']
			],
			extra_data: {
				restrict_values_on_other_key: {
					device_type: { 'generic-x86_64': ['nixos-vm', 'usb-stick-installer'] }
				}
			}
		};
		const onchange = show(type, 'sd-card-image', { siblings: { device_type: 'generic-x86_64' } });
		const select = screen.getByRole('combobox', { name: 'Field' }) as HTMLSelectElement;
		// The stale value stays visible until the replacement is saved.
		expect([...select.options].map((o) => o.value)).toEqual([
			'sd-card-image',
			'nixos-vm',
			'usb-stick-installer'
		]);
		await waitFor(() => expect(onchange).toHaveBeenCalledWith('nixos-vm'));
	});

	it('list: nested sub-forms with add and remove', async () => {
		const type: SettingType = {
			type: 'list',
			'list-of': {
				container_name: setting('string', { displayName: 'Container Name', order: 10 }),
				environment: setting(
					{
						type: 'list',
						'list-of': { key: setting('string', { displayName: 'Key' }) },
						'element-name': 'Environment Variable'
					},
					{ displayName: 'Environment', order: 20 }
				)
			},
			'element-name': 'Container'
		};
		const onchange = show(type, [{ container_name: 'web', environment: [{ key: 'A' }] }]);
		expect((screen.getByRole('textbox', { name: 'Container Name' }) as HTMLInputElement).value).toBe('web');
		expect((screen.getByRole('textbox', { name: 'Key 1' }) as HTMLInputElement).value).toBe('A');

		await fireEvent.click(screen.getByRole('button', { name: 'Add Environment Variable' }));
		expect(onchange).toHaveBeenLastCalledWith(
			[{ container_name: 'web', environment: [{ key: 'A' }, { key: '' }] }],
			false
		);
		await fireEvent.input(screen.getByRole('textbox', { name: 'Key 1' }), { target: { value: 'B' } });
		expect(onchange).toHaveBeenLastCalledWith([{ container_name: 'web', environment: [{ key: 'B' }] }], true);
		await fireEvent.click(screen.getByRole('button', { name: 'Add Container' }));
		expect(onchange).toHaveBeenLastCalledWith([
			{ container_name: 'web', environment: [{ key: 'A' }] },
			{ container_name: '', environment: [] }
		]);
		await fireEvent.click(screen.getByRole('button', { name: 'Remove Container 1' }));
		expect(onchange).toHaveBeenLastCalledWith([]);
	});

	it('secret: only secrets of the allowed types, storing the id', async () => {
		serve({
			'/api/secrets': {
				a: { id: 'a', display_name: 'Root password', type: 'single_line' },
				b: { id: 'b', display_name: 'Env file', type: 'env_list' }
			}
		});
		const onchange = show(
			{
				type: 'secret',
				'allowed-types': ['single_line'],
				'default-processing-type': 'mkpasswd-yescrypt',
				'default-save-to-image': true
			},
			''
		);
		const select = screen.getByRole('combobox', { name: 'Field' }) as HTMLSelectElement;
		await waitFor(() => expect(select.options).toHaveLength(2));
		expect(select.options[1].textContent).toContain('Root password');
		await fireEvent.change(select, { target: { value: 'a' } });
		expect(onchange).toHaveBeenCalledWith('a');
		expect(screen.getByRole('button', { name: 'Create secret' })).toBeTruthy();
	});

	it('artifact: the uploaded file names', async () => {
		serve({ '/api/artifacts': [{ name: 'logo.png' }, { name: 'app.conf' }] });
		const onchange = show({ type: 'artifact' }, 'gone.txt');
		const select = screen.getByRole('combobox', { name: 'Field' }) as HTMLSelectElement;
		await waitFor(() => expect(select.options).toHaveLength(4));
		expect([...select.options].map((o) => o.value)).toEqual(['', 'gone.txt', 'logo.png', 'app.conf']);
		await fireEvent.change(select, { target: { value: 'logo.png' } });
		expect(onchange).toHaveBeenCalledWith('logo.png');
	});

	it('textarea-code: a code editor showing the text', async () => {
		show({ type: 'textarea-code', language: 'nix' }, 'services.openssh.enable = true;');
		// CodeMirror loads lazily; its editable element takes the id and label.
		const editor = await screen.findByRole('textbox', { name: 'Field' }, { timeout: 3000 });
		expect(editor.textContent).toContain('services.openssh.enable = true;');
		expect(editor.id).toBe('field');
	});

	it('systemd-timer: calendar expressions, templates and timer types', async () => {
		serve({ '/api/config/check-systemd-timer': ['Mon 2026-11-23 09:00:00 UTC'] });
		const type: SettingType = { type: 'systemd-timer', timer_type: 'realtime' };
		const onchange = show(type, { timer_type: 'realtime', on_calendar: ['daily'], persistent: null });
		expect((screen.getByRole('textbox', { name: 'Calendar expression 1' }) as HTMLInputElement).value).toBe(
			'daily'
		);
		await fireEvent.change(screen.getByRole('combobox', { name: 'Add from template…' }), {
			target: { value: '*:0/15' }
		});
		expect(onchange).toHaveBeenLastCalledWith(
			expect.objectContaining({ timer_type: 'realtime', on_calendar: ['daily', '*:0/15'] }),
			false
		);
		await fireEvent.click(screen.getByRole('checkbox', { name: /Run missed timers/ }));
		expect(onchange).toHaveBeenLastCalledWith(expect.objectContaining({ persistent: true }), false);
		// The live check shows the next elapse times.
		await screen.findByText('Mon 2026-11-23 09:00:00 UTC', {}, { timeout: 2000 });

		await fireEvent.change(screen.getByRole('combobox', { name: 'Timer type' }), {
			target: { value: 'monotonic' }
		});
		expect(onchange).toHaveBeenLastCalledWith(expect.objectContaining({ timer_type: 'monotonic' }), false);
		cleanup();
		const monotonic = show(type, { timer_type: 'monotonic', on_boot_sec: '5min' });
		const boot = screen.getByRole('textbox', { name: 'Time after boot' }) as HTMLInputElement;
		expect(boot.value).toBe('5min');
		await fireEvent.input(boot, { target: { value: '' } });
		expect(monotonic).toHaveBeenLastCalledWith(expect.objectContaining({ on_boot_sec: null }), true);
	});
});
