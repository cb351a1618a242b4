/// <reference types="vitest/config" />
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// `npm run dev` proxies the API to a controller on :8000.
export default defineConfig({
	plugins: [svelte()],
	build: {
		target: 'es2022',
		chunkSizeWarningLimit: 800
	},
	server: {
		proxy: {
			'/api': { target: 'http://127.0.0.1:8000', ws: true },
			'/auth': 'http://127.0.0.1:8000'
		}
	},
	test: {
		environment: 'jsdom',
		include: ['src/**/*.test.ts']
	},
	resolve: process.env.VITEST ? { conditions: ['browser'] } : undefined
});
