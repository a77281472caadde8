/**
 * `npm start` as a user runs it: no environment, the simulator in-process, /health answering,
 * a clean stop on SIGTERM and on SIGINT.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { until } from './support/until.ts';

function startProcess(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    env: { PATH: process.env.PATH ?? '', PORT: '0', SIM_RATE: '2000', DATA_DIR: '/tmp/nifty50-start-test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => out };
}

/** Bound on each wait: the service starting on a loaded 2-core machine. */
const WAIT_MS = 30_000;

describe('npm start with no environment', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`runs on embedded defaults, serves /health with live ticks, and stops cleanly on ${signal}`, async () => {
      const p = startProcess({});
      try {
        const url = await until('the start-up line', () => /"health":"(http:\/\/[^"]+)"/.exec(p.output())?.[1], WAIT_MS);
        expect(p.output()).toMatch(/embedded defaults in use/);
        expect(p.output()).toMatch(/built-in Kite simulator/);
        await until('ticks to reach the workers', async () => {
          const h = (await (await fetch(url)).json()) as { pipeline: { ticksOut: number }; feed: { connected: boolean } };
          return h.pipeline.ticksOut > 0 && h.feed.connected;
        }, WAIT_MS);
        const h = (await (await fetch(url)).json()) as Record<string, any>;
        expect(h.status).toBe('ok');
        expect(h.feed.source).toBe('simulator');
        expect(h.decode.packets).toBeGreaterThan(0);
        expect(Object.values(h.decode.errors as Record<string, number>).every((n) => n === 0)).toBe(true);
        // The slow-client policy of both WebSocket endpoints (src/gateway/slow-clients.ts), no client yet.
        for (const endpoint of [h.live.feed, h.live.kite]) expect(endpoint).toMatchObject({ maxUnsentBytes: 0, slowCloses: 0, stallCloses: 0 });
        expect((await fetch(url.replace('/health', '/nope'))).status).toBe(404);
        p.child.kill(signal);
        expect(await p.exited).toBe(0);
        expect(p.output()).toMatch(/stopped cleanly/);
      } finally {
        p.child.kill('SIGKILL');
      }
    });
  }
});
