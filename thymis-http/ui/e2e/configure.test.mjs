// The module editor against the real controller: adding modules, setting a value of every
// setting type, tag inheritance, restricted values, a Custom Nix syntax error with its line,
// and the live timer check.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
	apiRequest,
	login,
	newPage,
	withScreenshot,
	useControllerAndBrowser,
} from './harness.mjs';

const running = useControllerAndBrowser();


const DEVICE = 'thymis_controller.modules.thymis.ThymisDevice';
const LOCALIZATION = 'thymis_controller.modules.localization.LocalizationModule';

/** A config with the tag "Site", whose Localization module sets the timezone. */
async function seed(page) {
	const state = await (await apiRequest(page, 'GET', '/api/state')).json();
	state.tags = [
		{
			displayName: 'Site',
			identifier: 'site',
			priority: 90,
			modules: [{ type: LOCALIZATION, settings: { timezone: 'America/New_York' } }]
		}
	];
	state.configs = [
		{
			displayName: 'Kiosk',
			identifier: 'kiosk',
			tags: ['site'],
			modules: [
				{
					type: DEVICE,
					settings: { device_type: 'raspberry-pi-4', image_format: 'sd-card-image' }
				}
			]
		}
	];
	assert.equal((await apiRequest(page, 'PATCH', '/api/state', state)).status(), 200);
	const secret = await apiRequest(page, 'POST', '/api/secrets', {
		display_name: 'Root password',
		type: 'single_line',
		value_str: 'hunter2',
		processing_type: 'mkpasswd-yescrypt'
	});
	assert.equal(secret.status(), 200);
	const upload = await page.request.post('/api/artifacts/', {
		headers: { origin: running.controller.url },
		multipart: { files: { name: 'motd.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') } }
	});
	assert.equal(upload.status(), 200, await upload.text());
	return (await secret.json()).id;
}

async function addModule(page, search, name) {
	await page.getByRole('button', { name: 'Add module' }).click();
	const dialog = page.getByRole('dialog');
	await dialog.getByLabel('Search modules').fill(search);
	await dialog.getByRole('button', { name: new RegExp(`^${name}`) }).first().click();
	await dialog.waitFor({ state: 'hidden' });
}

/** Waits until the saved state satisfies `check` (edits are saved after a short pause). */
async function waitForState(page, check) {
	for (let i = 0; i < 50; i++) {
		const state = await (await apiRequest(page, 'GET', '/api/state')).json();
		if (check(state)) return state;
		await page.waitForTimeout(200);
	}
	throw new Error('the state never got there');
}

const moduleOf = (state, type) => state.configs[0].modules.find((m) => m.type === type)?.settings;

test('every setting type can be set, and tags show through', async (t) => {
	const page = await newPage(running.browser, running.controller);
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/overview');
		const secretId = await seed(page);
		await page.goto('/configs/kiosk/configure');

		// Restricted values: a generic x86-64 device cannot take an SD-card image.
		await page.getByLabel('Device Type', { exact: true }).selectOption({ label: 'Generic x86-64' });
		let state = await waitForState(
			page,
			(s) =>
				moduleOf(s, DEVICE).device_type === 'generic-x86_64' &&
				moduleOf(s, DEVICE).image_format !== 'sd-card-image'
		);

		// Strings, numbers, booleans and selects (Kiosk).
		await addModule(page, 'kiosk', 'Kiosk');
		await page.getByRole('button', { name: 'Set value of URL' }).click();
		await page.getByLabel('URL', { exact: true }).fill('https://status.example.com');
		await page.getByRole('button', { name: 'Set value of Volume' }).click();
		await page.getByLabel('Volume', { exact: true }).fill('35');
		await page.getByRole('button', { name: 'Set value of Enable VNC server' }).click();
		await page.getByLabel('Enable VNC server', { exact: true }).check();
		await page.getByRole('button', { name: 'Set value of Display rotation' }).click();
		await page.getByLabel('Display rotation', { exact: true }).selectOption('left');
		state = await waitForState(page, (s) => {
			const kiosk = moduleOf(s, 'thymis_controller.modules.kiosk.Kiosk');
			return (
				kiosk?.volume === 35 &&
				kiosk?.enable_vnc === true &&
				kiosk?.kiosk_url === 'https://status.example.com' &&
				kiosk?.xrandr_rotation === 'left'
			);
		});

		// Inherited from the tag until the config sets its own.
		await addModule(page, 'local', 'Localization');
		await page.getByText('Not set here: the value of tag “Site” applies.').first().waitFor();
		await page.getByRole('button', { name: 'Set value of Timezone' }).click();
		await page.getByLabel('Timezone', { exact: true }).fill('UTC');
		const definitions = page.getByRole('list', { name: 'Definitions of this setting' }).first();
		await definitions.getByText('America/New_York').waitFor();
		await definitions.getByText('applies').waitFor();
		await waitForState(page, (s) => moduleOf(s, LOCALIZATION)?.timezone === 'UTC');

		// Textareas and lists of selects and strings (Networking).
		await addModule(page, 'network', 'Networking');
		await page.getByRole('button', { name: 'Set value of WiFi Auth (wpa_supplicant config)' }).click();
		await page.getByLabel('WiFi Auth (wpa_supplicant config)', { exact: true }).fill('ctrl_interface=/run\nupdate_config=1');
		await page.getByRole('button', { name: 'Set value of Nameservers' }).click();
		await page.getByRole('button', { name: 'Add Nameserver' }).click();
		await page.getByRole('group', { name: 'Nameserver 1' }).getByRole('textbox').fill('9.9.9.9');
		state = await waitForState(page, (s) => {
			const net = moduleOf(s, 'thymis_controller.modules.networking.NetworkingModule');
			return net?.nameservers?.[0]?.nameserver === '9.9.9.9' && net?.wifi_auth?.includes('\n');
		});

		// A secret and an artifact picked by name (Security & Access, Files).
		await addModule(page, 'security', 'Security & Access');
		await page.getByRole('button', { name: 'Set value of Root Password' }).click();
		await page.getByLabel('Root Password', { exact: true }).selectOption(secretId);
		await addModule(page, 'files', 'Files');
		await page.getByRole('button', { name: 'Set value of Artifacts' }).click();
		await page.getByRole('button', { name: 'Add Artifact' }).click();
		const entry = page.getByRole('group', { name: 'Artifact 1' });
		await entry.getByRole('combobox').selectOption('motd.txt');
		await entry.getByRole('textbox', { name: /^Path/ }).fill('/etc/motd');
		state = await waitForState(page, (s) => {
			const files = moduleOf(s, 'thymis_controller.modules.files.FilesModule');
			return files?.artifacts?.[0]?.artifact === 'motd.txt' && files.artifacts[0].path === '/etc/motd';
		});
		assert.equal(moduleOf(state, 'thymis_controller.modules.security.SecurityAccessModule').password_secret, secretId);

		// A systemd timer checked live by systemd-analyze (Bash Module).
		await addModule(page, 'bash', 'Bash Module');
		await page.getByRole('button', { name: 'Set value of Timer Configuration' }).click();
		await page.getByRole('button', { name: 'Add expression' }).click();
		await page.getByRole('textbox', { name: 'Calendar expression 1' }).fill('Mon *-*-* 04:00');
		await page.getByText(/Mon \d{4}-\d\d-\d\d 04:00:00 UTC/).first().waitFor();
		await page.getByRole('textbox', { name: 'Calendar expression 1' }).fill('whenever you like');
		await page.getByText(/Failed to parse calendar specification/).waitFor();
		await page.getByRole('textbox', { name: 'Calendar expression 1' }).fill('*-*-* 02:30');
		state = await waitForState(page, (s) => {
			const bash = moduleOf(s, 'thymis_controller.modules.bash.BashModule');
			return bash?.timer_config?.on_calendar?.[0] === '*-*-* 02:30';
		});
		assert.equal(moduleOf(state, 'thymis_controller.modules.bash.BashModule').timer_config.timer_type, 'realtime');

		// Custom Nix: a syntax error comes back with its line and is shown at the editor.
		await addModule(page, 'custom', 'Custom Nix');
		await page.getByRole('button', { name: 'Set value of Settings' }).click();
		const editor = page.locator('.cm-content');
		await editor.click();
		await page.keyboard.type('services.openssh.enable = true;\nnetworking.firewall.enable = ;\n');
		await page.getByText(/line 2/).first().waitFor();
		await page.locator('.cm-lintRange-error, .cm-lint-marker-error').first().waitFor();
		const custom = (await (await apiRequest(page, 'GET', '/api/state')).json()).configs[0].modules.find(
			(m) => m.type === 'thymis_controller.modules.whatever.WhateverModule'
		);
		assert.ok(!String(custom?.settings?.settings ?? '').includes('firewall'), 'the broken text is not saved');
		await page.keyboard.press('Backspace');
		await page.keyboard.press('ArrowLeft');
		await page.keyboard.type(' false');
		await waitForState(page, (s) =>
			String(
				s.configs[0].modules.find((m) => m.type === 'thymis_controller.modules.whatever.WhateverModule')
					?.settings?.settings ?? ''
			).includes('networking.firewall.enable =  false;')
		);
	});
	// Refused saves (422) and refused timer expressions (400) are logged by the browser itself.
	assert.deepEqual(
		page.problems.filter((p) => !/status of (400|422)/.test(p)),
		[]
	);
	await page.context().close();
});
