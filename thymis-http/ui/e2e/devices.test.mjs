// Devices in the dashboard against the real controller and real `thymis-agent` processes:
// a device appears online without a reload, a rename reaches the device's hostname, archiving
// moves it between the tabs, a deleted device leaves its hardware in the Without deployment
// tab, its metrics and logs show (search, severity, program, live lines, download), and agent
// tokens are created (the value shown once) and revoked.
//
// Harness hook this file assumes (to be provided by harness.mjs):
//
//   startAgent({ controller, name, token, configId, hardwareIds }) → Promise<Agent>
//     Starts the real thymis-agent with a device root of its own (a new temporary directory
//     labelled `name`), whose boot files hold the agent `token` and, when given, image
//     metadata naming `configId`, and whose /sys holds the given `hardwareIds` (kind → value,
//     e.g. { 'pi-serial-number': '10000000abcd' }); it connects to `controller.url`. Resolves once the process
//     runs (admission is awaited by the tests). The agent samples metrics every few seconds
//     (the harness shortens the 60 s interval), so a chart fills within a test.
//   Agent = {
//     root: string,        // the device root; the agent writes the hostname to <root>/etc/hostname
//     publicKey: string,   // the host key line it presents ("ssh-ed25519 AAAA…"), to find it in the API
//     log(message, { severity, program }): Promise<void>,
//                          // adds a line to the log source the agent ships (syslog severity 0–7)
//     stop(): Promise<void> // ends the agent and waits for it to exit
//   }
// Agents still running when a test ends are stopped by the test itself.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import {
	apiRequest,
	login,
	newPage,
	startAgent,
	useControllerAndBrowser,
	withScreenshot
} from './harness.mjs';

const running = useControllerAndBrowser();

const DEVICE = 'thymis_controller.modules.thymis.ThymisDevice';

/** The sidebar. */
const nav = (page) => page.getByRole('navigation', { name: 'Main navigation' });
/** The page's own content (without the shell's task bar). */
const content = (page) => page.getByRole('main');

/** Gives the project a config `identifier` (devices running it are Active). */
async function addConfig(page, identifier, displayName) {
	const state = await (await apiRequest(page, 'GET', '/api/state')).json();
	if (state.configs.some((config) => config.identifier === identifier)) return;
	state.configs.push({
		displayName,
		identifier,
		tags: [],
		modules: [{ type: DEVICE, settings: { device_type: 'generic-x86_64', device_name: identifier } }]
	});
	const response = await apiRequest(page, 'PATCH', '/api/state', state);
	assert.equal(response.status(), 200, await response.text());
}

/** Creates an agent token over the API; resolves to its value. */
async function createToken(page, name, configId) {
	const response = await apiRequest(page, 'POST', '/api/agent_tokens', { name, config_id: configId });
	assert.equal(response.status(), 201, await response.text());
	return (await response.json()).token;
}

/** Waits until `check()` returns something truthy; resolves to it. */
async function eventually(check, what, timeout = 30000) {
	const until = Date.now() + timeout;
	for (;;) {
		const result = await check();
		if (result) return result;
		if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
		await new Promise((resolve) => setTimeout(resolve, 250));
	}
}

/** The device record whose host key is `publicKey`, once the controller admitted it. */
function deviceOf(page, publicKey, timeout) {
	return eventually(async () => {
		const list = await (await apiRequest(page, 'GET', '/api/all_deployment_infos')).json();
		return list.find((device) => device.ssh_public_key.trim() === publicKey.trim());
	}, `a device with key ${publicKey}`, timeout);
}

/** The devices the Active tab lists. */
async function activeDevices(page) {
	const list = await (await apiRequest(page, 'GET', '/api/all_deployment_infos')).json();
	return list.filter((device) => !device.archived);
}

/** The row of device `id` in the Devices list. */
const rowOf = (page, id) => page.locator(`[data-testid="device-row"][data-device-id="${id}"]`);

/** The hardware rows (`GET /api/hardware_device`) linked to no device. */
async function unlinkedHardware(page) {
	const list = await (await apiRequest(page, 'GET', '/api/hardware_device')).json();
	return list.filter((hardware) => hardware.deployment_info_id === null);
}

/** The number on a tab of the Devices page once it equals `expected`. */
async function waitForTabCount(page, tab, expected) {
	const badge = page.getByTestId(`tab-count-${tab}`);
	await eventually(async () => (await badge.textContent()) === String(expected), `${expected} on the ${tab} tab`);
}

test('a device appears online live, its rename reaches its hostname, archiving moves it between tabs', async (t) => {
	const page = await newPage(running.browser, running.controller);
	let agent;
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/overview');
		await addConfig(page, 'lobby', 'Lobby');
		const token = await createToken(page, 'e2e lobby', 'lobby');

		await nav(page).getByRole('link', { name: /Devices/ }).click();
		await page.waitForURL(/\/devices\/active$/);
		await content(page).getByText('No active devices').waitFor();

		// The agent starts while the page is open: its row appears and turns online by itself.
		agent = await startAgent({ controller: running.controller, name: 'lobby-1', token, configId: 'lobby' });
		const device = await deviceOf(page, agent.publicKey);
		const row = rowOf(page, device.id);
		await row.locator('[data-testid="online-state"][data-online="true"]').waitFor();
		await row.getByRole('link', { name: 'Lobby' }).waitFor();
		assert.equal(await page.getByTestId('tab-count-active').textContent(), '1');

		// The Overview counts it online and links to the online devices.
		await nav(page).getByRole('link', { name: 'Overview' }).click();
		await page.getByRole('link', { name: /1\s*Online devices/ }).click();
		await page.waitForURL(/\/devices\/active\?status=online$/);
		await rowOf(page, device.id).waitFor();

		// Renamed on its page; the agent applies the name as its hostname.
		await rowOf(page, device.id).getByRole('link', { name: device.id, exact: true }).click();
		await page.waitForURL(new RegExp(`/devices/${device.id}/details$`));
		await content(page).getByRole('button', { name: 'Edit Name' }).click();
		await content(page).getByRole('textbox', { name: 'Name' }).fill('Lobby Screen 1');
		await page.keyboard.press('Enter');
		await content(page).getByRole('heading', { name: 'Lobby Screen 1' }).waitFor();
		await eventually(
			async () =>
				(await readFile(join(agent.root, 'etc/hostname'), 'utf8').catch(() => '')).trim() === 'lobby-screen-1',
			'the hostname lobby-screen-1 on the device'
		);

		// The key fingerprint is the one ssh-keygen computes.
		const fingerprint = execFileSync('ssh-keygen', ['-lf', '-'], { input: agent.publicKey })
			.toString()
			.split(' ')[1];
		assert.equal(await content(page).getByTestId('key-fingerprint').textContent(), fingerprint);

		// Notes and location are saved and shown.
		await content(page).getByRole('button', { name: 'Edit Location' }).click();
		await content(page).getByRole('textbox', { name: 'Location' }).fill('Main hall');
		await content(page).getByRole('button', { name: 'Save' }).click();
		await content(page).getByText('Main hall').waitFor();
		const saved = await (await apiRequest(page, 'GET', `/api/deployment_info/${device.id}`)).json();
		assert.equal(saved.location, 'Main hall');
		assert.equal(saved.name, 'Lobby Screen 1');

		// Online devices cannot be archived; once the agent stops, the page shows it offline.
		const archive = content(page).getByRole('button', { name: 'Archive Lobby Screen 1' });
		assert.equal(await archive.isDisabled(), true);
		await agent.stop();
		agent = undefined;
		await content(page).locator('[data-testid="online-state"][data-online="false"]').first().waitFor();
		await archive.click();
		await page.getByText('Lobby Screen 1 archived.').waitFor();

		await content(page).getByRole('link', { name: 'Devices' }).click();
		await page.waitForURL(/\/devices\/archived$/);
		await rowOf(page, device.id).waitFor();
		assert.equal(await page.getByTestId('tab-count-active').textContent(), '0');
		assert.equal(await page.getByTestId('tab-count-archived').textContent(), '1');
		await rowOf(page, device.id).getByRole('button', { name: 'Restore Lobby Screen 1 from the archive' }).click();
		await page.getByText('Lobby Screen 1 restored from the archive.').waitFor();
		await page.getByTestId('device-tabs').getByRole('link', { name: /Active/ }).click();
		await rowOf(page, device.id).waitFor();

		// Search finds it by name and by key fingerprint; the status filter hides it.
		const search = content(page).getByRole('searchbox');
		await search.fill('screen 1');
		await rowOf(page, device.id).waitFor();
		await search.fill('no-such-device');
		await content(page).getByText('No device matches these filters.').waitFor();
		await search.fill(fingerprint.slice(7, 20));
		await rowOf(page, device.id).waitFor();
		await content(page).getByRole('button', { name: 'Reset filters' }).click();
		await content(page).getByRole('button', { name: /^Online/ }).click();
		await content(page).getByText('No device matches these filters.').waitFor();
		// Stopped also when the test failed: a running agent would keep the test process alive.
	}).finally(() => agent?.stop());
	assert.deepEqual(page.problems, []);
	await page.context().close();
});

test('a deleted device leaves its hardware in the Without deployment tab, until it is admitted again', async (t) => {
	const page = await newPage(running.browser, running.controller);
	let agent;
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/overview');
		await addConfig(page, 'hall', 'Hall');
		const token = await createToken(page, 'e2e hall', 'hall');
		const serial = '10000000e2ec0de1';
		const hardwareIds = { 'pi-serial-number': serial };
		const before = (await unlinkedHardware(page)).length;

		// Active, with its hardware id.
		agent = await startAgent({ controller: running.controller, name: 'hall-1', token, configId: 'hall', hardwareIds });
		const device = await deviceOf(page, agent.publicKey);
		await page.goto('/devices/active');
		await rowOf(page, device.id).getByText(`Pi serial number: ${serial}`).waitFor();

		// The page stays open on Without deployment, which has only a search.
		await page.getByTestId('device-tabs').getByRole('link', { name: /Without deployment/ }).click();
		await page.waitForURL(/\/devices\/without-deployment$/);
		await content(page).getByText('linked to no device').waitFor();
		await waitForTabCount(page, 'without-deployment', before);
		assert.equal(await content(page).getByRole('button', { name: /^Online/ }).count(), 0);
		assert.equal(await content(page).getByLabel('Config', { exact: true }).count(), 0);
		const hardwareRows = content(page).getByTestId('hardware-row').filter({ hasText: serial });
		assert.equal(await hardwareRows.count(), 0);

		// Deleted while offline (an online one would register again at once): its hardware shows
		// up without a reload, with its id and when it was last seen.
		await agent.stop();
		agent = undefined;
		const deleted = await apiRequest(page, 'DELETE', `/api/deployment_info/${device.id}`);
		assert.equal(deleted.status(), 204, await deleted.text());
		const [hardware] = (await unlinkedHardware(page)).filter((row) => row.hardware_ids['pi-serial-number'] === serial);
		assert.ok(hardware?.last_seen, 'the hardware is kept, unlinked, with its last seen time');
		const row = content(page).locator(`[data-testid="hardware-row"][data-hardware-id="${hardware.id}"]`);
		await row.getByText(`Pi serial number: ${serial}`).waitFor();
		const lastSeen = row.locator('time');
		assert.equal(await lastSeen.getAttribute('datetime'), hardware.last_seen);
		assert.match(await lastSeen.textContent(), /ago|now/);
		await waitForTabCount(page, 'without-deployment', before + 1);
		await waitForTabCount(page, 'active', (await activeDevices(page)).length);

		// Search over the hardware id values.
		const search = content(page).getByRole('searchbox', { name: 'Search hardware id' });
		await search.fill(serial.slice(-6).toUpperCase());
		await row.waitFor();
		await search.fill('no-such-hardware');
		await content(page).getByText('No hardware matches this search.').waitFor();
		await search.fill('');
		await row.waitFor();

		// A device with that hardware is admitted: the hardware is linked again and leaves the tab.
		agent = await startAgent({ controller: running.controller, name: 'hall-2', token, configId: 'hall', hardwareIds });
		const again = await deviceOf(page, agent.publicKey);
		assert.notEqual(again.id, device.id);
		await row.waitFor({ state: 'detached' });
		await waitForTabCount(page, 'without-deployment', before);
		// Stopped also when the test failed: a running agent would keep the test process alive.
	}).finally(() => agent?.stop());
	assert.deepEqual(page.problems, []);
	await page.context().close();
});

test('metrics and logs of a device show, filter, follow new lines and download', async (t) => {
	const page = await newPage(running.browser, running.controller);
	let agent;
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/overview');
		await addConfig(page, 'gate', 'Gate');
		const token = await createToken(page, 'e2e gate', 'gate');
		agent = await startAgent({ controller: running.controller, name: 'gate-1', token, configId: 'gate' });
		const device = await deviceOf(page, agent.publicKey);
		await agent.log('disk almost full on /data', { severity: 3, program: 'e2e-check' });
		await agent.log('all services started', { severity: 6, program: 'e2e-boot' });

		await page.goto(`/devices/${device.id}/details`);
		// A sample arrives: the tiles show percentages and the chart draws its lines.
		await content(page)
			.getByTestId('metric-cpu_percent')
			.getByText(/\d+ %/)
			.waitFor({ timeout: 90000 });
		const chart = content(page).getByTestId('metrics-chart');
		await chart.waitFor();
		for (const series of ['cpu_percent', 'ram_percent', 'disk_percent']) {
			const d = await chart.locator(`path[data-series="${series}"]`).getAttribute('d');
			assert.match(d ?? '', /^M/, `${series} is drawn`);
		}
		// Other windows and bucket sizes load too.
		await content(page).getByRole('button', { name: '1 h' }).click();
		await content(page).getByLabel('Per', { exact: true }).selectOption({ label: 'minute' });
		// Attached, not visible: a lone bucket is a short flat dash, which has no height.
		await chart.locator('path[data-series="ram_percent"][d^="M"]').waitFor({ state: 'attached' });
		await content(page).getByTestId('connection-history').getByText('still connected').waitFor();
		// The error line is among the recent errors.
		await content(page).getByTestId('recent-errors').getByText('disk almost full on /data').waitFor();

		await content(page).getByRole('link', { name: 'Logs', exact: true }).click();
		await page.waitForURL(new RegExp(`/devices/${device.id}/logs$`));
		const lines = content(page).getByTestId('log-line');
		await lines.filter({ hasText: 'disk almost full on /data' }).waitFor();
		await lines.filter({ hasText: 'all services started' }).waitFor();

		// Search in messages.
		await content(page).getByRole('searchbox').fill('almost');
		await page.waitForURL(/search=almost/);
		await lines.filter({ hasText: 'disk almost full' }).waitFor();
		await lines.filter({ hasText: 'all services started' }).waitFor({ state: 'detached' });
		await content(page).getByRole('searchbox').fill('');
		await page.waitForURL((url) => !url.searchParams.has('search'));

		// Severity: errors and worse only.
		await content(page).getByLabel('Severity').selectOption({ label: 'Error and more severe' });
		await lines.filter({ hasText: 'all services started' }).waitFor({ state: 'detached' });
		await lines.filter({ hasText: 'disk almost full' }).waitFor();
		await content(page).getByLabel('Severity').selectOption({ label: 'All' });

		// Program, exact.
		const program = content(page).getByLabel('Program');
		await program.fill('e2e-boot');
		await program.press('Enter');
		await content(page).getByLabel('Exact name').check();
		await page.waitForURL(/program=e2e-boot.*exact=1|exact=1.*program=e2e-boot/);
		await lines.filter({ hasText: 'all services started' }).waitFor();
		await lines.filter({ hasText: 'disk almost full' }).waitFor({ state: 'detached' });
		await program.fill('');
		await program.press('Enter');
		await content(page).getByLabel('Exact name').uncheck();

		// New lines appear while the page is open.
		await agent.log('a line that arrives later', { severity: 5, program: 'e2e-late' });
		await lines.filter({ hasText: 'a line that arrives later' }).waitFor({ timeout: 60000 });

		// The download holds the lines as text.
		const href = await content(page).getByTestId('logs-download').getAttribute('href');
		const download = await apiRequest(page, 'GET', href);
		assert.equal(download.status(), 200);
		assert.match(await download.text(), /disk almost full on \/data/);
		// Stopped also when the test failed: a running agent would keep the test process alive.
	}).finally(() => agent?.stop());
	assert.deepEqual(page.problems, []);
	await page.context().close();
});

test('agent tokens are created with their value shown once, and a revoked token is refused', async (t) => {
	const page = await newPage(running.browser, running.controller);
	let agent;
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/overview');
		await addConfig(page, 'rack', 'Rack');
		await nav(page).getByRole('link', { name: 'Agent tokens' }).click();
		await page.waitForURL(/\/agent-tokens$/);
		await content(page).getByText('devices installed without a Thymis image').waitFor();

		await content(page).getByRole('button', { name: 'Create agent token' }).first().click();
		const dialog = page.getByRole('dialog');
		await dialog.getByLabel('Name').fill('lab rack 2');
		await dialog.getByLabel('Config').selectOption({ label: 'Rack' });
		await dialog.getByRole('button', { name: 'Create', exact: true }).click();
		const token = await dialog.getByTestId('token-value').inputValue();
		assert.ok(token.length >= 20, `a token value: ${token}`);
		await dialog.getByText('shown only this once').waitFor();
		await dialog.getByRole('button', { name: 'Done' }).click();

		// Listed, without its value.
		const row = content(page).getByTestId('token-row').filter({ hasText: 'lab rack 2' });
		await row.getByText('Active').waitFor();
		await row.getByRole('link', { name: 'Rack' }).waitFor();
		await row.getByText('Never').waitFor();
		assert.equal((await content(page).textContent()).includes(token), false);
		const listed = await (await apiRequest(page, 'GET', '/api/agent_tokens')).text();
		assert.equal(listed.includes(token), false);

		// A device connects with it; the token then counts as used.
		agent = await startAgent({ controller: running.controller, name: 'rack-1', token, configId: 'rack' });
		await deviceOf(page, agent.publicKey);
		// "Last used" updates live, without a reload.
		await row.getByText('Never').waitFor({ state: 'detached' });
		await row.getByText('Active').waitFor();
		await agent.stop();
		agent = undefined;

		// Revoked after confirming; a new device with it is refused.
		await row.getByRole('button', { name: 'Revoke lab rack 2' }).click();
		await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
		await page.getByText('lab rack 2 revoked.').waitFor();
		await content(page).getByTestId('token-row').filter({ hasText: 'lab rack 2' }).waitFor({ state: 'detached' });
		await content(page).getByLabel(/Show revoked tokens/).check();
		await content(page).getByTestId('token-row').filter({ hasText: 'lab rack 2' }).getByText(/Revoked/).waitFor();

		agent = await startAgent({ controller: running.controller, name: 'rack-2', token, configId: 'rack' });
		await assert.rejects(deviceOf(page, agent.publicKey, 8000), /timed out/);
		// Stopped also when the test failed: a running agent would keep the test process alive.
	}).finally(() => agent?.stop());
	assert.deepEqual(page.problems, []);
	await page.context().close();
});
