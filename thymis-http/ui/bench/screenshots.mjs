// Screenshots of the main pages for the docs, from a small demo project with three devices
// (real thymis-agent processes; it waits about five minutes for their metrics to fill a chart):
//   node bench/screenshots.mjs [output dir, default ../../docs/screenshots]

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { launchBrowser, login, newPage, startAgent, startController } from '../e2e/harness.mjs';

const out = resolve(process.argv[2] ?? resolve(import.meta.dirname, '../../../docs/screenshots'));
mkdirSync(out, { recursive: true });

const DEVICE = 'thymis_controller.modules.thymis.ThymisDevice';
const demo = {
	version: '0.0.9',
	repositories: {},
	tags: [
		{
			displayName: 'Lobby screens',
			identifier: 'lobby-screens',
			priority: 90,
			modules: [
				{ type: 'thymis_controller.modules.kiosk.Kiosk', settings: { kiosk_url: 'https://status.example.com' } },
				{ type: 'thymis_controller.modules.localization.LocalizationModule', settings: { timezone: 'Europe/Berlin' } }
			]
		}
	],
	configs: ['Entrance', 'Cafeteria', 'Meeting room'].map((name) => ({
		displayName: name,
		identifier: name.toLowerCase().replace(/ /g, '-'),
		tags: ['lobby-screens'],
		modules: [
			{ type: DEVICE, settings: { device_type: 'raspberry-pi-4', image_format: 'sd-card-image' } },
			{ type: 'thymis_controller.modules.networking.NetworkingModule', settings: { wifi_ssid: 'office' } }
		]
	}))
};

const controller = await startController();
const browser = await launchBrowser();
/** The agents started, stopped at the end. */
const agents = [];
try {
	const page = await newPage(browser, controller, { viewport: { width: 1280, height: 760 } });
	await login(page, controller, '/overview');
	await page.request.patch('/api/state', { data: demo, headers: { origin: controller.url } });
	await page.request.post('/api/action/commit?message=Lobby%20screens', { headers: { origin: controller.url } });
	// Real agents, one per config, started early so their metrics span a few minutes by the
	// time the device pages are taken.
	const devices = await startDevices(page);
	const shots = [
		['overview', '/overview', 'Recent commits'],
		['configs', '/configs', 'Meeting room'],
		['configure', '/configs/entrance/configure?module=1', 'WiFi SSID'],
		['history', '/history', 'Lobby screens']
	];
	for (const [name, path, text] of shots) {
		await page.goto(path);
		await page.getByText(text).first().waitFor();
		await page.screenshot({ path: join(out, `${name}.png`) });
	}
	await page.getByRole('button', { name: 'Show changes' }).first().click();
	await page.getByText('"displayName": "Entrance",').first().waitFor();
	await page.screenshot({ path: join(out, 'history-diff.png') });

	// A completed image build's page (its nix build) and the task bar expanded under the
	// overview, with a project build next to the image build.
	const post = async (path) => (await page.request.post(path, { headers: { origin: controller.url } })).json();
	const finished = async (id) => {
		for (;;) {
			const task = await (await page.request.get(`/api/tasks/${id}`)).json();
			if (!['pending', 'running'].includes(task.state)) return task;
			await new Promise((resolve) => setTimeout(resolve, 200));
		}
	};
	const image = await post('/api/action/build-download-image?identifier=entrance');
	await finished(image.task_id);
	await finished((await post('/api/action/build')).task_id);
	await page.goto(`/tasks/${image.task_id}`);
	await page.getByRole('heading', { name: 'Build Image for Entrance' }).waitFor();
	await page.getByRole('tab').first().click();
	await page.getByTestId('command-line').waitFor();
	await page.setViewportSize({ width: 1280, height: 1280 });
	await page.screenshot({ path: join(out, 'task-image.png') });
	await page.setViewportSize({ width: 1280, height: 760 });
	await page.evaluate(() => localStorage.setItem('thymis-taskbar', JSON.stringify({ collapsed: false, height: 220 })));
	await page.goto('/overview');
	await page.getByTestId('taskbar-row').nth(1).waitFor();
	await page.screenshot({ path: join(out, 'taskbar.png') });
	await page.evaluate(() => localStorage.setItem('thymis-taskbar', JSON.stringify({ collapsed: true, height: 220 })));

	await deviceShots(page, devices);

	await page.evaluate(() => localStorage.setItem('theme', 'dark'));
	await page.goto('/configs/entrance/configure?module=1');
	await page.getByText('WiFi SSID').first().waitFor();
	await page.screenshot({ path: join(out, 'configure-dark.png') });
	console.log(`screenshots in ${out}`);
} finally {
	await Promise.all(agents.map((agent) => agent.stop()));
	await browser.close();
	await controller.stop();
}

/** Starts an agent for each config and names its device; resolves to [agent, device id] pairs. */
async function startDevices(page) {
	const headers = { origin: controller.url };
	const names = [
		['entrance', 'Entrance screen', 'Main entrance, left of the door', 'Wall mount, 32" panel'],
		['cafeteria', 'Cafeteria screen', 'Cafeteria, above the till', null],
		['meeting-room', 'Meeting room screen', 'Room 2.14', 'Switched off at night']
	];
	const started = [];
	for (const [config, name, location, notes] of names) {
		const created = await page.request.post('/api/agent_tokens', { data: { name: `${name} token`, config_id: config }, headers });
		const { token } = await created.json();
		const agent = await startAgent({ controller, name: config, token, configId: config });
		agents.push(agent);
		started.push([agent, { name, location, notes }]);
	}
	const result = [];
	for (const [agent, fields] of started) {
		const device = await until(async () => {
			const list = await (await page.request.get('/api/all_deployment_infos')).json();
			return list.find((entry) => entry.ssh_public_key.trim() === agent.publicKey.trim());
		});
		await page.request.patch(`/api/deployment_info/${device.id}`, { data: fields, headers });
		await agent.log('Started Kiosk browser.', { severity: 6, program: 'systemd' });
		await agent.log('wlan0: connected to office', { severity: 5, program: 'NetworkManager' });
		await agent.log('Loading https://status.example.com', { severity: 6, program: 'kiosk' });
		result.push([agent, device.id]);
	}
	return result;
}

/** The Devices list (one device just went offline) and the first device's details and logs. */
async function deviceShots(page, devices) {
	const [[entrance, id], , [meetingRoom]] = devices;
	await entrance.log('GPU process exited unexpectedly, restarting', { severity: 3, program: 'kiosk' });
	await entrance.log('Reloaded https://status.example.com', { severity: 6, program: 'kiosk' });
	await meetingRoom.stop();
	// Samples of five minutes, so the chart draws lines rather than dots.
	await until(async () => {
		const path = `/api/deployment_info/${id}/metrics?hours=1&granularity=1min`;
		return (await (await page.request.get(path)).json()).length >= 5;
	}, 600000);

	await page.goto('/devices/active');
	await page.locator('[data-testid="online-state"][data-online="false"]').first().waitFor();
	await page.screenshot({ path: join(out, 'devices.png') });

	await page.goto(`/devices/${id}/details`);
	await page.getByRole('button', { name: '1 h' }).click();
	await page.getByTestId('recent-errors').getByText('GPU process exited').waitFor();
	await page.getByTestId('connection-history').getByText('still connected').waitFor();
	await page.getByTestId('metrics-chart').waitFor();
	await page.setViewportSize({ width: 1280, height: 820 });
	await page.screenshot({ path: join(out, 'device-details.png') });
	await page.setViewportSize({ width: 1280, height: 760 });

	await page.getByTestId('tabbar').getByRole('link', { name: 'Logs' }).click();
	await page.getByTestId('log-line').filter({ hasText: 'Reloaded' }).waitFor();
	await page.screenshot({ path: join(out, 'device-logs.png') });
}

/** Polls `check` every 250 ms until it returns something truthy (or fails after `timeout` ms). */
async function until(check, timeout = 30000) {
	const end = Date.now() + timeout;
	for (;;) {
		const result = await check();
		if (result) return result;
		if (Date.now() > end) throw new Error('timed out');
		await new Promise((resolve) => setTimeout(resolve, 250));
	}
}
