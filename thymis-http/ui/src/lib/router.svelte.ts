// Client-side routing on the History API: the current path and query as reactive state, and
// link clicks inside the app handled without a page load.

class Route {
	path = $state(location.pathname);
	search = $state(location.search);

	get query(): URLSearchParams {
		return new URLSearchParams(this.search);
	}

	sync() {
		this.path = location.pathname;
		this.search = location.search;
	}
}

export const route = new Route();

/** Goes to `href` inside the app (`replace` keeps the history entry). */
export function navigate(href: string, replace = false) {
	if (replace) history.replaceState(null, '', href);
	else history.pushState(null, '', href);
	route.sync();
	window.scrollTo(0, 0);
}

/** Replaces one query parameter of the current page (null removes it). */
export function setQuery(name: string, value: string | null) {
	const query = route.query;
	if (value === null) query.delete(name);
	else query.set(name, value);
	const search = query.toString();
	navigate(`${route.path}${search ? `?${search}` : ''}`, true);
}

/** Intercepts clicks on same-origin links so they route on the client. */
export function installLinkHandler() {
	addEventListener('popstate', () => route.sync());
	document.addEventListener('click', (event) => {
		if (event.defaultPrevented || event.button !== 0) return;
		if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
		const anchor = (event.target as Element | null)?.closest?.('a');
		if (!anchor || anchor.target || anchor.hasAttribute('download')) return;
		const url = new URL(anchor.href, location.href);
		if (url.origin !== location.origin) return;
		// The API, the docs and login/logout are server pages.
		if (/^\/(api|auth|docs|openapi\.json)(\/|$)/.test(url.pathname)) return;
		event.preventDefault();
		navigate(url.pathname + url.search);
	});
}

/** Matches `pattern` (segments like `:id`) against `path`; the named segments or null. */
export function match(pattern: string, path: string): Record<string, string> | null {
	const want = pattern.split('/').filter(Boolean);
	const have = path.split('/').filter(Boolean);
	if (want.length !== have.length) return null;
	const params: Record<string, string> = {};
	for (let i = 0; i < want.length; i++) {
		if (want[i].startsWith(':')) params[want[i].slice(1)] = decodeURIComponent(have[i]);
		else if (want[i] !== have[i]) return null;
	}
	return params;
}
