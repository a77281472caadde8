/**
 * The dashboard's build: `npx vite build --config web/vite.config.ts` writes web/dist (index.html and
 * hashed files under assets/), which the service serves at `/`. `npx vite --config web/vite.config.ts`
 * serves it with hot reload and forwards the API to a running service (N50_API, default
 * http://127.0.0.1:3000).
 *
 * JSX is compiled by Vite's own oxc transform into Preact's automatic runtime; no plugin is needed.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));
const api = process.env.N50_API ?? 'http://127.0.0.1:3000';

export default defineConfig({
  root,
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
  },
  server: {
    // The app imports the feed client from ../src/client.
    fs: { allow: [fileURLToPath(new URL('..', import.meta.url))] },
    proxy: {
      '/api': api,
      '/health': api,
      '/ws': { target: api.replace(/^http/, 'ws'), ws: true },
    },
  },
});
