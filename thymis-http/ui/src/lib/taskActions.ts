// The project actions that start tasks (Build, Update, Build image) and what follows when
// they finish: a toast linking to the task, module reload after an update, and the image
// download in the tab that asked for the image.

import { api, ApiError, enc } from './api';
import { t } from './i18n.svelte';
import { project } from './project.svelte';
import { configName } from './taskInfo';
import { tasks } from './tasks.svelte';
import { showError, toasts } from './toasts.svelte';
import type { TaskShort } from './types';

type Started = { message: string; task_id: string };

/** A link to a task's page, for toasts. */
export const taskLink = (id: string) => ({ href: `/tasks/${enc(id)}`, label: t('tasks.view-task') });

/** Tells the user how a task they started from this tab ended, unless it completed. */
function reportFailure(task: TaskShort, label: string) {
	if (task.state === 'failed') toasts.show('error', t('tasks.failed-toast', { label }), 0, taskLink(task.id));
	else if (task.state === 'cancelled') toasts.show('info', t('tasks.cancelled-toast', { label }), 6000, taskLink(task.id));
}

/** Starts "Build Project" (builds every config; works with uncommitted changes). */
export async function startBuild(): Promise<string> {
	const { task_id } = await api.post<Started>('/api/action/build');
	toasts.show('success', t('tasks.build-started'), 6000, taskLink(task_id));
	tasks.whenDone(task_id, (task) => reportFailure(task, t('tasks.type.build_project_task')));
	return task_id;
}

/** Starts "Update Nix Flake"; once it is done the module catalogue and changes reload. */
export async function startUpdate(): Promise<string> {
	const { task_id } = await api.post<Started>('/api/action/update');
	toasts.show('success', t('tasks.update-started'), 6000, taskLink(task_id));
	tasks.whenDone(task_id, (task) => {
		reportFailure(task, t('tasks.type.project_flake_update_task'));
		// flake.lock changed (or not): the modules of external repositories may have too.
		Promise.all([project.loadModules(), project.loadRepoStatus()]).catch(showError);
	});
	return task_id;
}

/**
 * Asks the server to build config `identifier`'s image and downloads it once built.
 * Resolves to the task id, or to the server's reason when it refuses (409: uncommitted
 * changes, or no commit yet).
 */
export async function buildImage(identifier: string): Promise<{ task: string } | { refused: string }> {
	let task_id: string;
	try {
		({ task_id } = await api.post<Started>(
			`/api/action/build-download-image?identifier=${enc(identifier)}`
		));
	} catch (error) {
		if (error instanceof ApiError && error.status === 409) return { refused: error.message };
		throw error;
	}
	const name = configName(identifier);
	toasts.show('info', t('tasks.image-started', { name }), 6000, taskLink(task_id));
	tasks.whenDone(task_id, (task) => {
		if (task.state === 'completed') downloadImage(identifier).catch(showError);
		else reportFailure(task, t('tasks.type.build_device_image_task', { config: name }));
	});
	return { task: task_id };
}

/** Downloads config `identifier`'s built image (after checking it exists). */
export async function downloadImage(identifier: string) {
	const url = `/api/download-image?identifier=${enc(identifier)}`;
	const response = await fetch(url, { method: 'HEAD', credentials: 'same-origin' });
	if (!response.ok) {
		toasts.show('error', t('tasks.image-missing', { name: configName(identifier) }));
		return;
	}
	const link = document.createElement('a');
	link.href = url;
	// The server names the file (thymis-image-<id>.<ext>).
	link.download = '';
	link.hidden = true;
	document.body.append(link);
	link.click();
	link.remove();
	toasts.show('success', t('tasks.image-downloading', { name: configName(identifier) }));
}
