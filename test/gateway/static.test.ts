/**
 * The dashboard's static files on the real gateway: content types, caching, gzip, no listing.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type Gateway } from '../../src/gateway/server.ts';
import { mountStatic, type StaticSite } from '../../src/gateway/static.ts';

let dir: string;
let gw: Gateway;
let empty: Gateway;
let site: StaticSite;
const JS = `export const x = ${JSON.stringify('tick '.repeat(400))};\n`;

/** A raw GET (fetch would decompress and hide Content-Encoding). */
function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'static-'));
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>n50</title><script type="module" src="/assets/index-AbC123.js"></script>');
  writeFileSync(join(dir, 'assets', 'index-AbC123.js'), JS);
  writeFileSync(join(dir, 'assets', 'index-AbC123.css'), 'body{margin:0}');
  writeFileSync(join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  gw = await startGateway({ host: '127.0.0.1', port: 0, health: () => ({}), routes: (app) => { site = mountStatic(app, dir); } });
  empty = await startGateway({ host: '127.0.0.1', port: 0, health: () => ({}), routes: (app) => { mountStatic(app, join(dir, 'nothing-here')); } });
});
afterAll(() => {
  gw?.close();
  empty?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the dashboard files at /', () => {
  it('serves index.html at / as HTML that is always revalidated', async () => {
    const r = await get(gw.port, '/');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(r.headers['cache-control']).toBe('no-cache');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.body.toString()).toContain('<title>n50</title>');
  });

  it('serves hashed assets with their type, cached for a year, gzipped when the browser takes gzip', async () => {
    const plain = await get(gw.port, '/assets/index-AbC123.js');
    expect(plain.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(plain.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.toString()).toBe(JS);
    const gz = await get(gw.port, '/assets/index-AbC123.js', { 'accept-encoding': 'gzip, deflate, br' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(gz.body).toString()).toBe(JS);
    expect(gz.body.length).toBeLessThan(JS.length / 5);
    expect((await get(gw.port, '/assets/index-AbC123.css')).headers['content-type']).toBe('text/css; charset=utf-8');
    expect((await get(gw.port, '/favicon.svg')).headers['content-type']).toBe('image/svg+xml');
    expect(site.gzipBytes).toBeLessThan(site.bytes);
  });

  it('lists no directory and serves nothing outside the build', async () => {
    for (const p of ['/assets/', '/assets', '/assets/nope.js', '/assets/../index.html', '/../../etc/passwd', '/web/dist/index.html']) {
      const r = await get(gw.port, p);
      if (p === '/assets/../index.html' && r.status === 200) {
        // A client that did not normalise the path: only the build's own index, never a listing.
        expect(r.body.toString()).toContain('<title>n50</title>');
        continue;
      }
      expect(r.status, p).toBe(404);
    }
  });

  it('says how to build the dashboard when there is no build', async () => {
    const r = await get(empty.port, '/');
    expect(r.status).toBe(503);
    expect(r.body.toString()).toContain('npm start');
  });
});
