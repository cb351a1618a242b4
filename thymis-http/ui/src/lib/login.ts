// Sending the user to the login page and back to where they were: the login form posts the
// page as `redirect`, and the server only follows paths on this site.

export function goToLogin() {
	if (location.pathname === '/login') return;
	const target = `${location.pathname}${location.search}`;
	location.assign(`/login?redirect=${encodeURIComponent(target)}`);
}
