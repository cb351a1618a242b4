// The props every setting control takes, whatever the setting type.

import type { Setting } from '../../lib/types';

export type ControlProps = {
	/** The id of the control's (first) form element, for `<label for>`. */
	id: string;
	/** The accessible name: the setting's label. */
	label: string;
	setting: Setting;
	value: unknown;
	readonly?: boolean;
	invalid?: boolean;
	/** The id of the element describing the control (description, problems). */
	describedby?: string;
	/** The JSON path of this value, for validation problems of nested values. */
	path: string;
	/** The effective values of the neighbouring settings (restricted selects read them). */
	siblings?: Record<string, unknown>;
	/** A new value; `typing` asks for a debounced save. */
	onchange: (value: unknown, typing?: boolean) => void;
};
