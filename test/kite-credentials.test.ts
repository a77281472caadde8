/**
 * With KITE_API_KEY and KITE_ACCESS_TOKEN set, the service connects to the Kite named by
 * KITE_WS_URL / KITE_API_URL instead of starting its own simulator. A simulator in another role
 * (standalone, strict about its credentials) stands in for Kite here.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { silentLogger } from '../src/log.ts';
import { startService } from '../src/service.ts';
import { startSimulator } from '../src/kite/sim/server.ts';
import { until } from './support/until.ts';

describe('with Kite credentials', () => {
  it('uses the configured Kite, not the built-in simulator, and reports refused credentials as fatal', async () => {
    const kite = await startSimulator({ apiKey: 'realkey', accessToken: 'realtoken', rate: 2000 });
    const dir = mkdtempSync(path.join(tmpdir(), 'n50-kite-'));
    try {
      const env = {
        KITE_API_KEY: 'realkey', KITE_ACCESS_TOKEN: 'realtoken', KITE_WS_URL: kite.wsUrl, KITE_API_URL: kite.apiUrl,
        PORT: '0', DATA_DIR: dir, API_KEYS: 'ci:abcdefghijklmnop0123', WORKERS: '1',
      };
      const service = await startService(loadConfig(env), silentLogger);
      try {
        expect(service.sim).toBeNull();
        await until('ticks through the pipeline', () => service.pipeline.counters().ticksOut > 0);
        expect(kite.connections()).toBeGreaterThan(0);
        expect((service.health().feed as { source: string }).source).toBe('kite');
      } finally {
        await service.close();
      }
      // An expired token: Kite refuses the upgrade, the ingest reports it as fatal (main.ts stops
      // the process with the message) instead of retrying forever.
      const bad = await startService(loadConfig({ ...env, KITE_ACCESS_TOKEN: 'expired' }), silentLogger);
      try {
        const fatal = await until('the refusal to be reported', () => bad.ingest.fatalError);
        expect(fatal.code).toBe('KITE_AUTH_REFUSED');
      } finally {
        await bad.close();
      }
    } finally {
      await kite.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
