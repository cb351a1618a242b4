// Screenshots of the main pages for the docs, from a small demo project:
//   node bench/screenshots.mjs [output dir, default ../../docs/screenshots]

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { launchBrowser, login, newPage, startController } from '../e2e/harness.mjs';

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
try {
	const page = await newPage(browser, controller, { viewport: { width: 1280, height: 760 } });
	await login(page, controller, '/overview');
	await page.request.patch('/api/state', { data: demo, headers: { origin: controller.url } });
	await page.request.post('/api/action/commit?message=Lobby%20screens', { headers: { origin: controller.url } });
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

	await page.evaluate(() => localStorage.setItem('theme', 'dark'));
	await page.goto('/configs/entrance/configure?module=1');
	await page.getByText('WiFi SSID').first().waitFor();
	await page.screenshot({ path: join(out, 'configure-dark.png') });
	console.log(`screenshots in ${out}`);
} finally {
	await browser.close();
	await controller.stop();
}
