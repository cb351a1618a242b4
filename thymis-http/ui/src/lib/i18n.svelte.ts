// English and German. The locale comes from the `locale` cookie (which the server also reads
// to localise module names), else the browser language.

import { dictionaries, type Locale } from '../locales';

export const LOCALES: { id: Locale; name: string }[] = [
	{ id: 'en', name: 'English' },
	{ id: 'de', name: 'Deutsch' }
];

function initialLocale(): Locale {
	const cookie = document.cookie.match(/(?:^|;\s*)locale=(\w+)/)?.[1];
	if (cookie === 'en' || cookie === 'de') return cookie;
	return navigator.language.toLowerCase().startsWith('de') ? 'de' : 'en';
}

class I18n {
	locale = $state<Locale>(initialLocale());

	set(locale: Locale) {
		this.locale = locale;
		document.cookie = `locale=${locale}; path=/; max-age=31536000; samesite=strict`;
		document.documentElement.lang = locale;
	}
}

export const i18n = new I18n();
document.documentElement.lang = i18n.locale;

/** The text for `key` in the current locale, with `{name}` placeholders filled in. */
export function t(key: string, params: Record<string, string | number> = {}): string {
	const text = dictionaries[i18n.locale][key] ?? dictionaries.en[key] ?? key;
	return text.replace(/\{(\w+)\}/g, (whole, name) =>
		name in params ? String(params[name]) : whole
	);
}

/** A date and time in the current locale. */
export function formatDate(value: string | number | Date): string {
	const date = new Date(value);
	return Number.isNaN(date.getTime())
		? String(value)
		: date.toLocaleString(i18n.locale, { dateStyle: 'medium', timeStyle: 'short' });
}

/** "3 minutes ago" in the current locale. */
export function relativeTime(value: string | number | Date): string {
	const seconds = (new Date(value).getTime() - Date.now()) / 1000;
	if (Number.isNaN(seconds)) return '';
	const units: [Intl.RelativeTimeFormatUnit, number][] = [
		['year', 31536000],
		['month', 2592000],
		['day', 86400],
		['hour', 3600],
		['minute', 60],
		['second', 1]
	];
	const format = new Intl.RelativeTimeFormat(i18n.locale, { numeric: 'auto' });
	for (const [unit, size] of units) {
		if (Math.abs(seconds) >= size || unit === 'second') {
			return format.format(Math.round(seconds / size), unit);
		}
	}
	return '';
}

/** A byte count as "1.2 MB". */
export function formatBytes(bytes: number): string {
	const units = ['B', 'KB', 'MB', 'GB', 'TB'];
	let value = bytes;
	let unit = 0;
	while (value >= 1000 && unit < units.length - 1) {
		value /= 1000;
		unit++;
	}
	return `${value.toLocaleString(i18n.locale, { maximumFractionDigits: unit ? 1 : 0 })} ${units[unit]}`;
}
