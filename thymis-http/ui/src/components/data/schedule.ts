// The auto-update schedule (`/api/controller-settings`): times are UTC, weekday 0 is Monday.

export type Frequency = 'daily' | 'weekly' | 'monthly' | 'monthly_weekday';

export type Schedule = {
	frequency: Frequency;
	/** `HH:MM`, UTC. */
	time: string;
	/** daily: the days it runs. */
	weekdays: number[] | null;
	/** weekly and monthly_weekday. */
	weekday: number | null;
	/** monthly: 1–28. */
	day_of_month: number | null;
	/** monthly_weekday: 1–5, or -1 for the last. */
	nth_weekday: number | null;
};

export type ControllerSettings = {
	auto_update_enabled: boolean;
	auto_update_schedule: Schedule;
};

export const FREQUENCIES: Frequency[] = ['daily', 'weekly', 'monthly', 'monthly_weekday'];
export const WEEKDAYS = [0, 1, 2, 3, 4, 5, 6];
export const NTH_WEEKDAYS = [1, 2, 3, 4, 5, -1];

/**
 * The schedule with every field any frequency needs filled in, so switching frequency shows
 * sensible values.
 */
export function withDefaults(schedule: Schedule): Schedule {
	return {
		...schedule,
		weekdays: schedule.weekdays?.length ? [...schedule.weekdays] : [0, 1, 2, 3],
		weekday: schedule.weekday ?? 0,
		day_of_month: schedule.day_of_month ?? 1,
		nth_weekday: schedule.nth_weekday ?? 1
	};
}

/** Only the fields the frequency uses (what the server stores); weekdays sorted. */
export function normalized(schedule: Schedule): Schedule {
	const uses = {
		daily: ['weekdays'],
		weekly: ['weekday'],
		monthly: ['day_of_month'],
		monthly_weekday: ['weekday', 'nth_weekday']
	}[schedule.frequency];
	const keep = <T>(field: string, value: T): T | null => (uses.includes(field) ? value : null);
	return {
		frequency: schedule.frequency,
		time: schedule.time,
		weekdays: keep('weekdays', schedule.weekdays ? [...schedule.weekdays].sort((a, b) => a - b) : null),
		weekday: keep('weekday', schedule.weekday),
		day_of_month: keep('day_of_month', schedule.day_of_month),
		nth_weekday: keep('nth_weekday', schedule.nth_weekday)
	};
}

export function isValidTime(time: string): boolean {
	return /^([01]\d|2[0-3]):[0-5]\d$/.test(time);
}

/**
 * A UTC `HH:MM` in a time zone `offsetMinutes` ahead of UTC, and whether that falls on the
 * day before (-1) or after (+1) locally.
 */
export function localTime(time: string, offsetMinutes: number): { time: string; dayShift: number } {
	const [hours, minutes] = time.split(':').map(Number);
	const total = hours * 60 + minutes + offsetMinutes;
	const dayShift = Math.floor(total / 1440);
	const local = total - dayShift * 1440;
	const pad = (n: number) => String(n).padStart(2, '0');
	return { time: `${pad(Math.floor(local / 60))}:${pad(local % 60)}`, dayShift };
}

/** The weekday index `shift` days later (wrapping around the week). */
export function shiftWeekday(weekday: number, shift: number): number {
	return (((weekday + shift) % 7) + 7) % 7;
}
