// Terminal output (Nix's log on stderr) as HTML: SGR escape sequences (bold, italic,
// underline, 16, 256 and 24-bit colours, reset) become <span>s with `ansi-*` classes or an
// inline colour; every other escape sequence (cursor movement, erase, window titles,
// hyperlinks) and control character is dropped; the text is HTML-escaped. Parsing is
// incremental, so output arriving in pieces renders without re-parsing what came before,
// even when a piece ends in the middle of an escape sequence.

/** A palette colour (0–15, styled by class) or a CSS colour (256-colour and truecolour). */
type Colour = number | string;

type Style = {
	bold: boolean;
	dim: boolean;
	italic: boolean;
	underline: boolean;
	strike: boolean;
	inverse: boolean;
	fg: Colour | null;
	bg: Colour | null;
};

/** A run of text in one style: `classes` (space-separated) and `style` (inline CSS) may be ''. */
export type AnsiSegment = { text: string; classes: string; style: string };

const plain = (): Style => ({
	bold: false,
	dim: false,
	italic: false,
	underline: false,
	strike: false,
	inverse: false,
	fg: null,
	bg: null
});

const ESC = '\x1b';
/** Escape sequences longer than this are garbage, not an escape split across pieces. */
const MAX_CSI = 256;
const MAX_STRING = 4096;
/** Characters that start something other than plain text. */
const SPECIAL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/** The 256-colour palette's colour `n` (16–255) as CSS. */
function xterm256(n: number): string {
	if (n < 232) {
		const levels = [0, 95, 135, 175, 215, 255];
		const i = n - 16;
		return `rgb(${levels[Math.floor(i / 36)]},${levels[Math.floor(i / 6) % 6]},${levels[i % 6]})`;
	}
	const grey = 8 + (n - 232) * 10;
	return `rgb(${grey},${grey},${grey})`;
}

const byte = (value: number) => Math.max(0, Math.min(255, value));

/**
 * An extended colour (after 38/48): `5;n` or `2;r;g;b`, from `args` starting at `at`.
 * Returns the colour (undefined when malformed) and how many arguments it used.
 */
function extendedColour(args: number[], at: number): [Colour | undefined, number] {
	const kind = args[at];
	if (kind === 5) {
		const n = args[at + 1];
		if (n === undefined || Number.isNaN(n) || n > 255) return [undefined, 2];
		return [n < 16 ? n : xterm256(n), 2];
	}
	if (kind === 2) {
		const [r, g, b] = args.slice(at + 1, at + 4);
		if ([r, g, b].some((v) => v === undefined || Number.isNaN(v))) return [undefined, 4];
		return [`rgb(${byte(r)},${byte(g)},${byte(b)})`, 4];
	}
	return [undefined, 1];
}

/** Applies one SGR sequence's parameters (`1;31`, `38;5;208`, `38:2::255:0:0`) to `style`. */
function applySgr(style: Style, params: string): Style {
	const next = { ...style };
	const groups = params === '' ? ['0'] : params.split(';');
	for (let i = 0; i < groups.length; i++) {
		// Colon sub-parameters (ITU T.416): 38:2:<colour space>:r:g:b or 38:5:n, and 4:<style>.
		const sub = groups[i].split(':');
		const code = sub[0] === '' ? 0 : Number(sub[0]);
		if (Number.isNaN(code)) continue;
		if (code === 38 || code === 48 || code === 58) {
			let colour: Colour | undefined;
			if (sub.length > 1) {
				const args = sub.slice(1).map(Number);
				// 38:2:cs:r:g:b carries a colour-space id before the components.
				if (args[0] === 2 && args.length >= 5) args.splice(1, 1);
				[colour] = extendedColour(args, 0);
			} else {
				const args = groups.slice(i + 1).map(Number);
				const [found, used] = extendedColour(args, 0);
				colour = found;
				i += used;
			}
			if (colour === undefined || code === 58) continue;
			if (code === 38) next.fg = colour;
			else next.bg = colour;
			continue;
		}
		if (code === 0) Object.assign(next, plain());
		else if (code === 1) next.bold = true;
		else if (code === 2) next.dim = true;
		else if (code === 3) next.italic = true;
		else if (code === 4) next.underline = sub[1] !== '0';
		else if (code === 7) next.inverse = true;
		else if (code === 9) next.strike = true;
		else if (code === 21) next.underline = true;
		else if (code === 22) next.bold = next.dim = false;
		else if (code === 23) next.italic = false;
		else if (code === 24) next.underline = false;
		else if (code === 27) next.inverse = false;
		else if (code === 29) next.strike = false;
		else if (code >= 30 && code <= 37) next.fg = code - 30;
		else if (code === 39) next.fg = null;
		else if (code >= 40 && code <= 47) next.bg = code - 40;
		else if (code === 49) next.bg = null;
		else if (code >= 90 && code <= 97) next.fg = code - 90 + 8;
		else if (code >= 100 && code <= 107) next.bg = code - 100 + 8;
		// Blink, conceal, fonts, frames and the rest: ignored.
	}
	return next;
}

/** The classes and inline CSS of a style. */
function render(style: Style): { classes: string; style: string } {
	const classes: string[] = [];
	const css: string[] = [];
	if (style.bold) classes.push('ansi-bold');
	if (style.dim) classes.push('ansi-dim');
	if (style.italic) classes.push('ansi-italic');
	if (style.underline) classes.push('ansi-underline');
	if (style.strike) classes.push('ansi-strike');
	// Inverse swaps the colours; `ansi-inverse` supplies the swapped defaults.
	const fg = style.inverse ? style.bg : style.fg;
	const bg = style.inverse ? style.fg : style.bg;
	if (style.inverse) classes.push('ansi-inverse');
	if (typeof fg === 'number') classes.push(`ansi-fg-${fg}`);
	else if (fg) css.push(`color:${fg}`);
	if (typeof bg === 'number') classes.push(`ansi-bg-${bg}`);
	else if (bg) css.push(`background-color:${bg}`);
	return { classes: classes.join(' '), style: css.join(';') };
}

/** Finds the end (index after the terminator) of an OSC/DCS string starting at `from`, or -1. */
function stringEnd(text: string, from: number, bellEnds: boolean): number {
	for (let i = from; i < text.length; i++) {
		if (bellEnds && text[i] === '\x07') return i + 1;
		if (text[i] === ESC && text[i + 1] === '\\') return i + 2;
		if (text[i] === '\x9c') return i + 1;
	}
	return -1;
}

/** Parses output piece by piece; the style carries over from one piece to the next. */
export class AnsiParser {
	#style = plain();
	/** The unfinished end of the previous piece (a split escape sequence, or a `\r`). */
	#pending = '';

	/** The segments of `chunk` (its unfinished end waits for the next piece). */
	push(chunk: string): AnsiSegment[] {
		const text = this.#pending + chunk;
		this.#pending = '';
		const out: AnsiSegment[] = [];
		let current = render(this.#style);
		let buffer = '';
		const emit = (piece: string) => {
			if (piece) buffer += piece;
		};
		const flush = () => {
			if (!buffer) return;
			const last = out[out.length - 1];
			if (last && last.classes === current.classes && last.style === current.style) last.text += buffer;
			else out.push({ text: buffer, ...current });
			buffer = '';
		};
		const setStyle = (style: Style) => {
			flush();
			this.#style = style;
			current = render(style);
		};

		let i = 0;
		while (i < text.length) {
			SPECIAL.lastIndex = i;
			const found = SPECIAL.exec(text);
			const at = found ? found.index : text.length;
			emit(text.slice(i, at));
			if (!found) break;
			i = at;
			const char = text[i];
			if (char === '\r') {
				if (i + 1 === text.length) {
					// Maybe the first half of \r\n.
					this.#pending = '\r';
					break;
				}
				// \r\n is a newline; a lone \r (a progress line redrawn) starts a new line too.
				if (text[i + 1] !== '\n') emit('\n');
				i++;
				continue;
			}
			if (char !== ESC && char !== '\x9b') {
				// Other control characters (bell, backspace, C1 controls): dropped.
				i++;
				continue;
			}
			// CSI: ESC [ or the C1 character; parameters, intermediates, a final byte.
			const csiStart = char === '\x9b' ? i + 1 : text[i + 1] === '[' ? i + 2 : -1;
			if (csiStart >= 0) {
				let j = csiStart;
				while (j < text.length && text.charCodeAt(j) >= 0x30 && text.charCodeAt(j) <= 0x3f) j++;
				const paramsEnd = j;
				while (j < text.length && text.charCodeAt(j) >= 0x20 && text.charCodeAt(j) <= 0x2f) j++;
				if (j >= text.length) {
					if (text.length - i <= MAX_CSI) this.#pending = text.slice(i);
					else i = text.length;
					break;
				}
				const final = text.charCodeAt(j);
				if (final < 0x40 || final > 0x7e) {
					// Malformed: drop the introducer and go on with what follows as text.
					i = j;
					continue;
				}
				const params = text.slice(csiStart, paramsEnd);
				if (text[j] === 'm' && paramsEnd === j && /^[\d;:]*$/.test(params)) {
					setStyle(applySgr(this.#style, params));
				}
				i = j + 1;
				continue;
			}
			if (i + 1 >= text.length) {
				this.#pending = ESC;
				break;
			}
			const kind = text[i + 1];
			if (kind === ']' || kind === 'P' || kind === 'X' || kind === '^' || kind === '_') {
				// OSC (titles, hyperlinks; ends with BEL or ST) and the other string sequences.
				const end = stringEnd(text, i + 2, kind === ']');
				if (end < 0) {
					if (text.length - i <= MAX_STRING) this.#pending = text.slice(i);
					else i = text.length;
					break;
				}
				i = end;
				continue;
			}
			const code = kind.charCodeAt(0);
			if (code >= 0x20 && code <= 0x2f) {
				// ESC, intermediates, a final byte (character set selection like ESC ( B).
				let j = i + 1;
				while (j < text.length && text.charCodeAt(j) >= 0x20 && text.charCodeAt(j) <= 0x2f) j++;
				if (j >= text.length) {
					this.#pending = text.slice(i);
					break;
				}
				i = j + 1;
				continue;
			}
			// A two-character escape (ESC 7, ESC M, …), or a lone ESC before a control: dropped.
			i += code >= 0x30 && code <= 0x7e ? 2 : 1;
		}
		flush();
		return out;
	}

	/** Ends the output: an unfinished escape sequence is dropped. */
	end(): AnsiSegment[] {
		this.#pending = '';
		return [];
	}
}

/** The segments of a complete text. */
export function parseAnsi(text: string): AnsiSegment[] {
	const parser = new AnsiParser();
	return [...parser.push(text), ...parser.end()];
}

const ENTITIES: Record<string, string> = {
	'&': '&amp;',
	'<': '&lt;',
	'>': '&gt;',
	'"': '&quot;',
	"'": '&#39;'
};

export function escapeHtml(text: string): string {
	return text.replace(/[&<>"']/g, (char) => ENTITIES[char]);
}

/** Segments as HTML: escaped text, styled runs in spans. */
export function segmentsToHtml(segments: AnsiSegment[]): string {
	let html = '';
	for (const segment of segments) {
		const text = escapeHtml(segment.text);
		if (!segment.classes && !segment.style) {
			html += text;
			continue;
		}
		const classAttr = segment.classes ? ` class="${segment.classes}"` : '';
		// The style only ever holds colours this module wrote (numbers in rgb()).
		const styleAttr = segment.style ? ` style="${escapeHtml(segment.style)}"` : '';
		html += `<span${classAttr}${styleAttr}>${text}</span>`;
	}
	return html;
}

/** A complete text as HTML. */
export function ansiToHtml(text: string): string {
	return segmentsToHtml(parseAnsi(text));
}

/** Turns output arriving in pieces into HTML pieces, each with balanced tags. */
export class AnsiHtml {
	#parser = new AnsiParser();

	push(chunk: string): string {
		return segmentsToHtml(this.#parser.push(chunk));
	}
}

/** The text without escape sequences and control characters (for copying). */
export function stripAnsi(text: string): string {
	return parseAnsi(text)
		.map((segment) => segment.text)
		.join('');
}
