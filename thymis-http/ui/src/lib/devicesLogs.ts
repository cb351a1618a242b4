// A device's logs: syslog severities, the API queries of the logs view, and how a line reads.

/** One log line (`GET /api/logs/{id}`), as rsyslog on the device sent it. */
export type LogEntry = {
	uuid: string;
	timestamp: string;
	message: string;
	host: string | null;
	facility: number | null;
	/** Null when the line carried no syslog priority. */
	severity: number | null;
	programname: string | null;
	syslogtag: string | null;
};

/** Syslog severities by number (0 = most severe). */
export const SEVERITIES = [
	'emergency',
	'alert',
	'critical',
	'error',
	'warning',
	'notice',
	'info',
	'debug'
] as const;
export type Severity = (typeof SEVERITIES)[number];

/** The short syslog keyword of each severity (as rsyslog and logger write them). */
const KEYWORDS = ['emerg', 'alert', 'crit', 'err', 'warn', 'notice', 'info', 'debug'] as const;

const clampSeverity = (severity: number) =>
	Math.min(SEVERITIES.length - 1, Math.max(0, Math.trunc(severity) || 0));

/** The name of a severity number; out-of-range numbers count as the nearest end. */
export function severityName(severity: number): Severity {
	return SEVERITIES[clampSeverity(severity)];
}

/**
 * The short keyword of a severity number ("err", "warn", …), clamped like `severityName`;
 * empty for a line without one.
 */
export function severityKeyword(severity: number | null): string {
	return severity === null ? '' : KEYWORDS[clampSeverity(severity)];
}

/**
 * How a line is coloured: errors (0–3), warnings (4), normal (5–6, or no severity) or faint
 * debug (7).
 */
export function severityLevel(severity: number | null): 'error' | 'warning' | 'normal' | 'debug' {
	if (severity === null) return 'normal';
	if (severity <= 3) return 'error';
	if (severity === 4) return 'warning';
	if (severity >= 7) return 'debug';
	return 'normal';
}

/** The choices of the severity filter: "up to" this severity; null shows everything. */
export const SEVERITY_FILTERS = [null, 3, 4, 5, 6] as const;

export type LogQuery = {
	limit: number;
	offset: number;
	/** Text the message must contain. */
	search: string;
	/** Only lines at least this severe (0–7), or all. */
	maxSeverity: number | null;
	program: string;
	/** Whether `program` must match the whole program name (else a part of it). */
	exactProgram: boolean;
};

/** The API path for a page of logs, newest first. */
export function logsPath(deviceId: string, query: LogQuery): string {
	const params = new URLSearchParams({ limit: String(query.limit), offset: String(query.offset) });
	if (query.search.trim()) params.set('search', query.search.trim());
	if (query.maxSeverity !== null) params.set('max_severity', String(query.maxSeverity));
	if (query.program.trim()) {
		params.set('program_name', query.program.trim());
		if (query.exactProgram) params.set('exact_program_name', 'true');
	}
	return `/api/logs/${encodeURIComponent(deviceId)}?${params}`;
}

/** How far back a download reaches, in minutes: 5 min, 15 min, 1 h, 6 h, 1 day, 7 days, 14 days. */
export const DOWNLOAD_MINUTES = [5, 15, 60, 360, 1440, 10080, 20160] as const;

export function downloadPath(deviceId: string, minutes: number): string {
	return `/api/logs/${encodeURIComponent(deviceId)}/download?duration_minutes=${minutes}`;
}

/** A duration in minutes in the largest whole unit, e.g. "15 minutes", "6 hours", "7 days". */
export function durationLabel(minutes: number, locale: string): string {
	const [unit, size] =
		minutes % 1440 === 0
			? (['day', 1440] as const)
			: minutes % 60 === 0
				? (['hour', 60] as const)
				: (['minute', 1] as const);
	return new Intl.NumberFormat(locale, { style: 'unit', unit, unitDisplay: 'long' }).format(
		minutes / size
	);
}

const pad = (value: number) => String(value).padStart(2, '0');

/** A log time as "2024-05-01 13:04:05", in local time or UTC; the raw text if unparseable. */
export function formatLogTime(timestamp: string, utc = false): string {
	const date = new Date(timestamp);
	if (Number.isNaN(date.getTime())) return timestamp;
	const [year, month, day, hours, minutes, seconds] = utc
		? [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes(), date.getUTCSeconds()]
		: [date.getFullYear(), date.getMonth() + 1, date.getDate(), date.getHours(), date.getMinutes(), date.getSeconds()];
	return `${year}-${pad(month)}-${pad(day)} ${pad(hours)}:${pad(minutes)}:${pad(seconds)}`;
}

/** The program a line came from: its program name, else its syslog tag without the colon. */
export function logProgram(entry: Pick<LogEntry, 'programname' | 'syslogtag'>): string {
	return entry.programname || entry.syslogtag?.replace(/:$/, '') || '';
}
