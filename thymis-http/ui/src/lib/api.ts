// The controller's REST API: one fetch wrapper that turns error answers into `ApiError`s
// carrying the server's `detail`, and sends the user to the login page when the session ends.

export class ApiError extends Error {
	constructor(
		readonly status: number,
		readonly detail: unknown,
		readonly body: Record<string, unknown> = {}
	) {
		super(describeDetail(detail) || `HTTP ${status}`);
	}
}

/** A readable message from a `detail` (a string, or a list of validation problems). */
export function describeDetail(detail: unknown): string {
	if (typeof detail === 'string') return detail;
	if (Array.isArray(detail)) {
		return detail
			.map((problem) =>
				typeof problem === 'object' && problem && 'message' in problem
					? `${(problem as { path?: string }).path ?? ''} ${(problem as { message: string }).message}`.trim()
					: JSON.stringify(problem)
			)
			.join('\n');
	}
	return detail == null ? '' : JSON.stringify(detail);
}

type Options = {
	body?: unknown;
	headers?: Record<string, string>;
	/** Return the raw response instead of parsed JSON. */
	raw?: boolean;
};

let onUnauthorized: () => void = () => {};

/** What to do when the API answers 401 (set by the app: go to the login page). */
export function setUnauthorizedHandler(handler: () => void) {
	onUnauthorized = handler;
}

export async function request<T = unknown>(
	method: string,
	path: string,
	options: Options = {}
): Promise<T> {
	const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
	let body: BodyInit | undefined;
	if (options.body instanceof FormData) {
		body = options.body;
	} else if (options.body !== undefined) {
		headers['content-type'] = 'application/json';
		body = JSON.stringify(options.body);
	}
	const response = await fetch(path, { method, headers, body, credentials: 'same-origin' });
	if (response.status === 401) {
		onUnauthorized();
	}
	if (!response.ok) {
		let parsed: Record<string, unknown> = {};
		try {
			parsed = await response.json();
		} catch {
			parsed = { detail: response.statusText };
		}
		throw new ApiError(response.status, parsed.detail ?? response.statusText, parsed);
	}
	if (options.raw) return response as T;
	const text = await response.text();
	return (text ? JSON.parse(text) : null) as T;
}

export const api = {
	get: <T>(path: string, options?: Options) => request<T>('GET', path, options),
	post: <T>(path: string, body?: unknown, options?: Options) =>
		request<T>('POST', path, { ...options, body }),
	patch: <T>(path: string, body?: unknown, options?: Options) =>
		request<T>('PATCH', path, { ...options, body }),
	delete: <T>(path: string, options?: Options) => request<T>('DELETE', path, options)
};

/** A path segment or query value, percent-encoded. */
export const enc = encodeURIComponent;
