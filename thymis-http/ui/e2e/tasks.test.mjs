// Tasks in the dashboard against the real controller and the real nix, offline: the harness
// replaces the project's `thymis` and `nixpkgs` inputs by the stub flakes of
// thymis/tests/fixtures/nix-stub/, whose knobs (`thymis.stub.*`, set here through a Custom Nix
// module) make a build slow, chatty or unique. Covered: Build from the top bar (task bar, Tasks
// page with its filters, the task's page, Retry), a failing build's Nix error with its file and
// line, live coloured output, cancelling a long build, Download image with its commit-first
// dialog down to the downloaded bytes, and Update writing flake.lock.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { apiRequest, login, newPage, withScreenshot, useControllerAndBrowser } from './harness.mjs';

const running = useControllerAndBrowser();

const DEVICE = 'thymis_controller.modules.thymis.ThymisDevice';
const CUSTOM_NIX = 'thymis_controller.modules.whatever.WhateverModule';

/** The task bar at the bottom of the shell. */
const taskbar = (page) => page.getByTestId('taskbar');
/** The page's own content (without the shell's task bar). */
const content = (page) => page.getByRole('main');
/** The state pill next to the task page's title. */
const headState = (page) => content(page).getByTestId('task-state').first();
/** The task page's log of the shown process. */
const stderrLog = (page) => content(page).getByLabel('Log (standard error)', { exact: true });

let nonces = 0;
/** A Custom Nix line that makes the system derivation unique, so its build really runs. */
const nonce = () => `thymis.stub.nonce = "e2e-${Date.now()}-${process.pid}-${nonces++}";`;

/** A config of `device_type` whose Custom Nix module holds `nix` (when given). */
function config(identifier, displayName, nix, device_type = 'generic-x86_64') {
	const modules = [{ type: DEVICE, settings: { device_type, device_name: identifier } }];
	if (nix) modules.push({ type: CUSTOM_NIX, settings: { settings: nix } });
	return { displayName, identifier, tags: [], modules };
}

/** Replaces the project's configs (Build Project builds all of them). */
async function setConfigs(page, configs) {
	const state = await (await apiRequest(page, 'GET', '/api/state')).json();
	state.configs = configs;
	const response = await apiRequest(page, 'PATCH', '/api/state', state);
	assert.equal(response.status(), 200, await response.text());
}

/** Waits until the task `id` is no longer pending or running (over the API). */
async function waitForTask(page, id, timeout = 90000) {
	const until = Date.now() + timeout;
	for (;;) {
		const task = await (await apiRequest(page, 'GET', `/api/tasks/${id}`)).json();
		if (!['pending', 'running'].includes(task.state)) return task;
		if (Date.now() > until) throw new Error(`task ${id} still ${task.state}`);
		await new Promise((resolve) => setTimeout(resolve, 200));
	}
}

/** Clicks the top bar's Build; resolves to the new task's id. */
async function buildFromTopBar(page) {
	const started = page.waitForResponse((r) => r.url().endsWith('/api/action/build'));
	await page.getByTestId('build-button').click();
	const response = await started;
	assert.equal(response.status(), 200);
	return (await response.json()).task_id;
}

const count = (text, part) => text.split(part).length - 1;

test('Build from the top bar completes: task bar, Tasks page with filters, its page, Retry', async (t) => {
	const page = await newPage(running.browser, running.controller);
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/overview');
		await setConfigs(page, [config('lobby', 'Lobby', nonce())]);
		await page.reload();
		await taskbar(page).getByText('No tasks yet').waitFor();

		const taskId = await buildFromTopBar(page);
		await page.getByText('Build started.').waitFor();
		await taskbar(page).getByRole('link', { name: 'Build Project' }).waitFor();

		// Expanded, the list is remembered across a reload.
		await taskbar(page).getByRole('button', { name: 'Show the task list' }).click();
		const barRow = taskbar(page).getByTestId('taskbar-row').filter({ hasText: 'Build Project' });
		await barRow.waitFor();
		await page.reload();
		await barRow.getByTestId('task-state').filter({ hasText: 'Completed' }).waitFor({ timeout: 90000 });
		const task = await waitForTask(page, taskId);
		assert.equal(task.state, 'completed', task.exception ?? '');
		assert.ok(task.nix_status.done >= 1, JSON.stringify(task.nix_status));

		// The Tasks page: server-paged with the total in a header; filtered by state.
		const list = await apiRequest(page, 'GET', '/api/tasks?limit=50&offset=0');
		assert.equal(list.headers()['total-count'], '1');
		await page.getByRole('navigation', { name: 'Main navigation' }).getByRole('link', { name: 'Tasks' }).click();
		await page.waitForURL(/\/tasks$/);
		await page.getByText('Total: 1').waitFor();
		const row = page.getByTestId('task-row').filter({ hasText: 'Build Project' });
		await row.getByTestId('task-state').filter({ hasText: 'Completed' }).waitFor();
		await row.getByText('by admin').waitFor();
		const filters = page.getByRole('group', { name: 'Filter by state' });
		await filters.getByRole('button', { name: 'Completed' }).click();
		await page.waitForURL(/state=completed/);
		await row.waitFor();
		for (const other of ['Failed', 'Cancelled']) {
			await filters.getByRole('button', { name: other }).click();
			await page.getByText('No task in this state.').waitFor();
		}
		await filters.getByRole('button', { name: 'All' }).click();
		await page.waitForURL(/\/tasks$/);

		// Its page: the command line and Nix's progress.
		await row.getByRole('link', { name: 'View' }).click();
		await page.waitForURL(new RegExp(`/tasks/${taskId}$`));
		await page.getByRole('heading', { name: 'Build Project', level: 1 }).waitFor();
		await headState(page).filter({ hasText: 'Completed' }).waitFor();
		await content(page).locator('code', { hasText: taskId }).waitFor();
		const command = await content(page).getByTestId('command-line').textContent();
		assert.match(command, /^nix .* build '\.#thymis' --out-link /);
		assert.match(command, /--override-input thymis path:\S+\/nix-stub\/thymis/);
		const progress = content(page).getByTestId('nix-progress');
		await progress.getByText(`${task.nix_status.done} done of ${task.nix_status.expected} expected, 0 running, 0 failed`).waitFor();
		await progress.getByText('(100%)').waitFor();
		await stderrLog(page).getByText(/stub nixos: built \/nix\/store\/\S+-nixos-system-lobby/).waitFor();
		assert.equal(await content(page).getByTestId('task-exception').count(), 0);

		// Retry submits it again as a new task, which completes too.
		await content(page).getByRole('button', { name: 'Retry', exact: true }).click();
		await page.waitForURL((url) => url.pathname.startsWith('/tasks/') && !url.pathname.endsWith(taskId));
		await page.getByRole('heading', { name: 'Build Project', level: 1 }).waitFor();
		const retried = new URL(page.url()).pathname.split('/').at(-1);
		await headState(page).filter({ hasText: 'Completed' }).waitFor({ timeout: 90000 });
		const again = await waitForTask(page, retried);
		assert.equal(again.task_type, 'build_project_task');
		assert.equal(again.state, 'completed');
		await taskbar(page).getByTestId('taskbar-row').nth(1).waitFor();
		assert.equal(await taskbar(page).getByTestId('taskbar-row').count(), 2);
	});
	assert.deepEqual(page.problems, []);
	await page.context().close();
});

test('a failing build shows the Nix error with its file, line and column', async (t) => {
	const page = await newPage(running.browser, running.controller);
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/overview');
		await setConfigs(page, [config('broken', 'Broken', 'environment.etc.x.text = undefinedThing;')]);
		await page.reload();

		const taskId = await buildFromTopBar(page);
		// Started from this tab: its failure is told, with a link to the task.
		const toast = page.getByRole('alert').filter({ hasText: 'Build Project failed.' });
		await toast.getByRole('link', { name: 'View task' }).click({ timeout: 90000 });
		await page.waitForURL(new RegExp(`/tasks/${taskId}$`));
		await headState(page).filter({ hasText: 'Failed' }).waitFor();

		const exception = content(page).getByTestId('task-exception');
		await exception.getByText(/undefined variable 'undefinedThing'/).waitFor();
		const error = content(page).getByTestId('nix-error').filter({ hasText: 'undefinedThing' });
		const location = await error.getByTestId('nix-error-location').textContent();
		assert.match(location, /\/hosts\/broken\/[^/]*\.nix:\d+:\d+$/);
		const [, line, column] = location.match(/:(\d+):(\d+)$/).map(Number);
		assert.ok(line >= 2 && column >= 1, location);
		await error.getByText('Error', { exact: true }).waitFor();
		await error.getByText(/environment\.etc\.x\.text = undefinedThing;/).waitFor();
		const command = await content(page).getByTestId('command-line').textContent();
		assert.match(command, / build '\.#thymis' /);
		await content(page).getByText('Exit code').waitFor();
		assert.equal((await content(page).locator('dd.bad').textContent()).trim(), '1');
		// The log shows Nix's message, not its internal-json lines.
		const log = await stderrLog(page).textContent();
		assert.match(log, /error: undefined variable 'undefinedThing'/);
		assert.ok(!log.includes('@nix '), log);

		const task = await waitForTask(page, taskId);
		assert.equal(task.state, 'failed');
		assert.match(task.exception, /undefined variable/);
	});
	assert.deepEqual(page.problems, []);
	await page.context().close();
});

test('a build streams its coloured output live to its page', async (t) => {
	const page = await newPage(running.browser, running.controller);
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/overview');
		await setConfigs(page, [
			config('chatty', 'Chatty', `thymis.stub.logLines = 40; thymis.stub.buildSeconds = 5; ${nonce()}`)
		]);
		await page.reload();

		const taskId = await buildFromTopBar(page);
		await page.getByRole('status').filter({ hasText: 'Build started.' }).getByRole('link', { name: 'View task' }).click();
		await page.waitForURL(new RegExp(`/tasks/${taskId}$`));

		// Output arrives while the build runs.
		const log = stderrLog(page);
		await log.getByText('stub nixos: still building... 1s').waitFor({ timeout: 60000 });
		assert.equal(await headState(page).textContent(), 'Running');
		assert.ok(!(await log.textContent()).includes('stub nixos: built /nix/store/'));
		await content(page).getByTestId('command-line').waitFor();

		await headState(page).filter({ hasText: 'Completed' }).waitFor({ timeout: 60000 });
		await log.getByText(/stub nixos: built \/nix\/store\//).waitFor();
		const text = await log.textContent();
		// Each line once, in order: the pieces add up to the whole log.
		for (let i = 1; i <= 40; i++) assert.equal(count(text, `stub build log line ${i} of 40\n`), 1, `line ${i}`);
		assert.ok(text.indexOf('line 1 of 40') < text.indexOf('line 40 of 40'));
		assert.equal(count(text, 'still building... 4s'), 1);
		// Nix's colours are rendered, its escape sequences are not shown.
		assert.ok(!/\x1b|\[\d+(;\d+)*m/.test(text), text);
		const warning = log.locator('span.ansi-fg-5.ansi-bold', { hasText: 'warning:' }).first();
		await warning.waitFor();
		const colours = await warning.evaluate((span) => ({
			span: getComputedStyle(span).color,
			log: getComputedStyle(span.closest('pre')).color,
			weight: getComputedStyle(span).fontWeight
		}));
		assert.notEqual(colours.span, colours.log);
		assert.equal(colours.weight, '700');
		// The same text as the server stored.
		const task = await waitForTask(page, taskId);
		const stored = task.processes[0].process_stderr.replace(/\x1b\[[\d;]*m/g, '');
		assert.equal(text, stored);
	});
	assert.deepEqual(page.problems, []);
	await page.context().close();
});

test('a long build is cancelled from its page', async (t) => {
	const page = await newPage(running.browser, running.controller);
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/overview');
		await setConfigs(page, [config('slow', 'Slow', `thymis.stub.buildSeconds = 120; ${nonce()}`)]);
		await page.reload();

		const taskId = await buildFromTopBar(page);
		await taskbar(page).getByRole('link', { name: 'Build Project' }).click();
		await page.waitForURL(new RegExp(`/tasks/${taskId}$`));
		// The builder runs.
		await stderrLog(page).getByText('stub nixos: still building... 1s').waitFor({ timeout: 60000 });
		await headState(page).filter({ hasText: 'Running' }).waitFor();
		assert.equal(await content(page).getByRole('button', { name: 'Retry', exact: true }).count(), 0);

		await content(page).getByRole('button', { name: 'Cancel', exact: true }).click();
		await headState(page).filter({ hasText: 'Cancelled' }).waitFor({ timeout: 30000 });
		await page.getByRole('status').filter({ hasText: 'Build Project was cancelled.' }).waitFor();
		// Its reason is told as a cancellation, not as an error.
		await content(page).getByTestId('task-exception').getByRole('heading', { name: 'Cancelled' }).waitFor();
		await taskbar(page).getByTestId('task-state').filter({ hasText: 'Cancelled' }).first().waitFor();
		// Finished: it can be retried, not cancelled again.
		await content(page).getByRole('button', { name: 'Retry', exact: true }).waitFor();
		assert.equal(await content(page).getByRole('button', { name: 'Cancel', exact: true }).count(), 0);
		const task = await waitForTask(page, taskId, 30000);
		assert.equal(task.state, 'cancelled');
		assert.ok(task.end_time);
		// Nothing left to stop.
		assert.equal((await apiRequest(page, 'POST', `/api/tasks/${taskId}/cancel`)).status(), 409);

		// The Tasks page files it under Cancelled.
		await page.goto('/tasks?state=cancelled');
		await page.getByTestId('task-row').filter({ hasText: 'Build Project' }).getByTestId('task-state').filter({ hasText: 'Cancelled' }).waitFor();
		await page.getByText('Total: 1').waitFor();

		// In German and the dark theme too.
		await page.context().addCookies([{ name: 'locale', value: 'de', url: running.controller.url }]);
		await page.evaluate(() => localStorage.setItem('theme', 'dark'));
		await page.goto(`/tasks/${taskId}`);
		await page.getByRole('heading', { name: 'Projekt bauen', level: 1 }).waitFor();
		await headState(page).filter({ hasText: 'Abgebrochen' }).waitFor();
		await content(page).getByTestId('task-exception').getByRole('heading', { name: 'Abgebrochen' }).waitFor();
		await content(page).getByRole('button', { name: 'Wiederholen', exact: true }).waitFor();
		await content(page).getByLabel('Protokoll (Standardfehler)', { exact: true }).getByText('still building... 1s').waitFor();
		assert.ok(await page.evaluate(() => document.documentElement.classList.contains('dark')));
		await page.goto('/tasks?state=cancelled');
		await page.getByRole('group', { name: 'Nach Zustand filtern' }).getByRole('button', { name: 'Abgebrochen' }).waitFor();
		await page.getByText('Insgesamt: 1').waitFor();
	});
	assert.deepEqual(page.problems, []);
	await page.context().close();
});

test('Download image commits first, then builds the image, which downloads', async (t) => {
	const page = await newPage(running.browser, running.controller, { acceptDownloads: true });
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/overview');
		await setConfigs(page, []);
		// A new Raspberry Pi 4 config: its image is an SD card image.
		await page.goto('/configs');
		await page.getByRole('button', { name: 'Create configuration' }).first().click();
		const create = page.getByRole('dialog');
		await create.getByLabel('Display name').fill('Image Kiosk');
		await create.getByText('Identifier: image-kiosk').waitFor();
		await create.getByLabel('Device type').selectOption({ label: 'Raspberry Pi 4' });
		await create.getByRole('button', { name: 'Create' }).click();
		await page.waitForURL(/\/configs\/image-kiosk\/configure/);

		// The server refuses a dirty repository.
		const refused = await apiRequest(page, 'POST', '/api/action/build-download-image?identifier=image-kiosk');
		assert.equal(refused.status(), 409);
		assert.match((await refused.json()).detail, /uncommitted/i);

		await page.goto('/configs/image-kiosk');
		await page.getByTestId('download-image').click();
		const dialog = page.getByRole('dialog', { name: 'Commit changes' });
		await dialog.getByText('An image is built from the last commit').waitFor();
		assert.equal(await dialog.getByLabel('Summary of the changes').inputValue(), 'Build image for Image Kiosk');
		const submitted = page.waitForResponse((r) => r.url().includes('/api/action/build-download-image'));
		const downloaded = page.waitForEvent('download', { timeout: 90000 });
		await dialog.getByRole('button', { name: 'Commit & build image' }).click();
		const response = await submitted;
		assert.equal(response.status(), 200);
		const { task_id: taskId } = await response.json();
		await page.getByText('Building the image for Image Kiosk').waitFor();
		await page.getByTestId('commit-button').filter({ hasText: 'Commit (0)' }).waitFor();

		const download = await downloaded;
		assert.equal(download.suggestedFilename(), 'thymis-image-image-kiosk.img');
		const saved = join(running.controller.dataDir, 'downloaded.img');
		await download.saveAs(saved);
		const built = readFileSync(join(running.controller.dataDir, 'data', 'images', 'image-kiosk.img'));
		assert.ok(built.length > 0);
		assert.ok(readFileSync(saved).equals(built), 'the download is the built image');
		await page.getByText('Downloading the image for Image Kiosk.').waitFor();

		const task = await waitForTask(page, taskId);
		assert.equal(task.state, 'completed', task.exception ?? '');
		assert.equal(task.task_type, 'build_device_image_task');
		assert.equal(task.task_submission_data.configuration_id, 'image-kiosk');
		assert.equal(task.task_submission_data.image_format, 'sd-card-image');

		// Its page: two processes (nix build, then the image assembler).
		await page.goto(`/tasks/${taskId}`);
		await page.getByRole('heading', { name: 'Build Image for Image Kiosk', level: 1 }).waitFor();
		await headState(page).filter({ hasText: 'Completed' }).waitFor();
		await content(page).getByRole('link', { name: 'Image Kiosk' }).waitFor();
		const tabs = content(page).getByRole('tab');
		assert.equal(await tabs.count(), 2);
		await tabs.first().click();
		assert.match(
			await content(page).getByTestId('command-line').textContent(),
			/build '?git\+file:\/\/\S+\?rev=[0-9a-f]{40}#nixosConfigurations\."image-kiosk"\./
		);
	});
	assert.deepEqual(page.problems, []);
	await page.context().close();
});

test('Update from the top bar completes and writes flake.lock; the Tasks page is live', async (t) => {
	const page = await newPage(running.browser, running.controller);
	await withScreenshot(t, page, async () => {
		const lock = join(running.controller.dataDir, 'data', 'repository', 'flake.lock');
		await login(page, running.controller, '/tasks');
		await page.getByRole('heading', { name: 'Tasks' }).waitFor();
		await page.getByTestId('task-row').first().waitFor();
		const before = await page.getByTestId('task-row').count();
		assert.ok(!existsSync(lock), 'no flake.lock before the update');

		// The module catalogue and repository status reload once the update is done.
		const reloaded = page.waitForRequest((r) => r.url().endsWith('/api/available_modules'), { timeout: 60000 });
		const started = page.waitForResponse((r) => r.url().endsWith('/api/action/update'));
		await page.getByTestId('update-button').click();
		const { task_id: taskId } = await (await started).json();
		await page.getByText('Update of the Nix flake started.').waitFor();
		// It appears at the top of the open Tasks page.
		await page.getByTestId('task-row').nth(before).waitFor();
		const row = page.getByTestId('task-row').first();
		await row.getByRole('link', { name: 'Update Nix Flake' }).waitFor();
		await row.getByTestId('task-state').filter({ hasText: 'Completed' }).waitFor({ timeout: 60000 });
		await reloaded;

		const task = await waitForTask(page, taskId);
		assert.equal(task.state, 'completed', task.exception ?? '');
		assert.ok(existsSync(lock), 'flake.lock was written');
		const nodes = JSON.parse(readFileSync(lock, 'utf8')).nodes;
		assert.ok(nodes.thymis && nodes.nixpkgs, Object.keys(nodes).join(', '));
		// flake.lock is a change to commit now.
		await page.getByTestId('commit-button').filter({ hasText: /Commit \([1-9]/ }).waitFor();
	});
	assert.deepEqual(page.problems, []);
	await page.context().close();
});

test('an unknown task says so', async (t) => {
	const page = await newPage(running.browser, running.controller);
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/tasks/00000000-0000-0000-0000-000000000000');
		await page.getByText('There is no task 00000000-0000-0000-0000-000000000000.').waitFor();
	});
	// The browser logs the 404 of the task lookup; nothing else went wrong.
	assert.deepEqual(
		page.problems.filter((problem) => !/status of 404/.test(problem)),
		[]
	);
	await page.context().close();
});
