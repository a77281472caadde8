/**
 * docs/openapi.yaml against the server: every route the gateway registers is described, every
 * described route exists (and answers on the wire, not 404/405), the JSON routes' query parameters
 * are those their schemas accept, and only /health and /ready go without a key.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_QUERY_PARAMS } from '../../src/gateway/rest.ts';
import { KEY, startRestServer, type RestServer } from './rest-fixture.ts';
import { freshPglite } from '../support/pglite.ts';
import { pgliteDb } from '../../src/core/db.ts';
import { migrate } from '../../src/core/migrate.ts';

interface Op {
  security?: unknown[];
  parameters?: { name?: string; in?: string; $ref?: string; schema?: { example?: unknown; enum?: unknown[] } }[];
}
type Doc = { security?: unknown[]; paths: Record<string, Record<string, Op>> };

const doc = parse(readFileSync(new URL('../../docs/openapi.yaml', import.meta.url), 'utf8')) as Doc;
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
const described = Object.entries(doc.paths).flatMap(([path, item]) =>
  Object.keys(item).filter((m) => METHODS.includes(m)).map((m) => `${m.toUpperCase()} ${path}`));

let srv: RestServer;
let pg: Awaited<ReturnType<typeof freshPglite>>;
beforeAll(async () => {
  pg = await freshPglite();
  const db = pgliteDb(pg.db);
  await migrate(db);
  srv = await startRestServer({ db: null, orders: db, replays: true });
});
afterAll(async () => {
  srv?.close();
  await pg?.close();
});

describe('docs/openapi.yaml matches the server', () => {
  it('describes exactly the routes the server registers', () => {
    // /health is server.ts's own route; the rest come from mountRest's route table.
    const registered = ['GET /health', ...srv.handle.routes.map((r) => `${r.method} ${r.path}`)];
    expect([...described].sort()).toEqual([...registered].sort());
  });

  it('every described route answers on the wire (no 404 or 405)', async () => {
    for (const op of described) {
      const [method, template] = op.split(' ');
      const params = doc.paths[template][method.toLowerCase()].parameters ?? [];
      const path = template.replace(/\{(\w+)\}/g, (_, name: string) => {
        const p = params.find((x) => x.name === name)!;
        return encodeURIComponent(String(p.schema?.example ?? p.schema?.enum?.[0]));
      });
      const auth = path.startsWith('/kite') ? `token ${KEY}:${KEY}` : `Bearer ${KEY}`;
      const r = await fetch(`${srv.base}${path}`, { method, headers: { Authorization: auth } });
      // A 404 from a route that exists but found no such resource (an unknown order) names it;
      // a missing route answers the catch-all's `not_found` (JSON) or Kite's GeneralException.
      const body = (await r.json().catch(() => ({}))) as { error?: string; error_type?: string };
      const missingRoute = r.status === 405 || (r.status === 404 && (body.error === 'not_found' || body.error_type === 'GeneralException'));
      expect(missingRoute, `${op}: ${r.status} ${JSON.stringify(body)}`).toBe(false);
    }
  });

  it('lists the query parameters each JSON route accepts, no more, no fewer', () => {
    for (const [op, names] of Object.entries(API_QUERY_PARAMS)) {
      const [method, path] = op.split(' ');
      const params = doc.paths[path]?.[method.toLowerCase()]?.parameters ?? [];
      const documented = params.filter((p) => p.in === 'query').map((p) => p.name!);
      expect(documented.sort(), op).toEqual([...names].sort());
    }
  });

  it('asks for a key on every route but /health, /ready and Kite\'s postback (which carries a checksum instead)', () => {
    expect(doc.security).toEqual([{ bearer: [] }]);
    const keyless = ['/health', '/ready', '/kite/postback'];
    for (const op of described) {
      const [method, path] = op.split(' ');
      const sec = doc.paths[path][method.toLowerCase()].security;
      const open = sec !== undefined && sec.length === 0;
      expect(open, op).toBe(keyless.includes(path));
      if (path.startsWith('/kite') && !keyless.includes(path)) expect(sec, op).toEqual([{ kite: [] }]);
    }
  });
});
