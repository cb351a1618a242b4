// Secrets, artifacts and external repositories in the browser against the real controller:
// values never come back, files upload, rename (with the state's references) and delete,
// repositories are saved with their follows and checked by the controller.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
	apiRequest,
	login,
	newPage,
	withScreenshot,
	useControllerAndBrowser,
} from './harness.mjs';

const running = useControllerAndBrowser();

test('secrets are created, edited without showing their value, and deleted', async (t) => {
	const page = await newPage(running.browser, running.controller);
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/secrets');
		await page.getByRole('button', { name: 'New secret' }).first().click();
		const dialog = page.getByRole('dialog');
		await dialog.getByLabel('Name', { exact: true }).fill('WiFi password');
		await dialog.getByLabel('Value', { exact: true }).fill('correct horse battery staple');
		await dialog.getByRole('button', { name: 'New secret' }).click();
		await page.getByText('Secret WiFi password saved.').waitFor();
		const table = page.getByTestId('data-table');
		await table.getByText('WiFi password').waitFor();
		assert.ok(!(await page.content()).includes('correct horse'), 'the value is not on the page');

		// Editing shows an empty value field; saving without a value keeps the old one.
		await page.getByRole('button', { name: 'Edit WiFi password' }).click();
		await page.getByText('Leave empty to keep the current value.').waitFor();
		assert.equal(await page.getByRole('dialog').getByLabel('Value', { exact: true }).inputValue(), '');
		await page.getByRole('dialog').getByLabel('Name', { exact: true }).fill('Office WiFi');
		await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
		await table.getByText('Office WiFi').waitFor();
		const secrets = await (await apiRequest(page, 'GET', '/api/secrets')).json();
		const [secret] = Object.values(secrets);
		assert.equal(secret.display_name, 'Office WiFi');
		assert.equal(secret.value_size, 'correct horse battery staple'.length);

		await page.getByRole('button', { name: 'Delete Office WiFi' }).click();
		await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
		await page.getByText('Secret Office WiFi deleted.').waitFor();
		assert.deepEqual(await (await apiRequest(page, 'GET', '/api/secrets')).json(), {});
	});
	assert.deepEqual(page.problems, []);
	await page.context().close();
});

test('artifacts upload, download, rename with their references, and delete', async (t) => {
	const page = await newPage(running.browser, running.controller);
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/overview');
		// A tag whose Files module uses the artifact, so the rename must follow.
		const state = await (await apiRequest(page, 'GET', '/api/state')).json();
		state.tags = [
			{
				displayName: 'Screens',
				identifier: 'screens',
				priority: 90,
				modules: [
					{
						type: 'thymis_controller.modules.files.FilesModule',
						settings: { artifacts: [{ artifact: 'logo.svg', path: '/etc/logo.svg' }] }
					}
				]
			}
		];
		assert.equal((await apiRequest(page, 'PATCH', '/api/state', state)).status(), 200);

		await page.goto('/artifacts');
		await page.locator('input[type=file]').setInputFiles([
			{ name: 'logo.svg', mimeType: 'image/svg+xml', buffer: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>') },
			{ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello fleet') }
		]);
		await page.getByText('2 files uploaded.').waitFor();
		const table = page.getByTestId('data-table');
		await table.getByText('notes.txt').waitFor();
		await table.getByRole('link', { name: /Screens/ }).waitFor();

		const download = page.waitForEvent('download');
		await page.getByRole('link', { name: 'Download notes.txt' }).click();
		const file = await download;
		assert.equal(file.suggestedFilename(), 'notes.txt');

		await page.getByRole('button', { name: 'Rename logo.svg' }).click();
		await page.getByRole('dialog').getByLabel('File name').fill('brand.svg');
		await page.getByRole('dialog').getByRole('button', { name: 'Rename' }).click();
		await table.getByText('brand.svg').waitFor();
		const renamed = await (await apiRequest(page, 'GET', '/api/state')).json();
		assert.equal(renamed.tags[0].modules[0].settings.artifacts[0].artifact, 'brand.svg');

		await page.getByRole('button', { name: 'Delete notes.txt' }).click();
		await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
		await page.getByText('notes.txt deleted.').waitFor();
		const names = (await (await apiRequest(page, 'GET', '/api/artifacts')).json()).map((a) => a.name);
		assert.deepEqual(names, ['brand.svg']);
	});
	assert.deepEqual(page.problems, []);
	await page.context().close();
});

test('external repositories are added with follows, checked by the controller, and removed', async (t) => {
	const page = await newPage(running.browser, running.controller);
	// A local module repository, so the controller's check (real nix) works offline.
	const repoDir = mkdtempSync(join(tmpdir(), 'thymis-modules-'));
	writeFileSync(join(repoDir, 'flake.nix'), '{ outputs = { self }: { }; }\n');
	writeFileSync(join(repoDir, 'README.md'), 'This repository contains thymis modules.\n');
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/external-repositories');
		await page.getByRole('button', { name: 'Add repository' }).first().click();
		const dialog = page.getByRole('dialog');
		await dialog.getByLabel('Name', { exact: true }).fill('site_modules');
		await dialog.getByLabel('Type').selectOption({ label: 'Other flake URL' });
		await dialog.getByLabel('Flake URL', { exact: true }).fill(`path:${repoDir}`);
		await dialog.getByText('Follows', { exact: true }).click();
		await dialog.getByRole('button', { name: 'Add input' }).click();
		await dialog.getByLabel('Input 1 of this repository').fill('nixpkgs');
		await dialog.getByLabel('Project input for input 1').fill('nixpkgs');
		await dialog.getByRole('button', { name: 'Add repository' }).click();
		await page.getByText('Repository site_modules saved.').waitFor();
		const state = await (await apiRequest(page, 'GET', '/api/state')).json();
		assert.deepEqual(state.repositories.site_modules, {
			url: `path:${repoDir}`,
			follows: null,
			inputs_follows: { nixpkgs: 'nixpkgs' },
			api_key_secret: null
		});
		// The controller fetched it with nix and found the marker in its README.
		await page.getByTestId('data-table').getByText('Loaded (0 modules)').waitFor({ timeout: 60000 });

		await page.getByRole('button', { name: 'Delete site_modules' }).click();
		await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
		await page.getByText('Repository site_modules deleted.').waitFor();
		const after = await (await apiRequest(page, 'GET', '/api/state')).json();
		assert.deepEqual(after.repositories, {});
	});
	rmSync(repoDir, { recursive: true, force: true });
	assert.deepEqual(page.problems, []);
	await page.context().close();
});
