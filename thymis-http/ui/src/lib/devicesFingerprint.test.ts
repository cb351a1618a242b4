import { describe, expect, it } from 'vitest';
import { keyFingerprint, keyType, sha256 } from './devicesFingerprint';

const hex = (bytes: Uint8Array) => [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join('');
const utf8 = (text: string) => new TextEncoder().encode(text);

describe('sha256', () => {
	it('matches the FIPS 180-4 examples and sha256sum', () => {
		expect(hex(sha256(utf8('')))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
		expect(hex(sha256(utf8('abc')))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
		expect(hex(sha256(utf8('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')))).toBe(
			'248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1'
		);
		// 1,000 bytes: several blocks.
		expect(hex(sha256(utf8('a'.repeat(1000))))).toBe(
			'41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3'
		);
	});

	it('pads correctly at the block boundaries (55, 56 and 64 bytes)', () => {
		expect(hex(sha256(utf8('a'.repeat(55))))).toBe('9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318');
		expect(hex(sha256(utf8('a'.repeat(56))))).toBe('b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a');
		expect(hex(sha256(utf8('a'.repeat(64))))).toBe('ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb');
	});
});

describe('keyFingerprint', () => {
	// Made with `ssh-keygen -t ed25519`; `ssh-keygen -lf` prints the fingerprint below.
	const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIITJXvYUsVIxH3fAm2Zp3WxRc3Vkxe0mXcqGxA31M30q x';

	it('is what ssh-keygen -l prints, with or without a comment', () => {
		expect(keyFingerprint(key)).toBe('SHA256:P0MRuxLZPb8tfrFRu4U6ZZBscFqpARovxVoGQsYaA2g');
		expect(keyFingerprint(key.replace(/ x$/, ''))).toBe('SHA256:P0MRuxLZPb8tfrFRu4U6ZZBscFqpARovxVoGQsYaA2g');
	});

	it('is null for keys without a valid base64 part', () => {
		expect(keyFingerprint('')).toBeNull();
		expect(keyFingerprint('ssh-ed25519')).toBeNull();
		expect(keyFingerprint('ssh-ed25519 not*base64')).toBeNull();
		expect(keyFingerprint('ssh-ed25519 AAAAC')).toBeNull();
	});

	it('names the key type', () => {
		expect(keyType(key)).toBe('ssh-ed25519');
		expect(keyType('')).toBe('');
	});
});
