// A device's metrics chart: the time windows and bucket sizes the API offers, and the SVG
// geometry (lines with gaps where the agent sent nothing, axis ticks).

/** One bucket average of `GET /api/deployment_info/{id}/metrics`. */
export type MetricPoint = {
	timestamp: string;
	cpu_percent: number;
	ram_percent: number;
	disk_percent: number;
};

export const METRIC_SERIES = ['cpu_percent', 'ram_percent', 'disk_percent'] as const;
export type MetricSeries = (typeof METRIC_SERIES)[number];

/** Bucket sizes the API accepts (`granularity`), in seconds. */
export const GRANULARITIES = { '1min': 60, '15min': 900, '1h': 3600, '6h': 21600, '1d': 86400 } as const;
export type Granularity = keyof typeof GRANULARITIES;

/** The chart's windows and the bucket size each starts with. */
export const METRIC_WINDOWS = [
	{ id: '1h', hours: 1, granularity: '1min' },
	{ id: '24h', hours: 24, granularity: '15min' },
	{ id: '7d', hours: 168, granularity: '1h' }
] as const satisfies readonly { id: string; hours: number; granularity: Granularity }[];
export type MetricWindow = (typeof METRIC_WINDOWS)[number]['id'];

/** More buckets than this make a chart no one can read (and a slow one). */
export const MAX_BUCKETS = 1500;

/** The bucket sizes that make sense for a window: more than one bucket, at most MAX_BUCKETS. */
export function granularitiesFor(hours: number): Granularity[] {
	const seconds = hours * 3600;
	return (Object.keys(GRANULARITIES) as Granularity[]).filter((granularity) => {
		const size = GRANULARITIES[granularity];
		return size < seconds && seconds / size <= MAX_BUCKETS;
	});
}

/** The API path for a window and bucket size. */
export function metricsPath(deviceId: string, hours: number, granularity: Granularity): string {
	const query = new URLSearchParams({ hours: String(hours), granularity });
	return `/api/deployment_info/${encodeURIComponent(deviceId)}/metrics?${query}`;
}

/** Where the chart draws: the time span (ms since the epoch) onto a width, 0–100 % onto a height. */
export type ChartScale = { from: number; to: number; width: number; height: number };

/** The x of a time. */
export function xOf(time: number, scale: ChartScale): number {
	const span = scale.to - scale.from;
	return span > 0 ? ((time - scale.from) / span) * scale.width : 0;
}

/** The y of a percentage, clamped to 0–100 (0 at the bottom). */
export function yOf(percent: number, scale: ChartScale): number {
	const clamped = Math.min(100, Math.max(0, Number.isFinite(percent) ? percent : 0));
	return scale.height - (clamped / 100) * scale.height;
}

const round = (value: number) => Math.round(value * 10) / 10;

/**
 * An SVG path through one series. Where consecutive buckets are more than 1.5 bucket sizes
 * apart (the device was off), the line breaks instead of bridging the gap; a lone point
 * becomes a short dash so it stays visible. Points must be in ascending time order.
 */
export function seriesPath(
	points: MetricPoint[],
	series: MetricSeries,
	scale: ChartScale,
	bucketSeconds: number
): string {
	const maxGap = bucketSeconds * 1000 * 1.5; // in ms
	const segments: [number, number][][] = [];
	let last = Number.NEGATIVE_INFINITY;
	for (const point of points) {
		const time = Date.parse(point.timestamp);
		if (Number.isNaN(time)) continue;
		const xy: [number, number] = [round(xOf(time, scale)), round(yOf(point[series], scale))];
		if (time - last > maxGap) segments.push([xy]);
		else segments[segments.length - 1].push(xy);
		last = time;
	}
	return segments
		.map((segment) => {
			if (segment.length === 1) {
				const [x, y] = segment[0];
				return `M${round(x - 1.5)} ${y}h3`;
			}
			return segment.map(([x, y], index) => `${index ? 'L' : 'M'}${x} ${y}`).join('');
		})
		.join('');
}

/** Evenly spaced times for the x axis labels (both ends included). */
export function timeTicks(from: number, to: number, count: number): number[] {
	if (count < 2 || to <= from) return [from];
	return Array.from({ length: count }, (_, index) => from + ((to - from) * index) / (count - 1));
}

/** The point nearest to `time` (for the hover read-out), or null without points. */
export function nearestPoint(points: MetricPoint[], time: number): MetricPoint | null {
	let best: MetricPoint | null = null;
	let distance = Number.POSITIVE_INFINITY;
	for (const point of points) {
		const d = Math.abs(Date.parse(point.timestamp) - time);
		if (d < distance) {
			distance = d;
			best = point;
		}
	}
	return best;
}
