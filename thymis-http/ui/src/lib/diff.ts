// Unified diffs (as git prints them) turned into rows for a unified or side-by-side view.

export type DiffLine = { kind: 'context' | 'add' | 'remove' | 'hunk' | 'meta'; text: string };
export type SplitRow = { left: DiffLine | null; right: DiffLine | null };

export function parseDiff(text: string): DiffLine[] {
	return text
		.split('\n')
		.filter((line, index, all) => !(index === all.length - 1 && line === ''))
		.map((line): DiffLine => {
			if (line.startsWith('@@')) return { kind: 'hunk', text: line };
			if (/^(diff |index |--- |\+\+\+ |new file|deleted file|similarity|rename )/.test(line))
				return { kind: 'meta', text: line };
			if (line.startsWith('+')) return { kind: 'add', text: line.slice(1) };
			if (line.startsWith('-')) return { kind: 'remove', text: line.slice(1) };
			return { kind: 'context', text: line.startsWith(' ') ? line.slice(1) : line };
		});
}

/** Pairs removed and added lines of each change block side by side. */
export function splitRows(lines: DiffLine[]): SplitRow[] {
	const rows: SplitRow[] = [];
	let removed: DiffLine[] = [];
	let added: DiffLine[] = [];
	const flush = () => {
		for (let i = 0; i < Math.max(removed.length, added.length); i++) {
			rows.push({ left: removed[i] ?? null, right: added[i] ?? null });
		}
		removed = [];
		added = [];
	};
	for (const line of lines) {
		if (line.kind === 'remove') removed.push(line);
		else if (line.kind === 'add') added.push(line);
		else {
			flush();
			if (line.kind === 'meta') continue;
			rows.push({ left: line, right: line });
		}
	}
	flush();
	return rows;
}
