import { describe, expect, it } from 'vitest';
import {
	granularitiesFor,
	metricsPath,
	nearestPoint,
	seriesPath,
	timeTicks,
	xOf,
	yOf,
	type ChartScale,
	type MetricPoint
} from './devicesMetrics';

const T0 = Date.parse('2024-05-01T12:00:00Z');
const at = (minutes: number, cpu: number): MetricPoint => ({
	timestamp: new Date(T0 + minutes * 60_000).toISOString(),
	cpu_percent: cpu,
	ram_percent: 50,
	disk_percent: 10
});
// One hour onto 600 × 100 units: 10 units a minute, 1 unit a percent.
const scale: ChartScale = { from: T0, to: T0 + 3600_000, width: 600, height: 100 };

describe('scaling', () => {
	it('maps the time span onto the width', () => {
		expect(xOf(T0, scale)).toBe(0);
		expect(xOf(T0 + 1800_000, scale)).toBe(300);
		expect(xOf(T0 + 3600_000, scale)).toBe(600);
		expect(xOf(T0, { ...scale, to: T0 })).toBe(0);
	});

	it('maps 0–100 % onto the height, 0 at the bottom, clamping the rest', () => {
		expect(yOf(0, scale)).toBe(100);
		expect(yOf(100, scale)).toBe(0);
		expect(yOf(25, scale)).toBe(75);
		expect(yOf(130, scale)).toBe(0);
		expect(yOf(-5, scale)).toBe(100);
		expect(yOf(Number.NaN, scale)).toBe(100);
	});
});

describe('seriesPath', () => {
	it('draws one line through consecutive buckets', () => {
		const points = [at(0, 0), at(1, 50), at(2, 100)];
		expect(seriesPath(points, 'cpu_percent', scale, 60)).toBe('M0 100L10 50L20 0');
		expect(seriesPath(points, 'ram_percent', scale, 60)).toBe('M0 50L10 50L20 50');
	});

	it('breaks the line where buckets are missing', () => {
		// Minutes 0–1, nothing for 8 minutes, then 10–11.
		const points = [at(0, 10), at(1, 20), at(10, 30), at(11, 40)];
		expect(seriesPath(points, 'cpu_percent', scale, 60)).toBe('M0 90L10 80M100 70L110 60');
	});

	it('keeps a lone point visible as a short dash, and skips bad timestamps', () => {
		const points = [at(0, 10), { ...at(5, 0), timestamp: 'never' }, at(30, 20)];
		expect(seriesPath(points, 'cpu_percent', scale, 60)).toBe('M-1.5 90h3M298.5 80h3');
		expect(seriesPath([], 'cpu_percent', scale, 60)).toBe('');
	});

	it('bridges buckets of the chosen size', () => {
		// Hourly buckets over a day are 1 hour apart: one line.
		const day: ChartScale = { from: T0, to: T0 + 24 * 3600_000, width: 240, height: 100 };
		const hourly = [at(0, 0), at(60, 0), at(120, 0)];
		expect(seriesPath(hourly, 'cpu_percent', day, 3600)).toBe('M0 100L10 100L20 100');
	});
});

describe('windows and buckets', () => {
	it('offers bucket sizes giving more than one and at most 1,500 buckets', () => {
		expect(granularitiesFor(1)).toEqual(['1min', '15min']);
		expect(granularitiesFor(24)).toEqual(['1min', '15min', '1h', '6h']);
		expect(granularitiesFor(168)).toEqual(['15min', '1h', '6h', '1d']);
	});

	it('builds the API path', () => {
		expect(metricsPath('a b', 24, '15min')).toBe('/api/deployment_info/a%20b/metrics?hours=24&granularity=15min');
	});

	it('spaces the axis ticks evenly, ends included', () => {
		expect(timeTicks(0, 100, 5)).toEqual([0, 25, 50, 75, 100]);
		expect(timeTicks(0, 100, 1)).toEqual([0]);
		expect(timeTicks(100, 100, 5)).toEqual([100]);
	});

	it('finds the point nearest to a time', () => {
		const points = [at(0, 1), at(10, 2), at(20, 3)];
		expect(nearestPoint(points, T0 + 12 * 60_000)?.cpu_percent).toBe(2);
		expect(nearestPoint(points, T0 + 16 * 60_000)?.cpu_percent).toBe(3);
		expect(nearestPoint([], T0)).toBeNull();
	});
});
