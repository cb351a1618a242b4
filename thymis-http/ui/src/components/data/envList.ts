// The key/value rows of an `env_list` secret, stored as `KEY=VALUE` lines.

export type EnvRow = { key: string; value: string };

/** Shell variable names, as the server checks them. */
export function isEnvName(key: string): boolean {
	return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key);
}

/** The `KEY=VALUE` text of the rows; rows with neither key nor value are left out. */
export function envListText(rows: EnvRow[]): string {
	return rows
		.filter((row) => row.key || row.value)
		.map((row) => `${row.key}=${row.value}`)
		.join('\n');
}
