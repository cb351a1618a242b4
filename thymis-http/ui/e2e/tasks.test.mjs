// Tasks in the dashboard against the real controller: Build and Update from the top bar, the
// task bar, the Tasks page (live, filtered), a task's page, Retry, and Download image with
// its commit-first dialog. Builds may complete or fail here (whether Nix can build in the
// test environment is not this file's concern), so the tests accept either ending.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiRequest, login, newPage, withScreenshot, useControllerAndBrowser } from './harness.mjs';

const running = useControllerAndBrowser();

/** The task bar at the bottom of the shell. */
const taskbar = (page) => page.getByTestId('taskbar');

/** Waits until the task `id` is no longer pending or running (over the API). */
async function waitForTask(page, id, timeout = 120000) {
	const until = Date.now() + timeout;
	for (;;) {
		const task = await (await apiRequest(page, 'GET', `/api/tasks/${id}`)).json();
		if (!['pending', 'running'].includes(task.state)) return task;
		if (Date.now() > until) throw new Error(`task ${id} still ${task.state}`);
		await new Promise((resolve) => setTimeout(resolve, 250));
	}
}

test('Build from the top bar shows up in the task bar, the Tasks page and its own page', async (t) => {
	const page = await newPage(running.browser, running.controller);
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/overview');
		await taskbar(page).getByText('No tasks yet').waitFor();

		const started = page.waitForResponse((r) => r.url().endsWith('/api/action/build'));
		await page.getByTestId('build-button').click();
		const { task_id } = await (await started).json();
		await page.getByText('Build started.').waitFor();
		await taskbar(page).getByRole('link', { name: 'Build Project' }).waitFor();

		// Expanded, the list is remembered across a reload.
		await taskbar(page).getByRole('button', { name: 'Show the task list' }).click();
		await taskbar(page).getByTestId('taskbar-row').first().waitFor();
		await page.reload();
		await taskbar(page).getByTestId('taskbar-row').first().waitFor();

		const task = await waitForTask(page, task_id);
		const stateName = task.state[0].toUpperCase() + task.state.slice(1);
		await taskbar(page).getByTestId('task-state').filter({ hasText: stateName }).first().waitFor();

		// The Tasks page: server-paged with the total in a header.
		const list = await apiRequest(page, 'GET', '/api/tasks?limit=50&offset=0');
		assert.equal(list.headers()['total-count'], '1');
		await page.getByRole('navigation', { name: 'Main navigation' }).getByRole('link', { name: 'Tasks' }).click();
		await page.waitForURL(/\/tasks$/);
		const row = page.getByTestId('task-row').filter({ hasText: 'Build Project' });
		await row.getByTestId('task-state').filter({ hasText: stateName }).waitFor();
		// Filters: the task is under its state, not under another one.
		await page.getByRole('group', { name: 'Filter by state' }).getByRole('button', { name: stateName }).click();
		await page.waitForURL(new RegExp(`state=${task.state}`));
		await row.waitFor();
		await page.getByRole('group', { name: 'Filter by state' }).getByRole('button', { name: 'Pending' }).click();
		await page.getByText('No task in this state.').waitFor();
		await page.getByRole('group', { name: 'Filter by state' }).getByRole('button', { name: 'All' }).click();

		// Its page.
		await row.getByRole('link', { name: 'View' }).click();
		await page.waitForURL(new RegExp(`/tasks/${task_id}$`));
		await page.getByRole('heading', { name: 'Build Project', level: 1 }).waitFor();
		await page.getByText(task_id).waitFor();
		if (task.state === 'failed' && task.exception) {
			await page.getByTestId('task-exception').waitFor();
		}
		if (task.processes?.length) {
			await page.getByTestId('command-line').first().waitFor();
		}

		// Retry submits it again and shows the new task.
		await page.getByRole('button', { name: 'Retry', exact: true }).click();
		await page.waitForURL((url) => url.pathname.startsWith('/tasks/') && !url.pathname.endsWith(task_id));
		await page.getByRole('heading', { name: 'Build Project', level: 1 }).waitFor();
		const retried = page.url().split('/').at(-1);
		const again = await waitForTask(page, retried);
		assert.equal(again.task_type, 'build_project_task');
	});
	assert.deepEqual(page.problems, []);
	await page.context().close();
});

test('the Tasks page is live: a task started elsewhere appears at the top', async (t) => {
	const page = await newPage(running.browser, running.controller);
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/tasks');
		await page.getByRole('heading', { name: 'Tasks' }).waitFor();
		const before = await page.getByTestId('task-row').count();
		const response = await apiRequest(page, 'POST', '/api/action/update');
		const { task_id } = await response.json();
		await page.getByTestId('task-row').nth(before).waitFor();
		await page.getByTestId('task-row').first().getByRole('link', { name: 'Update Nix Flake' }).waitFor();
		// The module catalogue reloads once the update is done (only for updates this tab started,
		// so start one from the top bar too).
		await waitForTask(page, task_id);
		const reloaded = page.waitForRequest((r) => r.url().endsWith('/api/available_modules'), { timeout: 120000 });
		await page.getByTestId('update-button').click();
		await page.getByText('Update of the Nix flake started.').waitFor();
		await reloaded;
	});
	assert.deepEqual(page.problems, []);
	await page.context().close();
});

test('Download image commits first, then builds; the image downloads or the failure is shown', async (t) => {
	const page = await newPage(running.browser, running.controller, { acceptDownloads: true });
	await withScreenshot(t, page, async () => {
		await login(page, running.controller, '/overview');
		const state = await (await apiRequest(page, 'GET', '/api/state')).json();
		state.configs.push({
			displayName: 'Image Kiosk',
			identifier: 'image-kiosk',
			tags: [],
			modules: [
				{
					type: 'thymis_controller.modules.thymis.ThymisDevice',
					settings: { device_type: 'raspberry-pi-4', image_format: 'sd-card-image' }
				}
			]
		});
		assert.equal((await apiRequest(page, 'PATCH', '/api/state', state)).status(), 200);

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
		const download = page.waitForEvent('download', { timeout: 300000 }).catch(() => null);
		await dialog.getByRole('button', { name: 'Commit & build image' }).click();
		const response = await submitted;
		assert.equal(response.status(), 200);
		const { task_id } = await response.json();
		await page.getByText('Building the image for Image Kiosk').waitFor();
		await page.getByTestId('commit-button').filter({ hasText: 'Commit (0)' }).waitFor();

		const task = await waitForTask(page, task_id, 300000);
		assert.equal(task.task_submission_data.configuration_id, 'image-kiosk');
		if (task.state === 'completed') {
			const file = await download;
			assert.match(file.suggestedFilename(), /^thymis-image-image-kiosk\.(img|qcow2|iso)$/);
		} else {
			const toast = page.getByRole('alert').filter({ hasText: 'Build Image for Image Kiosk failed.' });
			await toast.getByRole('link', { name: 'View task' }).click();
			await page.waitForURL(new RegExp(`/tasks/${task_id}$`));
			await page.getByRole('heading', { name: 'Build Image for Image Kiosk', level: 1 }).waitFor();
		}
	});
	// A failed image build answers the download check with nothing: no request failed.
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
