/**
 * The access log (LOG_LEVEL=debug): one line per request with the path and the key's name, never
 * the key itself, whether it came in a header or in the query.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.ts';
import { KEY, startRestServer, type RestServer } from './rest-fixture.ts';

const lines: string[] = [];
let srv: RestServer;

beforeAll(async () => {
  const log = createLogger('debug', 'test', { write: (s: string) => { lines.push(s); } });
  srv = await startRestServer({ db: null, extra: { log } });
});
afterAll(() => srv?.close());

describe('the access log', () => {
  it('logs each request by path, status and key name, never the key', async () => {
    await fetch(`${srv.base}/api/quote?symbols=INFY&key=${KEY}`);
    await fetch(`${srv.base}/api/quote?symbols=INFY`, { headers: { authorization: `Bearer ${KEY}` } });
    await fetch(`${srv.base}/api/quote?symbols=INFY&key=not-a-key-at-all-000`);
    const access = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request');
    expect(access.map((l) => [l.path, l.status, l.key])).toEqual([
      ['/api/quote', 200, 'alice'], ['/api/quote', 200, 'alice'], ['/api/quote', 401, null],
    ]);
    expect(lines.join('\n')).not.toContain(KEY);
    expect(lines.join('\n')).not.toContain('not-a-key-at-all-000');
  });
});
