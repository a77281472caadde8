/**
 * The dashboard's static files (`web/`, built by Vite into `web/dist`) at `/`.
 *
 * The build is read into memory once at start (a few hundred KB): answers cost no disk read and
 * text files are gzipped once, here, not per request. Rules:
 *
 * | path              | answer                                            | Cache-Control                          |
 * |-------------------|---------------------------------------------------|----------------------------------------|
 * | `/`, `/index.html`| index.html                                        | no-cache (always revalidated: it names the current hashed assets) |
 * | `/assets/<file>`  | a hashed asset (its name changes with its content)| public, max-age=31536000, immutable   |
 * | `/<file>` at dist's top level (favicon) | the file                    | public, max-age=3600                   |
 * | anything else, `/assets/` itself | 404: no directory listing          |                                        |
 *
 * Content types come from the extension (one table, below); unknown extensions are served as
 * `application/octet-stream`. Every answer carries `X-Content-Type-Options: nosniff`. When the
 * build is missing, `/` answers 503 saying how to build it.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.map', '.svg', '.txt']);
const IMMUTABLE = 'public, max-age=31536000, immutable';

interface Asset {
  body: Buffer;
  gzip: Buffer | null;
  type: string;
  cache: string;
}

export interface StaticSite {
  /** Files served, by URL path. */
  readonly paths: readonly string[];
  /** Bytes of the build, and gzipped (what a browser downloads). */
  readonly bytes: number;
  readonly gzipBytes: number;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

/** Read `dir` (web/dist) into memory: URL path → asset. Empty when there is no build. */
export function loadSite(dir: string): Map<string, Asset> {
  const site = new Map<string, Asset>();
  if (!existsSync(join(dir, 'index.html'))) return site;
  for (const file of walk(dir)) {
    const rel = relative(dir, file).split(sep).join('/');
    const ext = extname(file).toLowerCase();
    const body = readFileSync(file);
    const gzip = COMPRESSIBLE.has(ext) && body.length > 512 ? gzipSync(body, { level: 9 }) : null;
    const cache = rel === 'index.html' ? 'no-cache' : rel.startsWith('assets/') ? IMMUTABLE : 'public, max-age=3600';
    site.set(`/${rel}`, { body, gzip: gzip !== null && gzip.length < body.length ? gzip : null, type: TYPES[ext] ?? 'application/octet-stream', cache });
  }
  site.set('/', site.get('/index.html')!);
  return site;
}

function send(res: HttpResponse, a: Asset, gzipOk: boolean): void {
  res.cork(() => {
    res.writeStatus('200 OK')
      .writeHeader('Content-Type', a.type)
      .writeHeader('Cache-Control', a.cache)
      .writeHeader('X-Content-Type-Options', 'nosniff')
      .writeHeader('Vary', 'Accept-Encoding');
    if (gzipOk && a.gzip !== null) res.writeHeader('Content-Encoding', 'gzip').end(a.gzip);
    else res.end(a.body);
  });
}

/**
 * Serve the build in `dir` at `/`. Mount before the gateway's catch-all 404 (server.ts), after the
 * API routes (theirs are more specific and win anyway).
 */
export function mountStatic(app: TemplatedApp, dir: string): StaticSite {
  const site = loadSite(dir);
  const handler = (res: HttpResponse, req: HttpRequest) => {
    const path = req.getUrl();
    const a = site.get(path);
    if (a === undefined) {
      res.cork(() => {
        if (path === '/' || path === '/index.html') {
          res.writeStatus('503 Service Unavailable').writeHeader('Content-Type', 'text/plain; charset=utf-8')
            .end('The dashboard is not built. `npm start` builds it; or run `npx vite build --config web/vite.config.ts`.\n');
        } else {
          res.writeStatus('404 Not Found').writeHeader('Content-Type', 'application/json')
            .end(JSON.stringify({ error: 'not_found', message: `no route GET ${path}` }));
        }
      });
      return;
    }
    send(res, a, /\bgzip\b/.test(req.getHeader('accept-encoding')));
  };
  app.get('/', handler);
  app.get('/index.html', handler);
  app.get('/assets/*', handler);
  // Top-level files of the build (a favicon): one exact route each, so nothing else matches.
  for (const p of site.keys()) if (p !== '/' && p !== '/index.html' && !p.startsWith('/assets/')) app.get(p, handler);
  let bytes = 0;
  let gzipBytes = 0;
  for (const [p, a] of site) {
    if (p === '/') continue;
    bytes += a.body.length;
    gzipBytes += (a.gzip ?? a.body).length;
  }
  return { paths: [...site.keys()].filter((p) => p !== '/'), bytes, gzipBytes };
}
