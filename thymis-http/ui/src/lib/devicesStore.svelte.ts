// Every device, loaded once for the whole dashboard (the sidebar's count, the Overview and the
// Devices page share it) and reloaded whenever the server says devices changed.

import type { Device } from './devices';
import { loadDevices } from './devicesApi';
import { affects, onInvalidate } from './notifications';

const PATH = '/api/all_deployment_infos';

class DeviceStore {
	/** The devices, or null until they first arrived. */
	list = $state.raw<Device[] | null>(null);
	/** Why the last load failed, or ''. */
	error = $state('');
	#ticket = 0;

	async load() {
		// Only the newest answer counts when loads overlap.
		const ticket = ++this.#ticket;
		try {
			const list = await loadDevices();
			if (ticket !== this.#ticket) return;
			this.list = list;
			this.error = '';
		} catch (failure) {
			if (ticket === this.#ticket) this.error = failure instanceof Error ? failure.message : String(failure);
		}
	}

	/** Loads now and on every invalidation; returns the function that stops listening. */
	start(): () => void {
		this.load();
		return onInvalidate((paths) => {
			if (affects(paths, PATH)) this.load();
		});
	}
}

export const devices = new DeviceStore();
