import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { State } from '../../lib/types';

// A fake project: `save` applies the change to a copy of `saved` and waits for the test to
// answer it (`answer`), so the order of saves can be checked.
type Call = { draft: State; resolve: (ok: boolean) => void; reject: (error: unknown) => void };
const calls: Call[] = [];
let saved: State;

vi.mock('../../lib/project.svelte', () => ({
	project: {
		save: (change: (draft: State) => void) =>
			new Promise<boolean>((resolve, reject) => {
				const draft = structuredClone(saved);
				change(draft);
				calls.push({
					draft,
					resolve: (ok) => {
						if (ok) saved = draft;
						resolve(ok);
					},
					reject
				});
			})
	}
}));
const shown: unknown[] = [];
vi.mock('../../lib/toasts.svelte', () => ({ showError: (error: unknown) => shown.push(error) }));

const { ApiError } = await import('../../lib/api');
const { edits, TYPING_DELAY } = await import('./edits.svelte');

const initial = (): State => ({
	version: '0.0.9',
	repositories: {},
	tags: [],
	configs: [
		{
			displayName: 'C',
			identifier: 'c',
			tags: [],
			modules: [{ type: 'kiosk', settings: { kiosk_url: 'a', volume: 5 } }]
		}
	]
});
const at = { kind: 'config' as const, identifier: 'c', moduleIndex: 0 };
const settings = () => saved.configs[0].modules[0].settings;
/** Lets pending timers and promise callbacks run. */
const settle = async (ms = 0) => {
	await vi.advanceTimersByTimeAsync(ms);
};

beforeEach(() => {
	vi.useFakeTimers();
	saved = initial();
	calls.length = 0;
	shown.length = 0;
});

afterEach(async () => {
	// Leave the shared queue empty for the next test.
	edits.discardRefused();
	for (const call of calls) call.resolve(true);
	await settle(TYPING_DELAY);
	for (const call of calls) call.resolve(true);
	await settle();
	vi.useRealTimers();
});

describe('setting edits', () => {
	it('save typing once after a pause, with the last text', async () => {
		edits.set({ ...at, key: 'kiosk_url', value: 'ab' }, true);
		await settle(100);
		edits.set({ ...at, key: 'kiosk_url', value: 'abc' }, true);
		await settle(TYPING_DELAY - 1);
		expect(calls).toHaveLength(0);
		expect(edits.lookup({ ...at, key: 'kiosk_url' })?.value).toBe('abc');
		await settle(1);
		expect(calls).toHaveLength(1);
		calls[0].resolve(true);
		await settle();
		expect(settings().kiosk_url).toBe('abc');
		expect(edits.lookup({ ...at, key: 'kiosk_url' })).toBeUndefined();
	});

	it('save other edits of the same moment together', async () => {
		edits.set({ ...at, key: 'volume', value: 7 });
		edits.set({ ...at, key: 'kiosk_url', clear: true });
		await settle();
		expect(calls).toHaveLength(1);
		calls[0].resolve(true);
		await settle();
		expect(settings()).toEqual({ volume: 7 });
	});

	it('never overlap saves, and keep text typed meanwhile', async () => {
		edits.set({ ...at, key: 'kiosk_url', value: 'x' });
		await settle();
		expect(calls).toHaveLength(1);
		edits.set({ ...at, key: 'kiosk_url', value: 'xy' }, true);
		await settle(TYPING_DELAY);
		// The second save waits for the first one.
		expect(calls).toHaveLength(1);
		calls[0].resolve(true);
		await settle();
		// The answer to the first save does not hide the newer text.
		expect(edits.lookup({ ...at, key: 'kiosk_url' })?.value).toBe('xy');
		expect(calls).toHaveLength(2);
		calls[1].resolve(true);
		await settle();
		expect(settings().kiosk_url).toBe('xy');
		expect(edits.lookup({ ...at, key: 'kiosk_url' })).toBeUndefined();
	});

	it('keep refused edits shown and send them again with the next edit', async () => {
		edits.set({ ...at, key: 'kiosk_url', value: 'broken' }, true);
		await settle(TYPING_DELAY);
		calls[0].reject(new ApiError(422, [{ path: '$', message: 'no', severity: 'error' }]));
		await settle();
		expect(edits.refused).toBe(true);
		expect(edits.lookup({ ...at, key: 'kiosk_url' })?.value).toBe('broken');
		expect(shown).toHaveLength(0);
		edits.set({ ...at, key: 'volume', value: 9 });
		await settle();
		expect(calls[1].draft.configs[0].modules[0].settings).toEqual({ kiosk_url: 'broken', volume: 9 });
		calls[1].resolve(true);
		await settle();
		expect(edits.refused).toBe(false);
		expect(edits.lookup({ ...at, key: 'kiosk_url' })).toBeUndefined();
	});

	it('drop edits on other errors and show the error', async () => {
		edits.set({ ...at, key: 'volume', value: 1 });
		await settle();
		calls[0].reject(new ApiError(500, 'boom'));
		await settle();
		expect(shown).toHaveLength(1);
		expect(edits.lookup({ ...at, key: 'volume' })).toBeUndefined();
		expect(edits.refused).toBe(false);
	});

	it('save a structural change after the waiting edits', async () => {
		edits.set({ ...at, key: 'kiosk_url', value: 'typed' }, true);
		const done = edits.change((draft) => {
			draft.configs[0].modules.push({ type: 'files', settings: {} });
		});
		await settle();
		calls[0].resolve(true);
		await settle();
		calls[1].resolve(true);
		expect(await done).toBe(true);
		expect(saved.configs[0].modules.map((m) => m.type)).toEqual(['kiosk', 'files']);
		expect(settings().kiosk_url).toBe('typed');
	});

	it('forget refused edits when the editor is left', async () => {
		edits.set({ ...at, key: 'kiosk_url', value: 'broken' });
		await settle();
		calls[0].reject(new ApiError(422, []));
		await settle();
		edits.discardRefused();
		expect(edits.lookup({ ...at, key: 'kiosk_url' })).toBeUndefined();
		expect(await edits.flush()).toBe(true);
		expect(calls).toHaveLength(1);
	});
});
