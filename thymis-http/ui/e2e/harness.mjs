// End-to-end test harness: the real thymis-controller (with the embedded dashboard) on a
// loopback port with a temporary data directory, and Debian's chromium driven by
// playwright-core. A failing test leaves a screenshot in e2e-results/.

import { execFileSync, spawn } from 'node:child_process';
import {
	appendFileSync,
	cpSync,
	mkdirSync,
	mkdtempSync,
	readdirSync,
	readFileSync,
	rmSync,
	utimesSync,
	writeFileSync
} from 'node:fs';
import { arch, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
// Read when a controller starts (not at import), so scripts can choose the binary first:
// `$THYMIS_CONTROLLER_BIN`, else the debug build in `$CARGO_TARGET_DIR` or the workspace's target/.
const controllerBinary = () =>
	process.env.THYMIS_CONTROLLER_BIN ??
	resolve(process.env.CARGO_TARGET_DIR || resolve(here, '../../../target'), 'debug/thymis-controller');
export const resultsDir = resolve(here, '../e2e-results');
/** The offline stand-ins for a project's `thymis` and `nixpkgs` flake inputs. */
const nixStubSource = resolve(here, '../../../thymis/tests/fixtures/nix-stub');

/** The Nix system of this machine (`x86_64-linux`, `aarch64-linux`, …). */
export function hostSystem() {
	const machine = { x64: 'x86_64', arm64: 'aarch64' }[arch()] ?? arch();
	return `${machine}-linux`;
}

/**
 * Copies the stub flakes into `dir/nix-stub/` as `thymis/tests/common/nix_stub.rs` does:
 * `nixpkgs/local-system.nix` names this machine's system (stub derivations build for it,
 * whatever platform a config names), and every file and both flake folders get the same fixed
 * mtime, because Nix records a `path:` input's newest mtime in `flake.lock`. Returns the copy's
 * root (with `thymis/` and `nixpkgs/` in it).
 */
export function installNixStub(dir) {
	const root = join(dir, 'nix-stub');
	const fixed = new Date(1704067200 * 1000); // 2024-01-01
	for (const flake of ['nixpkgs', 'thymis']) {
		cpSync(join(nixStubSource, flake), join(root, flake), { recursive: true });
	}
	writeFileSync(join(root, 'nixpkgs', 'local-system.nix'), `"${hostSystem()}"\n`);
	for (const flake of ['nixpkgs', 'thymis']) {
		const flakeDir = join(root, flake);
		for (const name of readdirSync(flakeDir)) utimesSync(join(flakeDir, name), fixed, fixed);
		utimesSync(flakeDir, fixed, fixed);
	}
	return root;
}

/**
 * Starts a controller; resolves with its URL, admin password and a stop function. Its nix runs
 * offline (no substituters) with the project's `thymis` and `nixpkgs` inputs replaced by a copy
 * of the stub flakes (`installNixStub`), so builds, images and updates really run.
 */
export async function startController() {
	const dataDir = mkdtempSync(join(tmpdir(), 'thymis-e2e-'));
	const stub = installNixStub(dataDir);
	const args = [
		'--data-dir',
		join(dataDir, 'data'),
		'--listen-port',
		'0',
		'--nix-substituters',
		'',
		'--nix-override-input',
		`thymis=path:${join(stub, 'thymis')}`,
		'--nix-override-input',
		`nixpkgs=path:${join(stub, 'nixpkgs')}`
	];
	const child = spawn(controllerBinary(), args, {
		env: { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', RUST_LOG: 'warn' },
		stdio: ['ignore', 'pipe', 'pipe']
	});
	let output = '';
	child.stderr.on('data', (chunk) => (output += chunk));
	const started = await new Promise((resolvePromise, reject) => {
		const timer = setTimeout(() => reject(new Error(`controller did not start:\n${output}`)), 30000);
		child.stdout.on('data', (chunk) => {
			output += chunk;
			const url = output.match(/listening on ([^;]+);/)?.[1];
			const password = output.match(/with password (\S+)/)?.[1];
			if (url && password) {
				clearTimeout(timer);
				resolvePromise({ url: `http://${url}`, password });
			}
		});
		child.on('exit', (code) => reject(new Error(`controller exited with ${code}:\n${output}`)));
	});
	return {
		...started,
		dataDir,
		log: () => output,
		async stop() {
			child.kill('SIGTERM');
			await new Promise((r) => child.once('exit', r));
			rmSync(dataDir, { recursive: true, force: true });
		}
	};
}

/** Launches headless chromium. */
export async function launchBrowser() {
	return chromium.launch({
		executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']
	});
}

/**
 * A new page that records console errors and failed requests (a test fails on them), with
 * `baseURL` set to the controller.
 */
export async function newPage(browser, controller, options = {}) {
	const context = await browser.newContext({ baseURL: controller.url, ...options });
	const page = await context.newPage();
	page.problems = [];
	page.on('console', (message) => {
		// The browser logs the 401 that sends a logged-out visitor to the login page.
		const expected = /status of 401/.test(message.text());
		if (message.type() === 'error' && !expected) page.problems.push(`console: ${message.text()}`);
	});
	page.on('pageerror', (error) => page.problems.push(`page error: ${error.message}`));
	return page;
}

/** Logs in through the login form. */
export async function login(page, controller, path = '/overview') {
	await page.goto(path);
	await page.waitForURL(/\/login/);
	await page.getByLabel('Username').fill('admin');
	await page.getByLabel('Password').fill(controller.password);
	await page.getByRole('button', { name: 'Sign in' }).click();
	await page.waitForURL((url) => !url.pathname.startsWith('/login'));
}

/** Runs `body(page)`; on failure saves a screenshot named after the test. */
export async function withScreenshot(t, page, body) {
	try {
		await body();
	} catch (error) {
		mkdirSync(resultsDir, { recursive: true });
		const file = join(resultsDir, `${t.name.replace(/[^a-z0-9]+/gi, '-')}.png`);
		await page.screenshot({ path: file, fullPage: true }).catch(() => {});
		error.message += `\n(screenshot: ${file})`;
		throw error;
	}
}

/** The API with the page's session cookies (for setting up and checking state). */
export async function apiRequest(page, method, path, body) {
	const response = await page.request.fetch(path, {
		method,
		data: body,
		headers: { origin: new URL(page.url()).origin }
	});
	return response;
}

/**
 * Starts a controller and a browser before the file's tests and stops them after; returns an
 * object whose `controller` and `browser` are set once started.
 */
export function useControllerAndBrowser() {
	const running = { controller: undefined, browser: undefined };
	before(async () => {
		running.controller = await startController();
		running.browser = await launchBrowser();
	});
	after(async () => {
		await running.browser?.close();
		await running.controller?.stop();
	});
	return running;
}

/** The thymis-agent binary: `$THYMIS_AGENT_BIN`, else next to the controller binary. */
const agentBinary = () => process.env.THYMIS_AGENT_BIN ?? join(dirname(controllerBinary()), 'thymis-agent');

/** Where under its root the agent reads each kind of hardware id. */
const HARDWARE_ID_FILES = {
	'pi-serial-number': 'sys/firmware/devicetree/base/serial-number',
	'dmi-board-serial': 'sys/class/dmi/id/board_serial',
	'dmi-product-uuid': 'sys/class/dmi/id/product_uuid'
};

/**
 * Starts the real thymis-agent as a simulated device: a temporary `--root` holding the boot
 * files (the agent `token`, metadata naming `configId`, the controller's public key), a fresh
 * ed25519 host key, a user database and the given `hardwareIds` (kind → value, e.g.
 * `{ 'pi-serial-number': '10000000abcd' }`; none by default); it ships
 * `<root>/var/log/messages` and samples metrics every 2 s. `log()` appends a syslog line with
 * a `<PRI>` prefix, `stop()` ends the process.
 */
export async function startAgent({ controller, name, token, configId = null, hardwareIds = {} }) {
	const root = mkdtempSync(join(tmpdir(), `thymis-e2e-device-${name}-`));
	mkdirSync(join(root, 'boot'), { recursive: true });
	mkdirSync(join(root, 'etc/ssh'), { recursive: true });
	mkdirSync(join(root, 'var/log'), { recursive: true });
	writeFileSync(join(root, 'boot/thymis-token.txt'), token);
	writeFileSync(
		join(root, 'boot/thymis-metadata.json'),
		JSON.stringify({ configuration_id: configId, configuration_commit: null, datetime: '2026-01-01 00:00:00' })
	);
	cpSync(join(controller.dataDir, 'data/id_thymis.pub'), join(root, 'boot/thymis-controller-ssh-pubkey.txt'));
	writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
	writeFileSync(join(root, 'etc/group'), 'root:x:0:\n');
	writeFileSync(join(root, 'var/log/messages'), '');
	for (const [kind, value] of Object.entries(hardwareIds)) {
		const file = HARDWARE_ID_FILES[kind];
		if (!file) throw new Error(`the agent reads no hardware id ${kind}`);
		mkdirSync(dirname(join(root, file)), { recursive: true });
		writeFileSync(join(root, file), `${value}\n`);
	}
	const keyPath = join(root, 'etc/ssh/ssh_host_ed25519_key');
	execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', keyPath]);
	const publicKey = readFileSync(`${keyPath}.pub`, 'utf8').split(/\s+/).slice(0, 2).join(' ');
	const args = ['--root', root, '--log-file', join(root, 'var/log/messages'), '--metrics-interval-secs', '2'];
	const child = spawn(agentBinary(), args, {
		env: { ...process.env, CONTROLLER_HOST: controller.url, NOTIFY_SOCKET: '' },
		stdio: ['ignore', 'ignore', 'pipe']
	});
	let output = '';
	child.stderr.on('data', (chunk) => (output += chunk));
	const exited = new Promise((resolvePromise) => child.once('exit', resolvePromise));
	await new Promise((resolvePromise, reject) => {
		child.once('spawn', resolvePromise);
		child.once('error', reject);
	});
	return {
		root,
		publicKey,
		output: () => output,
		async log(message, { severity = 6, program = 'e2e' } = {}) {
			// Facility user (1): priority = 8 + severity.
			const line = `<${8 + severity}>${new Date().toISOString()} ${name} ${program}[1]: ${message}\n`;
			appendFileSync(join(root, 'var/log/messages'), line);
		},
		async stop() {
			if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
			await exited;
			rmSync(root, { recursive: true, force: true });
		}
	};
}
