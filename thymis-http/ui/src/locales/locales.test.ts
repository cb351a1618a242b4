import { describe, expect, it } from 'vitest';
import { dictionaries } from '.';

describe('locales', () => {
	it('have the same keys in English and German', () => {
		const en = Object.keys(dictionaries.en).sort();
		const de = Object.keys(dictionaries.de).sort();
		expect(de).toEqual(en);
	});

	it('use the same placeholders in both languages', () => {
		const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
		for (const key of Object.keys(dictionaries.en)) {
			expect(placeholders(dictionaries.de[key]), key).toEqual(placeholders(dictionaries.en[key]));
		}
	});
});
