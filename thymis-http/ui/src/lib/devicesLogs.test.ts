import { describe, expect, it } from 'vitest';
import {
	downloadPath,
	durationLabel,
	formatLogTime,
	logProgram,
	logsPath,
	SEVERITIES,
	severityKeyword,
	severityLevel,
	severityName,
	type LogQuery
} from './devicesLogs';

const base: LogQuery = { limit: 101, offset: 0, search: '', maxSeverity: null, program: '', exactProgram: false };
const params = (path: string) => Object.fromEntries(new URL(path, 'http://x').searchParams);

describe('severities', () => {
	it('name the eight syslog levels, clamping others', () => {
		expect(SEVERITIES.map((_, index) => severityName(index))).toEqual([
			'emergency',
			'alert',
			'critical',
			'error',
			'warning',
			'notice',
			'info',
			'debug'
		]);
		expect(severityName(-1)).toBe('emergency');
		expect(severityName(12)).toBe('debug');
		expect(severityName(Number.NaN)).toBe('emergency');
		expect([0, 3, 4, 7, 9].map(severityKeyword)).toEqual(['emerg', 'err', 'warn', 'debug', 'debug']);
	});

	it('colour 0–3 as errors, 4 as a warning, 7 as debug', () => {
		expect([0, 1, 2, 3, 4, 5, 6, 7].map(severityLevel)).toEqual([
			'error',
			'error',
			'error',
			'error',
			'warning',
			'normal',
			'normal',
			'debug'
		]);
	});

	it('leave a line without a syslog priority unmarked', () => {
		expect(severityLevel(null)).toBe('normal');
		expect(severityKeyword(null)).toBe('');
	});
});

describe('logsPath', () => {
	it('asks for a page, newest first, without empty filters', () => {
		const path = logsPath('dev 1', base);
		expect(path.startsWith('/api/logs/dev%201?')).toBe(true);
		expect(params(path)).toEqual({ limit: '101', offset: '0' });
	});

	it('passes search, severity and program filters', () => {
		const path = logsPath('d', {
			...base,
			offset: 200,
			search: '  disk full ',
			maxSeverity: 3,
			program: 'sshd',
			exactProgram: true
		});
		expect(params(path)).toEqual({
			limit: '101',
			offset: '200',
			search: 'disk full',
			max_severity: '3',
			program_name: 'sshd',
			exact_program_name: 'true'
		});
		expect(params(logsPath('d', { ...base, maxSeverity: 0 })).max_severity).toBe('0');
		// Exact means nothing without a program.
		expect(params(logsPath('d', { ...base, exactProgram: true }))).toEqual({ limit: '101', offset: '0' });
	});

	it('downloads a window of minutes', () => {
		expect(downloadPath('d/1', 60)).toBe('/api/logs/d%2F1/download?duration_minutes=60');
	});
});

describe('log lines', () => {
	it('read times in UTC or local time, leaving bad ones alone', () => {
		expect(formatLogTime('2024-05-01T13:04:05.123Z', true)).toBe('2024-05-01 13:04:05');
		expect(formatLogTime('2024-05-01T13:04:05Z')).toMatch(/^2024-05-0[12] \d\d:04:05$/);
		expect(formatLogTime('yesterday')).toBe('yesterday');
	});

	it('name the program, else the syslog tag', () => {
		expect(logProgram({ programname: 'sshd', syslogtag: 'sshd[12]:' })).toBe('sshd');
		expect(logProgram({ programname: null, syslogtag: 'kernel:' })).toBe('kernel');
		expect(logProgram({ programname: '', syslogtag: null })).toBe('');
	});

	it('label download windows in the largest whole unit', () => {
		expect(durationLabel(5, 'en')).toBe('5 minutes');
		expect(durationLabel(60, 'en')).toBe('1 hour');
		expect(durationLabel(360, 'en')).toBe('6 hours');
		expect(durationLabel(20160, 'en')).toBe('14 days');
		expect(durationLabel(1440, 'de')).toBe('1 Tag');
	});
});
