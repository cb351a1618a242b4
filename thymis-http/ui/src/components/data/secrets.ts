// Secrets as `GET /api/secrets` lists them (never with values).

import { api } from '../../lib/api';
import type { Secret, SecretType } from '../../lib/types';

export type SecretEntry = Secret & { value_size: number };

export const SECRET_TYPES: SecretType[] = ['single_line', 'multi_line', 'env_list', 'file'];
export const PROCESSING_TYPES = ['none', 'mkpasswd-yescrypt'];

/** The server's limit for file secrets (text secrets: 1 MiB). */
export const MAX_FILE_SECRET_BYTES = 10 * 1024 * 1024;

/** Every secret, sorted by name. */
export async function loadSecrets(): Promise<SecretEntry[]> {
	const byId = await api.get<Record<string, SecretEntry>>('/api/secrets');
	return Object.values(byId).sort((a, b) => a.display_name.localeCompare(b.display_name));
}
