// Benchmark: how fast the Configure page of one config becomes usable in a 1,000-config project
// (time from navigation start until the module card's first control accepts input), how long
// an edit takes to be saved, and the dashboard's bundle sizes. Uses the release controller:
//   cargo build --release -p thymis-http && node bench/configure-load.mjs [configs] [runs]

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { launchBrowser, login, newPage, startController } from '../e2e/harness.mjs';

process.env.THYMIS_CONTROLLER_BIN ??= resolve(import.meta.dirname, '../../../target/release/thymis-controller');
const configs = Number(process.argv[2] ?? 1000);
const runs = Number(process.argv[3] ?? 5);

function project(count) {
	const tags = ['site-a', 'site-b', 'screens'].map((identifier, index) => ({
		displayName: identifier,
		identifier,
		priority: 90 + index,
		modules: [
			{ type: 'thymis_controller.modules.localization.LocalizationModule', settings: { timezone: 'UTC' } }
		]
	}));
	const list = Array.from({ length: count }, (_, i) => ({
		displayName: `Device ${i}`,
		identifier: `device-${i}`,
		tags: [tags[i % 3].identifier],
		modules: [
			{
				type: 'thymis_controller.modules.thymis.ThymisDevice',
				settings: { device_type: 'raspberry-pi-4', image_format: 'sd-card-image', device_name: `device-${i}` }
			},
			{ type: 'thymis_controller.modules.kiosk.Kiosk', settings: { kiosk_url: `https://example.com/${i}`, volume: 50 } },
			{ type: 'thymis_controller.modules.networking.NetworkingModule', settings: { nameservers: [{ nameserver: '9.9.9.9' }] } },
			{ type: 'thymis_controller.modules.security.SecurityAccessModule', settings: { authorized_keys: [{ key: 'ssh-ed25519 AAAA' }] } },
			{ type: 'thymis_controller.modules.whatever.WhateverModule', settings: { settings: 'services.openssh.enable = true;' } }
		]
	}));
	return { version: '0.0.9', repositories: {}, tags, configs: list };
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

const controller = await startController();
const browser = await launchBrowser();
try {
	const page = await newPage(browser, controller);
	await login(page, controller, '/overview');
	const response = await page.request.patch('/api/state', {
		data: project(configs),
		headers: { origin: controller.url }
	});
	if (!response.ok()) throw new Error(`seeding failed: ${response.status()}`);
	// A project in use has its configs committed; uncommitted changes are the few being edited.
	const commit = await page.request.post('/api/action/commit?message=seed', {
		headers: { origin: controller.url }
	});
	if (!commit.ok()) throw new Error(`commit failed: ${commit.status()}`);

	const loads = [];
	for (let run = 0; run < runs; run++) {
		const target = `/configs/device-${(run * 137) % configs}/configure?module=1`;
		await page.goto(target);
		await page.getByRole('textbox', { name: 'URL', exact: true }).waitFor();
		loads.push(await page.evaluate(() => performance.now()));
	}

	const saves = [];
	for (let run = 0; run < runs; run++) {
		const field = page.getByRole('spinbutton', { name: 'Volume', exact: true });
		const started = Date.now();
		const saved = page.waitForResponse((r) => r.url().endsWith('/api/state') && r.request().method() === 'PATCH');
		await field.fill(String(10 + run));
		await field.blur();
		await (await saved).finished();
		saves.push(Date.now() - started);
	}
	// Of that, the server's part: the PATCH requests' own durations in the browser.
	const patches = await page.evaluate(() =>
		performance
			.getEntriesByType('resource')
			.filter((entry) => entry.name.endsWith('/api/state') && entry.initiatorType === 'fetch')
			.map((entry) => entry.responseEnd - entry.requestStart)
	);

	const assets = resolve(import.meta.dirname, '../dist/assets');
	console.log(`Configure page usable, ${configs} configs: median ${median(loads).toFixed(0)} ms (runs: ${loads.map((v) => v.toFixed(0)).join(', ')})`);
	console.log(`Edit saved (blur → PATCH answered): median ${median(saves)} ms (runs: ${saves.join(', ')})`);
	console.log(`State requests (GET and PATCH) as the browser timed them: median ${median(patches).toFixed(0)} ms`);
	try {
		for (const file of readdirSync(assets)) {
			const bytes = readFileSync(join(assets, file));
			console.log(`${file}: ${(statSync(join(assets, file)).size / 1024).toFixed(1)} KiB, gzip ${(gzipSync(bytes).length / 1024).toFixed(1)} KiB`);
		}
	} catch {
		console.log('(run `npm run build` for bundle sizes)');
	}
} finally {
	await browser.close();
	await controller.stop();
}
