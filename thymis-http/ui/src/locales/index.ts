// Every text of the dashboard, by area; each area file has the same keys in `en` and `de`
// (checked by locales.test.ts).

import configure from './configure';
import core from './core';
import data from './data';
import devices from './devices';
import tasks from './tasks';

export type Locale = 'en' | 'de';
export type Dictionary = Record<string, string>;
export type Texts = { en: Dictionary; de: Dictionary };

const areas: Texts[] = [core, configure, data, tasks, devices];

export const dictionaries: Record<Locale, Dictionary> = {
	en: Object.assign({}, ...areas.map((area) => area.en)),
	de: Object.assign({}, ...areas.map((area) => area.de))
};
