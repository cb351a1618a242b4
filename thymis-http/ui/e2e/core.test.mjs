// The dashboard's core flows against the real controller: login and redirect, configs and
// tags, commit, history with diff and revert, the 409 conflict between two tabs, German,
// logout.

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

/** The sidebar. */
const nav = (page) => page.getByRole('navigation', { name: 'Main navigation' });

test('a deep link survives the login, and a wrong password is refused', async (t) => {
	const page = await newPage(running.browser, running.controller);
	await withScreenshot(t, page, async () => {
		await page.goto('/history');
		await page.waitForURL(/\/login\?redirect=/);
		await page.getByLabel('Username').fill('admin');
		await page.getByLabel('Password').fill('wrong');
		await page.getByRole('button', { name: 'Sign in' }).click();
		await page.getByText('invalid username or password').waitFor();
		await page.getByLabel('Password').fill(running.controller.password);
		await page.getByLabel('Username').fill('admin');
		await page.getByRole('button', { name: 'Sign in' }).click();
		await page.waitForURL(/\/history$/);
		await page.getByRole('heading', { name: 'History' }).waitFor();
		await page.getByText('Initial commit').waitFor();
	});
	// The failed login answered 303 to the login page; nothing else went wrong.
	assert.deepEqual(page.problems, []);
	await page.context().close();
});

test('configs and tags are created, tagged, committed, diffed and reverted', async (t) => {
	const page = await newPage(running.browser, running.controller);
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/configs');
		await page.getByRole('button', { name: 'Create configuration' }).first().click();
		const dialog = page.getByRole('dialog');
		await dialog.getByLabel('Display name').fill('Lobby Kiosk');
		await dialog.getByText('Identifier: lobby-kiosk').waitFor();
		await dialog.getByLabel('Device type').selectOption({ label: 'Raspberry Pi 4' });
		await dialog.getByRole('button', { name: 'Create' }).click();
		await page.waitForURL(/\/configs\/lobby-kiosk\/configure/);

		// A second config with the same name is refused in the form.
		await page.goto('/configs');
		await page.getByRole('button', { name: 'Create configuration' }).first().click();
		await page.getByRole('dialog').getByLabel('Display name').fill('Lobby Kiosk');
		await page.getByRole('dialog').getByText('This name is already used.').waitFor();
		await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();

		await nav(page).getByRole('link', { name: /Config-Tags/ }).click();
		await page.getByRole('button', { name: 'Create tag' }).first().click();
		await page.getByRole('dialog').getByLabel('Display name').fill('Ground floor');
		await page.getByRole('dialog').getByRole('button', { name: 'Create' }).click();
		await page.waitForURL(/\/tags\/ground-floor/);

		await page.goto('/configs/lobby-kiosk');
		await page.getByRole('button', { name: 'Edit tags' }).click();
		await page.getByRole('dialog').getByLabel(/Ground floor/).check();
		await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
		await page.getByRole('link', { name: 'Ground floor' }).waitFor();

		const state = await (await apiRequest(page, 'GET', '/api/state')).json();
		assert.deepEqual(state.configs[0].tags, ['ground-floor']);
		assert.equal(state.configs[0].modules[0].settings.device_type, 'raspberry-pi-4');
		assert.equal(state.configs[0].modules[0].settings.image_format, 'sd-card-image');

		// Commit: the dialog lists the changed files with their diff.
		await page.getByTestId('commit-button').click();
		const commit = page.getByRole('dialog', { name: 'Commit changes' });
		await commit.getByRole('button', { name: /state\.json/ }).waitFor();
		await commit.getByText('"displayName": "Lobby Kiosk"').first().waitFor();
		await commit.getByLabel('Summary of the changes').fill('Add the lobby kiosk');
		await commit.getByRole('button', { name: 'Commit', exact: true }).click();
		await page.getByText(/^Committed [0-9a-f]{7}\.$/).waitFor();
		await page.getByTestId('commit-button').filter({ hasText: 'Commit (0)' }).waitFor();

		// History: the commit and its diff, side by side too.
		await nav(page).getByRole('link', { name: 'History' }).click();
		const newest = page.getByTestId('commit').first();
		await newest.getByText('Add the lobby kiosk').waitFor();
		await newest.getByRole('button', { name: 'Show changes' }).click();
		await newest.getByText('"identifier": "lobby-kiosk",').first().waitFor();
		await newest.getByRole('radio', { name: 'Side by side' }).click();
		await newest.getByText('"identifier": "lobby-kiosk",').first().waitFor();

		// Revert to the initial commit: the config is gone, as a new commit.
		const initial = page.getByTestId('commit').filter({ hasText: 'Initial commit' });
		await initial.getByRole('button', { name: 'Revert to this commit' }).click();
		await page.getByRole('dialog').getByRole('button', { name: 'Revert to this commit' }).click();
		await page.getByText(/^Reverted to [0-9a-f]{7}\.$/).waitFor();
		await page
			.getByTestId('commit')
			.first()
			.getByText(/^Revert to [0-9a-f]{7}: Initial commit$/)
			.waitFor();
		const reverted = await (await apiRequest(page, 'GET', '/api/state')).json();
		assert.deepEqual(reverted.configs, []);
		await nav(page).getByRole('link', { name: /Configs/ }).click();
		await page.getByText('No device configurations yet').waitFor();
	});
	assert.deepEqual(page.problems, []);
	await page.context().close();
});

test('a stale tab is told about the conflict instead of overwriting', async (t) => {
	const setup = await newPage(running.browser, running.controller);
	await login(setup, running.controller, '/overview');
	const base = await (await apiRequest(setup, 'GET', '/api/state')).json();
	base.configs = ['alpha', 'beta'].map((id) => ({
		displayName: id.toUpperCase(),
		identifier: id,
		tags: [],
		modules: [
			{ type: 'thymis_controller.modules.thymis.ThymisDevice', settings: { device_type: 'raspberry-pi-4' } }
		]
	}));
	assert.equal((await apiRequest(setup, 'PATCH', '/api/state', base)).status(), 200);

	const first = await newPage(running.browser, running.controller, { storageState: await setup.context().storageState() });
	const second = await newPage(running.browser, running.controller, { storageState: await setup.context().storageState() });
	// The second tab's notification socket is silent, like a tab that has not caught up yet.
	await second.routeWebSocket(/\/api\/notification/, () => {});
	await withScreenshot(t, second, async () => {
		await first.goto('/configs');
		await second.goto('/configs');
		await second.getByRole('link', { name: 'BETA' }).waitFor();

		await first.getByRole('button', { name: 'Rename ALPHA' }).click();
		await first.getByRole('dialog').getByLabel('Display name').fill('Alpha renamed');
		await first.getByRole('dialog').getByRole('button', { name: 'Rename' }).click();
		await first.getByRole('link', { name: 'Alpha renamed' }).waitFor();

		await second.getByRole('button', { name: 'Rename BETA' }).click();
		await second.getByRole('dialog').getByLabel('Display name').fill('Beta renamed');
		await second.getByRole('dialog').getByRole('button', { name: 'Rename' }).click();
		const conflict = second.getByRole('dialog', { name: 'Someone else changed the project' });
		await conflict.waitFor();
		await conflict.getByTestId('conflict-changes').getByText('Alpha renamed').waitFor();
		await conflict.getByRole('button', { name: 'Apply my change to their version' }).click();
		await second.getByRole('link', { name: 'Beta renamed' }).waitFor();
		await second.getByRole('link', { name: 'Alpha renamed' }).waitFor();
	});
	const state = await (await apiRequest(setup, 'GET', '/api/state')).json();
	assert.deepEqual(
		state.configs.map((c) => c.displayName),
		['Alpha renamed', 'Beta renamed']
	);
	for (const page of [first, second]) assert.deepEqual(page.problems.filter((p) => !p.includes('409')), []);
	for (const page of [setup, first, second]) await page.context().close();
});

test('German, dark theme and logout', async (t) => {
	const page = await newPage(running.browser, running.controller);
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/overview');
		await page.getByRole('button', { name: 'User menu' }).click();
		await page.getByLabel('Language').selectOption('de');
		await page.getByRole('navigation', { name: 'Hauptnavigation' }).getByRole('link', { name: /^Konfigurationen/ }).waitFor();
		await page.getByRole('heading', { name: 'Übersicht' }).waitFor();
		const modules = await (await apiRequest(page, 'GET', '/api/available_modules')).json();
		assert.ok(modules.some((m) => m.displayName === 'Gerät'), 'modules are German too');
		const isDark = () => page.evaluate(() => document.documentElement.classList.contains('dark'));
		const wasDark = await isDark();
		await page.getByRole('menuitem', { name: /Design/ }).click();
		assert.equal(await isDark(), !wasDark);
		await page.reload();
		await page.getByRole('heading', { name: 'Übersicht' }).waitFor();
		assert.equal(await isDark(), !wasDark, 'the theme is remembered');
		await page.getByRole('button', { name: 'Benutzermenü' }).click();
		await page.getByRole('menuitem', { name: 'Abmelden' }).click();
		await page.waitForURL(/\/login/);
		await page.getByRole('heading', { name: 'Bei Ihrem Konto anmelden' }).waitFor();
		assert.equal((await apiRequest(page, 'GET', '/api/state')).status(), 401);
	});
	assert.deepEqual(page.problems, []);
	await page.context().close();
});
