import { describe, expect, it } from 'vitest';
import { localTime, normalized, shiftWeekday, withDefaults, type Schedule } from './schedule';

const daily: Schedule = {
	frequency: 'daily',
	time: '03:00',
	weekdays: [3, 0],
	weekday: null,
	day_of_month: null,
	nth_weekday: null
};

describe('schedule', () => {
	it('fills in the fields of every frequency', () => {
		expect(withDefaults({ ...daily, weekdays: [] })).toMatchObject({
			weekdays: [0, 1, 2, 3],
			weekday: 0,
			day_of_month: 1,
			nth_weekday: 1
		});
	});

	it('keeps only the fields the frequency uses', () => {
		const full = withDefaults(daily);
		expect(normalized(full)).toEqual({ ...daily, weekdays: [0, 3] });
		expect(normalized({ ...full, frequency: 'monthly_weekday', nth_weekday: -1 })).toEqual({
			frequency: 'monthly_weekday',
			time: '03:00',
			weekdays: null,
			weekday: 0,
			day_of_month: null,
			nth_weekday: -1
		});
	});

	it('converts UTC times to local ones across midnight', () => {
		expect(localTime('03:00', 120)).toEqual({ time: '05:00', dayShift: 0 });
		expect(localTime('23:30', 60)).toEqual({ time: '00:30', dayShift: 1 });
		expect(localTime('01:15', -300)).toEqual({ time: '20:15', dayShift: -1 });
		expect(localTime('10:00', 330)).toEqual({ time: '15:30', dayShift: 0 });
	});

	it('wraps weekdays', () => {
		expect(shiftWeekday(6, 1)).toBe(0);
		expect(shiftWeekday(0, -1)).toBe(6);
	});
});
