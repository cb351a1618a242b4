// Light and dark theme: the `dark` class on <html>, remembered in localStorage, following the
// system until the user picks one.

type Theme = 'light' | 'dark';

function initialTheme(): Theme {
	const saved = localStorage.getItem('theme');
	if (saved === 'light' || saved === 'dark') return saved;
	return matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

class ThemeState {
	current = $state<Theme>(initialTheme());

	toggle() {
		this.set(this.current === 'dark' ? 'light' : 'dark');
	}

	set(theme: Theme) {
		this.current = theme;
		localStorage.setItem('theme', theme);
		apply(theme);
	}
}

function apply(theme: Theme) {
	document.documentElement.classList.toggle('dark', theme === 'dark');
}

export const theme = new ThemeState();
apply(theme.current);
